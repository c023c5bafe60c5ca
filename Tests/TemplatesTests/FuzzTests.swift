import Foundation
import Templates
import TestSupport
import Testing

/// Random templates and payloads: the engine never crashes, every body it accepts renders to
/// valid JSON (checked by Foundation's independent parser), a URL value never escapes its
/// encoding, and a header never carries a line break.
///
/// Cases: `WEBHOOKY_FUZZ_CASES` (default 20,000; `make fuzz` runs 1,000,000). Seed:
/// `WEBHOOKY_FUZZ_SEED` (default random, printed on failure).
@Suite struct FuzzTests {
    static var cases: Int { ProcessInfo.processInfo.environment["WEBHOOKY_FUZZ_CASES"].flatMap(Int.init) ?? 20_000 }

    @Test func randomTemplatesAndPayloads() throws {
        let seed = ProcessInfo.processInfo.environment["WEBHOOKY_FUZZ_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0...UInt64.max)
        var random = FuzzRandom(seed: seed)
        var accepted = 0
        var failures: [String] = []
        for index in 0..<Self.cases where failures.count < 5 {
            let payloadText = random.jsonObject(depth: 0)
            guard let payload = try? JSONParser.parse(payloadText) else {
                failures.append("case \(index): our parser refused a generated payload: \(payloadText)")
                continue
            }
            let template = random.template()
            if let body = try? BodyTemplate(template) {
                accepted += 1
                let rendered = body.render(payload)
                if (try? JSONSerialization.jsonObject(with: Data(rendered.utf8), options: [.fragmentsAllowed])) == nil {
                    failures.append("case \(index): template \(template.debugDescription) with payload \(payloadText) rendered invalid JSON: \(rendered.debugDescription)")
                }
                if (try? JSONParser.parse(rendered)) == nil {
                    failures.append("case \(index): our parser refused the rendered body \(rendered.debugDescription)")
                }
            }
            let url = "https://h.example/p?" + random.placeholderText(inURL: true)
            if let urlTemplate = try? URLTemplate(url), let rendered = try? urlTemplate.render(payload) {
                let query = rendered.dropFirst("https://h.example/p?".count)
                let literal = urlTemplate.source.dropFirst("https://h.example/p?".count)
                if query.utf8.contains(where: { !URLTemplate.isAllowedInRenderedURL($0) }) {
                    failures.append("case \(index): URL rendered with a raw character: \(rendered.debugDescription)")
                }
                if query.filter({ $0 == "&" || $0 == "=" || $0 == "/" }).count != literal.filter({ $0 == "&" || $0 == "=" || $0 == "/" }).count {
                    failures.append("case \(index): a value added & = or / to the URL: \(url) -> \(rendered)")
                }
            }
            if let header = try? HeaderTemplate(name: "X-Fuzz", value: random.placeholderText(inURL: false)),
               let value = try? header.render(payload), value.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) {
                failures.append("case \(index): a header value carries a line break: \(value.debugDescription)")
            }
        }
        #expect(failures.isEmpty, "seed \(seed): \(failures.joined(separator: "\n"))")
        #expect(accepted > Self.cases / 10, "the generator must produce enough valid templates (\(accepted) of \(Self.cases))")
    }
}

extension URLTemplate {
    /// Unreserved characters and the URL syntax characters a template's literal text may hold.
    static func isAllowedInRenderedURL(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F && !"\"<>\\^`{|}".utf8.contains(byte)
    }
}

/// A seeded generator of JSON-ish text.
struct FuzzRandom: RandomNumberGenerator {
    var source: SeededRandom
    init(seed: UInt64) { source = SeededRandom(seed: seed) }

    mutating func next() -> UInt64 { source.next() }

    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &self)] }
    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &self) < percent }

    static let names = ["a", "b", "x", "_", "customer", "id", "email", "credit", "group", "name", "tier", "n1", "A_b"]
    static let nasty = ["\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1}", "#", "##", "😀", "ř", "\u{2028}", "&", "=", "/", "?", "%", " ", "'", "{", "}", "[", "]", ":", ","]

    mutating func name() -> String {
        (0..<Int.random(in: 1...3, using: &self)).map { _ in pick(Self.names) }.joined(separator: ".")
    }

    mutating func number() -> String {
        pick(["0", "-0", "1", "42", "9007199254740993", "12345678901234.56", "-100.50", "1e10", "1.5E-7", "123456789012345678901234567890"])
    }

    mutating func stringContent() -> String {
        (0..<Int.random(in: 0...4, using: &self)).map { _ in chance(50) ? pick(Self.nasty) : pick(Self.names) }.joined()
    }

    /// A random JSON object as text (a payload).
    mutating func jsonObject(depth: Int) -> String {
        let members = (0..<Int.random(in: 0...4, using: &self)).map { _ in
            jsonString(pick(Self.names)) + ":" + jsonValue(depth: depth + 1)
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    mutating func jsonValue(depth: Int) -> String {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &self) {
        case 0: return "null"
        case 1: return chance(50) ? "true" : "false"
        case 2, 3: return number()
        case 4: return jsonString(stringContent())
        case 5: return jsonObject(depth: depth)
        default: return "[" + (0..<Int.random(in: 0...3, using: &self)).map { _ in jsonValue(depth: depth + 1) }.joined(separator: ",") + "]"
        }
    }

    func jsonString(_ text: String) -> String {
        var output = ""
        JSONValue.writeQuoted(text, to: &output)
        return output
    }

    /// A random body template: a JSON structure with placeholders as values and inside strings,
    /// sometimes mutated into something that is probably not JSON.
    mutating func template() -> String {
        var text = templateValue(depth: 0)
        if chance(30) {
            var characters = Array(text)
            for _ in 0..<Int.random(in: 1...3, using: &self) where !characters.isEmpty {
                let position = Int.random(in: 0..<characters.count, using: &self)
                switch Int.random(in: 0..<3, using: &self) {
                case 0: characters.remove(at: position)
                case 1: characters.insert(contentsOf: Array(pick(Self.nasty + ["#x#", "#a.b#", " "])), at: position)
                default:
                    characters.remove(at: position)
                    characters.insert(contentsOf: Array(pick(Self.nasty)), at: position)
                }
            }
            text = String(characters)
        }
        return text
    }

    mutating func templateValue(depth: Int) -> String {
        switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &self) {
        case 0: return "#" + name() + "#"
        case 1: return "\"" + placeholderText(inURL: false).replacingJSONSpecials() + "\""
        // No exponents here: mutations may glue numbers together, and Foundation (the oracle)
        // refuses valid JSON numbers beyond Double's range, such as 1e109007199254740993.
        case 2: return pick(["0", "1", "42", "-100.50", "12345678901234.56", "9007199254740993"])
        case 3: return pick(["true", "null", "\"#fff\"", "\"issue #12\"", "\"\\\\#x#\""])
        case 4:
            let members = (0..<Int.random(in: 0...3, using: &self)).map { _ in
                "\"" + (chance(30) ? "#" + name() + "#" : pick(Self.names)) + "\": " + templateValue(depth: depth + 1)
            }
            return "{" + members.joined(separator: ", ") + "}"
        default:
            return "[" + (0..<Int.random(in: 0...3, using: &self)).map { _ in templateValue(depth: depth + 1) }.joined(separator: ",") + "]"
        }
    }

    /// Text mixing literals, placeholders and stray `#`.
    mutating func placeholderText(inURL: Bool) -> String {
        (0..<Int.random(in: 1...4, using: &self)).map { _ in
            switch Int.random(in: 0..<4, using: &self) {
            case 0: return "#" + name() + "#"
            case 1: return inURL ? pick(["id=", "&e=", "/seg", "x"]) : pick(Self.names)
            case 2: return inURL ? "" : pick(["Bearer ", "#", " #1", "a#b"])
            default: return inURL ? pick(["k=v", "&", "="]) : pick(["-", "ok", "#top"])
            }
        }.joined()
    }
}

extension String {
    /// The text with `"`, `\` and control characters escaped for a JSON string.
    func replacingJSONSpecials() -> String {
        var output = ""
        JSONValue.writeEscaped(self, to: &output)
        return output
    }
}
