import Postgres

/// The worker's row in `webhooky.workers`: who it is, that it is alive, and whether it waits
/// for a NOTIFY (`wants_wakeup`; `webhooky.emit` sends one only then).
enum WorkerRegistry {
    /// A worker whose heartbeat is older than this is gone; its row is removed by the others.
    static let staleAfterSeconds = 120

    /// Inserts or refreshes the worker's row (also the heartbeat) and removes rows of workers
    /// gone for good.
    static let upsertSQL = """
        WITH stale AS (
            DELETE FROM webhooky.workers WHERE heartbeat_at < now() - $6 * interval '1 second' AND id <> $1
        )
        INSERT INTO webhooky.workers (id, host, pid, version, listening, wants_wakeup)
        VALUES ($1, $2, $3, $4, $5, $5 AND $7)
        ON CONFLICT (id) DO UPDATE
           SET host = excluded.host, pid = excluded.pid, version = excluded.version, heartbeat_at = now(),
               listening = excluded.listening, wants_wakeup = excluded.wants_wakeup
        """

    static func upsert(_ connection: Connection, id: String, host: String, pid: Int32, version: String, listening: Bool, wantsWakeup: Bool) throws(PostgresError) {
        try connection.query(prepared: "webhooky_worker_upsert", upsertSQL, [id, host, String(pid), version, listening ? "true" : "false", String(staleAfterSeconds), wantsWakeup ? "true" : "false"])
    }

    static func setWantsWakeup(_ connection: Connection, id: String, _ wants: Bool) throws(PostgresError) {
        try connection.query(prepared: "webhooky_worker_wakeup", "UPDATE webhooky.workers SET wants_wakeup = $2 WHERE id = $1", [id, wants ? "true" : "false"])
    }

    /// Clears the bits of `webhooky.wanted_events` that no enabled webhook needs any more, so
    /// triggers whose events nobody wants stop running (sql/0008_wanted_events.sql). Never waits
    /// for a lock: while a webhook is being changed it does nothing, and the next heartbeat tries.
    static func refreshWantedEvents(_ connection: Connection) throws(PostgresError) {
        try connection.query(prepared: "webhooky_refresh_wanted", "SELECT webhooky.refresh_wanted_events()", [])
    }

    static func remove(_ connection: Connection, id: String) throws(PostgresError) {
        try connection.query("DELETE FROM webhooky.workers WHERE id = $1", [id])
    }
}
