public import Postgres

/// One attempt as `webhooky tail` shows it: when, which webhook and delivery, what came back,
/// how long it took, and what became of the delivery.
public struct AttemptRow: Sendable, Hashable {
    /// What the attempt led to.
    public enum Outcome: Sendable, Hashable {
        /// The endpoint answered 2xx.
        case succeeded
        /// It failed; the delivery is pending, the next attempt due this many seconds after the
        /// attempt ended, as the worker chose (0 once it is due, `nil` when unknown).
        case retrying(inSeconds: Double?)
        /// It failed, and the delivery has been tried again since.
        case retried
        /// It failed and the delivery waits because its webhook is disabled.
        case held
        /// Webhooky gave up: the delivery is dead.
        case dead
        /// The delivery no longer exists (deleted with its history).
        case gone
    }

    /// `attempts.id`.
    public var id: Int64
    /// When the attempt started, in seconds since 1970.
    public var startedAt: Double
    /// The webhook's id, when known.
    public var webhookID: Int64?
    /// The webhook's name (`nil` when it was deleted).
    public var webhookName: String?
    /// `attempts.delivery_id`.
    public var deliveryID: Int64
    /// The attempt's number within its delivery, from 1.
    public var attempt: Int
    /// The HTTP status, when there was a response.
    public var status: Int?
    /// Why the attempt failed, as recorded.
    public var error: String?
    /// Why the attempt failed, as a code (`attempts.error_code`: `timeout`, `connect_failure`,
    /// ...); `nil` when the endpoint answered with a status, or for an attempt recorded before
    /// schema version 54.
    public var errorCode: String?
    /// How long the attempt took, in milliseconds.
    public var durationMilliseconds: Double
    /// What became of the delivery.
    public var outcome: Outcome
    /// Whether it was a test delivery (`webhooky.send_test`).
    public var isTest: Bool

    /// An attempt with every field given.
    public init(id: Int64, startedAt: Double, webhookID: Int64?, webhookName: String?, deliveryID: Int64, attempt: Int,
                status: Int?, error: String?, errorCode: String? = nil, durationMilliseconds: Double, outcome: Outcome, isTest: Bool) {
        self.id = id
        self.startedAt = startedAt
        self.webhookID = webhookID
        self.webhookName = webhookName
        self.deliveryID = deliveryID
        self.attempt = attempt
        self.status = status
        self.error = error
        self.errorCode = errorCode
        self.durationMilliseconds = durationMilliseconds
        self.outcome = outcome
        self.isTest = isTest
    }

    /// One line for a terminal: time, webhook, delivery, attempt, status or `error`, duration,
    /// outcome, then the error's code in brackets (`[timeout]`) and the error when it says more
    /// than the status. `today` (seconds since 1970) decides whether the date is shown.
    public func line(style: TerminalStyle, today: Double) -> String {
        let time = TextFormatting.clockTime(startedAt, today: today)
        let webhook = TextFormatting.shortened(
            webhookID.map { "webhook \($0)" + (webhookName.map { $0.isEmpty ? "" : " \"\($0)\"" } ?? " (deleted)") } ?? "webhook ?", to: 34)
        let result = status.map(String.init) ?? "error"
        var text = style.faint(time) + "  " + TextFormatting.padded(webhook, to: 34) + "  "
            + TextFormatting.padded("delivery \(deliveryID)", to: 14) + "  " + TextFormatting.padded("attempt \(attempt)", to: 10) + "  "
        let paddedResult = TextFormatting.padded(result, to: 5)
        let paddedDuration = TextFormatting.padded(TextFormatting.milliseconds(durationMilliseconds), to: 8, right: true)
        switch outcome {
        case .succeeded: text += style.good(paddedResult)
        case .dead: text += style.bad(paddedResult)
        default: text += style.warning(paddedResult)
        }
        text += "  " + paddedDuration + "  " + outcomeText(style: style)
        if isTest { text += " " + style.faint("(test)") }
        let message = error.flatMap { $0.isEmpty || $0 == status.map({ "HTTP \($0)" }) ? nil : TextFormatting.shortened($0, to: 120) }
        let detail = TextFormatting.coded(message, code: errorCode)
        if !detail.isEmpty { text += "  " + detail }
        return text
    }

    private func outcomeText(style: TerminalStyle) -> String {
        switch outcome {
        case .succeeded: style.good("succeeded")
        case .retrying(let seconds?) where seconds > 0: style.warning("retry in \(TextFormatting.duration(seconds: seconds))")
        case .retrying: style.warning("retry due")
        case .retried: style.warning("retried")
        case .held: style.warning("waits: webhook disabled")
        case .dead: style.bad("dead")
        case .gone: style.faint("delivery deleted")
        }
    }
}

/// The attempts `webhooky tail` shows: first the recent ones, then each new one once, as they
/// are recorded, optionally of one webhook. See ``AttemptWindow`` for how attempts that commit
/// out of id order are still shown.
public struct AttemptFeed: Sendable {
    /// Only this webhook's attempts; `nil` for all.
    public let webhookID: Int64?
    /// The most attempts shown from history (with `since`). Default 10,000.
    public var historyLimit = 10_000
    /// Whether the last ``start(_:since:last:now:)`` left out older attempts of its `since`
    /// because there were more than ``historyLimit``.
    public private(set) var historyTruncated = false
    private var window: AttemptWindow?

    /// A feed of every webhook's attempts, or of webhook `webhookID`'s.
    public init(webhookID: Int64?) {
        self.webhookID = webhookID
    }

    private var webhookParameter: String? { webhookID.map(String.init) }

    /// Starts the feed and returns the attempts to show first, oldest first: those started
    /// within `since`, or else the last `last`. Everything already recorded counts as shown,
    /// in one snapshot, so the next ``poll(_:now:)`` returns only what is new.
    ///
    /// - Parameter now: Monotonic time in seconds (for the window).
    public mutating func start(_ connection: Connection, since: Duration?, last: Int = 20, now: Double) throws(PostgresError) -> [AttemptRow] {
        try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            let highest = Int64(try connection.query("SELECT coalesce(max(id), 0) FROM webhooky.attempts").scalar ?? "0") ?? 0
            var window = AttemptWindow(highest: highest, now: now)
            var history: [AttemptRow]
            if let since {
                let milliseconds = since.components.seconds * 1000 + since.components.attoseconds / 1_000_000_000_000_000
                // One more than is shown, to know whether older ones were left out.
                history = try AttemptFeed.rows(connection.query(
                    AttemptFeed.selectSQL + " WHERE a.started_at >= now() - $2 * interval '1 millisecond' AND ($1::bigint IS NULL OR a.webhook_id = $1) ORDER BY a.id DESC LIMIT $3",
                    [webhookParameter, String(milliseconds), String(historyLimit + 1)]))
                historyTruncated = history.count > historyLimit
                history = Array(history.prefix(historyLimit))
            } else {
                history = try AttemptFeed.rows(connection.query(
                    AttemptFeed.selectSQL + " WHERE ($1::bigint IS NULL OR a.webhook_id = $1) ORDER BY a.id DESC LIMIT $2",
                    [webhookParameter, String(last)]))
            }
            window.markShown(try ids(connection, above: window.floor(at: now)))
            window.markShown(history.map(\.id))
            try connection.execute("COMMIT")
            self.window = window
            return history.reversed()
        } catch {
            _ = try? connection.execute("ROLLBACK")
            throw error
        }
    }

    /// The attempts recorded since the last call (or since ``start(_:since:last:now:)``) that
    /// were not shown yet, in id order.
    ///
    /// - Parameter now: Monotonic time in seconds.
    public mutating func poll(_ connection: Connection, now: Double) throws(PostgresError) -> [AttemptRow] {
        guard var window else { return try start(connection, since: nil, last: 0, now: now) }
        let fresh = window.admit(try ids(connection, above: window.floor(at: now)), at: now)
        self.window = window
        guard !fresh.isEmpty else { return [] }
        return try AttemptFeed.rows(connection.query(AttemptFeed.selectSQL + " WHERE a.id = ANY($1::bigint[]) ORDER BY a.id",
                                                     ["{" + fresh.map(String.init).joined(separator: ",") + "}"]))
    }

    private func ids(_ connection: Connection, above floor: Int64) throws(PostgresError) -> [Int64] {
        try connection.query("SELECT id FROM webhooky.attempts WHERE id > $1 AND ($2::bigint IS NULL OR webhook_id = $2)",
                             [String(floor), webhookParameter])
            .rows.compactMap { $0[0].flatMap { Int64($0) } }
    }

    /// An attempt with its delivery and webhook, and what became of the delivery.
    static let selectSQL = """
        SELECT a.id, extract(epoch FROM a.started_at), coalesce(a.webhook_id, d.webhook_id), w.name, a.delivery_id, a.attempt,
               a.status, a.error, a.duration_ms,
               CASE WHEN a.status BETWEEN 200 AND 299 THEN 'succeeded'
                    WHEN d.id IS NULL THEN 'gone'
                    WHEN a.attempt < d.attempts OR d.state = 'sending' THEN 'retried'
                    WHEN d.state = 'dead' THEN 'dead'
                    WHEN d.state = 'pending' AND NOT coalesce(w.enabled, true) AND NOT d.is_test THEN 'held'
                    WHEN d.state = 'pending' THEN 'retrying'
                    ELSE 'retried' END,
               -- The delay the worker chose, from the attempt's end to the next, while that is
               -- still ahead (not the time left now, which for an attempt shown from history is
               -- less); 0 once it is due.
               CASE WHEN isfinite(d.next_attempt_at) THEN
                   CASE WHEN d.next_attempt_at > now()
                        THEN extract(epoch FROM d.next_attempt_at - (a.started_at + a.duration_ms * interval '1 millisecond'))
                        ELSE 0 END END,
               coalesce(d.is_test, false), a.error_code
          FROM webhooky.attempts a
          LEFT JOIN webhooky.deliveries d ON d.id = a.delivery_id
          LEFT JOIN webhooky.webhooks w ON w.id = coalesce(a.webhook_id, d.webhook_id)
        """

    /// The rows of a query on ``selectSQL``.
    static func rows(_ result: QueryResult) -> [AttemptRow] {
        (0..<result.rowCount).compactMap { row -> AttemptRow? in
            guard let id = result[row, 0].flatMap({ Int64($0) }), let deliveryID = result[row, 4].flatMap({ Int64($0) }) else { return nil }
            let outcome: AttemptRow.Outcome
            switch result[row, 9] {
            case "succeeded": outcome = .succeeded
            case "gone": outcome = .gone
            case "dead": outcome = .dead
            case "held": outcome = .held
            case "retrying": outcome = .retrying(inSeconds: result[row, 10].flatMap { Double($0) })
            default: outcome = .retried
            }
            return AttemptRow(
                id: id, startedAt: result[row, 1].flatMap { Double($0) } ?? 0, webhookID: result[row, 2].flatMap { Int64($0) },
                webhookName: result[row, 3], deliveryID: deliveryID, attempt: result[row, 5].flatMap { Int($0) } ?? 0,
                status: result[row, 6].flatMap { Int($0) }, error: result[row, 7], errorCode: result[row, 12],
                durationMilliseconds: result[row, 8].flatMap { Double($0) } ?? 0, outcome: outcome, isTest: result[row, 11] == "t")
        }
    }
}
