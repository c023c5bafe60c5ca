import Glibc

/// Sleeps until `deadline`, asking `stop` at least every 100 ms; returns false when it said
/// stop before the deadline (the caller then ends instead of retrying).
func pause(until deadline: ContinuousClock.Instant, unless stop: () -> Bool) -> Bool {
    while ContinuousClock.now < deadline {
        if stop() { return false }
        let slice = min(.milliseconds(100), deadline - .now)
        var request = timespec(tv_sec: Int(slice.components.seconds), tv_nsec: Int(slice.components.attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
    return !stop()
}
