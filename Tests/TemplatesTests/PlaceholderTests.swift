import Testing
@testable import Templates

/// The placeholder grammar: `#` + dotted name + `#`; every other `#` is literal text.
@Suite struct PlaceholderTests {
    private func names(_ template: String) -> [String] {
        TemplatePiece.split(template).compactMap { if case .variable(let v) = $0 { v.name } else { nil } }
    }

    private func texts(_ template: String) -> [String] {
        TemplatePiece.split(template).compactMap { if case .text(let t) = $0 { t } else { nil } }
    }

    @Test func seedVariablesAreRecognised() {
        #expect(names("#customer.id##customer.email#") == ["customer.id", "customer.email"])
        #expect(names("?id=#customer.id#&email=#customer.email#") == ["customer.id", "customer.email"])
        #expect(names("#customer.group.name#") == ["customer.group.name"])
        #expect(names("#creditChange.value#/#account.eshopId#") == ["creditChange.value", "account.eshopId"])
    }

    @Test func otherHashesAreLiteralText() {
        #expect(names("https://x.cz/page#top") == [])
        #expect(names("{\"color\": \"#fff\"}") == [])
        #expect(names("issue #12 and #12# and # spaced #") == [])
        #expect(texts("issue #12") == ["issue #12"])
        #expect(names("#a.#") == [])
        #expect(names("#.a#") == [])
        #expect(names("#a..b#") == [])
        #expect(names("#1a#") == [])
        #expect(names("#a-b#") == [])
        #expect(names("#čau#") == [])
        #expect(names("##") == [])
    }

    @Test func scanningIsLeftmostFirst() {
        #expect(names("#a##b#") == ["a", "b"])
        #expect(names("##a#") == ["a"])
        #expect(texts("##a#") == ["#"])
        #expect(names("#a#b#") == ["a"])
        #expect(texts("#a#b#") == ["b#"])
        #expect(names("#a.b c#d#") == ["d"])
        #expect(texts("#a.b c#d#") == ["#a.b c"])
    }

    @Test func segmentsMayHoldUnderscoresAndDigits() {
        #expect(names("#_a.b_2.C3#") == ["_a.b_2.C3"])
        #expect(Variable(name: "_a.b_2.C3")?.path == ["_a", "b_2", "C3"])
        #expect(Variable(name: "a.") == nil)
        #expect(Variable(name: "") == nil)
    }

    @Test func textAroundPlaceholdersIsKeptExactly() {
        let pieces = TemplatePiece.split("x #a# y ✓ #b#")
        #expect(pieces == [
            .text("x "), .variable(Variable(name: "a")!), .text(" y ✓ "), .variable(Variable(name: "b")!),
        ])
    }

    @Test("a name after a '#' that no closing '#' makes a placeholder is listed, the longest dotted one, in the body's strings and in header values; placeholders and a '#' without a name are not")
    func unclosedNamesAreListed() throws {
        let body = try BodyTemplate(###"{"id": "#customer.id", "ok": "#customer.id#", "issue": "issue #12", "color": "#fff", "cut": "#a.b.", "twice": "##g #h#", "key #k.x": #v#}"###)
        #expect(body.unclosedNames == ["customer.id", "fff", "a.b", "g", "k.x"])
        #expect(try BodyTemplate(##"{"id": "#customer.id#", "n": #customer.credit#, "issue": "issue #12 # #-"}"##).unclosedNames == [])
        let header = try HeaderTemplate(name: "Authorization", value: "Bearer #account.apiKey and #account.eshopId#")
        #expect(header.unclosedNames == ["account.apiKey"])
    }
}
