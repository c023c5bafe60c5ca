import Postgres

/// Deliveries claimed (`sending`) by workers that are not alive: a worker killed with
/// `kill -9`, or cut off from the database, keeps its claims until their lease ends, and only
/// then does a live worker take them back and send them again. Until that moment they are not
/// being sent, though their state says `sending`.
struct StrandedClaims: Sendable {
    /// One worker's claims.
    struct Holder: Sendable, Hashable {
        /// `deliveries.claimed_by`: the worker's id.
        var worker: String
        /// How many deliveries it holds.
        var count: Int
        /// Seconds until the last of their leases ends; 0 or less once all have ended.
        var leaseLeft: Double
    }

    /// The holders, by worker id.
    var holders: [Holder]

    /// Deliveries in `sending` whose worker has no heartbeat within `heartbeatWindow` seconds
    /// (or no row in `webhooky.workers` at all), per worker; none for a role that may not read
    /// `webhooky.workers` (a tenant's, whose backlog is shown all the same).
    static func load(_ connection: Connection, heartbeatWindow: Double) throws(PostgresError) -> StrandedClaims {
        guard try WorkerPresence.canReadWorkers(connection) else { return StrandedClaims(holders: []) }
        let result = try connection.query("""
            SELECT d.claimed_by, count(*), extract(epoch FROM max(d.lease_expires_at) - now())
              FROM webhooky.deliveries d
             WHERE d.state = 'sending'
               AND NOT EXISTS (SELECT 1 FROM webhooky.workers w
                                WHERE w.id = d.claimed_by AND w.heartbeat_at >= now() - $1 * interval '1 second')
             GROUP BY d.claimed_by ORDER BY d.claimed_by
            """, [String(heartbeatWindow)])
        return StrandedClaims(holders: (0..<result.rowCount).map { row in
            Holder(worker: result[row, 0] ?? "?", count: result[row, 1].flatMap { Int($0) } ?? 0,
                   leaseLeft: result[row, 2].flatMap { Double($0) } ?? 0)
        })
    }

    /// How many deliveries they hold in all.
    var count: Int { holders.reduce(0) { $0 + $1.count } }

    /// `a worker that stopped`, or `2 workers that stopped`.
    var whose: String { holders.count == 1 ? "a worker that stopped" : "\(holders.count) workers that stopped" }

    /// What becomes of `holder`'s deliveries, for the workers finding: `holds 8 deliveries it
    /// claimed: a live worker sends them again once their lease ends, in 18s`. With no worker
    /// alive (`anyAlive` false) they wait for one.
    static func fate(of holder: Holder, anyAlive: Bool) -> String {
        let one = holder.count == 1
        let what = "holds \(TextFormatting.count(holder.count)) \(one ? "delivery" : "deliveries") it claimed: "
        let (they, them, their) = one ? ("it goes", "it", "its") : ("they go", "them", "their")
        let left = TextFormatting.duration(seconds: holder.leaseLeft)
        switch (anyAlive, holder.leaseLeft > 0) {
        case (false, false): return what + "\(they) out once a worker runs"
        case (false, true): return what + "\(they) out once a worker runs and \(their) lease has ended, in \(left)"
        case (true, false): return what + "\(their) lease has ended, and a live worker takes \(them) back at its next reap"
        case (true, true): return what + "a live worker sends \(them) again once \(their) lease ends, in \(left)"
        }
    }
}
