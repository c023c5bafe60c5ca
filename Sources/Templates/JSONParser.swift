/// Why a text is not valid JSON, and where.
public struct JSONSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong, e.g. `expected ',' or '}'`.
    public var reason: String
    /// Byte offset of the problem from the start of the text (0-based).
    public var offset: Int
    /// Line of the problem (1-based).
    public var line: Int
    /// Column of the problem in characters (1-based).
    public var column: Int

    public var description: String { "\(reason) at line \(line), column \(column)" }
}

/// A strict JSON (RFC 8259) parser that keeps numbers as their exact text.
public enum JSONParser {
    /// Nesting deeper than this is refused, so hostile input cannot exhaust the stack.
    public static let maximumDepth = 512

    /// Parses `text` as one JSON value surrounded by optional white space.
    ///
    /// - Throws: ``JSONSyntaxError``, also for nesting deeper than ``maximumDepth``.
    public static func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        try parse(text, keepingDeepValuesAsText: false)
    }

    /// Parses an event's payload (as `jsonb::text` prints it) like ``parse(_:)``, except that
    /// an object or array nested deeper than ``maximumDepth`` is not refused: it is read without
    /// recursion (its brackets, strings, numbers and literals checked) and kept as its compact
    /// JSON text, ``JSONValue/unparsed(_:)``, which renders exactly as the same value parsed
    /// would. `jsonb` takes thousands of levels, so a deep part of a payload must not keep the
    /// rest of it from being delivered; no variable reaches into the deep part.
    public static func parsePayload(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        try parse(text, keepingDeepValuesAsText: true)
    }

    private static func parse(_ text: String, keepingDeepValuesAsText: Bool) throws(JSONSyntaxError) -> JSONValue {
        var text = text
        let result: Result<JSONValue, JSONSyntaxError> = text.withUTF8 { bytes in
            var scanner = Scanner(bytes: bytes, keepsDeepValuesAsText: keepingDeepValuesAsText)
            do throws(JSONSyntaxError) {
                scanner.skipWhitespace()
                let value = try scanner.parseValue(depth: 0)
                scanner.skipWhitespace()
                if scanner.index < bytes.count { throw scanner.error("unexpected text after the JSON value") }
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

private struct Scanner {
    let bytes: UnsafeBufferPointer<UInt8>
    /// Whether an object or array deeper than the maximum depth becomes `.unparsed` text
    /// instead of an error.
    let keepsDeepValuesAsText: Bool
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>, keepsDeepValuesAsText: Bool) {
        self.bytes = bytes
        self.keepsDeepValuesAsText = keepsDeepValuesAsText
    }

    func error(_ reason: String, at offset: Int? = nil) -> JSONSyntaxError {
        let offset = min(offset ?? index, bytes.count)
        var line = 1
        var column = 1
        for byte in bytes[0..<offset] {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return JSONSyntaxError(reason: reason, offset: offset, line: line, column: column)
    }

    var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): index += 1
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8, _ reason: @autoclosure () -> String) throws(JSONSyntaxError) {
        guard current == byte else { throw error(reason()) }
        index += 1
    }

    mutating func parseValue(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard let byte = current else { throw error("unexpected end of text, expected a value") }
        if keepsDeepValuesAsText, depth >= JSONParser.maximumDepth, byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
            return .unparsed(try compactText())
        }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try parseLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try parseLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try parseLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character, expected a value (object, array, string, number, true, false or null)")
        }
    }

    /// Reads the object or array at `index` without recursion and returns it as compact JSON
    /// text, as ``JSONValue/write(to:)`` writes it: no white space outside strings, strings
    /// escaped anew. Brackets must match, and strings, numbers and literals be well formed;
    /// where the commas and colons stand is not checked (the text comes from `jsonb`).
    mutating func compactText() throws(JSONSyntaxError) -> String {
        var closers: [UInt8] = []
        var text = ""
        repeat {
            guard let byte = current else { throw error("unexpected end of text, expected '\(Character(Unicode.Scalar(closers.last ?? 0)))'") }
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                closers.append(byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]"))
                text.unicodeScalars.append(Unicode.Scalar(byte))
                index += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard byte == closers.last else { throw error("unexpected '\(Character(Unicode.Scalar(byte)))'") }
                closers.removeLast()
                text.unicodeScalars.append(Unicode.Scalar(byte))
                index += 1
            case UInt8(ascii: ","), UInt8(ascii: ":"):
                text.unicodeScalars.append(Unicode.Scalar(byte))
                index += 1
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                index += 1
            case UInt8(ascii: "\""):
                JSONValue.writeQuoted(try parseString(), to: &text)
            default:
                // A number or a literal (anything else is refused here).
                try parseValue(depth: 0).write(to: &text)
            }
        } while !closers.isEmpty
        return text
    }

    mutating func parseLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        let start = index
        for expected in UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount) {
            guard current == expected else { throw error("invalid literal, expected \(literal)", at: start) }
            index += 1
        }
    }

    mutating func parseObject(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth <= JSONParser.maximumDepth else { throw error("nesting deeper than \(JSONParser.maximumDepth) levels") }
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            return .object(JSONObject())
        }
        // Room for the members of most objects at once; appending to an empty array would
        // allocate again at 1, 2, 4 and 8 members.
        var members: [JSONObject.Member] = []
        members.reserveCapacity(8)
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string key in double quotes") }
            let key = try parseString()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "expected ':' after an object key")
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append(JSONObject.Member(key: key, value: value))
            skipWhitespace()
            guard let next = current else { throw error("unexpected end of text, expected ',' or '}'") }
            index += 1
            if next == UInt8(ascii: "}") { return .object(JSONObject(members)) }
            guard next == UInt8(ascii: ",") else { throw error("expected ',' or '}'", at: index - 1) }
        }
    }

    mutating func parseArray(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth <= JSONParser.maximumDepth else { throw error("nesting deeper than \(JSONParser.maximumDepth) levels") }
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            index += 1
            return .array([])
        }
        var elements: [JSONValue] = []
        elements.reserveCapacity(4)
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard let next = current else { throw error("unexpected end of text, expected ',' or ']'") }
            index += 1
            if next == UInt8(ascii: "]") { return .array(elements) }
            guard next == UInt8(ascii: ",") else { throw error("expected ',' or ']'", at: index - 1) }
        }
    }

    mutating func parseNumber() throws(JSONSyntaxError) -> String {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, isDigit(first) else { throw error("invalid number: expected a digit") }
        index += 1
        if first != UInt8(ascii: "0") {
            while let byte = current, isDigit(byte) { index += 1 }
        }
        if current == UInt8(ascii: ".") {
            index += 1
            guard let byte = current, isDigit(byte) else { throw error("invalid number: expected a digit after '.'") }
            while let byte = current, isDigit(byte) { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let byte = current, isDigit(byte) else { throw error("invalid number: expected a digit in the exponent") }
            while let byte = current, isDigit(byte) { index += 1 }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    mutating func parseString() throws(JSONSyntaxError) -> String {
        let start = index
        index += 1
        // Fast path: no escapes.
        var scan = index
        while scan < bytes.count {
            let byte = bytes[scan]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<scan]), as: UTF8.self)
                index = scan + 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character inside a string (write it as an escape such as \\n)", at: scan) }
            scan += 1
        }
        guard scan < bytes.count else { throw error("unterminated string", at: start) }
        var utf8 = Array(UnsafeBufferPointer(rebasing: bytes[index..<scan]))
        index = scan
        while true {
            guard let byte = current else { throw error("unterminated string", at: start) }
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let escape = current else { throw error("unterminated string", at: start) }
                index += 1
                switch escape {
                case UInt8(ascii: "\""): utf8.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): utf8.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "/"): utf8.append(UInt8(ascii: "/"))
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"): appendScalar(try parseUnicodeEscape(), to: &utf8)
                default: throw error("invalid escape sequence in a string", at: index - 2)
                }
            default:
                if byte < 0x20 { throw error("control character inside a string (write it as an escape such as \\n)", at: index - 1) }
                utf8.append(byte)
            }
        }
    }

    /// Reads the four hex digits after `\u` (and a following low surrogate escape if needed).
    mutating func parseUnicodeEscape() throws(JSONSyntaxError) -> Unicode.Scalar {
        let high = try parseHex4()
        if (0xD800...0xDBFF).contains(high) {
            if index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                let save = index
                index += 2
                let low = try parseHex4()
                if (0xDC00...0xDFFF).contains(low) {
                    let value = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    return Unicode.Scalar(value) ?? "\u{FFFD}"
                }
                index = save
            }
            return "\u{FFFD}"
        }
        return Unicode.Scalar(high) ?? "\u{FFFD}"
    }

    mutating func parseHex4() throws(JSONSyntaxError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = current else { throw error("unterminated \\u escape") }
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape: expected four hex digits")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    func appendScalar(_ scalar: Unicode.Scalar, to utf8: inout [UInt8]) {
        UTF8.encode(scalar) { utf8.append($0) }
    }
}
