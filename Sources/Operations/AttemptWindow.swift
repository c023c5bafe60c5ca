/// Which attempt ids a live view has already shown, so that it shows every attempt once even
/// when attempts commit out of id order. Pure: the caller queries, this decides.
///
/// Ids come from one sequence but are taken when a row is inserted, not when it commits: a
/// worker's batch with ids 500-520 may become visible after another worker's 521-530. Asking
/// only for ids above the highest seen would skip 500-520 for ever. So each poll asks again
/// for every id above a *floor* below the highest seen, and this remembers which of those it
/// has shown. The floor is the highest id that had been seen `settle` ago (a transaction that
/// has not committed within that time is not a worker's), but never more than `maximumIDs`
/// below the highest id (which bounds the work of one poll on a busy database).
///
/// | setting | default |
/// |---|---|
/// | `settle` | 10 s |
/// | `maximumIDs` | 10,000 |
public struct AttemptWindow: Sendable {
    /// How long an attempt may take to commit after a higher id was seen, in seconds.
    public let settle: Double
    /// The most ids below the highest seen that are asked for again.
    public let maximumIDs: Int64
    /// The highest id seen (or the highest that existed when the view started).
    public private(set) var highest: Int64
    /// Ids above the floor that were already shown.
    private var seen: Set<Int64> = []
    /// The highest id at each poll (monotonic seconds), oldest first, for the floor.
    private var marks: [(time: Double, highest: Int64)] = []
    private var settledFloor: Int64

    /// A window that starts at `highest` (the largest id when the view started; 0 for none),
    /// at monotonic time `now` in seconds.
    public init(highest: Int64, now: Double, settle: Double = 10, maximumIDs: Int64 = 10_000) {
        self.settle = settle
        self.maximumIDs = maximumIDs
        self.highest = highest
        self.settledFloor = max(0, highest - maximumIDs)
        self.marks = [(now, highest)]
    }

    /// The ids to ask for at `now` are those above this.
    public func floor(at now: Double) -> Int64 {
        var floor = settledFloor
        for mark in marks where mark.time <= now - settle { floor = max(floor, mark.highest) }
        return max(floor, highest - maximumIDs, 0)
    }

    /// Takes the ids a poll at `now` found above the floor and returns those not shown yet, in
    /// ascending order; from now on they count as shown.
    public mutating func admit(_ ids: [Int64], at now: Double) -> [Int64] {
        var fresh: [Int64] = []
        for id in ids.sorted() where seen.insert(id).inserted {
            fresh.append(id)
            highest = max(highest, id)
        }
        marks.append((now, highest))
        forget(before: now)
        return fresh
    }

    /// Counts `ids` as shown without returning them (the attempts that existed before the view
    /// started, or those it showed from its history).
    public mutating func markShown(_ ids: [Int64]) {
        for id in ids {
            seen.insert(id)
            highest = max(highest, id)
        }
    }

    /// Drops marks no floor needs any more and ids at or below the floor.
    private mutating func forget(before now: Double) {
        if let lastSettled = marks.lastIndex(where: { $0.time <= now - settle }) {
            settledFloor = max(settledFloor, marks[lastSettled].highest)
            marks.removeFirst(lastSettled + 1)
        }
        let floor = self.floor(at: now)
        if seen.contains(where: { $0 <= floor }) {
            seen = seen.filter { $0 > floor }
        }
    }

    /// How many ids are remembered (for tests: it stays bounded).
    public var rememberedCount: Int { seen.count }
}
