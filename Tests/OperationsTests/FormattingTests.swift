import Operations
import Templates
import Testing

@Suite struct FormattingTests {
    @Test(arguments: [
        (0.25, "250ms"), (12.9, "12s"), (60, "1m"), (303, "5m 3s"), (7500, "2h 5m"), (7200, "2h"), (273_600, "3d 4h"), (-5, "0ms"),
    ] as [(Double, String)])
    func durations(seconds: Double, text: String) {
        #expect(TextFormatting.duration(seconds: seconds) == text)
    }

    @Test func numbersAndMilliseconds() {
        #expect(TextFormatting.count(1_234_567) == "1,234,567")
        #expect(TextFormatting.count(999) == "999")
        #expect(TextFormatting.milliseconds(3.14) == "3.1 ms")
        #expect(TextFormatting.milliseconds(850) == "850 ms")
        #expect(TextFormatting.milliseconds(1234) == "1.2 s")
        #expect(TextFormatting.formatted(0.05, decimals: 1) == "0.1")
        #expect(TextFormatting.formatted(12.0, decimals: 1) == "12")
        #expect(TextFormatting.shortened("line one\nline two", to: 12) == "line one li…")
    }

    @Test("a name in a statement the doctor suggests is a literal psql takes as it is: a quote in it doubled")
    func sqlLiterals() {
        #expect(TextFormatting.sqlLiteral("customer.credit_changed") == "'customer.credit_changed'")
        #expect(TextFormatting.sqlLiteral("o'brien's.event") == "'o''brien''s.event'")
        #expect(TextFormatting.sqlLiteral("") == "''")
    }

    @Test("names people chose cannot send escape sequences to a terminal: control characters print as ?")
    func controlCharactersArePrintedSafely() {
        #expect(TextFormatting.shortened("clip\u{1B}]52;c;ZXZpbA==\u{07}", to: 40) == "clip?]52;c;ZXZpbA==?")
        #expect(TextFormatting.printable("a\u{1B}[2Kb\u{9B}c\u{7F}d\r\ne") == "a?[2Kb?c?d e")
        #expect(TextFormatting.printable("Gold \"Plus\" 🎉 čeština") == "Gold \"Plus\" 🎉 čeština")
        let report = Doctor.report([DoctorCheck(.warn, "webhooks", "webhook 1 \"x\u{1B}[2K\" fails", details: ["\u{1B}]0;title\u{07}"])], style: .plain)
        #expect(!report.contains("\u{1B}") && !report.contains("\u{07}"))
        #expect(report.contains("webhook 1 \"x?[2K\" fails"))
    }

    @Test("a table lines its columns up; numbers on the right")
    func table() {
        var table = TextTable(columns: [.init("ID", rightAligned: true), .init("NAME")])
        table.rows = [["7", "ERP"], ["12", "Mailer"]]
        #expect(table.render() == "ID  NAME\n 7  ERP\n12  Mailer")
    }

    @Test("columns are counted as a terminal shows them: CJK and emoji take two, marks none")
    func displayWidth() {
        #expect(TextFormatting.width("ERP") == 3)
        #expect(TextFormatting.width("日本語のショップ") == 16)
        #expect(TextFormatting.width("한국어") == 6)
        #expect(TextFormatting.width("Ｆｕｌｌ") == 8)
        #expect(TextFormatting.width("🎉 👍🏽 👨‍👩‍👧 ❤️") == 11)
        #expect(TextFormatting.width("e\u{301}čeština") == 8)
        #expect(TextFormatting.padded("日本", to: 6) == "日本  ")
        #expect(TextFormatting.padded("日本", to: 6, right: true) == "  日本")
        // Cut to the columns, not the characters: 9 columns of text and the ellipsis.
        #expect(TextFormatting.shortened("日本語のショップ連携", to: 10) == "日本語の…")
        #expect(TextFormatting.shortened("日本語", to: 6) == "日本語")
        var table = TextTable(columns: [.init("ID", rightAligned: true), .init("NAME"), .init("ENABLED")])
        table.rows = [["1", "ERP", "yes"], ["2", "日本語", "yes"], ["3", "🎉 hook", "no"]]
        #expect(table.render() == "ID  NAME     ENABLED\n 1  ERP      yes\n 2  日本語   yes\n 3  🎉 hook  no")
    }

    @Test("colour only when asked for")
    func colours() {
        #expect(TerminalStyle.plain.bad("dead") == "dead")
        #expect(TerminalStyle(colored: true).bad("dead") == "\u{1B}[31mdead\u{1B}[0m")
    }

    @Test("a tail line: time, webhook, delivery, attempt, status, duration, outcome, and the error when it adds something")
    func attemptLine() {
        let row = AttemptRow(id: 9, startedAt: 1_795_952_756.25, webhookID: 3, webhookName: "ERP credit sync", deliveryID: 42, attempt: 2,
                             status: 503, error: "HTTP 503", durationMilliseconds: 12.3, outcome: .retrying(inSeconds: 29.6), isTest: false)
        let line = row.line(style: .plain, today: 1_795_952_756)
        #expect(line.hasSuffix(#"webhook 3 "ERP credit sync"         delivery 42     attempt 2   503     12.3 ms  retry in 29s"#))
        var dead = row
        dead.outcome = .dead
        dead.status = nil
        dead.error = "Connection refused (gave up after 12 attempts)"
        #expect(dead.line(style: .plain, today: 1_795_952_756).hasSuffix("attempt 2   error   12.3 ms  dead  Connection refused (gave up after 12 attempts)"))
        dead.errorCode = "connect_failure"
        #expect(dead.line(style: .plain, today: 1_795_952_756).hasSuffix("attempt 2   error   12.3 ms  dead  [connect_failure] Connection refused (gave up after 12 attempts)"))
        #expect(row.line(style: .plain, today: 1_795_952_756 + 3 * 86_400).contains("-"), "another day: the date is shown")
    }
}

@Suite struct HealthTableTests {
    @Test("status: one aligned row per webhook; failures in a row with how long they have lasted; the last outcome shortened, a failure without a status with its code; why a webhook was disabled")
    func rows() {
        let rows = [
            HealthRow(webhookID: 1, name: "ERP credit sync", event: "customer.credit_changed", enabled: true, succeeded24h: 1234,
                      lastStatus: 200, p50Milliseconds: 12.34, p95Milliseconds: 40),
            HealthRow(webhookID: 12, name: "Mailer", event: "customer.tier_changed", enabled: false, disabledReason: "the endpoint answered 410 Gone",
                      pending: 3, oldestPendingSeconds: 400, dead24h: 2, consecutiveFailures: 11, failingSeconds: 190_000, lastStatus: 410,
                      lastError: "HTTP 410 (gave up after 12 attempts)"),
            HealthRow(webhookID: 13, name: "CRM", event: "customer.credit_changed", enabled: true, pending: 1, oldestPendingSeconds: 5,
                      consecutiveFailures: 1_204, failingSeconds: 64, lastError: "Connection timed out after 5001 milliseconds", lastErrorCode: "timeout"),
        ]
        let text = HealthTable.text(rows, style: .plain)
        #expect(text == """
            ID  NAME             ENABLED  PENDING  OLDEST  OK 24H  DEAD 24H            FAILS  LAST                                                    P50 MS  P95 MS  DISABLED BECAUSE
             1  ERP credit sync  yes            0       -   1,234         0                0  200                                                       12.3      40
            12  Mailer           no             3  6m 40s       0         2     11 for 2d 4h  410 (gave up after 12 attempts)                              -       -  the endpoint answered 410 Gone
            13  CRM              yes            1      5s       0         0  1,204 for 1m 4s  [timeout] Connection timed out after 5001 milliseconds       -       -
            """)
        #expect(HealthTable.text([], style: .plain).hasPrefix("no webhooks yet"))
    }

    @Test("status: a connection error keeps its host and port in LAST; libcurl's words that the code already says are left out")
    func connectionErrorsKeepTheirHost() {
        /// The LAST column of a one-row table, cut out by the header's columns.
        func last(_ error: String, _ code: String?) -> String {
            let text = HealthTable.text([HealthRow(webhookID: 1, name: "n", event: "e", enabled: true, lastError: error, lastErrorCode: code)],
                                        style: .plain)
            let lines = text.split(separator: "\n").map(Array.init)
            let header = String(lines[0])
            let start = header.distance(from: header.startIndex, to: header.firstRange(of: "LAST")!.lowerBound)
            let end = header.distance(from: header.startIndex, to: header.firstRange(of: "P50 MS")!.lowerBound)
            return String(lines[1][start..<end]).split(separator: "  ").first.map(String.init) ?? ""
        }
        #expect(last("Failed to connect to hooks.shop.example.com port 443 after 3 ms: Couldn't connect to server", "connect_failure")
                == "[connect_failure] hooks.shop.example.com port 443")
        #expect(last("Failed to connect to 10.1.2.3 port 8443 after 5001 ms: Timeout was reached", "timeout")
                == "[timeout] 10.1.2.3 port 8443: Timeout was reached")
        #expect(last("Could not resolve host: crm.internal.example", "dns_failure") == "[dns_failure] crm.internal.example")
        // A host too long for the column is cut in its middle: its port (and reason) stay.
        #expect(last("Failed to connect to hooks.example-shop-of-a-rather-long-name.com port 8443 after 3 ms: Couldn't connect to server", "connect_failure")
                == "[connect_failure] hooks.example-…long-name.com port 8443")
        #expect(last("Failed to connect to hooks.example-shop-of-a-rather-long-name.com port 8443 after 5001 ms: Timeout was reached", "timeout")
                == "[timeout] hooks.e…ame.com port 8443: Timeout was reached")
        // Other errors as recorded, shortened to 56 columns.
        #expect(last("Connection timed out after 5001 milliseconds", "timeout") == "[timeout] Connection timed out after 5001 milliseconds")
        #expect(last("Operation timed out after 10000 milliseconds with 0 out of 0 bytes received", "timeout")
                == "[timeout] Operation timed out after 10000 milliseconds …")
        #expect(last("Failed to connect to nowhere", "connect_failure") == "[connect_failure] Failed to connect to nowhere")
        // No code (an attempt recorded before migration 0054): libcurl's words are kept.
        #expect(last("Failed to connect to crm.example.com port 443 after 3 ms: Couldn't connect to server", nil)
                == "Failed to connect to crm.example.com port 443 after 3 m…")
    }
}

@Suite struct SuggestionTests {
    @Test("the closest known name within two edits, fewer than half the letters; swaps of neighbours count as one edit")
    func closestName() {
        let options = ["dry-run", "database-url", "webhook", "since", "allow-network"]
        #expect(Suggestion.closest(to: "dryrun", among: options) == "dry-run")
        #expect(Suggestion.closest(to: "webhok", among: options) == "webhook")
        #expect(Suggestion.closest(to: "snice", among: options) == "since")
        #expect(Suggestion.closest(to: "databse-url", among: options) == "database-url")
        #expect(Suggestion.closest(to: "verbose", among: options) == nil)
        #expect(Suggestion.closest(to: "ab", among: ["ac"]) == nil)          // 1 edit of 2 letters: not a guess
        #expect(Suggestion.closest(to: "abc", among: ["abd"]) == "abd")
        #expect(Suggestion.closest(to: "abc", among: ["xyz"]) == nil)
        #expect(Suggestion.closest(to: "webhook", among: options) == nil)    // a known name is no typo of itself
        #expect(Suggestion.closest(to: "customer.emial", among: ["customer.email", "customer.id", "customer"]) == "customer.email")
        // Equally close: the first in sorted order.
        #expect(Suggestion.closest(to: "cat", among: ["hat", "bat"]) == "bat")
    }

    @Test("a payload's variable names: every member of nested objects by its dotted path, not into arrays, not null ones, not keys no variable can spell")
    func payloadVariableNames() throws {
        let payload = try JSONParser.parse(#"{"customer": {"id": 7, "email": "a@b.c", "tags": [{"x": 1}], "gone": null, "bad key": 1}, "eshop": "e1"}"#)
        #expect(payload.variableNames == ["customer", "customer.id", "customer.email", "customer.tags", "eshop"])
    }
}
