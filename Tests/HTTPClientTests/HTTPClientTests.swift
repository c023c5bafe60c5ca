import Foundation
import HTTPClient
import LoopbackReceiver
import Synchronization
import Testing

/// Collects results from an ``HTTPClient`` and lets a test wait for them.
final class ResultCollector: Sendable {
    private let results = Mutex<[HTTPResult]>([])
    private let condition = NSCondition()

    func add(_ batch: [HTTPResult]) {
        results.withLock { $0.append(contentsOf: batch) }
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    func wait(for count: Int, timeout: Duration = .seconds(20)) -> [HTTPResult] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            let current = results.withLock { $0 }
            if current.count >= count || !condition.waitBriefly(before: deadline) { return current.sorted { $0.tag < $1.tag } }
        }
    }
}

/// A client for tests, which send to 127.0.0.1: every address is allowed
/// (``AddressPolicy/allowingAll``) unless `configure` sets another policy.
func makeClient(_ configure: (inout HTTPClient.Configuration) -> Void = { _ in }) throws -> (HTTPClient, ResultCollector) {
    var configuration = HTTPClient.Configuration()
    configuration.addressPolicy = .allowingAll
    configure(&configuration)
    let collector = ResultCollector()
    let client = try HTTPClient(configuration: configuration) { collector.add($0) }
    return (client, collector)
}

@Suite(.timeLimit(.minutes(10))) struct HTTPClientTests {
    @Test func postSendsExactBodyAndHeaders() throws {
        let receiver = try LoopbackReceiver()
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        let body = Array(#"{"credit": 12345678901234.56, "name": "ř😀"}"#.utf8)
        client.send([HTTPRequest(
            tag: 1, method: "POST", url: receiver.baseURL + "/hook?a=1&b=%40",
            headers: [HTTPHeader(name: "Content-Type", value: "application/json"), HTTPHeader(name: "X-Custom", value: "v 1")],
            body: body
        )])
        let result = try #require(results.wait(for: 1).first)
        #expect(try result.outcome.get().status == 200)
        #expect(try result.outcome.get().body == Array("ok".utf8))
        let request = try #require(receiver.requests.first)
        #expect(request.method == "POST")
        #expect(request.target == "/hook?a=1&b=%40")
        #expect(request.body == body)
        #expect(request.header("content-type") == "application/json")
        #expect(request.header("x-custom") == "v 1")
        #expect(request.header("expect") == nil)
        #expect(request.header("user-agent") == "Webhooky/1")
    }

    @Test func largeBodyIsSentWithoutExpectContinueDelay() throws {
        let receiver = try LoopbackReceiver()
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        let body = Array(("[" + String(repeating: "1,", count: 50_000) + "1]").utf8)
        client.send([HTTPRequest(tag: 1, method: "POST", url: receiver.baseURL + "/", body: body)])
        let result = try #require(results.wait(for: 1).first)
        #expect(try result.outcome.get().status == 200)
        #expect(receiver.requests.first?.body == body)
        #expect(result.duration < .milliseconds(900))
    }

    @Test func getHasNoBody() throws {
        let receiver = try LoopbackReceiver()
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 7, method: "GET", url: receiver.baseURL + "/x?id=9007199254740993")])
        let result = try #require(results.wait(for: 1).first)
        #expect(result.tag == 7)
        let request = try #require(receiver.requests.first)
        #expect(request.method == "GET")
        #expect(request.target == "/x?id=9007199254740993")
        #expect(request.body.isEmpty)
    }

    @Test func manyRequestsReuseConnections() throws {
        let receiver = try LoopbackReceiver()
        let (client, results) = try makeClient { $0.maximumConnectionsPerHost = 4 }
        defer { client.shutdown() }
        client.send((1...200).map { HTTPRequest(tag: Int64($0), method: "GET", url: receiver.baseURL + "/\($0)") })
        let finished = results.wait(for: 200)
        #expect(finished.count == 200)
        #expect(finished.allSatisfy { (try? $0.outcome.get().status) == 200 })
        #expect(Set(receiver.requests.map(\.target)).count == 200)
        #expect(receiver.connectionsAccepted <= 4, "200 requests over at most 4 kept-alive connections")
    }

    @Test("a request sent to an idle client starts at once, every time: the client's thread is woken for each batch sent after it took the last")
    func sendsToAnIdleClientStartAtOnce() throws {
        let receiver = try LoopbackReceiver()
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        // Without a wake-up the thread would notice a request only after its 1 s poll timeout:
        // about 950 ms every round. One round slowed by a loaded machine is not that.
        var times: [Duration] = []
        for round in 1...10 {
            let start = ContinuousClock.now
            client.send([HTTPRequest(tag: Int64(round), method: "GET", url: receiver.baseURL + "/\(round)")])
            #expect(results.wait(for: round, timeout: .seconds(5)).count == round)
            times.append(ContinuousClock.now - start)
            Thread.sleep(forTimeInterval: 0.05)  // the thread goes back to waiting
        }
        let sorted = times.sorted()
        #expect(sorted[5] < .milliseconds(300) && sorted[7] < .milliseconds(700), "requests to an idle client took \(times)")
        #expect(receiver.requests.count == 10)
    }

    @Test("requests beyond an endpoint's limit wait their turn: the endpoint never has more at once, the wait is not part of their duration, and other endpoints are not held back")
    func endpointLimitQueuesRequests() throws {
        let concurrent = Mutex((now: 0, peak: 0))
        let slow = try LoopbackReceiver { _, _ in
            concurrent.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
            Thread.sleep(forTimeInterval: 0.5)
            concurrent.withLock { $0.now -= 1 }
            return .ok
        }
        let quick = try LoopbackReceiver()
        let (client, results) = try makeClient { $0.maximumRequestsPerEndpoint = 2 }
        defer { client.shutdown() }
        client.send((1...6).map { HTTPRequest(tag: Int64($0), method: "GET", url: slow.baseURL + "/\($0)", endpoint: "slow") })
        client.send([HTTPRequest(tag: 7, method: "GET", url: quick.baseURL + "/quick", endpoint: "quick")])
        let first = results.wait(for: 1)
        #expect(first.map(\.tag) == [7], "the quick endpoint's request did not wait for the slow endpoint's line")
        let all = results.wait(for: 7)
        #expect(all.count == 7)
        #expect(all.allSatisfy { (try? $0.outcome.get().status) == 200 })
        // Started in the order they were sent: two at a time, as two ended.
        let starts = all.filter { $0.tag <= 6 }.map(\.startedAt)
        #expect(starts == starts.sorted(), "\(starts)")
        let arrived = slow.requests.map(\.target)
        #expect([Set(arrived[0..<2]), Set(arrived[2..<4]), Set(arrived[4..<6])] == [["/1", "/2"], ["/3", "/4"], ["/5", "/6"]], "\(arrived)")
        #expect(concurrent.withLock { $0.peak } == 2)
        // Three rounds of 0.5 s: the last waited 1 s before it started, which is not its
        // duration (1.5 s if it were; the bound leaves 0.7 s for a loaded machine).
        #expect(all.filter { $0.tag <= 6 }.allSatisfy { $0.duration < .milliseconds(1_200) }, "\(all.map(\.duration))")
        #expect(all.filter { $0.tag <= 6 }.map(\.startedAt).max()! - all.filter { $0.tag <= 6 }.map(\.startedAt).min()! >= 0.9)
    }

    @Test("one handle reused for requests of every kind: nothing of a request carries over to the next")
    func aReusedHandleCarriesNothingOver() throws {
        let receiver = try LoopbackReceiver { request, _ in
            request.target == "/moved" ? .respond(status: 302, headers: [.init(name: "Location", value: "/final")]) : .ok
        }
        let (client, results) = try makeClient { $0.maximumConcurrentRequests = 1 }  // one easy handle
        defer { client.shutdown() }
        let json = [HTTPHeader(name: "Content-Type", value: "application/json")]
        let requests = [
            HTTPRequest(tag: 1, method: "POST", url: receiver.baseURL + "/a", headers: json + [HTTPHeader(name: "X-First", value: "yes")],
                        body: Array(#"{"n":1}"#.utf8), maximumRedirects: 2),
            HTTPRequest(tag: 2, method: "GET", url: receiver.baseURL + "/b"),
            HTTPRequest(tag: 3, method: "DELETE", url: receiver.baseURL + "/c"),
            HTTPRequest(tag: 4, method: "POST", url: receiver.baseURL + "/d", headers: json, body: Array(#"{"n":4}"#.utf8)),
            HTTPRequest(tag: 5, method: "GET", url: receiver.baseURL + "/moved", maximumRedirects: 2),
            HTTPRequest(tag: 6, method: "GET", url: receiver.baseURL + "/moved"),
        ]
        for (index, request) in requests.enumerated() {
            client.send([request])
            #expect(results.wait(for: index + 1).count == index + 1)
        }
        let seen = receiver.requests.map { [$0.method, $0.target, $0.bodyText, $0.header("x-first") ?? "-", $0.header("content-type") ?? "-"] }
        #expect(seen == [
            ["POST", "/a", #"{"n":1}"#, "yes", "application/json"],
            ["GET", "/b", "", "-", "-"],
            ["DELETE", "/c", "", "-", "-"],
            ["POST", "/d", #"{"n":4}"#, "-", "application/json"],
            ["GET", "/moved", "", "-", "-"], ["GET", "/final", "", "-", "-"],  // followed: this request allows redirects
            ["GET", "/moved", "", "-", "-"],  // not followed: this one does not
        ])
        #expect(try results.wait(for: 6).map { try $0.outcome.get().status } == [200, 200, 200, 200, 200, 302])
    }

    @Test func anEmptyHeaderValueIsSentEmptyNotDropped() throws {
        let receiver = try LoopbackReceiver()
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "POST", url: receiver.baseURL + "/", headers: [
            HTTPHeader(name: "X-Api-Key", value: ""), HTTPHeader(name: "Content-Type", value: "application/json"),
            HTTPHeader(name: "X-Space", value: " "), HTTPHeader(name: "X-Tab", value: "\t "),
        ], body: Array("{}".utf8))])
        _ = results.wait(for: 1)
        let request = try #require(receiver.requests.first)
        #expect(request.headers.contains(.init(name: "X-Api-Key", value: "")))
        // Blank values too (libcurl dropped "Name: " with only spaces after the colon).
        #expect(request.headers.contains(.init(name: "X-Space", value: "")))
        #expect(request.headers.contains(.init(name: "X-Tab", value: "")))
    }

    @Test("the path goes out as rendered: libcurl does not resolve dot segments")
    func dotSegmentsAreSentAsWritten() throws {
        let receiver = try LoopbackReceiver()
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/api/customers/../notify/./x?y=1", headers: [], body: nil)])
        _ = results.wait(for: 1)
        #expect(try #require(receiver.requests.first).target == "/api/customers/../notify/./x?y=1")
    }

    @Test func statusAndRetryAfterAreReported() throws {
        let receiver = try LoopbackReceiver { _, _ in
            .respond(status: 503, headers: [.init(name: "Retry-After", value: "120")], body: "busy")
        }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/")])
        let response = try #require(results.wait(for: 1).first).outcome.get()
        #expect(response.status == 503)
        #expect(response.retryAfter == "120")
        #expect(response.body == Array("busy".utf8))
    }

    @Test func redirectsAreNotFollowedByDefault() throws {
        let receiver = try LoopbackReceiver { _, _ in
            .respond(status: 302, headers: [.init(name: "Location", value: "http://169.254.169.254/latest")])
        }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/")])
        let response = try #require(results.wait(for: 1).first).outcome.get()
        #expect(response.status == 302)
        #expect(response.location == "http://169.254.169.254/latest")
        #expect(receiver.requests.count == 1)
    }

    @Test func hangingEndpointTimesOut() throws {
        let receiver = try LoopbackReceiver { _, _ in .hang }
        defer { receiver.stop() }
        let (client, results) = try makeClient { $0.requestTimeout = .milliseconds(300) }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/")])
        let result = try #require(results.wait(for: 1).first)
        #expect(throws: HTTPError.self) { try result.outcome.get() }
        if case .failure(let error) = result.outcome { #expect(error.code == .timeout) }
        #expect(result.duration >= .milliseconds(250))
        #expect(result.duration < .seconds(3))
    }

    @Test("a request that gets no answer gives up the requests waiting behind it in its endpoint's line: they end cancelled, unsent, instead of each hanging for a timeout; other endpoints' lines go on")
    func noAnswerGivesUpTheEndpointsLine() throws {
        let hanging = try LoopbackReceiver { _, _ in .hang }
        defer { hanging.stop() }
        let other = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .milliseconds(10)) }
        let (client, results) = try makeClient {
            $0.maximumRequestsPerEndpoint = 2
            $0.requestTimeout = .seconds(1)  // far above the other endpoint's answers, on a busy machine too
        }
        defer { client.shutdown() }
        client.send((1...5).map { HTTPRequest(tag: Int64($0), method: "GET", url: hanging.baseURL + "/\($0)", endpoint: "hanging") })
        client.send((6...9).map { HTTPRequest(tag: Int64($0), method: "GET", url: other.baseURL + "/\($0)", endpoint: "other") })
        let outcomes = results.wait(for: 9).map { result -> String in
            switch result.outcome {
            case .success(let response): "\(response.status)"
            case .failure(let error): error.code.rawValue
            }
        }
        #expect(outcomes == ["timeout", "timeout", "cancelled", "cancelled", "cancelled", "200", "200", "200", "200"])
        #expect(Set(hanging.requests.map(\.target)) == ["/1", "/2"] && hanging.requests.count == 2)  // the two at once, in either order
        #expect(other.requests.count == 4)
        // The line works on: the next request to the endpoint is sent.
        client.send([HTTPRequest(tag: 10, method: "GET", url: hanging.baseURL + "/10", endpoint: "hanging")])
        #expect(results.wait(for: 10).count == 10)
        #expect(hanging.requests.map(\.target).last == "/10" && hanging.requests.count == 3)
    }

    @Test("a 2xx status followed by a broken body is that response, with what came of the body, marked truncated; another status so broken stays a failure")
    func acceptedThenBrokenIsTheResponse() throws {
        let receiver = try LoopbackReceiver { request, _ in
            .raw("HTTP/1.1 \(request.target == "/ok" ? "200 OK" : "500 Internal Server Error")\r\nContent-Length: 100\r\n\r\npartial")
        }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "POST", url: receiver.baseURL + "/ok", body: Array("{}".utf8)),
                     HTTPRequest(tag: 2, method: "POST", url: receiver.baseURL + "/fail", body: Array("{}".utf8))])
        let both = results.wait(for: 2)
        let accepted = try #require(both.first).outcome.get()
        #expect(accepted.status == 200 && accepted.body == Array("partial".utf8) && accepted.bodyTruncated)
        guard case .failure(let error) = try #require(both.last).outcome else { Issue.record("a broken 500 is no answer to act on"); return }
        #expect(error.code == .other || error.code == .connectionBroken, "\(error)")
    }

    @Test func resetConnectionIsABrokenConnection() throws {
        let receiver = try LoopbackReceiver { _, _ in .reset }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/")])
        let result = try #require(results.wait(for: 1).first)
        guard case .failure(let error) = result.outcome else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.code == .connectionBroken)
    }

    @Test func refusedConnectionIsAConnectFailure() throws {
        let receiver = try LoopbackReceiver()
        let url = receiver.baseURL + "/"
        receiver.stop()
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: url)])
        let result = try #require(results.wait(for: 1).first)
        guard case .failure(let error) = result.outcome else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.code == .connectFailure)
        #expect(error.message.contains("127.0.0.1"))
    }

    @Test func responseBodyIsReadOnlyUpToTheCap() throws {
        let big = String(repeating: "x", count: 1_000_000)
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, body: big) }
        let (client, results) = try makeClient { $0.maximumResponseBodyBytes = 100 }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/")])
        let response = try #require(results.wait(for: 1).first).outcome.get()
        #expect(response.status == 200)
        #expect(response.body.count == 100)
        #expect(response.bodyTruncated)
    }

    @Test func otherSchemesAreRefused() throws {
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: "file:///etc/passwd")])
        let result = try #require(results.wait(for: 1).first)
        guard case .failure(let error) = result.outcome else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.code == .invalidURL)
    }

    @Test("stopStarting: requests waiting in line, and any sent later, are cancelled at once and never sent; those in flight finish")
    func stopStartingCancelsOnlyWhatWaits() throws {
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .milliseconds(300)) }
        let (client, results) = try makeClient { $0.maximumRequestsPerEndpoint = 1 }
        defer { client.shutdown() }
        client.send([1, 2].map { HTTPRequest(tag: $0, method: "GET", url: receiver.baseURL + "/\($0)", endpoint: "slow") })
        receiver.waitForRequests(1)
        client.stopStarting()
        client.send([HTTPRequest(tag: 3, method: "GET", url: receiver.baseURL + "/3", endpoint: "other")])
        let outcomes = results.wait(for: 3).map { result -> String in
            switch result.outcome {
            case .success(let response): "\(response.status)"
            case .failure(let error): error.code.rawValue
            }
        }
        #expect(outcomes == ["200", "cancelled", "cancelled"])
        #expect(receiver.requests.map(\.target) == ["/1"])
    }

    @Test("shutdown: a request in flight is interrupted (it may have arrived), one still waiting in line is cancelled (never sent)")
    func shutdownCancelsWhatIsInFlight() throws {
        let receiver = try LoopbackReceiver { _, _ in .hang }
        defer { receiver.stop() }
        let (client, results) = try makeClient { $0.maximumRequestsPerEndpoint = 1 }
        client.send([1, 2].map { HTTPRequest(tag: $0, method: "GET", url: receiver.baseURL + "/\($0)", endpoint: "hang") })
        receiver.waitForRequests(1)
        client.shutdown()
        let codes = results.wait(for: 2).map { result -> HTTPError.Code? in
            guard case .failure(let error) = result.outcome else { return nil }
            return error.code
        }
        #expect(codes == [.interrupted, .cancelled])
        #expect(receiver.requests.map(\.target) == ["/1"])
    }
}
