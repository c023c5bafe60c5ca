public import Postgres

/// Whether any worker is alive, for the line `webhooky status` prints under its table when
/// none is: the table alone shows only PENDING and OLDEST growing, and nothing says that
/// nothing is being sent.
public enum WorkerPresence {
    /// A worker whose heartbeat is older is not alive, in seconds. Default 30 (as `webhooky doctor`'s).
    public static let heartbeatWindow: Double = 30

    /// Whether the connection's role may read `webhooky.workers` (a tenant's may not). Asked
    /// first, so that a tenant's `watch webhooky status` does not write a "permission denied"
    /// error into the server's log every 2 seconds.
    public static func canReadWorkers(_ connection: Connection) throws(PostgresError) -> Bool {
        // By column: a role granted only some columns may read these two, which are all that is read.
        try connection.query("""
            SELECT has_column_privilege('webhooky.workers', 'id', 'SELECT') AND has_column_privilege('webhooky.workers', 'heartbeat_at', 'SELECT')
            """).scalar == "t"
    }

    /// A sentence when no worker has a heartbeat within ``heartbeatWindow``, saying since when
    /// and what to do; `nil` when one is alive, and for a role that may not read
    /// `webhooky.workers` (a tenant's).
    public static func absence(_ connection: Connection) throws(PostgresError) -> String? {
        guard try canReadWorkers(connection) else { return nil }
        let result = try connection.query("""
            SELECT bool_or(heartbeat_at >= now() - $1 * interval '1 second'), extract(epoch FROM now() - max(heartbeat_at))
              FROM webhooky.workers
            """, [String(heartbeatWindow)])
        guard result[0, 0] != "t" else { return nil }
        let last = result[0, 1].flatMap { Double($0) }.map { " (the last heartbeat was \(TextFormatting.duration(seconds: $0)) ago)" } ?? ""
        return "No worker alive\(last): nothing is sent. Start webhooky run; webhooky doctor says more."
    }
}
