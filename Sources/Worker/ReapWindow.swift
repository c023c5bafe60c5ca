/// Which expired leases a reap reads.
///
/// A delivery's lease is set from the database's clock when it is claimed (`now()` plus the
/// lease), so a lease that runs out after one reap began is found by the next: each reap reads
/// the lease index from ``margin`` before the last reap's start, not from its beginning. The
/// index keeps an entry for every finished delivery until VACUUM (millions on a busy table with
/// days of history), and a reap from the beginning reads them all, every quarter lease. A row
/// a reap skipped because another transaction held it (an admin's open transaction), or one
/// whose claim stayed uncommitted longer than the margin, is found by a full reap: the first,
/// the first after a reap failed, and one at least every ``fullEvery``.
///
/// Times go to and from the database as seconds since 1970 (`extract(epoch FROM now())`), never
/// as timestamp text, whose reading depends on the session's DateStyle and TimeZone.
struct ReapWindow: Sendable, Equatable {
    /// The longest time from one full reap to the next. Default 5 minutes.
    var fullEvery: Duration = .seconds(300)
    /// How far before the last reap's start the next one reads, as PostgreSQL's interval: a
    /// claim that began before that reap commits its lease after it. Default 5 minutes.
    static let margin = "5 minutes"
    /// The bound of a full reap: every lease.
    static let everyLease = "-Infinity"
    /// The database's `now()` at the last reap, in seconds since 1970 as PostgreSQL wrote them;
    /// nil before the first, and after a reap failed.
    private(set) var lastStart: String?
    /// When the last full reap was done.
    private(set) var lastFull: ContinuousClock.Instant?

    /// The lower bound of the leases the next reap reads at `now` (before ``margin``), in
    /// seconds since 1970: ``everyLease`` for a full reap.
    func bound(at now: ContinuousClock.Instant) -> String {
        guard let lastStart, let lastFull, now - lastFull < fullEvery else { return Self.everyLease }
        return lastStart
    }

    /// A reap that read from `bound`, done at `now`, began at the database's `start` (seconds
    /// since 1970).
    mutating func reaped(from bound: String, startedAt start: String, at now: ContinuousClock.Instant) {
        if bound == Self.everyLease { lastFull = now }
        lastStart = start
    }

    /// The next reap reads every lease: after a reap failed, or on a new connection.
    mutating func readEveryLeaseNext() {
        lastStart = nil
    }
}
