public import Foundation

extension NSCondition {
    /// Waits, with the lock held, until signalled or for at most one second, whichever comes
    /// first; false once `deadline` has passed. Call it in a loop that re-checks its condition.
    ///
    /// `wait(until: Date)` alone measures a deadline on the wall clock, which a clock step
    /// (NTP, an administrator) moves: forward ends the wait early, back holds it for as long
    /// as the step. Here the deadline is on the monotonic clock and each wall-clock wait is at
    /// most a second, so a step can hold a wait at most a second past its deadline.
    public func waitBriefly(before deadline: ContinuousClock.Instant) -> Bool {
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else { return false }
        let slice = min(remaining, .seconds(1))
        let seconds = Double(slice.components.seconds) + Double(slice.components.attoseconds) / 1e18
        _ = wait(until: Date(timeIntervalSinceNow: seconds))
        return true
    }
}
