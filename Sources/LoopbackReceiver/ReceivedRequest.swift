/// One HTTP request as a ``LoopbackReceiver`` got it, byte for byte.
public struct ReceivedRequest: Sendable, Hashable {
    /// `GET`, `POST`...
    public var method: String
    /// The request target as sent: path and query, e.g. `/hook?id=7&email=a%40b.cz`.
    public var target: String
    /// Header lines in the order received, names as sent.
    public var headers: [Header]
    /// The body's exact bytes.
    public var body: [UInt8]
    /// When the request was complete, in seconds since 1970 (wall clock).
    public var receivedAt: Double

    /// One header line.
    public struct Header: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(method: String, target: String, headers: [Header], body: [UInt8], receivedAt: Double) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.receivedAt = receivedAt
    }

    /// The value of the first header called `name` (compared without regard to case).
    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name.lowercased() == lowered }?.value
    }

    /// The body as UTF-8 text.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// What a ``LoopbackReceiver`` does with a request.
public enum Reply: Sendable, Hashable {
    /// Answers with `status`, extra `headers` and `body`, after waiting `delay`.
    case respond(status: Int, headers: [ReceivedRequest.Header] = [], body: String = "", delay: Duration = .zero)
    /// Never answers; the connection stays open until the client gives up or the receiver stops.
    case hang
    /// Resets the connection (TCP RST) without answering.
    case reset
    /// Writes these bytes as they are (no status line or headers added) and closes the
    /// connection: an answer that is not HTTP, for tests of what a client makes of one.
    case raw(String)

    /// `200 OK` with body `ok`.
    public static let ok = Reply.respond(status: 200, body: "ok")

    /// A reply with status `status` and no delay.
    public static func status(_ status: Int, body: String = "") -> Reply {
        .respond(status: status, body: body)
    }
}
