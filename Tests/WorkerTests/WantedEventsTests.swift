import Foundation
import LoopbackReceiver
import Postgres
import Schema
import TestSupport
import Testing
import Worker

/// `webhooky.wanted_events` (sql/0008_wanted_events.sql): a trigger whose event no enabled
/// webhook wants does not run at all, and one that is wanted always does.
@Suite(.timeLimit(.minutes(10))) struct WantedEventsTests {
    static let credit = "customer.credit_changed"
    static let tier = "customer.tier_changed"

    /// How many times the credit trigger's function ran in a transaction that changes a credit
    /// (from PostgreSQL's own function statistics), and how many events that transaction recorded.
    func creditTriggerRuns(_ shop: Shop, credit: String) throws -> (calls: Int, events: Int) {
        let connection = shop.connection
        try connection.execute("BEGIN; SET LOCAL track_functions = 'pl'")
        do {
            // The "xact" counter holds calls not yet reported to the statistics system, which
            // may include earlier transactions': count the difference.
            let counts = "SELECT coalesce(pg_stat_get_xact_function_calls('ellity.customer_credit_changed'::regproc), 0), (SELECT count(*) FROM webhooky.events)"
            let before = try connection.query(counts).rows[0].map { Int($0 ?? "") ?? -1 }
            try shop.setCredit(credit)
            let after = try connection.query(counts).rows[0].map { Int($0 ?? "") ?? -1 }
            try connection.execute("COMMIT")
            return (after[0] - before[0], after[1] - before[1])
        } catch {
            _ = try? connection.execute("ROLLBACK")
            throw error
        }
    }

    func wanted(_ shop: Shop) throws -> String? {
        try shop.connection.query("SELECT pg_sequence_last_value('webhooky.wanted_events')::text").scalar
    }

    func bit(_ shop: Shop, _ event: String) throws -> String? {
        try shop.connection.query("SELECT webhooky.event_bit($1)::text", [event]).scalar
    }

    @Test("the reference triggers test their own event's bit, as webhooky.wanted_condition writes it")
    func referenceTriggersUseTheirEventsCondition() throws {
        let shop = try Shop()
        for (trigger, event) in [("customer_credit_changed", Self.credit), ("customer_tier_changed", Self.tier)] {
            let definition = try #require(try shop.connection.query("SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = $1", [trigger]).scalar)
            let condition = try #require(try shop.connection.query("SELECT webhooky.wanted_condition($1)", [event]).scalar)
            let bit = try #require(try bit(shop, event))
            #expect(condition == "coalesce(pg_sequence_last_value('webhooky.wanted_events'), '-1'::bigint) & '\(bit)'::bigint <> 0")
            #expect(definition.contains("pg_sequence_last_value('webhooky.wanted_events'::regclass), '-1'::bigint) & '\(bit)'::bigint) <> 0"), "\(definition)")
        }
        #expect(try bit(shop, Self.credit) != bit(shop, Self.tier))
        // The bit is the MD5 of the name: the same on every server and version.
        #expect(try bit(shop, "order.paid") == "9007199254740992")
    }

    @Test("no enabled webhook: the trigger does not run; a new webhook is honoured at once")
    func unwantedEventsSkipTheTrigger() throws {
        let shop = try Shop()
        #expect(try wanted(shop) == "0")
        #expect(try creditTriggerRuns(shop, credit: "1.00") == (0, 0))

        // A webhook of another event does not wake this trigger.
        try shop.addWebhook(event: Self.tier, url: "http://127.0.0.1:9/tier")
        #expect(try wanted(shop) == bit(shop, Self.tier))
        #expect(try creditTriggerRuns(shop, credit: "2.00") == (0, 0))

        try shop.addWebhook(url: "http://127.0.0.1:9/credit")
        #expect(try creditTriggerRuns(shop, credit: "3.00") == (1, 1))
        let payload = try shop.connection.query("SELECT payload->'customer'->>'credit' FROM webhooky.events WHERE event = $1", [Self.credit]).scalar
        #expect(payload == "3.00")
    }

    @Test("a disabled or deleted webhook's bit stays until a refresh, which clears only unneeded bits")
    func refreshClearsOnlyUnneededBits() throws {
        let shop = try Shop()
        let credit = try shop.addWebhook(url: "http://127.0.0.1:9/credit")
        let tier = try shop.addWebhook(event: Self.tier, url: "http://127.0.0.1:9/tier")
        let both = try shop.connection.query("SELECT (webhooky.event_bit($1) | webhooky.event_bit($2))::text", [Self.credit, Self.tier]).scalar
        #expect(try wanted(shop) == both)

        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(credit)])
        #expect(try wanted(shop) == both, "cleared only by a refresh")
        #expect(try creditTriggerRuns(shop, credit: "1.00") == (1, 0), "the trigger runs, emit records nothing")
        #expect(try shop.connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == bit(shop, Self.tier))
        #expect(try wanted(shop) == bit(shop, Self.tier))
        #expect(try creditTriggerRuns(shop, credit: "2.00") == (0, 0))

        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(credit)])
        #expect(try creditTriggerRuns(shop, credit: "3.00") == (1, 1))

        try shop.connection.query("DELETE FROM webhooky.webhooks WHERE id IN ($1, $2)", [String(credit), String(tier)])
        #expect(try shop.connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == "0")
        #expect(try creditTriggerRuns(shop, credit: "4.00") == (0, 0))
    }

    @Test("a webhook being enabled in an open transaction keeps its bit: a refresh does not wait and clears nothing")
    func refreshNeverRacesAnEnable() throws {
        let shop = try Shop()
        let admin = try shop.database.connect()
        try admin.execute("BEGIN")
        try admin.query("INSERT INTO webhooky.webhooks (event, url) VALUES ($1, 'http://127.0.0.1:9/x')", [Self.credit])
        #expect(try wanted(shop) == bit(shop, Self.credit), "set before the commit")

        let started = ContinuousClock.now
        #expect(try shop.connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == bit(shop, Self.credit))
        #expect(ContinuousClock.now - started < .seconds(2), "the refresh does not wait for the lock")
        #expect(try wanted(shop) == bit(shop, Self.credit))

        // Committed: the change made meanwhile is recorded for the new webhook.
        try admin.execute("COMMIT")
        #expect(try creditTriggerRuns(shop, credit: "5.00") == (1, 1))
        #expect(try shop.connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == bit(shop, Self.credit))

        // Rolled back: the bit stays (it only costs time) until the next refresh.
        try admin.execute("BEGIN")
        try admin.query("INSERT INTO webhooky.webhooks (event, url) VALUES ($1, 'http://127.0.0.1:9/y')", [Self.tier])
        try admin.execute("ROLLBACK")
        let both = try shop.connection.query("SELECT (webhooky.event_bit($1) | webhooky.event_bit($2))::text", [Self.credit, Self.tier]).scalar
        #expect(try wanted(shop) == both)
        #expect(try shop.connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == bit(shop, Self.credit))
    }

    @Test("a reset sequence wants every event until the next refresh, also after a webhook is added")
    func aResetSequenceWantsEverything() throws {
        let shop = try Shop()
        try shop.addWebhook(url: "http://127.0.0.1:9/credit")
        try shop.connection.execute("ALTER SEQUENCE webhooky.wanted_events RESTART")
        #expect(try wanted(shop) == nil)
        #expect(try creditTriggerRuns(shop, credit: "1.00") == (1, 1))
        try shop.addWebhook(event: Self.tier, url: "http://127.0.0.1:9/tier")
        #expect(try wanted(shop) == nil, "adding one event's bit would drop every other event's")
        #expect(try creditTriggerRuns(shop, credit: "1.50") == (1, 1))
        try shop.connection.execute("DELETE FROM webhooky.webhooks WHERE event = 'customer.tier_changed'")
        #expect(try shop.connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == bit(shop, Self.credit))
        #expect(try creditTriggerRuns(shop, credit: "2.00") == (1, 1))
    }

    @Test("a refresh clears nothing in a transaction that has written (it may roll back) or that reads an older snapshot")
    func refreshOnlyTrustsCommittedChanges() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "http://127.0.0.1:9/credit")
        let bit = try bit(shop, Self.credit)
        try shop.connection.execute("BEGIN")
        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(webhook)])
        #expect(try shop.connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == bit)
        try shop.connection.execute("ROLLBACK")
        #expect(try wanted(shop) == bit, "the webhook is enabled again: its bit must be there")
        #expect(try creditTriggerRuns(shop, credit: "1.00") == (1, 1))

        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(webhook)])
        try shop.connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        #expect(try shop.connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == bit)
        try shop.connection.execute("COMMIT")
        #expect(try shop.connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == "0", "READ COMMITTED, nothing written: cleared")
    }

    @Test("wanted_condition refuses an unknown event: a trigger tested on a misspelt name would never run")
    func wantedConditionRefusesUnknownEvents() throws {
        let shop = try Shop()
        do {
            _ = try shop.connection.query("SELECT webhooky.wanted_condition('customer.credit_changd')")
            Issue.record("an unknown event was accepted")
        } catch {
            #expect(error.message == "webhooky.wanted_condition: unknown event 'customer.credit_changd'")
            #expect(error.hint?.contains("INSERT INTO webhooky.event_types") == true)
        }
    }

    @Test("workers and admins may refresh; other roles may not (it locks webhooks against every change)")
    func whoMayRefresh() throws {
        let shop = try Shop()
        let suffix = "\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try shop.connection.execute("""
            CREATE ROLE w_\(suffix) LOGIN IN ROLE webhooky_worker; CREATE ROLE a_\(suffix) LOGIN IN ROLE webhooky_admin;
            CREATE ROLE e_\(suffix) LOGIN IN ROLE webhooky_emitter;
            """)
        defer { _ = try? shop.connection.execute("DROP ROLE w_\(suffix); DROP ROLE a_\(suffix); DROP ROLE e_\(suffix)") }
        for (role, allowed) in [("w", true), ("a", true), ("e", false)] {
            let connection = try Connection(conninfo: shop.database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(role)_\(suffix)"))
            if allowed {
                #expect(try connection.query("SELECT webhooky.refresh_wanted_events()::text").scalar == "0", "\(role)")
            } else {
                #expect(throws: PostgresError.self) { try connection.query("SELECT webhooky.refresh_wanted_events()") }
            }
        }
    }

    @Test("a running worker clears the bits of deleted webhooks by itself")
    func theWorkerRefreshes() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "http://127.0.0.1:9/credit")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.connection.query("DELETE FROM webhooky.webhooks WHERE id = $1", [String(webhook)])
        #expect(try wanted(shop) == bit(shop, Self.credit))
        #expect(try shop.waitFor("SELECT pg_sequence_last_value('webhooky.wanted_events')::text", timeout: .seconds(15)) { $0 == "0" } == "0")
        #expect(try creditTriggerRuns(shop, credit: "1.00") == (0, 0))
    }

    @Test("roles that change business tables read the bits; has_webhooks answers from them")
    func everyRoleCanEvaluateTheCondition() throws {
        let shop = try Shop()
        let suffix = "\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try shop.connection.execute("""
            CREATE ROLE plain_\(suffix) LOGIN;
            GRANT USAGE ON SCHEMA ellity TO plain_\(suffix);
            GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA ellity TO plain_\(suffix);
            """)
        defer { _ = try? shop.connection.execute("DROP OWNED BY plain_\(suffix); DROP ROLE plain_\(suffix)") }
        var plain: Connection? = try Connection(conninfo: shop.database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=plain_\(suffix)"))
        // No webhook: the trigger (whose emit this role may not call) does not run.
        try plain?.query("UPDATE ellity.customers SET credit = 9 WHERE id = $1", [Shop.customerID])
        plain = nil
        #expect(try shop.connection.query("SELECT webhooky.has_webhooks($1)::text", [Self.credit]).scalar == "false")
        try shop.addWebhook(url: "http://127.0.0.1:9/credit", account: "shop-7")
        #expect(try shop.connection.query("SELECT webhooky.has_webhooks($1, 'shop-7')::text", [Self.credit]).scalar == "true")
        #expect(try shop.connection.query("SELECT webhooky.has_webhooks($1, 'shop-42')::text", [Self.credit]).scalar == "false")
    }
}
