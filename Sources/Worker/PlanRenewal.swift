/// When the worker's statements should be planned again.
///
/// Each statement is prepared once per connection and runs with a generic plan made with the
/// tables as they were then. A plan made while `webhooky.deliveries` was nearly empty (a fresh
/// install, a drained queue) may read a whole index to find a few rows, harmless then and ruinous
/// once a backlog of thousands has built up; PostgreSQL plans again only after an ANALYZE, which
/// autovacuum may run a minute or more later. So the worker plans again after 1,000 deliveries
/// created or claimed, then after each doubling of that count (2,000, 4,000... up to about a
/// million), and at least once a minute while it has work. Planning costs about a millisecond per
/// statement. Pure: the caller passes the time.
public struct PlanRenewal: Sendable, Hashable {
    /// Deliveries after the first planning that make the plans stale. Default 1,000.
    public private(set) var threshold: Int
    /// The largest threshold. Default 1,048,576.
    public let maximumThreshold: Int
    /// The longest a plan is kept while there is work. Default 60 s.
    public let maximumAge: Duration
    /// Deliveries created or claimed since the last planning.
    public private(set) var handled = 0
    private var plannedAt: ContinuousClock.Instant

    public init(threshold: Int = 1_000, maximumThreshold: Int = 1 << 20, maximumAge: Duration = .seconds(60), now: ContinuousClock.Instant) {
        self.threshold = threshold
        self.maximumThreshold = maximumThreshold
        self.maximumAge = maximumAge
        self.plannedAt = now
    }

    /// Counts deliveries created or claimed.
    public mutating func record(_ deliveries: Int) {
        handled += deliveries
    }

    /// Whether to plan again now.
    public func isDue(now: ContinuousClock.Instant) -> Bool {
        handled >= threshold || (handled > 0 && now - plannedAt >= maximumAge)
    }

    /// Records a new planning (after a growth, the next one waits for twice as many deliveries).
    public mutating func planned(now: ContinuousClock.Instant) {
        if handled >= threshold { threshold = min(threshold * 2, maximumThreshold) }
        handled = 0
        plannedAt = now
    }
}
