/// A call of `webhooky.emit` or `webhooky.has_webhooks` in a function's source, as far as
/// `webhooky doctor` needs it: the event when it is written as a literal, and whether the call
/// passes an account.
///
/// Found by a small scanner, not a parser: it skips comments (`--`, `/* */`, nested too), string
/// literals (`'...'`, `E'...'`, dollar-quoted) and quoted names, and splits a call's arguments at
/// the commas outside parentheses and brackets. The names are matched in any case, or quoted in
/// lower case (`"webhooky".emit`). Not read: calls in other functions that the trigger function
/// calls, and an event that is not a literal (`TG_ARGV[0]`, a variable, `CAST('...' AS text)`).
struct EmitCall: Sendable, Hashable {
    /// Which of Webhooky's functions is called.
    enum Function: String, Sendable, Hashable {
        case emit
        case hasWebhooks = "has_webhooks"

        /// The position of the `account_id` argument, from 0.
        var accountPosition: Int { self == .emit ? 2 : 1 }
    }

    /// Which function is called.
    var function: Function
    /// The event, when the first argument is a string literal (`'customer.credit_changed'`,
    /// also with a cast to text or named `event => '...'`); `nil` for any other expression.
    var event: String?
    /// Whether an account is passed: `emit`'s third argument, `has_webhooks`' second, or
    /// `account_id => ...`. Left out, or a literal `NULL`, passes none.
    var passesAccount: Bool

    /// Every call in `source`, in order.
    static func calls(in source: String) -> [EmitCall] {
        var scanner = SQLScanner(source)
        var calls: [EmitCall] = []
        while !scanner.atEnd {
            // Before skipping quoted names: "webhooky".emit is one.
            if let function = scanner.webhookyFunction() {
                if let arguments = scanner.arguments() { calls.append(EmitCall(function: function, arguments: arguments)) }
                continue
            }
            if !scanner.skipNonCode() { scanner.advance() }
        }
        return calls
    }

    /// The call of `function` with these arguments, as written.
    init(function: Function, arguments: [String]) {
        var positional: [String] = []
        var named: [String: String] = [:]
        for argument in arguments {
            if let (name, value) = Self.namedArgument(argument) { named[name] = value } else { positional.append(argument) }
        }
        let event = named["event"] ?? positional.first
        let account = named["account_id"] ?? (positional.count > function.accountPosition ? positional[function.accountPosition] : nil)
        self.function = function
        self.event = event.flatMap(Self.stringLiteral)
        self.passesAccount = account.map { !Self.isNull($0) } ?? false
    }

    /// A call, as the tests write it.
    init(function: Function, event: String?, passesAccount: Bool) {
        self.function = function
        self.event = event
        self.passesAccount = passesAccount
    }

    /// `name => value` or `name := value`: the name lowercased (as written when quoted), the value.
    private static func namedArgument(_ argument: String) -> (String, String)? {
        let bytes = Array(argument.utf8)
        var end = 0
        let quoted = bytes.first == UInt8(ascii: "\"")
        if quoted {
            end = 1
            while end < bytes.count, bytes[end] != UInt8(ascii: "\"") { end += 1 }
            guard end < bytes.count else { return nil }
            end += 1
        } else {
            while end < bytes.count, SQLScanner.isIdentifier(bytes[end]) { end += 1 }
        }
        guard end > 0 else { return nil }
        var rest = end
        while rest < bytes.count, SQLScanner.isSpace(bytes[rest]) { rest += 1 }
        guard rest + 1 < bytes.count, bytes[rest] == UInt8(ascii: "=") || bytes[rest] == UInt8(ascii: ":"),
              bytes[rest + 1] == UInt8(ascii: bytes[rest] == UInt8(ascii: "=") ? ">" : "=") else { return nil }
        let name = quoted ? String(decoding: bytes[1..<(end - 1)], as: UTF8.self) : String(decoding: bytes[..<end], as: UTF8.self).lowercased()
        let value = String(decoding: bytes[(rest + 2)...], as: UTF8.self)
        return (name, SQLScanner.trimmed(value))
    }

    /// An argument without what does not change its value here: spaces, parentheses around it,
    /// a cast at its end (`::text`, `:: varchar(20)`).
    private static func bare(_ argument: String) -> Substring {
        var text = Substring(argument)
        while true {
            text = Substring(SQLScanner.trimmed(String(text)))
            if Self.isEnclosed(text) {
                text = text.dropFirst().dropLast()
            } else if let cast = text.ranges(of: "::").last,
                      text[cast.upperBound...].allSatisfy({ $0.isLetter || $0.isNumber || " _.()".contains($0) }) {
                text = text[..<cast.lowerBound]
            } else {
                return text
            }
        }
    }

    /// Whether `text` is one pair of parentheses around the rest: `('a')`, not `('a')::varchar(20)`.
    private static func isEnclosed(_ text: Substring) -> Bool {
        guard text.first == "(", text.last == ")" else { return false }
        var depth = 0
        var quoted = false
        for (offset, character) in text.enumerated() {
            if character == "'" { quoted.toggle() }
            guard !quoted else { continue }
            if character == "(" { depth += 1 }
            if character == ")" {
                depth -= 1
                if depth == 0 { return offset == text.count - 1 }
            }
        }
        return false
    }

    /// The text of a plain string literal: `'a''b'::text` is `a'b`; nil for any other
    /// expression, and for an `E'...'` literal with a backslash.
    private static func stringLiteral(_ argument: String) -> String? {
        var text = bare(argument)
        if text.first == "E" || text.first == "e" {
            text = text.dropFirst()
            guard !text.contains("\\") else { return nil }
        }
        guard text.count >= 2, text.first == "'", text.last == "'" else { return nil }
        let inner = text.dropFirst().dropLast()
        // Quotes inside come in pairs; a lone one means two literals (`'a' || 'b'`).
        var value = ""
        var index = inner.startIndex
        while index < inner.endIndex {
            let character = inner[index]
            if character == "'" {
                let next = inner.index(after: index)
                guard next < inner.endIndex, inner[next] == "'" else { return nil }
                index = inner.index(after: next)
            } else {
                index = inner.index(after: index)
            }
            value.append(character)
        }
        return value
    }

    /// `NULL`, `null::text`, `( NULL )`, `(NULL) :: text`.
    private static func isNull(_ argument: String) -> Bool {
        bare(argument).lowercased() == "null"
    }
}

/// Walks SQL or PL/pgSQL source byte by byte (its syntax is ASCII), skipping what is not code.
private struct SQLScanner {
    let bytes: [UInt8]
    var position = 0

    init(_ source: String) { bytes = Array(source.utf8) }

    var atEnd: Bool { position >= bytes.count }

    /// Moves on by `count` bytes, never past the end.
    mutating func advance(by count: Int = 1) { position = min(position + count, bytes.count) }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
    }

    static func isIdentifier(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "$") || byte >= 0x80
    }

    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }

    static func trimmed(_ text: String) -> String {
        let isSpace = { (c: Character) in c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\r\n" }
        return String(text.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }

    private func byte(at offset: Int) -> UInt8? {
        position + offset < bytes.count ? bytes[position + offset] : nil
    }

    /// Skips a comment, a string literal or a quoted name at the position; false when there is
    /// none there.
    mutating func skipNonCode() -> Bool {
        switch bytes[position] {
        case UInt8(ascii: "-") where byte(at: 1) == UInt8(ascii: "-"):
            while !atEnd, bytes[position] != UInt8(ascii: "\n") { advance() }
        case UInt8(ascii: "/") where byte(at: 1) == UInt8(ascii: "*"):
            // Block comments nest in PostgreSQL.
            var depth = 0
            repeat {
                if bytes[position] == UInt8(ascii: "/"), byte(at: 1) == UInt8(ascii: "*") {
                    depth += 1
                    advance(by: 2)
                } else if bytes[position] == UInt8(ascii: "*"), byte(at: 1) == UInt8(ascii: "/") {
                    depth -= 1
                    advance(by: 2)
                } else {
                    advance()
                }
            } while depth > 0 && !atEnd
        case UInt8(ascii: "'"):
            // E'...' takes backslash escapes; a quote doubled is one quote in any literal.
            let escapes = position > 0 && Self.lowercased(bytes[position - 1]) == UInt8(ascii: "e")
                && (position == 1 || !Self.isIdentifier(bytes[position - 2]))
            advance()
            while !atEnd {
                if escapes, bytes[position] == UInt8(ascii: "\\") { advance(by: 2); continue }
                if bytes[position] == UInt8(ascii: "'") {
                    if byte(at: 1) == UInt8(ascii: "'") { advance(by: 2); continue }
                    break
                }
                advance()
            }
            advance()
        case UInt8(ascii: "\""):
            advance()
            while !atEnd, bytes[position] != UInt8(ascii: "\"") { advance() }
            advance()
        case UInt8(ascii: "$"):
            // $tag$ ... $tag$ (a tag does not start with a digit: $1 is a parameter).
            guard position == 0 || !Self.isIdentifier(bytes[position - 1]) else { return false }
            var end = position + 1
            while end < bytes.count, Self.isIdentifier(bytes[end]), bytes[end] != UInt8(ascii: "$") { end += 1 }
            guard end < bytes.count, bytes[end] == UInt8(ascii: "$"),
                  end == position + 1 || !(bytes[position + 1] >= UInt8(ascii: "0") && bytes[position + 1] <= UInt8(ascii: "9")) else { return false }
            let tag = bytes[position...end]
            advance(by: tag.count)
            while !atEnd, !bytes[position...].starts(with: tag) { advance() }
            advance(by: tag.count)
        default:
            return false
        }
        return true
    }

    /// `webhooky.emit` or `webhooky.has_webhooks` (any case, or quoted in lower case; spaces
    /// around the dot) starting at the position, followed by `(`: consumes up to and with the
    /// parenthesis.
    mutating func webhookyFunction() -> EmitCall.Function? {
        guard position == 0 || !Self.isIdentifier(bytes[position - 1]) else { return nil }
        var index = position
        func word(_ expected: String) -> Bool {
            let word = Array(expected.utf8)
            if bytes[index] == UInt8(ascii: "\"") {
                let quoted = [UInt8(ascii: "\"")] + word + [UInt8(ascii: "\"")]
                guard bytes[index...].starts(with: quoted) else { return false }
                index += quoted.count
                return true
            }
            guard index + word.count <= bytes.count,
                  zip(bytes[index..<(index + word.count)], word).allSatisfy({ Self.lowercased($0) == $1 }) else { return false }
            guard index + word.count == bytes.count || !Self.isIdentifier(bytes[index + word.count]) else { return false }
            index += word.count
            return true
        }
        func spaces() { while index < bytes.count, Self.isSpace(bytes[index]) { index += 1 } }
        guard word("webhooky") else { return nil }
        spaces()
        guard index < bytes.count, bytes[index] == UInt8(ascii: ".") else { return nil }
        index += 1
        spaces()
        guard index < bytes.count else { return nil }
        let function: EmitCall.Function
        if word("emit") { function = .emit } else if word("has_webhooks") { function = .hasWebhooks } else { return nil }
        spaces()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "(") else { return nil }
        position = index + 1
        return function
    }

    /// The arguments up to the closing parenthesis (consumed), each trimmed and with its comments
    /// left out; nil when the source ends first.
    mutating func arguments() -> [String]? {
        var arguments: [String] = []
        var current: [UInt8] = []
        var depth = 0
        func finish() -> String { Self.trimmed(String(decoding: current, as: UTF8.self)) }
        while !atEnd {
            let start = position
            if skipNonCode() {
                let comment = bytes[start] == UInt8(ascii: "-") || bytes[start] == UInt8(ascii: "/")
                current += comment ? [UInt8(ascii: " ")] : Array(bytes[start..<position])
                continue
            }
            switch bytes[position] {
            case UInt8(ascii: "("), UInt8(ascii: "["):
                depth += 1
            case UInt8(ascii: ")"), UInt8(ascii: "]"):
                if depth == 0 {
                    let last = finish()
                    if !last.isEmpty || !arguments.isEmpty { arguments.append(last) }
                    advance()
                    return arguments
                }
                depth -= 1
            case UInt8(ascii: ",") where depth == 0:
                arguments.append(finish())
                current = []
                advance()
                continue
            default:
                break
            }
            current.append(bytes[position])
            advance()
        }
        return nil
    }
}
