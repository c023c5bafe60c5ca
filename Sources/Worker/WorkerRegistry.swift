import Postgres

/// The worker's row in `webhooky.workers`: who it is, that it is alive, and whether it waits
/// for a NOTIFY (`wants_wakeup`; `webhooky.emit` sends one only then).
enum WorkerRegistry {
    /// A worker whose heartbeat is older than this is gone; its row is removed by the others.
    static let staleAfterSeconds = 120

    /// How often a running worker writes its heartbeat: 5 s.
    static let heartbeatInterval: Duration = .seconds(5)

    /// Refreshes the worker's row (the heartbeat), or inserts it when it is gone, and removes
    /// rows of workers gone for good. A row that another process (another host or pid) holds
    /// is left alone: the statement returns that row (see ``WorkerRow``), since a second worker
    /// runs with the same id; it returns no row otherwise.
    ///
    /// The returned row is read from the statement's snapshot, so it is the other process's
    /// row as it was when the statement began.
    static let upsertSQL = """
        WITH stale AS (
            DELETE FROM webhooky.workers WHERE heartbeat_at < now() - $6 * interval '1 second' AND id <> $1
        ), beat AS (
            INSERT INTO webhooky.workers AS w (id, host, pid, version, listening, wants_wakeup)
            VALUES ($1, $2, $3, $4, $5, $5 AND $7)
            ON CONFLICT (id) DO UPDATE
               SET version = excluded.version, heartbeat_at = now(), listening = excluded.listening, wants_wakeup = excluded.wants_wakeup
             WHERE w.host = excluded.host AND w.pid = excluded.pid
            RETURNING true
        )
        SELECT \(WorkerRow.columns) FROM webhooky.workers WHERE id = $1 AND NOT EXISTS (SELECT FROM beat)
        """

    /// Writes the heartbeat; returns the row of the other process that holds this worker's id
    /// instead, if one does (nothing is written then).
    @discardableResult
    static func upsert(_ connection: Connection, id: String, host: String, pid: Int32, version: String, listening: Bool, wantsWakeup: Bool) throws(PostgresError) -> WorkerRow? {
        let result = try connection.query(prepared: "webhooky_worker_upsert", upsertSQL, [id, host, String(pid), version, listening ? "true" : "false", String(staleAfterSeconds), wantsWakeup ? "true" : "false"])
        return WorkerRow(result)
    }

    /// Makes the row of `id` this process's (new `started_at`, fresh heartbeat) when it is
    /// absent, already this process's, or still the row `replacing` that the caller looked at
    /// (compared by its heartbeat). Returns `false`, writing nothing, when someone else wrote
    /// the row meanwhile.
    static let registerSQL = """
        INSERT INTO webhooky.workers AS w (id, host, pid, version, listening, wants_wakeup)
        VALUES ($1, $2, $3, $4, $5, $5)
        ON CONFLICT (id) DO UPDATE
           SET host = excluded.host, pid = excluded.pid, version = excluded.version, started_at = now(), heartbeat_at = now(),
               listening = excluded.listening, wants_wakeup = excluded.wants_wakeup
         WHERE (w.host = excluded.host AND w.pid = excluded.pid) OR w.heartbeat_at = $6::timestamptz
        RETURNING true
        """

    static func register(_ connection: Connection, id: String, host: String, pid: Int32, version: String, listening: Bool, replacing previous: WorkerRow?) throws(PostgresError) -> Bool {
        try connection.query(registerSQL, [id, host, String(pid), version, listening ? "true" : "false", previous?.heartbeatAt]).rowCount == 1
    }

    /// The row of `id`, if there is one.
    static func read(_ connection: Connection, id: String) throws(PostgresError) -> WorkerRow? {
        WorkerRow(try connection.query("SELECT \(WorkerRow.columns) FROM webhooky.workers WHERE id = $1", [id]))
    }

    /// Sets `wants_wakeup` in a transaction that commits without waiting for the WAL flush
    /// (`synchronous_commit` off for this transaction only). The flag flips twice around every
    /// short busy spell, on the dispatcher's path to the next fan-out, and a flush costs a disk
    /// sync each time; other sessions see the new value at commit either way. A crash that
    /// takes the flip back is harmless: the flag decides only whether emitters send a NOTIFY,
    /// and a worker that reconnects writes it again with its heartbeat (meanwhile it polls).
    static let setWantsWakeupSQL = """
        WITH flag AS (UPDATE webhooky.workers SET wants_wakeup = $2 WHERE id = $1)
        SELECT pg_catalog.set_config('synchronous_commit', 'off', true)
        """

    static func setWantsWakeup(_ connection: Connection, id: String, _ wants: Bool) throws(PostgresError) {
        try connection.query(prepared: "webhooky_worker_wakeup", setWantsWakeupSQL, [id, wants ? "true" : "false"])
    }

    /// Clears the bits of `webhooky.wanted_events` that no enabled webhook needs any more, so
    /// triggers whose events nobody wants stop running (sql/0008_wanted_events.sql). Never waits
    /// for a lock: while a webhook is being changed it does nothing, and the next heartbeat tries.
    static func refreshWantedEvents(_ connection: Connection) throws(PostgresError) {
        try connection.query(prepared: "webhooky_refresh_wanted", "SELECT webhooky.refresh_wanted_events()", [])
    }

    /// Removes the worker's row, if it is still this process's (not a second worker's with the
    /// same id).
    static func remove(_ connection: Connection, id: String, host: String, pid: Int32) throws(PostgresError) {
        try connection.query("DELETE FROM webhooky.workers WHERE id = $1 AND host = $2 AND pid = $3", [id, host, String(pid)])
    }
}

/// A row of `webhooky.workers` as seen by another process with the same worker id.
struct WorkerRow: Sendable {
    /// The columns read, in order.
    static let columns = "host, pid, heartbeat_at, extract(epoch FROM now() - heartbeat_at)"

    /// The host name it recorded.
    var host: String
    /// Its process id on that host.
    var pid: Int32
    /// Its last heartbeat, as PostgreSQL wrote it (compared, never parsed).
    var heartbeatAt: String
    /// Seconds since its last heartbeat, by the database's clock.
    var heartbeatAge: Double

    /// The first row of `result` (read with ``columns``), or `nil` when it has none.
    init?(_ result: QueryResult) {
        guard result.rowCount > 0, let host = result[0, 0], let pid = result[0, 1].flatMap({ Int32($0) }),
              let heartbeatAt = result[0, 2], let age = result[0, 3].flatMap({ Double($0) }) else { return nil }
        self.init(host: host, pid: pid, heartbeatAt: heartbeatAt, heartbeatAge: age)
    }

    init(host: String, pid: Int32, heartbeatAt: String, heartbeatAge: Double) {
        self.host = host
        self.pid = pid
        self.heartbeatAt = heartbeatAt
        self.heartbeatAge = heartbeatAge
    }
}
