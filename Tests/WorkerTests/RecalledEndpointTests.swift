import Foundation
import HTTPClient
import LoopbackReceiver
import Postgres
import TestSupport
import Testing
import Worker

/// What a worker that starts takes from the attempts on record about the endpoints it sends to.
@Suite(.timeLimit(.minutes(5))) struct RecalledEndpointTests {
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
        // What each endpoint got from the new worker before its first request could be answered
        // (4 s): counted from that request, not from the worker's start, which a busy machine delays.
        for (name, receiver) in [("A", slowA), ("B", slowB)] {
            let deadline = Date().timeIntervalSince1970 + 10
            var first: Double? = nil
            while first == nil && Date().timeIntervalSince1970 < deadline {
                first = receiver.requests.map(\.receivedAt).filter { $0 >= started }.min()
                if first == nil { Thread.sleep(forTimeInterval: 0.02) }
            }
            let firstAt = try #require(first, "endpoint \(name) got no request from the new worker")
            Thread.sleep(forTimeInterval: max(0, firstAt + 3 - Date().timeIntervalSince1970))
            let atOnce = receiver.requests.filter { $0.receivedAt >= started && $0.receivedAt < firstAt + 3 }.count
            #expect(atOnce == 3, "endpoint \(name) had \(atOnce) requests at once from the new worker, not the 3 of a new endpoint")
        }
    }
}
