import Delivery
import HTTPClient
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
    /// Attempts the current retry schedule does not count (see `deliveries.retry_base`).
    var retryBase = 0
    /// A test delivery (`webhooky.send_test`): its request says so (`webhooky-test: true`).
    var isTest = false
    /// Where the claim statement found it: its `next_attempt_at` (PostgreSQL's text), and id.
    var position: ClaimCursor?

    /// This claim, to be given back when its attempt is not made.
    var unsent: UnsentClaim { UnsentClaim(deliveryID: id, attempt: attempt) }
}

/// A place in one webhook's queue of due deliveries: its next claim reads after it.
struct ClaimCursor: Equatable, Comparable {
    /// `next_attempt_at`, as PostgreSQL printed it in this session (read back exactly).
    let dueAt: String
    /// The same instant in microseconds since 1970, for ordering.
    let dueAtMicroseconds: Int64
    let id: Int64

    static func < (lhs: ClaimCursor, rhs: ClaimCursor) -> Bool {
        (lhs.dueAtMicroseconds, lhs.id) < (rhs.dueAtMicroseconds, rhs.id)
    }
}

/// A delivery claimed for an attempt that was not made: what ``DeliveryStore/releaseSQL`` gives back.
struct UnsentClaim: Hashable {
    let deliveryID: Int64
    /// The attempt it was claimed for (its `attempts` since the claim).
    let attempt: Int
}

/// The outcome of one attempt, ready to be written.
struct AttemptRecord {
    /// The same outcome without the response body (when the body cannot be stored).
    var withoutResponseBody: AttemptRecord {
        AttemptRecord(deliveryID: deliveryID, webhookID: webhookID, attempt: attempt, completion: completion, errorCode: errorCode,
                      startedAt: startedAt, durationMilliseconds: durationMilliseconds, responseBody: nil)
    }

    let deliveryID: Int64
    let webhookID: Int64
    let attempt: Int
    let completion: DeliveryStateMachine.Completion
    /// The claim this is the outcome of.
    var claim: UnsentClaim { UnsentClaim(deliveryID: deliveryID, attempt: attempt) }
    /// Why the attempt got no answer, as `webhooky.attempts.error_code` records it (an
    /// ``HTTPError/Code``'s raw value, or one of ``DeliveryStore``'s own codes such as
    /// ``DeliveryStore/invalidRequestCode``); `nil` when the endpoint answered with a status.
    let errorCode: String?
    /// Wall clock, seconds since 1970.
    let startedAt: Double
    let durationMilliseconds: Double
    /// The start of the response body (already capped), or `nil`.
    let responseBody: String?
}

/// The worker's SQL: every statement it runs against `webhooky.*`, with values always bound
/// as parameters. Stateless; the caller owns the connection.
enum DeliveryStore {
    /// Claims up to `$1` due deliveries in one statement, a fair share per enabled webhook:
    /// each webhook gives at most its room (`$5`, what an endpoint starts with, or what
    /// `$3`/`$4` say for the webhooks listed there), starting from a random webhook, so that no
    /// endpoint's backlog can crowd out the others. `FOR UPDATE SKIP LOCKED`: workers never claim the same row.
    /// A disabled webhook's deliveries are not claimed, except tests (`webhooky.send_test`);
    /// a delivery whose event row is gone ends `dead` ("event deleted") instead of blocking its
    /// webhook's queue. Each webhook listed in `$7` is read after the (next_attempt_at, id)
    /// given in `$8`/`$9` (the last delivery claimed), not from the start of the index, whose
    /// first entries may be thousands of deliveries already claimed and not yet vacuumed.
    /// Returns each delivery's `next_attempt_at` (as text) for the next cursor, and whether it is a test.
    static let claimSQL = """
        WITH room AS (
            SELECT w.id AS webhook_id, w.revision, w.enabled, coalesce(r.room, $5) AS room,
                   coalesce(c.after_at, '-infinity') AS after_at, coalesce(c.after_id, 0) AS after_id
              FROM webhooky.webhooks w
              LEFT JOIN unnest($3::bigint[], $4::integer[]) AS r(webhook_id, room) ON r.webhook_id = w.id
              LEFT JOIN unnest($7::bigint[], $8::timestamptz[], $9::bigint[]) AS c(webhook_id, after_at, after_id) ON c.webhook_id = w.id
             WHERE (w.enabled OR EXISTS (SELECT 1 FROM webhooky.deliveries t WHERE t.webhook_id = w.id AND t.state = 'pending' AND t.is_test))
               AND coalesce(r.room, $5) > 0
             ORDER BY random()
        ), due AS (
            SELECT d.id, room.webhook_id, room.revision
              FROM room CROSS JOIN LATERAL (
                   SELECT d.id
                     FROM webhooky.deliveries d
                    WHERE d.webhook_id = room.webhook_id AND d.state = 'pending' AND d.next_attempt_at <= now()
                      AND (d.next_attempt_at, d.id) > (room.after_at, room.after_id)
                      AND (room.enabled OR d.is_test)
                    ORDER BY d.next_attempt_at, d.id
                    LIMIT room.room
                      FOR UPDATE SKIP LOCKED) d
             LIMIT $1
        ), orphans AS (
            UPDATE webhooky.deliveries d
               SET state = 'dead', last_error = 'event deleted', last_error_code = '\(eventDeletedCode)', completed_at = now(), updated_at = now()
             WHERE d.id = ANY (ARRAY(SELECT due.id FROM due)) AND NOT EXISTS (SELECT 1 FROM webhooky.events e WHERE e.id = d.event_id)
        ), claimed AS (
            UPDATE webhooky.deliveries d
               SET state = 'sending', attempts = d.attempts + 1, claimed_by = $2,
                   lease_expires_at = now() + $6 * interval '1 millisecond', updated_at = now()
             WHERE d.id = ANY (ARRAY(SELECT due.id FROM due)) AND EXISTS (SELECT 1 FROM webhooky.events e WHERE e.id = d.event_id)
            RETURNING d.id, d.attempts, d.webhook_id, d.event_id, d.retry_base, d.next_attempt_at, d.is_test
        )
        SELECT c.id, c.attempts, c.webhook_id, due.revision, c.event_id,
               (SELECT e.payload::text FROM webhooky.events e WHERE e.id = c.event_id), c.retry_base,
               c.next_attempt_at::text, (extract(epoch FROM c.next_attempt_at) * 1000000)::bigint, c.is_test
          FROM claimed c JOIN due ON due.id = c.id
        """

    /// The events a fan-out takes: up to `limit` not fanned out yet, from event id `after` on,
    /// in id order, none another worker is fanning out (both fan-out statements' `fresh`).
    static func freshEvents(limit: String, after: String) -> String {
        """

                    SELECT e.id, e.webhook_ids, e.created_at, e.payload
                      FROM webhooky.events e
                     WHERE NOT e.fanned_out AND e.id > \(after)
                     ORDER BY e.id
                     LIMIT \(limit)
                       FOR UPDATE SKIP LOCKED
        """
    }

    /// Creates the deliveries of up to `$1` events that have none yet (the events a worker has
    /// not fanned out), from event id `$8` on, and claims at once the first attempts that fit: per webhook its room
    /// (`$5`, or what `$3`/`$4` say for the webhooks listed there), `$6` in all, only for enabled webhooks.
    /// With `$9` (only what fits) the fan-out stops before the first event with a delivery
    /// that cannot be claimed now (its endpoint is full, or the worker is), so that every
    /// delivery it creates is created claimed, and none takes the longer way through
    /// `pending` and the claim statement (a second row version and its index entries);
    /// without it, what does not fit is inserted `pending` for the claim statement. A webhook
    /// deleted since the event was emitted gets no delivery; a disabled one's delivery waits
    /// `pending` and stops nothing. Returns one row per claimed delivery, each with the number
    /// of events fanned out, of deliveries left pending and their webhooks, the last event id
    /// fanned out, whether the fan-out stopped early and the webhook that stopped it (NULL:
    /// the worker's limit); a single row with NULLs for the delivery when none was claimed.
    static let fanOutSQL = """
        WITH fresh AS (\(freshEvents(limit: "$1", after: "$8"))
        ), targets AS (
            SELECT fresh.id AS event_id, w.id AS webhook_id, w.revision, w.enabled, fresh.created_at,
                   w.enabled AND row_number() OVER (PARTITION BY w.id ORDER BY fresh.id) <= coalesce(r.room, $5) AS within_room
              FROM fresh
             CROSS JOIN LATERAL unnest(fresh.webhook_ids) AS t(webhook_id)
              JOIN webhooky.webhooks w ON w.id = t.webhook_id
              LEFT JOIN unnest($3::bigint[], $4::integer[]) AS r(webhook_id, room) ON r.webhook_id = w.id
        ), decided AS (
            SELECT targets.*,
                   within_room AND count(*) FILTER (WHERE within_room) OVER (ORDER BY event_id, webhook_id) <= $6 AS claim
              FROM targets
        ), stop AS (
            SELECT decided.event_id, CASE WHEN NOT decided.within_room THEN decided.webhook_id END AS webhook_id
              FROM decided
             WHERE $9 AND decided.enabled AND NOT decided.claim
             ORDER BY decided.event_id, decided.webhook_id
             LIMIT 1
        ), taken AS (
            SELECT fresh.* FROM fresh WHERE NOT EXISTS (SELECT 1 FROM stop WHERE fresh.id >= stop.event_id)
        ), marked AS (
            -- By id array rather than a join: the prepared (generic) plan then probes the
            -- primary key instead of hashing the whole table.
            UPDATE webhooky.events e SET fanned_out = true WHERE e.id = ANY (ARRAY(SELECT taken.id FROM taken))
        ), inserted AS (
            INSERT INTO webhooky.deliveries (event_id, webhook_id, created_at, state, attempts, claimed_by, lease_expires_at)
            SELECT event_id, webhook_id, created_at,
                   CASE WHEN claim THEN 'sending' ELSE 'pending' END, CASE WHEN claim THEN 1 ELSE 0 END,
                   CASE WHEN claim THEN $2 END, CASE WHEN claim THEN now() + $7 * interval '1 millisecond' END
              FROM decided
             WHERE NOT EXISTS (SELECT 1 FROM stop WHERE decided.event_id >= stop.event_id)
            RETURNING id, event_id, webhook_id, state
        ), claimed AS (
            SELECT i.id, i.webhook_id, d.revision, i.event_id, f.payload
              FROM inserted i
              JOIN decided d ON d.event_id = i.event_id AND d.webhook_id = i.webhook_id
              JOIN taken f ON f.id = i.event_id
             WHERE i.state = 'sending'
        )
        SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM inserted WHERE state = 'pending'),
               (SELECT array_agg(DISTINCT inserted.webhook_id) FROM inserted WHERE state = 'pending')::text,
               (SELECT max(id) FROM taken), EXISTS (SELECT 1 FROM stop), (SELECT stop.webhook_id FROM stop),
               c.id, c.webhook_id, c.revision, c.event_id, c.payload::text
          FROM (SELECT 1) AS one LEFT JOIN claimed c ON true
        """

    /// ``fanOutSQL`` for a batch expected to fit: the caller limits it to `$1` events, no more
    /// than the room of any webhook it lists (each event has a webhook once, so none of them can
    /// get more than its room), and the statement checks the rest itself: when the events'
    /// webhooks add up to more than `$5` deliveries, or a webhook gets more than its room (`$6`,
    /// or what `$7`/`$8` say; a webhook the caller did not list may have less room than the
    /// batch has events; a batch of no more events than the smallest room is not looked at),
    /// it writes nothing (and returns `false` in its last column), and the caller uses
    /// ``fanOutSQL``. Otherwise it does what ``fanOutSQL`` does
    /// when everything fits (every event of the batch fanned out, every delivery of an enabled
    /// webhook created claimed, of a disabled one `pending`, of a deleted one none), with the
    /// same columns, in about half the time: no window, sort or stop to work out, and a plan of
    /// a third as many nodes (which the executor sets up and tears down for every batch,
    /// however small: a fan-out of one event took 140 µs of the database, this one 60).
    static let fanOutFittingSQL = """
        WITH fresh AS (\(freshEvents(limit: "$1", after: "$4"))
        ), fits AS (
            SELECT coalesce(sum(cardinality(fresh.webhook_ids)), 0) <= $5
                   AND (count(*) <= least($6, (SELECT min(room) FROM unnest($8::integer[]) AS room)) OR NOT EXISTS (
                       SELECT FROM fresh f
                        CROSS JOIN LATERAL unnest(f.webhook_ids) AS t(webhook_id)
                         LEFT JOIN unnest($7::bigint[], $8::integer[]) AS r(webhook_id, room) ON r.webhook_id = t.webhook_id
                        GROUP BY t.webhook_id, r.room
                       HAVING count(*) > coalesce(r.room, $6))) AS ok,
                   count(*) AS events, max(fresh.id) AS last
              FROM fresh
        ), marked AS (
            UPDATE webhooky.events e SET fanned_out = true
             WHERE e.id = ANY (ARRAY(SELECT fresh.id FROM fresh)) AND (SELECT fits.ok FROM fits)
        ), inserted AS (
            INSERT INTO webhooky.deliveries (event_id, webhook_id, created_at, state, attempts, claimed_by, lease_expires_at)
            SELECT fresh.id, w.id, fresh.created_at,
                   CASE WHEN w.enabled THEN 'sending' ELSE 'pending' END, CASE WHEN w.enabled THEN 1 ELSE 0 END,
                   CASE WHEN w.enabled THEN $2 END, CASE WHEN w.enabled THEN now() + $3 * interval '1 millisecond' END
              FROM fresh
             CROSS JOIN LATERAL unnest(fresh.webhook_ids) AS t(webhook_id)
              JOIN webhooky.webhooks w ON w.id = t.webhook_id
             WHERE (SELECT fits.ok FROM fits)
             ORDER BY fresh.id, w.id
            RETURNING id, event_id, webhook_id, state
        ), claimed AS (
            SELECT i.id, i.webhook_id, w.revision, i.event_id, f.payload
              FROM inserted i
              JOIN webhooky.webhooks w ON w.id = i.webhook_id
              JOIN fresh f ON f.id = i.event_id
             WHERE i.state = 'sending'
        )
        SELECT fits.events, (SELECT count(*) FROM inserted WHERE state = 'pending'),
               (SELECT array_agg(DISTINCT inserted.webhook_id) FROM inserted WHERE state = 'pending')::text,
               fits.last, false, NULL::bigint,
               c.id, c.webhook_id, c.revision, c.event_id, c.payload::text, fits.ok
          FROM fits LEFT JOIN claimed c ON true
        """

    /// The result of a fan-out.
    struct FanOut {
        /// Events whose deliveries were created.
        var events = 0
        /// Deliveries created `pending` (for the claim statement), and their webhooks.
        var pending = 0
        var pendingWebhooks: [Int64] = []
        /// Deliveries created already claimed by this worker: send them.
        var claimed: [ClaimedDelivery] = []
        /// The highest event id fanned out, if any.
        var lastEventID: Int64?
        /// Whether a fan-out of only what fits stopped before an event that did not fit.
        var stopped = false
        /// The webhook whose room stopped it (`nil`: the worker's own limit, or not stopped).
        var stoppedBy: Int64?
    }

    /// Fans out up to `events` events after event id `eventID`. `onlyWhatFits`: stop before
    /// the first event whose deliveries cannot all be claimed now (see ``fanOutSQL``).
    static func fanOut(_ connection: Connection, events: Int, after eventID: Int64, workerID: String, lease: Duration, room: Int, rooms: [Int64: Int],
                       capacity: Int, onlyWhatFits: Bool) throws(PostgresError) -> FanOut {
        let (ids, roomValues) = roomArrays(rooms)
        let result = try connection.query(prepared: "webhooky_fan_out", fanOutSQL, [
            String(events), workerID, ids, roomValues,
            String(room), String(capacity), String(milliseconds(lease)), String(eventID), onlyWhatFits ? "true" : "false",
        ])
        return fanOut(from: result)
    }

    /// Fans out up to `events` events after event id `eventID`, no more than the room of any
    /// webhook listed in `rooms` (see ``fanOutFittingSQL``); `nil` when their deliveries would
    /// be more than `capacity`, or a webhook not listed would get more than `room` (nothing
    /// written: use ``fanOut(_:events:after:workerID:lease:room:rooms:capacity:onlyWhatFits:)``).
    static func fanOutFitting(_ connection: Connection, events: Int, after eventID: Int64, workerID: String, lease: Duration,
                              room: Int, rooms: [Int64: Int], capacity: Int) throws(PostgresError) -> FanOut? {
        let (ids, roomValues) = roomArrays(rooms)
        let result = try connection.query(prepared: "webhooky_fan_out_fitting", fanOutFittingSQL, [
            String(events), workerID, String(milliseconds(lease)), String(eventID), String(capacity), String(room), ids, roomValues,
        ])
        guard result.rowCount > 0, result[0, 11] == "t" else { return nil }
        return fanOut(from: result)
    }

    private static func fanOut(from result: QueryResult) -> FanOut {
        var fanOut = FanOut()
        guard result.rowCount > 0 else { return fanOut }
        fanOut.events = Int(result[0, 0] ?? "0") ?? 0
        fanOut.pending = Int(result[0, 1] ?? "0") ?? 0
        fanOut.pendingWebhooks = result[0, 2].map { $0.split { "{},".contains($0) }.compactMap { Int64($0) } } ?? []
        fanOut.lastEventID = result[0, 3].flatMap { Int64($0) }
        fanOut.stopped = result[0, 4] == "t"
        fanOut.stoppedBy = result[0, 5].flatMap { Int64($0) }
        for row in 0..<result.rowCount {
            guard let id = result[row, 6].flatMap({ Int64($0) }),
                  let webhookID = result[row, 7].flatMap({ Int64($0) }),
                  let revision = result[row, 8].flatMap({ Int($0) }),
                  let eventID = result[row, 9].flatMap({ Int64($0) }),
                  let payload = result[row, 10] else { continue }
            fanOut.claimed.append(ClaimedDelivery(id: id, attempt: 1, webhookID: webhookID, webhookRevision: revision, eventID: eventID, payload: payload))
        }
        return fanOut
    }

    /// Writes attempt outcomes: each delivery's new state (only while this worker still holds
    /// it for that attempt; an interrupted attempt also moves its `retry_base` on, so that it is
    /// not one of the retry schedule's), one `webhooky.attempts` row per attempt, each webhook's health
    /// (`$3`: per-webhook summary of the batch), and disables webhooks that answered 410 Gone or
    /// kept failing (at least `$4` failures in a row, failing for `$5` seconds; `$4` < 0: never)
    /// unless their row is locked (then a later failure does it).
    /// Returns how many deliveries were updated and the webhooks disabled, as JSON.
    static let recordSQL = """
        WITH outcome AS (
            SELECT * FROM json_to_recordset($1::json) AS o(
                id bigint, webhook_id bigint, attempt integer, state text, retry_ms bigint, status integer, error text, error_code text,
                started_us bigint, duration_us bigint, body text, interrupted boolean)
        ), updated AS (
            UPDATE webhooky.deliveries d
               SET state = o.state,
                   -- An attempt cut short by the worker's shutdown is not one of the schedule's.
                   retry_base = d.retry_base + CASE WHEN o.interrupted THEN 1 ELSE 0 END,
                   next_attempt_at = CASE WHEN o.state = 'pending' THEN now() + o.retry_ms * interval '1 millisecond' ELSE d.next_attempt_at END,
                   last_status = o.status, last_error = o.error, last_error_code = o.error_code,
                   claimed_by = NULL, lease_expires_at = NULL, updated_at = now(),
                   completed_at = CASE WHEN o.state <> 'pending' THEN now() END
              FROM outcome o
             -- By id array, and `state || ''` so that the partial lease index does not match:
             -- the plan then probes the primary key instead of reading every 'sending' entry of
             -- that index (including those of deliveries already done and not yet vacuumed).
             WHERE d.id = ANY (ARRAY(SELECT outcome.id FROM outcome)) AND d.id = o.id
               AND d.state || '' = 'sending' AND d.claimed_by = $2 AND d.attempts = o.attempt
            RETURNING d.id, d.attempts
        ), attempts AS (
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, error, error_code, response_body, worker)
            SELECT o.id, o.webhook_id, o.attempt, timestamptz 'epoch' + o.started_us * interval '1 microsecond', o.duration_us / 1000.0,
                   o.status, o.error, o.error_code, o.body, $2
              FROM outcome o
             -- A batch written again after its acknowledgement was lost adds no second row. A
             -- delivery this statement moved on from 'sending' for this attempt has none yet (it
             -- was claimed for it, and only its outcome adds its row), so only the others are looked up.
             -- By delivery and attempt: a batch written again can hold an earlier attempt of a
             -- delivery that this worker has claimed again since, and whose next attempt is in it too.
             WHERE (o.id, o.attempt) IN (SELECT updated.id, updated.attempts FROM updated)
                OR NOT EXISTS (SELECT 1 FROM webhooky.attempts a WHERE a.delivery_id = o.id AND a.attempt = o.attempt AND a.worker = $2
                                  AND NOT \(DeliveryStore.isLeaseExpiryRow("a")))
        ), batch AS (
            SELECT * FROM json_to_recordset($3::json) AS b(
                webhook_id bigint, failures integer, first_failure double precision,
                last_success double precision, last_attempt double precision, gone boolean)
        ), health AS (
            INSERT INTO webhooky.webhook_health AS h (webhook_id, consecutive_failures, failing_since, last_success_at, last_attempt_at)
            SELECT b.webhook_id, b.failures, to_timestamp(b.first_failure), to_timestamp(b.last_success), to_timestamp(b.last_attempt)
              FROM batch b
             -- Not for a webhook deleted while its request was in flight (its health went with it;
             -- a delete that commits while this statement waits is seen by a trigger, 0065).
             WHERE EXISTS (SELECT FROM webhooky.webhooks w WHERE w.id = b.webhook_id)
            ON CONFLICT (webhook_id) DO UPDATE SET
                consecutive_failures = CASE WHEN excluded.last_success_at IS NOT NULL THEN excluded.consecutive_failures
                                            ELSE h.consecutive_failures + excluded.consecutive_failures END,
                failing_since = CASE WHEN excluded.last_success_at IS NOT NULL THEN excluded.failing_since
                                     ELSE coalesce(h.failing_since, excluded.failing_since) END,
                last_success_at = coalesce(excluded.last_success_at, h.last_success_at),
                last_attempt_at = greatest(excluded.last_attempt_at, h.last_attempt_at)
            RETURNING h.webhook_id, h.consecutive_failures, h.failing_since
        ), to_disable AS (
            -- A webhook row someone holds locked (an admin's or a tenant's open transaction) is
            -- left for the next failure: waiting for it would hold every outcome back.
            SELECT w.id, CASE WHEN b.gone THEN 'the endpoint answered 410 Gone'
                              ELSE format('%s failed attempts in a row since %s', h.consecutive_failures,
                                          to_char(h.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"')) END AS reason
              FROM webhooky.webhooks w JOIN health h ON h.webhook_id = w.id JOIN batch b ON b.webhook_id = w.id
             WHERE w.enabled
               AND (b.gone OR ($4 >= 0 AND h.consecutive_failures >= $4 AND h.failing_since <= now() - $5 * interval '1 second'))
               FOR UPDATE OF w SKIP LOCKED
        ), disabled AS (
            UPDATE webhooky.webhooks w
               SET enabled = false, disabled_at = now(), disabled_reason = d.reason
              FROM to_disable d
             WHERE w.id = d.id
            RETURNING w.id, w.disabled_reason
        )
        SELECT (SELECT count(*) FROM updated),
               (SELECT coalesce(json_agg(json_build_object('id', id, 'reason', disabled_reason)), '[]') FROM disabled)
        """

    /// Gives back deliveries this worker claimed but did not send: pending again, due after
    /// `$3` milliseconds, the unmade attempt not counted. Used at shutdown (due at once), for a
    /// delivery whose webhook changed between its claim and the worker's read of the webhook
    /// (due at once), and for a delivery whose endpoint was already at its limit (due at once,
    /// or a second later when the webhook's endpoint varies with the payload). Only while the
    /// delivery is still claimed for that attempt (`$4`, one per id of `$1`), like
    /// ``recordSQL``: a claim given back late (after a lost connection) must not give back a
    /// newer claim of the same delivery, whose request may be in flight. A delivery that the
    /// deletion of its webhook, or its move to another account, ended `dead` while it was
    /// claimed (taken out of the worker's line unsent) stays dead, but its unmade attempt is
    /// not counted either: its `attempts` are its rows in `webhooky.attempts` (unless a reap
    /// wrote one for that attempt: then its lease had run out and the attempt counts).
    ///
    /// One UPDATE for both, so that a claim that a delete or move ends while the give-back waits
    /// for its row (the change's transaction open) is checked again as the change left it: as
    /// a second statement of the same snapshot, the correction found the row still `sending`,
    /// and the attempt stayed counted. (The re-check's look for the attempt's row still reads
    /// the statement's snapshot: a reap of that lease committed in the same moment would go
    /// unseen, and the attempt it wrote a row for would not be counted.)
    static let releaseSQL = """
        UPDATE webhooky.deliveries d
           SET state = CASE WHEN d.state = 'sending' THEN 'pending' ELSE d.state END,
               attempts = d.attempts - 1, claimed_by = NULL, lease_expires_at = NULL,
               next_attempt_at = CASE WHEN d.state = 'sending' THEN now() + $3 * interval '1 millisecond' ELSE d.next_attempt_at END,
               updated_at = now()
         WHERE d.id = ANY($1::bigint[]) -- by primary key (see recordSQL)
           AND (d.id, d.attempts) IN (SELECT * FROM unnest($1::bigint[], $4::integer[]) AS u(id, attempt))
           AND (d.state || '' = 'sending' AND d.claimed_by = $2
                OR d.state || '' = 'dead' AND d.claimed_by IS NULL
                   AND d.last_error IN (\(endedByChange.map { "'\($0)'" }.joined(separator: ", ")))
                   AND NOT EXISTS (SELECT FROM webhooky.attempts a WHERE a.delivery_id = d.id AND a.attempt = d.attempts))
        """

    /// How the error of an attempt that a worker's stop cut off begins (its shutdown grace
    /// period was over while the request was in flight); its `error_code` is
    /// ``HTTPError/Code/interrupted``'s.
    static let interruptedPrefix = "no answer: the worker stopped"

    /// The `error_code` of an attempt whose request could not be built from its webhook and
    /// event (a template that does not render, a header value with CR or LF, a request over
    /// its limits): `invalid_request`. The delivery ends dead.
    static let invalidRequestCode = "invalid_request"

    /// The `error_code` of the attempts row ``reapSQL`` writes for a lease that ran out:
    /// `lease_expired`.
    static let leaseExpiredCode = "lease_expired"

    /// Whether the attempts row `a` is one a worker's stop cut off (see ``interruptedPrefix``).
    /// By its `error_code` (migration 0054); by its error text for a row without one (written
    /// before, or by a worker of the schema before, still running while it was migrated).
    static func isInterruptedRow(_ a: String) -> String {
        "coalesce(\(a).error_code = '\(HTTPError.Code.interrupted.rawValue)', \(a).status IS NULL AND coalesce(\(a).error LIKE '\(interruptedPrefix)%', false))"
    }

    /// The `last_error_code` of a delivery ended dead because its webhook was deleted
    /// (``endOrphanedSQL``, and the delete's trigger): `webhook_deleted`. No attempt has it.
    static let webhookDeletedCode = "webhook_deleted"

    /// The `last_error_code` of a delivery ended dead because its event row was gone when it
    /// was claimed (``claimSQL``): `event_deleted`. No attempt has it.
    static let eventDeletedCode = "event_deleted"

    /// The `last_error` of a delivery that a change of its webhook ended while unfinished
    /// (migrations 0001 and 0030): deleted, or given to another account.
    static let endedByChange = ["webhook deleted", "webhook moved to another account: this event is not of its account"]

    /// How the error of a delivery whose lease ran out begins (see ``reapSQL``).
    static let leaseExpiredPrefix = "lease expired: "

    /// Whether the attempts row `a` is the one ``reapSQL`` wrote for an attempt whose outcome
    /// did not come in time: it does not stand for the outcome of its worker, which, back after
    /// all, writes its own row beside it. By its `error_code` (``leaseExpiredCode``); by its
    /// error text for a row without one (see ``isInterruptedRow(_:)``).
    static func isLeaseExpiryRow(_ a: String) -> String {
        "coalesce(\(a).error_code = '\(leaseExpiredCode)', \(a).status IS NULL AND coalesce(\(a).error LIKE '\(leaseExpiredPrefix)%', false))"
    }

    /// Makes deliveries whose lease ran out (their worker died or lost the database) pending
    /// again, due now, and returns how many. The attempt's outcome is not known: `last_status`
    /// is cleared with it, so that an earlier attempt's answer does not stand beside the
    /// lease's error, and the attempt gets its row in `webhooky.attempts` all the same (every
    /// attempt counted has one), with that error, no status, the worker that claimed it, and
    /// the time from its claim (unless that worker recorded it meanwhile; if its outcome comes
    /// after all, it is written beside this row). Rows someone holds
    /// locked (an uncommitted delete of their webhook) are left for a later reap: waiting for
    /// them would stop the dispatcher. Reads the leases from `$1` (seconds since 1970) less
    /// ``ReapWindow/margin`` (`-Infinity`: all); returns the count and the reap's `now()` in
    /// seconds since 1970.
    static let reapSQL = """
        WITH expired AS (
            SELECT id, claimed_by, updated_at AS claimed_at FROM webhooky.deliveries
             WHERE state = 'sending' AND lease_expires_at < now()
               AND lease_expires_at >= to_timestamp($1::double precision) - interval '\(ReapWindow.margin)'
               FOR UPDATE SKIP LOCKED
        ), reaped AS (
            UPDATE webhooky.deliveries d
               SET state = 'pending', claimed_by = NULL, lease_expires_at = NULL, next_attempt_at = now(), updated_at = now(), last_status = NULL,
                   last_error = '\(leaseExpiredPrefix)the worker that claimed it (' || e.claimed_by || ') stopped or lost the database before recording the outcome',
                   last_error_code = '\(leaseExpiredCode)'
              FROM expired e
             WHERE d.id = e.id
            RETURNING d.id, d.webhook_id, d.attempts, d.last_error, e.claimed_by, e.claimed_at
        ), noted AS (
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, error, error_code, worker)
            SELECT r.id, r.webhook_id, r.attempts, r.claimed_at, extract(epoch FROM now() - r.claimed_at) * 1000, r.last_error, '\(leaseExpiredCode)', r.claimed_by
              FROM reaped r
             WHERE NOT EXISTS (SELECT FROM webhooky.attempts a WHERE a.delivery_id = r.id AND a.attempt = r.attempts)
        )
        SELECT (SELECT count(*) FROM reaped), extract(epoch FROM now())::text
        """

    /// Ends `dead` ("webhook deleted") the pending deliveries of webhooks that no longer exist,
    /// which no claim can reach (the claim reads the queues of existing webhooks). Deleting a
    /// webhook ends its unfinished deliveries in the same transaction, but not those a fan-out
    /// creates meanwhile: the fan-out's snapshot, taken before the delete commits, still has the
    /// webhook, and the delete's trigger ran before those rows existed (an admin's delete in a
    /// transaction left open for a while, or any delete during a fan-out statement). A delivery
    /// so created `sending` is sent, and ends here if it is pending after its attempt.
    /// Reads one index probe per webhook with pending deliveries (their distinct ids, by a
    /// skip scan of the due index), not every pending delivery.
    static let endOrphanedSQL = """
        WITH RECURSIVE queued(webhook_id) AS (
            -- (Every id: a bound the index scan starts from, and reads one entry of.)
            (SELECT d.webhook_id FROM webhooky.deliveries d
              WHERE d.state = 'pending' AND d.webhook_id >= -9223372036854775808 ORDER BY d.webhook_id LIMIT 1)
            UNION ALL
            SELECT (SELECT d.webhook_id FROM webhooky.deliveries d
                     WHERE d.state = 'pending' AND d.webhook_id > queued.webhook_id ORDER BY d.webhook_id LIMIT 1)
              FROM queued
             WHERE queued.webhook_id IS NOT NULL
        )
        UPDATE webhooky.deliveries d
           SET state = 'dead', last_error = 'webhook deleted', last_error_code = '\(webhookDeletedCode)', completed_at = now(), updated_at = now()
         WHERE d.state = 'pending'
           AND d.webhook_id IN (SELECT q.webhook_id FROM queued q
                                 WHERE q.webhook_id IS NOT NULL AND NOT EXISTS (SELECT FROM webhooky.webhooks w WHERE w.id = q.webhook_id))
        """

    /// Deletes one batch of old history; returns the deliveries and events deleted.
    static func prune(_ connection: Connection, _ policy: RetentionPolicy) throws(PostgresError) -> (deliveries: Int, events: Int) {
        let result = try connection.query(
            "SELECT deliveries, events FROM webhooky.prune($1 * interval '1 second', $2 * interval '1 second', $3)",
            [String(milliseconds(policy.succeeded) / 1000), String(milliseconds(policy.dead) / 1000), String(policy.batchSize)]
        )
        return (Int(result[0, 0] ?? "0") ?? 0, Int(result[0, 1] ?? "0") ?? 0)
    }

    static let webhooksSQL = """
        SELECT id, revision, name, url, body, headers::text, secret, follow_redirects,
               previous_secret, extract(epoch FROM previous_secret_expires_at)
          FROM webhooky.webhooks
         WHERE id = ANY($1::bigint[])
        """

    /// Claims up to `limit` due deliveries; `rooms` sets the share of the webhooks it lists (0:
    /// skipped), every other webhook may give `room`.
    /// Each webhook in `after` is read after its cursor; the others from the start.
    static func claim(_ connection: Connection, limit: Int, workerID: String, lease: Duration, room: Int, rooms: [Int64: Int],
                      after cursors: [Int64: ClaimCursor] = [:]) throws(PostgresError) -> [ClaimedDelivery] {
        let (ids, roomValues) = roomArrays(rooms)
        let cursorIDs = cursors.keys.sorted()
        let result = try connection.query(prepared: "webhooky_claim", claimSQL, [
            String(limit), workerID, ids, roomValues,
            String(room), String(milliseconds(lease)),
            arrayLiteral(cursorIDs), "{" + cursorIDs.map { "\"\(cursors[$0]!.dueAt)\"" }.joined(separator: ",") + "}",
            arrayLiteral(cursorIDs.map { cursors[$0]!.id }),
        ])
        var claimed: [ClaimedDelivery] = []
        claimed.reserveCapacity(result.rowCount)
        for row in 0..<result.rowCount {
            guard let id = result[row, 0].flatMap({ Int64($0) }),
                  let attempt = result[row, 1].flatMap({ Int($0) }),
                  let webhookID = result[row, 2].flatMap({ Int64($0) }),
                  let revision = result[row, 3].flatMap({ Int($0) }),
                  let eventID = result[row, 4].flatMap({ Int64($0) }),
                  let payload = result[row, 5] else { continue }
            claimed.append(ClaimedDelivery(id: id, attempt: attempt, webhookID: webhookID, webhookRevision: revision, eventID: eventID,
                                           payload: payload, retryBase: result[row, 6].flatMap { Int($0) } ?? 0, isTest: result[row, 9] == "t",
                                           position: result[row, 7].flatMap { dueAt in
                                               result[row, 8].flatMap(Int64.init).map { ClaimCursor(dueAt: dueAt, dueAtMicroseconds: $0, id: id) }
                                           }))
        }
        return claimed
    }

    /// The pairs (delivery, attempt) of `$1`/`$2` whose attempts row worker `$3` wrote.
    static let recordedSQL = """
        SELECT a.delivery_id, a.attempt
          FROM unnest($1::bigint[], $2::integer[]) AS r(delivery_id, attempt)
          JOIN webhooky.attempts a ON a.delivery_id = r.delivery_id AND a.attempt = r.attempt
         WHERE a.worker = $3 AND NOT \(DeliveryStore.isLeaseExpiryRow("a"))
        """

    /// Of `records`, those not on record yet. After a statement whose end was not seen (the
    /// connection was lost on the way) they may have been written: an outcome whose attempts
    /// row this worker wrote was written whole (its delivery, attempts row and webhook health
    /// are one statement), and writing it again would count a failure twice in the health.
    static func unrecorded(_ connection: Connection, _ records: [AttemptRecord], workerID: String) throws(PostgresError) -> [AttemptRecord] {
        guard !records.isEmpty else { return [] }
        let result = try connection.query(prepared: "webhooky_recorded", recordedSQL, [
            arrayLiteral(records.map(\.deliveryID)), arrayLiteral(records.map(\.attempt)), workerID,
        ])
        struct Key: Hashable { let delivery: Int64, attempt: Int }
        var written = Set<Key>()
        for row in 0..<result.rowCount {
            if let delivery = result[row, 0].flatMap({ Int64($0) }), let attempt = result[row, 1].flatMap({ Int($0) }) {
                written.insert(Key(delivery: delivery, attempt: attempt))
            }
        }
        return records.filter { !written.contains(Key(delivery: $0.deliveryID, attempt: $0.attempt)) }
    }

    /// What a batch of records did beyond the deliveries themselves.
    struct RecordResult {
        /// Deliveries updated (the rest were no longer held by this worker; their attempts are
        /// recorded all the same).
        var updated: Int
        /// Webhooks disabled by this batch, with the reason.
        var disabled: [(id: Int64, reason: String)]
    }

    /// Writes `records` and the health of their webhooks; disables webhooks per `autoDisable`.
    /// With `health` false the webhooks' health is left as it is and none is disabled (the last
    /// resort for an outcome whose health update fails).
    static func record(_ connection: Connection, _ records: [AttemptRecord], workerID: String, autoDisable: AutoDisablePolicy?,
                       health: Bool = true) throws(PostgresError) -> RecordResult {
        guard !records.isEmpty else { return RecordResult(updated: 0, disabled: []) }
        let json = outcomesJSON(records)
        let result = try connection.query(prepared: "webhooky_record", recordSQL, [
            json, workerID, health ? WebhookBatchHealth.summarize(records) : "[]",
            String(autoDisable?.failures ?? -1), String(autoDisable.map { milliseconds($0.period) / 1000 } ?? 0),
        ])
        var disabled: [(id: Int64, reason: String)] = []
        if let text = result[0, 1], case .array(let items) = try? JSONParser.parse(text) {
            for case .object(let item) in items {
                if case .number(let id)? = item["id"], let webhookID = Int64(id), case .string(let reason)? = item["reason"] {
                    disabled.append((webhookID, reason))
                }
            }
        }
        return RecordResult(updated: Int(result[0, 0] ?? "0") ?? 0, disabled: disabled)
    }

    /// `records` as the JSON array `recordSQL` reads (`$1`): times in whole microseconds.
    /// Written as UTF-8 bytes and made a string once: a string appended to piece by piece, and
    /// a `Double` printed, cost several times as much per delivery.
    static func outcomesJSON(_ records: [AttemptRecord]) -> String {
        var json = JSONBytes(capacity: records.count * 200)
        json.add("[")
        for (index, record) in records.enumerated() {
            if index > 0 { json.add(",") }
            json.add("{\"id\":"); json.add(String(record.deliveryID))
            json.add(",\"webhook_id\":"); json.add(String(record.webhookID))
            json.add(",\"attempt\":"); json.add(String(record.attempt))
            json.add(",\"state\":\""); json.add(record.completion.state.rawValue); json.add("\"")
            if let retry = record.completion.retryIn { json.add(",\"retry_ms\":"); json.add(String(milliseconds(retry))) }
            if let status = record.completion.status { json.add(",\"status\":"); json.add(String(status)) }
            if let error = record.completion.error { json.add(",\"error\":"); json.add(quoted: error) }
            if let code = record.errorCode { json.add(",\"error_code\":"); json.add(quoted: code) }
            json.add(",\"started_us\":"); json.add(String(Int64((record.startedAt * 1_000_000).rounded())))
            json.add(",\"duration_us\":"); json.add(String(Int64((record.durationMilliseconds * 1000).rounded())))
            if record.completion.interrupted { json.add(",\"interrupted\":true") }
            if let body = record.responseBody { json.add(",\"body\":"); json.add(quoted: body) }
            json.add("}")
        }
        json.add("]")
        return json.text
    }

    /// The deliveries `$1` holds claimed (`sending`) with a lease still running, each with its
    /// attempt: after a reconnect, compared with what the worker knows it holds (see
    /// ``Dispatcher``'s stray claims). An expired lease is the reap's.
    static let ownClaimsSQL = """
        SELECT id, attempts FROM webhooky.deliveries
         WHERE state = 'sending' AND lease_expires_at > now() AND claimed_by = $1
        """

    /// The deliveries `workerID` holds claimed, each with the attempt it was claimed for.
    static func ownClaims(_ connection: Connection, workerID: String) throws(PostgresError) -> [UnsentClaim] {
        let result = try connection.query(prepared: "webhooky_own_claims", ownClaimsSQL, [workerID])
        return (0..<result.rowCount).compactMap { row in
            guard let id = result[row, 0].flatMap({ Int64($0) }), let attempt = result[row, 1].flatMap({ Int($0) }) else { return nil }
            return UnsentClaim(deliveryID: id, attempt: attempt)
        }
    }

    /// Gives back `claims` (each delivery with the attempt it was claimed for) unsent.
    static func release(_ connection: Connection, _ claims: [UnsentClaim], workerID: String, dueIn delay: Duration = .zero) throws(PostgresError) {
        guard !claims.isEmpty else { return }
        try connection.query(prepared: "webhooky_release", releaseSQL, [
            arrayLiteral(claims.map(\.deliveryID)), workerID, String(milliseconds(delay)), arrayLiteral(claims.map(\.attempt)),
        ])
    }

    /// Takes back the expired leases that `window` says to read, moves it on, and returns how
    /// many were taken back.
    static func reapExpiredLeases(_ connection: Connection, window: inout ReapWindow) throws(PostgresError) -> Int {
        let now = ContinuousClock.now
        let bound = window.bound(at: now)
        do {
            let result = try connection.query(prepared: "webhooky_reap", reapSQL, [bound])
            if let start = result[0, 1] { window.reaped(from: bound, startedAt: start, at: now) }
            return result[0, 0].flatMap { Int($0) } ?? 0
        } catch {
            window.readEveryLeaseNext()
            throw error
        }
    }

    /// Returns how many deliveries of deleted webhooks were ended (see ``endOrphanedSQL``).
    static func endDeliveriesOfDeletedWebhooks(_ connection: Connection) throws(PostgresError) -> Int {
        try connection.query(prepared: "webhooky_end_orphaned", endOrphanedSQL).affectedRows
    }

    /// How this installation writes `webhook-id` (`webhooky.installation`, one row; `nil`
    /// when it is missing).
    static func messageIDs(_ connection: Connection) throws(PostgresError) -> MessageIDs? {
        let result = try connection.query("SELECT message_id_prefix, prefixed_from FROM webhooky.installation")
        guard result.rowCount == 1, let prefix = result[0, 0], let from = result[0, 1].flatMap({ Int64($0) }) else { return nil }
        return MessageIDs(prefix: prefix, prefixedFrom: from)
    }

    /// The rows of webhooks `ids` (those that still exist).
    static func webhooks(_ connection: Connection, ids: [Int64]) throws(PostgresError) -> [WebhookRow] {
        let result = try connection.query(prepared: "webhooky_webhooks", webhooksSQL, [arrayLiteral(ids)])
        return (0..<result.rowCount).compactMap { row in
            guard let id = result[row, 0].flatMap({ Int64($0) }), let revision = result[row, 1].flatMap({ Int($0) }) else { return nil }
            return WebhookRow(id: id, revision: revision, name: result[row, 2] ?? "", url: result[row, 3] ?? "", body: result[row, 4], headers: result[row, 5] ?? "{}",
                              secret: result[row, 6], followRedirects: result[row, 7] == "t", previousSecret: result[row, 8],
                              previousSecretExpiresAt: result[row, 9].flatMap(Double.init))
        }
    }

    /// The enabled webhooks whose last attempt got no answer (an `error_code` of
    /// ``HTTPError/Code/noAnswer``: a timeout, a refused or broken connection, a failed DNS
    /// lookup or TLS handshake; not a refused redirect or address, nor a request that could not
    /// be built) and ended within `within` of now, with how long ago it ended. An attempt
    /// recorded before migration 0054 has no code: without an HTTP status it counts as no
    /// answer, as it did before. One look per webhook at the newest of its
    /// attempts (`attempts_webhook_time`) that says something of its endpoint as it is now:
    /// made since the webhook's row last changed (an edit may have given it another URL, or
    /// the admin who enabled it again found the endpoint mended), and neither cut off by a
    /// worker's stop (``isInterruptedRow(_:)``) nor written for an expired lease (a worker died):
    /// those are the worker's doing, not the endpoint's.
    static func unansweredWebhooks(_ connection: Connection, within: Duration) throws(PostgresError) -> [(id: Int64, endedAgo: Duration)] {
        let result = try connection.query("""
            SELECT w.id, (extract(epoch FROM now() - last.ended_at) * 1000)::bigint
              FROM webhooky.webhooks w
              CROSS JOIN LATERAL (
                    SELECT a.status, a.error_code, a.started_at + a.duration_ms * interval '1 millisecond' AS ended_at
                      FROM webhooky.attempts a
                     WHERE a.webhook_id = w.id AND a.started_at >= w.updated_at
                       AND NOT \(isLeaseExpiryRow("a")) AND NOT \(isInterruptedRow("a"))
                     ORDER BY a.started_at DESC
                     LIMIT 1) last
             WHERE w.enabled AND coalesce(last.error_code IN (\(noAnswerCodes)), last.status IS NULL)
               AND last.ended_at > now() - $1::bigint * interval '1 millisecond'
            """, [String(milliseconds(within))])
        return (0..<result.rowCount).compactMap { row in
            guard let id = result[row, 0].flatMap({ Int64($0) }), let ago = result[row, 1].flatMap({ Int64($0) }) else { return nil }
            return (id, .milliseconds(max(0, ago)))
        }
    }

    /// ``HTTPError/Code/noAnswer``'s codes as a list of SQL literals, for `IN (...)`.
    static let noAnswerCodes = HTTPError.Code.noAnswer.map { "'\($0.rawValue)'" }.sorted().joined(separator: ", ")

    /// The current revision of each of webhooks `ids` (a row missing from the answer was deleted).
    static func revisions(_ connection: Connection, ids: [Int64]) throws(PostgresError) -> [Int64: Int] {
        let result = try connection.query(prepared: "webhooky_webhook_revisions",
                                          "SELECT w.id, w.revision FROM webhooky.webhooks w WHERE w.id = ANY ($1::bigint[])", [arrayLiteral(ids)])
        var revisions: [Int64: Int] = [:]
        for row in 0..<result.rowCount {
            if let id = result[row, 0].flatMap({ Int64($0) }), let revision = result[row, 1].flatMap({ Int($0) }) { revisions[id] = revision }
        }
        return revisions
    }

    /// A PostgreSQL array literal of integers: `{1,2,3}`.
    static func arrayLiteral<Number: BinaryInteger>(_ numbers: [Number]) -> String {
        "{" + numbers.map { String($0) }.joined(separator: ",") + "}"
    }

    /// The webhook ids of `rooms` and their rooms, as the two array parameters the claim and
    /// fan-out statements take (`unnest(ids, rooms)`).
    static func roomArrays(_ rooms: [Int64: Int]) -> (ids: String, rooms: String) {
        let ids = rooms.keys.sorted()
        return (arrayLiteral(ids), arrayLiteral(ids.map { rooms[$0] ?? 0 }))
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
    let followRedirects: Bool
    let previousSecret: String?
    let previousSecretExpiresAt: Double?
}

/// A batch's effect on each webhook's health, in the order the attempts were made: failures
/// after the last success, when they started, and whether the endpoint answered 410 Gone. One
/// entry per webhook, in the order of their ids.
enum WebhookBatchHealth {
    /// The JSON array the record statement reads as `$3`.
    static func summarize(_ records: [AttemptRecord]) -> String {
        struct Summary {
            var failures = 0
            var firstFailure: Double?
            var lastSuccess: Double?
            var lastAttempt = 0.0
            var gone = false
        }
        var summaries: [Int64: Summary] = [:]
        for record in records.sorted(by: { $0.startedAt < $1.startedAt }) where !record.completion.interrupted {
            var summary = summaries[record.webhookID] ?? Summary()
            summary.lastAttempt = max(summary.lastAttempt, record.startedAt)
            if record.completion.state == .succeeded {
                summary.failures = 0
                summary.firstFailure = nil
                summary.lastSuccess = record.startedAt
                summary.gone = false
            } else {
                summary.failures += 1
                summary.firstFailure = summary.firstFailure ?? record.startedAt
                if record.completion.status == 410 { summary.gone = true }
            }
            summaries[record.webhookID] = summary
        }
        func number(_ value: Double?) -> String { value.map { String($0) } ?? "null" }
        // By webhook id: two workers then lock health rows in the same order (no deadlock).
        return "[" + summaries.sorted(by: { $0.key < $1.key }).map { id, summary in
            "{\"webhook_id\":\(id),\"failures\":\(summary.failures),\"first_failure\":\(number(summary.firstFailure)),"
                + "\"last_success\":\(number(summary.lastSuccess)),\"last_attempt\":\(summary.lastAttempt),\"gone\":\(summary.gone)}"
        }.joined(separator: ",") + "]"
    }
}

/// JSON text written as UTF-8 bytes, made a string once at the end.
private struct JSONBytes {
    private var bytes: [UInt8] = []

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// Appends `text` as it is.
    mutating func add(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    /// Appends `text` as a JSON string literal.
    mutating func add(quoted text: String) {
        var quoted = ""
        JSONValue.writeQuoted(text, to: &quoted)
        add(quoted)
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }
}
