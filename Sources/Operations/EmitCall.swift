/// A call of `webhooky.emit` or `webhooky.has_webhooks` in a function's source, as far as
/// `webhooky doctor` needs it: the event when it is written as a literal, and whether the call
/// passes an account.
///
/// Found by a small scanner, not a parser: it skips comments (`--`, `/* */`), string literals
/// (`'...'`, `E'...'`, dollar-quoted), quoted names, and splits a call's arguments at the commas
/// outside parentheses and brackets. Names are matched as PL/pgSQL does, in any case.
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
            if scanner.skipNonCode() { continue }
            if let function = scanner.webhookyFunction(), let arguments = scanner.arguments() {
                calls.append(EmitCall(function: function, arguments: arguments))
            } else {
                scanner.advance()
            }
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

    /// `name => value` or `name := value`, lowercased name.
    private static func namedArgument(_ argument: String) -> (String, String)? {
        let bytes = Array(argument.utf8)
        var end = 0
        while end < bytes.count, SQLScanner.isIdentifier(bytes[end]) { end += 1 }
        guard end > 0 else { return nil }
        var rest = end
        while rest < bytes.count, bytes[rest] == UInt8(ascii: " ") || bytes[rest] == UInt8(ascii: "\t") || bytes[rest] == UInt8(ascii: "\n") { rest += 1 }
        guard rest + 1 < bytes.count, bytes[rest] == UInt8(ascii: "=") || bytes[rest] == UInt8(ascii: ":"),
              bytes[rest + 1] == UInt8(ascii: bytes[rest] == UInt8(ascii: "=") ? ">" : "=") else { return nil }
        let name = String(decoding: bytes[..<end], as: UTF8.self).lowercased()
        let value = String(decoding: bytes[(rest + 2)...], as: UTF8.self)
        return (name, SQLScanner.trimmed(value))
    }

    /// The text of a plain string literal, with an optional cast to text: `'a''b'::text` is `a'b`.
    private static func stringLiteral(_ argument: String) -> String? {
        var text = Substring(argument)
        for cast in ["::text", "::varchar", "::character varying"] where text.lowercased().hasSuffix(cast) {
            text = text.dropLast(cast.count)
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

    /// `NULL`, `null::text`, `(NULL)`.
    private static func isNull(_ argument: String) -> Bool {
        var text = Substring(argument.lowercased())
        while text.first == "(", text.last == ")" { text = text.dropFirst().dropLast() }
        if let cast = text.firstRange(of: "::") { text = text[..<cast.lowerBound] }
        return text.elementsEqual("null")
    }
}

/// Walks SQL or PL/pgSQL source byte by byte (its syntax is ASCII), skipping what is not code.
private struct SQLScanner {
    let bytes: [UInt8]
    var position = 0

    init(_ source: String) { bytes = Array(source.utf8) }

    var atEnd: Bool { position >= bytes.count }

    mutating func advance() { position += 1 }

    static func isIdentifier(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "$") || byte >= 0x80
    }

    static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }

    static func trimmed(_ text: String) -> String {
        let isSpace = { (c: Character) in c == " " || c == "\t" || c == "\n" || c == "\r" }
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
            position += 2
            while !atEnd, !(bytes[position] == UInt8(ascii: "*") && byte(at: 1) == UInt8(ascii: "/")) { advance() }
            position = min(position + 2, bytes.count)
        case UInt8(ascii: "'"):
            // E'...' takes backslash escapes; a quote doubled is one quote in any literal.
            let escapes = position > 0 && Self.lowercased(bytes[position - 1]) == UInt8(ascii: "e")
                && (position == 1 || !Self.isIdentifier(bytes[position - 2]))
            advance()
            while !atEnd {
                if escapes, bytes[position] == UInt8(ascii: "\\") { position += 2; continue }
                if bytes[position] == UInt8(ascii: "'") {
                    if byte(at: 1) == UInt8(ascii: "'") { position += 2; continue }
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
            position = end + 1
            while !atEnd, !bytes[position...].starts(with: tag) { advance() }
            position = min(position + tag.count, bytes.count)
        default:
            return false
        }
        return true
    }

    /// `webhooky.emit` or `webhooky.has_webhooks` (any case, spaces around the dot) starting at
    /// the position, followed by `(`: consumes up to and with the parenthesis.
    mutating func webhookyFunction() -> EmitCall.Function? {
        guard position == 0 || !Self.isIdentifier(bytes[position - 1]) else { return nil }
        var index = position
        func word(_ expected: String) -> Bool {
            let word = Array(expected.utf8)
            guard index + word.count <= bytes.count,
                  zip(bytes[index..<(index + word.count)], word).allSatisfy({ Self.lowercased($0) == $1 }) else { return false }
            guard index + word.count == bytes.count || !Self.isIdentifier(bytes[index + word.count]) else { return false }
            index += word.count
            return true
        }
        func spaces() { while index < bytes.count, [UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r")].contains(bytes[index]) { index += 1 } }
        guard word("webhooky") else { return nil }
        spaces()
        guard index < bytes.count, bytes[index] == UInt8(ascii: ".") else { return nil }
        index += 1
        spaces()
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
