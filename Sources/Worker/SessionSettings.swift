import Postgres

/// What every connection of the worker sets for itself over the settings a DBA may give its
/// role or database (`ALTER ROLE ... SET`, `ALTER DATABASE ... SET`, `PGOPTIONS`), which every
/// new session gets.
enum SessionSettings {
    /// Sets `statement_timeout` and `idle_session_timeout` (PostgreSQL 14 and later; on 13 it
    /// does not exist and is left out) to 0, no limit, for the session.
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
    static let overridesSQL = """
        SELECT set_config(name, '0', false) FROM pg_catalog.pg_settings WHERE name IN ('statement_timeout', 'idle_session_timeout')
        """

    /// Applies ``overridesSQL`` to `connection`.
    static func override(_ connection: Connection) throws(PostgresError) {
        try connection.execute(overridesSQL)
    }
}
