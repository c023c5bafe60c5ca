/// A JSON value that keeps every number exactly as written.
///
/// Foundation's JSON parsers turn numbers into `Double`, which changes a credit of
/// `12345678901234.56` or an id of `9007199254740993`. Here a number is its source text, so it
/// reaches the wire character for character.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number's exact text, e.g. `"12345678901234.56"`.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
    /// An object or array nested deeper than ``JSONParser/maximumDepth`` in a payload read with
    /// ``JSONParser/parsePayload(_:)``: its compact JSON text, rendered as it is. No variable
    /// reaches into it.
    case unparsed(String)
}

/// A JSON object whose members keep their order.
public struct JSONObject: Sendable, Hashable {
    /// One `"key": value` pair.
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue

        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// The members in their written order (duplicates kept, as parsed).
    public var members: [Member]

    public init(_ members: [Member] = []) {
        self.members = members
    }

    /// The value of `key`; with duplicate keys the last one wins, as in PostgreSQL's `jsonb`.
    ///
    /// Keys are compared byte for byte, as PostgreSQL compares them: Swift's `==` holds
    /// canonically equivalent strings equal, so a key `"\u{212A}YC"` (KELVIN SIGN) would be
    /// taken for `"KYC"`, and a payload carrying both would render the wrong one.
    public subscript(key: String) -> JSONValue? {
        var key = key
        return key.withUTF8 { wanted in
            for member in members.reversed() where JSONObject.hasBytes(member.key, wanted) { return member.value }
            return nil
        }
    }

    /// Whether `text`'s UTF-8 is `bytes`, byte for byte (compared in place, not through
    /// `String.UTF8View`, whose iteration costs several times as much).
    private static func hasBytes(_ text: String, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard text.utf8.count == bytes.count else { return false }
        var text = text
        return text.withUTF8 { $0.elementsEqual(bytes) }
    }
}

extension JSONValue {
    /// The value found by following `path` through nested objects, or `nil` when a step is
    /// missing or is not an object.
    public func value(at path: [String]) -> JSONValue? {
        var current = self
        for key in path {
            guard case .object(let object) = current, let next = object[key] else { return nil }
            current = next
        }
        return current
    }

    /// The text a template placeholder stands for: a string's content, a number's exact text,
    /// `true`/`false`, the JSON text of an object or array; `nil` for JSON `null`.
    public var templateText: String? {
        switch self {
        case .null: return nil
        case .bool(let value): return value ? "true" : "false"
        case .number(let text): return text
        case .string(let text): return text
        case .array, .object: return jsonText
        case .unparsed(let text): return text
        }
    }

    /// Compact JSON text of this value; numbers keep their exact text.
    public var jsonText: String {
        var output = ""
        write(to: &output)
        return output
    }

    func write(to output: inout String) {
        switch self {
        case .null: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .number(let text), .unparsed(let text): output += text
        case .string(let text): JSONValue.writeQuoted(text, to: &output)
        case .array(let elements):
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += "," }
                element.write(to: &output)
            }
            output += "]"
        case .object(let object):
            output += "{"
            for (index, member) in object.members.enumerated() {
                if index > 0 { output += "," }
                JSONValue.writeQuoted(member.key, to: &output)
                output += ":"
                member.value.write(to: &output)
            }
            output += "}"
        }
    }

    /// Appends `text` as a JSON string literal, quotes included.
    public static func writeQuoted(_ text: String, to output: inout String) {
        output += "\""
        writeEscaped(text, to: &output)
        output += "\""
    }

    /// Appends `text` escaped for use inside a JSON string literal (no quotes added): `"`, `\`
    /// and control characters are escaped; everything else, emoji included, is kept as UTF-8.
    public static func writeEscaped(_ text: String, to output: inout String) {
        // Looked for in the string's bytes in place (iterating `String.UTF8View` costs several
        // times as much): most values need no escape and are appended whole.
        var bytes = text
        let needsEscaping = bytes.withUTF8 { $0.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") } }
        guard needsEscaping else {
            output += text
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "\u{08}": output += "\\b"
            case "\u{0C}": output += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16, uppercase: false)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                output.unicodeScalars.append(scalar)
            }
        }
    }
}
