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
@Suite(.timeLimit(.minutes(10))) struct EndpointLineTests {
    @Test("while an endpoint answers quickly the worker holds as many deliveries again, waiting in line; the endpoint never gets more than its limit at once, and each delivery arrives once after it turned slow. No line when the lease cannot cover two request timeouts",
          arguments: [(lease: Duration.seconds(60), line: true), (lease: .seconds(20), line: false)])
    func quickEndpointGetsALine(lease: Duration, line: Bool) throws {
        let shop = try Shop()
        try shop.addCustomers(48)
        let concurrent = Mutex((now: 0, peak: 0))
        let receiver = try LoopbackReceiver { _, number in
            concurrent.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
            // The first 40 answer at once (the endpoint becomes quick), the rest after 0.6 s.
            if number > 40 { Thread.sleep(forTimeInterval: 0.6) }
            concurrent.withLock { $0.now -= 1 }
            return .ok
        }
        try shop.addWebhook(url: receiver.baseURL + "/line")
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100048")
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlightPerEndpoint = 2
        configuration.leaseDuration = lease
        configuration.http.requestTimeout = .seconds(15)  // the line needs a lease of 2 x 15 + 2 s
        let worker = RunningWorker(configuration)
        defer { worker.stop() }

        // Deliveries claimed and not yet at the receiver for 0.35 s or more are waiting in line
        // (a request on its way takes milliseconds, a few hundred on a loaded machine; one in
        // line waits about 0.6 s, for a slow request to end; a claimed delivery stays `sending`
        // until its outcome is written, so arrivals are taken off).
        var firstSeen: [String: ContinuousClock.Instant] = [:]
        var mostWaiting = 0
        let deadline = ContinuousClock.now + .seconds(30)
        while receiver.requests.count < 48 && ContinuousClock.now < deadline {
            let claimed = try shop.column("SELECT webhooky.message_id(id) FROM webhooky.deliveries WHERE state = 'sending'").compactMap { $0 }
            let arrived = Set(receiver.requests.compactMap { $0.header("webhook-id") })
            let now = ContinuousClock.now
            let waiting = claimed.filter { !arrived.contains($0) }
            for id in waiting where firstSeen[id] == nil { firstSeen[id] = now }
            mostWaiting = max(mostWaiting, waiting.filter { now - firstSeen[$0]! >= .milliseconds(350) }.count)
            Thread.sleep(forTimeInterval: 0.025)
        }
        #expect(receiver.waitForRequests(48, timeout: .seconds(10)).count == 48)
        #expect(Set(receiver.requests.compactMap { $0.header("webhook-id") }).count == 48, "each delivery arrived once")
        #expect(concurrent.withLock { $0.peak } == 2, "the endpoint never had more than its limit of requests at once")
        #expect(mostWaiting == (line ? 2 : 0), "deliveries waiting in line at most: \(mostWaiting)")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded' AND attempts = 1") { $0 == "48" } == "48")
    }
}

extension EndpointLineTests {
    @Test("stopping gives back the deliveries waiting in line at once: none is sent during the grace period, cut short and sent again")
    func stoppingGivesTheLineBack() throws {
        let shop = try Shop()
        try shop.addCustomers(40)
        let receiver = try LoopbackReceiver { _, number in
            if number > 30 { Thread.sleep(forTimeInterval: 1.5) }  // quick, then slow
            return .ok
        }
        try shop.addWebhook(url: receiver.baseURL + "/line")
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlightPerEndpoint = 2
        configuration.http.requestTimeout = .seconds(15)
        // Long enough for the two slow requests to end within it even on a busy machine (a stop
        // waits for them, not for the whole period); 2 s and then 4 s failed once each under load.
        configuration.shutdownGracePeriod = .seconds(10)
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100030")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "30" } == "30")
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100031 AND 100040")
        // Two slow requests running, two more claimed and waiting in line.
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'sending'") { $0 == "4" } == "4")
        #expect(receiver.waitForRequests(32, timeout: .seconds(5)).count == 32)
        let stopped = worker.stop()
        #expect(stopped.stoppedInTime)
        #expect(receiver.requests.count == 32, "nothing was sent after the stop began")
        // The six events after the two in line are either still waiting for their fan-out or,
        // when the fan-out's patience (20 ms) ran out before the stop (on a busy machine), have
        // deliveries created pending: both are right, and neither was attempted.
        let counts = try shop.connection.query("""
            SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'pending' AND attempts = 0),
                   count(*) FILTER (WHERE state NOT IN ('succeeded', 'pending') OR (state = 'pending' AND attempts <> 0)),
                   (SELECT count(*) FROM webhooky.attempts),
                   (SELECT count(*) FROM webhooky.events WHERE NOT fanned_out)
              FROM webhooky.deliveries
            """).rows
        let states = try shop.deliveryStates()
        let row = try #require(counts.first)
        #expect(row[0] == "32" && row[2] == "0" && row[3] == "32", "the two in flight finished, nothing else was attempted; deliveries: \(states)")
        let pending = Int(row[1] ?? "") ?? -1
        #expect(pending >= 2 && pending + (Int(row[4] ?? "") ?? -1) == 8,
                "the two in line are pending again, never attempted, and the six after them wait; \(row), deliveries: \(states)")
    }
}

extension EndpointLineTests {
    @Test("the HTTP client gets the worker's limits whatever `http` says: the line's lease argument needs its total and its per-endpoint share")
    func clientLimitsComeFromTheWorker() {
        var configuration = WorkerConfiguration(databaseURL: "")
        configuration.maximumInFlight = 1000
        configuration.maximumInFlightPerEndpoint = 8
        var http = HTTPClient.Configuration()
        http.maximumConcurrentRequests = 256
        http.maximumRequestsPerEndpoint = .max
        http.maximumConnectionsPerHost = 16
        http.requestTimeout = .seconds(7)
        configuration.http = http  // assigned after the limits
        let client = configuration.httpClient
        #expect(client.maximumConcurrentRequests == 1000)
        #expect(client.maximumRequestsPerEndpoint == 8)
        #expect(client.maximumConnectionsPerHost == 0, "no libcurl limit of its own: the line is the limit")
        #expect(client.requestTimeout == .seconds(7))
    }
}

/// ``QuickEndpoints`` on its own.
@Suite struct QuickEndpointsTests {
    @Test("an endpoint is quick after 16 requests in a row that ended within 50 ms, slow again after one that did not; never quick when disabled")
    func quickAndSlow() {
        let now = ContinuousClock.now
        var endpoints = QuickEndpoints(enabled: true)
        for _ in 1..<QuickEndpoints.streak { endpoints.finished("a", after: .milliseconds(3), now: now) }
        #expect(!endpoints.contains("a"))
        endpoints.finished("a", after: .milliseconds(3), now: now)
        #expect(endpoints.contains("a") && !endpoints.contains("b"))
        endpoints.finished("a", after: .milliseconds(50), now: now)
        #expect(!endpoints.contains("a"))
        var disabled = QuickEndpoints(enabled: false)
        for _ in 0..<QuickEndpoints.streak { disabled.finished("a", after: .milliseconds(1), now: now) }
        #expect(!disabled.contains("a"))
    }

    @Test("a quick endpoint whose request gets no answer (it hangs, or refuses) is quick no more")
    func unansweredEndsTheStreak() {
        let now = ContinuousClock.now
        var endpoints = QuickEndpoints(enabled: true)
        for _ in 0..<QuickEndpoints.streak { endpoints.finished("a", after: .milliseconds(3), now: now) }
        #expect(endpoints.contains("a"))
        endpoints.unanswered("a", now: now)
        #expect(!endpoints.contains("a"))
    }

    @Test("an overloaded endpoint that sheds requests with a quick answer and is slow with the rest is not quick")
    func mostlySlowIsNotQuick() {
        let now = ContinuousClock.now
        var endpoints = QuickEndpoints(enabled: true)
        for round in 0..<100 {
            endpoints.finished("busy", after: round % 10 == 0 ? .seconds(10) : .milliseconds(5), now: now)
        }
        #expect(!endpoints.contains("busy"))
    }

    @Test("endpoints unused for a while are forgotten (templated hosts would otherwise pile up)")
    func unusedAreForgotten() {
        let start = ContinuousClock.now
        var endpoints = QuickEndpoints(enabled: true)
        for host in 0..<1000 { endpoints.finished("https://tenant\(host).example", after: .milliseconds(1), now: start) }
        for _ in 0..<QuickEndpoints.streak { endpoints.finished("https://busy.example", after: .milliseconds(1), now: start + .seconds(90)) }
        endpoints.forget(unusedSince: start + .seconds(30))
        #expect(endpoints.count == 1 && endpoints.contains("https://busy.example"))
    }
}

/// ``EndpointAllowance`` on its own.
@Suite struct EndpointAllowanceTests {
    @Test("a new endpoint may have an eighth of the limit in flight, one more per answer within the time allowed, up to the limit; a slower answer costs one, down to the eighth")
    func earnedByAnswers() {
        let now = ContinuousClock.now
        var allowance = EndpointAllowance(limit: 64, answeredWithin: .seconds(2))
        #expect(allowance.initial == 8 && allowance.allowed("a") == 8)
        allowance.answered("a", after: .seconds(3), now: now)
        #expect(allowance.allowed("a") == 8)
        allowance.answered("a", after: .seconds(2), now: now)
        #expect(allowance.allowed("a") == 9)
        for _ in 0..<100 { allowance.answered("a", after: .milliseconds(5), now: now) }
        #expect(allowance.allowed("a") == 64 && allowance.allowed("b") == 8)
        #expect(allowance.endpointsNotAtInitial == ["a"])
        // An endpoint that turns slow gives it back, an answer at a time.
        for _ in 0..<10 { allowance.answered("a", after: .seconds(3), now: now) }
        #expect(allowance.allowed("a") == 54)
        for _ in 0..<100 { allowance.answered("a", after: .seconds(3), now: now) }
        #expect(allowance.allowed("a") == 8 && allowance.endpointsNotAtInitial.isEmpty)
        #expect(EndpointAllowance(limit: 5, answeredWithin: .seconds(1)).initial == 1)
    }

    @Test("a request without an answer halves what the endpoint may have in flight, down to 1: endpoints that hang or are down hold one request each once their first ones ended unanswered, however many there are (each kept 8 before, and 32 of them filled a worker)")
    func halvedByRequestsWithoutAnswer() {
        let now = ContinuousClock.now
        var allowance = EndpointAllowance(limit: 64, answeredWithin: .seconds(2))
        for _ in 0..<56 { allowance.answered("a", after: .milliseconds(5), now: now) }
        allowance.unanswered("a", now: now)
        #expect(allowance.allowed("a") == 32)
        for _ in 0..<2 { allowance.unanswered("a", now: now) }
        #expect(allowance.allowed("a") == 8)
        for _ in 0..<3 { allowance.unanswered("a", now: now) }
        #expect(allowance.allowed("a") == 1)
        allowance.unanswered("a", now: now)
        #expect(allowance.allowed("a") == 1, "never none: the endpoint is tried again, one request at a time")
        allowance.unanswered("never-answered", now: now)
        #expect(allowance.allowed("never-answered") == 4)
        #expect(Set(allowance.endpointsNotAtInitial) == ["a", "never-answered"], "the statements are told: their default is 8")
        // Answers bring it back: a slow one towards the eighth, a quick one beyond it.
        for _ in 0..<3 { allowance.answered("a", after: .seconds(3), now: now) }
        #expect(allowance.allowed("a") == 4)
        for _ in 0..<10 { allowance.answered("a", after: .seconds(3), now: now) }
        #expect(allowance.allowed("a") == 8)
        for _ in 0..<4 { allowance.answered("a", after: .milliseconds(5), now: now) }
        #expect(allowance.allowed("a") == 12)
    }

    @Test("endpoints unused for a minute are forgotten, and start again at an eighth")
    func unusedAreForgotten() {
        let start = ContinuousClock.now
        var allowance = EndpointAllowance(limit: 64, answeredWithin: .seconds(2))
        for _ in 0..<56 { allowance.answered("old", after: .milliseconds(5), now: start) }
        allowance.answered("new", after: .milliseconds(5), now: start + .seconds(61))
        allowance.forget(unusedSince: start + .seconds(1))
        #expect(allowance.count == 1 && allowance.allowed("old") == 8 && allowance.allowed("new") == 9)
        // One held below the eighth (it did not answer) is remembered for an hour: a dead
        // endpoint's retries, minutes apart, do not each start with 8 again.
        for _ in 0..<3 { allowance.unanswered("dead", now: start) }
        allowance.forget(unusedSince: start + .seconds(600))
        #expect(allowance.allowed("dead") == 1 && allowance.allowed("new") == 8)
        allowance.forget(unusedSince: start + .seconds(3601))
        #expect(allowance.allowed("dead") == 8 && allowance.count == 0)
    }

    @Test("an endpoint whose last request before the start got no answer starts at 1, remembered for an hour from that request; one this worker knows already keeps what it knows; answers earn it back")
    func recalledUnanswered() {
        let start = ContinuousClock.now
        var allowance = EndpointAllowance(limit: 64, answeredWithin: .seconds(2))
        allowance.answered("known", after: .milliseconds(5), now: start)
        allowance.recallUnanswered("known", endedAt: start - .seconds(10))
        allowance.recallUnanswered("dead", endedAt: start - .seconds(3000))
        allowance.recallUnanswered("down", endedAt: start - .seconds(60))
        #expect(allowance.allowed("known") == 9 && allowance.allowed("dead") == 1 && allowance.allowed("down") == 1)
        #expect(Set(allowance.endpointsNotAtInitial) == ["known", "dead", "down"])
        allowance.forget(unusedSince: start + .seconds(700))
        #expect(allowance.allowed("dead") == 8 && allowance.allowed("down") == 1, "an hour after its last request, not after the start")
        for _ in 0..<3 { allowance.answered("down", after: .milliseconds(5), now: start) }
        #expect(allowance.allowed("down") == 4)
    }
}
