import Testing
import Templates

@Suite struct JSONParserTests {
    @Test func numbersKeepTheirExactText() throws {
        let value = try JSONParser.parse(#"{"id": 9007199254740993, "credit": 12345678901234.56, "e": -1.5E+300, "z": 0, "f": 1.0}"#)
        #expect(value.value(at: ["id"]) == .number("9007199254740993"))
        #expect(value.value(at: ["credit"]) == .number("12345678901234.56"))
        #expect(value.value(at: ["e"]) == .number("-1.5E+300"))
        #expect(value.value(at: ["z"]) == .number("0"))
        #expect(value.value(at: ["f"]) == .number("1.0"))
    }

    @Test func oneIsANumberNotABoolean() throws {
        #expect(try JSONParser.parse("[1, true]") == .array([.number("1"), .bool(true)]))
    }

    @Test func stringEscapesAreDecoded() throws {
        let value = try JSONParser.parse(#""a\"b\\c\/d\n\t\r\b\f \u00e9 \ud83d\ude00 \u0001""#)
        #expect(value == .string("a\"b\\c/d\n\t\r\u{08}\u{0C} é 😀 \u{01}"))
    }

    @Test func loneSurrogateBecomesReplacementCharacter() throws {
        #expect(try JSONParser.parse(#""\ud83d x""#) == .string("\u{FFFD} x"))
    }

    @Test func objectsKeepOrderAndLastDuplicateWins() throws {
        guard case .object(let object) = try JSONParser.parse(#"{"b": 1, "a": 2, "b": 3}"#) else {
            Issue.record("not an object")
            return
        }
        #expect(object.members.map(\.key) == ["b", "a", "b"])
        #expect(object["b"] == .number("3"))
    }

    @Test("nested objects and arrays, side by side and one in another, each keep their own members and elements")
    func nestedContainersKeepTheirOwnEntries() throws {
        func object(_ members: [(String, JSONValue)]) -> JSONValue {
            .object(JSONObject(members.map { JSONObject.Member(key: $0.0, value: $0.1) }))
        }
        let parsed = try JSONParser.parsePayload(#"{"a": {"x": 1, "y": [1, [2, 3], {"z": 4}, []], "w": {}}, "b": [{"c": 5}, 6], "d": {}, "e": [[], [[7]]]}"#)
        #expect(parsed == object([
            ("a", object([("x", .number("1")), ("y", .array([.number("1"), .array([.number("2"), .number("3")]), object([("z", .number("4"))]), .array([])])),
                          ("w", object([]))])),
            ("b", .array([object([("c", .number("5"))]), .number("6")])),
            ("d", object([])),
            ("e", .array([.array([]), .array([.array([.number("7")])])])),
        ]))
        // More members and elements than the room each object and array makes at first (8 and 4).
        let many = (0..<100).map { "\"k\($0)\": [\((0..<40).map(String.init).joined(separator: ", "))]" }.joined(separator: ", ")
        let wide = try JSONParser.parse("{\(many), \"last\": {\"n\": 0}}")
        guard case .object(let members) = wide else {
            Issue.record("not an object")
            return
        }
        #expect(members.members.count == 101)
        #expect(members.members[99].key == "k99" && members.members[99].value == .array((0..<40).map { .number(String($0)) }))
        #expect(wide.value(at: ["last", "n"]) == .number("0"))
    }

    @Test("a key is found by its exact bytes, as PostgreSQL finds it: a canonically equivalent key (KELVIN SIGN for K) is another key")
    func keysAreMatchedByteForByte() throws {
        // The order jsonb::text gives them: the shorter key first.
        let payload = try JSONParser.parse(#"{"K": "real", "KYC": {"ok": "yes"}, "\u212A": "forged", "\u212AYC": {"ok": "forged"}}"#)
        #expect(payload.value(at: ["K"]) == .string("real"))
        #expect(payload.value(at: ["\u{212A}"]) == .string("forged"))
        #expect(try URLTemplate("https://erp.example/?k=#K#&kyc=#KYC.ok#").render(payload) == "https://erp.example/?k=real&kyc=yes")
        #expect(try BodyTemplate(##"{"k": #K#, "kyc": "#KYC.ok#"}"##).render(payload) == #"{"k": "real", "kyc": "yes"}"#)
        #expect(try JSONParser.parse(#"{"\u212A": 1}"#).value(at: ["K"]) == nil)
    }

    @Test(arguments: [
        ("", "unexpected end of text, expected a value", 1, 1),
        ("{\"a\": }", "unexpected character, expected a value (object, array, string, number, true, false or null)", 1, 7),
        ("{\"a\": 1,\n \"b\" 2}", "expected ':' after an object key", 2, 6),
        ("[1 2]", "expected ',' or ']'", 1, 4),
        ("01", "unexpected text after the JSON value", 1, 2),
        ("1.", "invalid number: expected a digit after '.'", 1, 3),
        ("\"abc", "unterminated string", 1, 1),
        ("\"a\nb\"", "control character inside a string (write it as an escape such as \\n)", 1, 3),
        ("\"\\x\"", "invalid escape sequence in a string", 1, 2),
        ("tru", "invalid literal, expected true", 1, 1),
        ("{'a': 1}", "expected a string key in double quotes", 1, 2),
        ("[1,]", "unexpected character, expected a value (object, array, string, number, true, false or null)", 1, 4),
    ])
    func syntaxErrorsSayWhatAndWhere(text: String, reason: String, line: Int, column: Int) {
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(text) }
        do {
            _ = try JSONParser.parse(text)
        } catch {
            #expect(error.reason == reason)
            #expect(error.line == line)
            #expect(error.column == column)
        }
    }

    @Test func deepNestingIsRefusedNotCrashed() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(deep) }
        let fine = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(throws: Never.self) { try JSONParser.parse(fine) }
    }

    @Test("a payload deeper than the maximum depth is read without recursion: the deep part is kept as compact JSON text, written as parsed values are")
    func deepPayloadPartIsKeptAsText() throws {
        let levels = 100_000
        let spaced = #"{"id": 7, "deep": "# + String(repeating: #"{"a b": [ "#, count: levels) + #""x\"y\u00e9\/", 1.50e3, true, null"#
            + String(repeating: " ] }", count: levels) + "}"
        let payload = try JSONParser.parsePayload(spaced)
        #expect(payload.value(at: ["id"]) == .number("7"))
        let compact = #"{"id":7,"deep":"# + String(repeating: #"{"a b":["#, count: levels) + #""x\"yé/",1.50e3,true,null"#
            + String(repeating: "]}", count: levels) + "}"
        #expect(payload.jsonText == compact)
        #expect(try BodyTemplate("#deep#").render(payload).utf8.count == compact.utf8.count - #"{"id":7,"deep":}"#.utf8.count)
        // Below the maximum depth nothing changes.
        let shallow = #"{"a": [1, {"b": "c"}]}"#
        #expect(try JSONParser.parsePayload(shallow) == JSONParser.parse(shallow))
        // parse(_:) still refuses it.
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(spaced) }
    }

    @Test(arguments: ["}", "]]", "}]", " 1.", " tru]]", #" "x]]"#, "]] 1"])
    func malformedDeepPayloadIsRefused(end: String) {
        let text = String(repeating: "[", count: 600) + "[" + end
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parsePayload(text) }
    }

    @Test func serialisationRoundTrips() throws {
        let text = #"{"a":[1,2.50,"x\"y\\z\n"],"b":{"c":null,"d":true,"e":"ř😀"},"f":-0.0}"#
        #expect(try JSONParser.parse(text).jsonText == text)
    }
}
