@testable import HTTPClient
import Testing

/// ``RedirectChain``: what a redirect leads to, without a network.
@Suite struct RedirectChainTests {
    /// A secret custom header, a `Cookie` marked as if it could go on, and a signature.
    private let headers = [
        HTTPHeader(name: "X-Api-Key", value: "k"),
        HTTPHeader(name: "Cookie", value: "c", staysWithOrigin: false),
        HTTPHeader(name: "webhook-signature", value: "v1,s", staysWithOrigin: false),
    ]

    private func request(_ url: String, method: String = "POST", body: String? = "{}", maximumRedirects: Int = 5) -> HTTPRequest {
        HTTPRequest(tag: 1, method: method, url: url, headers: headers, body: body.map { Array($0.utf8) }, maximumRedirects: maximumRedirects)
    }

    private func next(_ chain: inout RedirectChain, _ request: HTTPRequest, _ status: Int = 307, to location: String?) -> HTTPRequest? {
        guard case .follow(let next)? = chain.next(after: request, status: status, location: location) else { return nil }
        return next
    }

    private func error(_ chain: inout RedirectChain, _ request: HTTPRequest, _ status: Int = 307, to location: String) -> HTTPError? {
        guard case .fail(let error)? = chain.next(after: request, status: status, location: location) else { return nil }
        return error
    }

    @Test("another origin is another scheme, host or port; the host's case and a default port written out are not")
    func origins() throws {
        let cases: [(url: String, location: String, resolved: String, sameOrigin: Bool)] = [
            ("http://hooks.example/a/b", "c?d=1", "http://hooks.example/a/c?d=1", true),
            ("http://hooks.example/a", "http://HOOKS.Example/b", "http://HOOKS.Example/b", true),
            ("http://hooks.example/a", "http://hooks.example:80/b", "http://hooks.example:80/b", true),
            ("https://hooks.example:443/a", "https://hooks.example/b", "https://hooks.example/b", true),
            ("http://hooks.example/a", "https://hooks.example/b", "https://hooks.example/b", false),
            ("http://hooks.example/a", "http://hooks.example:8080/b", "http://hooks.example:8080/b", false),
            ("http://hooks.example/a", "//other.example/b", "http://other.example/b", false),
            ("http://hooks.example/a", "http://hooks.example.other.test/b", "http://hooks.example.other.test/b", false),
            ("http://hooks.example/a", "http://127.0.0.1/b", "http://127.0.0.1/b", false),
        ]
        for item in cases {
            var chain = RedirectChain(startedAt: 0, started: .now)
            let followed = try #require(next(&chain, request(item.url), to: item.location), "\(item)")
            #expect(followed.url == item.resolved, "\(item)")
            #expect(followed.headers.map(\.name) == (item.sameOrigin ? ["X-Api-Key", "Cookie", "webhook-signature"] : ["webhook-signature"]), "\(item)")
            #expect(chain.followed == 1)
        }
    }

    @Test("headers left behind stay behind for the rest of the chain, even back at the first origin")
    func leftBehindForTheRest() throws {
        var chain = RedirectChain(startedAt: 0, started: .now)
        let away = try #require(next(&chain, request("http://hooks.example/a"), to: "http://other.example/b"))
        let back = try #require(next(&chain, away, to: "http://hooks.example/c"))
        #expect(back.headers.map(\.name) == ["webhook-signature"])
        #expect(chain.followed == 2)
    }

    @Test("method and body after each status (libcurl's with CURLOPT_POSTREDIR for 301 and 302)", arguments: [
        (301, "POST", "POST", true), (302, "POST", "POST", true), (303, "POST", "GET", false),
        (307, "POST", "POST", true), (308, "POST", "POST", true), (300, "POST", "POST", true),
        (301, "PUT", "PUT", true), (302, "DELETE", "DELETE", false), (303, "PUT", "GET", false), (303, "HEAD", "HEAD", false),
        (303, "GET", "GET", false),
    ])
    func methodAndBody(_ status: Int, _ method: String, _ nextMethod: String, _ keepsBody: Bool) throws {
        let body: String? = method == "GET" || method == "HEAD" || method == "DELETE" ? nil : "{}"
        var chain = RedirectChain(startedAt: 0, started: .now)
        let followed = try #require(next(&chain, request("http://hooks.example/a", method: method, body: body), status, to: "/b"))
        #expect(followed.method == nextMethod)
        #expect(followed.body == (keepsBody ? body.map { Array($0.utf8) } : nil))
    }

    @Test("a header's value without the body replaces its value when a 303 drops the body, and only then")
    func valueWithoutBody() throws {
        var signed = request("http://hooks.example/a")
        signed.headers = [HTTPHeader(name: "webhook-signature", value: "v1,over-the-body", staysWithOrigin: false, valueWithoutBody: "v1,over-nothing"),
                          HTTPHeader(name: "X-Plain", value: "p")]
        for status in [301, 302, 307, 308] {
            var chain = RedirectChain(startedAt: 0, started: .now)
            let kept = try #require(next(&chain, signed, status, to: "/b"))
            #expect(kept.headers.map(\.value) == ["v1,over-the-body", "p"], "\(status)")
        }
        var chain = RedirectChain(startedAt: 0, started: .now)
        let fetched = try #require(next(&chain, signed, 303, to: "/b"))
        #expect(fetched.headers.map(\.value) == ["v1,over-nothing", "p"])
        #expect(fetched.headers.map(\.valueWithoutBody) == [nil, nil])
    }

    @Test("no redirect: not a 3xx, no or an empty Location, or a request that follows none")
    func notARedirect() {
        var chain = RedirectChain(startedAt: 0, started: .now)
        #expect(chain.next(after: request("http://hooks.example/a"), status: 200, location: "/b") == nil)
        #expect(chain.next(after: request("http://hooks.example/a"), status: 302, location: nil) == nil)
        #expect(chain.next(after: request("http://hooks.example/a"), status: 302, location: "") == nil)
        #expect(chain.next(after: request("http://hooks.example/a", maximumRedirects: 0), status: 302, location: "/b") == nil)
        #expect(chain.next(after: request("http://hooks.example/a", maximumRedirects: -1), status: 302, location: "/b") == nil)
        #expect(chain.followed == 0)
    }

    @Test("only http and https, never http after https, and at most the request's number of redirects")
    func refusals() throws {
        var chain = RedirectChain(startedAt: 0, started: .now)
        for location in ["ftp://hooks.example/x", "file:///etc/passwd", "gopher://hooks.example/"] {
            #expect(error(&chain, request("http://hooks.example/a"), to: location)
                    == HTTPError(code: .redirectRefused, message: "refused to follow a redirect to a URL that is not http or https"))
        }
        #expect(error(&chain, request("https://hooks.example/a"), to: "http://hooks.example/b")
                == HTTPError(code: .redirectRefused, message: "refused to follow a redirect from https to http"))
        #expect(error(&chain, request("http://hooks.example/a"), to: "http://[::1")?.code == .redirectRefused)

        var upgraded = RedirectChain(startedAt: 0, started: .now)
        let secure = try #require(next(&upgraded, request("http://hooks.example/a"), to: "https://hooks.example/b"))
        #expect(error(&upgraded, secure, to: "http://hooks.example/c")
                == HTTPError(code: .redirectRefused, message: "refused to follow a redirect from https to http"))

        var limited = RedirectChain(startedAt: 0, started: .now)
        var current = request("http://hooks.example/0", maximumRedirects: 2)
        current = try #require(next(&limited, current, to: "/1"))
        current = try #require(next(&limited, current, to: "/2"))
        #expect(error(&limited, current, to: "/3") == HTTPError(code: .tooManyRedirects, message: "Maximum (2) redirects followed"))
    }
}
