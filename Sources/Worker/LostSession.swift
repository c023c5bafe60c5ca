import Glibc
import Log
import Postgres

/// The server process behind one database session: its pid, and its start, which tells it
/// apart from a later process that got the same pid.
struct Backend: Sendable, Equatable {
    /// `pg_backend_pid()`.
    let pid: Int32
    /// `pg_stat_activity.backend_start`, as the session's text (DateStyle ISO: it carries its
    /// offset); only digits, `-`, `:`, `.`, `+` and spaces (see ``LostSession/backend(of:)``).
    let startedAt: String
    /// The session's `application_name` (`webhooky worker`, `webhooky recorder`, unless the
    /// connection string sets its own): a process a pooler handed to another of the worker's
    /// connections since is not taken for this one.
    let applicationName: String
}

/// A connection can break between the worker and the server while the server's process goes
/// on: a TCP proxy or load balancer that restarts, a network that drops the worker's side only.
/// The statement it was running then commits later, unseen, and what the worker does on a new
/// session meanwhile reads the database as it was before it: an outcome looked up, found
/// unwritten and written again is recorded twice (a second `attempts` row, a failure counted
/// twice towards the webhook's disabling). So before a new session does anything, the lost
/// session's process is ended, if it is still in a statement or a transaction, and waited for:
/// once it is gone its transaction has committed or rolled back, and every snapshot taken after
/// sees which.
///
/// Not behind a pooler that hands out server connections of its own (PgBouncer: the pid it
/// tells the client is not the server process's): the protection is off there, since the lost
/// session's process may serve another client by now.
enum LostSession {
    /// How long a new session waits for the lost session's process to end: 2 s (a terminated
    /// process normally ends within milliseconds). Past it the new session is given up, as a
    /// lost connection, and the worker tries again after its backoff.
    static let patience: Duration = .seconds(2)

    /// The process behind `connection`'s session, or `nil` when it cannot be known for sure:
    /// the pid libpq was told at the start (`PQbackendPID`) is not the server's (a pooler made
    /// it up), or the session may not read its own row of `pg_stat_activity` (a role that
    /// switched to another with `ALTER ROLE ... SET role`).
    static func backend(of connection: Connection) throws(PostgresError) -> Backend? {
        let result: QueryResult
        do {
            result = try connection.query("""
                /*NO LOAD BALANCE*/
                SELECT pid::text, backend_start::text, application_name FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid()
                """)
        } catch where !error.isTransient && connection.isConnected {
            return nil
        }
        // The start is written into ``end(_:from:logger:patience:)``'s statement as a constant:
        // only a timestamp's characters are taken.
        guard result.rowCount == 1, let pid = result[0, 0].flatMap({ Int32($0) }), pid == connection.backendPID,
              let startedAt = result[0, 1], !startedAt.isEmpty, startedAt.allSatisfy({ $0.isASCII && ($0.isNumber || "-:.+ ".contains($0)) })
        else { return nil }
        return Backend(pid: pid, startedAt: startedAt, applicationName: result[0, 2] ?? "")
    }

    /// Ends `lost`'s process if it is still in a statement or a transaction (an idle one has
    /// nothing left to commit), and waits for it to be gone for at most ``patience``; throws
    /// a lost connection's error past it (see ``patience``). A role that may not end it (only
    /// a server that forbids a role to end its own processes) is logged, and the worker goes
    /// on as it did before this check. Returns whether the process was ended.
    @discardableResult
    static func end(_ lost: Backend, from connection: Connection, logger: Logger, patience: Duration = LostSession.patience) throws(PostgresError) -> Bool {
        // One statement, the process named by constants, in the simple protocol: Pgpool-II takes
        // any other call of pg_terminate_backend for the server's shutdown, and fails the node
        // over; and no other process can take the pid between a look and the call. Never this
        // session's own process: a proxy may hand the lost session's server connection, once
        // idle, to the new one.
        let lostProcess = """
            FROM pg_catalog.pg_stat_activity
             WHERE pid = \(lost.pid) AND backend_start = '\(lost.startedAt)'::timestamptz AND pid <> pg_catalog.pg_backend_pid()
            """
        let found: QueryResult
        do {
            found = try connection.execute("""
                /*NO LOAD BALANCE*/
                SELECT state, wait_event_type, pg_catalog.pg_terminate_backend(\(lost.pid)) \(lostProcess)
                   AND state <> 'idle' AND application_name = \(try connection.quoteLiteral(lost.applicationName))
                """)
        } catch where error.sqlState == "42501" {
            logger.warning("cannot end the lost session's server process; a statement it still runs may commit after this session reads", [
                "pid": lost.pid, "error": error.message,
            ])
            return false
        }
        guard found.rowCount > 0 else { return false }
        let started = ContinuousClock.now
        while try connection.execute("/*NO LOAD BALANCE*/ SELECT 1 \(lostProcess)").rowCount > 0 {
            guard ContinuousClock.now < started + patience else {
                throw PostgresError(code: .connectionLost, message: """
                    the lost session's server process (pid \(lost.pid)) did not end within \(patience.shortDescription) \
                    of pg_terminate_backend; trying again before this session writes anything
                    """)
            }
            usleep(5_000)
        }
        logger.notice("ended the lost session's server process, which was still running, before going on", [
            "pid": lost.pid, "state": found[0, 0] ?? "", "wait_event_type": found[0, 1] ?? "",
            "waited_ms": DeliveryStore.milliseconds(ContinuousClock.now - started),
        ])
        return true
    }
}
