import Foundation
import HTTPClient
import LoopbackReceiver
import Postgres
import Schema
import TestSupport
import Testing
@testable import Worker

/// `webhooky.deliveries.last_error_code`: the code of a delivery's last failure, beside
/// `last_error`, and the health view's use of the attempts' codes.
@Suite(.timeLimit(.minutes(10))) struct DeliveryErrorCodeTests {
    /// `state, last_status, last_error_code` of delivery `id`.
    static func outcome(_ shop: Shop, _ id: String) throws -> [String?] {
        try shop.connection.query("SELECT state, last_status::text, last_error_code FROM webhooky.deliveries WHERE id = $1", [id]).rows.first ?? []
    }

    /// A delivery of webhook `webhook` in `state`, of a new event of account `account` (or of
    /// event `eventID`, which need not exist); returns its id.
    static func addDelivery(_ shop: Shop, webhook: Int64, state: String = "pending", account: String? = nil, eventID: Int64? = nil) throws -> String {
        let event = try eventID.map(String.init) ?? shop.connection.query("""
            INSERT INTO webhooky.events (event, account_id, payload, webhook_ids, fanned_out)
            VALUES ('customer.credit_changed', $1, '{}', ARRAY[$2::bigint], true) RETURNING id
            """, [account, String(webhook)]).scalar
        return try shop.connection.query(
            "INSERT INTO webhooky.deliveries (event_id, webhook_id, state, claimed_by) VALUES ($1, $2, $3, CASE WHEN $3 = 'sending' THEN 'w9' END) RETURNING id",
            [event, String(webhook), state]).scalar.flatMap { $0 } ?? ""
    }

    @Test("the worker writes the last attempt's code on the delivery: timeout after a timeout, none after a 500, timeout again, none after the success")
    func workerWritesTheLastAttemptsCode() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, number in
            switch number {
            case 1, 3: .hang
            case 2: .status(500)
            default: .ok
            }
        }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/hook")
        var configuration = shop.workerConfiguration(retry: Array(repeating: .seconds(60), count: 5))
        configuration.http.requestTimeout = .milliseconds(500)
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.setCredit("3")
        let expected: [[String?]] = [["pending", nil, "timeout"], ["pending", "500", nil], ["pending", nil, "timeout"], ["succeeded", "200", nil]]
        for (index, outcome) in expected.enumerated() {
            let count = String(index + 1)
            #expect(try shop.waitFor("SELECT count(*) FROM webhooky.attempts") { $0 == count } == count)
            #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 != "sending" } == outcome[0])
            #expect(try DeliveryErrorCodeTests.outcome(shop, "1") == outcome, "after attempt \(count)")
            // The next attempt now, not in a minute.
            try shop.connection.execute("UPDATE webhooky.deliveries SET next_attempt_at = now() WHERE state = 'pending'")
        }
    }

    @Test("the lease reap marks the delivery lease_expired, and the worker's late outcome, written beside it, leaves it so")
    func reapWritesLeaseExpired() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        try shop.connection.execute("UPDATE webhooky.deliveries SET lease_expires_at = now() - interval '1 second' WHERE id = \(claimed[0].id)")
        #expect(try DeliveryStore.reapExpiredLeases(connection) == 1)
        #expect(try DeliveryErrorCodeTests.outcome(shop, String(claimed[0].id)) == ["pending", nil, "lease_expired"])
        _ = try DeliveryStore.record(connection, [OutcomeRecordTests.succeeded(claimed[0])], workerID: "w1", autoDisable: nil)
        #expect(try DeliveryErrorCodeTests.outcome(shop, String(claimed[0].id)) == ["pending", nil, "lease_expired"])
    }

    @Test("deliveries ended dead by a change of their webhook or the loss of their event carry its code: webhook_deleted (a delete, or the worker's sweep of a deleted webhook's deliveries), webhook_moved, event_deleted")
    func endingsHaveTheirCode() throws {
        let shop = try Shop()
        let deleted = try shop.addWebhook(url: "https://erp.example/deleted", enabled: false)
        let pending = try DeliveryErrorCodeTests.addDelivery(shop, webhook: deleted)
        let sending = try DeliveryErrorCodeTests.addDelivery(shop, webhook: deleted, state: "sending")
        try shop.connection.execute("DELETE FROM webhooky.webhooks WHERE id = \(deleted)")
        #expect(try DeliveryErrorCodeTests.outcome(shop, pending) == ["dead", nil, "webhook_deleted"])
        #expect(try DeliveryErrorCodeTests.outcome(shop, sending) == ["dead", nil, "webhook_deleted"])

        let moved = try shop.addWebhook(url: "https://erp.example/moved", enabled: false)
        let otherAccount = try DeliveryErrorCodeTests.addDelivery(shop, webhook: moved, account: "shop-7")
        let ownAccount = try DeliveryErrorCodeTests.addDelivery(shop, webhook: moved, account: "shop-42")
        try shop.connection.execute("UPDATE webhooky.webhooks SET account_id = 'shop-42' WHERE id = \(moved)")
        #expect(try DeliveryErrorCodeTests.outcome(shop, otherAccount) == ["dead", nil, "webhook_moved"])
        #expect(try DeliveryErrorCodeTests.outcome(shop, ownAccount) == ["pending", nil, nil])

        // Created by a fan-out that read the webhook before its delete committed.
        let orphan = try DeliveryErrorCodeTests.addDelivery(shop, webhook: deleted)
        let connection = try FanOutTests.session(shop)
        #expect(try DeliveryStore.endDeliveriesOfDeletedWebhooks(connection) == 1)
        #expect(try DeliveryErrorCodeTests.outcome(shop, orphan) == ["dead", nil, "webhook_deleted"])

        let live = try shop.addWebhook(url: "https://erp.example/live")
        let withoutEvent = try DeliveryErrorCodeTests.addDelivery(shop, webhook: live, eventID: 999_999)
        #expect(try DeliveryStore.claim(connection, limit: 10, workerID: "w1", lease: .seconds(60), room: 10, rooms: [:]).isEmpty)
        #expect(try DeliveryErrorCodeTests.outcome(shop, withoutEvent) == ["dead", nil, "event_deleted"])
    }

    @Test("the upgrade to schema version 56 codes the deliveries whose code is exact: Webhooky's own texts, and the code of the attempt that wrote last_error; the others keep none")
    func upgradeCodesOnlyWhatIsExact() throws {
        let connection = try TestCluster.newDatabase(atSchemaVersion: 55)
        try connection.execute("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, last_status, last_error) VALUES
                (1, 1, 'dead', 1, NULL, 'webhook deleted'),
                (2, 1, 'dead', 0, NULL, 'webhook moved to another account: this event is not of its account'),
                (3, 1, 'dead', 0, NULL, 'event deleted'),
                (4, 1, 'pending', 2, NULL, '\(DeliveryStore.leaseExpiredPrefix)the worker that claimed it (w1) stopped or lost the database before recording the outcome'),
                (5, 1, 'pending', 2, NULL, 'Operation timed out after 500 milliseconds with 0 bytes received'),
                (6, 1, 'pending', 2, NULL, 'Connection refused'),
                (7, 1, 'pending', 1, 503, 'HTTP 503'),
                (8, 1, 'succeeded', 2, 200, NULL);
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, error, error_code, worker) VALUES
                (5, 1, 1, now(), 1, NULL, 'Connection refused', 'connect_failure', 'w1'),
                (5, 1, 2, now(), 1, NULL, 'Operation timed out after 500 milliseconds with 0 bytes received', 'timeout', 'w1'),
                (6, 1, 2, now(), 1, NULL, 'Connection refused', NULL, 'w1'),
                (7, 1, 1, now(), 1, 503, 'HTTP 503', NULL, 'w1'),
                (8, 1, 1, now(), 1, NULL, 'Operation timed out after 500 milliseconds with 0 bytes received', 'timeout', 'w1'),
                (8, 1, 2, now(), 1, 200, NULL, NULL, 'w1')
            """)
        try Migrator(connection: connection).migrate()
        #expect(try connection.column("SELECT coalesce(last_error_code, 'none') FROM webhooky.deliveries ORDER BY event_id")
                == ["webhook_deleted", "webhook_moved", "event_deleted", "lease_expired", "timeout", "none", "none", "none"])
    }

    @Test("the health view leaves the lease reap's rows out of p50/p95 by their code, and by their text when they have none; it shows the last attempt's code")
    func healthLeavesOutLeaseExpiryRowsByCode() throws {
        let shop = try Shop()
        let webhook = String(try shop.addWebhook(url: "https://erp.example/x"))
        try shop.connection.query("""
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, error, error_code, worker)
            VALUES (1, $1, 1, now() - interval '5 minutes', 10, 200, NULL, NULL, 'w1'),
                   (2, $1, 1, now() - interval '4 minutes', 30, 500, NULL, NULL, 'w1'),
                   (3, $1, 1, now() - interval '3 minutes', 60000, NULL, 'the worker that claimed it (w1) stopped', 'lease_expired', 'w1'),
                   (4, $1, 1, now() - interval '2 minutes', 90000, NULL, 'lease expired: the worker that claimed it (w1) stopped', NULL, 'w1'),
                   (5, $1, 1, now() - interval '1 minute', 50, NULL, 'Connection timed out after 50 milliseconds', 'timeout', 'w1')
            """, [webhook])
        #expect(try shop.connection.query("SELECT p50_ms::text, p95_ms::text, last_error_code FROM webhooky.health").rows
                == [["30.0", "48.0", "timeout"]])
    }

    @Test("the column's comment names every code a delivery can have beyond the attempts'")
    func commentNamesTheDeliveriesOwnCodes() throws {
        let shop = try Shop()
        let comment = try #require(try shop.column("SELECT col_description('webhooky.deliveries'::regclass, attnum) FROM pg_attribute WHERE attrelid = 'webhooky.deliveries'::regclass AND attname = 'last_error_code'").first ?? nil)
        for code in [DeliveryStore.webhookDeletedCode, "webhook_moved", DeliveryStore.eventDeletedCode, DeliveryStore.leaseExpiredCode, DeliveryStore.invalidRequestCode] {
            #expect(comment.contains(code), "the comment does not name \(code)")
        }
    }
}
