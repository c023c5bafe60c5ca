import Delivery
import Postgres
import TestSupport
import Testing
@testable import Worker

/// `DeliveryStore.record`, the statement that writes outcomes: one `webhooky.attempts` row per
/// attempt made, whatever became of the delivery meanwhile, and never a second one.
@Suite struct OutcomeRecordTests {
    /// Two events of one webhook, fanned out and claimed by worker `w1` (attempt 1 each).
    static func twoClaimedDeliveries() throws -> (shop: Shop, connection: Connection, claimed: [ClaimedDelivery]) {
        let shop = try Shop()
        try shop.addCustomers(2)
        _ = try shop.addWebhook(url: "http://127.0.0.1:9/hook")
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100002")
        let connection = try FanOutTests.session(shop)
        let claimed = try FanOutTests.claimed(connection)
        try #require(claimed.count == 2)
        return (shop, connection, claimed)
    }

    static func succeeded(_ delivery: ClaimedDelivery, attempt: Int = 1) -> AttemptRecord {
        AttemptRecord(deliveryID: delivery.id, webhookID: delivery.webhookID, attempt: attempt,
                      completion: .init(state: .succeeded, status: 200), errorCode: nil, startedAt: 1_795_000_000.25, durationMilliseconds: 3.5, responseBody: "ok")
    }

    static func failed(_ delivery: ClaimedDelivery, attempt: Int = 1) -> AttemptRecord {
        AttemptRecord(deliveryID: delivery.id, webhookID: delivery.webhookID, attempt: attempt,
                      completion: .init(state: .pending, retryIn: .seconds(60), status: 503, error: "HTTP 503"), errorCode: nil,
                      startedAt: 1_795_000_000.5 + Double(delivery.id), durationMilliseconds: 2, responseBody: nil)
    }

    /// Per attempts row: delivery, attempt, status, worker; in order.
    static func attempts(_ shop: Shop) throws -> [[String?]] {
        try shop.connection.query("SELECT delivery_id::text, attempt::text, status::text, worker FROM webhooky.attempts ORDER BY delivery_id, attempt").rows
    }

    /// Per delivery: id, state, attempts, claimant, whether it has a lease; in order.
    static func deliveries(_ shop: Shop) throws -> [[String?]] {
        try shop.connection.query("""
            SELECT id::text, state, attempts::text, claimed_by, (lease_expires_at IS NOT NULL)::text FROM webhooky.deliveries ORDER BY id
            """).rows
    }

    @Test("an attempt's start and duration are on record to the microsecond, as the worker measured them, error and body escaped")
    func timesAndTextsAreRecordedExactly() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        let error = "HTTP 500: \"no\"\n\\ 😀"
        let measured = AttemptRecord(deliveryID: claimed[0].id, webhookID: claimed[0].webhookID, attempt: 1,
                                     completion: .init(state: .pending, retryIn: .seconds(60), status: 500, error: error),
                                     errorCode: nil, startedAt: 1_795_000_000.123456, durationMilliseconds: 12.3456789, responseBody: "tab\there")
        _ = try DeliveryStore.record(connection, [measured], workerID: "w1", autoDisable: nil)
        #expect(try shop.connection.query(
            "SELECT extract(epoch FROM started_at)::text, duration_ms::text, error, response_body FROM webhooky.attempts WHERE delivery_id = $1",
            [String(claimed[0].id)]).rows == [["1795000000.123456", "12.346", error, "tab\there"]])
    }

    @Test("a batch written again (its acknowledgement lost with the connection) adds no second attempts row and changes nothing")
    func batchWrittenAgainAddsNothing() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        let batch = claimed.map { OutcomeRecordTests.succeeded($0) }

        let first = try DeliveryStore.record(connection, batch, workerID: "w1", autoDisable: nil)
        #expect(first.updated == 2)
        let written = try OutcomeRecordTests.attempts(shop)
        #expect(written == claimed.map { [String($0.id), "1", "200", "w1"] })
        let after = try OutcomeRecordTests.deliveries(shop)
        #expect(after == claimed.map { [String($0.id), "succeeded", "1", nil, "false"] })

        let again = try DeliveryStore.record(connection, batch, workerID: "w1", autoDisable: nil)
        #expect(again.updated == 0, "the deliveries are no longer 'sending' for w1")
        #expect(try OutcomeRecordTests.attempts(shop) == written)
        #expect(try OutcomeRecordTests.deliveries(shop) == after)
    }

    @Test("a batch written again together with the delivery's next attempt (claimed meanwhile by the same worker) adds no second row for the first attempt")
    func batchWrittenAgainWithTheNextAttempt() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        let delivery = claimed[0]
        // Attempt 1 failed and is written; the acknowledgement is lost, so the recorder keeps it.
        let failed = AttemptRecord(deliveryID: delivery.id, webhookID: delivery.webhookID, attempt: 1,
                                   completion: .init(state: .pending, retryIn: .zero, status: 503, error: "HTTP 503"), errorCode: nil,
                                   startedAt: 1_795_000_000.25, durationMilliseconds: 3.5, responseBody: nil)
        #expect(try DeliveryStore.record(connection, [failed], workerID: "w1", autoDisable: nil).updated == 1)
        // Meanwhile the dispatcher (its own connection) claims the retry, attempt 2, and it succeeds.
        let retry = try DeliveryStore.claim(shop.database.connect(), limit: 10, workerID: "w1", lease: .seconds(60), room: 64, rooms: [:])
        try #require(retry.map(\.id) == [delivery.id] && retry.map(\.attempt) == [2])

        // The recorder writes what it kept and what came since, in one batch.
        let result = try DeliveryStore.record(connection, [failed, OutcomeRecordTests.succeeded(delivery, attempt: 2)], workerID: "w1", autoDisable: nil)
        #expect(result.updated == 1)
        let rows = try OutcomeRecordTests.attempts(shop)
        #expect(rows == [[String(delivery.id), "1", "503", "w1"], [String(delivery.id), "2", "200", "w1"]], "one row per attempt")
        #expect(try OutcomeRecordTests.deliveries(shop)[0] == [String(delivery.id), "succeeded", "2", nil, "false"])
    }

    @Test("an attempt whose delivery another worker holds by now is on record, once, and leaves that worker's claim alone")
    func attemptOfADeliveryNoLongerHeldIsRecorded() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        // w1's lease ran out, the delivery was reaped and claimed again by w2 (its attempt 2),
        // before w1's outcome of attempt 1 was written.
        let taken = claimed[0]
        try shop.connection.execute("UPDATE webhooky.deliveries SET claimed_by = 'w2', attempts = 2 WHERE id = \(taken.id)")
        let batch = claimed.map { OutcomeRecordTests.succeeded($0) }

        for round in 1...2 {
            let result = try DeliveryStore.record(connection, batch, workerID: "w1", autoDisable: nil)
            #expect(result.updated == (round == 1 ? 1 : 0), "only the delivery w1 still holds, and only the first time")
            #expect(try OutcomeRecordTests.attempts(shop) == claimed.map { [String($0.id), "1", "200", "w1"] })
            #expect(try OutcomeRecordTests.deliveries(shop) == [
                [String(taken.id), "sending", "2", "w2", "true"],
                [String(claimed[1].id), "succeeded", "1", nil, "false"],
            ])
        }

        // w2's own outcome of attempt 2 is a second row for that delivery, and completes it.
        let second = try DeliveryStore.record(connection, [OutcomeRecordTests.succeeded(taken, attempt: 2)], workerID: "w2", autoDisable: nil)
        #expect(second.updated == 1)
        #expect(try OutcomeRecordTests.attempts(shop) == [
            [String(taken.id), "1", "200", "w1"], [String(taken.id), "2", "200", "w2"], [String(claimed[1].id), "1", "200", "w1"],
        ])
        #expect(try OutcomeRecordTests.deliveries(shop)[0] == [String(taken.id), "succeeded", "2", nil, "false"])
    }

    @Test("outcomes that a statement cut off by a lost connection may have written are looked up: those on record are not written again, so a failure counts once in the health")
    func outcomesOnRecordAreNotWrittenAgain() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        let first = OutcomeRecordTests.failed(claimed[0])
        // Written and committed; say its acknowledgement was lost with the connection.
        _ = try DeliveryStore.record(connection, [first], workerID: "w1", autoDisable: nil)
        let health = "SELECT consecutive_failures FROM webhooky.webhook_health"
        #expect(try shop.column(health) == ["1"])

        let batch = [first, OutcomeRecordTests.failed(claimed[1])]
        let left = try DeliveryStore.unrecorded(connection, batch, workerID: "w1")
        #expect(left.map(\.deliveryID) == [claimed[1].id], "only the outcome not on record")
        #expect(try DeliveryStore.unrecorded(connection, batch, workerID: "w2").map(\.deliveryID) == claimed.map(\.id),
                "another worker's attempts are not this worker's")
        #expect(try DeliveryStore.unrecorded(connection, [], workerID: "w1").isEmpty)

        _ = try DeliveryStore.record(connection, left, workerID: "w1", autoDisable: nil)
        #expect(try shop.column(health) == ["2"], "two failures, each counted once")
        #expect(try OutcomeRecordTests.attempts(shop) == claimed.map { [String($0.id), "1", "503", "w1"] })
    }

    @Test("a delivery whose lease ran out is pending again, due now, its last_status no longer shows the answer to an earlier attempt beside the lease's error, and the attempt it counts has its row")
    func anExpiredLeaseClearsTheLastStatus() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        // Attempt 1 failed with a 503; attempt 2 is claimed by w1, which then dies.
        _ = try DeliveryStore.record(connection, [OutcomeRecordTests.failed(claimed[0])], workerID: "w1", autoDisable: nil)
        try shop.connection.execute("""
            UPDATE webhooky.deliveries SET state = 'sending', attempts = 2, claimed_by = 'w1', lease_expires_at = now() - interval '1 second'
             WHERE id = \(claimed[0].id)
            """)
        #expect(try DeliveryStore.reapExpiredLeases(connection) == 1)
        let row = try shop.connection.query("SELECT state, attempts, last_status, last_error, next_attempt_at <= now() FROM webhooky.deliveries WHERE id = $1",
                                            [String(claimed[0].id)]).rows
        #expect(row == [["pending", "2", nil, "lease expired: the worker that claimed it (w1) stopped or lost the database before recording the outcome", "t"]])
        // Every attempt counted has its row: attempt 2's says what became of it.
        #expect(try shop.connection.query("SELECT attempt, status, worker, error LIKE 'lease expired:%', duration_ms >= 0 FROM webhooky.attempts WHERE delivery_id = $1 ORDER BY attempt",
                                          [String(claimed[0].id)]).rows == [["1", "503", "w1", "f", "t"], ["2", nil, "w1", "t", "t"]])
        // w1, back after all, writes what became of attempt 2 beside that row (the delivery is
        // no longer its to move on).
        let late = [OutcomeRecordTests.succeeded(claimed[0], attempt: 2)]
        #expect(try DeliveryStore.unrecorded(connection, late, workerID: "w1").count == 1)
        #expect(try DeliveryStore.record(connection, late, workerID: "w1", autoDisable: nil).updated == 0)
        #expect(try shop.column("SELECT coalesce(status::text, 'none') FROM webhooky.attempts WHERE delivery_id = \(claimed[0].id) ORDER BY id") == ["503", "none", "200"])
        #expect(try DeliveryStore.unrecorded(connection, late, workerID: "w1").isEmpty)

        // A row someone holds locked (an uncommitted delete of its webhook) is left for a later
        // reap, not waited for: the dispatcher runs the reap.
        try shop.connection.execute("UPDATE webhooky.deliveries SET lease_expires_at = now() - interval '1 second' WHERE id = \(claimed[1].id)")
        let admin = try shop.database.connect()
        try admin.execute("BEGIN")
        try admin.query("SELECT FROM webhooky.deliveries WHERE id = $1 FOR UPDATE", [String(claimed[1].id)])
        try connection.execute("SET lock_timeout = '3s'")
        let started = ContinuousClock.now
        #expect(try DeliveryStore.reapExpiredLeases(connection) == 0)
        #expect(ContinuousClock.now - started < .seconds(2), "the reap waited for the lock")
        try admin.execute("COMMIT")
        #expect(try DeliveryStore.reapExpiredLeases(connection) == 1)
    }

    @Test("a reap reads the leases from shortly before the last reap's start, not every lease of the index (whose finished deliveries' entries stay until VACUUM): one that ran out long before is left to the full reap, the first, the first after a failed reap, and one every 5 minutes; whatever the session's DateStyle and TimeZone (a bound passed as timestamp text was read 16 hours off in Asia/Manila, or not at all in Asia/Jakarta)")
    func reapsReadFromTheLastReap() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        // Abbreviated zones that PostgreSQL reads back as other zones ('PST' as US Pacific), or not at all ('WIB').
        try connection.execute("SET DateStyle = 'SQL, MDY'; SET TimeZone = 'Asia/Manila'")
        var window = ReapWindow()
        #expect(try DeliveryStore.reapExpiredLeases(connection, window: &window) == 0)
        #expect(window.lastStart != nil && window.lastFull != nil)
        // One lease ran out an hour before that reap (a row an admin's transaction held through
        // every reap since), the other just now.
        try shop.connection.execute("""
            UPDATE webhooky.deliveries SET lease_expires_at = now() - interval '1 hour' WHERE id = \(claimed[0].id);
            UPDATE webhooky.deliveries SET lease_expires_at = now() - interval '1 millisecond' WHERE id = \(claimed[1].id);
            """)
        try connection.execute("SET TimeZone = 'Asia/Jakarta'")
        #expect(try DeliveryStore.reapExpiredLeases(connection, window: &window) == 1)
        #expect(try shop.column("SELECT id FROM webhooky.deliveries WHERE state = 'pending'") == [String(claimed[1].id)])
        // Within the margin before the last reap's start: read.
        try shop.connection.execute("UPDATE webhooky.deliveries SET lease_expires_at = now() - interval '4 minutes' WHERE id = \(claimed[0].id)")
        #expect(try DeliveryStore.reapExpiredLeases(connection, window: &window) == 1)
        // An hour old again: only a full reap takes it back, once its time has come.
        try shop.connection.execute("""
            UPDATE webhooky.deliveries SET state = 'sending', claimed_by = 'w1', lease_expires_at = now() - interval '1 hour' WHERE id = \(claimed[0].id)
            """)
        #expect(try DeliveryStore.reapExpiredLeases(connection, window: &window) == 0)
        window.fullEvery = .zero
        #expect(window.bound(at: .now) == "-Infinity")
        #expect(try DeliveryStore.reapExpiredLeases(connection, window: &window) == 1)
        // A failed reap: the next one reads every lease.
        window.fullEvery = .seconds(300)
        #expect(window.bound(at: .now) != "-Infinity")
        window.readEveryLeaseNext()
        #expect(window.bound(at: .now) == "-Infinity")
    }

    @Test("the outcome of a request that was in flight when its webhook was deleted is on record as an attempt, but brings back no health row for the deleted webhook")
    func noHealthForADeletedWebhook() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        try shop.connection.execute("DELETE FROM webhooky.webhooks")
        _ = try DeliveryStore.record(connection, [OutcomeRecordTests.failed(claimed[0])], workerID: "w1", autoDisable: nil)
        #expect(try shop.column("SELECT count(*) FROM webhooky.webhook_health") == ["0"])
        #expect(try OutcomeRecordTests.attempts(shop) == [[String(claimed[0].id), "1", "503", "w1"]])
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE id = \(claimed[0].id)") == ["dead"], "as the delete left it")
    }

    @Test("an outcome written while its webhook's delete is being committed (the statement waits for the deliveries the delete ends) leaves no health row for the deleted webhook: the statement still saw the webhook, and inserted one after the delete had removed it")
    func noHealthForAWebhookDeletedDuringTheWrite() throws {
        let (shop, _, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        let deleter = try shop.database.connect()
        try deleter.execute("BEGIN; DELETE FROM webhooky.webhooks")
        let record = OutcomeRecordTests.failed(claimed[0])
        // The outcome's statement waits for the deliveries the delete ends.
        let written = try shop.committing(deleter, whileWaiting: "WITH outcome AS%") {
            try DeliveryStore.record($0, [record], workerID: "w1", autoDisable: nil).updated
        }
        #expect(try #require(written).get() == 0, "the delete ended the delivery: no update of it")
        #expect(try shop.column("SELECT count(*) FROM webhooky.webhook_health") == ["0"])
        #expect(try OutcomeRecordTests.attempts(shop) == [[String(claimed[0].id), "1", "503", "w1"]], "the attempt is on record")
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE id = \(claimed[0].id)") == ["dead"], "as the delete left it")
    }
}

extension DeliveryStore {
    /// A reap that reads every lease, as a worker's first.
    static func reapExpiredLeases(_ connection: Connection) throws(PostgresError) -> Int {
        var window = ReapWindow()
        return try reapExpiredLeases(connection, window: &window)
    }
}
