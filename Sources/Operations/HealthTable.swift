public import Postgres

/// One row of `webhooky.health`: a webhook's backlog, outcomes, failures and timings.
public struct HealthRow: Sendable, Hashable {
    /// `webhook_id`.
    public var webhookID: Int64
    /// The webhook's name (may be empty).
    public var name: String
    /// The event it fires on.
    public var event: String
    /// Whether it is enabled.
    public var enabled: Bool
    /// Why Webhooky disabled it, if it did.
    public var disabledReason: String?
    /// Deliveries waiting (pending, and events not yet fanned out).
    public var pending: Int
    /// Deliveries being sent right now.
    public var sending: Int
    /// How long the oldest waiting delivery has waited, in seconds; `nil` when none waits.
    public var oldestPendingSeconds: Double?
    /// Attempts answered 2xx in the last 24 hours.
    public var succeeded24h: Int
    /// Deliveries that ended dead in the last 24 hours.
    public var dead24h: Int
    /// Failed attempts since the last success.
    public var consecutiveFailures: Int
    /// How long the webhook has been failing (since the first of those failed attempts), in
    /// seconds; `nil` when it is not failing.
    public var failingSeconds: Double?
    /// The last attempt's HTTP status.
    public var lastStatus: Int?
    /// The last attempt's error.
    public var lastError: String?
    /// The last attempt's error code (`timeout`, `connect_failure`, ...; see
    /// `webhooky.attempts.error_code`); `nil` when it was answered with a status.
    public var lastErrorCode: String?
    /// Median attempt duration over the last 24 hours, in milliseconds.
    public var p50Milliseconds: Double?
    /// 95th percentile attempt duration over the last 24 hours, in milliseconds.
    public var p95Milliseconds: Double?

    /// A row with every field given; counts default to 0 and the rest to `nil`.
    public init(webhookID: Int64, name: String, event: String, enabled: Bool, disabledReason: String? = nil, pending: Int = 0,
                sending: Int = 0, oldestPendingSeconds: Double? = nil, succeeded24h: Int = 0, dead24h: Int = 0,
                consecutiveFailures: Int = 0, failingSeconds: Double? = nil, lastStatus: Int? = nil, lastError: String? = nil, lastErrorCode: String? = nil,
                p50Milliseconds: Double? = nil, p95Milliseconds: Double? = nil) {
        self.webhookID = webhookID
        self.name = name
        self.event = event
        self.enabled = enabled
        self.disabledReason = disabledReason
        self.pending = pending
        self.sending = sending
        self.oldestPendingSeconds = oldestPendingSeconds
        self.succeeded24h = succeeded24h
        self.dead24h = dead24h
        self.consecutiveFailures = consecutiveFailures
        self.failingSeconds = failingSeconds
        self.lastStatus = lastStatus
        self.lastError = lastError
        self.lastErrorCode = lastErrorCode
        self.p50Milliseconds = p50Milliseconds
        self.p95Milliseconds = p95Milliseconds
    }
}

/// `webhooky status`: the `webhooky.health` view as a compact table.
public enum HealthTable {
    /// Every webhook's health row, by id.
    public static func load(_ connection: Connection) throws(PostgresError) -> [HealthRow] {
        let result = try connection.query("""
            SELECT webhook_id, name, event, enabled, disabled_reason, pending, sending, extract(epoch FROM oldest_pending_age),
                   succeeded_24h, dead_24h, consecutive_failures, last_status, last_error, p50_ms, p95_ms,
                   last_error_code, extract(epoch FROM now() - failing_since)
              FROM webhooky.health ORDER BY webhook_id
            """)
        return (0..<result.rowCount).compactMap { row in
            guard let id = result[row, 0].flatMap({ Int64($0) }) else { return nil }
            func int(_ column: Int) -> Int { result[row, column].flatMap { Int($0) } ?? 0 }
            return HealthRow(
                webhookID: id, name: result[row, 1] ?? "", event: result[row, 2] ?? "", enabled: result[row, 3] == "t",
                disabledReason: result[row, 4], pending: int(5), sending: int(6), oldestPendingSeconds: result[row, 7].flatMap { Double($0) },
                succeeded24h: int(8), dead24h: int(9), consecutiveFailures: int(10),
                failingSeconds: result[row, 16].flatMap { Double($0) }, lastStatus: result[row, 11].flatMap { Int($0) },
                lastError: result[row, 12], lastErrorCode: result[row, 15], p50Milliseconds: result[row, 13].flatMap { Double($0) },
                p95Milliseconds: result[row, 14].flatMap { Double($0) })
        }
    }

    /// The rows as an aligned table: id, name, enabled, pending, oldest, ok and dead in 24 h,
    /// failures in a row and for how long, last status or error (shortened), p50 and p95 in ms, why disabled.
    /// With no rows, a sentence saying how to add a webhook.
    public static func text(_ rows: [HealthRow], style: TerminalStyle) -> String {
        guard !rows.isEmpty else {
            return "no webhooks yet: add one with INSERT INTO webhooky.webhooks (name, event, url) VALUES (...); (see docs/admin.md)"
        }
        var table = TextTable(columns: [
            .init("ID", rightAligned: true), .init("NAME"), .init("ENABLED"), .init("PENDING", rightAligned: true),
            .init("OLDEST", rightAligned: true), .init("OK 24H", rightAligned: true), .init("DEAD 24H", rightAligned: true),
            .init("FAILS", rightAligned: true), .init("LAST"), .init("P50 MS", rightAligned: true), .init("P95 MS", rightAligned: true),
            .init("DISABLED BECAUSE"),
        ])
        for row in rows {
            table.rows.append([
                String(row.webhookID), TextFormatting.shortened(row.name, to: 28), row.enabled ? "yes" : "no",
                TextFormatting.count(row.pending + row.sending),
                row.oldestPendingSeconds.map { TextFormatting.duration(seconds: $0) } ?? "-",
                TextFormatting.count(row.succeeded24h), TextFormatting.count(row.dead24h), failures(row),
                lastOutcome(row), row.p50Milliseconds.map { TextFormatting.formatted($0, decimals: 1) } ?? "-",
                row.p95Milliseconds.map { TextFormatting.formatted($0, decimals: 1) } ?? "-",
                row.disabledReason.map { TextFormatting.shortened($0, to: 60) } ?? "",
            ])
        }
        return table.render { index, column, text in
            let row = rows[index]
            switch column {
            case 2: return row.enabled ? text : style.warning(text)
            case 6: return row.dead24h > 0 ? style.bad(text) : text
            case 7: return row.consecutiveFailures > 0 ? style.warning(text) : text
            case 8:
                if let status = row.lastStatus, (200...299).contains(status) { return style.good(text) }
                return row.lastStatus == nil && row.lastError == nil ? text : style.warning(text)
            case 11: return row.disabledReason == nil ? text : style.bad(text)
            default: return text
            }
        }
    }

    /// Failed attempts in a row, and for how long: `104 for 1m 4s` (`0` when the webhook is not failing).
    static func failures(_ row: HealthRow) -> String {
        let count = TextFormatting.count(row.consecutiveFailures)
        guard row.consecutiveFailures > 0, let seconds = row.failingSeconds else { return count }
        return "\(count) for \(TextFormatting.duration(seconds: seconds))"
    }

    /// The last attempt in a few words: `200`, `503`, or the error's code in brackets and the
    /// start of the error (`[connect_failure] hooks.example.com port 443`, see ``brief(_:)``).
    static func lastOutcome(_ row: HealthRow) -> String {
        switch (row.lastStatus, row.lastError) {
        case (nil, nil): row.lastErrorCode.map { TextFormatting.coded(nil, code: $0) } ?? "-"
        case (let status?, nil): String(status)
        case (let status?, let error?):
            lastOutcome(status: status, error: error)
        // Without its code (attempts recorded before migration 0054) the words are all there is.
        case (nil, let error?):
            row.lastErrorCode == nil ? TextFormatting.shortened(error, to: 56) : fitted(brief(error), code: row.lastErrorCode, to: 56)
        }
    }

    /// `[code] brief` in `width` columns; a host too long for them is cut in its middle, so that
    /// its port and the reason after it stay: `[connect_failure] hooks.example-…-name.com port 443`.
    static func fitted(_ brief: String, code: String?, to width: Int) -> String {
        let whole = TextFormatting.coded(brief, code: code)
        guard TextFormatting.width(whole) > width, let port = brief.firstRange(of: " port ") else { return TextFormatting.shortened(whole, to: width) }
        let host = String(brief[..<port.lowerBound])
        let rest = String(brief[port.lowerBound...])
        let room = width - TextFormatting.width(TextFormatting.coded("", code: code)) - TextFormatting.width(rest) - 1
        guard room >= 8, host.count > room else { return TextFormatting.shortened(whole, to: width) }
        let cut = String(host.prefix((room + 1) / 2)) + "…" + String(host.suffix(room / 2))
        return TextFormatting.shortened(TextFormatting.coded(cut + rest, code: code), to: width)
    }

    /// libcurl's connection errors without the words their code already says, so that the host
    /// and port fit: `Failed to connect to hooks.example.com port 443 after 3 ms: Couldn't
    /// connect to server` is `hooks.example.com port 443`, and `Could not resolve host:
    /// hooks.example.com` is `hooks.example.com`. A reason other than libcurl's generic one is
    /// kept (`hooks.example.com port 443: Timeout was reached`); other errors are as recorded.
    static func brief(_ error: String) -> String {
        let resolve = "Could not resolve host: "
        if error.hasPrefix(resolve) { return String(error.dropFirst(resolve.count)) }
        let connect = "Failed to connect to "
        guard error.hasPrefix(connect), let after = error.firstRange(of: " after ") else { return error }
        let target = error[error.index(error.startIndex, offsetBy: connect.count)..<after.lowerBound]
        guard let colon = error[after.upperBound...].firstRange(of: ": ") else { return String(target) }
        let reason = error[colon.upperBound...]
        return reason == "Couldn't connect to server" ? String(target) : "\(target): \(reason)"
    }

    /// `503`, or `503 (gave up after 12 attempts)`: the status, then what the error adds to it.
    static func lastOutcome(status: Int, error: String) -> String {
        var rest = Substring(error)
        if rest.hasPrefix("HTTP \(status)") { rest = rest.dropFirst("HTTP \(status)".count) }
        while let first = rest.first, first == " " || first == ":" { rest = rest.dropFirst() }
        return rest.isEmpty ? String(status) : "\(status) " + TextFormatting.shortened(String(rest), to: 36)
    }
}
