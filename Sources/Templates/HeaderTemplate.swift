/// One custom header of a webhook: a fixed name and a value template.
///
/// The value's text is used as is (no encoding), but a rendered value holding CR, LF or another
/// control character (tab excepted) makes the delivery fail: a value can never inject a header.
public struct HeaderTemplate: Sendable, Hashable {
    /// Header names Webhooky sets itself or that belong to the HTTP connection; a webhook cannot
    /// set them. `Content-Type` is allowed and replaces the default `application/json`.
    public static let reservedNames: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
        "trailer", "expect", "webhook-id", "webhook-timestamp", "webhook-signature",
    ]

    /// The header name as written.
    public let name: String
    /// The value template as written.
    public let source: String
    let pieces: [TemplatePiece]

    /// Parses and checks one header.
    ///
    /// - Throws: ``TemplateError/Code/invalidHeaderName`` when the name is not an HTTP token
    ///   or is reserved; ``TemplateError/Code/invalidHeaderValue`` when the value template holds
    ///   a control character.
    public init(name: String, value: String) throws(TemplateError) {
        guard !name.isEmpty, name.utf8.allSatisfy(HeaderTemplate.isTokenByte) else {
            throw TemplateError(.invalidHeaderName, "header name \"\(name)\" is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)")
        }
        guard !HeaderTemplate.reservedNames.contains(name.lowercased()) else {
            throw TemplateError(.invalidHeaderName, "header \"\(name)\" is set by Webhooky or by HTTP itself and cannot be configured")
        }
        guard !value.utf8.contains(where: HeaderTemplate.isForbiddenValueByte) else {
            throw TemplateError(.invalidHeaderValue, "header \"\(name)\": the value contains a line break or control character")
        }
        self.name = name
        self.source = value
        self.pieces = TemplatePiece.split(value)
    }

    /// The variables the value uses, in order of appearance.
    public var variables: [Variable] {
        pieces.compactMap { if case .variable(let variable) = $0 { variable } else { nil } }
    }

    /// The names written after a `#` in the value's text with no closing `#`, in order:
    /// `account.apiKey` in `Bearer #account.apiKey`, which is sent as written (see
    /// ``BodyTemplate/unclosedNames``).
    public var unclosedNames: [String] {
        pieces.flatMap { piece -> [String] in
            if case .text(let text) = piece { TemplatePiece.unclosedNames(in: text) } else { [] }
        }
    }

    /// Renders the value for `payload`.
    ///
    /// - Throws: ``TemplateError/Code/invalidHeaderValue`` when a substituted value holds CR, LF
    ///   or another control character. The message names the header and the variable, never
    ///   the value.
    public func render(_ payload: JSONValue) throws(TemplateError) -> String {
        var output = ""
        for piece in pieces {
            switch piece {
            case .text(let text): output += text
            case .variable(let variable):
                guard let text = variable.value(in: payload)?.templateText else { continue }
                if text.utf8.contains(where: HeaderTemplate.isForbiddenValueByte) {
                    throw TemplateError(
                        .invalidHeaderValue,
                        "header \"\(name)\": the value of \(variable) contains a line break or control character; refused to prevent header injection"
                    )
                }
                output += text
            }
        }
        return output
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    static func isForbiddenValueByte(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != UInt8(ascii: "\t")) || byte == 0x7F
    }
}
