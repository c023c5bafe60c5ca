import Foundation
import Postgres

/// The worker's row in `webhooky.workers`: who it is, that it is alive, and whether it waits
/// for a NOTIFY (`wants_wakeup`; `webhooky.emit` sends one only then).
enum WorkerRegistry {
    /// A worker whose heartbeat is older than this is gone; its row is removed by the others.
    static let staleAfterSeconds = 120

    /// How often a running worker writes its heartbeat: 5 s.
    static let heartbeatInterval: Duration = .seconds(5)

    /// Refreshes the worker's row (the heartbeat), or inserts it when it is gone, and removes
    /// rows of workers gone for good. The row is this worker's only while its `started_at` is
    /// the one this worker registered with (`$8`, see ``register(_:id:host:pid:version:listening:startedAt:replacing:)``):
    /// host and pid do not tell processes apart (containers that share a hostname all run as
    /// pid 1). A row of another start is left alone. The statement returns one row, the
    /// worker's row as written (`mine` true) or the row as it was when the statement began
    /// (`mine` false; this worker's own, when the other's write committed while the statement
    /// waited for the row: ``upsert(_:id:host:pid:version:listening:wantsWakeup:startedAt:)``
    /// reads it again then); see ``WorkerRow``.
    ///
    /// Inserted again (say, after another worker removed it as stale during an outage, or for
    /// the first time when the start-up check could not run and the worker made up its own
    /// start, see ``startOfOwnMaking(now:)``), the row gets this worker's `started_at`.
    ///
    /// The two flags after the row's columns: the row is the one written (`mine`), and, when
    /// it is not, whether the row the statement began with had this worker's start (compared
    /// as timestamps: a start of the worker's own making is text in another form than
    /// PostgreSQL's).
    static let upsertSQL = """
        WITH stale AS (
            DELETE FROM webhooky.workers WHERE heartbeat_at < now() - $6 * interval '1 second' AND id <> $1
        ), beat AS (
            INSERT INTO webhooky.workers AS w (id, host, pid, version, started_at, listening, wants_wakeup)
            VALUES ($1, $2, $3, $4, $8::timestamptz, $5, $5 AND $7)
            ON CONFLICT (id) DO UPDATE
               SET version = excluded.version, heartbeat_at = now(), listening = excluded.listening, wants_wakeup = excluded.wants_wakeup
             WHERE w.started_at = $8::timestamptz
            RETURNING \(WorkerRow.columns(of: "w")), true, true
        )
        SELECT * FROM beat
        UNION ALL
        SELECT \(WorkerRow.columns(of: "o")), false, o.started_at = $8::timestamptz FROM webhooky.workers o WHERE id = $1 AND NOT EXISTS (SELECT FROM beat)
        """

    /// What a heartbeat found.
    enum Heartbeat {
        /// The row is this worker's, with this `started_at` (the one it had, as the row holds it).
        case written(startedAt: String)
        /// Another start of a worker with this id holds the row (nothing was written).
        case heldBy(WorkerRow)
    }

    /// Writes the heartbeat of the worker that registered with `startedAt`; returns what it
    /// found, or `nil` when the row appeared or went during the statement (the next heartbeat
    /// sees it).
    static func upsert(_ connection: Connection, id: String, host: String, pid: Int32, version: String, listening: Bool, wantsWakeup: Bool,
                       startedAt: String) throws(PostgresError) -> Heartbeat? {
        let result = try connection.query(prepared: "webhooky_worker_upsert", upsertSQL, [
            id, host, String(pid), version, listening ? "true" : "false", String(staleAfterSeconds), wantsWakeup ? "true" : "false", startedAt,
        ])
        guard let row = WorkerRow(result) else { return nil }
        if result[0, WorkerRow.columnCount] == "t" { return .written(startedAt: row.startedAt) }
        guard result[0, WorkerRow.columnCount + 1] == "t" else { return .heldBy(row) }
        // The row the statement began with was this worker's: another start committed its
        // write while the heartbeat waited for the row. Read it again to name the other.
        return try read(connection, id: id, otherThan: startedAt).map { .heldBy($0) }
    }

    /// The `started_at` a worker gives itself before it registers: this process's clock, to the
    /// microsecond, in UTC. The start-up check registers the worker with it; when the check
    /// could not run (the database out of reach) the first heartbeat that can write inserts the
    /// row with it. A registration or heartbeat whose answer was lost (the row written, the
    /// connection gone before the reply) finds the row its own the next time, where a start
    /// left to the database's `now()` would be unknown to the worker and read as another
    /// worker's.
    static func startOfOwnMaking(now: timespec = realtimeNow()) -> String {
        var seconds = now.tv_sec
        var time = tm()
        gmtime_r(&seconds, &time)
        let micro = Int(now.tv_nsec / 1_000)
        return String(format: "%04ld-%02ld-%02ld %02ld:%02ld:%02ld.%06ld+00", Int(time.tm_year) + 1900, Int(time.tm_mon) + 1, Int(time.tm_mday),
                      Int(time.tm_hour), Int(time.tm_min), Int(time.tm_sec), micro)
    }

    private static func realtimeNow() -> timespec {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return now
    }

    /// Makes the row of `id` this process's (`started_at` = `$8`, the start the worker made up
    /// for itself, see ``startOfOwnMaking(now:)``; fresh heartbeat) when it is absent, or still
    /// the row `replacing` that the caller looked at (the same start and heartbeat). A row with
    /// this host and pid is no exception: this process has written none yet, so it is another's
    /// (a container's with the same hostname and pid). Returns the `started_at` as the row
    /// holds it, which fences every later write of the row, or `nil`, writing nothing, when
    /// someone else wrote the row meanwhile. A registration whose answer was lost (committed,
    /// the connection gone before the reply) is still the worker's: its heartbeat writes with
    /// the same start.
    static let registerSQL = """
        INSERT INTO webhooky.workers AS w (id, host, pid, version, started_at, listening, wants_wakeup)
        VALUES ($1, $2, $3, $4, $8::timestamptz, $5, $5)
        ON CONFLICT (id) DO UPDATE
           SET host = excluded.host, pid = excluded.pid, version = excluded.version, started_at = excluded.started_at, heartbeat_at = now(),
               listening = excluded.listening, wants_wakeup = excluded.wants_wakeup
         WHERE w.started_at = $6::timestamptz AND w.heartbeat_at = $7::timestamptz
        RETURNING started_at
        """

    static func register(_ connection: Connection, id: String, host: String, pid: Int32, version: String, listening: Bool,
                         startedAt: String = startOfOwnMaking(), replacing previous: WorkerRow?) throws(PostgresError) -> String? {
        let result = try connection.query(registerSQL, [
            id, host, String(pid), version, listening ? "true" : "false", previous?.startedAt, previous?.heartbeatAt, startedAt,
        ])
        return result.rowCount == 1 ? result[0, 0] : nil
    }

    /// The row of `id`, if there is one (and, with `otherThan`, not of that start: compared as
    /// timestamps, since a start of the worker's own making is text in another form).
    static func read(_ connection: Connection, id: String, otherThan startedAt: String? = nil) throws(PostgresError) -> WorkerRow? {
        WorkerRow(try connection.query("""
            SELECT \(WorkerRow.columns(of: "w")) FROM webhooky.workers w
             WHERE id = $1 AND w.started_at IS DISTINCT FROM $2::timestamptz
            """, [id, startedAt]))
    }

    /// Sets `wants_wakeup` in a transaction that commits without waiting for the WAL flush
    /// (`synchronous_commit` off for this transaction only). The flag flips twice around every
    /// short busy spell, on the dispatcher's path to the next fan-out, and a flush costs a disk
    /// sync each time; other sessions see the new value at commit either way. A crash that
    /// takes the flip back is harmless: the flag decides only whether emitters send a NOTIFY,
    /// and a worker that reconnects writes it again with its heartbeat (meanwhile it polls).
    ///
    /// Only the row of the worker's own start (`started_at`) is changed: a worker whose id
    /// another took over (it finds out at its next heartbeat) must not flip the other's flag.
    static let setWantsWakeupSQL = """
        WITH flag AS (UPDATE webhooky.workers SET wants_wakeup = $2 WHERE id = $1 AND started_at = $3::timestamptz)
        SELECT pg_catalog.set_config('synchronous_commit', 'off', true)
        """

    static func setWantsWakeup(_ connection: Connection, id: String, startedAt: String, _ wants: Bool) throws(PostgresError) {
        try connection.query(prepared: "webhooky_worker_wakeup", setWantsWakeupSQL, [id, wants ? "true" : "false", startedAt])
    }

    /// Clears the bits of `webhooky.wanted_events` that no enabled webhook needs any more, so
    /// triggers whose events nobody wants stop running (sql/0008_wanted_events.sql). Never waits
    /// for a lock: while a webhook is being changed it does nothing, and the next heartbeat tries.
    static func refreshWantedEvents(_ connection: Connection) throws(PostgresError) {
        try connection.query(prepared: "webhooky_refresh_wanted", "SELECT webhooky.refresh_wanted_events()", [])
    }

    /// At a worker's stop: removes its row, if it is still the one it registered with
    /// `startedAt` (not another worker's with the same id), and tells the other workers (the
    /// NOTIFY the admin functions send, see ``Listener/eventPayload``) to look for due deliveries
    /// within 50 ms: what it gave back, or recorded due again, would otherwise wait for their
    /// next poll.
    static func removeAndHandOver(_ connection: Connection, id: String, startedAt: String) throws(PostgresError) {
        try connection.query("""
            WITH gone AS (DELETE FROM webhooky.workers WHERE id = $1 AND started_at = $2::timestamptz)
            SELECT pg_notify('webhooky', '')
            """, [id, startedAt])
    }
}

/// A row of `webhooky.workers` as seen by another process with the same worker id.
struct WorkerRow: Sendable {
    /// The columns read, in order, of the table under the name `table`.
    static func columns(of table: String) -> String {
        "\(table).host, \(table).pid, \(table).heartbeat_at, extract(epoch FROM now() - \(table).heartbeat_at), \(table).started_at"
    }
    /// How many columns ``columns(of:)`` names.
    static let columnCount = 5

    /// The host name it recorded.
    var host: String
    /// Its process id on that host.
    var pid: Int32
    /// Its last heartbeat, as PostgreSQL wrote it (compared, never parsed).
    var heartbeatAt: String
    /// Seconds since its last heartbeat, by the database's clock.
    var heartbeatAge: Double
    /// When its worker registered, by the worker host's clock (``WorkerRegistry/startOfOwnMaking(now:)``),
    /// as PostgreSQL writes it (compared, never parsed): what tells one start of a worker from
    /// another, which host and pid may not (containers).
    var startedAt: String
}

extension WorkerRow {
    /// The first row of `result` (read with ``columns(of:)``), or `nil` when it has none.
    init?(_ result: QueryResult) {
        guard result.rowCount > 0, let host = result[0, 0], let pid = result[0, 1].flatMap({ Int32($0) }),
              let heartbeatAt = result[0, 2], let age = result[0, 3].flatMap({ Double($0) }), let startedAt = result[0, 4] else { return nil }
        self.init(host: host, pid: pid, heartbeatAt: heartbeatAt, heartbeatAge: age, startedAt: startedAt)
    }
}
