import Glibc

/// How fast new events arrive, as the worker finds them: an exponentially decaying average
/// over about ``window`` (default 100 ms). The worker stays awake, looking for events itself
/// instead of asking emitting transactions for a NOTIFY, while the rate is at least
/// ``awakeAbove`` events per second.
///
/// Why a rate: a NOTIFY wakes the worker at once (the lowest latency) but takes a
/// database-wide lock at commit, held through the commit's WAL flush, and each wake-up is one
/// statement for the one or two events committed since the last. Looking every
/// millisecond adds half a millisecond of latency on average but costs the emitting
/// transactions nothing and takes the events in batches. Below a few thousand events per
/// second the NOTIFY is the better deal; above, looking is. Pure: the caller passes the time.
public struct EventRate: Sendable {
    /// Events per second at or above which the worker stays awake. Default 2,500.
    public let awakeAbove: Double
    /// The averaging window. Default 100 ms.
    public let window: Duration
    /// The estimate, in events per second, as of `updatedAt`.
    private var perSecond: Double = 0
    private var updatedAt: ContinuousClock.Instant?

    public init(awakeAbove: Double = 2_500, window: Duration = .milliseconds(100)) {
        self.awakeAbove = awakeAbove
        self.window = window
    }

    /// Adds `events` found at `now` (0 for a look that found none: the estimate decays).
    public mutating func found(_ events: Int, now: ContinuousClock.Instant) {
        perSecond = estimate(now: now) + Double(events) / (window / .seconds(1))
        updatedAt = now
    }

    /// The estimate at `now`, decayed since the last update.
    public func estimate(now: ContinuousClock.Instant) -> Double {
        guard let updatedAt else { return 0 }
        return perSecond * exp(-((now - updatedAt) / window))
    }

    /// Whether the worker should stay awake at `now`.
    public func isAwake(now: ContinuousClock.Instant) -> Bool {
        awakeAbove > 0 && estimate(now: now) >= awakeAbove
    }
}
