import HTTPClient
import Foundation
import LoopbackReceiver
import Postgres
import Schema
import Synchronization
import TestSupport
import Testing
import Worker

/// The admin's SQL: test deliveries, redelivery, health, retention, upgrades, roles.
@Suite(.timeLimit(.minutes(10))) struct AdminTests {
    @Test("send_test: the sample payload, a given one or a past event's; sent even while the webhook is disabled; marked as a test")
    func sendTest() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/t?id=#customer.id#", body: ##"{"tier": "#customer.tier.name#"}"##, enabled: false)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        let first = try #require(shop.column("SELECT webhooky.send_test($1)", [String(webhook)]).first ?? nil)
        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.target == "/t?id=1001")
        #expect(request.bodyText == #"{"tier": "Gold"}"#)
        #expect(request.header("webhook-id") == (try shop.messageID(first)))
        #expect(request.header("webhooky-test") == "true", "the receiver can tell the sample payload from a real event")
        // \df+ says so too.
        #expect(try shop.column("SELECT obj_description('webhooky.send_test(bigint,jsonb,bigint)'::regprocedure)").first??.hasSuffix("with the header webhooky-test: true.") == true)
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries WHERE id = \(first)") { $0 == "succeeded" } == "succeeded")
        #expect(try shop.column("SELECT is_test::text FROM webhooky.deliveries WHERE id = $1", [first]) == ["true"])

        try shop.connection.query("SELECT webhooky.send_test($1, $2::jsonb)", [String(webhook), #"{"customer": {"id": 9007199254740993, "tier": {"name": "Given"}}}"#])
        #expect(receiver.waitForRequests(2).last?.target == "/t?id=9007199254740993")
        try shop.connection.execute("UPDATE webhooky.webhooks SET enabled = true")
        try shop.setCredit("5")  // a real event, then a test from it
        #expect(receiver.waitForRequests(3).count == 3)
        #expect(receiver.requests[2].header("webhooky-test") == nil, "a real event's request is not marked")
        let event = try #require(shop.column("SELECT max(id) FROM webhooky.events WHERE NOT is_test").first ?? nil)
        try shop.connection.query("SELECT webhooky.send_test($1, from_event => $2)", [String(webhook), event])
        #expect(receiver.waitForRequests(4).last?.bodyText == #"{"tier": "Silver"}"#)
        #expect(receiver.requests[3].header("webhooky-test") == "true")
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE is_test") == ["3"])

        do {
            try shop.connection.query("SELECT webhooky.send_test(424242)")
            Issue.record("a test of a missing webhook was accepted")
        } catch {
            #expect(error.message == "webhooky.send_test: there is no webhook 424242")
        }
    }

    @Test("a test delivery is marked webhooky-test: true on every attempt (a retry, a redelivery) and the signature verifies as usual; a webhook's own header of that name (saved before migration 0062 refused it) gives way on tests and is never sent with a real event")
    func testDeliveriesAreMarkedOnEveryAttempt() throws {
        let shop = try Shop()
        let answers = Mutex<[Reply]>([.status(500), .ok, .ok, .ok])
        let receiver = try LoopbackReceiver { _, _ in answers.withLock { $0.isEmpty ? .ok : $0.removeFirst() } }
        let (secret, key) = SignatureComplianceTests.secret(bytes: 32)
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/t", body: ##"{"id": #customer.id#}"##, secret: secret)
        // A row saved before migration 0062, which refuses the header now.
        try shop.connection.execute("""
            ALTER TABLE webhooky.webhooks DISABLE TRIGGER check_webhook_test_header;
            UPDATE webhooky.webhooks SET headers = '{"Webhooky-Test": "true"}' WHERE id = \(webhook);
            ALTER TABLE webhooky.webhooks ENABLE TRIGGER check_webhook_test_header;
            """)
        let worker = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(50)]))
        defer { worker.stop() }

        let test = try #require(shop.column("SELECT webhooky.send_test($1)", [String(webhook)]).first ?? nil)
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries WHERE id = \(test)") { $0 == "succeeded" } == "succeeded")
        try shop.connection.query("SELECT webhooky.redeliver($1)", [test])
        #expect(receiver.waitForRequests(3).count == 3)
        try shop.setCredit("7")
        let requests = receiver.waitForRequests(4)
        try #require(requests.count == 4)
        for request in requests.prefix(3) {
            #expect(request.headers.filter { $0.name.lowercased() == "webhooky-test" }.map(\.value) == ["true"], "attempt 1 (500), its retry, the redelivery")
            #expect(request.header("webhook-id") == (try shop.messageID(test)))
        }
        #expect(requests[3].headers.filter { $0.name.lowercased() == "webhooky-test" }.isEmpty, "a real event never looks like a test")
        for request in requests {
            let timestamp = try #require(request.header("webhook-timestamp").flatMap { Int($0) })
            #expect(request.header("webhook-signature") == SignatureComplianceTests.expected(
                key: key, id: request.header("webhook-id") ?? "", timestamp: timestamp, body: request.body))
        }
    }

    @Test("a test delivery and a redelivery go out at once when the worker is idle, not at its next poll")
    func testsAndRedeliveriesDoNotWaitForThePoll() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/t")
        var configuration = shop.workerConfiguration()
        configuration.pollInterval = .seconds(60)  // only a NOTIFY can find them
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE wants_wakeup") { $0 == "1" }
        Thread.sleep(forTimeInterval: 0.5)  // past the quick looks after going idle

        var started = ContinuousClock.now
        let test = try #require(shop.column("SELECT webhooky.send_test($1)", [String(webhook)]).first ?? nil)
        #expect(receiver.waitForRequests(1, timeout: .seconds(10)).count == 1)
        #expect(ContinuousClock.now - started < .seconds(3), "the test waited \(ContinuousClock.now - started)")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries WHERE id = \(test)") { $0 == "succeeded" } == "succeeded")

        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE wants_wakeup") { $0 == "1" }
        Thread.sleep(forTimeInterval: 0.5)
        started = ContinuousClock.now
        try shop.connection.query("SELECT webhooky.redeliver($1)", [test])
        #expect(receiver.waitForRequests(2, timeout: .seconds(10)).count == 2)
        #expect(ContinuousClock.now - started < .seconds(3), "the redelivery waited \(ContinuousClock.now - started)")
    }

    /// A running worker with a 60 s poll (only a NOTIFY finds a test delivery sooner), a webhook
    /// of credit changes to `stream` (the traffic) and one of tier changes to `receiver` (no
    /// traffic), the one to test: its id is `tested`. `stream` answers after `streamDelay`.
    static func workerWithTrafficAndATestedWebhook(_ shop: Shop, streamDelay: Duration = .zero) throws
        -> (stream: LoopbackReceiver, receiver: LoopbackReceiver, tested: Int64, worker: RunningWorker) {
        let stream = try LoopbackReceiver { _, _ in .respond(status: 200, body: "ok", delay: streamDelay) }
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: stream.baseURL + "/stream")
        let tested = try shop.addWebhook(event: "customer.tier_changed", url: receiver.baseURL + "/t", name: "tested")
        var configuration = shop.workerConfiguration()
        configuration.pollInterval = .seconds(60)
        return (stream, receiver, tested, RunningWorker(configuration))
    }

    @Test("a test delivery and a redelivery go out at once (a fraction of a second, a few on a loaded machine) also while a backlog keeps every fan-out busy (the worker asking for no NOTIFY), not at its next poll (60 s) nor after the backlog")
    func testsAndRedeliveriesDoNotWaitForABusyWorker() throws {
        let shop = try Shop()
        let backlog = 10_000
        try shop.addCustomers(backlog)
        // 10 ms per request and 64 at once: the backlog takes 1.6 s or more on any machine.
        let (stream, receiver, webhook, worker) = try AdminTests.workerWithTrafficAndATestedWebhook(shop, streamDelay: .milliseconds(10))
        defer { worker.stop() }
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND \(100_000 + backlog)")
        _ = stream.waitForRequests(200, timeout: .seconds(20))
        Thread.sleep(forTimeInterval: 0.2)  // busy for a while: each fan-out finds events
        #expect(try shop.column("SELECT wants_wakeup FROM webhooky.workers") == ["f"])

        var started = ContinuousClock.now
        let test = try #require(shop.column("SELECT webhooky.send_test($1)", [String(webhook)]).first ?? nil)
        #expect(receiver.waitForRequests(1, timeout: .seconds(30)).count == 1)
        #expect(ContinuousClock.now - started < .seconds(5), "the test waited \(ContinuousClock.now - started)")
        #expect(stream.requests.count < backlog, "the test went out while the backlog was being sent, not after it")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries WHERE id = \(test)") { $0 == "succeeded" } == "succeeded")

        started = ContinuousClock.now
        try shop.connection.query("SELECT webhooky.redeliver($1)", [test])
        #expect(receiver.waitForRequests(2, timeout: .seconds(30)).count == 2)
        #expect(ContinuousClock.now - started < .seconds(5), "the redelivery waited \(ContinuousClock.now - started)")
        #expect(stream.waitForRequests(backlog, timeout: .seconds(60)).count == backlog)
    }

    @Test("test deliveries go out at once (a fraction of a second, a few on a loaded machine) also while a stream of single-event transactions (one every few ms) keeps the worker between busy and idle, not at its next poll (60 s)")
    func testsDoNotWaitForThePollDuringAStream() throws {
        let shop = try Shop()
        let (stream, receiver, webhook, worker) = try AdminTests.workerWithTrafficAndATestedWebhook(shop)
        defer { worker.stop() }
        let streaming = Mutex(true)
        let streamEnded = DispatchSemaphore(value: 0)
        let database = shop.database
        Thread {
            defer { streamEnded.signal() }
            guard let connection = try? database.connect() else { return }
            while streaming.withLock({ $0 }) {
                _ = try? connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = \(Shop.customerID)")
                Thread.sleep(forTimeInterval: Double.random(in: 0.001...0.004))
            }
        }.start()
        defer {
            streaming.withLock { $0 = false }
            streamEnded.wait()
        }
        _ = stream.waitForRequests(50, timeout: .seconds(20))
        var slowest = Duration.zero
        for round in 1...20 {
            let started = ContinuousClock.now
            _ = try shop.column("SELECT webhooky.send_test($1)", [String(webhook)])
            #expect(receiver.waitForRequests(round, timeout: .seconds(10)).count == round)
            slowest = max(slowest, ContinuousClock.now - started)
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(slowest < .seconds(5), "a test delivery waited \(slowest)")
        #expect(stream.requests.count > 200, "the stream went on meanwhile")
    }

    @Test("a test delivery of a webhook whose own queue is being claimed goes out after the NOTIFY, also when the worker claimed deliveries due later than the test's while the test's transaction was open")
    func aTestOfABusyWebhookDoesNotWaitBehindItsClaimCursor() throws {
        let shop = try Shop()
        try shop.addCustomers(40)
        // 100 ms per request and 2 at once: the 40 events' deliveries are left pending and claimed
        // one by one as requests end, for 2 s.
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, body: "ok", delay: .milliseconds(100)) }
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/busy")
        var configuration = shop.workerConfiguration()
        configuration.pollInterval = .seconds(60)  // only the NOTIFY finds the test sooner
        configuration.maximumInFlightPerEndpoint = 2
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE wants_wakeup") { $0 == "1" }

        // The admin's transaction: the test delivery is due at its start, committed later.
        let admin = try shop.database.connect()
        try admin.execute("BEGIN")
        let test = try #require(admin.column("SELECT webhooky.send_test($1)", [String(webhook)]).first ?? nil)
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100040")
        // Deliveries created after the test's start, claimed from the webhook's queue meanwhile.
        #expect(receiver.waitForRequests(6, timeout: .seconds(10)).count >= 6)
        try admin.execute("COMMIT")
        let committed = ContinuousClock.now

        let deadline = committed + .seconds(5)
        let testID = try shop.messageID(test)
        while ContinuousClock.now < deadline && !receiver.requests.contains(where: { $0.header("webhook-id") == testID }) {
            Thread.sleep(forTimeInterval: 0.01)
        }
        let waited = ContinuousClock.now - committed
        #expect(waited < .seconds(1), "the test delivery waited \(waited) (the next poll is 60 s away)")
        #expect(receiver.waitForRequests(41, timeout: .seconds(20)).count == 41)
    }

    @Test("a paused webhook's waiting deliveries go out at once when it is enabled again, not at the next poll")
    func enablingAWebhookSendsItsWaitingDeliveries() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/paused")
        try shop.setCredit("1")  // recorded before any worker runs; then the webhook is paused
        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(webhook)])
        var configuration = shop.workerConfiguration()
        configuration.pollInterval = .seconds(60)  // only a NOTIFY can find them
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "pending" } == "pending")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(receiver.requests.isEmpty, "a paused webhook sends nothing")

        let started = ContinuousClock.now
        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(webhook)])
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        #expect(ContinuousClock.now - started < .seconds(5), "the resumed delivery waited \(ContinuousClock.now - started)")  // the poll: 60 s
        #expect(receiver.requests.count == 1)
        // The trigger still runs as its owner (a tenant enabling its webhook resets its health).
        #expect(try shop.column("SELECT prosecdef FROM pg_proc WHERE oid = 'webhooky.on_webhook_change'::regproc") == ["t"])
    }

    @Test("a webhook disabled by Webhooky sends its deliveries waiting for a retry as soon as it is enabled again")
    func enablingSendsDeliveriesWaitingForARetry() throws {
        let shop = try Shop()
        let fixed = Atomic(false)
        let receiver = try LoopbackReceiver { _, _ in fixed.load(ordering: .relaxed) ? .ok : .status(410) }
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/gone")
        let worker = RunningWorker(shop.workerConfiguration(retry: [.seconds(3600)]))
        defer { worker.stop() }
        try shop.setCredit("2")
        // 410 Gone: the webhook is disabled, its delivery waits for a retry an hour away.
        #expect(try shop.waitFor("SELECT enabled::text FROM webhooky.webhooks WHERE id = \(webhook)") { $0 == "false" } == "false")
        #expect(try shop.waitFor("SELECT attempts::text || ' ' || state FROM webhooky.deliveries") { $0 == "1 pending" } == "1 pending")
        #expect(try shop.column("SELECT (next_attempt_at > now() + interval '30 minutes')::text FROM webhooky.deliveries") == ["true"])

        // The endpoint works again; the admin does what doctor says: enable the webhook.
        fixed.store(true, ordering: .relaxed)
        let started = ContinuousClock.now
        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(webhook)])
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries", timeout: .seconds(5)) { $0 == "succeeded" } == "succeeded",
                "the delivery still waits for its retry after the webhook was enabled")
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(receiver.requests.count == 2)
    }

    @Test("redeliver: a dead delivery goes out again with the same webhook-id and a fresh schedule")
    func redeliverOne() throws {
        let shop = try Shop()
        let healthy = Atomic(false)
        let receiver = try LoopbackReceiver { _, _ in healthy.load(ordering: .relaxed) ? .ok : .status(500) }
        try shop.addWebhook(url: receiver.baseURL + "/r")
        let worker = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(50)]))
        defer { worker.stop() }
        try shop.setCredit("6")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "dead" } == "dead")
        let id = try #require(shop.column("SELECT id FROM webhooky.deliveries").first ?? nil)
        do {
            try shop.connection.query("SELECT webhooky.redeliver(424242)")
            Issue.record("redelivered a missing delivery")
        } catch {
            #expect(error.message == "webhooky.redeliver: there is no delivery 424242")
        }

        healthy.store(true, ordering: .relaxed)
        try shop.connection.query("SELECT webhooky.redeliver($1)", [id])
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        let ids = receiver.requests.compactMap { $0.header("webhook-id") }
        let messageID = try shop.messageID(id)
        #expect(ids == [messageID, messageID, messageID])
        #expect(try shop.connection.query("SELECT attempt, status FROM webhooky.attempts ORDER BY attempt").rows == [["1", "500"], ["2", "500"], ["3", "200"]])
        do {
            try shop.connection.execute("UPDATE webhooky.deliveries SET state = 'pending'")
            try shop.connection.query("SELECT webhooky.redeliver($1)", [id])
            Issue.record("redelivered a pending delivery")
        } catch {
            #expect(error.message == "webhooky.redeliver: delivery \(id) is pending; it will be sent without being redelivered")
        }
    }

    @Test("redeliver of a pending delivery says what holds it back: its disabled webhook, or the time of its next retry")
    func redeliverOfAPendingDeliverySaysWhy() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "https://erp.example/x")
        try shop.setCredit("8")  // no worker: the delivery is created by hand
        let id = try #require(shop.column("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id) SELECT id, \(webhook) FROM webhooky.events RETURNING id
            """).first ?? nil)
        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(webhook)])
        do {
            try shop.connection.query("SELECT webhooky.redeliver($1)", [id])
            Issue.record("redelivered a pending delivery")
        } catch {
            #expect(error.message == "webhooky.redeliver: delivery \(id) is pending, held while its webhook \(webhook) is disabled; it will be sent once the webhook is enabled")
            #expect(error.hint == "Enable the webhook (its pending deliveries are then due at once): UPDATE webhooky.webhooks SET enabled = true WHERE id = \(webhook);")
        }

        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(webhook)])
        try shop.connection.query("UPDATE webhooky.deliveries SET attempts = 3, next_attempt_at = now() + interval '3 hours 5 minutes' WHERE id = $1", [id])
        do {
            try shop.connection.query("SELECT webhooky.redeliver($1)", [id])
            Issue.record("redelivered a pending delivery")
        } catch {
            #expect(error.message == "webhooky.redeliver: delivery \(id) is pending; it will be sent without being redelivered")
            #expect(error.hint?.hasPrefix("It waits for its next retry, due at ") == true, "\(error.hint ?? "no hint")")
            #expect(error.hint?.contains("(in 03:0") == true, "\(error.hint ?? "no hint")")
        }

        try shop.connection.query("UPDATE webhooky.deliveries SET next_attempt_at = now() WHERE id = $1", [id])
        do {
            try shop.connection.query("SELECT webhooky.redeliver($1)", [id])
            Issue.record("redelivered a pending delivery")
        } catch {
            #expect(error.hint == "It is due now: a worker sends it within moments.")
        }
        #expect(try shop.connection.query("SELECT state FROM webhooky.deliveries WHERE id = $1", [id]).rows == [["pending"]])
    }

    @Test("redeliver of a delivery whose webhook was deleted says so, instead of that the delivery does not exist")
    func redeliverOfADeletedWebhooksDelivery() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "https://erp.example/x")
        try shop.setCredit("7")  // no worker: the delivery is created by hand
        let id = try #require(shop.column("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id) SELECT id, \(webhook) FROM webhooky.events RETURNING id
            """).first ?? nil)
        try shop.connection.query("DELETE FROM webhooky.webhooks WHERE id = $1", [String(webhook)])
        #expect(try shop.connection.query("SELECT state, last_error FROM webhooky.deliveries WHERE id = $1", [id]).rows == [["dead", "webhook deleted"]])
        do {
            try shop.connection.query("SELECT webhooky.redeliver($1)", [id])
            Issue.record("redelivered a delivery whose webhook is gone")
        } catch {
            #expect(error.message == "webhooky.redeliver: delivery \(id) was for webhook \(webhook), which has been deleted: there is nothing to send it to")
            #expect(error.hint == "Send the event again through another webhook with SELECT webhooky.send_test(WEBHOOK_ID, from_event => EVENT_ID) (its event id: SELECT event_id FROM webhooky.deliveries WHERE id = \(id)).")
        }
        #expect(try shop.connection.query("SELECT state FROM webhooky.deliveries WHERE id = $1", [id]).rows == [["dead"]])
    }

    @Test("redeliver of a delivery that a prune deletes meanwhile reports it missing, instead of doing nothing")
    func redeliverRacingAPrune() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "https://erp.example/x")
        let id = try #require(try shop.connection.query("""
            WITH e AS (INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out) VALUES ('customer.credit_changed', '{}', ARRAY[$1::bigint], true) RETURNING id)
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, completed_at) SELECT id, $1, 'succeeded', 1, now() FROM e RETURNING id
            """, [String(webhook)]).scalar)
        // A prune has deleted the delivery and not committed yet when the admin redelivers it.
        let pruner = try shop.database.connect()
        try pruner.execute("BEGIN")
        try pruner.query("DELETE FROM webhooky.deliveries WHERE id = $1", [id])
        let database = shop.database
        let outcome = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            do {
                let admin = try database.connect()
                try admin.query("SELECT webhooky.redeliver($1)", [id])
                outcome.withLock { $0 = "redelivered" }
            } catch let error as PostgresError {
                outcome.withLock { $0 = error.message }
            } catch {
                outcome.withLock { $0 = "\(error)" }
            }
            done.signal()
        }.start()
        // The redeliver waits for the prune's row lock (before 0009 it read the row first, then
        // its UPDATE found nothing once the prune committed, and it returned as if redelivered).
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%webhooky.redeliver%'"
        #expect(try shop.waitFor(waiting) { $0 == "1" } == "1")
        try pruner.execute("COMMIT")
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(outcome.withLock { $0 } == "webhooky.redeliver: there is no delivery \(id)")
    }

    @Test func redeliverAWebhooksDeadDeliveriesInATimeRange() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "https://erp.example/x")
        try shop.connection.query("""
            INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out, created_at)
            SELECT 'customer.credit_changed', '{}', ARRAY[$1::bigint], true, now() - n * interval '1 hour' FROM generate_series(1, 6) n
            """, [String(webhook)])
        try shop.connection.query("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, created_at, completed_at)
            SELECT id, $1, CASE WHEN id % 2 = 0 THEN 'dead' ELSE 'succeeded' END, 12, created_at, created_at FROM webhooky.events
            """, [String(webhook)])
        let deadInRange = try shop.column("SELECT webhooky.redeliver_webhook($1, now() - interval '4 hours')", [String(webhook)])
        #expect(deadInRange == ["1"], "of the events 1..3 hours old, only one is dead")
        let allInRange = try shop.column("SELECT webhooky.redeliver_webhook($1, now() - interval '10 hours', include_succeeded => true)", [String(webhook)])
        #expect(allInRange == ["5"], "the five others, dead or succeeded")
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE state = 'pending' AND retry_base = 12") == ["6"])
    }

    @Test("redeliver_webhook, the bulk resend after an outage, leaves dead test deliveries out (it sent their sample payloads to the receiver as if they were missed events); redeliver sends one again on purpose")
    func bulkRedeliveryLeavesTestsOut() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "https://erp.example/x")
        try shop.connection.query("""
            INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out, created_at, is_test)
            SELECT 'customer.credit_changed', '{}', ARRAY[$1::bigint], true, now() - n * interval '1 hour', n > 2 FROM generate_series(1, 4) n
            """, [String(webhook)])
        try shop.connection.query("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, created_at, completed_at, is_test)
            SELECT id, $1, 'dead', 12, created_at, created_at, is_test FROM webhooky.events ORDER BY id
            """, [String(webhook)])
        #expect(try shop.column("SELECT webhooky.redeliver_webhook($1, now() - interval '1 day', include_succeeded => true)", [String(webhook)]) == ["2"])
        #expect(try shop.column("SELECT format('%s %s', is_test, state) FROM webhooky.deliveries ORDER BY id")
                == ["f pending", "f pending", "t dead", "t dead"])
        let test = try #require(shop.column("SELECT min(id) FROM webhooky.deliveries WHERE is_test").first ?? nil)
        try shop.connection.query("SELECT webhooky.redeliver($1)", [test])
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE id = $1", [test]) == ["pending"])
    }

    @Test("redeliver_webhook refuses a missing end of its time range and a range that ends before it starts, saying what to pass: it sent nothing and answered 0, as if nothing had died")
    func redeliverWebhookRefusesNonsense() throws {
        let shop = try Shop()
        let webhook = String(try shop.addWebhook(url: "https://erp.example/x"))
        try shop.connection.query("""
            INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out) VALUES ('customer.credit_changed', '{}', ARRAY[$1::bigint], true)
            """, [webhook])
        try shop.connection.query("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, completed_at) SELECT id, $1, 'dead', 12, now() FROM webhooky.events
            """, [webhook])
        for (range, message) in [
            ("NULL", "webhooky.redeliver_webhook: since and until must not be NULL"),
            ("now() - interval '1 day', NULL", "webhooky.redeliver_webhook: since and until must not be NULL"),
            ("now() + interval '1 day', now() - interval '1 day'", "webhooky.redeliver_webhook: since must be before until (the deliveries created in [since, until) are sent again)"),
        ] {
            do {
                try shop.connection.query("SELECT webhooky.redeliver_webhook($1, \(range))", [webhook])
                Issue.record("redeliver_webhook took \(range)")
            } catch {
                #expect(error.message == message)
                #expect(error.sqlState == "22023")
                #expect(error.hint?.isEmpty == false)
            }
        }
        #expect(try shop.column("SELECT state FROM webhooky.deliveries") == ["dead"])
        #expect(try shop.column("SELECT webhooky.redeliver_webhook($1, now() - interval '1 day')", [webhook]) == ["1"])
    }

    @Test("send_test with both a payload and from_event, and variables with a negative recent_events, are refused saying what to pass: the first tested with the payload and ignored the event, the second failed with 'LIMIT must not be negative' and a page of SQL")
    func adminFunctionsRefuseConflictingArguments() throws {
        let shop = try Shop()
        let webhook = String(try shop.addWebhook(url: "https://erp.example/x"))
        try shop.setCredit("5")
        let event = try #require(shop.column("SELECT max(id) FROM webhooky.events").first ?? nil)
        let before = try shop.column("SELECT count(*) FROM webhooky.deliveries")
        for (statement, parameters, message) in [
            ("SELECT webhooky.send_test($1, '{\"customer\": {\"id\": 7}}', from_event => $2)", [webhook, event],
             "webhooky.send_test: give a payload or from_event, not both"),
            ("SELECT * FROM webhooky.variables('customer.credit_changed', -1)", [],
             "webhooky.variables: recent_events must be 0 or more, not -1"),
        ] as [(String, [String?], String)] {
            do {
                try shop.connection.query(statement, parameters)
                Issue.record("\(statement) was accepted")
            } catch {
                #expect(error.message == message)
                #expect(error.sqlState == "22023")
                #expect(error.hint?.isEmpty == false)
            }
        }
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries") == before, "no test delivery was made")
        #expect(try shop.column("SELECT variable FROM webhooky.variables('customer.credit_changed', 0) WHERE variable = 'customer.id'") == ["customer.id"])
    }

    @Test("the health view: one row per webhook with its backlog, outcomes, failures and timings")
    func healthView() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { request, _ in request.target.hasPrefix("/bad") ? .status(503, body: "down") : .ok }
        let good = try shop.addWebhook(url: receiver.baseURL + "/good", name: "good")
        let bad = try shop.addWebhook(url: receiver.baseURL + "/bad", name: "bad")
        let paused = try shop.addWebhook(url: receiver.baseURL + "/paused", enabled: true, name: "paused")
        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(paused)])
        let worker = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(50)]))
        defer { worker.stop() }
        for credit in ["1", "2", "3"] { try shop.setCredit(credit) }
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state IN ('succeeded', 'dead')") { $0 == "6" }
        let rows = try shop.connection.query("""
            SELECT webhook_id, name, enabled, pending, succeeded_24h, dead_24h, consecutive_failures, last_status, last_error,
                   p50_ms IS NOT NULL, p95_ms >= p50_ms
              FROM webhooky.health ORDER BY webhook_id
            """).rows
        #expect(rows == [
            [String(good), "good", "t", "0", "3", "0", "0", "200", nil, "t", "t"],
            [String(bad), "bad", "t", "0", "0", "3", "6", "503", "HTTP 503 (gave up after 2 attempts)", "t", "t"],
            [String(paused), "paused", "f", "0", "0", "0", "0", nil, nil, "f", nil],
        ])
    }

    @Test("the health view's oldest pending age counts a redelivered delivery from its redelivery, not from its creation days ago")
    func redeliveredDeliveriesWaitFromTheirRedelivery() throws {
        let (shop, webhook) = try Self.twoEventsOfAPausedWebhook()
        // A delivery that died three days ago, and one pending for two hours.
        try shop.connection.query("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, created_at, completed_at)
            SELECT id, $1, CASE WHEN id = (SELECT min(id) FROM webhooky.events) THEN 'dead' ELSE 'pending' END, 1,
                   now() - CASE WHEN id = (SELECT min(id) FROM webhooky.events) THEN interval '3 days' ELSE interval '2 hours' END,
                   CASE WHEN id = (SELECT min(id) FROM webhooky.events) THEN now() - interval '1 day' END
              FROM webhooky.events
            """, [webhook])
        try shop.connection.execute("UPDATE webhooky.events SET fanned_out = true")
        let oldest = "SELECT extract(epoch FROM oldest_pending_age)::integer / 60 FROM webhooky.health"
        #expect(try shop.column(oldest) == ["120"])
        let dead = try #require(shop.column("SELECT id FROM webhooky.deliveries WHERE state = 'dead'").first ?? nil)
        try shop.connection.query("SELECT webhooky.redeliver($1)", [dead])
        #expect(try shop.column(oldest) == ["120"], "the redelivered one waits from now, the other still from two hours ago")
        try shop.connection.query("DELETE FROM webhooky.deliveries WHERE id <> $1", [dead])
        #expect(try shop.column(oldest) == ["0"])
        try shop.connection.query("UPDATE webhooky.deliveries SET state = 'dead', completed_at = now() WHERE id = $1", [dead])
        #expect(try shop.column("SELECT webhooky.redeliver_webhook($1, now() - interval '4 days')", [webhook]) == ["1"])
        #expect(try shop.column(oldest) == ["0"])
    }

    /// A shop with one webhook and two events of it, the webhook then disabled so that no
    /// worker would send them while a test writes their deliveries itself.
    private static func twoEventsOfAPausedWebhook() throws -> (Shop, webhook: String) {
        let shop = try Shop()
        let webhook = String(try shop.addWebhook(url: "https://erp.example/x"))
        try shop.setCredit("5")
        try shop.setCredit("6")
        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [webhook])
        return (shop, webhook)
    }

    @Test("the health view's oldest pending age counts a claim whose lease ran out (its worker died) as waiting; a claim in hand does not count")
    func oldestCountsClaimsWhoseLeaseRanOut() throws {
        let (shop, webhook) = try Self.twoEventsOfAPausedWebhook()
        // Two claims of a worker: one made 90 minutes ago whose lease ran out 30 minutes ago,
        // one made 3 hours ago whose lease still runs.
        try shop.connection.query("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, created_at, claimed_by, lease_expires_at)
            SELECT id, $1, 'sending', 1,
                   now() - CASE WHEN id = (SELECT min(id) FROM webhooky.events) THEN interval '90 minutes' ELSE interval '3 hours' END, 'w1',
                   now() + CASE WHEN id = (SELECT min(id) FROM webhooky.events) THEN interval '-30 minutes' ELSE interval '1 minute' END
              FROM webhooky.events
            """, [webhook])
        try shop.connection.execute("UPDATE webhooky.events SET fanned_out = true")
        let row = "SELECT pending, sending, extract(epoch FROM oldest_pending_age)::integer / 60 FROM webhooky.health"
        #expect(try shop.connection.query(row).rows == [["0", "2", "90"]], "the stranded claim waits; the one in hand is not waiting")
        try shop.connection.query("UPDATE webhooky.deliveries SET lease_expires_at = now() + interval '1 minute'")
        #expect(try shop.connection.query(row).rows == [["0", "2", nil]], "both in hand: nothing waits")
    }

    @Test("the health view's p50/p95 leave out the rows of attempts whose lease ran out; last_error still shows one")
    func healthTimingsLeaveOutExpiredLeases() throws {
        let shop = try Shop()
        let webhook = String(try shop.addWebhook(url: "https://erp.example/x"))
        // Two answers, and then an attempt whose worker died: the reap's row has the time from
        // the claim to the reap, not an answer's.
        try shop.connection.query("""
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, error, worker)
            VALUES (1, $1, 1, now() - interval '3 minutes', 10, 200, NULL, 'w1'),
                   (2, $1, 1, now() - interval '2 minutes', 30, 500, NULL, 'w1'),
                   (3, $1, 1, now() - interval '1 minute', 60000, NULL, 'lease expired: the worker that claimed it (w1) stopped', 'w1')
            """, [webhook])
        #expect(try shop.connection.query("SELECT p50_ms::text, p95_ms::text, last_error FROM webhooky.health").rows
                == [["20.0", "29.0", "lease expired: the worker that claimed it (w1) stopped"]])
    }

    @Test("retention: old succeeded and dead deliveries go with their attempts and events; recent and pending ones stay")
    func retention() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "https://erp.example/x")
        try shop.connection.query("""
            INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out, created_at)
            SELECT 'customer.credit_changed', '{}', ARRAY[$1::bigint], true, now() - interval '40 days' FROM generate_series(1, 2500);
            """, [String(webhook)])
        // 1,000 succeeded 8 days ago, 1,000 succeeded yesterday, 300 dead 31 days ago, 100 dead 10 days ago, 100 pending.
        try shop.connection.query("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, completed_at, created_at)
            SELECT id, $1,
                   CASE WHEN rn <= 2000 THEN 'succeeded' WHEN rn <= 2400 THEN 'dead' ELSE 'pending' END, 1,
                   CASE WHEN rn <= 1000 THEN now() - interval '8 days' WHEN rn <= 2000 THEN now() - interval '1 day'
                        WHEN rn <= 2300 THEN now() - interval '31 days' WHEN rn <= 2400 THEN now() - interval '10 days' END,
                   now() - interval '40 days'
              FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM webhooky.events) e
            """, [String(webhook)])
        try shop.connection.execute("""
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, worker)
            SELECT id, webhook_id, 1, now() - interval '40 days', 1, 200, 'w' FROM webhooky.deliveries
            """)
        try shop.connection.execute("UPDATE webhooky.webhooks SET enabled = false")  // the pending ones wait
        var configuration = shop.workerConfiguration()
        configuration.retention?.interval = .milliseconds(200)
        configuration.retention?.batchSize = 250
        let logs = LogCapture()
        configuration.logger = logs.logger()
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries", timeout: .seconds(30)) { $0 == "1200" } == "1200")
        #expect(try shop.connection.query("SELECT state, count(*) FROM webhooky.deliveries GROUP BY state ORDER BY state").rows
                == [["dead", "100"], ["pending", "100"], ["succeeded", "1000"]])
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["1200"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.events") == ["1200"])
        // The summary is logged after the batch that finds nothing left, which may come a moment later.
        #expect(logs.waitForLine { $0.contains("pruned old history") && $0.contains("deliveries=1300") }, "\(logs.all.filter { $0.contains("prune") })")
        // By hand: one batch at a time, zeros when there is nothing left.
        #expect(try shop.connection.query("SELECT * FROM webhooky.prune()").rows == [["0", "0", "0"]])
    }

    @Test("prune refuses a negative or missing age and a batch size under 1, saying what to pass, and deletes nothing: a negative age would have deleted the newest deliveries")
    func pruneRefusesNonsense() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/p")
        let worker = RunningWorker(shop.workerConfiguration())
        try shop.setCredit("4")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        worker.stop()
        for (call, message) in [
            ("webhooky.prune('-1 day')", "webhooky.prune: succeeded_after and dead_after must be intervals of 0 or more, not -1 days and 30 days"),
            ("webhooky.prune('1 day', NULL)", "webhooky.prune: succeeded_after and dead_after must be intervals of 0 or more, not 1 day and NULL"),
            ("webhooky.prune(batch_size => 0)", "webhooky.prune: batch_size must be at least 1, not 0"),
            ("webhooky.prune(batch_size => NULL)", "webhooky.prune: batch_size must be at least 1, not NULL"),
        ] {
            do {
                try shop.connection.query("SELECT * FROM \(call)")
                Issue.record("\(call) was accepted")
            } catch {
                #expect(error.message == message)
                #expect(error.sqlState == "22023")
                #expect(error.hint?.isEmpty == false)
            }
        }
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries") == ["1"])
        #expect(try shop.connection.query("SELECT * FROM webhooky.prune('0', '0')").rows == [["1", "1", "1"]], "an age of 0 prunes what is finished")
    }

    @Test("prune reads only the rows old enough to prune: with a large recent history and nothing due, a few index probes, not the whole table")
    func pruneReadsOnlyOldRows() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "https://erp.example/x")
        // 20,000 deliveries that succeeded yesterday, and one from 9 days ago at the start.
        try shop.connection.query("""
            WITH e AS (INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out, created_at)
                       SELECT 'customer.credit_changed', '{}', ARRAY[$1::bigint], true,
                              CASE WHEN n = 0 THEN now() - interval '9 days' ELSE now() - interval '1 day' END
                         FROM generate_series(0, 20000) n RETURNING id, created_at)
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, created_at, completed_at)
            SELECT id, $1, 'succeeded', 1, created_at, created_at FROM e ORDER BY id
            """, [String(webhook)])
        try shop.connection.execute("VACUUM ANALYZE webhooky.deliveries, webhooky.events")
        let reader = try shop.database.connect()
        func rowsRead() throws -> Int {
            try reader.execute("SELECT pg_stat_clear_snapshot()")
            let read = try reader.query("""
                SELECT sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)) FROM pg_stat_user_tables
                 WHERE schemaname = 'webhooky' AND relname IN ('deliveries', 'events')
                """).scalar
            return Int(read ?? "") ?? -1
        }
        func prune() throws -> [[String?]] {
            try shop.connection.execute("SELECT pg_stat_force_next_flush()")
            let rows = try shop.connection.query("SELECT * FROM webhooky.prune()").rows
            try shop.connection.execute("SELECT pg_stat_force_next_flush()")
            try shop.connection.execute("SELECT 1")  // the flush happens at the end of a transaction
            return rows
        }
        let before = try rowsRead()
        #expect(try prune() == [["1", "0", "1"]], "the one from 9 days ago goes")
        #expect(try prune() == [["0", "0", "0"]])
        let read = try rowsRead() - before
        #expect(read >= 1 && read < 500, "prune read \(read) rows of 40,002 to delete 2")
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries") == ["20000"])
    }

    @Test("prune looks for old events that no delivery was made for only in the batch that ends a run, not in every batch (reading past every old event that still has deliveries)")
    func pruneLooksForUnkeptEventsOncePerRun() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "https://erp.example/x")
        // Events of 40 days ago: 2,500 whose delivery succeeded 39 days ago, 10 that got no
        // delivery (their webhook was deleted before the fan-out), 2,000 whose delivery waits.
        try shop.connection.query("""
            WITH e AS (INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out, created_at)
                       SELECT 'customer.credit_changed', '{}', ARRAY[$1::bigint], true, now() - interval '40 days'
                         FROM generate_series(1, 4510) n ORDER BY n RETURNING id),
                 numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM e),
                 d AS (INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, created_at, completed_at)
                       SELECT id, $1, CASE WHEN n <= 2500 THEN 'succeeded' ELSE 'pending' END, 1, now() - interval '40 days',
                              CASE WHEN n <= 2500 THEN now() - interval '39 days' END
                         FROM numbered WHERE n <= 2500 OR n > 2510 ORDER BY id RETURNING id, state)
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, worker)
            SELECT id, $1, 1, now() - interval '40 days', 1, 200, 'w' FROM d WHERE state = 'succeeded'
            """, [String(webhook)])
        func prune() throws -> [String?] {
            try shop.connection.query("SELECT * FROM webhooky.prune(batch_size => 1000)").rows.first ?? []
        }
        // Before, every batch also looked for the 10, reading past every old event that still has
        // deliveries (with 1M of them, a batch of 1,000 took 230 ms instead of 7).
        #expect(try prune() == ["1000", "1000", "1000"], "a full batch: only the events of its deliveries")
        #expect(try prune() == ["1000", "1000", "1000"])
        #expect(try prune() == ["500", "500", "510"], "the last batch of the run: the 10 events without a delivery go too")
        #expect(try prune() == ["0", "0", "0"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.events") == ["2000"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE state = 'pending'") == ["2000"])
    }

    @Test("the id below which every row is older than a cutoff: found with gaps in the ids, 0 for an empty table, past the last id when all are old")
    func firstIDSince() throws {
        let shop = try Shop()
        func boundary(_ cutoff: String) throws -> String? {
            try shop.connection.query("SELECT webhooky.first_id_since('webhooky.events', now() - interval '\(cutoff)')").scalar
        }
        #expect(try boundary("1 day") == "0")
        // Ids 1-1000 created n hours ago for n = 1000...1; every third deleted.
        try shop.connection.execute("""
            INSERT INTO webhooky.events (event, payload, created_at)
            SELECT 'customer.credit_changed', '{}', now() - n * interval '1 hour' FROM generate_series(1000, 1, -1) n;
            DELETE FROM webhooky.events WHERE id % 3 = 0;
            """)
        // Created more than 100.5 hours ago: ids 1-900 (id 900 itself deleted): the boundary is
        // 900 or 901, with no younger row below it and no older one from it on.
        let found = try #require(try boundary("100 hours 30 minutes"))
        #expect(["900", "901"].contains(found), "\(found)")
        #expect(try shop.connection.query("""
            SELECT count(*) FILTER (WHERE id < \(found) AND created_at >= now() - interval '100 hours 30 minutes'),
                   count(*) FILTER (WHERE id >= \(found) AND created_at < now() - interval '100 hours 30 minutes')
              FROM webhooky.events
            """).rows == [["0", "0"]])
        #expect(try boundary("2000 hours") == "1", "none older: the first id")
        #expect(try boundary("0 hours") == "1001", "all older: past the last id")
    }

    @Test("a slow prune does not hold deliveries back: history is deleted on its own connection")
    func slowPruneDoesNotDelayDeliveries() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/fresh")
        try shop.connection.query("""
            WITH e AS (INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out, created_at)
                       VALUES ('customer.credit_changed', '{}', ARRAY[$1::bigint], true, now() - interval '40 days') RETURNING id)
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, created_at, completed_at)
            SELECT id, $1, 'succeeded', 1, now() - interval '40 days', now() - interval '30 days' FROM e
            """, [String(webhook)])
        // Stands for a prune that takes long (a big table): deleting the old delivery takes 6 s.
        try shop.connection.execute("""
            CREATE FUNCTION public.slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(6); RETURN OLD; END $$;
            CREATE TRIGGER slow_delete BEFORE DELETE ON webhooky.deliveries FOR EACH ROW EXECUTE FUNCTION public.slow_delete();
            """)
        var configuration = shop.workerConfiguration()
        configuration.retention?.interval = .milliseconds(200)
        let worker = RunningWorker(configuration)
        defer { worker.stop(timeout: .seconds(15)) }
        let pruning = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep' AND query LIKE '%webhooky.prune%'"
        #expect(try shop.waitFor(pruning) { $0 == "1" } == "1")
        let start = ContinuousClock.now
        try shop.setCredit("21")
        // Before, the dispatcher pruned between its fan-outs and sent this after the 6 s delete.
        #expect(receiver.waitForRequests(1, timeout: .seconds(4)).count == 1)
        #expect(ContinuousClock.now - start < .seconds(4))
        #expect(try shop.column(pruning) == ["1"], "the prune was still under way")
    }

    @Test("upgrading a live schema loses no events: deliveries of every version are sent")
    func upgradeKeepsEvents() throws {
        let database = try TestCluster.newEmptyDatabase()
        let connection = try database.connect()
        let receiver = try LoopbackReceiver()
        try Migrator(connection: connection, migrations: Array(Migrations.all.prefix(1))).migrate()
        // The reference domain as it was before version 8 (no webhooky.wanted_events condition).
        let condition = /\n\s+AND coalesce\(pg_sequence_last_value\('webhooky\.wanted_events'\)[^\n]*<> 0\)/
        let domain = Migrations.referenceDomain.replacing(condition, with: ")")
        #expect(!domain.contains("pg_sequence_last_value"))
        try connection.execute(domain)
        try connection.query("INSERT INTO webhooky.webhooks (event, url) VALUES ('customer.credit_changed', $1)", [receiver.baseURL + "/v?c=#customer.credit#"])
        try connection.execute("""
            INSERT INTO ellity.eshops VALUES ('s', 'S'); INSERT INTO ellity.customers (id, eshop_id, email) VALUES (1, 's', 'a@b.cz');
            UPDATE ellity.customers SET credit = 1;
            """)
        for version in 2...Migrations.latestVersion {
            try Migrator(connection: connection, migrations: Array(Migrations.all.prefix(version))).migrate()
            try connection.query("UPDATE ellity.customers SET credit = $1", [String(version)])
        }
        #expect(try Migrator(connection: connection).pending().isEmpty)
        var configuration = WorkerConfiguration(databaseURL: database.conninfo)
        configuration.http.addressPolicy = .allowingLoopback
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        let targets = receiver.waitForRequests(Migrations.latestVersion).map(\.target)
        #expect(Set(targets) == Set((1...Migrations.latestVersion).map { "/v?c=\($0).00" }))
        #expect(targets.count == Migrations.latestVersion)
    }

    @Test("roles: the worker, admin and emitter roles can do their jobs and no more")
    func leastPrivilege() throws {
        let shop = try Shop()
        let suffix = "\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try shop.connection.execute("""
            CREATE ROLE worker_\(suffix) LOGIN IN ROLE webhooky_worker;
            CREATE ROLE admin_\(suffix) LOGIN IN ROLE webhooky_admin;
            CREATE ROLE app_\(suffix) LOGIN IN ROLE webhooky_emitter;
            GRANT USAGE ON SCHEMA ellity TO app_\(suffix);
            GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA ellity TO app_\(suffix);
            """)
        func connect(as role: String) throws -> Connection {
            try Connection(conninfo: shop.database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(role)_\(suffix)"))
        }
        let receiver = try LoopbackReceiver()
        let admin = try connect(as: "admin")
        let webhook = try #require(admin.query("INSERT INTO webhooky.webhooks (event, url) VALUES ('customer.credit_changed', $1) RETURNING id", [receiver.baseURL + "/roles"]).scalar)
        #expect(try admin.query("SELECT count(*) FROM webhooky.health").scalar == "1")

        let app = try connect(as: "app")
        try app.query("UPDATE ellity.customers SET credit = 77 WHERE id = $1", [Shop.customerID])
        #expect(throws: PostgresError.self) { try app.query("SELECT * FROM webhooky.webhooks") }
        #expect(throws: PostgresError.self) { try app.query("INSERT INTO webhooky.events (event, payload) VALUES ('x', '{}')") }

        var configuration = shop.workerConfiguration()
        configuration.databaseURL = shop.database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=worker_\(suffix)")
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        #expect(receiver.waitForRequests(1).first?.target == "/roles")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")

        try admin.query("SELECT webhooky.send_test($1)", [webhook])
        #expect(receiver.waitForRequests(2).count == 2)
        #expect(throws: PostgresError.self) { try admin.query("UPDATE webhooky.deliveries SET state = 'dead'") }
        #expect(throws: PostgresError.self) { try admin.query("SELECT webhooky.emit('customer.credit_changed', '{}')") }
    }

    @Test("poll-only mode (no LISTEN, for transaction-mode poolers) delivers within the poll interval")
    func pollOnly() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/polled")
        var configuration = shop.workerConfiguration()
        configuration.listen = false
        configuration.pollInterval = .milliseconds(300)
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        #expect(try shop.waitFor("SELECT listening::text FROM webhooky.workers") { $0 == "false" } == "false")
        let listener = try shop.database.connect()
        try listener.listen("webhooky")
        try shop.setCredit("11")
        #expect(receiver.waitForRequests(1, timeout: .seconds(5)).count == 1)
        #expect(try listener.pendingNotifications().isEmpty, "no worker waits for a NOTIFY, so none is sent")
    }
}
