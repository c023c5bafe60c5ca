import Foundation
import HTTPClient
import LoopbackReceiver
import Postgres
import Synchronization
import TestSupport
import Testing
import Worker

/// What a worker that starts takes from the attempts on record about the endpoints it sends to.
@Suite(.timeLimit(.minutes(10))) struct RecalledEndpointTests {
    @Test("a worker that starts recalls as unanswered only what the endpoints did: a request its predecessor's stop cut off, or one made before the webhook was edited to another URL, does not start the endpoint at 1 request (each such endpoint sent one at a time at first)")
    func recallIgnoresWhatTheWorkerOrAnEditDid() throws {
        let shop = try Shop()
        // Both answer after 4 s: a new endpoint may have 3 at once (an eighth of 24), one recalled as dead 1.
        let slowA = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .seconds(4)) }
        defer { slowA.stop() }
        let slowB = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .seconds(4)) }
        defer { slowB.stop() }
        // A port that refuses connections (bound, not listening).
        let closed = try LoopbackPort(listening: false)

        try shop.connection.execute("""
            INSERT INTO webhooky.event_types (name, description, sample) VALUES ('a.test', 'to A', '{}'), ('b.test', 'to B', '{}')
            """)
        let webhookA = try shop.addWebhook(event: "a.test", url: slowA.baseURL + "/a")
        let webhookB = try shop.addWebhook(event: "b.test", url: "http://127.0.0.1:\(closed.port)/b")
        var configuration = shop.workerConfiguration(retry: Array(repeating: .milliseconds(100), count: 100))
        configuration.maximumInFlight = 32
        configuration.http.requestTimeout = .seconds(20)
        configuration.shutdownGracePeriod = .milliseconds(200)

        // The first worker: B's endpoint refuses every request; A's requests are in flight when it stops.
        let first = RunningWorker(configuration)
        try shop.connection.execute("SELECT webhooky.emit('b.test', '{}') FROM generate_series(1, 6)")
        #expect(try shop.waitFor("SELECT count(*) > 0 FROM webhooky.attempts a JOIN webhooky.deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = \(webhookB) AND a.status IS NULL") { $0 == "t" } == "t")
        try shop.connection.execute("SELECT webhooky.emit('a.test', '{}') FROM generate_series(1, 6)")
        #expect(slowA.waitForRequests(1, timeout: .seconds(10)).count >= 1)
        first.stop(timeout: .seconds(30))
        let cutOff = "SELECT count(*) > 0 FROM webhooky.attempts a JOIN webhooky.deliveries d ON d.id = a.delivery_id WHERE d.webhook_id = \(webhookA) AND a.status IS NULL"
        #expect(try shop.column(cutOff) == ["t"], "A's requests were cut off by the stop")
        // B's endpoint is replaced by one that answers.
        try shop.connection.execute("UPDATE webhooky.webhooks SET url = '\(slowB.baseURL)/b' WHERE id = \(webhookB)")
        Thread.sleep(forTimeInterval: 4.5)  // the first worker's requests to A have ended at A

        let started = Date().timeIntervalSince1970
        let second = RunningWorker(configuration)
        defer { second.stop(timeout: .seconds(30)) }
        for (name, receiver) in [("A", slowA), ("B", slowB)] {
            let atOnce = try RecalledEndpointTests.requestsAtOnce(receiver, name, since: started)
            #expect(atOnce == 3, "endpoint \(name) had \(atOnce) requests at once from the new worker, not the 3 of a new endpoint")
        }
    }

    @Test("a worker that starts holds an endpoint to 1 request only when its last attempt got no answer (a timeout), not when the endpoint answered with a redirect that is not followed, nor when the address was refused before any request (each such endpoint sent one at a time at first)")
    func recallIgnoresFailuresThatWereNoSilence() throws {
        let shop = try Shop()
        // A answers with a redirect to ftp, C never answers, until the second worker; then they
        // and B answer after 4 s: a new endpoint may have 3 at once (an eighth of 24), one recalled as dead 1.
        let answering = Mutex(false)
        let slowOnceAnswering = { @Sendable (refusal: Reply) -> LoopbackReceiver in
            try LoopbackReceiver { _, _ in answering.withLock { $0 } ? .respond(status: 200, delay: .seconds(4)) : refusal }
        }
        let slowA = try slowOnceAnswering(.respond(status: 302, headers: [.init(name: "Location", value: "ftp://127.0.0.1/moved")]))
        defer { slowA.stop() }
        let slowB = try slowOnceAnswering(.hang)
        defer { slowB.stop() }
        let slowC = try slowOnceAnswering(.hang)
        defer { slowC.stop() }
        try shop.connection.execute("""
            INSERT INTO webhooky.event_types (name, description, sample) VALUES ('a.test', 'to A', '{}'), ('b.test', 'to B', '{}'), ('c.test', 'to C', '{}')
            """)
        let webhookA = try shop.addWebhook(event: "a.test", url: slowA.baseURL + "/a")
        let webhookB = try shop.addWebhook(event: "b.test", url: slowB.baseURL + "/b")
        let webhookC = try shop.addWebhook(event: "c.test", url: slowC.baseURL + "/c")
        try shop.connection.execute("UPDATE webhooky.webhooks SET follow_redirects = true WHERE id = \(webhookA)")
        var configuration = shop.workerConfiguration(retry: Array(repeating: .milliseconds(100), count: 100))
        configuration.maximumInFlight = 32
        configuration.http.requestTimeout = .milliseconds(500)
        configuration.shutdownGracePeriod = .milliseconds(200)

        // A worker that refuses loopback addresses: B's deliveries end dead unsent.
        configuration.http.addressPolicy = .standard
        let refusing = RunningWorker(configuration)
        try shop.connection.execute("SELECT webhooky.emit('b.test', '{}') FROM generate_series(1, 6)")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE webhook_id = \(webhookB) AND state = 'dead'") { $0 == "6" } == "6")
        refusing.stop(timeout: .seconds(30))
        // A worker that may send to them: A's endpoint redirects every request to ftp, C's times out.
        configuration.http.addressPolicy = .allowingLoopback
        let first = RunningWorker(configuration)
        try shop.connection.execute("SELECT webhooky.emit('a.test', '{}') FROM generate_series(1, 6); SELECT webhooky.emit('c.test', '{}') FROM generate_series(1, 6)")
        let failed = "SELECT count(*) >= 6 FROM webhooky.attempts WHERE webhook_id = %d AND status IS NULL"
        #expect(try shop.waitFor(String(format: failed, webhookA)) { $0 == "t" } == "t")
        #expect(try shop.waitFor(String(format: failed, webhookC)) { $0 == "t" } == "t")
        first.stop(timeout: .seconds(30))
        #expect(try shop.connection.query("""
            SELECT DISTINCT webhook_id::text, error_code FROM webhooky.attempts WHERE error_code <> 'interrupted' ORDER BY 1
            """).rows == [[String(webhookA), "redirect_refused"], [String(webhookB), "address_not_allowed"], [String(webhookC), "timeout"]])

        // All three answer now, after 4 s; B gets new deliveries, A's and C's are retried.
        answering.withLock { $0 = true }
        configuration.http.requestTimeout = .seconds(20)
        let started = Date().timeIntervalSince1970
        let second = RunningWorker(configuration)
        defer { second.stop(timeout: .seconds(30)) }
        try shop.connection.execute("SELECT webhooky.emit('b.test', '{}') FROM generate_series(1, 6)")
        for (name, receiver, expected) in [("A", slowA, 3), ("B", slowB, 3), ("C", slowC, 1)] {
            let atOnce = try RecalledEndpointTests.requestsAtOnce(receiver, name, since: started)
            #expect(atOnce == expected, "endpoint \(name) had \(atOnce) requests at once from the new worker, not \(expected)")
        }
    }

    /// How many requests `receiver` got from a worker started at `started` before the first of
    /// them could be answered (4 s): counted within 3 s of that request, not of the worker's
    /// start, which a busy machine delays. Waits up to 10 s for the first request.
    static func requestsAtOnce(_ receiver: LoopbackReceiver, _ name: String, since started: Double) throws -> Int {
        let deadline = Date().timeIntervalSince1970 + 10
        var first: Double? = nil
        while first == nil && Date().timeIntervalSince1970 < deadline {
            first = receiver.requests.map(\.receivedAt).filter { $0 >= started }.min()
            if first == nil { Thread.sleep(forTimeInterval: 0.02) }
        }
        let firstAt = try #require(first, "endpoint \(name) got no request from the new worker")
        Thread.sleep(forTimeInterval: max(0, firstAt + 3 - Date().timeIntervalSince1970))
        return receiver.requests.filter { $0.receivedAt >= started && $0.receivedAt < firstAt + 3 }.count
    }
}
