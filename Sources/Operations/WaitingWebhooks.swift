import Postgres

/// The webhooks whose due deliveries have waited longest, with their pace over the last few
/// minutes: what `webhooky doctor` names when the backlog needs attention, so that a slow
/// endpoint (held to 8 requests in flight per worker, README "Delivery semantics") shows as
/// such; `webhooky status`'s timings cover 24 hours and hide it.
struct WaitingWebhooks: Sendable {
    /// One webhook's due deliveries and recent pace.
    struct Webhook: Sendable, Hashable {
        /// `webhooks.id`.
        var id: String
        /// Its name (may be empty).
        var name: String
        /// Deliveries due and not sent.
        var due: Int
        /// How long the oldest of them has been due, in seconds.
        var oldestSeconds: Double
        /// Attempts started within ``pace`` (retries and failures too).
        var recentAttempts: Int
        /// Those of them that succeeded (a 2xx): what the rest's time is estimated from.
        var recentSucceeded: Int
        /// Their median duration, in milliseconds (`nil` when there were none).
        var recentMedianMilliseconds: Double?
    }

    /// The window the pace is read from, in seconds. Default 300.
    static let pace: Double = 300
    /// How many webhooks are named, the longest waiting first. Default 3.
    static let limit = 3

    /// The webhooks, the one whose oldest due delivery has waited longest first.
    var webhooks: [Webhook]

    /// Reads the webhooks with due deliveries that can be sent (their webhook enabled, or a test).
    static func load(_ connection: Connection) throws(PostgresError) -> WaitingWebhooks {
        let result = try connection.query("""
            SELECT q.webhook_id, q.name, q.due, extract(epoch FROM now() - q.oldest), r.attempts, r.median, r.succeeded
              FROM (SELECT d.webhook_id, w.name, count(*) AS due, min(d.next_attempt_at) AS oldest
                      FROM webhooky.deliveries d JOIN webhooky.webhooks w ON w.id = d.webhook_id
                     WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND (w.enabled OR d.is_test)
                     GROUP BY d.webhook_id, w.name ORDER BY min(d.next_attempt_at), d.webhook_id LIMIT $2) q
             CROSS JOIN LATERAL (
                   SELECT count(*) AS attempts, count(*) FILTER (WHERE a.status BETWEEN 200 AND 299) AS succeeded,
                          percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) FILTER (WHERE a.error_code IS DISTINCT FROM 'lease_expired') AS median
                     FROM webhooky.attempts a WHERE a.webhook_id = q.webhook_id AND a.started_at > now() - $1 * interval '1 second') r
             ORDER BY q.oldest, q.webhook_id
            """, [String(pace), String(limit)])
        return WaitingWebhooks(webhooks: (0..<result.rowCount).map { row in
            Webhook(id: result[row, 0] ?? "?", name: result[row, 1] ?? "", due: result[row, 2].flatMap { Int($0) } ?? 0,
                    oldestSeconds: result[row, 3].flatMap { Double($0) } ?? 0, recentAttempts: result[row, 4].flatMap { Int($0) } ?? 0,
                    recentSucceeded: result[row, 6].flatMap { Int($0) } ?? 0,
                    recentMedianMilliseconds: result[row, 5].flatMap { Double($0) })
        })
    }

    /// One line for `webhook`: `webhook 1 "ERP": 3,170 due, the oldest due for 4m; 480 attempts in
    /// the last 5m (median 5.0 s each), about 33m to send the rest at that pace, not counting new
    /// ones`; `...; 12 attempts in the last 5m (median 3.0 s each), none of them succeeded`; or
    /// `...; no attempt in the last 5m`. The time for the rest is from the attempts that
    /// succeeded: a failed one sent nothing.
    static func line(_ webhook: Webhook) -> String {
        let label = "webhook \(webhook.id)" + (webhook.name.isEmpty ? "" : " \"\(webhook.name)\"")
        let waiting = "\(TextFormatting.count(webhook.due)) due, the oldest due for \(TextFormatting.duration(seconds: webhook.oldestSeconds))"
        let window = TextFormatting.duration(seconds: pace)
        guard webhook.recentAttempts > 0 else { return "\(label): \(waiting); no attempt in the last \(window)" }
        let median = webhook.recentMedianMilliseconds.map { " (median \(TextFormatting.milliseconds($0)) each)" } ?? ""
        let attempts = "\(TextFormatting.count(webhook.recentAttempts)) \(webhook.recentAttempts == 1 ? "attempt" : "attempts") in the last \(window)\(median)"
        guard webhook.recentSucceeded > 0 else {
            return "\(label): \(waiting); \(attempts), \(webhook.recentAttempts == 1 ? "which did not succeed" : "none of them succeeded")"
        }
        let catchUp = Double(webhook.due) / Double(webhook.recentSucceeded) * pace
        return "\(label): \(waiting); \(attempts), about \(TextFormatting.duration(seconds: catchUp)) to send the rest at that pace, not counting new ones"
    }
}
