/// Everything of a webhook that is rendered per event: URL, optional JSON body, custom headers.
///
/// Parse it once per webhook version and render it for each delivery.
public struct RequestTemplate: Sendable, Hashable {
    public let url: URLTemplate
    /// The body template; `nil` when the webhook has no body, which makes the request a `GET`.
    public let body: BodyTemplate?
    public let headers: [HeaderTemplate]

    /// Parses and checks a webhook's templates.
    ///
    /// - Parameters:
    ///   - url: The URL template (`http://` or `https://`).
    ///   - body: The body template; `nil`, empty or only white space means no body (`GET`).
    ///   - headers: Header names and value templates, in the order they are sent.
    /// - Throws: The first ``TemplateError`` found.
    public init(url: String, body: String?, headers: [(name: String, value: String)] = []) throws(TemplateError) {
        self.url = try URLTemplate(url)
        if let body, body.utf8.contains(where: { !RequestTemplate.isJSONWhitespace($0) }) {
            self.body = try BodyTemplate(body)
        } else {
            self.body = nil
        }
        var parsed: [HeaderTemplate] = []
        for header in headers { parsed.append(try HeaderTemplate(name: header.name, value: header.value)) }
        self.headers = parsed
    }

    /// The HTTP method: `POST` with a body, `GET` without.
    public var method: String { body == nil ? "GET" : "POST" }

    /// Every variable used anywhere in the request, without duplicates, in order of appearance.
    public var variables: [Variable] {
        var seen: Set<Variable> = []
        return (url.variables + (body?.variables ?? []) + headers.flatMap(\.variables)).filter { seen.insert($0).inserted }
    }

    /// Renders the request for one event's payload.
    ///
    /// - Throws: ``TemplateError`` when the rendered URL has no host or a header value would
    ///   hold a line break.
    public func render(_ payload: JSONValue) throws(TemplateError) -> RenderedRequest {
        var renderedHeaders: [RenderedRequest.Header] = []
        renderedHeaders.reserveCapacity(headers.count)
        for header in headers {
            renderedHeaders.append(RenderedRequest.Header(name: header.name, value: try header.render(payload)))
        }
        return RenderedRequest(
            method: method,
            url: try url.render(payload),
            headers: renderedHeaders,
            body: body?.render(payload)
        )
    }

    static func isJSONWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\t")
    }
}

/// A request rendered for one event: what goes on the wire, before Webhooky's own headers.
public struct RenderedRequest: Sendable, Hashable {
    /// One header line.
    public struct Header: Sendable, Hashable {
        public var name: String
        public var value: String
        /// Whether the header goes only to the origin (scheme, host, port) of the request's URL,
        /// and not to another origin that a followed redirect leads to. Default `true`: a
        /// webhook's custom headers often carry API keys. Webhooky's own headers, which hold no
        /// secret (`webhook-id`, `webhook-timestamp`, `webhook-signature`, `Content-Type`), are
        /// `false`.
        public var staysWithOrigin: Bool
        /// The value to send instead when a followed 303 turns the request into a `GET`
        /// without its body (the signature over an empty body); `nil`: the same value.
        public var valueWithoutBody: String?

        /// A header line, which by default (`staysWithOrigin` `true`) goes to the URL's origin only.
        public init(name: String, value: String, staysWithOrigin: Bool = true, valueWithoutBody: String? = nil) {
            self.name = name
            self.value = value
            self.staysWithOrigin = staysWithOrigin
            self.valueWithoutBody = valueWithoutBody
        }
    }

    /// `GET` or `POST`.
    public var method: String
    public var url: String
    /// The webhook's custom headers, rendered.
    public var headers: [Header]
    /// The JSON body; `nil` for `GET`.
    public var body: String?

    public init(method: String, url: String, headers: [Header], body: String?) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}
