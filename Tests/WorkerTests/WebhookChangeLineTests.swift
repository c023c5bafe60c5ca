import Foundation
import HTTPClient
import LocalPostgres
import LoopbackReceiver
import Postgres
import Testing
import TestSupport
@testable import Worker

/// What an admin's change of a webhook does to its deliveries that a worker claimed and keeps
/// waiting in its HTTP client's line (see `EndpointLineTests`): they are not sent after the
/// change committed, they go back to the webhook's queue.
@Suite(.timeLimit(.minutes(10))) struct WebhookChangeLineTests {
    @Test("a webhook disabled, deleted, moved to another account or edited while deliveries of it wait in the worker's line: none of them goes out as it was after the change committed; disabled, they wait and go after it is enabled again; edited, they go with the new revision; deleted or moved, they end dead, with no attempt counted. A worker that does not listen finds the change when it polls",
          arguments: ["disable", "delete", "move", "edit"], [true, false])
    func changeTakesTheLineBack(change: String, listen: Bool) throws {
        let shop = try Shop()
        let (receiver, webhook, worker) = try WebhookChangeLineTests.twoInLine(shop, listen: listen)
        defer { worker.stop() }

        switch change {
        case "disable": try shop.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(webhook)])
        case "delete": try shop.connection.query("SELECT webhooky.delete_webhook($1)", [String(webhook)])
        // Given to another account: the deliveries of this account's events end dead.
        case "move": try shop.connection.query("UPDATE webhooky.webhooks SET account_id = 'shop-7' WHERE id = $1", [String(webhook)])
        default: try shop.connection.query("UPDATE webhooky.webhooks SET url = $2 WHERE id = $1", [String(webhook), receiver.baseURL + "/new"])
        }
        let committedAt = Date().timeIntervalSince1970
        // The two in flight end 1.5 s after they began; what waited in line would follow them.
        Thread.sleep(forTimeInterval: 3.5)
        // A notification takes a moment to reach the worker: what it started within 0.2 s was
        // as good as in flight when the change committed.
        let late = receiver.requests.filter { $0.receivedAt > committedAt + 0.2 && (change == "edit" ? $0.target == "/old" : true) }
        #expect(late.isEmpty, "sent as the webhook was before the change, after it committed: \(late.map { $0.header("webhook-id") ?? "?" })")

        switch change {
        case "disable":
            let states = try shop.deliveryStates()
            #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE state = 'pending'") == ["8"], "\(states)")
            try shop.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(webhook)])
            #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(30)) { $0 == "40" } == "40")
            #expect(Set(receiver.requests.compactMap { $0.header("webhook-id") }).count == 40, "every delivery arrived")
        case "delete", "move":
            let reason = change == "delete" ? "webhook deleted" : "webhook moved to another account: this event is not of its account"
            let states = try shop.deliveryStates()
            // The two in flight ended dead with the delete (their answers came too late to count);
            // the events not fanned out yet when it was deleted got no delivery.
            #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") == ["30"], "\(states)")
            // (A fan-out that ran while the delete committed may have made pending deliveries for
            // it, which its trigger could not see: the worker ends those dead when it next reaps,
            // within a quarter of the lease, and never sends them.)
            #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state <> 'succeeded' AND (state <> 'dead' OR last_error <> '\(reason)')",
                                     timeout: .seconds(30)) { $0 == "0" } == "0", "\(states)")
            #expect(receiver.requests.count == 32)
        default:
            #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(30)) { $0 == "40" } == "40")
            let arrived = receiver.requests
            #expect(Set(arrived.compactMap { $0.header("webhook-id") }).count == 40, "every delivery arrived")
            #expect(arrived.filter { $0.target == "/new" }.count == 8, "what had not gone out went to the new URL")
        }
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == [String(change == "delete" || change == "move" ? 32 : 40)],
                "a delivery taken out of the line made no attempt")
        // Nor does it count one: each delivery's attempts are its rows in webhooky.attempts (the
        // two taken out of the line, which the change ended dead, were claimed for an attempt).
        let miscounted = "SELECT d.id, d.state, d.attempts, d.last_error FROM webhooky.deliveries d WHERE d.attempts <> (SELECT count(*) FROM webhooky.attempts a WHERE a.delivery_id = d.id)"
        _ = try shop.waitFor("SELECT count(*) FROM (\(miscounted)) m", timeout: .seconds(5)) { $0 == "0" }
        #expect(try shop.connection.query(miscounted).rows == [])
    }

    @Test("a webhook paused (and pointed elsewhere), moved to another account or deleted in the moment between the fan-out that claimed its delivery and the worker's first read of the webhook: the delivery is not sent as the webhook is after the change, and its unmade attempt is not counted; paused, it waits, and goes to the new URL once enabled again", arguments: ["pause", "move", "delete"])
    func changeBetweenClaimAndRead(change: String) throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        defer { receiver.stop() }
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/before")
        // The change commits with the fan-out that claims the delivery: the fan-out returns the
        // revision it read before, the worker's read of the webhook finds the changed one.
        let statement = switch change {
        case "pause": "UPDATE webhooky.webhooks SET enabled = false, url = replace(url, '/before', '/after') WHERE id = NEW.webhook_id"
        case "move": "UPDATE webhooky.webhooks SET account_id = 'shop-7' WHERE id = NEW.webhook_id"
        default: "DELETE FROM webhooky.webhooks WHERE id = NEW.webhook_id"
        }
        try shop.connection.execute("""
            CREATE FUNCTION public.change_on_claim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN \(statement); RETURN NULL; END $$;
            CREATE TRIGGER change_on_claim AFTER INSERT ON webhooky.deliveries
                FOR EACH ROW WHEN (NEW.state = 'sending') EXECUTE FUNCTION public.change_on_claim();
            """)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("5")  // shop-42's customer
        let expected = change == "pause" ? "pending, 0 attempts, unclaimed" : "dead, 0 attempts, unclaimed"
        let row = "SELECT format('%s, %s attempts, %s', state, attempts, coalesce(claimed_by, 'unclaimed')) FROM webhooky.deliveries"
        #expect(try shop.waitFor(row) { $0 == expected } == expected)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(receiver.requests.isEmpty, "\(receiver.requests.map(\.target))")
        #expect(try shop.column(row) == [expected])
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["0"])
        guard change == "pause" else { return }
        try shop.connection.execute("DROP TRIGGER change_on_claim ON webhooky.deliveries; UPDATE webhooky.webhooks SET enabled = true WHERE id = \(webhook)")
        #expect(receiver.waitForRequests(1, timeout: .seconds(10)).map(\.target) == ["/after"])
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
    }

    @Test("a give-back that waits for a delivery's row while the webhook's delete or move is being committed (its trigger has ended the delivery dead) leaves its unmade attempt uncounted: the correction, a second statement of the same snapshot, found the row still sending", arguments: ["delete", "move"])
    func giveBackDuringAChangeUnderWay(change: String) throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "http://127.0.0.1:9/hook")
        try shop.setCredit("5")
        let claimed = try #require(try FanOutTests.claimed(FanOutTests.session(shop)).first)
        let changer = try shop.database.connect()
        try changer.execute("BEGIN")
        try changer.execute(change == "delete" ? "DELETE FROM webhooky.webhooks WHERE id = \(webhook)"
                                               : "UPDATE webhooky.webhooks SET account_id = 'shop-7' WHERE id = \(webhook)")
        let claim = claimed.unsent
        // The give-back waits for the change's row lock.
        let gaveBack = try shop.committing(changer, whileWaiting: "%UPDATE webhooky.deliveries d%") {
            try DeliveryStore.release($0, [claim], workerID: "w1")
        }
        try #require(gaveBack).get()
        #expect(try shop.connection.query("SELECT state, attempts::text, claimed_by FROM webhooky.deliveries WHERE id = \(claimed.id)").rows
                == [["dead", "0", nil]], "the unmade attempt is not counted")
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["0"])
    }

    @Test("a NOTIFY of a webhook change that did not happen (any role may send one) takes nothing out of the line: the revision in the database decides")
    func notificationWithoutChangeTakesNothing() throws {
        let shop = try Shop()
        let (receiver, _, worker) = try WebhookChangeLineTests.twoInLine(shop, listen: true)
        defer { worker.stop() }
        // The two waiting in line: claimed, not arrived. (Not the two running: on a busy machine
        // they may end and be recorded within the half second.)
        let arrived = Set(receiver.requests.compactMap { $0.header("webhook-id") })
        let inLine = try shop.connection.query("SELECT id, webhooky.message_id(id) FROM webhooky.deliveries WHERE state = 'sending' ORDER BY id").rows
            .filter { !arrived.contains($0[1] ?? "") }.compactMap { $0[0] ?? nil }
        #expect(inLine.count == 2)
        let claims = "SELECT id, state, attempts, lease_expires_at FROM webhooky.deliveries WHERE id = ANY ($1::bigint[]) ORDER BY id"
        let ids = "{" + inLine.joined(separator: ",") + "}"
        let before = try shop.connection.query(claims, [ids]).rows
        try shop.connection.execute("NOTIFY webhooky, 'webhook'")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try shop.connection.query(claims, [ids]).rows == before, "the two in line were given back and claimed again")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(30)) { $0 == "40" } == "40")
        #expect(Set(receiver.requests.compactMap { $0.header("webhook-id") }).count == 40)
    }

    @Test("a revision check asked for by a NOTIFY that fails (the connection lost) is made again once the database is back, not only at the next poll")
    func failedCheckIsMadeAgain() throws {
        let shop = try Shop()
        let logs = LogCapture()
        // A long poll interval: the check at the poll cannot stand in for the one that failed.
        // Slow requests of 4 s: the line is still waiting when the change commits, also on a busy machine.
        let (receiver, webhook, worker) = try WebhookChangeLineTests.twoInLine(shop, listen: true, pollInterval: .seconds(30), logs: logs, slow: 4)
        defer { worker.stop() }
        Thread.sleep(forTimeInterval: 0.7)  // past the fan-out of the events behind the line and the looks for stragglers after it
        // The dispatcher's connection dies; its next statement is the check the change's NOTIFY asks for.
        try shop.connection.execute("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'webhooky worker'
            """)
        try shop.connection.query("UPDATE webhooky.webhooks SET url = $2 WHERE id = $1", [String(webhook), receiver.baseURL + "/new"])
        let committedAt = Date().timeIntervalSince1970
        #expect(logs.waitForLine { $0.contains("lost the database connection") }, "the check did not fail: the test proves nothing")
        Thread.sleep(forTimeInterval: 5)  // past the end of the two slow requests, when the line would go out
        let late = receiver.requests.filter { $0.receivedAt > committedAt + 0.2 && $0.target == "/old" }
        #expect(late.isEmpty, "sent as the webhook was before the change, after it committed: \(late.map { $0.header("webhook-id") ?? "?" })")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(30)) { $0 == "40" } == "40")
        #expect(receiver.requests.filter { $0.target == "/new" }.count == 8, "what had not gone out went to the new URL")
    }

    @Test("a webhook change whose NOTIFY came while the listener was reconnecting (so it never reached the worker) takes the line back when the listener is connected again, not only at the next poll")
    func reconnectedListenerChecksTheLine() throws {
        let shop = try Shop()
        let logs = LogCapture()
        // A long poll interval: the check at the poll cannot stand in for the one after the
        // reconnection. Slow requests of 6 s: the line still waits when the listener is back.
        let (receiver, webhook, worker) = try WebhookChangeLineTests.twoInLine(shop, listen: true, pollInterval: .seconds(30), logs: logs, slow: 6)
        defer { worker.stop() }
        Thread.sleep(forTimeInterval: 0.7)  // past the fan-out of the events behind the line and the looks for stragglers after it
        // The listener loses its connection and cannot connect again until the change has committed.
        let admin = try Connection(conninfo: shop.database.cluster.conninfo())
        try admin.execute("ALTER DATABASE \"\(shop.database.name)\" ALLOW_CONNECTIONS false")
        defer { _ = try? admin.execute("ALTER DATABASE \"\(shop.database.name)\" ALLOW_CONNECTIONS true") }
        try shop.connection.execute("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'webhooky listener'
            """)
        #expect(logs.waitForLine { $0.contains("listener cannot connect") }, "the listener did not fail to reconnect: the test proves nothing")
        try shop.connection.query("UPDATE webhooky.webhooks SET url = $2 WHERE id = $1", [String(webhook), receiver.baseURL + "/new"])
        try admin.execute("ALTER DATABASE \"\(shop.database.name)\" ALLOW_CONNECTIONS true")
        #expect(logs.waitForLine { $0.contains("listener reconnected") })
        let reconnectedAt = Date().timeIntervalSince1970
        Thread.sleep(forTimeInterval: 6.5)  // past the end of the two slow requests, when the line would go out
        let late = receiver.requests.filter { $0.receivedAt > reconnectedAt + 0.2 && $0.target == "/old" }
        #expect(late.isEmpty, "sent as the webhook was before the change, after the listener was back: \(late.map { $0.header("webhook-id") ?? "?" })")
        // (Eight more slow requests, two at a time: 24 s.)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(60)) { $0 == "40" } == "40")
        #expect(receiver.requests.filter { $0.target == "/new" }.count == 8, "what had not gone out went to the new URL")
    }

    /// A worker whose webhook's endpoint (limit 2) answered 30 requests quickly and then turned
    /// slow (1.5 s): two requests running, two more claimed and waiting in line, 6 events after them.
    static func twoInLine(_ shop: Shop, listen: Bool, pollInterval: Duration = .milliseconds(200),
                          logs: LogCapture? = nil, slow: Double = 1.5) throws -> (LoopbackReceiver, Int64, RunningWorker) {
        try shop.addCustomers(40)
        let receiver = try LoopbackReceiver { _, number in
            if number > 30 { Thread.sleep(forTimeInterval: slow) }  // quick, then slow
            return .ok
        }
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/old")
        var configuration = shop.workerConfiguration(logs: logs)
        configuration.pollInterval = pollInterval
        configuration.maximumInFlightPerEndpoint = 2
        configuration.http.requestTimeout = .seconds(15)  // the line needs a lease of 2 x 15 + 2 s
        // Without LISTEN (--no-listen) the worker finds a change when it polls (every 200 ms here).
        configuration.listen = listen
        let worker = RunningWorker(configuration)
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100030")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "30" } == "30")
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100031 AND 100040")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'sending'") { $0 == "4" } == "4")
        #expect(receiver.waitForRequests(32, timeout: .seconds(5)).count == 32)
        return (receiver, webhook, worker)
    }
}
