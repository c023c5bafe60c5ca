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
///
/// A fixed rate is not enough on a server whose WAL flush is slow (cloud disks, a busy host):
/// since the lock is held through each commit's flush, NOTIFYs allow at most one emitting
/// commit per flush, and the rate of events never reaches ``awakeAbove`` (a 0.7 ms flush caps
/// it near 1,400/s): the worker kept asking for NOTIFYs, and they kept the customer's commits
/// in single file. So the worker also stays awake while the lock would be held at least
/// ``lockShare`` of the time: the rate times the WAL flush's duration, which it measures from
/// its own fan-outs (one that wrote a few events and committed, less one that found nothing
/// and wrote nothing; see ``looked(found:taking:)``).
public struct EventRate: Sendable {
    /// Events per second at or above which the worker stays awake. Default 2,500; 0 never
    /// (neither by this rate nor by ``lockShare``).
    public let awakeAbove: Double
    /// The averaging window. Default 100 ms.
    public let window: Duration
    /// The share of the time that NOTIFYs would hold the database's commit lock (events per
    /// second times the WAL flush's duration) at or above which the worker stays awake.
    /// Default 0.8.
    public let lockShare: Double
    /// The estimate, in events per second, as of `updatedAt`.
    private var perSecond: Double = 0
    private var updatedAt: ContinuousClock.Instant?
    /// Averages (exponentially weighted, seconds) of how long a fan-out took that wrote 1 to
    /// ``smallFanOut`` events (and committed them: one WAL flush), and one that found none
    /// (nothing to flush).
    private var writing: Double?
    private var finding: Double?

    /// Fan-outs of at most this many events time a commit: larger ones time their writes too.
    static let smallFanOut = 4

    public init(awakeAbove: Double = 2_500, window: Duration = .milliseconds(100), lockShare: Double = 0.8) {
        self.awakeAbove = awakeAbove
        self.window = window
        self.lockShare = lockShare
    }

    /// A fan-out that found `events` events took `duration` (its round trip included).
    public mutating func looked(found events: Int, taking duration: Duration) {
        let seconds = duration / .seconds(1)
        func average(_ current: Double?) -> Double { current.map { $0 + (seconds - $0) * 0.2 } ?? seconds }
        if events == 0 {
            finding = average(finding)
        } else if events <= EventRate.smallFanOut {
            writing = average(writing)
        }
    }

    /// How long a commit's WAL flush takes, as the fan-outs tell (seconds): one that wrote, less
    /// one that found nothing (until one of those was timed, the whole of the one that wrote,
    /// which is longer); `nil` until a fan-out wrote.
    public var walFlush: Double? {
        guard let writing else { return nil }
        return max(0, writing - (finding ?? 0))
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

    /// Whether the worker should stay awake at `now`: the rate is at least ``awakeAbove``, or
    /// NOTIFYs would hold the commit lock at least ``lockShare`` of the time.
    public func isAwake(now: ContinuousClock.Instant) -> Bool {
        guard awakeAbove > 0 else { return false }
        let rate = estimate(now: now)
        return rate >= awakeAbove || rate * (walFlush ?? 0) >= lockShare
    }
}
