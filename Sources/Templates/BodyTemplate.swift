/// A webhook's JSON body template, parsed and checked once.
///
/// A placeholder inside a JSON string is replaced by the JSON-escaped text of the value
/// (`"Hello #customer.tier.name#"` → `"Hello \"Gold\" tier"`). A placeholder that stands alone
/// as a JSON value is replaced by the value as JSON: a number keeps its exact text, a string is
/// quoted, an object or array is written as JSON, and a missing or `null` value becomes `""`.
/// The rendered body is therefore always valid JSON.
public struct BodyTemplate: Sendable, Hashable {
    enum Piece: Sendable, Hashable {
        case text(String)
        /// A placeholder inside a JSON string literal.
        case inString(Variable)
        /// A placeholder standing alone as a JSON value.
        case value(Variable)
    }

    /// The template as the admin wrote it.
    public let source: String
    let pieces: [Piece]
    /// The variables that are a whole JSON string, `"#customer.credit#"`: the value goes out as
    /// a string whatever it is (a number `12.50` as `"12.50"`), where the same placeholder
    /// without the quotes sends it as it is.
    public let quotedAlone: [Variable]

    /// The variables the template uses, in order of appearance.
    public var variables: [Variable] {
        pieces.compactMap {
            switch $0 {
            case .text: nil
            case .inString(let variable), .value(let variable): variable
            }
        }
    }

    /// The names written after a `#` in the body's text with no closing `#`, in order:
    /// `customer.id` in `{"id": "#customer.id"}` (in a body that is JSON, only a string holds
    /// them). By the rules they are sent as written, but one that reads as a variable is
    /// probably a placeholder missing its closing `#`. `"#fff"` gives `fff` too and
    /// `"issue #12"` nothing: which names read as variables is the caller's to judge.
    public var unclosedNames: [String] {
        pieces.flatMap { piece -> [String] in
            if case .text(let text) = piece { TemplatePiece.unclosedNames(in: text) } else { [] }
        }
    }

    /// Parses and checks a body template.
    ///
    /// The template must be valid JSON when each placeholder is counted as a JSON value; the
    /// check replaces every placeholder with `[]`, exactly as the SQL validation of
    /// `webhooky.webhooks` does, so a body the database accepted is a body the worker renders.
    ///
    /// - Throws: ``TemplateError/Code/invalidBody`` naming the line and column of the problem.
    public init(_ source: String) throws(TemplateError) {
        let split = TemplatePiece.split(source)
        try BodyTemplate.validate(split, source: source)
        var pieces: [Piece] = []
        var quotedAlone: [Variable] = []
        var inString = false
        var escaped = false
        // The last text ended with the quote that opened a string, and a variable followed it.
        var justOpened = false
        var openingVariable: Variable?
        for piece in split {
            switch piece {
            case .text(let text):
                pieces.append(.text(text))
                // Not an object's key ("#id#": ...), whose quotes cannot go.
                if let variable = openingVariable, text.utf8.first == UInt8(ascii: "\""),
                   text.utf8.dropFirst().first(where: { !RequestTemplate.isJSONWhitespace($0) }) != UInt8(ascii: ":") {
                    quotedAlone.append(variable)
                }
                openingVariable = nil
                for byte in text.utf8 {
                    justOpened = false
                    if inString {
                        if escaped {
                            escaped = false
                        } else if byte == UInt8(ascii: "\\") {
                            escaped = true
                        } else if byte == UInt8(ascii: "\"") {
                            inString = false
                        }
                    } else if byte == UInt8(ascii: "\"") {
                        inString = true
                        justOpened = true
                    }
                }
            case .variable(let variable):
                pieces.append(inString ? .inString(variable) : .value(variable))
                openingVariable = inString && justOpened ? variable : nil
                justOpened = false
            }
        }
        self.source = source
        self.pieces = pieces
        self.quotedAlone = quotedAlone
    }

    /// Renders the body for `payload`; never fails and always yields valid JSON.
    public func render(_ payload: JSONValue) -> String {
        var output = ""
        output.reserveCapacity(source.utf8.count + 64)
        for piece in pieces {
            switch piece {
            case .text(let text):
                output += text
            case .inString(let variable):
                if let text = variable.value(in: payload)?.templateText { JSONValue.writeEscaped(text, to: &output) }
            case .value(let variable):
                if let value = variable.value(in: payload) {
                    value.write(to: &output)
                } else {
                    output += "\"\""
                }
            }
        }
        return output
    }

    /// Checks that the template is JSON with `[]` in place of every placeholder, and reports a
    /// problem at its position in the template as written.
    private static func validate(_ pieces: [TemplatePiece], source: String) throws(TemplateError) {
        var substituted = ""
        // (offset in `substituted`, offset in `source`, length in `source`) of each placeholder.
        var placeholders: [(substituted: Int, source: Int, length: Int)] = []
        var sourceOffset = 0
        for piece in pieces {
            switch piece {
            case .text(let text):
                substituted += text
                sourceOffset += text.utf8.count
            case .variable(let variable):
                let length = variable.name.utf8.count + 2
                placeholders.append((substituted.utf8.count, sourceOffset, length))
                substituted += "[]"
                sourceOffset += length
            }
        }
        do {
            _ = try JSONParser.parse(substituted)
        } catch {
            var offset = error.offset
            var shift = 0
            for placeholder in placeholders where placeholder.substituted <= error.offset {
                if error.offset < placeholder.substituted + 2 {
                    offset = placeholder.source
                    shift = 0
                    break
                }
                shift += placeholder.length - 2
            }
            offset += shift
            let (line, column) = BodyTemplate.lineAndColumn(of: offset, in: source)
            throw TemplateError(
                .invalidBody,
                "body is not valid JSON: \(error.reason) at line \(line), column \(column) (each #placeholder# counts as one JSON value; inside quotes it is text)"
            )
        }
    }

    static func lineAndColumn(of offset: Int, in text: String) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for byte in text.utf8.prefix(offset) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }
}
