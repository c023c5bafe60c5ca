import Foundation
import Log
import Postgres
import TestSupport
import Testing
@testable import Worker

@Suite struct PlanRenewalTests {
    let start = ContinuousClock.now

    @Test func plansAgainAfterEachDoublingOfTheDeliveriesHandled() {
        var renewal = PlanRenewal(now: start)
        renewal.record(999)
        #expect(!renewal.isDue(now: start))
        renewal.record(1)
        #expect(renewal.isDue(now: start))
        renewal.planned(now: start)
        #expect(renewal.threshold == 2_000 && renewal.handled == 0)
        renewal.record(1_999)
        #expect(!renewal.isDue(now: start))
        renewal.record(1)
        #expect(renewal.isDue(now: start))
    }

    @Test func plansAgainOnceAMinuteOnlyWhileThereIsWork() {
        var renewal = PlanRenewal(now: start)
        #expect(!renewal.isDue(now: start + .seconds(3_600)), "idle: the plans are kept")
        renewal.record(1)
        #expect(!renewal.isDue(now: start + .seconds(59)))
        #expect(renewal.isDue(now: start + .seconds(60)))
        renewal.planned(now: start + .seconds(60))
        #expect(renewal.threshold == 1_000, "a renewal by age does not raise the threshold")
    }

    @Test func theThresholdStopsGrowingAtItsMaximum() {
        var renewal = PlanRenewal(threshold: 1_000, maximumThreshold: 4_000, now: start)
        for _ in 0..<5 {
            renewal.record(renewal.threshold)
            renewal.planned(now: start)
        }
        #expect(renewal.threshold == 4_000)
    }
}

/// The worker's statements, planned as the worker plans them (generic plans, sequential scans
/// off, no JIT) on a queue of 20,000 deliveries, must reach `webhooky.deliveries`, `events` and
/// `attempts` only through index conditions: a scan of a whole index (a plan that worked on an
/// empty table, or a partial index full of entries of finished deliveries) makes a large
/// backlog drain slower and slower.
@Suite struct StatementPlanTests {
    static let bigTables: Set<String> = ["deliveries", "events", "attempts"]

    /// Every scan of a big table in `plan` (EXPLAIN's JSON), with whether it has an index condition.
    static func scans(in plan: [String: Any], into found: inout [(relation: String, node: String, indexed: Bool)]) {
        if let relation = plan["Relation Name"] as? String, bigTables.contains(relation), let node = plan["Node Type"] as? String, node.hasSuffix("Scan") {
            let indexed = plan["Index Cond"] != nil || plan["Recheck Cond"] != nil
            found.append((relation, "\(node) \(plan["Index Name"] as? String ?? "")", indexed))
        }
        for child in plan["Plans"] as? [[String: Any]] ?? [] { scans(in: child, into: &found) }
    }

    static let statements: [String: String] = [
        "claim": DeliveryStore.claimSQL, "claim after a cursor": DeliveryStore.claimSQL, "fan-out": DeliveryStore.fanOutSQL, "fan-out of everything": DeliveryStore.fanOutSQL,
        "fan-out that fits": DeliveryStore.fanOutFittingSQL,
        "record": DeliveryStore.recordSQL, "recorded": DeliveryStore.recordedSQL, "release": DeliveryStore.releaseSQL, "own claims": DeliveryStore.ownClaimsSQL, "reap": DeliveryStore.reapSQL, "reap after the last": DeliveryStore.reapSQL,
        "end orphaned": DeliveryStore.endOrphanedSQL, "heartbeat": WorkerRegistry.upsertSQL,
    ]

    @Test(arguments: [
        ("claim", ["100", "w1", "{}", "{}", "64", "60000", "{}", "{}", "{}"]),
        ("claim after a cursor", ["100", "w1", "{}", "{}", "64", "60000", "{1}", "{\"2026-01-01 00:00:00+00\"}", "{5}"]),
        ("fan-out", ["100", "w1", "{}", "{}", "64", "100", "60000", "0", "true"]),
        ("fan-out of everything", ["100", "w1", "{}", "{}", "64", "100", "60000", "0", "false"]),
        ("fan-out that fits", ["64", "w1", "60000", "0", "256", "8", "{1}", "{64}"]),
        ("record", [
            #"[{"id":11,"webhook_id":1,"attempt":1,"state":"succeeded","status":200,"started_us":1500000,"duration_us":2000}]"#, "w1",
            #"[{"webhook_id":1,"failures":0,"first_failure":null,"last_success":1.5,"last_attempt":1.5,"gone":false}]"#, "10", "60",
        ]),
        ("recorded", ["{11,21}", "{1,1}", "w1"]),
        ("release", ["{11,21}", "w1", "0", "{1,1}"]),
        ("own claims", ["w1"]),
        ("reap", ["-infinity"]),
        ("reap after the last", ["1767225600.123456"]),
        ("end orphaned", []),
        ("heartbeat", ["w1", "host", "1", "1.0.0", "true", "120", "true", "2026-01-01 00:00:00+00"]),
    ] as [(String, [String])])
    func findsItsRowsThroughIndexes(name: String, parameters: [String]) throws {
        let sql = try #require(StatementPlanTests.statements[name])
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "http://127.0.0.1:9/hook")
        try shop.connection.execute("""
            INSERT INTO webhooky.events (event, account_id, payload, webhook_ids, fanned_out)
                 SELECT 'customer.credit_changed', 'shop-42', '{"customer":{"id":1}}', ARRAY[\(webhook)]::bigint[], n % 10 <> 0
                   FROM generate_series(1, 20000) n;
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, claimed_by, lease_expires_at, completed_at)
                 SELECT id, \(webhook), CASE WHEN id % 200 = 1 THEN 'sending' WHEN id % 10 = 2 THEN 'pending' ELSE 'succeeded' END,
                        1, CASE WHEN id % 200 = 1 THEN 'w1' END, CASE WHEN id % 200 = 1 THEN now() + interval '1 minute' END,
                        CASE WHEN id % 200 <> 1 AND id % 10 <> 2 THEN now() END
                   FROM webhooky.events WHERE fanned_out;
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, worker)
                 SELECT id, webhook_id, 1, now(), 1, 200, 'w1' FROM webhooky.deliveries WHERE state = 'succeeded';
            """)
        try shop.connection.execute("VACUUM ANALYZE webhooky.events, webhooky.deliveries, webhooky.attempts")
        let connection = try shop.database.connect()
        try Dispatcher.prepareSession(connection, logger: Logger(level: .error))
        try connection.prepare("statement", sql)
        let literals = parameters.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }
        let explain = try connection.query("EXPLAIN (FORMAT JSON) EXECUTE statement" + (literals.isEmpty ? "" : "(" + literals.joined(separator: ", ") + ")"))
        let json = try #require(explain.scalar)
        let root = try #require((try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])?.first?["Plan"] as? [String: Any])
        #expect(!json.contains("\"JIT\""), "\(name) would be JIT-compiled (tens of milliseconds for a statement of microseconds)")
        var found: [(relation: String, node: String, indexed: Bool)] = []
        StatementPlanTests.scans(in: root, into: &found)
        #expect(!found.isEmpty || name == "heartbeat", "the plan of \(name) reads no big table?")
        // Test deliveries (webhooky.send_test) are few by nature: reading all pending ones is fine.
        for scan in found where !scan.node.hasSuffix("deliveries_pending_tests") {
            #expect(scan.indexed, "\(name): \(scan.node) on \(scan.relation) reads the whole index or table\n\(json)")
        }
    }
}

@Suite struct WorkerRegistryTests {
    @Test("wants_wakeup flips without waiting for the disk, and only that transaction does: the fan-outs after it stay durable")
    func wakeupFlagCommitsAsynchronouslyAlone() throws {
        let shop = try Shop()
        let connection = try shop.database.connect()
        try Dispatcher.prepareSession(connection, logger: Logger(level: .error))
        let startedAt = try #require(try WorkerRegistry.register(connection, id: "w1", host: "h", pid: 1, version: "v", listening: true, replacing: nil))
        #expect(try shop.column("SELECT wants_wakeup::text FROM webhooky.workers") == ["true"])

        try WorkerRegistry.setWantsWakeup(connection, id: "w1", startedAt: startedAt, false)
        #expect(try shop.column("SELECT wants_wakeup::text FROM webhooky.workers") == ["false"], "seen by other sessions at once")
        #expect(try connection.query("SHOW synchronous_commit").scalar == "on", "the next statements commit durably again")
        try WorkerRegistry.setWantsWakeup(connection, id: "w1", startedAt: startedAt, true)
        #expect(try shop.column("SELECT wants_wakeup::text FROM webhooky.workers") == ["true"])
        #expect(try connection.query("SHOW synchronous_commit").scalar == "on")
    }
}
