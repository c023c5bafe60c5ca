import Foundation
import LocalPostgres
import Log
import LoopbackReceiver
import Postgres
import TestSupport
import Testing
@testable import Worker

/// The two fan-out statements: `fanOutFittingSQL` must do exactly what `fanOutSQL` does
/// whenever a batch fits, and nothing at all when it would not.
@Suite struct FanOutTests {
    /// Three events, each wanted by three webhooks when emitted; since then the second webhook
    /// was disabled and the third deleted. Returns the shop and the webhooks' ids.
    static func shopWithThreeEvents() throws -> (shop: Shop, enabled: Int64, disabled: Int64) {
        let shop = try Shop()
        try shop.addCustomers(3)
        let enabled = try shop.addWebhook(url: "http://127.0.0.1:9/a", name: "a")
        let disabled = try shop.addWebhook(url: "http://127.0.0.1:9/b", name: "b")
        let deleted = try shop.addWebhook(url: "http://127.0.0.1:9/c", name: "c")
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100003")
        try shop.connection.execute("UPDATE webhooky.webhooks SET enabled = false WHERE id = \(disabled); DELETE FROM webhooky.webhooks WHERE id = \(deleted)")
        return (shop, enabled, disabled)
    }

    /// What a fan-out left in the tables, without ids and times: per delivery its event's
    /// customer, webhook, state, attempts, claimant and whether it has a lease; per event
    /// whether it is fanned out.
    static func tables(_ shop: Shop) throws -> [[String?]] {
        try shop.connection.query("""
            SELECT e.payload #>> '{customer,id}', w.name, d.state, d.attempts::text, d.claimed_by, (d.lease_expires_at IS NOT NULL)::text
              FROM webhooky.deliveries d JOIN webhooky.events e ON e.id = d.event_id JOIN webhooky.webhooks w ON w.id = d.webhook_id
            UNION ALL
            SELECT e.payload #>> '{customer,id}', 'event', e.fanned_out::text, NULL, NULL, NULL FROM webhooky.events e
             ORDER BY 1, 2
            """).rows
    }

    static func session(_ shop: Shop) throws -> Connection {
        let connection = try shop.database.connect()
        try Dispatcher.prepareSession(connection, logger: Logger(level: .error))
        return connection
    }

    /// The deliveries a fan-out of every waiting event claims for worker `w1` (room 64 per webhook).
    static func claimed(_ connection: Connection) throws -> [ClaimedDelivery] {
        try DeliveryStore.fanOut(connection, events: 10, after: 0, workerID: "w1", lease: .seconds(60), room: 64, rooms: [:],
                                 capacity: 256, onlyWhatFits: true).claimed
    }

    @Test("a batch that fits: the short statement writes and returns what the full one does")
    func fittingStatementMatchesTheFullOne() throws {
        let (full, enabled, disabled) = try FanOutTests.shopWithThreeEvents()
        let fullResult = try DeliveryStore.fanOut(
            FanOutTests.session(full), events: 10, after: 0, workerID: "w1", lease: .seconds(60), room: 64, rooms: [:], capacity: 256, onlyWhatFits: true)
        let (short, shortEnabled, _) = try FanOutTests.shopWithThreeEvents()
        let shortResult = try #require(try DeliveryStore.fanOutFitting(
            FanOutTests.session(short), events: 10, after: 0, workerID: "w1", lease: .seconds(60), room: 64, rooms: [:], capacity: 256))

        #expect(shortEnabled == enabled, "both databases have the same ids")
        #expect(shortResult.events == 3 && fullResult.events == 3)
        #expect(shortResult.pending == 3 && fullResult.pending == 3, "the disabled webhook's deliveries wait pending")
        #expect(shortResult.pendingWebhooks == [disabled] && fullResult.pendingWebhooks == [disabled])
        #expect(shortResult.lastEventID == fullResult.lastEventID && shortResult.lastEventID != nil)
        #expect(!shortResult.stopped && !fullResult.stopped && shortResult.stoppedBy == nil)
        let claimed = shortResult.claimed.map { [String($0.id), String($0.webhookID), String($0.webhookRevision), String($0.eventID), $0.payload] }
        #expect(claimed == fullResult.claimed.map { [String($0.id), String($0.webhookID), String($0.webhookRevision), String($0.eventID), $0.payload] })
        #expect(claimed.count == 3 && shortResult.claimed.allSatisfy { $0.webhookID == enabled && $0.attempt == 1 })

        let rows = try FanOutTests.tables(short)
        #expect(rows == (try FanOutTests.tables(full)))
        #expect(rows.filter { $0[1] == "a" }.map { $0[2...].map { $0 ?? "-" } } == Array(repeating: ["sending", "1", "w1", "true"], count: 3))
        #expect(rows.filter { $0[1] == "b" }.map { $0[2...].map { $0 ?? "-" } } == Array(repeating: ["pending", "0", "-", "false"], count: 3))
        #expect(!rows.contains { $0[1] == "c" }, "a deleted webhook gets no delivery")
        #expect(rows.filter { $0[1] == "event" }.map { $0[2] } == ["true", "true", "true"])
    }

    /// Two enabled webhooks; five events wanted by both, then one whose ids list is empty.
    static func shopWithTwoWebhooks() throws -> Shop {
        let shop = try Shop()
        try shop.addCustomers(5)
        try shop.addWebhook(url: "http://127.0.0.1:9/a", name: "a")
        try shop.addWebhook(url: "http://127.0.0.1:9/b", name: "b")
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100005")
        try shop.connection.execute("""
            INSERT INTO webhooky.events (event, account_id, payload, webhook_ids)
            VALUES ('customer.credit_changed', 'shop-42', '{"customer":{"id":"none"}}', '{}')
            """)
        return shop
    }

    @Test("two webhooks per event, from a cursor, and an event no webhook wants: the short statement matches the full one")
    func fittingStatementMatchesTheFullOneFromACursor() throws {
        var results: [[String]] = []
        var tables: [[[String?]]] = []
        for fitting in [false, true] {
            let shop = try FanOutTests.shopWithTwoWebhooks()
            let first = try #require(Int64(try shop.column("SELECT min(id) FROM webhooky.events").first.flatMap { $0 } ?? ""))
            let connection = try FanOutTests.session(shop)
            let result = fitting
                ? try #require(try DeliveryStore.fanOutFitting(connection, events: 10, after: first, workerID: "w1", lease: .seconds(60), room: 64, rooms: [:], capacity: 256))
                : try DeliveryStore.fanOut(connection, events: 10, after: first, workerID: "w1", lease: .seconds(60), room: 64, rooms: [:], capacity: 256, onlyWhatFits: true)
            results.append([String(result.events), String(result.pending), "\(result.lastEventID ?? -1)", "\(result.stopped)"]
                + result.claimed.map { "\($0.id) \($0.webhookID) \($0.eventID) \($0.payload)" })
            tables.append(try FanOutTests.tables(shop))
        }
        #expect(results[0] == results[1])
        #expect(tables[0] == tables[1])
        #expect(results[1][0] == "5", "the four events after the cursor and the one nobody wants")
        #expect(results[1].count == 4 + 8, "two claimed deliveries for each of the four events")
        let fanned = try #require(tables.last).filter { $0[1] == "event" }
        #expect(fanned.filter { $0[2] == "false" }.count == 1, "the event before the cursor is left for a look from the start")
    }

    @Test("a batch whose deliveries are more than the worker can take: the short statement writes nothing and leaves the events to the full statement")
    func fittingStatementLeavesABatchOverTheLimitAlone() throws {
        let (shop, _, _) = try FanOutTests.shopWithThreeEvents()
        let connection = try FanOutTests.session(shop)
        // 3 events x 3 webhook ids = 9 possible deliveries, more than 8.
        #expect(try DeliveryStore.fanOutFitting(connection, events: 10, after: 0, workerID: "w1", lease: .seconds(60), room: 64, rooms: [:], capacity: 8) == nil)
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries") == ["0"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.events WHERE NOT fanned_out") == ["3"])
        // The full statement, on another session, finds all three at once.
        let full = try DeliveryStore.fanOut(
            FanOutTests.session(shop), events: 10, after: 0, workerID: "w2", lease: .seconds(60), room: 64, rooms: [:], capacity: 8, onlyWhatFits: true)
        #expect(full.events == 3 && full.claimed.count == 3)
        // Within the limit, the short statement fans out (a new event: only the enabled webhook wants it).
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = 100001")
        let next = try #require(try DeliveryStore.fanOutFitting(connection, events: 10, after: 0, workerID: "w1", lease: .seconds(60), room: 64, rooms: [:], capacity: 8))
        #expect(next.events == 1 && next.claimed.count == 1 && next.pending == 0)
    }

    @Test("a batch that gives a webhook more deliveries than its room (the default one, or the one given for it): the short statement writes nothing")
    func fittingStatementLeavesABatchOverAWebhooksRoomAlone() throws {
        let shop = try FanOutTests.shopWithTwoWebhooks()
        let connection = try FanOutTests.session(shop)
        let (a, b) = try { () throws -> (Int64, Int64) in
            let ids = try shop.column("SELECT id FROM webhooky.webhooks ORDER BY name").compactMap { $0.flatMap { Int64($0) } }
            return (ids[0], ids[1])
        }()
        // Five events for each webhook: a default room of 4 is too small for both.
        #expect(try DeliveryStore.fanOutFitting(connection, events: 10, after: 0, workerID: "w1", lease: .seconds(60), room: 4, rooms: [:], capacity: 256) == nil)
        // A room of 5 given for one of them is not enough: the other still has the default; nor
        // is a room of 4 given for one, whatever the default.
        #expect(try DeliveryStore.fanOutFitting(connection, events: 10, after: 0, workerID: "w1", lease: .seconds(60), room: 4, rooms: [a: 5], capacity: 256) == nil)
        #expect(try DeliveryStore.fanOutFitting(connection, events: 10, after: 0, workerID: "w1", lease: .seconds(60), room: 64, rooms: [b: 4], capacity: 256) == nil)
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries") == ["0"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.events WHERE NOT fanned_out") == ["6"])
        // Room for five each: all of it.
        let all = try #require(try DeliveryStore.fanOutFitting(connection, events: 10, after: 0, workerID: "w1", lease: .seconds(60), room: 4, rooms: [a: 5, b: 5], capacity: 256))
        #expect(all.events == 6 && all.claimed.count == 10)
    }

    /// How many times the server ran each fan-out statement (`execute webhooky_fan_out...` lines
    /// of a cluster logging every statement) in `log` after its first `from` bytes.
    static func fanOutStatements(in log: String, from: Int) -> (full: Int, fitting: Int) {
        let text = String(decoding: log.utf8.dropFirst(from), as: UTF8.self)
        return (text.components(separatedBy: "execute webhooky_fan_out:").count - 1,
                text.components(separatedBy: "execute webhooky_fan_out_fitting:").count - 1)
    }

    @Test("an event with more deliveries than the worker may have in flight holds the fan-out once: once it is taken whole, the next fan-outs use the short statement again (the hold on the worker's capacity lasted until a reconnect, every fan-out taking the full statement)")
    func workerCapacityHoldEndsAfterAWholeBatch() throws {
        let cluster = try LocalCluster(name: "fanout-statements", settings: ["log_statement": "all"])
        defer { cluster.destroy() }
        let shop = try Shop(database: TestDatabase.create(in: cluster))
        var receivers: [LoopbackReceiver] = []
        defer { for receiver in receivers { receiver.stop() } }
        for number in 0..<5 {
            let receiver = try LoopbackReceiver()
            receivers.append(receiver)
            try shop.addWebhook(url: receiver.baseURL + "/credit\(number)", name: "credit \(number)")
        }
        let tier = try LoopbackReceiver()
        defer { tier.stop() }
        try shop.addWebhook(event: "customer.tier_changed", url: tier.baseURL + "/tier", name: "tier")
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlight = 4  // one fewer than the five deliveries of a credit change
        let worker = RunningWorker(configuration)
        defer { worker.stop() }

        // Five deliveries for a worker that may have four in flight: the fan-out stops for the
        // worker's capacity, its patience runs out, and it takes the event whole (four claimed,
        // one pending for the claim statement).
        try shop.setCredit("1")
        #expect(receivers.allSatisfy { $0.waitForRequests(1).count == 1 })
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "5" } == "5")
        // The fan-outs of the first event's aftermath (a poll while the worker was full sets a
        // hold of its own) end within a poll or two: counted from a moment after them. (A full
        // statement right after the fifth success failed the count on a loaded machine.)
        Thread.sleep(forTimeInterval: 0.5)
        let mark = (ChildProcess.readFile(cluster.logPath) ?? "").utf8.count
        #expect(FanOutTests.fanOutStatements(in: ChildProcess.readFile(cluster.logPath) ?? "", from: 0).full >= 1,
                "the first event was taken by the full statement")

        // Three tier changes, one delivery each, one at a time: each fits, and so does every
        // fan-out of the polls meanwhile (200 ms apart).
        for (number, id) in [2, 1, 2].enumerated() {
            try shop.setTier(id)
            #expect(tier.waitForRequests(number + 1).count == number + 1)
            #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == String(6 + number) } == String(6 + number))
        }
        Thread.sleep(forTimeInterval: 0.5)
        let statements = FanOutTests.fanOutStatements(in: ChildProcess.readFile(cluster.logPath) ?? "", from: mark)
        // A straggler of the first event's aftermath may still land after the mark; the hold
        // that outlived its event made every later fan-out full (and none short).
        #expect(statements.full <= 1 && statements.fitting >= 3,
                "fan-outs after the first event: \(statements.full) with the full statement, \(statements.fitting) with the short one")
    }
}
