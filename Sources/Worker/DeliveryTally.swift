public import Delivery

/// What the worker's deliveries came to since its last summary line: at `info` the log says
/// this every ``interval`` (default 10 s) while there is something to say, instead of a line
/// per successful delivery (at 20,000 deliveries a second that would be 20,000 lines, each
/// repeating what `webhooky.attempts` already holds; `--log-level debug` still writes them).
/// Failed attempts keep their own line at `warning` and `error`. Pure: the caller passes the time.
public struct DeliveryTally: Sendable {
    /// How often a summary is due. Default 10 s.
    public let interval: Duration
    /// Attempts that ended their delivery `succeeded`, `pending` (to be retried) or `dead`.
    public private(set) var succeeded = 0
    public private(set) var retrying = 0
    public private(set) var dead = 0
    private var since: ContinuousClock.Instant

    public init(interval: Duration = .seconds(10), now: ContinuousClock.Instant) {
        self.interval = interval
        self.since = now
    }

    /// Counts one finished attempt by the state it left its delivery in (`pending`: it will be
    /// retried).
    public mutating func count(_ state: DeliveryState) {
        switch state {
        case .succeeded: succeeded += 1
        case .pending: retrying += 1
        case .dead: dead += 1
        case .sending: break  // not an outcome
        }
    }

    /// The summary, if one is due at `now` (an interval has passed and something was
    /// counted, or `final` and something was counted); taking it starts the next interval.
    public mutating func take(now: ContinuousClock.Instant, final: Bool = false) -> Summary? {
        guard final || now - since >= interval else { return nil }
        defer { self = DeliveryTally(interval: interval, now: now) }
        guard succeeded + retrying + dead > 0 else { return nil }
        return Summary(succeeded: succeeded, retrying: retrying, dead: dead, over: now - since)
    }

    /// A summary line's figures.
    public struct Summary: Sendable, Equatable {
        public let succeeded: Int
        public let retrying: Int
        public let dead: Int
        /// The time they were counted over.
        public let over: Duration

        public init(succeeded: Int, retrying: Int, dead: Int, over: Duration) {
            self.succeeded = succeeded
            self.retrying = retrying
            self.dead = dead
            self.over = over
        }

        /// Attempts per second over ``over``, rounded.
        public var perSecond: Int {
            let seconds = over / .seconds(1)
            return seconds > 0 ? Int((Double(succeeded + retrying + dead) / seconds).rounded()) : 0
        }
    }
}
