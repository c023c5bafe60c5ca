/// An error from PostgreSQL or from libpq.
///
/// Messages come from the server or libpq and never contain the connection string, so a
/// password in it cannot leak through an error.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; new codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The connection could not be established (server down, wrong host, bad password...).
        public static let connectionFailed = Code(rawValue: "connection_failed")
        /// The connection broke; the statement's outcome is unknown. Reconnect and retry.
        public static let connectionLost = Code(rawValue: "connection_lost")
        /// The server rejected a statement; ``PostgresError/sqlState`` says why.
        public static let statementFailed = Code(rawValue: "statement_failed")
        /// libpq could not send or read (out of memory, protocol error).
        public static let clientFailure = Code(rawValue: "client_failure")
    }

    public var code: Code
    /// The primary message, e.g. `relation "x" does not exist`.
    public var message: String
    /// The five-character SQLSTATE, e.g. `23505`, when the server sent one.
    public var sqlState: String?
    /// The server's DETAIL line, if any.
    public var detail: String?
    /// The server's HINT line, if any.
    public var hint: String?

    public init(code: Code, message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
    }

    /// `message (SQLSTATE x)`, then the detail and hint on their own lines.
    public var description: String {
        var text = message
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += "\nDETAIL: \(detail)" }
        if let hint { text += "\nHINT: \(hint)" }
        return text
    }

    /// True when retrying on a new connection may succeed (the connection broke or could not
    /// be made, the server is shutting down, restarting or out of connections, or it is a
    /// read-only standby, as after a failover, where a new connection may reach the primary).
    public var isTransient: Bool {
        if code == .connectionLost || code == .connectionFailed { return true }
        guard let sqlState else { return false }
        // Class 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now;
        // 53300: too many connections; 25006: read-only transaction (a standby).
        return sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03", "53300", "25006"].contains(sqlState)
    }
}
