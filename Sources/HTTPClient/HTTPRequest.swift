/// One HTTP request for the client to send.
public struct HTTPRequest: Sendable {
    /// The caller's tag for this request, returned with its ``HTTPResult`` (e.g. a delivery id).
    public var tag: Int64
    /// `GET` or `POST` (any method name is passed through).
    public var method: String
    /// An absolute `http://` or `https://` URL.
    public var url: String
    /// Headers in the order they are sent.
    public var headers: [HTTPHeader]
    /// The request body; `nil` sends none.
    public var body: [UInt8]?
    /// Redirects to follow. Default 0: none; a 3xx response is the result, with its
    /// ``HTTPResponse/location``. Negative values count as 0.
    ///
    /// Above 0, a 3xx response with a `Location` leads to the next hop, which the client sends
    /// itself, as browsers and curl would:
    /// - Each hop must be `http` or `https`, and after an `https` hop only `https`
    ///   (``HTTPError/Code/invalidURL`` otherwise); each is checked by the client's
    ///   ``HTTPClient/Configuration/addressPolicy``. One more than this many redirects fails with
    ///   ``HTTPError/Code/tooManyRedirects``.
    /// - 303 turns every method but `GET` and `HEAD` into a `GET` without body; 301, 302, 307,
    ///   308 and the other 3xx keep the method and body (libcurl's `CURLOPT_POSTREDIR` for 301
    ///   and 302: a webhook's POST keeps its message).
    /// - Once a hop goes to another origin than ``url``'s (scheme, host or port differ), the
    ///   headers that ``HTTPHeader/staysWithOrigin`` are left out, for the rest of the hops.
    /// - The hops share one ``HTTPClient/Configuration/requestTimeout`` and count as this one
    ///   request of its ``endpoint``; the ``HTTPResult`` is the last hop's, and its
    ///   ``HTTPResult/startedAt`` and ``HTTPResult/duration`` cover them all.
    public var maximumRedirects: Int
    /// The endpoint this request counts against, e.g. its origin `http://host:port`: at most
    /// ``HTTPClient/Configuration/maximumRequestsPerEndpoint`` requests with the same endpoint
    /// run at once, and more wait their turn in the order they were sent (the time they wait is
    /// not part of their timeout or ``HTTPResult/duration``). Default `nil`: only the client's
    /// overall limit applies.
    public var endpoint: String?

    /// A request; `headers` default to none, `body` to none, `maximumRedirects` to 0, `endpoint`
    /// to none.
    public init(tag: Int64, method: String, url: String, headers: [HTTPHeader] = [], body: [UInt8]? = nil, maximumRedirects: Int = 0,
                endpoint: String? = nil) {
        self.tag = tag
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.maximumRedirects = maximumRedirects
        self.endpoint = endpoint
    }
}

/// One header line.
public struct HTTPHeader: Sendable, Hashable {
    /// The header's name as sent, e.g. `Authorization`.
    public var name: String
    /// The value; an empty value is sent empty, not dropped.
    public var value: String
    /// Whether the header goes only to the origin (scheme, host and port) of the request's
    /// ``HTTPRequest/url``: once a redirect leads to another origin, it is left out of that hop
    /// and every later one, even a hop back to the first origin. Default `true`, the safe
    /// choice for API keys and tokens; `false` for a header that holds no secret and that
    /// every hop needs, such as a signature or `Content-Type`. `Authorization` and `Cookie`
    /// stay with the origin whatever this says.
    public var staysWithOrigin: Bool
    /// The value to send instead once a 303 has turned the request into a `GET` without its
    /// body: a signature over the body would not verify without it. `nil` (the default): the
    /// same value.
    public var valueWithoutBody: String?

    /// A header line `name: value`, which by default (`staysWithOrigin` `true`) is not sent
    /// to another origin that a redirect leads to.
    public init(name: String, value: String, staysWithOrigin: Bool = true, valueWithoutBody: String? = nil) {
        self.name = name
        self.value = value
        self.staysWithOrigin = staysWithOrigin
        self.valueWithoutBody = valueWithoutBody
    }
}

/// What happened to one request.
public struct HTTPResult: Sendable {
    /// The tag of the ``HTTPRequest``.
    public var tag: Int64
    /// The response (any status code), or why there was none.
    public var outcome: Result<HTTPResponse, HTTPError>
    /// Wall-clock time when the request was started, in seconds since 1970 (its first hop,
    /// when it followed redirects).
    public var startedAt: Double
    /// Time from start to the end of the transfer (of the last hop, when it followed redirects).
    public var duration: Duration

    /// A result with every field given.
    public init(tag: Int64, outcome: Result<HTTPResponse, HTTPError>, startedAt: Double, duration: Duration) {
        self.tag = tag
        self.outcome = outcome
        self.startedAt = startedAt
        self.duration = duration
    }
}

/// A response: its status, the headers Webhooky acts on, and the start of its body.
public struct HTTPResponse: Sendable, Hashable {
    /// The HTTP status code, e.g. 200.
    public var status: Int
    /// The `Retry-After` header's value, if sent.
    public var retryAfter: String?
    /// The `Location` header's value, if sent (for redirects that were not followed).
    public var location: String?
    /// The body, at most ``HTTPClient/Configuration/maximumResponseBodyBytes`` bytes.
    public var body: [UInt8]
    /// True when the body was longer than the cap and the rest was not read.
    public var bodyTruncated: Bool

    /// A response; every field but `status` defaults to absent or empty.
    public init(status: Int, retryAfter: String? = nil, location: String? = nil, body: [UInt8] = [], bodyTruncated: Bool = false) {
        self.status = status
        self.retryAfter = retryAfter
        self.location = location
        self.body = body
        self.bodyTruncated = bodyTruncated
    }
}

/// Why a request got no response.
public struct HTTPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure; new codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable {
        /// The code as recorded, e.g. `address_not_allowed`.
        public var rawValue: String
        /// The code spelled `rawValue`.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Connect or total timeout reached.
        public static let timeout = Code(rawValue: "timeout")
        /// The host name could not be resolved.
        public static let dnsFailure = Code(rawValue: "dns_failure")
        /// The TCP connection could not be made (refused, unreachable).
        public static let connectFailure = Code(rawValue: "connect_failure")
        /// TLS handshake or certificate verification failed.
        public static let tlsFailure = Code(rawValue: "tls_failure")
        /// The connection broke while sending or receiving (reset, closed, empty reply).
        public static let connectionBroken = Code(rawValue: "connection_broken")
        /// The URL is malformed or its scheme is not http/https; retrying cannot help.
        public static let invalidURL = Code(rawValue: "invalid_url")
        /// The server answered with a redirect that is not followed: its `Location` cannot be
        /// parsed, or leads to a scheme other than http and https, or from https to http. The
        /// server may be set right, as after any other failed answer.
        public static let redirectRefused = Code(rawValue: "redirect_refused")
        /// More redirects than the request's ``HTTPRequest/maximumRedirects``.
        public static let tooManyRedirects = Code(rawValue: "too_many_redirects")
        /// The address the host name resolved to (or a redirect led to) is private or internal
        /// and the client's ``HTTPClient/Configuration/addressPolicy`` refuses it. The message
        /// names the address and its kind, never the URL's path or query.
        public static let addressNotAllowed = Code(rawValue: "address_not_allowed")
        /// The request was not sent: the client is shutting down, or a request ahead of it in
        /// its endpoint's line got no answer (see ``HTTPClient/Configuration/maximumRequestsPerEndpoint``).
        public static let cancelled = Code(rawValue: "cancelled")
        /// The client was shut down while the request was in flight: it may have reached the
        /// server; no answer was read.
        public static let interrupted = Code(rawValue: "interrupted")
        /// Any other libcurl failure.
        public static let other = Code(rawValue: "other")

        /// The failures that say the server did not answer: a timeout, a failed DNS lookup,
        /// connection or TLS handshake, a broken connection, any other libcurl failure. Not
        /// those of a redirect it answered with, of the address policy, or of a request the
        /// client cancelled or cut short.
        public static let noAnswer: Set<Code> = [.timeout, .dnsFailure, .connectFailure, .tlsFailure, .connectionBroken, .other]
    }

    /// The kind of failure.
    public var code: Code
    /// A human-readable reason, e.g. `Failed to connect to 127.0.0.1 port 9: Connection refused`.
    public var message: String

    /// An error of kind `code`, explained by `message`.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The ``message``.
    public var description: String { message }
}
