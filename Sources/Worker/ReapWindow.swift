/// Which expired leases a reap reads.
///
/// A delivery's lease is set from the database's clock when it is claimed (`now()` plus the
/// lease), so a lease that runs out after one reap began is found by the next: each reap reads
/// the lease index from ``margin`` before the last reap's start, not from its beginning. The
/// index keeps an entry for every finished delivery until VACUUM (millions on a busy table with
/// days of history), and a reap from the beginning reads them all, every quarter lease. A row
/// a reap skipped because another transaction held it (an admin's open transaction) is found by
/// a full reap: the first, and every ``fullEvery``-th.
struct ReapWindow: Sendable, Equatable {
    /// Reaps from one that reads every lease to the next. Default 20 (5 minutes at the default
    /// 60 s lease, reaped every quarter lease).
    var fullEvery = 20
    /// How far before the last reap's start the next one reads, as PostgreSQL's interval: a
    /// claim that began before that reap commits its lease after it. Default 5 minutes.
    static let margin = "5 minutes"
    /// The database's `now()` at the last reap, as PostgreSQL's text; nil before the first.
    private(set) var lastStart: String?
    /// Reaps since the last full one.
    private(set) var sinceFull = 0

    /// The lower bound of the leases the next reap reads (before ``margin``), as PostgreSQL's
    /// text: `-infinity` for a full reap.
    var bound: String {
        guard let lastStart, sinceFull < fullEvery else { return "-infinity" }
        return lastStart
    }

    /// A reap that read from `bound` and began at the database's `now()` of `start` is done.
    /// A reap that failed is not: the next one reads from the same bound.
    mutating func reaped(from bound: String, startedAt start: String) {
        sinceFull = bound == "-infinity" ? 1 : sinceFull + 1
        lastStart = start
    }
}
