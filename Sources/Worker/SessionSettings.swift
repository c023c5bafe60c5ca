import Postgres

/// What every connection of the worker sets for itself over the settings a DBA may give its
/// role or database (`ALTER ROLE ... SET`, `ALTER DATABASE ... SET`, `PGOPTIONS`), which every
/// new session gets.
enum SessionSettings {
    /// Sets `statement_timeout`, `idle_session_timeout` (PostgreSQL 14 and later) and
    /// `transaction_timeout` (17 and later; a server without one leaves it out) to 0, no limit,
    /// `default_transaction_isolation` to `read committed`, and `client_min_messages` to
    /// `notice`, for the session.
    ///
    /// An `idle_session_timeout` ends connections that wait by design: the listener's between
    /// two notifications (a NOTIFY sent meanwhile is lost, and the listener reconnects every
    /// few seconds), the recorder's between outcomes, the dispatcher's between polls. A
    /// `statement_timeout` shorter than one of the worker's statements (an outcome batch or a
    /// claim on a busy server, a prune batch of a large table) fails that statement each time
    /// it is tried: an outcome cut off that way is dropped and its delivery sent again after its
    /// lease, for ever. The worker bounds its statements itself: lock waits by `lock_timeout`,
    /// a dead link by keepalives and `tcp_user_timeout`, and a stop cancels what still runs.
    /// (`idle_in_transaction_session_timeout` is left as it is: the worker never leaves a
    /// transaction open between statements.)
    ///
    /// It also sets `default_transaction_isolation` to `read committed`: the worker's statements
    /// are written for it (claims skip locked rows, outcomes are fenced by the claim), and under
    /// `repeatable read` or `serializable` workers that share the work fail one another's
    /// claims and outcomes ("could not serialize access", SQLSTATE `40001`), which back off and
    /// are written one by one. The application's own transactions (its triggers' `emit`) keep
    /// the database's setting.
    ///
    /// And `client_min_messages` back at its default, `notice`: a role's `debug1` to `debug5`
    /// or `log` would send the worker a message for each of its statements, each a log line.
    static let overridesSQL = """
        SET client_min_messages = notice;
        SET default_transaction_isolation = 'read committed';
        SELECT set_config(name, '0', false) FROM pg_catalog.pg_settings WHERE name IN ('statement_timeout', 'idle_session_timeout', 'transaction_timeout')
        """

    /// Applies ``overridesSQL`` to `connection`.
    static func override(_ connection: Connection) throws(PostgresError) {
        try connection.execute(overridesSQL)
    }
}

extension SessionSettings {
    /// SQLSTATE `read_only_sql_transaction`: the session may not write.
    static let readOnly = "25006"

    /// Whether the session is read-only, whether the server is a standby, where the session's
    /// `default_transaction_read_only` came from (`pg_settings.source`), the login role (whose
    /// `ALTER ROLE ... SET` applies) and the database. `NO LOAD BALANCE`: Pgpool-II with load
    /// balancing would send this read-only statement to a standby, and the worker, whose writes
    /// go to the primary, would refuse a session that can write.
    static let readOnlySQL = """
        /*NO LOAD BALANCE*/
        SELECT current_setting('transaction_read_only'), pg_catalog.pg_is_in_recovery(), s.source,
               quote_ident(session_user), quote_ident(current_database())
          FROM pg_catalog.pg_settings s WHERE s.name = 'default_transaction_read_only'
        """

    /// Throws ``readOnly`` with ``readOnlyMessage(standby:source:role:database:)`` when the session
    /// may not write: the worker's every statement claims, records or prunes, so such a session
    /// would only fail them one after another (a standby, as after a failover, or
    /// `default_transaction_read_only` on the role or the database, as a DBA sets it for
    /// maintenance). A worker that finds it at the start waits for it (up to
    /// `--wait-for-database`, then status 3); a connection opened while it runs is tried again
    /// with backoff. The worker does
    /// not turn it off itself: it may be meant.
    static func requireWritable(_ connection: Connection) throws(PostgresError) {
        let row = try connection.query(readOnlySQL).rows.first ?? []
        guard row.count == 5, row[0] == "on" else { return }
        throw PostgresError(code: .statementFailed,
                            message: readOnlyMessage(standby: row[1] == "t", source: row[2] ?? "", role: row[3] ?? "", database: row[4] ?? ""),
                            sqlState: readOnly)
    }

    /// What a read-only session means and what to do, naming the setting and where it was set
    /// (`source` as `pg_settings` says it: `database`, `user`, `database user`, `client`...).
    static func readOnlyMessage(standby: Bool, source: String, role: String, database: String) -> String {
        if standby {
            return "the database server is a standby in recovery, where nothing can be written: the worker needs the primary "
                + "(with several hosts in the connection string, add target_session_attrs=read-write so that libpq picks the one that takes writes)"
        }
        let setAt: String
        let fix: String
        switch source {
        case "database":
            setAt = "for the database"
            fix = "ALTER DATABASE \(database) RESET default_transaction_read_only; or, for the worker's role alone, ALTER ROLE \(role) SET default_transaction_read_only = off;"
        case "user":
            setAt = "for the role \(role)"
            fix = "ALTER ROLE \(role) RESET default_transaction_read_only;"
        case "database user":
            setAt = "for the role \(role) in this database"
            fix = "ALTER ROLE \(role) IN DATABASE \(database) RESET default_transaction_read_only;"
        case "client":
            setAt = "by the connection (options in the connection string, or PGOPTIONS)"
            fix = "take -c default_transaction_read_only=on out of it"
        default:
            setAt = "in the server's configuration (\(source))"
            fix = "ALTER ROLE \(role) SET default_transaction_read_only = off;"
        }
        return "the worker's sessions are read-only: default_transaction_read_only is on, set \(setAt), and the worker writes its claims and outcomes. "
            + "If that is meant (maintenance), it carries on once the setting is off again; otherwise: \(fix)"
    }
}
