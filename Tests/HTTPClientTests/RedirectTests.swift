import Foundation
import Glibc
import HTTPClient
import LoopbackReceiver
import Synchronization
import Testing

/// Redirects that the client follows, against real receivers on 127.0.0.1 (two receivers, two
/// ports: two origins): which headers reach which origin, method and body, the scheme rules, and
/// one timeout and one place in the endpoint's line for the whole chain.
@Suite(.timeLimit(.minutes(10))) struct RedirectTests {
    /// A webhook's POST: a secret custom header (staying with its origin, the default),
    /// `Authorization` marked as if it could go on (it never does), and the headers that go on.
    private func webhookPOST(tag: Int64 = 1, _ url: String, endpoint: String? = nil) -> HTTPRequest {
        HTTPRequest(tag: tag, method: "POST", url: url, headers: [
            HTTPHeader(name: "X-Api-Key", value: "k-secret"),
            HTTPHeader(name: "Authorization", value: "Bearer t-secret", staysWithOrigin: false),
            HTTPHeader(name: "Content-Type", value: "application/json", staysWithOrigin: false),
            HTTPHeader(name: "webhook-id", value: "msg_1", staysWithOrigin: false),
            HTTPHeader(name: "webhook-signature", value: "v1,c2lnbmF0dXJl", staysWithOrigin: false),
        ], body: Array(#"{"n":1}"#.utf8), maximumRedirects: 5, endpoint: endpoint)
    }

    private static func redirect(_ status: Int, to location: String, delay: Duration = .zero) -> Reply {
        .respond(status: status, headers: [.init(name: "Location", value: location)], delay: delay)
    }

    @Test("a redirect to the same origin (its host spelled in capitals) keeps every header, the method and the body")
    func theSameOriginKeepsEveryHeader() throws {
        let receiver = try LoopbackReceiver { request, _ in
            // Absolute, to the host of the Host header in capitals: still the same origin.
            request.target == "/start" ? RedirectTests.redirect(307, to: "http://\((request.header("host") ?? "").uppercased())/final") : .ok
        }
        let (client, results) = try makeClient { $0.fixedAddresses = ["hooks.test:\(receiver.port):127.0.0.1"] }
        defer { client.shutdown() }
        client.send([webhookPOST("http://hooks.test:\(receiver.port)/start")])
        #expect(try #require(results.wait(for: 1).first).outcome.get().status == 200)
        #expect(receiver.requests.map(\.target) == ["/start", "/final"])
        let final = try #require(receiver.requests.last)
        #expect(final.method == "POST")
        #expect(final.bodyText == #"{"n":1}"#)
        #expect(final.header("x-api-key") == "k-secret")
        #expect(final.header("authorization") == "Bearer t-secret")
        #expect(final.header("webhook-signature") == "v1,c2lnbmF0dXJl")
    }

    @Test("a redirect to another origin gets the signature, Content-Type and body, but no custom header")
    func anotherOriginGetsNoCustomHeader() throws {
        let other = try LoopbackReceiver()
        let first = try LoopbackReceiver { _, _ in RedirectTests.redirect(307, to: other.baseURL + "/moved") }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([webhookPOST(first.baseURL + "/start")])
        let response = try #require(results.wait(for: 1).first).outcome.get()
        #expect(response.status == 200)
        #expect(response.body == Array("ok".utf8))
        #expect(first.requests.first?.header("x-api-key") == "k-secret", "the webhook's own origin gets it")
        let moved = try #require(other.requests.first)
        #expect(moved.target == "/moved")
        #expect(moved.header("x-api-key") == nil)
        #expect(moved.header("authorization") == nil)
        #expect(moved.method == "POST")
        #expect(moved.bodyText == #"{"n":1}"#)
        #expect(moved.header("content-type") == "application/json")
        #expect(moved.header("webhook-id") == "msg_1")
        #expect(moved.header("webhook-signature") == "v1,c2lnbmF0dXJl")
        #expect(moved.header("user-agent") == "Webhooky/1")
    }

    @Test("after a hop to another origin the custom headers stay behind for the rest of the chain, even back at the first origin; the result covers every hop")
    func aHopBackDoesNotGetThemEither() throws {
        let first = Mutex<String>("")
        let other = try LoopbackReceiver { _, _ in RedirectTests.redirect(307, to: first.withLock { $0 } + "/back", delay: .milliseconds(200)) }
        let receiver = try LoopbackReceiver { request, _ in
            request.target == "/start" ? RedirectTests.redirect(307, to: other.baseURL + "/away", delay: .milliseconds(200)) : .ok
        }
        first.withLock { $0 = receiver.baseURL }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([webhookPOST(receiver.baseURL + "/start")])
        let result = try #require(results.wait(for: 1).first)
        #expect(try result.outcome.get().status == 200)
        #expect(receiver.requests.map(\.target) == ["/start", "/back"])
        #expect(receiver.requests.map { $0.header("x-api-key") ?? "-" } == ["k-secret", "-"])
        #expect(receiver.requests.last?.header("webhook-signature") == "v1,c2lnbmF0dXJl")
        #expect(receiver.requests.last?.bodyText == #"{"n":1}"#)
        // Three hops, two of them waiting 0.2 s: startedAt and duration are the chain's.
        #expect(result.duration >= .milliseconds(380), "\(result.duration)")
        let start = try #require(receiver.requests.first)
        #expect(result.startedAt <= start.receivedAt)
    }

    @Test("303 turns a POST into a GET without body; 301, 302, 307 and 308 keep method and body (a webhook moved from http to https gets its message)", arguments: [
        (301, "POST", #"{"n":1}"#), (302, "POST", #"{"n":1}"#), (303, "GET", ""), (307, "POST", #"{"n":1}"#), (308, "POST", #"{"n":1}"#),
    ])
    func methodAndBodyAfterARedirect(_ status: Int, _ method: String, _ body: String) throws {
        let receiver = try LoopbackReceiver { request, _ in
            request.target == "/start" ? RedirectTests.redirect(status, to: "/final") : .ok
        }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([webhookPOST(receiver.baseURL + "/start")])
        #expect(try #require(results.wait(for: 1).first).outcome.get().status == 200)
        let final = try #require(receiver.requests.last)
        #expect(final.target == "/final")
        #expect(final.method == method)
        #expect(final.bodyText == body)
        #expect(final.header("content-length") == (body.isEmpty ? nil : String(body.utf8.count)))
    }

    @Test("the request timeout covers every hop, not each")
    func oneTimeoutForTheWholeChain() throws {
        let other = try LoopbackReceiver { _, _ in .respond(status: 200, body: "late", delay: .milliseconds(700)) }
        let first = try LoopbackReceiver { _, _ in RedirectTests.redirect(307, to: other.baseURL + "/slow", delay: .milliseconds(700)) }
        let (client, results) = try makeClient { $0.requestTimeout = .seconds(1) }
        defer { client.shutdown() }
        client.send([webhookPOST(first.baseURL + "/start")])
        let result = try #require(results.wait(for: 1).first)
        guard case .failure(let error) = result.outcome else { Issue.record("each hop had its own timeout"); return }
        #expect(error.code == .timeout)
        #expect(error.message.hasPrefix("Operation timed out after") && error.message.hasSuffix("milliseconds, 1 redirect followed"), "\(error.message)")
        #expect(result.duration >= .milliseconds(950) && result.duration < .seconds(2), "\(result.duration)")
        #expect(other.requests.map(\.target) == ["/slow"])
    }

    @Test("a chain holds one place in its endpoint's line until it ends: the next request of that endpoint waits for the last hop")
    func aChainIsOneRequestOfItsEndpoint() throws {
        let other = try LoopbackReceiver { _, _ in .respond(status: 200, body: "ok", delay: .milliseconds(500)) }
        let first = try LoopbackReceiver { request, _ in
            request.target == "/start" ? RedirectTests.redirect(307, to: other.baseURL + "/slow") : .ok
        }
        let (client, results) = try makeClient { $0.maximumRequestsPerEndpoint = 1 }
        defer { client.shutdown() }
        client.send([
            webhookPOST(tag: 1, first.baseURL + "/start", endpoint: first.baseURL),
            webhookPOST(tag: 2, first.baseURL + "/second", endpoint: first.baseURL),
        ])
        #expect(try results.wait(for: 2).map { try $0.outcome.get().status } == [200, 200])
        #expect(first.requests.map(\.target) == ["/start", "/second"])
        let slow = try #require(other.requests.first)
        let second = try #require(first.requests.last)
        #expect(second.receivedAt - slow.receivedAt >= 0.45, "the second request started before the chain ended (or before its hop)")
    }

    @Test("redirects inside a chain are counted across origins: one too many fails")
    func tooManyAcrossOrigins() throws {
        let other = Mutex<String>("")
        let a = try LoopbackReceiver { _, number in RedirectTests.redirect(302, to: other.withLock { $0 } + "/b\(number)") }
        let b = try LoopbackReceiver { _, number in RedirectTests.redirect(302, to: a.baseURL + "/a\(number)") }
        other.withLock { $0 = b.baseURL }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        var request = webhookPOST(a.baseURL + "/start")
        request.maximumRedirects = 3
        client.send([request])
        let error = try failure(of: results)
        #expect(error.code == .tooManyRedirects)
        #expect(error.message == "Maximum (3) redirects followed")
        #expect(a.requests.map(\.target) + b.requests.map(\.target) == ["/start", "/a1", "/b1", "/b2"])
    }
}

/// The scheme rules, against `openssl s_server` answering with a redirect over TLS.
@Suite(.timeLimit(.minutes(10))) struct RedirectSchemeTests {
    let certificates: TestCertificates

    init() throws {
        certificates = try TestCertificates()
    }

    /// A TLS server on 127.0.0.1 that answers `GET /redirect` with a 302 to `location`.
    private func redirectingServer(to location: String) throws -> TLSServer {
        let folder = certificates.folder + "/responses"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let response = "HTTP/1.0 302 Found\r\nLocation: \(location)\r\nContent-Length: 0\r\n\r\n"
        guard FileManager.default.createFile(atPath: folder + "/redirect", contents: Data(response.utf8)) else {
            throw TLSFixtureError("could not write \(folder)/redirect")
        }
        let (certificate, key) = certificates.server("localhost")
        return try TLSServer(openssl: certificates.openssl, certificate: certificate, key: key, responsesFolder: folder)
    }

    @Test("an https URL never redirects down to http")
    func httpsDoesNotGoDownToHTTP() throws {
        let plain = try LoopbackReceiver()
        let server = try redirectingServer(to: plain.baseURL + "/final")
        defer { server.stop() }
        let (client, results) = try makeClient { $0.caBundlePath = certificates.caPath }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: "https://127.0.0.1:\(server.port)/redirect", maximumRedirects: 5)])
        let error = try failure(of: results)
        #expect(error.code == .redirectRefused)
        #expect(error.message == "refused to follow a redirect from https to http")
        #expect(plain.connectionsAccepted == 0)
    }

    @Test("after an https hop, an http one is refused too, even when the chain began with http")
    func noHTTPAfterAnHTTPSHop() throws {
        let secure = Mutex<String>("")
        let receiver = try LoopbackReceiver { request, _ in
            request.target == "/start" ? .respond(status: 302, headers: [.init(name: "Location", value: secure.withLock { $0 })]) : .ok
        }
        let server = try redirectingServer(to: receiver.baseURL + "/final")
        defer { server.stop() }
        secure.withLock { $0 = "https://127.0.0.1:\(server.port)/redirect" }
        let (client, results) = try makeClient { $0.caBundlePath = certificates.caPath }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/start", maximumRedirects: 5)])
        let error = try failure(of: results)
        #expect(error.code == .redirectRefused)
        #expect(error.message == "refused to follow a redirect from https to http")
        #expect(receiver.requests.map(\.target) == ["/start"])
    }
}
