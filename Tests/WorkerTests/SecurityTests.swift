import Delivery
import Foundation
import HTTPClient
import LoopbackReceiver
import Postgres
import StandardWebhooks
import TestSupport
import Testing
import Worker
import Glibc

/// Tenants, limits on hostile input, and secret rotation.
@Suite(.timeLimit(.minutes(10))) struct SecurityTests {
    /// Two tenant login roles, one per e-shop, and an admin; returns connections as each.
    private func tenants(_ shop: Shop) throws -> (a: Connection, b: Connection, suffix: String) {
        let suffix = "\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        try shop.connection.execute("""
            CREATE ROLE tenant_a_\(suffix) LOGIN IN ROLE webhooky_tenant;
            CREATE ROLE tenant_b_\(suffix) LOGIN IN ROLE webhooky_tenant;
            INSERT INTO webhooky.tenants VALUES ('tenant_a_\(suffix)', 'shop-42'), ('tenant_b_\(suffix)', 'shop-7');
            """)
        func connect(_ role: String) throws -> Connection {
            try Connection(conninfo: shop.database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(role)_\(suffix)"))
        }
        return (try connect("tenant_a"), try connect("tenant_b"), suffix)
    }

    @Test("a tenant sees and edits only its own account's webhooks, events, deliveries and attempts")
    func tenantsAreIsolated() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let (a, b, _) = try tenants(shop)
        let mine = try #require(a.query("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-42', 'customer.credit_changed', $1) RETURNING id",
                                        [receiver.baseURL + "/a"]).scalar)
        let theirs = try #require(b.query("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-7', 'customer.credit_changed', $1) RETURNING id",
                                          [receiver.baseURL + "/b"]).scalar)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("1")                    // shop-42's customer
        try shop.setCredit("2", customer: "1")     // shop-7's customer
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "2" }

        #expect(try a.query("SELECT id FROM webhooky.webhooks").rows == [[mine]])
        #expect(try b.query("SELECT id FROM webhooky.webhooks").rows == [[theirs]])
        #expect(try a.query("SELECT count(*) FROM webhooky.events").scalar == "1")
        #expect(try a.query("SELECT webhook_id FROM webhooky.deliveries").rows == [[mine]])
        #expect(try a.query("SELECT webhook_id FROM webhooky.attempts").rows == [[mine]])
        #expect(try a.query("SELECT webhook_id FROM webhooky.health").rows == [[mine]])
        #expect(try a.query("UPDATE webhooky.webhooks SET url = 'https://evil.example/' WHERE id = $1", [theirs]).affectedRows == 0)
        // Tenants delete with webhooky.delete_webhook: DELETE on the table would let them LOCK it.
        #expect(throws: PostgresError.self) { try a.query("DELETE FROM webhooky.webhooks WHERE id = $1", [theirs]) }
        #expect(try shop.column("SELECT url FROM webhooky.webhooks WHERE id = $1", [theirs]) == [receiver.baseURL + "/b"])

        // Refused with a message that says what was wrong (row-level security would refuse it
        // with 'new row violates row-level security policy').
        do {
            try a.query("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-7', 'customer.credit_changed', 'https://x.example/')")
            Issue.record("a tenant created a webhook for another account")
        } catch {
            #expect(error.message == "a tenant of account 'shop-42' cannot create a webhook for account 'shop-7'")
            #expect(error.hint == "Leave account_id out (it becomes 'shop-42'), or ask an admin.")
            #expect(error.sqlState == "42501")
        }
        // Without an account, a tenant's webhook gets its own (NULL would mean every account).
        let unnamed = try #require(a.query("INSERT INTO webhooky.webhooks (event, url) VALUES ('customer.credit_changed', 'https://x.example/') RETURNING id").scalar)
        #expect(try shop.column("SELECT account_id FROM webhooky.webhooks WHERE id = $1", [unnamed]) == ["shop-42"])
        try a.query("SELECT webhooky.delete_webhook($1)", [unnamed])
        // A tenant's refused INSERT names the new webhook as an admin's does (the checks run with the tenant's rights).
        do {
            try a.query("INSERT INTO webhooky.webhooks (name, event, url) VALUES ('mine too', 'customer.credit_changed', 'ftp://x.example/')")
            Issue.record("a tenant saved an ftp:// URL")
        } catch {
            #expect(error.message == #"the new webhook "mine too": URL must start with http:// or https://"#, "\(error)")
        }
        for (account, named) in [("NULL", "every account (account_id NULL)"), ("'shop-7'", "account 'shop-7'")] {
            do {
                try a.query("UPDATE webhooky.webhooks SET account_id = \(account) WHERE id = $1", [mine])
                Issue.record("a tenant moved its webhook to \(named)")
            } catch {
                #expect(error.message == "webhook \(mine): a tenant of account 'shop-42' cannot move it to \(named)")
                #expect(error.sqlState == "42501")
            }
        }
        #expect(try shop.column("SELECT account_id FROM webhooky.webhooks WHERE id = $1", [mine]) == ["shop-42"])
        // Its own account, named, is no move: the row is saved.
        try a.query("UPDATE webhooky.webhooks SET account_id = 'shop-42', name = 'renamed' WHERE id = $1", [mine])
        #expect(try shop.column("SELECT name FROM webhooky.webhooks WHERE id = $1", [mine]) == ["renamed"])
        let theirDelivery = try #require(shop.column("SELECT id FROM webhooky.deliveries WHERE webhook_id = $1", [theirs]).first ?? nil)
        for (sql, message) in [
            ("SELECT webhooky.send_test(\(theirs))", "webhooky.send_test: there is no webhook \(theirs)"),
            ("SELECT webhooky.redeliver(\(theirDelivery))", "webhooky.redeliver: there is no delivery \(theirDelivery)"),
            ("SELECT webhooky.redeliver_webhook(\(theirs), now() - interval '1 day')", "webhooky.redeliver_webhook: there is no webhook \(theirs)"),
            ("SELECT webhooky.rotate_secret(\(theirs))", "webhooky.rotate_secret: there is no webhook \(theirs)"),
            ("SELECT webhooky.delete_webhook(\(theirs))", "webhooky.delete_webhook: there is no webhook \(theirs)"),
        ] {
            do {
                try a.query(sql)
                Issue.record("a tenant ran \(sql)")
            } catch {
                #expect(error.message == message)
            }
        }
        #expect(throws: PostgresError.self) { try a.query("SELECT * FROM webhooky.tenants") }
        // Its own: allowed.
        #expect(try a.query("SELECT webhooky.send_test($1) IS NOT NULL", [mine]).scalar == "t")
    }

    @Test("a tenant's role cannot widen its rights: not by SET ROLE webhooky_tenant, not by choosing ids or revisions, not by locks")
    func tenantsCannotEscalateOrStallOthers() throws {
        let shop = try Shop()
        let (a, b, suffix) = try tenants(shop)
        let mine = try #require(a.query("INSERT INTO webhooky.webhooks (account_id, event, url, secret) VALUES ('shop-42', 'customer.credit_changed', 'https://a.example/', webhooky.new_secret()) RETURNING id").scalar)
        let theirs = try #require(b.query("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-7', 'customer.credit_changed', 'https://b.example/') RETURNING id").scalar)

        // As the group role, a tenant has no account, and no admin's reach either.
        try b.execute("SET ROLE webhooky_tenant")
        for sql in ["SELECT webhooky.rotate_secret(\(mine))", "SELECT webhooky.send_test(\(mine))", "SELECT webhooky.redeliver_webhook(\(mine), now() - interval '1 day')",
                    "SELECT webhooky.delete_webhook(\(mine))"] {
            do {
                try b.query(sql)
                Issue.record("SET ROLE webhooky_tenant ran \(sql)")
            } catch {
                #expect(error.message == "role webhooky_tenant is a member of webhooky_tenant but has no account in webhooky.tenants", "\(sql): \(error.message)")
            }
        }
        try b.execute("RESET ROLE")

        // Ids and revisions are not the tenant's to choose.
        try shop.connection.query("DELETE FROM webhooky.webhooks WHERE id = $1", [mine])
        for sql in ["INSERT INTO webhooky.webhooks (id, account_id, event, url) OVERRIDING SYSTEM VALUE VALUES (\(mine), 'shop-7', 'customer.credit_changed', 'https://evil.example/')",
                    "INSERT INTO webhooky.webhooks (account_id, event, url, revision) VALUES ('shop-7', 'customer.credit_changed', 'https://evil.example/', 2147483647)",
                    "UPDATE webhooky.webhooks SET revision = 2147483647 WHERE id = \(theirs)"] {
            do {
                try b.query(sql)
                Issue.record("a tenant ran \(sql)")
            } catch {
                #expect(error.message == "permission denied for table webhooks", "\(sql): \(error.message)")
            }
        }

        // No lock that stalls the business transactions: LOCK TABLE needs rights tenants lack...
        do {
            try b.execute("BEGIN; LOCK TABLE webhooky.webhooks IN ACCESS EXCLUSIVE MODE")
            Issue.record("a tenant locked webhooky.webhooks")
        } catch {
            #expect(error.message == "permission denied for table webhooks")
        }
        try b.execute("ROLLBACK")
        // ...and the per-account insert lock cannot be taken by another account. It was an
        // advisory lock: its key was guessable (0006) and, salted, still readable in pg_locks
        // (0011); now it is a row that only lock_account locks, for the caller's own account.
        try b.execute("BEGIN")
        try b.query("SELECT webhooky.lock_account('shop-42')")
        // The keys of the advisory locks a's insert holds, read from pg_locks, b then holds.
        try a.execute("BEGIN")
        try a.query("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-42', 'customer.credit_changed', 'https://a.example/1')")
        let keys = try b.query("SELECT objid::bigint | (classid::bigint << 32) FROM pg_locks WHERE locktype = 'advisory'").rows.compactMap { $0[0] ?? nil }
        try a.execute("COMMIT")
        for key in keys { try b.query("SELECT pg_advisory_lock($1::bigint)", [key]) }
        do {
            try b.query("SELECT 1 FROM webhooky.account_locks FOR UPDATE")
            Issue.record("a tenant read the account locks")
        } catch {
            #expect(error.message == "permission denied for table account_locks")
        }
        try b.execute("ROLLBACK")
        try a.query("SET statement_timeout = '5s'")
        try b.execute("BEGIN")
        try b.query("SELECT webhooky.lock_account('shop-42')")
        #expect(throws: Never.self) {
            try a.query("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-42', 'customer.credit_changed', 'https://a.example/2')")
        }
        try b.execute("ROLLBACK")
        // Roles other than admins and tenants may not call it at all.
        try shop.connection.execute("CREATE ROLE emitter_\(suffix) LOGIN IN ROLE webhooky_emitter")
        let emitter = try Connection(conninfo: shop.database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=emitter_\(suffix)"))
        try emitter.query("SET statement_timeout = '5s'")
        do {
            try emitter.query("SELECT webhooky.lock_account('shop-42')")
            Issue.record("a role that is neither admin nor tenant took an account's lock")
        } catch {
            #expect(error.message == "permission denied for function lock_account")
        }

        // What a tenant may do: change its own webhooks' columns, delete them, and re-enable them.
        try b.query("UPDATE webhooky.webhooks SET enabled = false, name = 'paused' WHERE id = $1", [theirs])
        try b.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [theirs])
        try b.query("SELECT webhooky.delete_webhook($1)", [theirs])
        #expect(try shop.column("SELECT count(*) FROM webhooky.webhooks WHERE id = $1", [theirs]) == ["0"])
    }

    @Test("a tenant's open transaction that enables a webhook holds no lock that another account's webhooks or the worker's prune wait for: the note of when its event type was wanted again (0045) upserted the type's shared row of webhooky.event_pace with the owner's rights")
    func wantedAgainHoldsNoSharedLock() throws {
        let shop = try Shop()
        let (a, b, _) = try tenants(shop)
        // Old events of a type no enabled webhook wants now: the next prune deletes them and
        // adds them to webhooky.event_pace.
        try shop.connection.execute("""
            UPDATE webhooky.webhooks SET enabled = false WHERE event = 'customer.tier_changed';
            INSERT INTO webhooky.events (event, account_id, payload, fanned_out, created_at)
            SELECT 'customer.tier_changed', 'shop-42', '{}', true, now() - interval '40 days' + n * interval '1 minute' FROM generate_series(1, 5) n;
            """)
        // Tenant a makes the type wanted again, and keeps its transaction open.
        try a.execute("BEGIN")
        try a.query("INSERT INTO webhooky.webhooks (event, url) VALUES ('customer.tier_changed', 'https://a.example/')")
        defer { _ = try? a.execute("ROLLBACK") }
        // Neither another account's webhook for the same type nor the worker's prune waits for it.
        try b.query("SET lock_timeout = '2s'")
        #expect(throws: Never.self) {
            try b.query("INSERT INTO webhooky.webhooks (event, url) VALUES ('customer.tier_changed', 'https://b.example/')")
        }
        try shop.connection.query("SET lock_timeout = '2s'")
        #expect(throws: Never.self) { try shop.connection.query("SELECT * FROM webhooky.prune()") }
        try shop.connection.query("RESET lock_timeout")
        #expect(try shop.column("SELECT events::text FROM webhooky.event_pace WHERE event = 'customer.tier_changed'") == ["5"])
    }

    @Test("no role can fire the schema's owner-rights trigger functions from a table of its own (a temporary one) at another account's rows")
    func ownerRightsTriggerFunctionsStayOnWebhooks() throws {
        let shop = try Shop()
        let (a, b, _) = try tenants(shop)
        let mine = try #require(a.query("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-42', 'customer.credit_changed', 'https://a.example/') RETURNING id").scalar)
        try shop.setCredit("5")  // no worker: shop-42's event waits, and so does its delivery
        try shop.connection.execute("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id) SELECT id, \(mine) FROM webhooky.events;
            INSERT INTO webhooky.webhook_health (webhook_id, consecutive_failures) VALUES (\(mine), 3);
            """)
        // on_webhook_change runs with the owner's rights (0011) and takes the webhook from OLD:
        // a trigger on any table with an id column made it end another account's deliveries.
        try b.execute("CREATE TEMPORARY TABLE fake_webhooks (id bigint, enabled boolean, event text)")
        for function in ["on_webhook_change", "note_wanted_event"] {
            do {
                try b.execute("CREATE TRIGGER fake_\(function) AFTER INSERT OR UPDATE OR DELETE ON fake_webhooks FOR EACH ROW EXECUTE FUNCTION webhooky.\(function)()")
                Issue.record("a tenant created a trigger with webhooky.\(function)")
            } catch {
                #expect(error.message == "permission denied for function webhooky.\(function)")
            }
        }
        try b.execute("INSERT INTO fake_webhooks VALUES (\(mine), true, 'customer.credit_changed'); DELETE FROM fake_webhooks")
        #expect(try shop.connection.query("SELECT state, last_error FROM webhooky.deliveries").rows == [["pending", nil]])
        #expect(try shop.column("SELECT consecutive_failures::text FROM webhooky.webhook_health") == ["3"])
        // No owner-rights trigger function of the schema is left to PUBLIC.
        #expect(try shop.column("""
            SELECT p.proname FROM pg_proc p
             WHERE p.pronamespace = 'webhooky'::regnamespace AND p.prosecdef AND p.prorettype = 'trigger'::regtype
               AND has_function_privilege('public', p.oid, 'EXECUTE')
            """) == [])
        // The triggers on webhooky.webhooks still do their work for tenants and admins.
        try a.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [mine])
        try a.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [mine])
        #expect(try shop.column("SELECT consecutive_failures::text FROM webhooky.webhook_health") == ["0"])
        try a.query("SELECT webhooky.delete_webhook($1)", [mine])
        #expect(try shop.connection.query("SELECT state, last_error FROM webhooky.deliveries").rows == [["dead", "webhook deleted"]])
    }

    @Test("grant_roles gives each group role what webhooky.role_grants says, again after privileges were lost")
    func grantRolesGivesWhatTheRolesNeed() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        let checks = """
            SELECT has_table_privilege('webhooky_worker', 'webhooky.deliveries', 'UPDATE'),
                   has_function_privilege('webhooky_worker', 'webhooky.prune(interval, interval, integer)', 'EXECUTE'),
                   has_table_privilege('webhooky_admin', 'webhooky.webhooks', 'DELETE'),
                   has_table_privilege('webhooky_admin', 'webhooky.account_locks', 'SELECT'),
                   has_function_privilege('webhooky_emitter', 'webhooky.emit(text, jsonb, text)', 'EXECUTE'),
                   has_table_privilege('webhooky_tenant', 'webhooky.migrations', 'SELECT'),
                   has_column_privilege('webhooky_tenant', 'webhooky.webhooks', 'url', 'INSERT'),
                   has_column_privilege('webhooky_tenant', 'webhooky.webhooks', 'id', 'INSERT'),
                   has_table_privilege('webhooky_tenant', 'webhooky.webhooks', 'DELETE'),
                   has_function_privilege('webhooky_tenant', 'webhooky.delete_webhook(bigint)', 'EXECUTE')
            """
        let expected: [[String?]] = [["t", "t", "t", "f", "t", "t", "t", "f", "f", "t"]]
        #expect(try connection.query(checks).rows == expected)
        try connection.execute("""
            REVOKE ALL ON ALL TABLES IN SCHEMA webhooky FROM webhooky_worker, webhooky_admin, webhooky_emitter, webhooky_tenant;
            REVOKE ALL ON ALL FUNCTIONS IN SCHEMA webhooky FROM webhooky_worker, webhooky_admin, webhooky_emitter, webhooky_tenant;
            """)
        #expect(try connection.query(checks).rows == [["f", "f", "f", "f", "f", "f", "f", "f", "f", "f"]])
        try connection.execute("SELECT webhooky.grant_roles(); SELECT webhooky.grant_roles()")  // safe to run again
        #expect(try connection.query(checks).rows == expected)
    }

    @Test("a webhook given to one account takes no other account's unsent events with it: their pending deliveries end dead and their events waiting for the fan-out no longer name it; a move to every account takes nothing")
    func aMovedWebhookLeavesOtherAccountsUnsentEvents() throws {
        let shop = try Shop()
        let webhook = String(try shop.addWebhook(url: "https://erp.example/all"))  // every account
        for (credit, customer) in [("5", Shop.customerID), ("6", "1"), ("7", Shop.customerID), ("8", "1")] {
            try shop.setCredit(credit, customer: customer)  // shop-42's customer, then shop-7's, twice
        }
        // The first two fanned out (their deliveries wait, say for a retry), the last two not yet.
        try shop.connection.execute("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id) SELECT id, \(webhook) FROM webhooky.events ORDER BY id LIMIT 2;
            UPDATE webhooky.events SET fanned_out = true WHERE id IN (SELECT event_id FROM webhooky.deliveries);
            """)
        let states = """
            SELECT e.account_id, d.state, d.last_error FROM webhooky.deliveries d JOIN webhooky.events e ON e.id = d.event_id ORDER BY d.id
            """
        let waiting = "SELECT account_id, (\(webhook) = ANY (webhook_ids))::text FROM webhooky.events WHERE NOT fanned_out ORDER BY id"

        try shop.connection.query("UPDATE webhooky.webhooks SET account_id = NULL, name = 'renamed' WHERE id = $1", [webhook])
        #expect(try shop.connection.query(states).rows == [["shop-42", "pending", nil], ["shop-7", "pending", nil]])

        try shop.connection.query("UPDATE webhooky.webhooks SET account_id = 'shop-7' WHERE id = $1", [webhook])
        #expect(try shop.connection.query(states).rows == [
            ["shop-42", "dead", "webhook moved to another account: this event is not of its account"], ["shop-7", "pending", nil],
        ])
        #expect(try shop.connection.query(waiting).rows == [["shop-42", "false"], ["shop-7", "true"]])
    }

    @Test("a webhook an admin gives to one account (a webhook for every account, say) does not give that account's tenant the deliveries and attempts of other accounts' events, and neither the tenant nor an admin redelivers them to it")
    func aMovedWebhookKeepsOtherAccountsHistory() throws {
        let shop = try Shop()
        let (_, b, _) = try tenants(shop)
        let webhook = String(try shop.addWebhook(url: "https://erp.example/all"))  // every account
        try shop.setCredit("5")               // shop-42's customer
        try shop.setCredit("6", customer: "1")  // shop-7's customer
        // What a worker leaves: both events sent, without success, to the admin's endpoint.
        try shop.connection.execute("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, last_error, completed_at)
            SELECT id, \(webhook), 'dead', 1, 'HTTP 500', now() FROM webhooky.events ORDER BY id;
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, response_body, worker)
            SELECT id, webhook_id, 1, now(), 1, 500, 'ERP: customer ' || event_id, 'w' FROM webhooky.deliveries;
            UPDATE webhooky.events SET fanned_out = true;
            """)
        let theirs = try #require(shop.column("""
            SELECT d.id FROM webhooky.deliveries d JOIN webhooky.events e ON e.id = d.event_id WHERE e.account_id = 'shop-42'
            """).first ?? nil)
        let mine = try #require(shop.column("""
            SELECT d.id FROM webhooky.deliveries d JOIN webhooky.events e ON e.id = d.event_id WHERE e.account_id = 'shop-7'
            """).first ?? nil)
        // From now on the webhook fires for shop-7 only: its tenant may read and edit it.
        try shop.connection.query("UPDATE webhooky.webhooks SET account_id = 'shop-7' WHERE id = $1", [webhook])

        #expect(try b.query("SELECT id FROM webhooky.deliveries").rows == [[mine]])
        #expect(try b.query("SELECT delivery_id FROM webhooky.attempts").rows == [[mine]])
        #expect(try b.query("SELECT dead_24h::text FROM webhooky.health").rows == [["1"]])
        do {
            try b.query("SELECT webhooky.redeliver($1)", [theirs])
            Issue.record("shop-7's tenant redelivered a delivery of shop-42's event")
        } catch {
            #expect(error.message == "webhooky.redeliver: there is no delivery \(theirs)")
        }
        // With a URL of its own, a redelivery would have sent shop-42's customer there.
        try b.query("UPDATE webhooky.webhooks SET url = 'https://b.example/?email=#customer.email#' WHERE id = $1", [webhook])
        #expect(try b.query("SELECT webhooky.redeliver_webhook($1, now() - interval '1 day')", [webhook]).scalar == "1")
        #expect(try shop.connection.query("SELECT id::text, state FROM webhooky.deliveries ORDER BY id").rows
                == [[theirs, "dead"], [mine, "pending"]])
        // An admin sees every one, but sends none of shop-42's to the URL shop-7 chose.
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries") == ["2"])
        do {
            try shop.connection.query("SELECT webhooky.redeliver($1)", [theirs])
            Issue.record("an admin sent shop-42's event to shop-7's webhook again")
        } catch {
            #expect(error.message == "webhooky.redeliver: delivery \(theirs) is of an event of account 'shop-42', and webhook \(webhook) now fires for account 'shop-7' only: it would send one account's data to another's URL")
            #expect(error.hint == "Send the event through a webhook of its own account with SELECT webhooky.send_test(WEBHOOK_ID, from_event => EVENT_ID) (its event id: SELECT event_id FROM webhooky.deliveries WHERE id = \(theirs)).")
        }
        try shop.connection.query("UPDATE webhooky.deliveries SET state = 'dead', completed_at = now() WHERE id = $1", [mine])
        #expect(try shop.column("SELECT webhooky.redeliver_webhook($1, now() - interval '1 day')", [webhook]) == ["1"])
        #expect(try shop.connection.query("SELECT id::text, state FROM webhooky.deliveries ORDER BY id").rows
                == [[theirs, "dead"], [mine, "pending"]])
        // Given back to every account, the webhook may have them all again.
        try shop.connection.query("UPDATE webhooky.webhooks SET account_id = NULL WHERE id = $1", [webhook])
        try shop.connection.query("SELECT webhooky.redeliver($1)", [theirs])
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE id = $1", [theirs]) == ["pending"])
    }

    @Test("Insert variable lists what the event type's sample and its events offer, not the payloads of tests: a tenant's hand-written test put its own names and values into every admin's list and into the doctor's check")
    func variablesIgnoreTestPayloads() throws {
        let shop = try Shop()
        let (a, _, _) = try tenants(shop)
        let mine = try #require(a.query("INSERT INTO webhooky.webhooks (event, url) VALUES ('customer.credit_changed', 'https://a.example/') RETURNING id").scalar)
        try shop.setCredit("5")  // a real event of shop-42
        try a.query("SELECT webhooky.send_test($1, $2::jsonb)", [mine, #"{"customer": {"emial": "x", "credit": "lots"}, "injected": true}"#])
        let listed = try shop.connection.query("SELECT variable, example, source FROM webhooky.variables('customer.credit_changed')").rows
        #expect(!listed.contains { $0[0] == "customer.emial" || $0[0] == "injected" }, "\(listed)")
        #expect(listed.first { $0[0] == "customer.credit" }?[1] == "5.00")
        #expect(try a.query("SELECT count(*) FROM webhooky.variables('customer.credit_changed') WHERE variable IN ('customer.emial', 'injected')").scalar == "0")
    }

    @Test("a tenant's test payload is at most 1 MiB (the worker would hold it in memory)")
    func testPayloadsAreCapped() throws {
        let shop = try Shop()
        let (_, b, _) = try tenants(shop)
        let theirs = try #require(b.query("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-7', 'customer.credit_changed', 'https://b.example/') RETURNING id").scalar)
        do {
            try b.query("SELECT webhooky.send_test($1, jsonb_build_object('x', repeat('x', 2000000)))", [theirs])
            Issue.record("a 2 MB test payload was accepted")
        } catch {
            #expect(error.message == "webhooky.send_test: the payload is 2000009 bytes of JSON; at most 1 MiB")
        }
        #expect(try b.query("SELECT webhooky.send_test($1, jsonb_build_object('x', repeat('x', 1000))) IS NOT NULL", [theirs]).scalar == "t")
    }

    @Test("an admin deletes a webhook (its unfinished deliveries end dead) and re-enables one")
    func adminsDeleteAndEnable() throws {
        let shop = try Shop()
        let role = "admin_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        try shop.connection.execute("CREATE ROLE \(role) LOGIN IN ROLE webhooky_admin")
        let admin = try Connection(conninfo: shop.database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(role)"))
        let webhook = try shop.addWebhook(url: "https://erp.example/x", enabled: false)
        try shop.connection.execute("INSERT INTO webhooky.webhook_health (webhook_id, consecutive_failures) VALUES (\(webhook), 3)")
        // Before 0011 both failed: the trigger updated deliveries and health with the admin's rights.
        try admin.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(webhook)])
        #expect(try shop.column("SELECT consecutive_failures::text FROM webhooky.webhook_health") == ["0"])
        try shop.setCredit("5")  // no worker: the event waits, and so does its delivery
        try shop.connection.execute("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id) SELECT id, \(webhook) FROM webhooky.events
            """)
        try admin.query("DELETE FROM webhooky.webhooks WHERE id = $1", [String(webhook)])
        #expect(try shop.connection.query("SELECT state, last_error FROM webhooky.deliveries").rows == [["dead", "webhook deleted"]])
    }

    /// Each refusal says what the writer can do and that an admin raises the limit (a tenant's
    /// role may not even read webhooky.settings; "raise max_headers in webhooky.settings" told it
    /// to do what it cannot).
    @Test(arguments: [
        ("url", "https://x.example/?q=" + String(repeating: "a", count: 2100), "URL is 2121 characters long; the limit is 2048",
         "Shorten the URL, or an admin raises the limit: INSERT INTO webhooky.settings VALUES ('max_url_length', '4096') ON CONFLICT (name) DO UPDATE SET value = excluded.value"),
        ("body", "[" + String(repeating: "1,", count: 40_000) + "1]", "body is 80003 characters long; the limit is 65536",
         "Shorten the body template, or an admin raises the limit: INSERT INTO webhooky.settings VALUES ('max_body_length', '131072') ON CONFLICT (name) DO UPDATE SET value = excluded.value"),
        ("headers", "{" + (1...21).map { "\"X-\($0)\": \"v\"" }.joined(separator: ",") + "}", "21 headers; the limit is 20",
         "Send fewer headers, or an admin raises the limit: INSERT INTO webhooky.settings VALUES ('max_headers', '40') ON CONFLICT (name) DO UPDATE SET value = excluded.value"),
        ("headers", "{\"X-Big\": \"" + String(repeating: "v", count: 5000) + "\"}", "header \"X-Big\" is 5000 characters long; the limit is 4096",
         "Shorten the value, or an admin raises the limit: INSERT INTO webhooky.settings VALUES ('max_header_value_length', '8192') ON CONFLICT (name) DO UPDATE SET value = excluded.value"),
    ])
    func oversizedWebhooksAreRefused(column: String, value: String, message: String, hint: String) throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        var values: [String: String?] = ["url": "https://x.example/", "body": nil, "headers": "{}"]
        values[column] = value
        do {
            try connection.query("INSERT INTO webhooky.webhooks (name, event, url, body, headers) VALUES ('big', 'customer.credit_changed', $1, $2, $3::jsonb)",
                                 [values["url"] ?? nil, values["body"] ?? nil, values["headers"] ?? nil])
            Issue.record("accepted an oversized \(column)")
        } catch {
            #expect(error.message.hasSuffix(#" "big": "# + message), "\(error.message)")
            #expect(error.hint == hint)
        }
    }

    @Test("a limit's hint suggests what the row needs, at least double the limit, at most what webhooky.settings takes: twice a limit of 0 changed nothing, twice 65,536 did not let a 200,005-character body in, and twice 600,000,000 was refused as a setting")
    func raisedLimitLetsTheRowIn() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        func hint(_ body: String?, _ headers: String) -> String? {
            do {
                try connection.query("INSERT INTO webhooky.webhooks (name, event, url, body, headers) VALUES ('big', 'customer.credit_changed', 'https://x.example/', $1, $2::jsonb)",
                                     [body, headers])
                return nil
            } catch {
                return error.hint
            }
        }
        let bodyHint = try #require(hint("[" + String(repeating: "1,", count: 100_001) + "1]", "{}"))
        #expect(bodyHint.contains("VALUES ('max_body_length', '200005')"), "\(bodyHint)")
        try connection.execute("INSERT INTO webhooky.settings VALUES ('max_headers', '0')")
        let headerHint = try #require(hint(nil, #"{"X-Shop": "1"}"#))
        #expect(headerHint.contains("VALUES ('max_headers', '1')"), "\(headerHint)")
        // What the hint says lets the row in.
        try connection.execute("INSERT INTO webhooky.settings VALUES ('max_headers', '1') ON CONFLICT (name) DO UPDATE SET value = excluded.value")
        #expect(hint(nil, #"{"X-Shop": "1"}"#) == nil)
        #expect(try connection.query("SELECT webhooky.raised_limit(600000000, 10)").scalar == "999999999")
    }

    @Test("a webhook cannot configure the webhooky-test header (its receiver would take every real event for a test, answer 2xx and drop it): refused on insert and on a change of the headers, in any case; a row saved before can still be paused")
    func theTestHeaderIsWebhookys() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        do {
            try connection.execute(#"INSERT INTO webhooky.webhooks (name, event, url, headers) VALUES ('ERP', 'customer.credit_changed', 'https://x.example/', '{"Webhooky-Test": "true"}')"#)
            Issue.record("accepted a webhooky-test header")
        } catch {
            #expect(error.message == #"the new webhook "ERP": header "Webhooky-Test" is set by Webhooky on test deliveries and cannot be configured"#, "\(error.message)")
            #expect(error.hint?.hasPrefix("Leave it out of headers (headers - 'Webhooky-Test'): Webhooky sends webhooky-test: true with each test delivery") == true,
                    "\(error.hint ?? "")")
        }
        let id = try #require(connection.query("INSERT INTO webhooky.webhooks (name, event, url) VALUES ('ERP', 'customer.credit_changed', 'https://x.example/') RETURNING id").scalar)
        #expect(throws: PostgresError.self) {
            try connection.execute(#"UPDATE webhooky.webhooks SET headers = '{"X-Shop": "1", "WEBHOOKY-TEST": "yes"}' WHERE id = "# + id)
        }
        // Saved before migration 0062: pausing it is no change of its headers.
        try connection.execute("""
            ALTER TABLE webhooky.webhooks DISABLE TRIGGER check_webhook_test_header;
            UPDATE webhooky.webhooks SET headers = '{"webhooky-test": "true"}' WHERE id = \(id);
            ALTER TABLE webhooky.webhooks ENABLE TRIGGER check_webhook_test_header;
            UPDATE webhooky.webhooks SET enabled = false WHERE id = \(id);
            UPDATE webhooky.webhooks SET name = 'ERP (paused)', headers = headers WHERE id = \(id);
            """)
        #expect(try connection.query("SELECT enabled, name FROM webhooky.webhooks WHERE id = \(id)").rows == [["f", "ERP (paused)"]],
                "the whole row saved again, headers as they were")
        // The hint's expression takes it out.
        try connection.execute("UPDATE webhooky.webhooks SET headers = headers - 'webhooky-test' WHERE id = \(id)")
        #expect(try connection.query("SELECT headers::text FROM webhooky.webhooks WHERE id = \(id)").scalar == "{}")
    }

    @Test func anAccountsWebhooksAreCapped() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        try connection.execute("INSERT INTO webhooky.settings VALUES ('max_webhooks_per_account', '2')")
        for _ in 1...2 { try connection.execute("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-1', 'customer.credit_changed', 'https://x.example/')") }
        do {
            try connection.execute("INSERT INTO webhooky.webhooks (name, account_id, event, url) VALUES ('third', 'shop-1', 'customer.credit_changed', 'https://x.example/')")
            Issue.record("a third webhook was accepted")
        } catch {
            #expect(error.message == #"the new webhook "third": account 'shop-1' already has 2 webhooks; the limit is 2"#, "\(error.message)")
            #expect(error.hint?.contains("max_webhooks_per_account") == true)
        }
        try connection.execute("INSERT INTO webhooky.webhooks (account_id, event, url) VALUES ('shop-2', 'customer.credit_changed', 'https://x.example/')")
    }

    @Test("webhooky.settings refuses a setting it does not know and a value that is not a whole number, saying what to write: a value such as '4k' made every save of every webhook fail, the worker's own disabling included")
    func settingsRefuseNonsense() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        let webhook = try #require(connection.query("INSERT INTO webhooky.webhooks (event, url) VALUES ('customer.credit_changed', 'https://x.example/') RETURNING id").scalar)
        for (row, message) in [
            ("('max_url_lenght', '10')", #"webhooky.settings: there is no setting "max_url_lenght""#),
            ("('max_url_length', '4k')", #"webhooky.settings: max_url_length must be a whole number of 0 or more, not "4k""#),
            ("('max_headers', '-1')", #"webhooky.settings: max_headers must be a whole number of 0 or more, not "-1""#),
            ("('max_body_length', '99999999999')", #"webhooky.settings: max_body_length must be a whole number of 0 or more, not "99999999999""#),
        ] {
            do {
                try connection.execute("INSERT INTO webhooky.settings VALUES \(row)")
                Issue.record("webhooky.settings took \(row)")
            } catch {
                #expect(error.message == message)
                #expect(error.sqlState == "23514")
                #expect(error.hint?.contains("max_webhooks_per_account") == true, "\(error.hint ?? "no hint")")
            }
        }
        // What the worker does to a webhook that keeps failing still works.
        try connection.query("UPDATE webhooky.webhooks SET enabled = false, disabled_reason = 'gone' WHERE id = $1", [webhook])
        try connection.execute("INSERT INTO webhooky.settings VALUES ('max_url_length', '4096')")
        try connection.execute("UPDATE webhooky.settings SET value = '100' WHERE name = 'max_url_length'")
        #expect(try connection.column("SELECT webhooky.setting('max_url_length')") == ["100"])
    }

    @Test("rotate_secret refuses a missing or negative overlap, saying what to pass, and keeps the secret: it rotated with no overlap at all, the receiver rejecting every request until it had the new secret")
    func rotateSecretRefusesNonsense() throws {
        let shop = try Shop()
        let old = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        let id = String(try shop.addWebhook(url: "https://erp.example/s", body: "{}", secret: old))
        for (overlap, shown) in [("NULL", "NULL"), ("interval '-1 hour'", "-01:00:00")] {
            let refusal = overlapRefusal(shop, webhook: id, overlap: overlap)
            #expect(refusal?.message == "webhooky.rotate_secret: overlap must be an interval of 0 or more, not \(shown)")
            #expect(refusal?.hint?.isEmpty == false)
        }
        #expect(try shop.connection.query("SELECT secret, previous_secret FROM webhooky.webhooks WHERE id = $1", [id]).rows == [[old, nil]])
        // 0: the new secret alone from now on, as the docs' plain UPDATE does.
        let new = try #require(shop.column("SELECT webhooky.rotate_secret($1, '0')", [id]).first ?? nil)
        #expect(try shop.connection.query("SELECT secret, previous_secret, previous_secret_expires_at <= now() FROM webhooky.webhooks WHERE id = $1", [id]).rows == [[new, old, "t"]])
    }

    @Test("rotate_secret takes an overlap of up to 7 days and refuses a longer one, saying why, and keeps the secret: interval '100 years' (or '24 days' for '24 hours') kept the old, perhaps leaked, secret signing for ever")
    func rotateSecretBoundsTheOverlap() throws {
        let shop = try Shop()
        let old = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        let id = String(try shop.addWebhook(url: "https://erp.example/s", body: "{}", secret: old))
        for (overlap, shown) in [("interval '7 days 1 second'", "7 days 00:00:01"), ("interval '24 days'", "24 days")] {
            let refusal = overlapRefusal(shop, webhook: id, overlap: overlap)
            #expect(refusal?.message == "webhooky.rotate_secret: overlap must be at most 7 days, not \(shown)")
            #expect(refusal?.hint == "The old secret keeps signing until the overlap ends, so a long one keeps the secret you are replacing (perhaps because it leaked) valid "
                + "that long; pass the time the receiver needs to switch, e.g. interval '24 hours' (the default), or 0 to replace it at once.")
        }
        #expect(try shop.connection.query("SELECT secret, previous_secret, previous_secret_expires_at FROM webhooky.webhooks WHERE id = $1", [id]).rows == [[old, nil, nil]])
        // Exactly 7 days is taken: the old secret signs until then.
        let new = try #require(shop.column("SELECT webhooky.rotate_secret($1, interval '7 days')", [id]).first ?? nil)
        #expect(try shop.connection.query("""
            SELECT secret, previous_secret, previous_secret_expires_at BETWEEN now() + interval '7 days' - interval '1 minute' AND now() + interval '7 days'
              FROM webhooky.webhooks WHERE id = $1
            """, [id]).rows == [[new, old, "t"]])
    }

    /// What `webhooky.rotate_secret(id, overlap)` answers when it refuses the overlap (SQLSTATE
    /// 22023, invalid_parameter_value); nil, and an issue, if it rotated the secret.
    private func overlapRefusal(_ shop: Shop, webhook id: String, overlap: String) -> PostgresError? {
        do {
            try shop.connection.query("SELECT webhooky.rotate_secret($1, \(overlap))", [id])
            Issue.record("rotate_secret took an overlap of \(overlap)")
            return nil
        } catch {
            #expect(error.sqlState == "22023", "\(error)")
            return error
        }
    }

    @Test("rotating again within the overlap keeps two secrets signing, the newest two (as admin.md says): the one before the first rotation stops at once")
    func rotatingTwiceKeepsTheNewestTwo() throws {
        let shop = try Shop()
        let original = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        let id = String(try shop.addWebhook(url: "https://erp.example/s", body: "{}", secret: original))
        let first = try #require(shop.column("SELECT webhooky.rotate_secret($1, interval '1 day')", [id]).first ?? nil)
        let second = try #require(shop.column("SELECT webhooky.rotate_secret($1, interval '1 hour')", [id]).first ?? nil)
        #expect(Set([original, first, second]).count == 3)
        #expect(try shop.connection.query("""
            SELECT secret, previous_secret, previous_secret_expires_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'
              FROM webhooky.webhooks WHERE id = $1
            """, [id]).rows == [[second, first, "t"]])
    }

    @Test("a plain UPDATE of the secret after a rotation replaces it at once, as admin.md says: the secret before the rotation (perhaps the leaked one) went on signing until the overlap ended, and a tenant may not clear previous_secret")
    func replacingTheSecretEndsTheOverlap() throws {
        let shop = try Shop()
        let (a, _, _) = try tenants(shop)
        let original = try #require(try a.query("SELECT webhooky.new_secret()").scalar)
        let id = try #require(try a.query("""
            INSERT INTO webhooky.webhooks (name, event, url, secret) VALUES ('Signed', 'customer.credit_changed', 'https://erp.example/s', $1) RETURNING id
            """, [original]).scalar)
        try a.query("SELECT webhooky.rotate_secret($1)", [id])
        #expect(try a.query("SELECT previous_secret FROM webhooky.webhooks WHERE id = $1", [id]).scalar == original)
        #expect(throws: PostgresError.self) { try a.query("UPDATE webhooky.webhooks SET previous_secret = NULL WHERE id = $1", [id]) }
        // Other edits keep the overlap; a new secret ends it, and so does no secret.
        try a.query("UPDATE webhooky.webhooks SET name = 'Signed too' WHERE id = $1", [id])
        #expect(try a.query("SELECT previous_secret FROM webhooky.webhooks WHERE id = $1", [id]).scalar == original)
        let replacement = try #require(try a.query("SELECT webhooky.new_secret()").scalar)
        try a.query("UPDATE webhooky.webhooks SET secret = $2 WHERE id = $1", [id, replacement])
        let columns = "SELECT secret, previous_secret, previous_secret_expires_at FROM webhooky.webhooks WHERE id = $1"
        #expect(try a.query(columns, [id]).rows == [[replacement, nil, nil]])
        try a.query("SELECT webhooky.rotate_secret($1)", [id])
        try a.query("UPDATE webhooky.webhooks SET secret = NULL WHERE id = $1", [id])
        #expect(try a.query(columns, [id]).rows == [[nil, nil, nil]])
        // While an overlap lasts, an admin who sets another previous secret, or another expiry,
        // with the secret in one statement gets what it set.
        try shop.connection.query("UPDATE webhooky.webhooks SET secret = $2 WHERE id = $1", [id, replacement])
        try a.query("SELECT webhooky.rotate_secret($1)", [id])
        let rotated = try #require(try a.query("SELECT secret FROM webhooky.webhooks WHERE id = $1", [id]).scalar)
        #expect(try a.query("SELECT previous_secret FROM webhooky.webhooks WHERE id = $1", [id]).scalar == replacement)
        let later = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        try shop.connection.query("UPDATE webhooky.webhooks SET secret = $2, previous_secret = $3, previous_secret_expires_at = 'infinity' WHERE id = $1",
                                  [id, later, original])
        #expect(try shop.connection.query(columns, [id]).rows == [[later, original, "infinity"]])
        try shop.connection.query("UPDATE webhooky.webhooks SET secret = $2, previous_secret_expires_at = '2999-01-01 00:00:00+00' WHERE id = $1",
                                  [id, rotated])
        #expect(try shop.connection.query("SELECT secret, previous_secret, previous_secret_expires_at = '2999-01-01 00:00:00+00' FROM webhooky.webhooks WHERE id = $1",
                                          [id]).rows == [[rotated, original, "t"]])
    }

    @Test("a redelivery while another transaction moves the webhook to another account waits for the move: it read the old account, and the event of one account was left pending for the other's URL")
    func aRedeliveryWaitsForAMoveUnderWay() throws {
        let shop = try Shop()
        let webhook = String(try shop.addWebhook(url: "https://erp.example/all"))  // every account
        try shop.setCredit("5")  // shop-42's customer
        try shop.connection.execute("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, last_error, completed_at)
            SELECT id, \(webhook), 'dead', 1, 'HTTP 500', now() FROM webhooky.events;
            UPDATE webhooky.events SET fanned_out = true;
            """)
        let theirs = try #require(shop.column("SELECT id FROM webhooky.deliveries").first ?? nil)
        // An admin gives the webhook to shop-7, not yet committed; another admin redelivers meanwhile.
        let mover = try shop.database.connect()
        try mover.execute("BEGIN")
        try mover.query("UPDATE webhooky.webhooks SET account_id = 'shop-7' WHERE id = $1", [webhook])
        try shop.connection.execute("SET lock_timeout = '300ms'")
        for redelivery in ["SELECT webhooky.redeliver(\(theirs))", "SELECT webhooky.redeliver_webhook(\(webhook), now() - interval '1 day')"] {
            do {
                try shop.connection.execute(redelivery)
                Issue.record("did not wait for the move: \(redelivery)")
            } catch {
                #expect(error.sqlState == "55P03", "\(redelivery): \(error)")  // lock_not_available: it waits
            }
        }
        try mover.execute("COMMIT")
        try shop.connection.execute("RESET lock_timeout")
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE id = $1", [theirs]) == ["dead"])
        // Once the move committed, the account it moved to is read.
        #expect(throws: PostgresError.self) { try shop.connection.query("SELECT webhooky.redeliver($1)", [theirs]) }
        #expect(try shop.column("SELECT webhooky.redeliver_webhook($1, now() - interval '1 day')", [webhook]) == ["0"])
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE id = $1", [theirs]) == ["dead"])
    }

    @Test("a tenant's test send while an admin's transaction moves the webhook to another account waits for the move, then finds no webhook of its account: it read the old account and left a test of its own event for the other account's URL")
    func aTestSendWaitsForAMoveUnderWay() throws {
        let shop = try Shop()
        let (a, _, _) = try tenants(shop)
        let webhook = try #require(a.query("INSERT INTO webhooky.webhooks (event, url) VALUES ('customer.credit_changed', 'https://shop42.example/hook') RETURNING id").scalar)
        try shop.setCredit("5")  // shop-42's customer; no worker runs, the event waits
        let event = try #require(try a.query("SELECT id FROM webhooky.events").scalar)
        // An admin gives the webhook to shop-7 and a URL of its own, not yet committed.
        let mover = try shop.database.connect()
        try mover.execute("BEGIN")
        try mover.query("UPDATE webhooky.webhooks SET account_id = 'shop-7', url = 'https://shop7.example/hook' WHERE id = $1", [webhook])
        try a.execute("SET lock_timeout = '300ms'")
        do {
            let delivery = try a.query("SELECT webhooky.send_test($1, from_event => $2)", [webhook, event]).scalar
            Issue.record("did not wait for the move: test delivery \(delivery ?? "?")")
        } catch {
            #expect(error.sqlState == "55P03", "\(error)")  // lock_not_available: it waits
        }
        try mover.execute("COMMIT")
        try a.execute("RESET lock_timeout")
        do {
            try a.query("SELECT webhooky.send_test($1, from_event => $2)", [webhook, event])
            Issue.record("shop-42's tenant sent a test to shop-7's webhook")
        } catch {
            #expect(error.message == "webhooky.send_test: there is no webhook \(webhook)")
        }
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries") == ["0"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.events WHERE is_test") == ["0"])
    }

    @Test("a webhook refused when it is saved is refused without its secrets: a NULL in a required column showed the whole row (secret, previous secret, Authorization, the URL's key), a password with a / its first part as the port")
    func refusalsShowNoSecrets() throws {
        let shop = try Shop()
        let secret = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        let url = "https://erp.example/x?apikey=K3yInTheUrl"
        let headers = #"{"Authorization": "Bearer T0kenInAHeader"}"#
        let id = String(try shop.addWebhook(url: url, headers: headers, secret: secret, name: "ERP"))
        let previous = try #require(shop.column("SELECT webhooky.rotate_secret($1)", [id]).first ?? nil)
        let hidden = [secret, previous, "K3yInTheUrl", "T0kenInAHeader", "k3yPart"]
        func refusal(_ sql: String, _ parameters: [String?]) -> PostgresError? {
            do {
                try shop.connection.query(sql, parameters)
                Issue.record("accepted: \(sql)")
                return nil
            } catch {
                let text = error.description
                for value in hidden { #expect(!text.contains(value), "\(text)") }
                return error
            }
        }
        let insert = "INSERT INTO webhooky.webhooks (name, event, url, headers, secret) VALUES ($1, 'customer.credit_changed', $2, $3::jsonb, $4)"
        let noName = refusal(insert, [nil, url, headers, secret])
        #expect(noName?.message == "the new webhook: name must not be NULL", "\(String(describing: noName))")
        #expect(noName?.sqlState == "23502")
        #expect(noName?.detail == nil)
        let noURL = refusal(insert, ["ERP", nil, headers, secret])
        #expect(noURL?.message == #"the new webhook "ERP": url must not be NULL"#, "\(String(describing: noURL))")
        let notEnabled = refusal("UPDATE webhooky.webhooks SET enabled = NULL WHERE id = $1", [id])
        #expect(notEnabled?.message == #"webhook \#(id) "ERP": enabled must not be NULL"#)
        // libcurl's authority, like the check's, ends at the /: "k3yPart" reads as the port.
        let slash = refusal("UPDATE webhooky.webhooks SET url = $2 WHERE id = $1", [id, "https://api:k3yPart/rest@erp.example/"])
        #expect(slash?.message == #"webhook \#(id) "ERP": URL has a port that is not a number from 1 to 65535"#)
        #expect(slash?.hint?.contains("%2F") == true)
        // An UPDATE that leaves updated_at to check_webhook still works.
        try shop.connection.query("UPDATE webhooky.webhooks SET updated_at = NULL, enabled = false WHERE id = $1", [id])
    }

    @Test("the NOTIFY of a webhook's change names no webhook: any role may LISTEN, and with 'webhook <id>' a tenant saw the ids and moments of other accounts' edits, deletes and the worker's disabling")
    func webhookChangeNoticeNamesNoWebhook() throws {
        let shop = try Shop()
        let id = String(try shop.addWebhook(url: "https://erp.example/x", name: "another account's"))
        let listener = try Connection(conninfo: shop.database.conninfo)
        try listener.listen("webhooky")
        try shop.connection.query("UPDATE webhooky.webhooks SET name = 'edited' WHERE id = $1", [id])
        try shop.connection.query("DELETE FROM webhooky.webhooks WHERE id = $1", [id])
        var payloads: [String] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while payloads.filter({ $0 == "webhook" }).count < 2 && ContinuousClock.now < deadline {
            payloads += try listener.waitForNotifications(timeout: .milliseconds(200)).map(\.payload)
        }
        #expect(payloads.filter { $0 == "webhook" }.count == 2, "\(payloads)")
        #expect(!payloads.contains { $0.contains(id) }, "\(payloads)")
    }

    @Test("a body template that is not JSON is refused with the line, the character and the kind of token found, never its text: PostgreSQL's message quoted the token and its DETAIL the line up to it, a literal API key in the body included", arguments: [
        (#"{"apiKey" "sk_live_4eC39HqLyjWDarjtT1zdp7dc"}"#, #"line 1, character 44: expected ":", found a string"#),
        (#"{"token": sk_live_4eC39HqLyjWDarjtT1zdp7dc}"#, "line 1, character 42: found a word that is not JSON (text takes double quotes)"),
        (#"{"key": "sk_live_4eC39", "credit": #customer.credit# "email": 1}"#, #"line 1, character 60: expected "," or "}", found a string"#),
        // Longer than PostgreSQL's context (about 50 characters, then it starts with "...").
        (#"{"key": "sk_live_4eC39HqLyjWDarjtT1zdp7dc-abcdefghij", "credit": #customer.credit# "email": 1}"#,
         #"line 1, character 90: expected "," or "}", found a string"#),
        ("{\"email\": \"#customer.email#\",\n \"key\": \"sk_live_4eC39\", \"credit\": #customer.credit#, #customer.id#}",
         "line 2, character 55: expected string, found a placeholder"),
        ("{\"key\": 'sk_live_4eC39'}", "line 1, character 9: found text in single quotes (JSON strings take double quotes)"),
    ])
    func bodyRefusalsQuoteNoText(body: String, place: String) throws {
        let shop = try Shop()
        do {
            try shop.addWebhook(url: "https://erp.example/x", body: body, name: "ERP")
            Issue.record("accepted: \(body)")
        } catch let error as PostgresError {
            #expect(error.message == #"the new webhook "ERP": body is not valid JSON at \#(place)"#, "\(error.message)")
            #expect(error.sqlState == "23514")
            #expect(error.detail == nil)
            #expect(!error.description.contains("sk_live"), "\(error.description)")
            #expect(!error.description.contains("4eC39"), "\(error.description)")
        }
        #expect(try shop.column("SELECT count(*) FROM webhooky.webhooks") == ["0"])
    }

    @Test("a body refusal names the right character and quotes nothing where migration 0041 did not: a string token holding ', but found \"' (its greedy pattern quoted what came before), PostgreSQL's context text found earlier on a long line (it named the earlier place), a control character (it named the one before)", arguments: [
        (#"{"apiKey" "sk_live_4eC39, but found "}"#, #"line 1, character 37: expected ":", found a string"#),
        // Three strings of 61 characters: the context (the last 50 bytes) ends each of them.
        (#"["sk_live_4eC39HqLyjWDarjtT1zdp7dc-abcdefghijklmnopqrstuvwxyz", "sk_live_4eC39HqLyjWDarjtT1zdp7dc-abcdefghijklmnopqrstuvwxyz" "sk_live_4eC39HqLyjWDarjtT1zdp7dc-abcdefghijklmnopqrstuvwxyz"]"#,
         #"line 1, character 187: expected "," or "]", found a string"#),
        // The same strings, the last one not closed: the error is at the end of the body.
        (#"["sk_live_4eC39HqLyjWDarjtT1zdp7dc-abcdefghijklmnopqrstuvwxyz", "sk_live_4eC39HqLyjWDarjtT1zdp7dc-abcdefghijklmnopqrstuvwxyz", "sk_live_4eC39HqLyjWDarjtT1zdp7dc-abcdefghijklmnopqrstuvwxyz"#,
         "line 1, character 187: found a string without its closing double quote"),
        ("{\"key\": \"sk_live_4eC39\tx\"}", "line 1, character 23: character with value 0x09 must be escaped"),
        (#"{"key": "sk_live_4eC39\x"}"#, "line 1, character 24: invalid escape sequence in a string"),
    ])
    func bodyRefusalsQuoteNoTextAnywhere(body: String, place: String) throws {
        let shop = try Shop()
        do {
            try shop.addWebhook(url: "https://erp.example/x", body: body, name: "ERP")
            Issue.record("accepted: \(body)")
        } catch let error as PostgresError {
            #expect(error.message == #"the new webhook "ERP": body is not valid JSON at \#(place)"#, "\(error.message)")
            #expect(error.sqlState == "23514")
            #expect(!error.description.contains("sk_live"), "\(error.description)")
        }
        #expect(try shop.column("SELECT count(*) FROM webhooky.webhooks") == ["0"])
    }

    @Test("PostgreSQL's JSON error worded in another language (lc_messages) is not passed on: it quotes the body's token")
    func bodyRefusalInAnotherLanguage() throws {
        let shop = try Shop()
        // PostgreSQL 15's German for 'Expected ":", but found ""sk_live_4eC39"".' and its context.
        let detail = #"Erwartete »:«, aber »"sk_live_4eC39"« gefunden."#
        let context = #"JSON-Daten, Zeile 1: {"apiKey" "sk_live_4eC39"..."#
        #expect(try shop.column("SELECT webhooky.json_error_reason($1)", [detail]) == ["syntax error"])
        #expect(try shop.column("SELECT webhooky.body_json_error($1, $2, $3)", [#"{"apiKey" "sk_live_4eC39"}"#, detail, context]) == [": syntax error"])
        // Escape sequences: no character of the body either.
        #expect(try shop.column("SELECT webhooky.json_error_reason($1)", [#"Escape sequence "\s" is invalid."#]) == ["invalid escape sequence in a string"])
    }

    @Test("a rendered request larger than its limits ends dead with the reason")
    func renderedLimits() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.connection.execute("INSERT INTO webhooky.event_types (name) VALUES ('blob.created')")
        try shop.addWebhook(event: "blob.created", url: receiver.baseURL + "/b", body: #"{"data": #blob#}"#)
        var configuration = shop.workerConfiguration()
        configuration.requestLimits.maximumBodyBytes = 10_000
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.connection.query("SELECT webhooky.emit('blob.created', jsonb_build_object('blob', repeat('x', 20000)))")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "dead" } == "dead")
        #expect(try shop.column("SELECT last_error FROM webhooky.deliveries") == ["cannot build the request: the rendered body is 20012 bytes; the limit is 10000"])
        #expect(receiver.requests.isEmpty)
    }

    @Test("rotating a secret: both signatures during the overlap, the new one alone after it")
    func secretRotation() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let old = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        let id = try shop.addWebhook(url: receiver.baseURL + "/s", body: "{}", secret: old)
        let key = try #require(Data(base64Encoded: String(old.dropFirst(6))))
        #expect(key.count == 32, "256-bit secrets")
        let new = try #require(shop.column("SELECT webhooky.rotate_secret($1)", [String(id)]).first ?? nil)
        #expect(new != old && new.hasPrefix("whsec_"))
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("1")
        let during = try #require(receiver.waitForRequests(1).first)
        let signatures = try #require(during.header("webhook-signature")).split(separator: " ")
        #expect(signatures.count == 2)
        for (signature, secret) in zip(signatures, [new, old]) {
            #expect(WebhookSignature.verify(id: during.header("webhook-id") ?? "", timestamp: during.header("webhook-timestamp") ?? "",
                                            body: during.body, header: String(signature), secret: try #require(SigningSecret(secret))))
        }
        try shop.connection.query("UPDATE webhooky.webhooks SET previous_secret_expires_at = now() - interval '1 second' WHERE id = $1", [String(id)])
        try shop.setCredit("2")
        let after = try #require(receiver.waitForRequests(2).last)
        #expect(after.header("webhook-signature")?.split(separator: " ").count == 1)
        #expect(WebhookSignature.verify(id: after.header("webhook-id") ?? "", timestamp: after.header("webhook-timestamp") ?? "",
                                        body: after.body, header: after.header("webhook-signature") ?? "", secret: try #require(SigningSecret(new))))
    }

    @Test("a role that may create functions in public cannot make the schema's checks or the reference triggers run its code")
    func functionsIgnoreTheCallersSearchPath() throws {
        let shop = try Shop()
        let role = "creator_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        // As in a database created before PostgreSQL 15, where every role may create in public.
        try shop.connection.execute("CREATE ROLE \(role) LOGIN; GRANT CREATE ON SCHEMA public TO \(role)")
        let creator = try Connection(conninfo: shop.database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(role)"))
        // Exact matches for arguments the built-ins take as VARIADIC "any": PostgreSQL prefers them.
        try creator.execute("""
            CREATE FUNCTION public.format(text, bigint) RETURNS text LANGUAGE sql AS $$ SELECT 'ran as ' || current_user $$;
            CREATE FUNCTION public.jsonb_build_object(text, numeric, text, numeric) RETURNS jsonb LANGUAGE sql
                AS $$ SELECT jsonb_build_object('ran as', current_user::text) $$;
            """)
        do {
            try shop.connection.execute("INSERT INTO webhooky.webhooks (event, url) VALUES ('no.such_event', 'https://erp.example/x')")
            Issue.record("a webhook of an unknown event was saved")
        } catch {
            #expect(error.message == "the new webhook: unknown event 'no.such_event'", "\(error.message)")
        }
        _ = try shop.addWebhook(url: "https://erp.example/x")
        try shop.setCredit("7.50")
        #expect(try shop.column("SELECT payload->>'creditChange' FROM webhooky.events") == [#"{"value": -92.50, "previous": 100.00}"#])
        // Every function of the schema has its search_path fixed.
        #expect(try shop.column("""
            SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = 'webhooky'::regnamespace
               AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
             ORDER BY 1
            """) == [])
    }
}

/// The worker's default address policy: no requests into private or internal networks.
@Suite(.timeLimit(.minutes(10))) struct NetworkPolicyTests {
    @Test("by default a webhook to 127.0.0.1 or to a name resolving to it ends dead at once, and the receiver never sees a request")
    func privateAddressesAreRefused() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/direct")
        try shop.addWebhook(url: "http://localhost:\(receiver.port)/by-name")
        var configuration = shop.workerConfiguration()
        configuration.http.addressPolicy = .standard
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.setCredit("1")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'dead'") { $0 == "2" } == "2")
        let errors = try shop.connection.query("SELECT attempts, last_error FROM webhooky.deliveries ORDER BY id").rows
        for row in errors {
            #expect(row[0] == "1", "refused at once, not retried")
            #expect(row[1]?.contains("loopback address): private and internal networks are not allowed") == true, "\(row)")
        }
        // The address a name resolves to is not recorded where the webhook's owner reads it.
        #expect(errors.map { $0[1]?.hasPrefix("refused to connect to localhost (it resolves to a loopback address)") } == [false, true], "\(errors)")
        #expect(receiver.connectionsAccepted == 0)
    }

    @Test("a webhook may follow redirects; a hop into an internal network is refused")
    func redirectsAreCheckedHopByHop() throws {
        let shop = try Shop()
        let metadata = try LoopbackReceiver()
        let redirector = try LoopbackReceiver { request, _ in
            request.target == "/to-metadata"
                ? .respond(status: 302, headers: [.init(name: "Location", value: "http://169.254.169.254/latest/meta-data")])
                : .respond(status: 307, headers: [.init(name: "Location", value: metadata.baseURL + "/moved")])
        }
        let follows = try shop.addWebhook(url: redirector.baseURL + "/to-metadata")
        let moved = try shop.addWebhook(url: redirector.baseURL + "/to-loopback", body: "{}")
        let stays = try shop.addWebhook(url: redirector.baseURL + "/not-followed", body: "{}")
        try shop.connection.query("UPDATE webhooky.webhooks SET follow_redirects = true WHERE id IN ($1, $2)", [String(follows), String(moved)])
        let worker = RunningWorker(shop.workerConfiguration(retry: [.seconds(60)]))
        defer { worker.stop() }
        try shop.setCredit("2")
        #expect(metadata.waitForRequests(1).first?.target == "/moved", "an allowed hop is followed (307 keeps the POST)")
        #expect(metadata.requests.first?.method == "POST")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries WHERE webhook_id = \(follows)") { $0 == "dead" } == "dead")
        let error = try shop.column("SELECT last_error FROM webhooky.deliveries WHERE webhook_id = \(follows)").first ?? nil
        #expect(error?.hasPrefix("refused to connect to 169.254.169.254 (link-local address)") == true, "\(error ?? "nil")")
        #expect(try shop.waitFor("SELECT last_status FROM webhooky.deliveries WHERE webhook_id = \(stays)") { $0 == "307" } == "307",
                "without follow_redirects a redirect is a failed attempt")
    }

    @Test("a redirect the worker does not follow (to another scheme, from https to http, a Location it cannot parse) is a failed attempt, retried like any other answer that is not 2xx (the endpoint may be set right), not the end of the delivery")
    func refusedRedirectIsRetried() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, number in
            number == 1 ? .respond(status: 302, headers: [.init(name: "Location", value: "ftp://127.0.0.1/moved")]) : .ok
        }
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/hook", body: "{}")
        try shop.connection.query("UPDATE webhooky.webhooks SET follow_redirects = true WHERE id = $1", [String(webhook)])
        let worker = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(100)]))
        defer { worker.stop() }
        try shop.setCredit("2")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" || $0 == "dead" } == "succeeded")
        #expect(try shop.connection.query("SELECT attempt, status, error FROM webhooky.attempts ORDER BY attempt").rows == [
            ["1", nil, "refused to follow a redirect to a URL that is not http or https"], ["2", "200", nil],
        ])
        #expect(receiver.requests.map(\.target) == ["/hook", "/hook"])
    }

    @Test("a webhook that follows redirects and gets a 3xx without a Location is not told that redirects are not followed")
    func aRedirectWithoutLocationSaysSo() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .status(302) }
        let follows = try shop.addWebhook(url: receiver.baseURL + "/nowhere")
        try shop.connection.query("UPDATE webhooky.webhooks SET follow_redirects = true WHERE id = $1", [String(follows)])
        let worker = RunningWorker(shop.workerConfiguration(retry: [.seconds(60)]))
        defer { worker.stop() }
        try shop.setCredit("2")
        #expect(try shop.waitFor("SELECT last_status FROM webhooky.deliveries") { $0 == "302" } == "302")
        #expect(try shop.column("SELECT last_error FROM webhooky.deliveries") == ["HTTP 302: a redirect without a Location header, nothing to follow"])
    }

    @Test("a webhook's X-Api-Key never reaches another origin a redirect leads to; its signature, Content-Type and body do")
    func customHeadersStayWithTheWebhooksOrigin() throws {
        let shop = try Shop()
        let other = try LoopbackReceiver()
        let own = try LoopbackReceiver { request, _ in
            switch request.target {
            case "/start": .respond(status: 307, headers: [.init(name: "Location", value: "/same")])
            case "/same": .respond(status: 307, headers: [.init(name: "Location", value: other.baseURL + "/other")])
            default: .ok
            }
        }
        let secret = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        let id = try shop.addWebhook(url: own.baseURL + "/start", body: ##"{"credit": #customer.credit#}"##,
                                     headers: #"{"X-Api-Key": "k-123", "Content-Type": "application/json; charset=utf-8"}"#, secret: secret)
        try shop.connection.query("UPDATE webhooky.webhooks SET follow_redirects = true WHERE id = $1", [String(id)])
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("5")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        #expect(own.requests.map(\.target) == ["/start", "/same"])
        #expect(own.requests.map { $0.header("x-api-key") } == ["k-123", "k-123"], "the webhook's own origin gets it on every hop")
        let arrived = try #require(other.requests.first)
        #expect(arrived.target == "/other")
        #expect(arrived.header("x-api-key") == nil)
        #expect(arrived.method == "POST")
        #expect(arrived.bodyText == #"{"credit": 5.00}"#)
        #expect(arrived.header("content-type") == "application/json; charset=utf-8")
        let messageID = try #require(arrived.header("webhook-id"))
        let timestamp = try #require(arrived.header("webhook-timestamp"))
        let key = try #require(Data(base64Encoded: String(secret.dropFirst("whsec_".count))))
        let expected = IndependentHMAC.hmacSHA256(key: Array(key), message: Array("\(messageID).\(timestamp).".utf8) + arrived.body)
        #expect(arrived.header("webhook-signature") == "v1," + Data(expected).base64EncodedString())
        // What \d+ webhooky.webhooks tells the admin who turns follow_redirects on.
        let comment = try #require(shop.column("SELECT col_description('webhooky.webhooks'::regclass, attnum) FROM pg_attribute WHERE attrelid = 'webhooky.webhooks'::regclass AND attname = 'follow_redirects'").first ?? nil)
        #expect(comment.contains("no hop gets the custom headers but Content-Type"), "\(comment)")
        #expect(comment.contains("the signature headers go along. 301, 302, 307 and 308 keep the POST and its body"), "\(comment)")
    }

    @Test("a 302 keeps the webhook's POST and its body, also to another origin (without the webhook's own headers), as the follow_redirects comment says: an endpoint that moved gets the message, not a GET without it")
    func foundKeepsThePost() throws {
        let shop = try Shop()
        let other = try LoopbackReceiver()
        let own = try LoopbackReceiver { _, _ in .respond(status: 302, headers: [.init(name: "Location", value: other.baseURL + "/other")]) }
        let id = try shop.addWebhook(url: own.baseURL + "/start", body: ##"{"credit": #customer.credit#}"##, headers: #"{"X-Api-Key": "k-123"}"#)
        try shop.connection.query("UPDATE webhooky.webhooks SET follow_redirects = true WHERE id = $1", [String(id)])
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("5")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        #expect(own.requests.first?.method == "POST")
        let arrived = try #require(other.requests.first)
        #expect(arrived.method == "POST")
        #expect(arrived.bodyText == #"{"credit": 5.00}"#)
        #expect(arrived.header("x-api-key") == nil)
        #expect(arrived.header("webhook-id") != nil)
        let comment = try #require(shop.column("SELECT col_description('webhooky.webhooks'::regclass, attnum) FROM pg_attribute WHERE attrelid = 'webhooky.webhooks'::regclass AND attname = 'follow_redirects'").first ?? nil)
        #expect(comment.contains("301, 302, 307 and 308 keep the POST and its body; 303 turns it into a GET without body"), "\(comment)")
    }

    @Test("a 303 that a signed webhook follows: the GET without the body carries the signature of an empty body, which verifies")
    func seeOtherIsSignedWithoutTheBody() throws {
        let shop = try Shop()
        let result = try LoopbackReceiver()
        let own = try LoopbackReceiver { _, _ in .respond(status: 303, headers: [.init(name: "Location", value: result.baseURL + "/result")]) }
        let secret = try #require(shop.column("SELECT webhooky.new_secret()").first ?? nil)
        let id = try shop.addWebhook(url: own.baseURL + "/start", body: ##"{"credit": #customer.credit#}"##, secret: secret)
        try shop.connection.query("UPDATE webhooky.webhooks SET follow_redirects = true WHERE id = $1", [String(id)])
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("5")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        let posted = try #require(own.requests.first)
        let fetched = try #require(result.requests.first)
        #expect(posted.method == "POST" && fetched.method == "GET" && fetched.body.isEmpty)
        let key = try #require(Data(base64Encoded: String(secret.dropFirst(6))))
        for (request, body) in [(posted, Array(#"{"credit": 5.00}"#.utf8)), (fetched, [])] {
            let id = request.header("webhook-id") ?? "", timestamp = request.header("webhook-timestamp") ?? ""
            let expected = "v1," + Data(IndependentHMAC.hmacSHA256(key: Array(key), message: Array("\(id).\(timestamp).".utf8) + body)).base64EncodedString()
            #expect(request.header("webhook-signature") == expected, "\(request.method)")
        }
    }
}
