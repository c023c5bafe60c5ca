import CLibPQ
import Glibc

/// One connection to PostgreSQL through libpq, with blocking calls.
///
/// A connection is not thread-safe: create it on the thread that uses it and keep it there.
/// It owns its libpq handle and closes it exactly once, in `deinit`.
public final class Connection {
    private let handle: OpaquePointer
    private var noticeBox: NoticeBox?
    /// Names of the statements prepared on this connection (see ``query(prepared:_:_:)``).
    private var prepared: Set<String> = []

    /// Opens a connection.
    ///
    /// - Parameters:
    ///   - conninfo: A libpq connection string or URI (`postgresql://user@host/db`), passed to
    ///     libpq untouched. An empty string means libpq's defaults and `PG*` environment
    ///     variables (`PGHOST`, `PGDATABASE`...). Defaults it can override: keepalives (idle
    ///     30 s, then every 10 s, 3 lost), `tcp_user_timeout` 60 s, `connect_timeout` 10 s.
    ///     Always set, whatever it says: `client_encoding` UTF8, since every string here is
    ///     UTF-8 (a database in WIN1250 or LATIN2 would otherwise send its own bytes).
    ///   - applicationName: Shown in `pg_stat_activity` unless the connection string sets
    ///     `application_name`. Default `webhooky`.
    /// - Throws: ``PostgresError/Code/connectionFailed`` with libpq's message, without any
    ///   piece of the password (see ``describeConnectionFailure(_:conninfo:)``).
    public init(conninfo: String, applicationName: String = "webhooky") throws(PostgresError) {
        try Connection.checkSyntax(of: conninfo)
        // Keywords are processed in order and a later one wins, so everything placed before
        // `dbname` is a default that the DBA's connection string can override.
        // Keepalives find a dead peer while the connection is idle; tcp_user_timeout while data
        // sent to it goes unacknowledged (a failed-over server behind a network black hole),
        // which keepalives do not cover: a statement would otherwise hang for ~15 minutes.
        var keywords = ["fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"]
        var values = [applicationName, "1", "30", "10", "3", "60000"]
        if getenv("PGCONNECT_TIMEOUT") == nil {
            keywords.append("connect_timeout")
            values.append("10")
        }
        keywords.append("dbname")
        values.append(conninfo)
        // After dbname, so that it wins over the connection string, PGCLIENTENCODING and the
        // server's default (the database's encoding): text is read and sent as UTF-8.
        keywords.append("client_encoding")
        values.append("UTF8")
        let connection: OpaquePointer? = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let connection else {
            throw PostgresError(code: .connectionFailed, message: "out of memory while connecting")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Connection.describeConnectionFailure(Connection.trimmedMessage(PQerrorMessage(connection)), conninfo: conninfo)
            PQfinish(connection)
            throw PostgresError(code: .connectionFailed, message: message)
        }
        self.handle = connection
    }

    deinit {
        PQfinish(handle)
    }

    /// The names of libpq's connection options (`host`, `port`, `dbname`...), as
    /// `PQconndefaults` lists them.
    static let optionNames: Set<String> = {
        guard let options = PQconndefaults() else { return [] }
        defer { PQconninfoFree(options) }
        var names: Set<String> = []
        var index = 0
        while let name = options[index].keyword {
            names.insert(String(cString: name))
            index += 1
        }
        return names
    }()

    /// Parses the connection string without connecting, and checks the values of the options
    /// libpq would refuse when connecting (``checkOptionValues(_:)``: `sslmode=bogus`, also
    /// from `PGSSLMODE`). libpq's own message quotes the part it could not parse, which may be
    /// a password, so the message here shows quoted text as `"…"`, except an option's name
    /// (`invalid connection option "sslmod"`) and a quoted `=`.
    public static func checkSyntax(of conninfo: String) throws(PostgresError) {
        var error: UnsafeMutablePointer<CChar>? = nil
        if let options = PQconninfoParse(conninfo, &error) {
            var given: [String: String] = [:]
            var index = 0
            while let keyword = options[index].keyword {
                if let value = options[index].val { given[String(cString: keyword)] = String(cString: value) }
                index += 1
            }
            PQconninfoFree(options)
            try checkOptionValues(given)
            return
        }
        let detail = error.map { String(cString: $0) } ?? "out of memory"
        if let error { PQfreemem(error) }
        var message = "the connection string is malformed: " + describeSyntaxError(trimmed(detail))
        if let scheme = conninfo.firstRange(of: "://").map({ conninfo[..<$0.lowerBound] }),
           !["postgresql", "postgres"].contains(scheme.lowercased()), scheme.count <= 20, scheme.allSatisfy({ $0.isLetter }) {
            message += " (a URL starts with postgresql:// or postgres://, not \(scheme)://)"
        } else if !conninfo.contains("="), !conninfo.contains("://"), !conninfo.contains(where: \.isWhitespace) {
            // psql takes a bare database name; a connection string does not.
            message += " (a database name alone is written dbname=NAME, or as a URL: postgresql:///NAME)"
        }
        throw PostgresError(code: .connectionFailed, message: message)
    }

    private static func trimmed(_ text: String) -> String {
        var text = text
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }

    /// The value libpq uses for connection option `keyword` (for instance `tcp_user_timeout`),
    /// or `nil` when it has none.
    public func option(_ keyword: String) -> String? {
        guard let options = PQconninfo(handle) else { return nil }
        defer { PQconninfoFree(options) }
        var index = 0
        while let name = options[index].keyword {
            if String(cString: name) == keyword { return options[index].val.map { String(cString: $0) } }
            index += 1
        }
        return nil
    }

    /// Whether the connection is still usable as far as libpq knows.
    public var isConnected: Bool { PQstatus(handle) == CONNECTION_OK }

    /// The process id of the server backend serving this connection.
    public var backendPID: Int32 { PQbackendPID(handle) }

    /// The server version as a number, e.g. `150018` for 15.18.
    public var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// Routes the server's notices and warnings (which libpq prints to stderr by default) to
    /// `handler`; a FATAL message that comes while no statement runs goes into the error of
    /// the connection's loss instead (see ``Connection/describeLoss(_:fatalNotice:)``).
    public func onNotice(_ handler: @escaping @Sendable (String) -> Void) {
        let box = NoticeBox(handler: handler)
        noticeBox = box
        PQsetNoticeReceiver(handle, { context, result in
            guard let context, let result else { return }
            let box = Unmanaged<NoticeBox>.fromOpaque(context).takeUnretainedValue()
            // A FATAL message while no statement runs (pg_terminate_backend of an idle
            // connection) is why the server is about to close it: the loss reports it. Told by
            // the severity field, which is never translated, not by the text (a notice's own
            // detail may hold a line "FATAL: ...").
            let severity = Connection.errorField(result, "V")
            if severity == "FATAL" || severity == "PANIC", let primary = Connection.errorField(result, "M"), !primary.isEmpty {
                box.fatal = primary
            } else {
                box.handler(Connection.trimmedMessage(PQresultErrorMessage(result)))
            }
        }, Unmanaged.passUnretained(box).toOpaque())
    }

    /// Runs one or more statements with the simple query protocol and returns the result of
    /// the last one. Use this for scripts (migrations) and statements without parameters.
    @discardableResult
    public func execute(_ sql: String) throws(PostgresError) -> QueryResult {
        try check(PQexec(handle, sql))
    }

    /// Runs one statement with text parameters `$1`, `$2`... bound by the server: values are
    /// never spliced into SQL. `nil` is SQL `NULL`.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> QueryResult {
        let result = withOptionalCStringArray(parameters) { pointers in
            PQexecParams(handle, sql, Int32(parameters.count), nil, pointers, nil, nil, 0)
        }
        return try check(result)
    }

    /// Runs `sql` as the statement prepared under `name`, preparing it on first use on this
    /// connection: the server parses and plans it once, not on every call. For statements a
    /// worker runs many times a second.
    @discardableResult
    public func query(prepared name: String, _ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> QueryResult {
        if !prepared.contains(name) {
            try prepare(name, sql)
            prepared.insert(name)
        }
        return try executePrepared(name, parameters)
    }

    /// Drops every statement prepared on this connection (`DEALLOCATE ALL`); the next
    /// ``query(prepared:_:_:)`` of each prepares it again, planned with the tables as they are
    /// now.
    public func forgetPreparedStatements() throws(PostgresError) {
        try execute("DEALLOCATE ALL")
        prepared.removeAll()
    }

    /// Prepares `sql` under `name` for repeated use with ``executePrepared(_:_:)``.
    public func prepare(_ name: String, _ sql: String) throws(PostgresError) {
        _ = try check(PQprepare(handle, name, sql, 0, nil))
    }

    /// Runs the statement prepared as `name` with text parameters.
    @discardableResult
    public func executePrepared(_ name: String, _ parameters: [String?] = []) throws(PostgresError) -> QueryResult {
        let result = withOptionalCStringArray(parameters) { pointers in
            PQexecPrepared(handle, name, Int32(parameters.count), pointers, nil, nil, 0)
        }
        return try check(result)
    }

    /// A handle that cancels the statement this connection is running, from another thread
    /// (``StatementCanceller``); `nil` when libpq cannot make one (out of memory).
    public func makeCanceller() -> StatementCanceller? {
        PQgetCancel(handle).map(StatementCanceller.init(taking:))
    }

    /// Starts listening on `channel` (quoted as an identifier).
    public func listen(_ channel: String) throws(PostgresError) {
        try execute("LISTEN \(try quoteIdentifier(channel))")
    }

    /// Quotes `identifier` for use in SQL, e.g. `my "table"` → `"my ""table"""`.
    public func quoteIdentifier(_ identifier: String) throws(PostgresError) -> String {
        guard let quoted = PQescapeIdentifier(handle, identifier, identifier.utf8.count) else {
            throw PostgresError(code: .clientFailure, message: Connection.trimmedMessage(PQerrorMessage(handle)))
        }
        defer { PQfreemem(quoted) }
        return String(cString: quoted)
    }

    /// Quotes `text` as an SQL string constant by libpq's rules for this connection (a quote
    /// doubled; with a backslash, an `E'...'` constant whatever `standard_conforming_strings`
    /// says), for the rare statement that must name a value as a constant rather than bind it.
    public func quoteLiteral(_ text: String) throws(PostgresError) -> String {
        guard let quoted = PQescapeLiteral(handle, text, text.utf8.count) else {
            throw PostgresError(code: .clientFailure, message: Connection.trimmedMessage(PQerrorMessage(handle)))
        }
        defer { PQfreemem(quoted) }
        return String(cString: quoted)
    }

    /// Notifications that have already arrived, without waiting.
    public func pendingNotifications() throws(PostgresError) -> [Notification] {
        guard PQconsumeInput(handle) == 1 else { throw connectionError() }
        return drainNotifications()
    }

    /// Waits up to `timeout` for notifications and returns those that arrived (possibly none).
    ///
    /// - Throws: ``PostgresError/Code/connectionLost`` when the connection breaks while waiting.
    public func waitForNotifications(timeout: Duration) throws(PostgresError) -> [Notification] {
        let ready = drainNotifications()
        if !ready.isEmpty { return ready }
        let socket = PQsocket(handle)
        guard socket >= 0 else { throw connectionError() }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let status = poll(&descriptor, 1, max(0, milliseconds))
        if status < 0 && errno != EINTR {
            throw PostgresError(code: .clientFailure, message: "poll failed: errno \(errno)")
        }
        return try pendingNotifications()
    }

    private func drainNotifications() -> [Notification] {
        var notifications: [Notification] = []
        while let notify = PQnotifies(handle) {
            let value = notify.pointee
            notifications.append(Notification(
                channel: String(cString: value.relname),
                payload: value.extra.map { String(cString: $0) } ?? "",
                senderPID: value.be_pid
            ))
            PQfreemem(notify)
        }
        return notifications
    }

    /// Turns a libpq result into a ``QueryResult`` or a ``PostgresError``.
    private func check(_ result: OpaquePointer?) throws(PostgresError) -> QueryResult {
        guard let result else { throw connectionError() }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_COPY_IN, PGRES_COPY_OUT:
            return QueryResult(taking: result, keeping: noticeBox)
        default:
            let error = statementError(result)
            PQclear(result)
            throw error
        }
    }

    /// A field of an error or notice result: libpq's PG_DIAG_* codes are character constants,
    /// which Swift does not import (`C` the SQLSTATE, `M` the message, `V` the severity...).
    private static func errorField(_ result: OpaquePointer, _ code: Unicode.Scalar) -> String? {
        PQresultErrorField(result, Int32(code.value)).map { String(cString: $0) }
    }

    private func statementError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: Unicode.Scalar) -> String? { Connection.errorField(result, code) }
        let sqlState = field("C")
        let primary = field("M") ?? Connection.trimmedMessage(PQresultErrorMessage(result))
        let lost = PQstatus(handle) != CONNECTION_OK
        if lost && sqlState == nil { return connectionError() }
        return PostgresError(
            code: .statementFailed,
            message: primary.isEmpty ? Connection.trimmedMessage(PQerrorMessage(handle)) : primary,
            sqlState: sqlState,
            detail: field("D"),
            hint: field("H")
        )
    }

    /// The error of a connection that broke (or of a client failure), with the reason the
    /// server gave before it closed the connection, if any (``describeLoss(_:fatalNotice:)``).
    private func connectionError() -> PostgresError {
        let message = Connection.trimmedMessage(PQerrorMessage(handle))
        guard PQstatus(handle) != CONNECTION_OK else {
            return PostgresError(code: .clientFailure, message: message.isEmpty ? "connection to the server was lost" : message)
        }
        let described = Connection.describeLoss(message, fatalNotice: noticeBox?.fatal)
        return PostgresError(code: .connectionLost, message: described.isEmpty ? "connection to the server was lost" : described)
    }

    static func trimmedMessage(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "" }
        var text = String(cString: message)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }
}

/// Asks the server to cancel the statement a ``Connection`` is running: the call that runs it
/// then throws ``PostgresError/Code/statementFailed`` with SQLSTATE `57014`; a connection
/// running nothing is left alone. For a thread that must not wait for another's statement
/// (one waiting for a lock someone holds) for ever. Stays usable after its connection closes.
///
/// `@unchecked Sendable`: libpq's `PQcancel` only reads the cancel object and may be called
/// from any thread, at any time (even a signal handler); the object is freed once, in `deinit`,
/// when no call can be running.
public final class StatementCanceller: @unchecked Sendable {
    private let handle: OpaquePointer

    init(taking handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        PQfreeCancel(handle)
    }

    /// Sends the cancel request (a connection of its own, opened and closed at once); returns
    /// whether it could be sent, which says nothing of whether a statement was running.
    @discardableResult
    public func cancel() -> Bool {
        var message = [CChar](repeating: 0, count: 256)
        return PQcancel(handle, &message, Int32(message.count)) == 1
    }
}

/// A `NOTIFY` received on a channel this connection listens to.
public struct Notification: Sendable, Hashable {
    public var channel: String
    public var payload: String
    /// The backend that sent it.
    public var senderPID: Int32
}

/// Holds the notice handler for libpq's C callback; retained by its ``Connection``.
private final class NoticeBox {
    let handler: @Sendable (String) -> Void
    /// The text of the last FATAL message the server sent while no statement ran (it closes
    /// the connection after it), such as `terminating connection due to administrator command`.
    var fatal: String?
    init(handler: @escaping @Sendable (String) -> Void) { self.handler = handler }
}
