import Glibc
import HTTPClient
import LoopbackReceiver
import Testing

/// The first result's error, failing the test when the request got a response.
func failure(of results: ResultCollector, sourceLocation: SourceLocation = #_sourceLocation) throws -> HTTPError {
    let result = try #require(results.wait(for: 1).first, sourceLocation: sourceLocation)
    switch result.outcome {
    case .failure(let error):
        return error
    case .success(let response):
        Issue.record("expected a failure, got HTTP \(response.status)", sourceLocation: sourceLocation)
        return HTTPError(code: .other, message: "")
    }
}

/// An address policy allowing 127.0.0.0/8, so that a receiver on 127.0.0.1 passes the check.
func allowingLoopback() throws -> AddressPolicy {
    try AddressPolicy(allowing: ["127.0.0.0/8"])
}

/// The address check on real connections: receivers on 127.0.0.1, refused or allowed.
@Suite(.timeLimit(.minutes(10))) struct AddressCheckTests {
    @Test func theDefaultsRefuseInternalNetworksAndFollowNoRedirects() {
        let configuration = HTTPClient.Configuration()
        #expect(configuration.addressPolicy == .standard)
        #expect(configuration.addressPolicy.allowedNetworks.isEmpty)
        #expect(!configuration.addressPolicy.allowsAllAddresses)
        #expect(configuration.caBundlePath == nil)
        #expect(HTTPRequest(tag: 1, method: "GET", url: "https://example.com/").maximumRedirects == 0)
    }

    @Test func aReceiverOnLoopbackIsRefusedByDefaultAndNeverConnectedTo() throws {
        let receiver = try LoopbackReceiver()
        let (client, results) = try makeClient { $0.addressPolicy = .standard }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "POST", url: receiver.baseURL + "/hooks/erp?apikey=s3cr3t", body: Array("{}".utf8))])
        let error = try failure(of: results)
        #expect(error.code == .addressNotAllowed)
        #expect(error.message == "refused to connect to 127.0.0.1 (loopback address): private and internal networks are not allowed; allow them with an allow-list (webhooky run --allow-network CIDR)")
        #expect(!error.message.contains("s3cr3t") && !error.message.contains("/hooks"), "never the URL's path or query")
        #expect(receiver.connectionsAccepted == 0)
        #expect(receiver.requests.isEmpty)
    }

    @Test func theSwitchAndAnAllowListLetLoopbackThrough() throws {
        let receiver = try LoopbackReceiver()
        for policy in [AddressPolicy.allowingAll, try allowingLoopback(), try AddressPolicy(allowing: ["127.0.0.1/32"])] {
            let (client, results) = try makeClient { $0.addressPolicy = policy }
            defer { client.shutdown() }
            client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/")])
            #expect(try #require(results.wait(for: 1).first).outcome.get().status == 200, "\(policy)")
        }
        #expect(receiver.requests.count == 3)
    }

    @Test func anAllowListOfOtherNetworksStillRefusesLoopback() throws {
        let receiver = try LoopbackReceiver()
        let policy = try AddressPolicy(allowing: ["10.0.0.0/8", "127.0.0.2/32", "::1"])
        let (client, results) = try makeClient { $0.addressPolicy = policy }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/")])
        #expect(try failure(of: results).code == .addressNotAllowed)
        #expect(receiver.connectionsAccepted == 0)
    }

    /// "localhost" is a name: it is resolved first, and the address it resolves to is refused.
    @Test func aHostNameThatResolvesToLoopbackIsRefusedAfterResolution() throws {
        let receiver = try LoopbackReceiver()
        let (client, results) = try makeClient { $0.addressPolicy = .standard }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: "http://localhost:\(receiver.port)/latest/meta-data")])
        let error = try failure(of: results)
        #expect(error.code == .addressNotAllowed)
        // The name, not what it resolves to: the message is recorded where whoever wrote the
        // URL reads it, and must not serve them as a lookup of internal names.
        #expect(error.message == "refused to connect to localhost (it resolves to a loopback address): private and internal networks are not allowed; allow them with an allow-list (webhooky run --allow-network CIDR)")
        #expect(!error.message.contains("meta-data") && !error.message.contains("127.0.0.1") && !error.message.contains("::1"))
        #expect(receiver.connectionsAccepted == 0)
    }

    /// Other spellings of the receiver's address reach it when allowed, and are refused by default.
    @Test(arguments: [
        ("http://[::ffff:127.0.0.1]:PORT/", "refused to connect to ::ffff:127.0.0.1 (IPv4-mapped form of a loopback address)"),
        ("http://0.0.0.0:PORT/", "refused to connect to 0.0.0.0 (unspecified (\"this network\") address)"),
        ("http://127.1.2.3:PORT/", "refused to connect to 127.1.2.3 (loopback address)"),
        ("http://[::1]:PORT/", "refused to connect to ::1 (loopback address)"),
    ])
    func otherFormsOfLoopbackAreRefused(_ template: String, _ message: String) throws {
        let receiver = try LoopbackReceiver()
        let url = template.replacing("PORT", with: String(receiver.port))
        let (client, results) = try makeClient { $0.addressPolicy = .standard }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: url)])
        let error = try failure(of: results)
        #expect(error.code == .addressNotAllowed)
        #expect(error.message.hasPrefix(message + ":"))
        #expect(receiver.connectionsAccepted == 0)
    }

    /// The IPv4-mapped form really reaches a receiver on 127.0.0.1: refusing it matters.
    @Test func theMappedFormOfAnAllowedNetworkIsAllowedAndReachesTheReceiver() throws {
        let receiver = try LoopbackReceiver()
        let policy = try allowingLoopback()
        let (client, results) = try makeClient { $0.addressPolicy = policy }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: "http://[::ffff:127.0.0.1]:\(receiver.port)/mapped")])
        #expect(try #require(results.wait(for: 1).first).outcome.get().status == 200)
        #expect(receiver.requests.map(\.target) == ["/mapped"])
    }

    @Test("a host with a refused and an allowed address: the allowed one is used, and when it is down the failure is a connection failure (retried), not a refusal (dead)")
    func aHostWithRefusedAndAllowedAddresses() throws {
        let receiver = try LoopbackReceiver()
        let closed = try LoopbackReceiver()
        closed.stop()  // nothing listens on its port now
        let policy = try AddressPolicy(allowing: ["127.0.0.0/8"])
        let (client, results) = try makeClient {
            $0.addressPolicy = policy
            // 10.0.0.1 (private, refused) first, then 127.0.0.1 (allowed).
            $0.fixedAddresses = ["mixed.test:\(receiver.port):10.0.0.1,127.0.0.1", "mixed.test:\(closed.port):10.0.0.1,127.0.0.1",
                                 "refused.test:\(receiver.port):10.0.0.1"]
        }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: "http://mixed.test:\(receiver.port)/up")])
        #expect(try #require(results.wait(for: 1).first).outcome.get().status == 200)
        #expect(receiver.requests.map(\.target) == ["/up"])

        client.send([HTTPRequest(tag: 2, method: "GET", url: "http://mixed.test:\(closed.port)/down")])
        let down = try #require(results.wait(for: 2).last)
        guard case .failure(let error) = down.outcome else { Issue.record("connected to a stopped receiver"); return }
        #expect(error.code == .connectFailure, "\(error)")

        client.send([HTTPRequest(tag: 3, method: "GET", url: "http://refused.test:\(receiver.port)/refused")])
        guard case .failure(let refused) = try #require(results.wait(for: 3).last).outcome else { Issue.record("connected to 10.0.0.1"); return }
        #expect(refused.code == .addressNotAllowed)
        #expect(refused.message.hasPrefix("refused to connect to refused.test (it resolves to a private address (RFC 1918))"), "\(refused.message)")
        #expect(!refused.message.contains("10.0.0.1"))
    }

    @Test func aRedirectIsNotFollowedUnlessTheRequestOptsIn() throws {
        let receiver = try LoopbackReceiver { request, _ in
            request.target == "/final" ? .ok : .respond(status: 302, headers: [.init(name: "Location", value: "/final")])
        }
        let policy = try allowingLoopback()
        let (client, results) = try makeClient { $0.addressPolicy = policy }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/start")])
        let response = try #require(results.wait(for: 1).first).outcome.get()
        #expect(response.status == 302)
        #expect(response.location == "/final")
        #expect(receiver.requests.map(\.target) == ["/start"])

        client.send([HTTPRequest(tag: 2, method: "GET", url: receiver.baseURL + "/start", maximumRedirects: 1)])
        let followed = try #require(results.wait(for: 2).last).outcome.get()
        #expect(followed.status == 200)
        #expect(followed.body == Array("ok".utf8))
        #expect(receiver.requests.map(\.target) == ["/start", "/start", "/final"])
    }

    /// The classic SSRF: an allowed endpoint redirects to the cloud metadata service.
    @Test func aRedirectIntoAnInternalNetworkIsRefused() throws {
        let receiver = try LoopbackReceiver { _, _ in
            .respond(status: 302, headers: [.init(name: "Location", value: "http://169.254.169.254/latest/meta-data/iam?token=abc")])
        }
        let policy = try allowingLoopback()
        let (client, results) = try makeClient { $0.addressPolicy = policy }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/", maximumRedirects: 5)])
        let error = try failure(of: results)
        #expect(error.code == .addressNotAllowed)
        #expect(error.message == "refused to connect to 169.254.169.254 (link-local address): private and internal networks are not allowed; allow them with an allow-list (webhooky run --allow-network CIDR)")
        #expect(!error.message.contains("latest") && !error.message.contains("token"))
        #expect(receiver.requests.count == 1)
    }

    @Test func aRedirectToAnotherSchemeIsRefused() throws {
        for location in ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/x"] {
            let receiver = try LoopbackReceiver { _, _ in .respond(status: 302, headers: [.init(name: "Location", value: location)]) }
            let (client, results) = try makeClient { $0.addressPolicy = .allowingAll }
            defer { client.shutdown() }
            client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/", maximumRedirects: 5)])
            #expect(try failure(of: results).code == .redirectRefused, "\(location)")
        }
    }

    @Test func aRedirectLoopStopsAtTheRequestsLimit() throws {
        let receiver = try LoopbackReceiver { _, number in
            .respond(status: 302, headers: [.init(name: "Location", value: "/loop/\(number)")])
        }
        let policy = try allowingLoopback()
        let (client, results) = try makeClient { $0.addressPolicy = policy }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/", maximumRedirects: 3)])
        let error = try failure(of: results)
        #expect(error.code == .tooManyRedirects)
        #expect(receiver.requests.map(\.target) == ["/", "/loop/1", "/loop/2", "/loop/3"], "the first request and 3 redirects")
    }

    @Test func aNegativeRedirectLimitFollowsNone() throws {
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 302, headers: [.init(name: "Location", value: "/again")]) }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: receiver.baseURL + "/", maximumRedirects: -1)])
        #expect(try #require(results.wait(for: 1).first).outcome.get().status == 302)
        #expect(receiver.requests.count == 1)
    }
}

/// Proxies named in the environment are never used: through one, the proxy's address would be
/// the only one checked. Each case runs in a child process of its own (an exit test), because
/// changing the environment of this process would race with other suites' children, which
/// inherit it.
@Suite(.timeLimit(.minutes(10))) struct EnvironmentProxyTests {
    @Test(arguments: [
        ("http_proxy", "http://169.254.169.254/latest/meta-data"),
        ("ALL_PROXY", "http://169.254.169.254/latest/meta-data"),
        ("all_proxy", "http://10.0.0.1/admin"),
        ("https_proxy", "https://169.254.169.254/latest/meta-data"),
        ("HTTPS_PROXY", "https://192.168.1.1/"),
    ])
    func anEnvironmentProxyDoesNotBypassTheCheck(_ variable: String, _ url: String) async {
        // Exit status 2: the proxy was connected to; 3: the request was not refused for its address.
        await #expect(processExitsWith: .success, "\(variable) set, \(url) requested") { [variable, url] in
            exit(try Self.requestThroughEnvironmentProxy(variable: variable, url: url))
        }
    }

    /// In the child: only `variable` names a proxy (a receiver on 127.0.0.1, which the policy
    /// allows) and `url`'s host is internal. 0 when the request was refused for its address and
    /// the proxy never connected to; 2 when the proxy was; 3 when the request was not refused
    /// for its address.
    static func requestThroughEnvironmentProxy(variable: String, url: String) throws -> Int32 {
        let proxy = try LoopbackReceiver()
        for name in ["http_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy", "no_proxy", "NO_PROXY"] {
            unsetenv(name)
        }
        setenv(variable, proxy.baseURL, 1)
        let policy = try allowingLoopback()
        let (client, results) = try makeClient { $0.addressPolicy = policy }
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: url)])
        let result = results.wait(for: 1).first
        if proxy.connectionsAccepted != 0 { return 2 }
        guard let result, case .failure(let error) = result.outcome, error.code == .addressNotAllowed else { return 3 }
        return EXIT_SUCCESS
    }
}
