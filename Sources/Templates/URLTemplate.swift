/// A webhook's URL template, parsed once.
///
/// Variables may stand anywhere (path, query, even the host). Each value is percent-encoded:
/// every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`, so
/// `jan+vip@example.cz` renders as `jan%2Bvip%40example.cz` and a value can never add a query
/// parameter or a path segment; a value of `.` or `..` renders as `%2E` or `%2E%2E`, so it
/// cannot remove one either. A missing or `null` value renders as the empty string.
public struct URLTemplate: Sendable, Hashable {
    /// The template as the admin wrote it.
    public let source: String
    let pieces: [TemplatePiece]
    /// Whether no variable stands in the host (``fixedOrigin`` is not `nil`): then the parse
    /// checked the host once, and a rendered URL cannot lose it.
    private let hostIsFixed: Bool

    /// The URL up to the end of its host and port when no variable stands in them (the usual
    /// case), e.g. `https://erp.example.com:8443`; `nil` when a variable is part of the host.
    public var fixedOrigin: String? { URLTemplate.fixedOrigin(of: pieces) }

    /// ``fixedOrigin`` of a template made of `pieces`.
    private static func fixedOrigin(of pieces: [TemplatePiece]) -> String? {
        guard case .text(let head) = pieces.first else { return nil }
        guard let schemeEnd = head.firstRange(of: "://") else { return nil }
        let rest = head[schemeEnd.upperBound...]
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            return String(head[..<end])
        }
        return pieces.count == 1 ? head : nil
    }

    /// The variables the template uses, in order of appearance.
    public var variables: [Variable] {
        pieces.compactMap { if case .variable(let variable) = $0 { variable } else { nil } }
    }

    /// Parses and checks a URL template.
    ///
    /// - Throws: ``TemplateError/Code/invalidURL`` unless the template starts with `http://` or
    ///   `https://` followed by a host (after any `user@`, before any `:port`), and its literal text is printable ASCII without spaces
    ///   or the characters `" < > \ ^ ` { | }` (percent-encode them instead), and a port, if written
    ///   out, from 1 to 65535.
    public init(_ source: String) throws(TemplateError) {
        let lowered = source.prefix(8).lowercased()
        let schemeLength: Int
        if lowered.hasPrefix("https://") {
            schemeLength = 8
        } else if lowered.hasPrefix("http://") {
            schemeLength = 7
        } else {
            throw TemplateError(.invalidURL, "URL must start with http:// or https:// (got \(URLTemplate.describeStart(of: source)))")
        }
        let pieces = TemplatePiece.split(source)
        // The first piece is text beginning with the scheme; a host must follow it, written out
        // or as a variable.
        if case .text(let head) = pieces.first {
            if let hostStart = head.dropFirst(schemeLength).first {
                guard !"/?#".contains(hostStart) else {
                    throw TemplateError(.invalidURL, "URL has no host after \(head.prefix(schemeLength))")
                }
            } else if pieces.count < 2 {
                throw TemplateError(.invalidURL, "URL has no host after \(head.prefix(schemeLength))")
            }
        }
        for case .text(let text) in pieces {
            if let byte = text.utf8.first(where: { !URLTemplate.isAllowedLiteral($0) }) {
                throw TemplateError(.invalidURL, "URL contains \(URLTemplate.describe(byte)); percent-encode it (a space as %20)")
            }
        }
        let origin = URLTemplate.fixedOrigin(of: pieces)
        self.source = source
        self.pieces = pieces
        self.hostIsFixed = origin != nil
        // A user name or a port with nothing between them and the path: `https://user@/x`.
        if let origin, URLTemplate.hasEmptyHost(origin) {
            throw TemplateError(.invalidURL, "URL has no host after \(source.prefix(schemeLength))")
        }
        if let origin, let port = URLTemplate.port(ofOrigin: origin), !port.isEmpty,
           !(port.count <= 5 && port.allSatisfy(\.isASCII) && port.allSatisfy(\.isNumber) && (1...65_535).contains(Int(port) ?? 0)) {
            // Not quoted: when a user name or password holds a / ? or # (not percent-encoded), the
            // "port" is the part of the password before it.
            throw TemplateError(.invalidURL, "URL has a port that is not a number from 1 to 65535 (a user name or password in a URL writes / ? # @ as %2F %3F %23 %40)")
        }
    }

    /// The port written in `origin` (`scheme://[userinfo@]host[:port]`), `nil` when none is.
    static func port(ofOrigin origin: String) -> Substring? {
        guard let schemeEnd = origin.firstRange(of: "://") else { return nil }
        var authority = origin[schemeEnd.upperBound...]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        // An IPv6 address in brackets has colons of its own.
        if let bracket = authority.lastIndex(of: "]") { authority = authority[authority.index(after: bracket)...] }
        guard let colon = authority.lastIndex(of: ":") else { return nil }
        return authority[authority.index(after: colon)...]
    }

    /// Renders the URL for `payload`.
    ///
    /// - Throws: ``TemplateError/Code/invalidURL`` when the rendered URL has an empty host
    ///   (a host made of a variable the event does not carry).
    public func render(_ payload: JSONValue) throws(TemplateError) -> String {
        var output = ""
        output.reserveCapacity(source.utf8.count + 32)
        for piece in pieces {
            switch piece {
            case .text(let text): output += text
            case .variable(let variable):
                if let text = variable.value(in: payload)?.templateText {
                    // "." and ".." would be dot segments, which servers resolve away.
                    if text == "." || text == ".." {
                        output += String(repeating: "%2E", count: text.count)
                    } else {
                        URLTemplate.percentEncode(text, to: &output)
                    }
                }
            }
        }
        if !hostIsFixed, URLTemplate.hasEmptyHost(output) {
            throw TemplateError(.invalidURL, "rendered URL has an empty host (a host variable the event does not carry?)")
        }
        return output
    }

    /// Whether the host of `url` (`scheme://[userinfo@]host[:port]...`) is empty, as in
    /// `https:///x`, `https://user@/x` or `https://:8080/x`. A value can add no `@`, `:` or `/`
    /// (they are percent-encoded), so only the template's own text can leave one there.
    static func hasEmptyHost(_ url: String) -> Bool {
        var authority = url.drop(while: { $0 != ":" }).dropFirst(3).prefix(while: { !"/?#".contains($0) })
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if authority.first == "[" { return authority.dropFirst().first == "]" }
        return authority.prefix(while: { $0 != ":" }).isEmpty
    }

    /// Appends `text` percent-encoded: every UTF-8 byte but `A-Z a-z 0-9 - . _ ~` as `%XX`.
    public static func percentEncode(_ text: String, to output: inout String) {
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) {
                bytes.append(byte)
            } else {
                bytes.append(UInt8(ascii: "%"))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            }
        }
        output += String(decoding: bytes, as: UTF8.self)
    }

    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Printable ASCII except space and `" < > \ ^ ` { | }`.
    static func isAllowedLiteral(_ byte: UInt8) -> Bool {
        guard byte > 0x20, byte < 0x7F else { return false }
        return !"\"<>\\^`{|}".utf8.contains(byte)
    }

    private static func describe(_ byte: UInt8) -> String {
        if byte == UInt8(ascii: " ") { return "a space" }
        if byte < 0x20 || byte == 0x7F { return "a control character" }
        if byte >= 0x80 { return "a non-ASCII character" }
        return "'\(Character(Unicode.Scalar(byte)))'"
    }

    private static func describeStart(of source: String) -> String {
        if source.isEmpty { return "an empty URL" }
        let scheme = source.prefix(while: { $0 != ":" })
        if scheme.count < source.count, scheme.count <= 10 { return "scheme \"\(scheme)\"" }
        return "no scheme"
    }
}
