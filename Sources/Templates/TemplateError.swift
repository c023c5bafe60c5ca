/// Why a template cannot be used or rendered. The message names the part (URL, body, header)
/// and says what is wrong; it never contains a rendered value, which may hold a secret.
public struct TemplateError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem; new codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The URL template is not an absolute `http://` or `https://` URL.
        public static let invalidURL = Code(rawValue: "invalid_url")
        /// The body template is not JSON once each placeholder is counted as a value.
        public static let invalidBody = Code(rawValue: "invalid_body")
        /// A header name is not an HTTP token, or is one Webhooky sets itself.
        public static let invalidHeaderName = Code(rawValue: "invalid_header_name")
        /// A header value holds CR, LF or another control character (before or after rendering).
        public static let invalidHeaderValue = Code(rawValue: "invalid_header_value")
        /// The rendered request is larger than its limits allow.
        public static let requestTooLarge = Code(rawValue: "request_too_large")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
