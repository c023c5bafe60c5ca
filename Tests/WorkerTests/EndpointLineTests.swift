import Foundation
import HTTPClient
import LoopbackReceiver
import Postgres
import Synchronization
import Testing
import TestSupport
@testable import Worker

/// The line of deliveries a worker keeps waiting in its HTTP client for an endpoint that
/// answers quickly (`QuickEndpoints`, `Dispatcher.budget(of:)`).
@Suite(.timeLimit(.minutes(2))) struct EndpointLineTests {
    @Test("while an endpoint answers quickly the worker holds as many deliveries again, waiting in line; the endpoint never gets more than its limit at once, and each delivery arrives once after it turned slow. No line when the lease cannot cover two request timeouts",
          arguments: [(lease: Duration.seconds(60), line: true), (lease: .seconds(20), line: false)])
    func quickEndpointGetsALine(lease: Duration, line: Bool) throws {
        let shop = try Shop()
        try shop.addCustomers(12)
        let concurrent = Mutex((now: 0, peak: 0))
        let receiver = try LoopbackReceiver { _, number in
            concurrent.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
            // The first four answer at once (the endpoint is quick), the rest after 0.6 s.
            if number > 4 { Thread.sleep(forTimeInterval: 0.6) }
            concurrent.withLock { $0.now -= 1 }
            return .ok
        }
        try shop.addWebhook(url: receiver.baseURL + "/line")
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100012")
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlightPerEndpoint = 2
        configuration.leaseDuration = lease
        configuration.http.requestTimeout = .seconds(15)  // the line needs a lease of 2 x 15 + 2 s
        let worker = RunningWorker(configuration)
        defer { worker.stop() }

        // Deliveries claimed and not yet at the receiver for 0.2 s or more are waiting in line
        // (a request on its way takes milliseconds; a claimed delivery stays `sending` until its
        // outcome is written, so arrivals are taken off).
        var firstSeen: [String: ContinuousClock.Instant] = [:]
        var mostWaiting = 0
        let deadline = ContinuousClock.now + .seconds(30)
        while receiver.requests.count < 12 && ContinuousClock.now < deadline {
            let claimed = try shop.column("SELECT 'msg_' || id FROM webhooky.deliveries WHERE state = 'sending'").compactMap { $0 }
            let arrived = Set(receiver.requests.compactMap { $0.header("webhook-id") })
            let now = ContinuousClock.now
            let waiting = claimed.filter { !arrived.contains($0) }
            for id in waiting where firstSeen[id] == nil { firstSeen[id] = now }
            mostWaiting = max(mostWaiting, waiting.filter { now - firstSeen[$0]! >= .milliseconds(200) }.count)
            Thread.sleep(forTimeInterval: 0.025)
        }
        #expect(receiver.waitForRequests(12, timeout: .seconds(10)).count == 12)
        #expect(Set(receiver.requests.compactMap { $0.header("webhook-id") }).count == 12, "each delivery arrived once")
        #expect(concurrent.withLock { $0.peak } == 2, "the endpoint never had more than its limit of requests at once")
        #expect(mostWaiting == (line ? 2 : 0), "deliveries waiting in line at most: \(mostWaiting)")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded' AND attempts = 1") { $0 == "12" } == "12")
    }
}

/// ``QuickEndpoints`` on its own.
@Suite struct QuickEndpointsTests {
    @Test("an endpoint is quick after a request that ended within 50 ms, slow again after one that did not; never quick when disabled")
    func quickAndSlow() {
        var endpoints = QuickEndpoints(enabled: true)
        #expect(!endpoints.contains("a"))
        endpoints.finished("a", after: .milliseconds(3))
        #expect(endpoints.contains("a") && !endpoints.contains("b"))
        endpoints.finished("a", after: .milliseconds(50))
        #expect(!endpoints.contains("a"))
        var disabled = QuickEndpoints(enabled: false)
        disabled.finished("a", after: .milliseconds(1))
        #expect(!disabled.contains("a"))
    }
}
