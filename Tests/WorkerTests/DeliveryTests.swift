import Foundation
import LoopbackReceiver
import Postgres
import TestSupport
import Testing
import Worker

/// Delivery semantics end to end: accounts, transactions, durability, retries, signatures.
@Suite(.timeLimit(.minutes(10))) struct DeliveryTests {
    @Test func anotherAccountsWebhookDoesNotFire() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/shop-7", account: "shop-7")
        try shop.addWebhook(url: receiver.baseURL + "/shop-42", account: "shop-42")
        try shop.addWebhook(url: receiver.baseURL + "/every-shop", account: nil)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("10")
        receiver.waitForRequests(2)
        Thread.sleep(forTimeInterval: 0.4)
        #expect(receiver.requests.map(\.target).sorted() == ["/every-shop", "/shop-42"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries") == ["2"])
    }

    @Test func rolledBackTransactionSendsNothing() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/hook")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.connection.execute("BEGIN")
        try shop.setCredit("999")
        #expect(try shop.column("SELECT count(*) FROM webhooky.events") == ["1"], "recorded inside the transaction")
        try shop.connection.execute("ROLLBACK")
        Thread.sleep(forTimeInterval: 0.8)  // four poll intervals
        #expect(receiver.requests.isEmpty)
        #expect(try shop.column("SELECT (SELECT count(*) FROM webhooky.events) + (SELECT count(*) FROM webhooky.deliveries)") == ["0"])
    }

    @Test("a DBA's own event with a payload over 8000 bytes (NOTIFY's limit) arrives whole")
    func largePayloadOfACustomEvent() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.connection.execute("INSERT INTO webhooky.event_types (name, description) VALUES ('order.created', 'An order was placed')")
        try shop.addWebhook(event: "order.created", url: receiver.baseURL + "/orders/#order.id#", body: ##"{"note": "#order.note#", "lines": #order.lines#}"##)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        let note = String(repeating: "Příliš žluťoučký kůň 🐎 ", count: 500)
        let lines = "[" + (1...300).map { #"{"sku": "SKU-\#($0)", "qty": \#($0), "price": 12345678901234.56}"# }.joined(separator: ",") + "]"
        let payload = #"{"order": {"id": 77, "note": "\#(note)", "lines": \#(lines)}}"#
        #expect(payload.utf8.count > 20_000)
        try shop.connection.query("SELECT webhooky.emit('order.created', $1::jsonb, 'shop-42')", [payload])

        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.target == "/orders/77")
        let body = try #require(JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        #expect(body["note"] as? String == note)
        #expect((body["lines"] as? [Any])?.count == 300)
        #expect(request.bodyText.contains(#""price": 12345678901234.56"#) || request.bodyText.contains(#""price":12345678901234.56"#))
    }

    @Test("a payload nested deeper than the parser's 512 levels (jsonb takes thousands) is delivered; the deep part renders as its JSON text")
    func deeplyNestedPayload() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.connection.execute("INSERT INTO webhooky.event_types (name, description) VALUES ('tree.changed', 'A tree changed')")
        try shop.addWebhook(event: "tree.changed", url: receiver.baseURL + "/trees/#tree.id#", body: ##"{"id": #tree.id#, "nodes": #tree.nodes#, "text": "#tree.nodes#"}"##)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        // The innermost value: a string whose spaces and escapes are its own.
        let inner = #""a b, \"c\": \\ \u0001""#
        let nodes = String(repeating: #"{"n": ["#, count: 400) + inner + String(repeating: "]}", count: 400)
        try shop.connection.query("SELECT webhooky.emit('tree.changed', $1::jsonb)", [#"{"tree": {"id": 9007199254740993, "nodes": \#(nodes)}}"#])

        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.target == "/trees/9007199254740993")
        // As every object or array value renders: compact JSON, the same text at every depth.
        let compact = String(repeating: #"{"n":["#, count: 400) + inner + String(repeating: "]}", count: 400)
        let escaped = compact.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        #expect(request.bodyText == #"{"id": 9007199254740993, "nodes": \#(compact), "text": "\#(escaped)"}"#)
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
    }

    @Test func eventsCommittedWhileNoWorkerRunsAreDeliveredWhenItStarts() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        for credit in ["1.00", "2.00", "3.00", "4.00", "5.00"] { try shop.setCredit(credit) }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(receiver.requests.isEmpty)

        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        let requests = receiver.waitForRequests(5)
        #expect(requests.map(\.target).sorted() == ["/c?credit=1.00", "/c?credit=2.00", "/c?credit=3.00", "/c?credit=4.00", "/c?credit=5.00"])
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "5" } == "5")
    }

    @Test("500, 500, 200: one succeeded delivery after three attempts, all with the same webhook-id")
    func retriesUntilSuccess() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, number in number <= 2 ? .status(500, body: "boom \(number)") : .ok }
        try shop.addWebhook(url: receiver.baseURL + "/flaky")
        let worker = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(100), .milliseconds(100), .milliseconds(100)]))
        defer { worker.stop() }

        try shop.setCredit("42")
        let requests = receiver.waitForRequests(3)
        #expect(requests.count == 3)
        let ids = Set(requests.compactMap { $0.header("webhook-id") })
        #expect(ids.count == 1)
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        #expect(try shop.deliveryStates() == [["succeeded", "3", "200"]])
        #expect(try shop.connection.query("SELECT attempt, status, error, response_body FROM webhooky.attempts ORDER BY attempt").rows == [
            ["1", "500", "HTTP 500", "boom 1"], ["2", "500", "HTTP 500", "boom 2"], ["3", "200", nil, "ok"],
        ])
        #expect(try shop.column("SELECT last_error FROM webhooky.deliveries") == [nil])
        let messageID = try #require(ids.first)
        #expect(try shop.column("SELECT webhooky.message_id(id) FROM webhooky.deliveries") == [messageID])
    }

    @Test("README's receiver advice: a retry keeps its webhook-id but carries the timestamp of its own sending, so a newer event's first attempt, sent before it, has an earlier webhook-timestamp: the timestamp does not give the events' order")
    func aRetryCarriesTheTimeOfItsOwnSending() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, number in number == 1 ? .status(503) : .ok }
        try shop.addWebhook(url: receiver.baseURL + "/c/#customer.credit#")
        // A retry 2.5 s later falls at least 2 whole seconds after the first attempt.
        let worker = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(2500)]))
        defer { worker.stop() }

        try shop.setCredit("150.00")  // older event: 503, then its retry
        _ = receiver.waitForRequests(1)
        try shop.setCredit("200.00")  // newer event: at once
        let requests = receiver.waitForRequests(3)
        let rows = try shop.connection.query("SELECT id, state, attempts, last_status, next_attempt_at - now() FROM webhooky.deliveries").rows
        try #require(requests.count == 3, "\(requests.map(\.target)) \(rows)")
        #expect(requests.map(\.target) == ["/c/150.00", "/c/200.00", "/c/150.00"])
        #expect(requests[0].header("webhook-id") == requests[2].header("webhook-id"))
        let timestamps = requests.compactMap { $0.header("webhook-timestamp").flatMap(Int.init) }
        try #require(timestamps.count == 3)
        #expect(timestamps[2] >= timestamps[0] + 2, "the retry's own sending time")
        #expect(timestamps[2] > timestamps[1], "the older event's retry carries a later timestamp than the newer event")
    }

    @Test func deliveryIsDeadWhenTheScheduleIsExhausted() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .status(503, body: "down") }
        try shop.addWebhook(url: receiver.baseURL + "/down")
        let worker = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(50), .milliseconds(50)]))
        defer { worker.stop() }

        try shop.setCredit("7")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "dead" } == "dead")
        #expect(receiver.requests.count == 3)
        let row = try shop.connection.query("SELECT attempts, last_status, last_error, completed_at IS NOT NULL FROM webhooky.deliveries").rows
        #expect(row == [["3", "503", "HTTP 503 (gave up after 3 attempts)", "t"]])
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts WHERE status = 503") == ["3"])
    }

    @Test func retryAfterIsHonoured() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, number in
            number == 1 ? .respond(status: 429, headers: [.init(name: "Retry-After", value: "1")], body: "slow down") : .ok
        }
        try shop.addWebhook(url: receiver.baseURL + "/limited")
        let worker = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(50)]))
        defer { worker.stop() }

        try shop.setCredit("8")
        let requests = receiver.waitForRequests(2)
        #expect(requests.count == 2)
        if requests.count == 2 {
            #expect(requests[1].receivedAt - requests[0].receivedAt >= 0.95)
        }
    }

    @Test("the signature verifies with an independent HMAC-SHA256 over id.timestamp.body")
    func signatureVerifiesIndependently() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let secret = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        try shop.addWebhook(url: receiver.baseURL + "/signed", body: ##"{"credit": #customer.credit#}"##, secret: secret)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("12345678901234.56")
        let request = try #require(receiver.waitForRequests(1).first)
        let id = try #require(request.header("webhook-id"))
        let timestamp = try #require(request.header("webhook-timestamp"))
        let signature = try #require(request.header("webhook-signature"))
        #expect(request.bodyText == #"{"credit": 12345678901234.56}"#)
        let key = try #require(Data(base64Encoded: String(secret.dropFirst("whsec_".count))))
        let expected = IndependentHMAC.hmacSHA256(key: Array(key), message: Array("\(id).\(timestamp).".utf8) + request.body)
        #expect(signature == "v1," + Data(expected).base64EncodedString())
        let sentAt = try #require(Double(timestamp))
        #expect(abs(sentAt - Date().timeIntervalSince1970) < 60)
    }

    @Test("an answer that is not HTTP (a TLS port behind an http:// URL, a broken proxy) is retried like any failed attempt, not given up at once")
    func anAnswerThatIsNotHTTPIsRetried() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, number in number == 1 ? .raw("SSH-2.0-OpenSSH_9.2\r\n") : .ok }
        try shop.addWebhook(url: receiver.baseURL + "/garbled")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("3")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" || $0 == "dead" } == "succeeded")
        #expect(receiver.requests.count == 2)
        let first = try shop.connection.query("SELECT status, error FROM webhooky.attempts WHERE attempt = 1").rows
        #expect(first.count == 1 && first.first?[0] == nil)
        #expect(first.first?[1]?.hasPrefix("the answer is not HTTP: ") == true, "the first attempt's error: \(String(describing: first))")
    }

    @Test("a 2xx status is the answer even when the connection breaks before the body has all come: the delivery succeeded, and is not sent again")
    func aTwoHundredWithABrokenBodyIsASuccess() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .raw("HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\nqueued") }
        try shop.addWebhook(url: receiver.baseURL + "/short-body")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("3")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" || $0 == "dead" } == "succeeded")
        #expect(try shop.deliveryStates() == [["succeeded", "1", "202"]])
        #expect(try shop.connection.query("SELECT status, error, response_body FROM webhooky.attempts").rows == [["202", nil, "queued"]])
        Thread.sleep(forTimeInterval: 0.5)  // past the test worker's 100 ms retry
        #expect(receiver.requests.count == 1)
    }

    @Test("a header value that would inject a line break ends the delivery dead; the worker carries on")
    func headerInjectionIsRefused() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let bad = try shop.addWebhook(event: "customer.tier_changed", url: receiver.baseURL + "/bad", headers: ##"{"X-Tier": "#customer.tier.name#"}"##)
        try shop.addWebhook(event: "customer.tier_changed", url: receiver.baseURL + "/good")
        let logs = LogCapture()
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))
        defer { worker.stop() }

        try shop.setTier(2)  // the tier's name holds a newline
        #expect(receiver.waitForRequests(1).map(\.target) == ["/good"])
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries WHERE webhook_id = \(bad)") { $0 == "dead" } == "dead")
        let error = try shop.column("SELECT last_error FROM webhooky.deliveries WHERE webhook_id = \(bad)").first ?? nil
        #expect(error == "cannot build the request: header \"X-Tier\": the value of #customer.tier.name# contains a line break or control character; refused to prevent header injection")
        #expect(logs.waitForLine { $0.contains("delivery dead") && $0.contains("webhook=\(bad)") })
        Thread.sleep(forTimeInterval: 0.3)
        #expect(receiver.requests.count == 1)
    }

    @Test func anEditedWebhookIsReadAgain() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let id = try shop.addWebhook(url: receiver.baseURL + "/v1")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("1")
        receiver.waitForRequests(1)
        try shop.connection.query("UPDATE webhooky.webhooks SET url = $1 WHERE id = $2", [receiver.baseURL + "/v2?c=#customer.credit#", String(id)])
        try shop.setCredit("2")
        #expect(receiver.waitForRequests(2).map(\.target) == ["/v1", "/v2?c=2.00"])
        #expect(try shop.column("SELECT revision FROM webhooky.webhooks") == ["2"])
    }

    @Test func anExpiredLeaseIsTakenBack() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/orphan")
        try shop.setCredit("5")
        // A worker that died holding the delivery: fanned out and claimed, lease already over.
        try shop.connection.execute("""
            UPDATE webhooky.events SET fanned_out = true;
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, claimed_by, lease_expires_at)
            SELECT id, webhook_ids[1], 'sending', 1, 'dead-worker', now() - interval '1 second' FROM webhooky.events;
            """)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.header("webhook-id") == (try shop.messageID("1")))
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        #expect(try shop.deliveryStates() == [["succeeded", "2", "200"]])
    }

    /// A worker `workerID` with a 300 ms shutdown grace period whose one request (a credit
    /// change's) hangs at `receiver`: stopping it cuts that request short.
    static func requestCutShortAtStop(_ shop: Shop, workerID: String) throws -> (receiver: LoopbackReceiver, worker: RunningWorker) {
        let receiver = try LoopbackReceiver { _, _ in .hang }
        try shop.addWebhook(url: receiver.baseURL + "/hangs")
        var configuration = shop.workerConfiguration()
        configuration.workerID = workerID
        configuration.shutdownGracePeriod = .milliseconds(300)
        let worker = RunningWorker(configuration)
        try shop.setCredit("6")
        #expect(receiver.waitForRequests(1).count == 1)
        return (receiver, worker)
    }

    @Test("stopping gives back what is still in flight after the grace period: the attempt is on record (it may have arrived), held neither against the endpoint nor against the retry schedule, and due again at once")
    func stopReleasesWhatItHolds() throws {
        let shop = try Shop()
        let (receiver, worker) = try DeliveryTests.requestCutShortAtStop(shop, workerID: "test-worker")
        defer { receiver.stop() }
        #expect(try shop.column("SELECT state FROM webhooky.deliveries") == ["sending"])

        let stopped = worker.stop(timeout: .seconds(10))
        #expect(stopped.stoppedInTime)
        let interrupted = "no answer: the worker stopped while the request was in flight (its shutdown grace period was over); it may have arrived, and will be sent again"
        #expect(try shop.connection.query("SELECT state, attempts, claimed_by, last_error, next_attempt_at <= now() FROM webhooky.deliveries").rows
                == [["pending", "1", nil, interrupted, "t"]])
        #expect(try shop.connection.query("SELECT attempt, status, error, worker FROM webhooky.attempts").rows == [["1", nil, interrupted, "test-worker"]])
        #expect(try shop.connection.query("SELECT count(*) FROM webhooky.webhook_health WHERE consecutive_failures > 0").scalar == "0",
                "not held against the endpoint")
        #expect(try shop.column("SELECT retry_base FROM webhooky.deliveries") == ["1"], "nor against the retry schedule")

        // The next worker's schedule (one retry) counts only the attempts after the interrupted
        // one: two more, then dead.
        let failing = try LoopbackReceiver { _, _ in .status(503) }
        defer { failing.stop() }
        try shop.connection.execute("UPDATE webhooky.webhooks SET url = '\(failing.baseURL)/fails'")
        let next = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(100)]))
        defer { next.stop() }
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "dead" } == "dead")
        #expect(failing.requests.count == 2)
        #expect(try shop.connection.query("SELECT attempts, retry_base, last_error FROM webhooky.deliveries").rows
                == [["3", "1", "HTTP 503 (gave up after 2 attempts)"]])
        #expect(try shop.connection.query("SELECT attempt, status FROM webhooky.attempts ORDER BY attempt").rows
                == [["1", nil], ["2", "503"], ["3", "503"]])
    }

    @Test("a stopping worker tells the others at once: the delivery it cut short is sent again by another worker within moments, not at that worker's next poll")
    func stoppingWorkerHandsOver() throws {
        let shop = try Shop()
        let (receiver, first) = try DeliveryTests.requestCutShortAtStop(shop, workerID: "stopping")
        defer { receiver.stop() }

        var staying = shop.workerConfiguration()
        staying.workerID = "staying"
        staying.pollInterval = .seconds(60)
        let second = RunningWorker(staying)
        defer { second.stop() }
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE id = 'staying'") { $0 == "1" }
        Thread.sleep(forTimeInterval: 0.5)  // past its start-up claim, which finds the delivery still held

        #expect(first.stop(timeout: .seconds(10)).stoppedInTime)
        let stoppedAt = ContinuousClock.now
        #expect(receiver.waitForRequests(2, timeout: .seconds(10)).count == 2, "sent again by the staying worker")
        #expect(ContinuousClock.now - stoppedAt < .seconds(5), "at once, not at its next poll (60 s)")
        #expect(try shop.connection.query("SELECT attempt, worker FROM webhooky.attempts ORDER BY attempt").rows == [["1", "stopping"]])
        #expect(try shop.column("SELECT claimed_by FROM webhooky.deliveries") == ["staying"])
    }

    @Test("a deleted webhook's unfinished deliveries end dead; its events not yet fanned out get none")
    func deletedWebhooks() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .status(503) }
        let deleted = try shop.addWebhook(url: receiver.baseURL + "/retrying")
        let worker = RunningWorker(shop.workerConfiguration(retry: [.seconds(60)]))
        defer { worker.stop() }
        try shop.setCredit("3")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "pending" } == "pending", "failed once, retry scheduled")
        try shop.connection.query("DELETE FROM webhooky.webhooks WHERE id = $1", [String(deleted)])
        #expect(try shop.connection.query("SELECT state, last_error FROM webhooky.deliveries").rows == [["dead", "webhook deleted"]])

        worker.stop()
        let gone = try shop.addWebhook(url: receiver.baseURL + "/gone-before-fan-out")
        try shop.setCredit("4")
        try shop.connection.query("DELETE FROM webhooky.webhooks WHERE id = $1", [String(gone)])
        let again = RunningWorker(shop.workerConfiguration())
        defer { again.stop() }
        #expect(try shop.waitFor("SELECT bool_and(fanned_out)::text FROM webhooky.events") { $0 == "true" } == "true")
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE webhook_id = $1", [String(gone)]) == ["0"])
    }

    @Test("no log line ever shows a signing secret, an API key in the URL or a header value")
    func secretsStayOutOfLogs() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, number in number == 1 ? .status(500) : .ok }
        let secret = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        try shop.addWebhook(url: receiver.baseURL + "/h?apikey=SeCrEtApIkEy&c=#customer.credit#", body: "{}",
                            headers: #"{"Authorization": "Bearer ToKeNvAlUe"}"#, secret: secret)
        try shop.addWebhook(url: "http://nonexistent.invalid/h?token=SeCrEtApIkEy", secret: secret)
        let logs = LogCapture()
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))
        try shop.setCredit("1")
        receiver.waitForRequests(2)
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.attempts") { ($0.flatMap { Int($0) } ?? 0) >= 3 }
        worker.stop()
        let text = logs.all.joined(separator: "\n")
        #expect(logs.all.count >= 4)
        for needle in ["SeCrEtApIkEy", "ToKeNvAlUe", String(secret.dropFirst(6)), "apikey", "Authorization"] {
            #expect(!text.contains(needle), "log shows \(needle)")
        }
    }
}
