import Glibc
import Log
import Postgres

/// The server process behind one database session: its pid, and its start, which tells it
/// apart from a later process that got the same pid.
struct Backend: Sendable, Equatable {
    /// `pg_backend_pid()`, as text.
    let pid: String
    /// `pg_stat_activity.backend_start`, as the session's text (DateStyle ISO: it carries its offset).
    let startedAt: String
}

/// A connection can break between the worker and the server while the server's process goes
/// on: a proxy or load balancer that restarts, a network that drops the worker's side only.
/// The statement it was running then commits later, unseen, and what the worker does on a new
/// session meanwhile reads the database as it was before it: an outcome looked up, found
/// unwritten and written again is recorded twice (a second `attempts` row, a failure counted
/// twice towards the webhook's disabling). So before a new session does anything, the lost
/// session's process is ended, if it still runs, and waited for: once it is gone its
/// transaction has committed or rolled back, and every snapshot taken after sees which.
enum LostSession {
    /// The process behind `connection`'s session (not libpq's `PQbackendPID`, which a pooling
    /// proxy makes up).
    static func backend(of connection: Connection) throws(PostgresError) -> Backend {
        let result = try connection.query("SELECT pid::text, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        guard result.rowCount == 1, let pid = result[0, 0], let startedAt = result[0, 1] else {
            throw PostgresError(code: .statementFailed, message: "pg_stat_activity shows no row for this session's own process")
        }
        return Backend(pid: pid, startedAt: startedAt)
    }

    /// Ends `lost`'s process if it still runs, and waits for it to be gone, for at most
    /// `patience` (default 10 s; a terminated process normally ends within milliseconds).
    /// A role that may not end it (it is the same role as the worker's, so this takes a server
    /// that forbids it), or a process that outlives the patience, is logged, and the worker goes
    /// on as it did before this check. Returns whether the process was still running.
    @discardableResult
    static func end(_ lost: Backend, from connection: Connection, logger: Logger, patience: Duration = .seconds(10)) throws(PostgresError) -> Bool {
        // Never this session's own process: a pooling proxy in session mode may hand the lost
        // session's server connection, once idle, to the new one.
        let match = "FROM pg_stat_activity WHERE pid = $1::integer AND backend_start = $2::timestamptz AND pid <> pg_backend_pid()"
        let found: QueryResult
        do {
            found = try connection.query("SELECT pg_terminate_backend(pid), state, wait_event_type \(match)", [lost.pid, lost.startedAt])
        } catch let error where error.sqlState == "42501" {
            logger.warning("cannot end the lost session's server process; a statement it still runs may commit after this session reads", [
                "pid": lost.pid, "error": error.message,
            ])
            return true
        }
        guard found.rowCount > 0 else { return false }
        let started = ContinuousClock.now
        while ContinuousClock.now < started + patience {
            if try connection.query("SELECT count(*) \(match)", [lost.pid, lost.startedAt]).scalar == "0" {
                logger.notice("ended the lost session's server process, which was still running, before going on", [
                    "pid": lost.pid, "state": found[0, 1] ?? "", "wait_event_type": found[0, 2] ?? "",
                    "waited_ms": DeliveryStore.milliseconds(ContinuousClock.now - started),
                ])
                return true
            }
            usleep(10_000)
        }
        logger.warning("the lost session's server process did not end; going on", [
            "pid": lost.pid, "waited_ms": DeliveryStore.milliseconds(patience),
        ])
        return true
    }
}
