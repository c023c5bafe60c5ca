import Delivery
import Postgres
import Templates

/// A delivery claimed by this worker, as the claim query returns it.
struct ClaimedDelivery {
    let id: Int64
    /// The attempt about to be made (from 1).
    let attempt: Int
    let webhookID: Int64
    let webhookRevision: Int
    let eventID: Int64
    /// The event's payload as JSON text (numbers exact).
    let payload: String
}

/// The outcome of one attempt, ready to be written.
struct AttemptRecord {
    let deliveryID: Int64
    let attempt: Int
    let completion: DeliveryStateMachine.Completion
    /// Wall clock, seconds since 1970.
    let startedAt: Double
    let durationMilliseconds: Double
    /// The start of the response body (already capped), or `nil`.
    let responseBody: String?
}

/// The worker's SQL: every statement it runs against `webhooky.*`, with values always bound
/// as parameters. Stateless; the caller owns the connection.
enum DeliveryStore {
    /// Claims up to `limit` due deliveries in one statement: `FOR UPDATE SKIP LOCKED` so that
    /// workers never claim the same row. Deliveries whose webhook was disabled meanwhile are
    /// parked (`next_attempt_at = infinity`); those whose webhook was deleted end `dead`.
    static let claimSQL = """
        WITH due AS (
            SELECT d.id, d.webhook_id
              FROM webhooky.deliveries d
             WHERE d.state = 'pending' AND d.next_attempt_at <= now()
             ORDER BY d.next_attempt_at
             LIMIT $1
               FOR UPDATE SKIP LOCKED
        ), targets AS (
            SELECT due.id, w.id AS webhook_id, w.revision, w.enabled
              FROM due LEFT JOIN webhooky.webhooks w ON w.id = due.webhook_id
        ), held AS (
            UPDATE webhooky.deliveries d
               SET state = CASE WHEN t.webhook_id IS NULL THEN 'dead' ELSE 'pending' END,
                   next_attempt_at = CASE WHEN t.webhook_id IS NULL THEN d.next_attempt_at ELSE 'infinity' END,
                   last_error = CASE WHEN t.webhook_id IS NULL THEN 'webhook deleted' ELSE d.last_error END,
                   completed_at = CASE WHEN t.webhook_id IS NULL THEN now() END,
                   updated_at = now()
              FROM targets t
             WHERE d.id = t.id AND t.enabled IS NOT TRUE
        )
        UPDATE webhooky.deliveries d
           SET state = 'sending', attempts = d.attempts + 1, claimed_by = $2,
               lease_expires_at = now() + $3 * interval '1 millisecond', updated_at = now()
          FROM targets t, webhooky.events e
         WHERE d.id = t.id AND t.enabled AND e.id = d.event_id
        RETURNING d.id, d.attempts, t.webhook_id, t.revision, d.event_id, e.payload::text
        """

    /// Writes attempt outcomes: each delivery's new state (only while this worker still holds
    /// it for that attempt) and one `webhooky.attempts` row per attempt.
    static let recordSQL = """
        WITH outcome AS (
            SELECT * FROM json_to_recordset($1::json) AS o(
                id bigint, attempt integer, state text, retry_ms bigint, status integer, error text,
                started_at double precision, duration_ms double precision, body text)
        ), updated AS (
            UPDATE webhooky.deliveries d
               SET state = o.state,
                   next_attempt_at = CASE WHEN o.state = 'pending' THEN now() + o.retry_ms * interval '1 millisecond' ELSE d.next_attempt_at END,
                   last_status = o.status, last_error = o.error,
                   claimed_by = NULL, lease_expires_at = NULL, updated_at = now(),
                   completed_at = CASE WHEN o.state <> 'pending' THEN now() END
              FROM outcome o
             WHERE d.id = o.id AND d.state = 'sending' AND d.claimed_by = $2 AND d.attempts = o.attempt
            RETURNING d.id
        )
        INSERT INTO webhooky.attempts (delivery_id, attempt, started_at, duration_ms, status, error, response_body, worker)
        SELECT o.id, o.attempt, to_timestamp(o.started_at), o.duration_ms, o.status, o.error, o.body, $2
          FROM outcome o
        RETURNING (SELECT count(*) FROM updated)
        """

    /// Gives back deliveries this worker claimed but did not send (shutdown): pending again,
    /// due now, the unmade attempt not counted.
    static let releaseSQL = """
        UPDATE webhooky.deliveries
           SET state = 'pending', attempts = attempts - 1, claimed_by = NULL, lease_expires_at = NULL,
               next_attempt_at = now(), updated_at = now()
         WHERE id = ANY($1::bigint[]) AND state = 'sending' AND claimed_by = $2
        """

    /// Makes deliveries whose lease ran out (their worker died or lost the database) pending
    /// again, due now.
    static let reapSQL = """
        UPDATE webhooky.deliveries
           SET state = 'pending', claimed_by = NULL, lease_expires_at = NULL, next_attempt_at = now(), updated_at = now(),
               last_error = 'lease expired: the worker that claimed it (' || claimed_by || ') stopped or lost the database before recording the outcome'
         WHERE state = 'sending' AND lease_expires_at < now()
        """

    static let webhooksSQL = """
        SELECT id, revision, name, url, body, headers::text, secret
          FROM webhooky.webhooks
         WHERE id = ANY($1::bigint[])
        """

    static func claim(_ connection: Connection, limit: Int, workerID: String, lease: Duration) throws(PostgresError) -> [ClaimedDelivery] {
        let result = try connection.query(claimSQL, [String(limit), workerID, String(milliseconds(lease))])
        var claimed: [ClaimedDelivery] = []
        claimed.reserveCapacity(result.rowCount)
        for row in 0..<result.rowCount {
            guard let id = result[row, 0].flatMap({ Int64($0) }),
                  let attempt = result[row, 1].flatMap({ Int($0) }),
                  let webhookID = result[row, 2].flatMap({ Int64($0) }),
                  let revision = result[row, 3].flatMap({ Int($0) }),
                  let eventID = result[row, 4].flatMap({ Int64($0) }),
                  let payload = result[row, 5] else { continue }
            claimed.append(ClaimedDelivery(id: id, attempt: attempt, webhookID: webhookID, webhookRevision: revision, eventID: eventID, payload: payload))
        }
        return claimed
    }

    /// Writes `records`; returns how many deliveries were updated (the rest were no longer
    /// held by this worker, but their attempts are recorded all the same).
    @discardableResult
    static func record(_ connection: Connection, _ records: [AttemptRecord], workerID: String) throws(PostgresError) -> Int {
        guard !records.isEmpty else { return 0 }
        var json = "["
        for (index, record) in records.enumerated() {
            if index > 0 { json += "," }
            json += "{\"id\":\(record.deliveryID),\"attempt\":\(record.attempt),\"state\":\"\(record.completion.state.rawValue)\""
            if let retry = record.completion.retryIn { json += ",\"retry_ms\":\(milliseconds(retry))" }
            if let status = record.completion.status { json += ",\"status\":\(status)" }
            if let error = record.completion.error {
                json += ",\"error\":"
                JSONValue.writeQuoted(error, to: &json)
            }
            json += ",\"started_at\":\(record.startedAt),\"duration_ms\":\(record.durationMilliseconds)"
            if let body = record.responseBody {
                json += ",\"body\":"
                JSONValue.writeQuoted(body, to: &json)
            }
            json += "}"
        }
        json += "]"
        let result = try connection.query(recordSQL, [json, workerID])
        return Int(result.scalar ?? "0") ?? 0
    }

    static func release(_ connection: Connection, _ deliveryIDs: [Int64], workerID: String) throws(PostgresError) {
        guard !deliveryIDs.isEmpty else { return }
        try connection.query(releaseSQL, [arrayLiteral(deliveryIDs), workerID])
    }

    /// Returns how many leases were taken back.
    static func reapExpiredLeases(_ connection: Connection) throws(PostgresError) -> Int {
        try connection.query(reapSQL).affectedRows
    }

    /// The rows of webhooks `ids` (those that still exist).
    static func webhooks(_ connection: Connection, ids: [Int64]) throws(PostgresError) -> [WebhookRow] {
        let result = try connection.query(webhooksSQL, [arrayLiteral(ids)])
        return (0..<result.rowCount).compactMap { row in
            guard let id = result[row, 0].flatMap({ Int64($0) }), let revision = result[row, 1].flatMap({ Int($0) }) else { return nil }
            return WebhookRow(id: id, revision: revision, name: result[row, 2] ?? "", url: result[row, 3] ?? "", body: result[row, 4], headers: result[row, 5] ?? "{}", secret: result[row, 6])
        }
    }

    static func arrayLiteral(_ ids: [Int64]) -> String {
        "{" + ids.map(String.init).joined(separator: ",") + "}"
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }
}

/// The columns of one `webhooky.webhooks` row.
struct WebhookRow {
    let id: Int64
    let revision: Int
    let name: String
    let url: String
    let body: String?
    let headers: String
    let secret: String?
}
