/// Capped exponential backoff with jitter, for reconnecting to the database.
///
/// Delays: 0.25 s, 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s for every further attempt, each varied
/// by up to ±20 %. Pure: the random source is passed in.
public struct Backoff: Sendable, Hashable {
    /// The first delay. Default 0.25 s.
    public var initial: Duration = .milliseconds(250)
    /// The longest delay. Default 10 s.
    public var maximum: Duration = .seconds(10)
    /// Failures in a row so far.
    public private(set) var failures = 0

    public init(initial: Duration = .milliseconds(250), maximum: Duration = .seconds(10)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// Records a failure and returns how long to wait before the next try.
    public mutating func nextDelay(using random: inout some RandomNumberGenerator) -> Duration {
        failures += 1
        var delay = initial
        for _ in 1..<min(failures, 32) {
            delay = delay * 2
            if delay >= maximum { break }
        }
        delay = min(delay, maximum)
        return delay * Double.random(in: 0.8...1.2, using: &random)
    }

    /// Records a success: the next failure starts from ``initial`` again.
    public mutating func reset() {
        failures = 0
    }
}
