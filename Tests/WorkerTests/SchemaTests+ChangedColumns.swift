import Postgres
import Schema
import TestSupport
import Testing

/// The checks of a saved webhook read, on UPDATE, only the columns the statement changes
/// (migration 0058): a row that today's checks would refuse can still be paused and renamed.
extension SchemaTests {
    /// The refusal `sql` met, or nil (and a recorded issue) when it was accepted.
    static func refusal(_ connection: Connection, _ sql: String, _ parameters: [String?]) -> PostgresError? {
        do {
            try connection.query(sql, parameters)
            Issue.record("accepted: \(sql) \(parameters)")
            return nil
        } catch {
            #expect(error.sqlState == "23514", "\(error)")
            return error
        }
    }

    @Test("a webhook saved at schema version 1 that today's checks refuse (a body nested deeper than 512 levels, refused since 0002; a URL https://user@/x, refused since 0034) can be paused and renamed after the upgrade; changing its body or URL to another such value is refused with the INSERT's message, and an INSERT of the same row is refused")
    func aWebhookSavedUnderOlderRulesCanBePaused() throws {
        let connection = try TestCluster.newDatabase(atSchemaVersion: 1)
        let deep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        let deeper = String(repeating: "[", count: 600) + "#customer.id#" + String(repeating: "]", count: 600)
        let insert = "INSERT INTO webhooky.webhooks (name, event, url, body) VALUES ('legacy', 'customer.credit_changed', $1, $2) RETURNING id"
        let id = try #require(try connection.query(insert, ["https://user@/x", deep]).scalar)
        try Migrator(connection: connection).migrate()
        let row = "SELECT name, enabled::text, url, body = $2, revision::text FROM webhooky.webhooks WHERE id = $1"
        let revision = try #require(try connection.query(row, [id, deep]).rows.first?[4])

        // Paused, renamed, and saved by a tool that writes back every column it read.
        try connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [id])
        try connection.query("UPDATE webhooky.webhooks SET name = 'legacy, paused' WHERE id = $1", [id])
        try connection.query("UPDATE webhooky.webhooks SET url = url, body = body, headers = headers WHERE id = $1", [id])
        #expect(try connection.query(row, [id, deep]).rows == [["legacy, paused", "false", "https://user@/x", "t", String(Int(revision)! + 3)]])

        let body = Self.refusal(connection, "UPDATE webhooky.webhooks SET body = $2 WHERE id = $1", [id, deeper])
        #expect(body?.message == #"webhook \#(id) "legacy, paused": body is nested deeper than 512 levels"#, "\(String(describing: body))")
        #expect(body?.hint == "Flatten the body; the worker renders at most 512 levels.")
        let url = Self.refusal(connection, "UPDATE webhooky.webhooks SET url = 'https://other@/y', enabled = true WHERE id = $1", [id])
        #expect(url?.message == #"webhook \#(id) "legacy, paused": URL has no host"#, "\(String(describing: url))")
        #expect(try connection.query(row, [id, deep]).rows == [["legacy, paused", "false", "https://user@/x", "t", String(Int(revision)! + 3)]])

        let again = Self.refusal(connection, insert, ["https://user@/x", deep])
        #expect(again?.message == #"the new webhook "legacy": body is nested deeper than 512 levels"#, "\(String(describing: again))")
        let hostless = Self.refusal(connection, insert, ["https://user@/x", nil])
        #expect(hostless?.message == #"the new webhook "legacy": URL has no host"#, "\(String(describing: hostless))")
        #expect(try connection.query("SELECT count(*) FROM webhooky.webhooks").scalar == "1")

        // Given a body and a URL that pass, it is an ordinary webhook again.
        try connection.query("UPDATE webhooky.webhooks SET url = 'https://erp.example/x', body = '[#customer.id#]', enabled = true WHERE id = $1", [id])
    }

    @Test("a row that reached the table without a check (a data-only restore with its triggers disabled) can be paused and renamed, also with SET col = col; a change of the column the check reads is refused with the message an INSERT gets, and so is an INSERT of the row; for each check that reads a column of its own", arguments: [
        ("check_webhook", "body", #"{"c": #customer.credit}"#,
         "body is not valid JSON at line 1, character 7: found a word that is not JSON (text takes double quotes); '#customer.credit' looks like a variable missing its closing '#': write #customer.credit#",
         #"{"t": #customer.tier.name}"#,
         "body is not valid JSON at line 1, character 7: found a word that is not JSON (text takes double quotes); '#customer.tier.name' looks like a variable missing its closing '#': write #customer.tier.name#"),
        ("check_webhook", "url", "ftp://erp.example/x", "URL must start with http:// or https://",
         "https://erp.example/a b", #"URL contains a space, a control or non-ASCII character, or one of " < > \ ^ ` { | }"#),
        ("check_webhook", "headers", #"{"webhook-id": "x"}"#, #"header "webhook-id" is set by Webhooky or by HTTP itself and cannot be configured"#,
         #"{"X-A": "a\nb"}"#, #"header "X-A" contains a line break or control character"#),
        ("check_webhook", "secret", "whsec_short", #"secret must be "whsec_" followed by 24 to 64 bytes in base64"#,
         "whsec_abc", #"secret must be "whsec_" followed by 24 to 64 bytes in base64"#),
        ("check_webhook_url", "url", "https://user@/x", "URL has no host",
         "http://127.0.0.1:99999/x", "URL has a port that is not a number from 1 to 65535"),
        ("check_webhook_body_depth", "body", String(repeating: "[", count: 513) + String(repeating: "]", count: 513), "body is nested deeper than 512 levels",
         "{\"a\": " + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}", "body is nested deeper than 512 levels"),
        ("check_webhook_previous_secret", "previous_secret", "whsec_short", #"previous_secret must be "whsec_" followed by 24 to 64 bytes in base64"#,
         "whsec_abc", #"previous_secret must be "whsec_" followed by 24 to 64 bytes in base64"#),
    ] as [(String, String, String, String, String, String)])
    func checksReadOnlyTheColumnsAnUpdateChanges(trigger: String, column: String, saved: String, savedMessage: String, changed: String, changedMessage: String) throws {
        let connection = try TestCluster.newDatabase().connect()
        let cast = column == "headers" ? "::jsonb" : ""
        let url = column == "url" ? ("", "") : (", url", ", 'https://erp.example/x'")
        let insert = "INSERT INTO webhooky.webhooks (name, event\(url.0), \(column)) VALUES ('ERP', 'customer.credit_changed'\(url.1), $1\(cast)) RETURNING id"
        try connection.execute("ALTER TABLE webhooky.webhooks DISABLE TRIGGER \(trigger)")
        let id = try #require(try connection.query(insert, [saved]).scalar)
        try connection.execute("ALTER TABLE webhooky.webhooks ENABLE TRIGGER \(trigger)")

        try connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [id])
        try connection.query("UPDATE webhooky.webhooks SET name = 'ERP, paused', \(column) = \(column) WHERE id = $1", [id])
        let row = "SELECT name, enabled::text, \(column)::text FROM webhooky.webhooks WHERE id = $1"
        let stored = try #require(try connection.query(row, [id]).rows.first?[2])
        #expect(try connection.query(row, [id]).rows == [["ERP, paused", "false", stored]])
        #expect(try connection.query("SELECT \(column) = $2\(cast) FROM webhooky.webhooks WHERE id = $1", [id, saved]).scalar == "t", "kept as it was saved")

        let update = Self.refusal(connection, "UPDATE webhooky.webhooks SET \(column) = $2\(cast) WHERE id = $1", [id, changed])
        #expect(update?.message == #"webhook \#(id) "ERP, paused": \#(changedMessage)"#, "\(String(describing: update))")
        #expect(try connection.query(row, [id]).rows == [["ERP, paused", "false", stored]])
        let inserted = Self.refusal(connection, insert, [saved])
        #expect(inserted?.message == #"the new webhook "ERP": \#(savedMessage)"#, "\(String(describing: inserted))")
        let other = Self.refusal(connection, insert, [changed])
        #expect(other?.message == #"the new webhook "ERP": \#(changedMessage)"#, "\(String(describing: other))")
        #expect(try connection.query("SELECT count(*) FROM webhooky.webhooks").scalar == "1")
    }
}
