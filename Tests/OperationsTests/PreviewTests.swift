import Foundation
import LoopbackReceiver
import Postgres
import StandardWebhooks
import TestSupport
import Testing

/// `webhooky preview`, run as the admin runs it: the built binary against a real database.
@Suite(.timeLimit(.minutes(10))) struct PreviewTests {
    /// A webhook with a secret in its URL, an Authorization header and a signing secret.
    static func addSecretiveWebhook(_ database: AdminDatabase, baseURL: String) throws -> (id: Int64, secret: String) {
        let secret = try #require(try database.value("SELECT webhooky.new_secret()"))
        let id = try database.addWebhook(
            url: baseURL + "/hooks/#customer.id#?apikey=k3y-s3cr3t&email=#customer.email#",
            body: ##"{"email": "#customer.email#", "credit": #customer.credit#, "tier": "#customer.tier.name#"}"##,
            headers: ##"{"Authorization": "Bearer #account.eshopId#-t0ken", "X-Shop": "#account.eshopId#"}"##,
            secret: secret, name: "Mailer")
        return (id, secret)
    }

    /// A printed request split into its parts.
    struct Printed {
        var requestLine: String
        var headers: [(name: String, value: String)]
        var body: String?

        init(_ text: String) {
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if lines.last == "" { lines.removeLast() }
            requestLine = lines.first ?? ""
            let blank = lines.firstIndex(of: "") ?? lines.endIndex
            headers = lines[1..<blank].map { line in
                let colon = line.firstIndex(of: ":") ?? line.endIndex
                return (String(line[..<colon]), String(line[line.index(after: min(colon, line.index(before: line.endIndex)))...]).trimmingCharacters(in: .whitespaces))
            }
            body = blank < lines.endIndex ? lines[(blank + 1)...].joined(separator: "\n") : nil
        }

        func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    }

    @Test("preview points at a variable the payload lacks and at a URL fragment, which the receiver never gets")
    func previewNotesMisspeltVariablesAndFragments() throws {
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver()
        let webhook = try database.addWebhook(url: receiver.baseURL + "/typo?id=#customer.id", body: ##"{"email": "#customer.emial#"}"##)
        let outcome = try database.run(["preview", String(webhook)])
        #expect(outcome.status == 0, "\(outcome.errors)")
        #expect(outcome.output.hasPrefix("POST \(receiver.baseURL)/typo?id=#customer.id\n"))
        #expect(outcome.errors.contains(
            "webhooky: note: #customer.emial# is not in the sample of customer.credit_changed: it renders as the empty string (a misspelt name; did you mean #customer.email#? webhooky.variables('customer.credit_changed') lists the names)\n"))
        #expect(outcome.errors.contains(
            "webhooky: note: the URL's part from '#customer.id' on is a fragment, which HTTP never sends: the request goes out without it (a variable missing its closing '#'? write #name#, or a literal # as %23)\n"))
        #expect(!outcome.errors.contains("#customer.id#"), "a variable the sample has is not noted")

        // What the receiver gets, indeed: the path and query without the fragment.
        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        _ = try database.value("SELECT webhooky.send_test($1)", [String(webhook)])
        #expect(try #require(receiver.waitForRequests(1).first).target == "/typo?id=")
    }

    @Test("preview says when the worker would refuse the URL's host as it stands (an internal IP address, localhost) unless it runs with an allow-list; a name that must be resolved gets no such note")
    func previewNotesInternalHosts() throws {
        let database = try AdminDatabase()
        let expected = [
            "http://127.0.0.1:9/orders": "refused to connect to 127.0.0.1 (loopback address)",
            "http://[::ffff:10.1.2.3]/orders": "refused to connect to ::ffff:10.1.2.3 (IPv4-mapped form of a private address (RFC 1918))",
            "http://LOCALHOST:8080/orders": "refused to connect to localhost (it resolves to a loopback address)",
        ]
        for (url, refusal) in expected {
            let outcome = try database.run(["preview", String(try database.addWebhook(url: url))])
            #expect(outcome.status == 0, "\(outcome.errors)")
            #expect(outcome.errors.contains("webhooky: note: a worker ends this delivery dead unless it runs with an allow-list for the address: \(refusal): "
                + "private and internal networks are not allowed; allow them with an allow-list (webhooky run --allow-network CIDR)\n"), "\(url): \(outcome.errors)")
        }
        for url in ["https://erp.example.com/orders", "http://93.184.215.14/orders"] {
            let outcome = try database.run(["preview", String(try database.addWebhook(url: url))])
            #expect(!outcome.errors.contains("allow-list"), "\(url): \(outcome.errors)")
        }
    }

    @Test("a variable whose value is JSON null is said to be null (it renders as the empty string), not missing, and gets no did-you-mean")
    func previewNotesNullValues() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example/x", body: ##"{"amount": #order.total#, "id": #order.id#}"##)
        let outcome = try database.run(["preview", String(webhook), "--payload", ##"{"order": {"id": 5, "total": null}}"##])
        #expect(outcome.status == 0, "\(outcome.errors)")
        #expect(outcome.output.hasSuffix(##"{"amount": "", "id": 5}"## + "\n"), "\(outcome.output)")
        #expect(outcome.errors.contains(
            ##"webhooky: note: #order.total# is null in the given payload: it renders as the empty string ("" where it stands alone as a JSON value)"## + "\n"),
            "\(outcome.errors)")
        #expect(!outcome.errors.contains("is not in"), "\(outcome.errors)")
    }

    @Test("preview notes a number or boolean whose placeholder stands alone in quotes: it goes out as a JSON string (the seed's \"credit\": \"#customer.credit#\" does so); not for text around the placeholder, a placeholder without quotes, or a string value; once per variable")
    func previewNotesQuotedNumbers() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example/x", body: ##"""
            {"credit": "#customer.credit#", "vip": "#customer.vip#", "label": "Credit #customer.credit#", "raw": #customer.credit#, "email": "#customer.email#", "both": "#customer.credit##customer.vip#", "again": "#customer.credit#"}
            """##)
        let outcome = try database.run(["preview", String(webhook), "--payload", ##"{"customer": {"credit": 12.50, "vip": true, "email": "a@b.c"}}"##])
        #expect(outcome.status == 0, "\(outcome.errors)")
        #expect(outcome.output.hasSuffix(##"{"credit": "12.50", "vip": "true", "label": "Credit 12.50", "raw": 12.50, "email": "a@b.c", "both": "12.50true", "again": "12.50"}"## + "\n"),
                "\(outcome.output)")
        let notes = outcome.errors.split(separator: "\n").filter { $0.contains("stands alone in quotes") }
        #expect(notes == [
            ##"webhooky: note: #customer.credit# stands alone in quotes in the body, so the number 12.50 goes out as a JSON string ("12.50"); without the quotes around it, it goes out as a JSON number"##,
            ##"webhooky: note: #customer.vip# stands alone in quotes in the body, so the boolean true goes out as a JSON string ("true"); without the quotes around it, it goes out as a JSON boolean"##,
        ], "\(outcome.errors)")
    }

    @Test("preview points at a '#name' without its closing '#' in a body string or a header value, which goes out as written; a placeholder, '#fff' and 'issue #12' get no such note")
    func previewNotesUnclosedVariables() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example/x",
                                              body: ##"{"id": "#customer.id", "email": "#customer.email#", "color": "#fff", "issue": "issue #12"}"##,
                                              headers: ##"{"X-Customer": "#customer.email", "X-Shop": "#account.eshopId#"}"##)
        let outcome = try database.run(["preview", String(webhook)])
        #expect(outcome.status == 0, "\(outcome.errors)")
        #expect(outcome.output.contains(##"{"id": "#customer.id", "email": "jan.novak@example.cz", "color": "#fff""##), "sent as written: \(outcome.output)")
        #expect(outcome.errors.contains(
            "webhooky: note: '#customer.id' in the body has no closing '#', so it is sent as written, not as a value (a variable missing its closing '#'? write #customer.id#)\n"))
        #expect(outcome.errors.contains(
            "webhooky: note: '#customer.email' in header \"X-Customer\" has no closing '#', so it is sent as written, not as a value (a variable missing its closing '#'? write #customer.email#)\n"))
        #expect(outcome.errors.components(separatedBy: "has no closing '#'").count == 3, "no note for #fff, #12 or a placeholder: \(outcome.errors)")

        let closed = try database.addWebhook(url: "https://erp.example/x",
                                             body: ##"{"id": "#customer.id#", "color": "#fff", "issue": "issue #12"}"##,
                                             headers: ##"{"X-Shop": "#account.eshopId#"}"##)
        let clean = try database.run(["preview", String(closed)])
        #expect(clean.status == 0, "\(clean.errors)")
        #expect(!clean.errors.contains("no closing '#'"), "\(clean.errors)")
    }

    @Test("preview's and doctor's notes on a '#name' without its closing '#' quote no text of a secret header's value (preview masks it): only a name the payload has")
    func unclosedNoteKeepsSecretHeadersMasked() throws {
        let database = try AdminDatabase()
        // A literal API key that holds '#' and reads as a dotted name, and an unclosed variable
        // in a secret header.
        let webhook = try database.addWebhook(url: "https://erp.example/x", body: ##"{"id": "#customer.id#"}"##,
                                              headers: ##"{"X-Api-Key": "live#k9.Zq3Lx", "Authorization": "Bearer #customer.email"}"##)
        let outcome = try database.run(["preview", String(webhook)])
        #expect(outcome.status == 0, "\(outcome.errors)")
        #expect(!(outcome.output + outcome.errors).contains("k9.Zq3Lx"), "the key's text: \(outcome.output)\(outcome.errors)")
        #expect(outcome.errors.contains(
            "webhooky: note: header \"X-Api-Key\" has a '#name' without its closing '#' (not quoted: the header's value is secret), so it is sent as written, not as a value (a variable missing its closing '#'? write #name#)\n"),
                "\(outcome.errors)")
        #expect(outcome.errors.contains(
            "webhooky: note: '#customer.email' in header \"Authorization\" has no closing '#', so it is sent as written, not as a value (a variable missing its closing '#'? write #customer.email#)\n"),
                "a name the payload has is no secret: \(outcome.errors)")

        let doctor = try database.run(["doctor"])
        #expect(!doctor.output.contains("k9.Zq3Lx"), "\(doctor.output)")
        #expect(doctor.output.contains("header \"X-Api-Key\" has a '#name' without its closing '#'"), "\(doctor.output)")
    }

    @Test("preview prints exactly the request the worker sends for the same webhook and payload")
    func previewIsWhatTheWorkerSends() throws {
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver()
        let (webhook, secret) = try PreviewTests.addSecretiveWebhook(database, baseURL: receiver.baseURL)

        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        _ = try database.value("SELECT webhooky.send_test($1)", [String(webhook)])  // the sample payload
        let received = try #require(receiver.waitForRequests(1).first)
        let event = try #require(try database.value("SELECT max(id) FROM webhooky.events"))

        // The test's own event: a test's request, marked as such (webhooky-test: true), as the worker sent it.
        let outcome = try database.run(["preview", String(webhook), "--event", event, "--unmask"])
        #expect(outcome.status == 0, "\(outcome.errors)")
        let preview = Printed(outcome.output)
        #expect(preview.header("webhooky-test") == "true")
        let sample = try database.run(["preview", String(webhook), "--unmask"])
        #expect(Printed(sample.output).headers.map(\.name) == preview.headers.map(\.name).filter { $0 != "webhooky-test" },
                "the sample's preview shows a real event's request, unmarked")

        #expect(preview.requestLine == "\(received.method) \(receiver.baseURL)\(received.target)")
        #expect(preview.requestLine == "POST \(receiver.baseURL)/hooks/1001?apikey=k3y-s3cr3t&email=jan.novak%40example.cz")
        #expect(preview.body == received.bodyText)
        // libcurl adds the transport's own headers; everything else must be the same, in order.
        let sent = received.headers.filter { !["host", "accept", "content-length"].contains($0.name.lowercased()) }
        #expect(preview.headers.map(\.name) == sent.map(\.name))
        let standard: Set<String> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        #expect(preview.headers.filter { !standard.contains($0.name) }.map(\.value) == sent.filter { !standard.contains($0.name) }.map(\.value))
        #expect(preview.header("Authorization") == "Bearer eshop-42-t0ken")
        #expect(preview.header("webhook-id") == "msg_preview")

        // The signature is real: a receiver with the secret accepts it.
        let signingSecret = try #require(SigningSecret(secret))
        #expect(WebhookSignature.verify(id: "msg_preview", timestamp: try #require(preview.header("webhook-timestamp")),
                                        body: Array((preview.body ?? "").utf8), header: try #require(preview.header("webhook-signature")),
                                        secret: signingSecret))
        #expect(!outcome.output.contains(secret) && !outcome.output.contains(String(secret.dropFirst(6))), "the signing secret is never printed")
    }

    @Test("a webhook's own User-Agent replaces Webhooky's: preview shows the one the worker sends")
    func previewShowsTheWebhooksOwnUserAgent() throws {
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver()
        let webhook = try database.addWebhook(url: receiver.baseURL + "/ua", headers: #"{"user-agent": "ShopBot/2"}"#)

        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        _ = try database.value("SELECT webhooky.send_test($1)", [String(webhook)])
        let received = try #require(receiver.waitForRequests(1).first)

        let event = try #require(try database.value("SELECT max(id) FROM webhooky.events"))
        let outcome = try database.run(["preview", String(webhook), "--event", event])
        #expect(outcome.status == 0, "\(outcome.errors)")
        let preview = Printed(outcome.output)

        let sent = received.headers.filter { !["host", "accept", "content-length"].contains($0.name.lowercased()) }
        #expect(sent.filter { $0.name.lowercased() == "user-agent" }.map(\.value) == ["ShopBot/2"])
        #expect(preview.headers.filter { $0.name.lowercased() == "user-agent" }.map(\.value) == ["ShopBot/2"], "\(outcome.output)")
        #expect(preview.headers.map(\.name) == sent.map(\.name))
    }

    @Test("a header value that renders blank (spaces, a variable the payload lacks) goes out empty, and preview prints it so: it printed the spaces")
    func previewPrintsABlankHeaderAsSent() throws {
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver()
        let webhook = try database.addWebhook(url: receiver.baseURL + "/blank",
                                              headers: #"{"X-Blank": "  ", "X-Missing": " #customer.nickname# ", "X-Kept": " a "}"#)

        let outcome = try database.run(["preview", String(webhook)])
        #expect(outcome.status == 0, "\(outcome.errors)")
        let lines = outcome.output.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.contains("X-Blank:"), "\(outcome.output)")
        #expect(lines.contains("X-Missing:"), "\(outcome.output)")
        #expect(lines.contains("X-Kept:  a "), "a value with text is printed as it is, spaces and all")

        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        _ = try database.value("SELECT webhooky.send_test($1)", [String(webhook)])
        let received = try #require(receiver.waitForRequests(1).first)
        let sent = Dictionary(uniqueKeysWithValues: received.headers.filter { $0.name.hasPrefix("X-") }.map { ($0.name, $0.value) })
        #expect(sent == ["X-Blank": "", "X-Missing": "", "X-Kept": "a "])
    }

    @Test("while a rotated secret's overlap lasts, preview signs with both secrets, as the worker does: it showed the new secret's signature alone")
    func previewSignsWithBothSecretsDuringTheOverlap() throws {
        let database = try AdminDatabase()
        let (webhook, old) = try PreviewTests.addSecretiveWebhook(database, baseURL: "https://erp.example")
        let new = try #require(try database.value("SELECT webhooky.rotate_secret($1, interval '1 hour')", [String(webhook)]))
        let outcome = try database.run(["preview", String(webhook)])
        #expect(outcome.status == 0, "\(outcome.errors)")
        let preview = Printed(outcome.output)
        let header = try #require(preview.header("webhook-signature"))
        let signatures = header.split(separator: " ").map(String.init)
        #expect(signatures.count == 2, "\(header)")
        let timestamp = try #require(preview.header("webhook-timestamp"))
        // The new secret's signature first, then the old one's; each verifies with its own secret alone.
        for (signature, secret) in zip(signatures, [new, old]) {
            #expect(WebhookSignature.verify(id: "msg_preview", timestamp: timestamp, body: Array((preview.body ?? "").utf8),
                                            header: signature, secret: try #require(SigningSecret(secret))))
        }
        #expect(!outcome.output.contains(String(old.dropFirst(6))) && !outcome.output.contains(String(new.dropFirst(6))))
    }

    @Test("secrets are masked by default and shown with --unmask; the signing secret never is")
    func masking() throws {
        let database = try AdminDatabase()
        let (webhook, secret) = try PreviewTests.addSecretiveWebhook(database, baseURL: "https://mailer.example.com")

        let masked = try database.run(["preview", String(webhook)])
        #expect(masked.status == 0, "\(masked.errors)")
        let printed = Printed(masked.output)
        #expect(printed.requestLine == "POST https://mailer.example.com/hooks/1001?apikey=***&email=jan.novak%40example.cz")
        #expect(printed.header("Authorization") == "Bearer ***")
        #expect(printed.header("X-Shop") == "eshop-42")
        #expect(!masked.output.contains("k3y-s3cr3t") && !masked.output.contains("t0ken"))

        let unmasked = try database.run(["preview", String(webhook), "--unmask"])
        #expect(unmasked.output.contains("apikey=k3y-s3cr3t") && unmasked.output.contains("Authorization: Bearer eshop-42-t0ken"))
        for output in [masked.output + masked.errors, unmasked.output + unmasked.errors] {
            #expect(!output.contains(secret) && !output.contains(String(secret.dropFirst(6))) && !output.contains("whsec_"))
        }
    }

    @Test("the payload: a recorded event's, or given JSON (read as jsonb reads it), numbers kept exact; a GET has no body")
    func payloads() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/sync?id=#customer.id#&credit=#customer.credit#", name: "ERP")
        let event = try #require(try database.value("""
            INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out)
            VALUES ('customer.credit_changed', '{"customer": {"id": 9007199254740993, "credit": 12345678901234.56}}', '{}', true) RETURNING id
            """))

        let fromEvent = try database.run(["preview", String(webhook), "--event", event])
        #expect(fromEvent.status == 0, "\(fromEvent.errors)")
        #expect(fromEvent.output == """
            GET https://erp.example.com/sync?id=9007199254740993&credit=12345678901234.56
            User-Agent: Webhooky/1
            webhook-id: msg_preview
            webhook-timestamp: \(Printed(fromEvent.output).header("webhook-timestamp") ?? "?")

            """)

        let given = try database.run(["preview", String(webhook), "--payload", #"{"customer": {"id": 1e2, "credit": 0.10}}"#])
        #expect(given.status == 0, "\(given.errors)")
        #expect(Printed(given.output).requestLine == "GET https://erp.example.com/sync?id=100&credit=0.10", "as the worker would read it from jsonb")

        let tier = try database.run(["preview", String(webhook), "--event", event, "--unmask"])
        #expect(tier.status == 0)
        try database.connection.execute("UPDATE webhooky.webhooks SET enabled = false")
        let disabled = try database.run(["preview", String(webhook)])
        #expect(disabled.status == 0)
        #expect(disabled.errors.contains("webhook \(webhook) \"ERP\" is disabled: nothing is sent until it is enabled"))
    }

    @Test("a webhook's name (which a tenant writes) and an account reach preview's notes and errors with their control characters as ?: preview printed them raw, so a name could clear the admin's screen or set its clipboard (OSC 52)")
    func namesSendNoEscapeSequences() throws {
        let database = try AdminDatabase()
        let name = "ERP\u{1B}]52;c;ZWNobyBwd25lZA==\u{07}\u{1B}[2J"
        let shown = "ERP?]52;c;ZWNobyBwd25lZA==??[2J"
        let webhook = try database.addWebhook(url: "https://erp.example.com/x", headers: ##"{"X-Tier": "#customer.tier.name#"}"##,
                                              enabled: false, name: name)
        try database.connection.query("UPDATE webhooky.webhooks SET account_id = $1 WHERE id = $2", ["shop\u{1B}[8m", String(webhook)])
        let event = try #require(try database.value("""
            INSERT INTO webhooky.events (event, account_id, payload, webhook_ids, fanned_out)
            VALUES ('customer.credit_changed', $1, '{"customer": {"id": 1}}', '{}', true) RETURNING id
            """, ["other\u{9B}2J"]))

        let disabled = try database.run(["preview", String(webhook), "--event", event])
        #expect(disabled.status == 0, "\(disabled.errors)")
        #expect(disabled.errors.contains("webhooky: note: webhook \(webhook) \"\(shown)\" is disabled: nothing is sent until it is enabled"), "\(disabled.errors)")
        #expect(disabled.errors.contains(
            "webhooky: note: event \(event) belongs to account \"other?2J\", but webhook \(webhook) \"\(shown)\" fires only for account \"shop?[8m\"\n"), "\(disabled.errors)")
        let refused = try database.run(["preview", String(webhook), "--payload", #"{"customer": {"tier": {"name": "Gold\nX-Evil: 1"}}}"#])
        #expect(refused.status == 1)
        #expect(refused.errors.contains("webhooky: error: webhook \(webhook) \"\(shown)\" cannot render a request for the given payload: header \"X-Tier\""), "\(refused.errors)")
        for outcome in [disabled, refused] {
            #expect(!outcome.errors.contains("\u{1B}") && !outcome.errors.contains("\u{07}") && !outcome.errors.contains("\u{9B}"), "\(outcome.errors)")
        }
    }

    @Test("a payload's C1 control characters (an e-shop customer may type U+009B, which some terminals take for an escape sequence's start) reach preview's request as \\u escapes in the body and ? in a header, with a note saying they go out as they are")
    func payloadControlCharactersAreShownEscaped() throws {
        let database = try AdminDatabase()
        let inBody = try database.addWebhook(url: "https://erp.example.com/x", body: ##"{"name": "#customer.name#", "id": #customer.id#}"##)
        let body = try database.run(["preview", String(inBody), "--payload", #"{"customer": {"id": 7, "name": "Jan\u009b2J\u007f\u0085Novák"}}"#])
        #expect(body.status == 0, "\(body.errors)")
        #expect(body.output.hasSuffix(##"{"name": "Jan\u009b2J\u007f\u0085Novák", "id": 7}"## + "\n"), "\(body.output)")
        #expect(body.errors.contains("webhooky: note: the body holds control characters (U+007F to U+009F): the request below shows them as \\u escapes (the same JSON), and they go out as they are"),
                "\(body.errors)")
        #expect(!body.errors.contains("header value holds"), "\(body.errors)")
        // DEL is refused in a header value (as every C0 character); C1 characters go out.
        let inHeader = try database.addWebhook(url: "https://erp.example.com/x", headers: ##"{"X-Name": "#customer.name#"}"##)
        let header = try database.run(["preview", String(inHeader), "--payload", #"{"customer": {"id": 7, "name": "Jan\u009b2J\u0085\tNovák"}}"#])
        #expect(header.status == 0, "\(header.errors)")
        #expect(header.output.contains("\nX-Name: Jan?2J?\tNovák\n"), "a tab goes out as it is, and is shown so: \(header.output)")
        #expect(header.errors.contains("webhooky: note: a header value holds control characters (U+0080 to U+009F): the request below shows them as ?, and they go out as they are"),
                "\(header.errors)")
        for shown in [body, header] {
            #expect(!shown.output.unicodeScalars.contains { (0x7F...0x9F).contains($0.value) }, "\(shown.output)")
        }
    }

    @Test("errors say what is wrong and what to do, with the documented exit status")
    func errors() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x", headers: ##"{"X-Tier": "#customer.tier.name#"}"##)
        try database.connection.execute("INSERT INTO webhooky.event_types (name, description) VALUES ('order.paid', 'An order was paid')")
        let unsampled = try database.addWebhook(event: "order.paid", url: "https://erp.example.com/orders")

        func check(_ arguments: [String], status: Int32, _ words: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let outcome = try database.run(arguments)
            #expect(outcome.status == status, "\(arguments): \(outcome.errors)", sourceLocation: sourceLocation)
            #expect(outcome.errors.contains(words), "\(arguments): \(outcome.errors)", sourceLocation: sourceLocation)
            #expect(outcome.output.isEmpty, sourceLocation: sourceLocation)
        }
        try check(["preview", "424242"], status: 1, "webhooky: error: there is no webhook 424242\nSELECT id, name, event, enabled FROM webhooky.webhooks")
        try check(["preview", String(webhook), "--event", "424242"], status: 1, "there is no event 424242")
        try check(["preview", String(unsampled)], status: 1, "the event type \"order.paid\" of webhook \(unsampled) \"test\" has no sample payload\nPreview with --payload")
        try check(["preview", String(webhook), "--payload", #"{"customer": }"#], status: 2, "the payload is not valid JSON: unexpected character")
        try check(["preview", String(webhook), "--payload", "[1, 2]"], status: 2, "the payload must be a JSON object")
        try check(["preview", String(webhook), "--payload", #"{"customer": {"tier": {"name": "Gold\nX-Evil: 1"}}}"#], status: 1,
                  "webhook \(webhook) \"test\" cannot render a request for the given payload: header \"X-Tier\": the value of #customer.tier.name# contains a line break")
        try check(["preview", "seven"], status: 2, "WEBHOOK_ID must be a positive whole number")
        try check(["preview"], status: 2, "which webhook? give its id")
        try check(["preview", String(webhook), "--event", "1", "--payload", "{}"], status: 2, "give --event or --payload, not both")
        try check(["preview", String(webhook), "--payload", "@/nonexistent/payload.json"], status: 2, "cannot read /nonexistent/payload.json")
        // A directory opens, and then cannot be read (it said "unexpected end of text").
        try check(["preview", String(webhook), "--payload", "@/etc"], status: 2, "--payload @/etc: cannot read /etc: Is a directory")
    }
}
