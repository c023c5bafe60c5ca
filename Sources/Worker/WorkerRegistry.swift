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

    static func remove(_ connection: Connection, id: String) throws(PostgresError) {
        try connection.query("DELETE FROM webhooky.workers WHERE id = $1", [id])
    }
}
