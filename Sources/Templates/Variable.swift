/// A `#name#` placeholder: a dotted path into the event's JSON payload.
///
/// `#customer.group.name#` is the value at `payload.customer.group.name`. A name segment starts
/// with an ASCII letter or `_` and holds ASCII letters, digits and `_`; any other `#` in a
/// template is literal text (`#top`, `#fff`, `issue #12`).
public struct Variable: Sendable, Hashable, CustomStringConvertible {
    /// The dotted name, e.g. `customer.group.name`.
    public let name: String
    /// The name split at the dots, e.g. `["customer", "group", "name"]`.
    public let path: [String]

    /// Creates a variable from its dotted name, or returns `nil` when the name breaks the rules.
    public init?(name: String) {
        let segments = name.split(separator: ".", omittingEmptySubsequences: false)
        guard !segments.isEmpty, segments.allSatisfy({ Variable.isSegment($0.utf8) }) else { return nil }
        self.name = name
        self.path = segments.map(String.init)
    }

    /// The placeholder as written in a template, e.g. `#customer.id#`.
    public var description: String { "#\(name)#" }

    /// The payload value this variable stands for; `nil` when it is missing or JSON `null`.
    public func value(in payload: JSONValue) -> JSONValue? {
        guard let value = payload.value(at: path), value != .null else { return nil }
        return value
    }

    static func isSegment(_ bytes: some Collection<UInt8>) -> Bool {
        guard let first = bytes.first, isSegmentStart(first) else { return false }
        return bytes.dropFirst().allSatisfy(isSegmentContinuation)
    }

    static func isSegmentStart(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || byte == UInt8(ascii: "_")
    }

    static func isSegmentContinuation(_ byte: UInt8) -> Bool {
        isSegmentStart(byte) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}

/// A template split into literal text and placeholders.
enum TemplatePiece: Sendable, Hashable {
    case text(String)
    case variable(Variable)
}

extension TemplatePiece {
    /// Splits `template` into pieces, scanning left to right: at each `#` a placeholder is taken
    /// when a valid dotted name and a closing `#` follow; otherwise the `#` is literal text and
    /// the scan goes on from the next character. (`#a##b#` is two placeholders; `##a#` is a
    /// literal `#` then `#a#`.) This matches the regular expression the SQL validation uses,
    /// `#[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*#`, applied leftmost-first.
    static func split(_ template: String) -> [TemplatePiece] {
        let bytes = Array(template.utf8)
        var pieces: [TemplatePiece] = []
        var textStart = 0
        var index = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "#"), let end = placeholderEnd(in: bytes, from: index) else {
                index += 1
                continue
            }
            if textStart < index {
                pieces.append(.text(String(decoding: bytes[textStart..<index], as: UTF8.self)))
            }
            let name = String(decoding: bytes[(index + 1)..<end], as: UTF8.self)
            // The scan above guarantees a valid name.
            if let variable = Variable(name: name) { pieces.append(.variable(variable)) }
            index = end + 1
            textStart = index
        }
        if textStart < bytes.count {
            pieces.append(.text(String(decoding: bytes[textStart...], as: UTF8.self)))
        }
        return pieces
    }

    /// The dotted names that follow a `#` in `text`, a template's literal text, each the longest
    /// there (`customer.id` in `id #customer.id"`), in order. By the rules such a `#` is text:
    /// no closing `#` makes it a placeholder (`TemplatePiece.split` took those), so a name that
    /// reads as a variable may be one whose closing `#` was forgotten.
    static func unclosedNames(in text: String) -> [String] {
        let bytes = Array(text.utf8)
        var names: [String] = []
        var index = 0
        while index < bytes.count {
            defer { index += 1 }
            guard bytes[index] == UInt8(ascii: "#") else { continue }
            var end = index + 1
            while end < bytes.count, Variable.isSegmentStart(bytes[end]) {
                end += 1
                while end < bytes.count, Variable.isSegmentContinuation(bytes[end]) { end += 1 }
                guard end + 1 < bytes.count, bytes[end] == UInt8(ascii: "."), Variable.isSegmentStart(bytes[end + 1]) else { break }
                end += 1
            }
            guard end > index + 1 else { continue }
            names.append(String(decoding: bytes[(index + 1)..<end], as: UTF8.self))
            index = end - 1
        }
        return names
    }

    /// The index of the closing `#` of a placeholder opening at `start`, or `nil` if none.
    private static func placeholderEnd(in bytes: [UInt8], from start: Int) -> Int? {
        var index = start + 1
        while true {
            guard index < bytes.count, Variable.isSegmentStart(bytes[index]) else { return nil }
            index += 1
            while index < bytes.count, Variable.isSegmentContinuation(bytes[index]) { index += 1 }
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: "#") { return index }
            guard bytes[index] == UInt8(ascii: ".") else { return nil }
            index += 1
        }
    }
}

extension JSONValue {
    /// The names of the variables this payload has a value for, as `#name#` reaches them: the
    /// dotted path of every member of nested objects (`customer`, `customer.email`, ...), not
    /// into arrays; keys that no variable name can spell (a space, a dash) are left out.
    public var variableNames: [String] {
        var names: [String] = []
        func collect(_ value: JSONValue, under prefix: String) {
            guard case .object(let object) = value else { return }
            for member in object.members where Variable.isSegment(member.key.utf8) {
                let name = prefix.isEmpty ? member.key : prefix + "." + member.key
                if member.value != .null { names.append(name) }
                collect(member.value, under: name)
            }
        }
        collect(self, under: "")
        return names
    }
}
