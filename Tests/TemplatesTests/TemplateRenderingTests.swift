import Foundation
import Testing
import Templates

/// A payload shaped like the reference domain's `customer.credit_changed` event.
let creditPayloadText = #"""
{
  "customer": {
    "id": 9007199254740993,
    "email": "jan+vip@example.cz",
    "credit": 12345678901234.56,
    "group": {"id": 3, "name": "Wholesale"},
    "tier": {"id": 2, "name": "Gold \"Plus\" \\ tier\nnew line 🎉"}
  },
  "creditChange": {"value": -100.50},
  "account": {"eshopId": "shop-42"},
  "flags": {"vip": true, "note": null},
  "tags": ["a", "b"]
}
"""#

func payload(_ text: String = creditPayloadText) throws -> JSONValue { try JSONParser.parse(text) }

/// Parses with Foundation, an independent JSON parser, to prove a rendered body is valid JSON.
func isValidJSONForFoundation(_ text: String) -> Bool {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
}

@Suite struct URLTemplateTests {
    @Test func seedQueryExampleEncodesValues() throws {
        let template = try URLTemplate("https://other_party_domain/path?id=#customer.id#&email=#customer.email#")
        #expect(try template.render(payload()) == "https://other_party_domain/path?id=9007199254740993&email=jan%2Bvip%40example.cz")
    }

    @Test func seedPathExample() throws {
        let template = try URLTemplate("https://other_party_domain/path/#customer.id#")
        #expect(try template.render(payload()) == "https://other_party_domain/path/9007199254740993")
    }

    @Test func valuesCannotAddParametersOrSegments() throws {
        let p = try payload(#"{"v": "a&b=c/d?e#f g%h", "emoji": "😀", "u": "A-z0._~"}"#)
        #expect(try URLTemplate("http://h/x?q=#v#").render(p) == "http://h/x?q=a%26b%3Dc%2Fd%3Fe%23f%20g%25h")
        #expect(try URLTemplate("http://h/#emoji#").render(p) == "http://h/%F0%9F%98%80")
        #expect(try URLTemplate("http://h/#u#").render(p) == "http://h/A-z0._~")
    }

    @Test("a value cannot remove a path segment either: . and .. are encoded, other dots are not")
    func valuesCannotBeDotSegments() throws {
        let p = try payload(#"{"one": ".", "two": "..", "three": "...", "file": "a.b"}"#)
        #expect(try URLTemplate("https://h/api/customers/#two#/credit").render(p) == "https://h/api/customers/%2E%2E/credit")
        #expect(try URLTemplate("https://h/a/#one#/b?x=#two#").render(p) == "https://h/a/%2E/b?x=%2E%2E")
        #expect(try URLTemplate("https://h/#three#/#file#").render(p) == "https://h/.../a.b")
    }

    @Test func missingAndNullRenderEmpty() throws {
        let template = try URLTemplate("https://h/p?a=#nope#&b=#flags.note#&c=#customer.nope.deeper#&d=#flags.note.deeper#")
        #expect(try template.render(payload()) == "https://h/p?a=&b=&c=&d=")
    }

    @Test func numbersBooleansAndObjectsRenderAsText() throws {
        let template = try URLTemplate("https://h/?c=#customer.credit#&v=#flags.vip#&g=#customer.group#")
        #expect(try template.render(payload()) == "https://h/?c=12345678901234.56&v=true&g=%7B%22id%22%3A3%2C%22name%22%3A%22Wholesale%22%7D")
    }

    @Test func apiKeyAsQueryParameter() throws {
        let template = try URLTemplate("https://erp.example/hook?apikey=s3cr3t&shop=#account.eshopId#")
        #expect(try template.render(payload()) == "https://erp.example/hook?apikey=s3cr3t&shop=shop-42")
    }

    @Test func literalHashIsKeptInURL() throws {
        #expect(try URLTemplate("https://h/#top").render(payload()) == "https://h/#top")
    }

    @Test("ports from 1 to 65535, an empty port, IPv6 and user info are accepted; a port in a variable is not checked")
    func portsThatAreFine() throws {
        for url in ["http://h:1/", "https://h:65535/x", "http://h:/x", "http://[::1]:8080/x", "http://[::1]/x", "https://u:p@h:443/?a=b:c",
                    "https://h/x:99999", "https://h:#port#/x", "https://#host#:99999/x"] {
            #expect(throws: Never.self) { try URLTemplate(url) }
        }
    }

    @Test func hostMayBeAVariable() throws {
        let p = try payload(#"{"host": "erp.example"}"#)
        #expect(try URLTemplate("https://#host#/x").render(p) == "https://erp.example/x")
        #expect(throws: TemplateError.self) { try URLTemplate("https://#missing#/x").render(p) }
    }

    @Test("a host left empty after a user name or before a port fails at rendering, as an empty host does")
    func emptyHostBehindUserInfoOrPort() throws {
        let p = try payload(#"{"user": "alice", "port": "8080"}"#)
        #expect(try URLTemplate("https://#user#@h/x").render(p) == "https://alice@h/x")
        for url in ["https://#user#@/x", "https://#user#@#missing#/x", "https://#user#@#missing#:8080/x", "http://#missing#:#port#/x"] {
            #expect(throws: TemplateError(.invalidURL, "rendered URL has an empty host (a host variable the event does not carry?)"), "\(url)") {
                try URLTemplate(url).render(p)
            }
        }
    }

    @Test func schemeIsCaseInsensitive() throws {
        #expect(try URLTemplate("HTTPS://h/").render(payload()) == "HTTPS://h/")
    }

    @Test(arguments: [
        ("ftp://h/x", "URL must start with http:// or https:// (got scheme \"ftp\")"),
        ("h/x", "URL must start with http:// or https:// (got no scheme)"),
        ("", "URL must start with http:// or https:// (got an empty URL)"),
        ("https://", "URL has no host after https://"),
        ("https:///path", "URL has no host after https://"),
        ("https://user@/x", "URL has no host after https://"),
        ("HTTP://:8080/x", "URL has no host after HTTP://"),
        ("https://u:p@:443/?id=#customer.id#", "URL has no host after https://"),
        ("http://[]/x", "URL has no host after http://"),
        ("http://h/a b", "URL contains a space; percent-encode it (a space as %20)"),
        ("http://h/ř", "URL contains a non-ASCII character; percent-encode it (a space as %20)"),
        ("http://h/{x}", "URL contains '{'; percent-encode it (a space as %20)"),
        ("http://h/\n", "URL contains a control character; percent-encode it (a space as %20)"),
        ("http://127.0.0.1:99999/x", "URL has a port that is not a number from 1 to 65535 (a user name or password in a URL writes / ? # @ as %2F %3F %23 %40)"),
        ("https://user:pw@h:0/", "URL has a port that is not a number from 1 to 65535 (a user name or password in a URL writes / ? # @ as %2F %3F %23 %40)"),
        ("https://[::1]:8o8o/?id=#customer.id#", "URL has a port that is not a number from 1 to 65535 (a user name or password in a URL writes / ? # @ as %2F %3F %23 %40)"),
        ("http://h:+80/", "URL has a port that is not a number from 1 to 65535 (a user name or password in a URL writes / ? # @ as %2F %3F %23 %40)"),
        // A password with a / that is not percent-encoded: the "port" is a piece of it, not quoted.
        ("https://api:k3yPart/rest@h/", "URL has a port that is not a number from 1 to 65535 (a user name or password in a URL writes / ? # @ as %2F %3F %23 %40)"),
    ])
    func invalidURLsAreRefusedWithAReason(url: String, message: String) {
        #expect(throws: TemplateError(.invalidURL, message)) { try URLTemplate(url) }
    }
}

@Suite struct BodyTemplateTests {
    static let seedBody = """
        {
          "eshop":"#account.eshopId#",
          "email":"#customer.email#",
          "credit":"#customer.credit#",
          "custom": {
           "field":"vlastni_pole"
          }
        }
        """

    @Test("the variables that are a whole JSON string: the seed's three, not one with text or an escaped quote beside it, two side by side, or one standing alone as a value")
    func quotedAlone() throws {
        #expect(try BodyTemplate(Self.seedBody).quotedAlone.map(\.name) == ["account.eshopId", "customer.email", "customer.credit"])
        let others = try BodyTemplate(##"{"a": "x #a#", "b": "#b# y", "c": "\"#c#", "d": "#d#\"", "e": #e#, "f": "#f##g#", "h": ["#h#"]}"##)
        #expect(others.quotedAlone.map(\.name) == ["h"])
        // An object's key keeps its quotes whatever its value.
        #expect(try BodyTemplate(##"{"#customer.id#" : {"x": "#x#"}, "#y#":1}"##).quotedAlone.map(\.name) == ["x"])
    }

    @Test func seedBodyRendersWithFormattingKept() throws {
        let rendered = try BodyTemplate(Self.seedBody).render(payload())
        #expect(rendered == """
            {
              "eshop":"shop-42",
              "email":"jan+vip@example.cz",
              "credit":"12345678901234.56",
              "custom": {
               "field":"vlastni_pole"
              }
            }
            """)
        #expect(isValidJSONForFoundation(rendered))
    }

    @Test func placeholdersAsValuesKeepTheirJSONType() throws {
        let template = try BodyTemplate(#"{"id": #customer.id#, "credit": #customer.credit#, "email": #customer.email#, "vip": #flags.vip#, "group": #customer.group#, "tags": #tags#}"#)
        #expect(try template.render(payload()) == #"{"id": 9007199254740993, "credit": 12345678901234.56, "email": "jan+vip@example.cz", "vip": true, "group": {"id":3,"name":"Wholesale"}, "tags": ["a","b"]}"#)
    }

    @Test func missingOrNullValueBecomesEmptyString() throws {
        let template = try BodyTemplate(##"{"a": #nope#, "b": #flags.note#, "c": "x#nope#y", "d": [#nope#], "e": #flags.note.deeper#, "f": "#flags.note.deeper#"}"##)
        let rendered = template.render(try payload())
        #expect(rendered == #"{"a": "", "b": "", "c": "xy", "d": [""], "e": "", "f": ""}"#)
        #expect(isValidJSONForFoundation(rendered))
    }

    @Test func stringContextEscapesQuotesBackslashNewlineAndKeepsEmoji() throws {
        let template = try BodyTemplate(##"{"tier": "Tier: #customer.tier.name#!"}"##)
        let rendered = template.render(try payload())
        #expect(rendered == #"{"tier": "Tier: Gold \"Plus\" \\ tier\nnew line 🎉!"}"#)
        let decoded = try JSONSerialization.jsonObject(with: Data(rendered.utf8)) as? [String: String]
        #expect(decoded?["tier"] == "Tier: Gold \"Plus\" \\ tier\nnew line 🎉!")
    }

    @Test("every control character is escaped, inside a string and as a value, and decodes back to itself; DEL, U+2028 and non-ASCII stay as they are")
    func controlCharactersAreEscapedExactly() throws {
        let controls = (0...0x1F).map { String(format: "\\u%04x", $0) }.joined()
        let p = try payload(#"{"v": "\#(controls)\u007fč😀\u2028"}"#)
        let escaped = #"\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f"#
            + "\u{7F}č😀\u{2028}"
        let rendered = try BodyTemplate(##"{"s": "<#v#>", "v": #v#}"##).render(p)
        #expect(rendered == #"{"s": "<"# + escaped + #">", "v": ""# + escaped + #""}"#)
        let decoded = try JSONSerialization.jsonObject(with: Data(rendered.utf8)) as? [String: String]
        let original = String(decoding: (0...0x1F).map { UInt8($0) }, as: UTF8.self) + "\u{7F}č😀\u{2028}"
        #expect(decoded == ["s": "<" + original + ">", "v": original])
    }

    @Test func valueContextQuotesAndEscapesStrings() throws {
        let rendered = try BodyTemplate(#"{"tier": #customer.tier.name#}"#).render(payload())
        #expect(rendered == #"{"tier": "Gold \"Plus\" \\ tier\nnew line 🎉"}"#)
    }

    @Test func objectInsideAStringIsEscapedJSONText() throws {
        let rendered = try BodyTemplate(##"{"g": "#customer.group#"}"##).render(payload())
        #expect(rendered == #"{"g": "{\"id\":3,\"name\":\"Wholesale\"}"}"#)
        #expect(isValidJSONForFoundation(rendered))
    }

    @Test func exactNumbersInsideAndOutsideStrings() throws {
        let rendered = try BodyTemplate(##"["#customer.id#", #customer.id#, "#customer.credit#", #customer.credit#, #creditChange.value#]"##).render(payload())
        #expect(rendered == #"["9007199254740993", 9007199254740993, "12345678901234.56", 12345678901234.56, -100.50]"#)
    }

    @Test func escapedQuotesDoNotConfuseStringTracking() throws {
        let rendered = try BodyTemplate(##"{"a": "say \"#account.eshopId#\"", "b": #account.eshopId#, "c": "\\", "d": #account.eshopId#}"##).render(payload())
        #expect(rendered == #"{"a": "say \"shop-42\"", "b": "shop-42", "c": "\\", "d": "shop-42"}"#)
    }

    @Test func hashesThatAreNotPlaceholdersStayLiteral() throws {
        let rendered = try BodyTemplate(##"{"color": "#fff", "note": "issue #12", "anchor": "#top"}"##).render(payload())
        #expect(rendered == ##"{"color": "#fff", "note": "issue #12", "anchor": "#top"}"##)
    }

    @Test func placeholderAsTheWholeBody() throws {
        #expect(try BodyTemplate("#customer.group#").render(payload()) == ##"{"id":3,"name":"Wholesale"}"##)
        #expect(try BodyTemplate(" #nope# ").render(payload()) == #" "" "#)
    }

    @Test(arguments: [
        (#"{"a": }"#, "line 1, column 7"),
        (#"{"a": #x# #y#}"#, "line 1, column 11"),
        ("{\n  \"a\": 1\n  \"b\": 2\n}", "line 3, column 3"),
        (#"{#x#: 1}"#, "line 1, column 2"),
        (#"{"a": 1#x#}"#, "line 1, column 8"),
        (##"{"a": "\#x#"}"##, "line 1, column 8"),
        (#"{"a": #x#"#, "line 1, column 10"),
        ("{'a': 1}", "line 1, column 2"),
        ("not json", "line 1, column 1"),
    ])
    func invalidBodiesAreRefusedWithPosition(body: String, position: String) {
        do {
            _ = try BodyTemplate(body)
            Issue.record("accepted an invalid body: \(body)")
        } catch {
            #expect(error.code == .invalidBody)
            #expect(error.message.hasPrefix("body is not valid JSON: "))
            #expect(error.message.contains(position), "\(error.message)")
        }
    }
}

@Suite struct HeaderTemplateTests {
    @Test func valuesAreUsedAsIs() throws {
        let header = try HeaderTemplate(name: "Authorization", value: "Bearer #account.eshopId#+#customer.email#")
        #expect(try header.render(payload()) == "Bearer shop-42+jan+vip@example.cz")
    }

    @Test("a missing or null value is empty, also through a null object; a # that is not a placeholder is kept")
    func missingValuesAndLiteralHashes() throws {
        let header = try HeaderTemplate(name: "X-Note", value: "Bearer #nope#|#flags.note#|#flags.note.deeper#|#fff issue #12 ##account.eshopId#")
        #expect(try header.render(payload()) == "Bearer |||#fff issue #12 #shop-42")
    }

    @Test func lineBreakInAValueFailsWithoutShowingIt() throws {
        let header = try HeaderTemplate(name: "X-Tier", value: "#customer.tier.name#")
        #expect(throws: TemplateError(
            .invalidHeaderValue,
            "header \"X-Tier\": the value of #customer.tier.name# contains a line break or control character; refused to prevent header injection"
        )) { try header.render(payload()) }
        let injected = try payload(#"{"v": "x\r\nX-Evil: 1"}"#)
        #expect(throws: TemplateError.self) { try HeaderTemplate(name: "X-A", value: "#v#").render(injected) }
    }

    @Test(arguments: ["", "Bad Name", "X:Y", "Ä", "Host", "content-length", "Webhook-Signature", "webhook-id"])
    func invalidOrReservedNamesAreRefused(name: String) {
        #expect(throws: TemplateError.self) { try HeaderTemplate(name: name, value: "v") }
    }

    @Test func contentTypeMayBeOverridden() throws {
        #expect(try HeaderTemplate(name: "Content-Type", value: "application/json; charset=utf-8").render(payload()) == "application/json; charset=utf-8")
    }

    @Test func literalControlCharacterIsRefused() {
        #expect(throws: TemplateError.self) { try HeaderTemplate(name: "X-A", value: "a\nb") }
    }
}

@Suite struct RequestTemplateTests {
    @Test func bodyMakesPostAndNoBodyMakesGet() throws {
        #expect(try RequestTemplate(url: "https://h/", body: nil).method == "GET")
        #expect(try RequestTemplate(url: "https://h/", body: "").method == "GET")
        #expect(try RequestTemplate(url: "https://h/", body: " \n\t ").method == "GET")
        #expect(try RequestTemplate(url: "https://h/", body: "{}").method == "POST")
    }

    @Test func rendersEverything() throws {
        let template = try RequestTemplate(
            url: "https://h/c/#customer.id#",
            body: #"{"credit": #customer.credit#}"#,
            headers: [(name: "Authorization", value: "Bearer k-#account.eshopId#")]
        )
        let request = try template.render(payload())
        #expect(request == RenderedRequest(
            method: "POST",
            url: "https://h/c/9007199254740993",
            headers: [.init(name: "Authorization", value: "Bearer k-shop-42")],
            body: #"{"credit": 12345678901234.56}"#
        ))
        #expect(template.variables.map(\.name) == ["customer.id", "customer.credit", "account.eshopId"])
    }
}
