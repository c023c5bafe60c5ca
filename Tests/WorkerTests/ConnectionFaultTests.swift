import Foundation
import Glibc
import LoopbackReceiver
import Postgres
import Synchronization
import TestSupport
import Testing
@testable import Worker

/// What a DBA does to one of the worker's connections at a time: ends its backend
/// (`pg_terminate_backend`), or puts a setting on the worker's role or database that every new
/// session of it gets.
@Suite(.timeLimit(.minutes(10))) struct ConnectionFaultTests {
    /// The worker's connections, by the `application_name` each shows in `pg_stat_activity`,
    /// with the log line that says it lost its connection and the one that says it is back.
    static let connections: [(name: String, lost: String, back: String)] = [
        ("webhooky worker", "lost the database connection; will reconnect", "reconnected to the database"),
        ("webhooky recorder", "recording outcomes: lost the database connection", "recording outcomes: reconnected to the database"),
        ("webhooky listener", "listener lost its connection; reconnecting", "listener reconnected to the database; listening again"),
        ("webhooky pruner", "pruning old history failed; trying again", ""),
    ]

    @Test("pg_terminate_backend of one of the worker's connections (the dispatcher's, the recorder's, the listener's, the pruner's) while events come at a steady pace and requests are in flight: every event is sent exactly once, the worker says so in its log and is back within seconds, listening (a new event comes at once, not at the next poll)",
          arguments: ConnectionFaultTests.connections.map(\.name))
    func terminatedBackend(_ name: String) throws {
        let (_, lost, back) = try #require(Self.connections.first { $0.name == name })
        let shop = try Shop()
        // Every prune batch takes 300 ms (a large table), so that the pruner's backend is there
        // to be ended; it deletes nothing here (succeeded deliveries are kept an hour).
        try shop.connection.execute("""
            CREATE FUNCTION public.slow_prune() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF current_setting('application_name') = 'webhooky pruner' THEN PERFORM pg_sleep(0.3); END IF;
                RETURN NULL;
            END $$;
            CREATE TRIGGER slow_prune BEFORE DELETE ON webhooky.deliveries FOR EACH STATEMENT EXECUTE FUNCTION public.slow_prune();
            """)
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, body: "ok", delay: .milliseconds(80)) }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        let logs = LogCapture()
        var configuration = shop.workerConfiguration(logs: logs)
        // Only a NOTIFY brings an event within a second: the poll does not stand in for the listener.
        configuration.pollInterval = .seconds(30)
        var retention = RetentionPolicy(succeeded: .seconds(3600), dead: .seconds(3600))
        retention.interval = .milliseconds(200)
        configuration.retention = retention
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers") { $0 == "1" }

        // Events at a steady pace, 40 a second, from a connection of their own, for 3 s.
        let emitted = Atomic(0)
        let emitterDone = DispatchSemaphore(value: 0)
        let conninfo = shop.database.conninfo
        let emitter = Thread {
            defer { emitterDone.signal() }
            guard let connection = try? Connection(conninfo: conninfo) else { return }
            for _ in 0..<120 {
                _ = try? connection.query("UPDATE ellity.customers SET credit = credit + 1 WHERE id = $1", [Shop.customerID])
                emitted.add(1, ordering: .relaxed)
                usleep(25_000)
            }
        }
        emitter.start()
        // A second into it, with requests in flight: the backend is ended.
        Thread.sleep(forTimeInterval: 1)
        // The pruner's session is short: ended after its last statement, while it closes, it
        // has nothing to notice. It is ended in its 300 ms statement.
        let victim = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1"
            + (back.isEmpty ? " AND wait_event = 'PgSleep'" : "")
        let pid = try #require(try Self.wait { try shop.connection.query(victim, [name]).scalar ?? nil }, "no backend named \(name)")
        #expect(try shop.connection.query("SELECT pg_terminate_backend($1::int)", [pid]).scalar == "t")
        #expect(logs.waitForLine(timeout: .seconds(15)) { $0.contains(lost) }, "the worker did not see the fault: the test proves nothing")
        // The line says why: the server's reason, not libpq's guess that it crashed; and it is the only one.
        #expect(logs.waitForLine { $0.contains(lost) && $0.contains("error=\"terminating connection due to administrator command (the server closed the connection)\"") },
                "\(logs.all.filter { $0.contains(lost) })")
        #expect(!logs.all.contains { $0.contains("FATAL") || $0.contains("terminated abnormally") }, "\(logs.all.joined(separator: "\n"))")
        if back.isEmpty {
            // The pruner says nothing when it has nothing to prune: it is back when it runs again.
            let again = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND pid <> $2::int"
            #expect(try Self.wait { try shop.connection.query(again, [name, pid]).scalar == "1" ? true : nil } == true, "the pruner did not run again")
        } else {
            #expect(logs.waitForLine(timeout: .seconds(15)) { $0.contains(back) }, "the worker did not say it is back")
        }
        emitterDone.wait()
        let count = emitted.load(ordering: .relaxed)
        #expect(count == 120)

        // Every event delivered; each request as many times as the delivery has attempts (one).
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(30)) { $0 == String(count) } == String(count))
        Thread.sleep(forTimeInterval: 0.3)  // anything sent twice would have arrived by now
        let attempts = try shop.connection.query("SELECT webhooky.message_id(id), attempts FROM webhooky.deliveries").rows
        let sent = Dictionary(grouping: receiver.requests, by: { $0.header("webhook-id") ?? "" }).mapValues(\.count)
        #expect(attempts.count == count)
        for row in attempts {
            #expect(String(sent[row[0] ?? ""] ?? 0) == row[1], "delivery \(row[0] ?? "?"): sent \(sent[row[0] ?? ""] ?? 0) times, \(row[1] ?? "?") attempts")
        }
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE attempts <> 1") == ["0"], "a delivery was sent more than once")

        // Back and listening: a new event comes by NOTIFY, well before the 30 s poll.
        let before = receiver.requests.count
        let start = ContinuousClock.now
        try shop.setCredit("1000000")
        #expect(receiver.waitForRequests(before + 1, timeout: .seconds(5)).count == before + 1, "the new event waited for the poll")
        #expect(ContinuousClock.now - start < .seconds(3))
        #expect(try shop.column("SELECT listening::text FROM webhooky.workers") == ["true"])

        // One clear line per fault (and its recovery), not a stream of them.
        let faultLines = ConnectionFaultTests.faultLines(logs)
        #expect(faultLines.count <= 2, "\(faultLines.joined(separator: "\n"))")
        #expect(!logs.all.contains { $0.contains(conninfo) })
    }

    @Test("pg_terminate_backend of the dispatcher's or the recorder's connection while its statement runs (waiting for a lock someone's open transaction holds: the heartbeat, an outcome): the statement is rolled back and done again after the reconnect, and each delivery is sent and recorded once",
          arguments: [("webhooky worker", "LOCK TABLE webhooky.workers IN EXCLUSIVE MODE"),
                      ("webhooky recorder", "SELECT FROM webhooky.webhook_health FOR UPDATE")])
    func terminatedWhileItsStatementRuns(_ name: String, lock: String) throws {
        let shop = try Shop()
        let logs = LogCapture()
        let (receiver, worker) = try ConnectionFaultTests.workerWithOneDelivery(shop, logs: logs)
        defer { receiver.stop(); worker.stop() }
        let admin = try shop.database.connect()
        try admin.execute("BEGIN; \(lock)")
        try shop.setCredit("2")  // an outcome to write, for the recorder; the dispatcher's heartbeat comes within 5 s
        let waiting = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND wait_event_type = 'Lock'"
        let pid = try #require(try Self.wait { try shop.connection.query(waiting, [name]).scalar ?? nil }, "\(name) never waited for the lock")
        #expect(try shop.connection.query("SELECT pg_terminate_backend($1::int)", [pid]).scalar == "t")
        #expect(logs.waitForLine { $0.contains("terminating connection due to administrator command") }, "\(logs.all.joined(separator: "\n"))")
        try admin.execute("ROLLBACK")
        try shop.setCredit("3")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(20)) { $0 == "3" } == "3")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(receiver.requests.count == 3)
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["3"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE attempts <> 1") == ["0"])
        #expect(try shop.column("SELECT listening::text FROM webhooky.workers") == ["true"])
    }

    @Test("a claim that committed while the dispatcher's connection was lost before its answer (made here by hand: a delivery claimed by the worker's id that it never saw): after the reconnect it is given back and sent at once, not after its 60 s lease; a request in flight meanwhile is neither given back nor sent twice")
    func strayClaimAfterAReconnect() throws {
        let shop = try Shop()
        let logs = LogCapture()
        let receiver = try LoopbackReceiver { request, _ in
            request.target.hasSuffix("credit=2.00") ? .respond(status: 200, body: "slow", delay: .seconds(2)) : .ok
        }
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))
        defer { receiver.stop(); worker.stop() }
        try shop.setCredit("1.00")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "1" } == "1")
        try shop.setCredit("2.00")  // in flight for 2 s
        #expect(receiver.waitForRequests(2).count == 2)
        let stray = try Self.strayClaimAndALostConnection(shop, webhook: webhook)
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries WHERE id = \(stray)", timeout: .seconds(15)) { $0 == "succeeded" } == "succeeded",
                "\(logs.all.joined(separator: "\n"))")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "3" } == "3")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(receiver.requests.map(\.target).sorted() == ["/c?credit=1.00", "/c?credit=2.00", "/c?credit=3.00"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE attempts <> 1") == ["0"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["3"])
        #expect(logs.all.filter { $0.contains("gave back deliveries claimed just before the connection was lost") && $0.contains("count=1") }.count == 1,
                "\(logs.all.joined(separator: "\n"))")
    }

    @Test("a stray claim is given back after the reconnect even while the recorder holds an outcome it cannot write (a transaction holds that webhook's health row): the held one's delivery is not given back nor sent twice, and is recorded once the lock goes")
    func strayClaimWhileAnOutcomeIsHeld() throws {
        let shop = try Shop()
        let logs = LogCapture()
        let receiver = try LoopbackReceiver()
        let locked = try shop.addWebhook(url: receiver.baseURL + "/locked?credit=#customer.credit#")
        let free = try shop.addWebhook(url: receiver.baseURL + "/free?credit=#customer.credit#")
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))
        defer { receiver.stop(); worker.stop() }
        try shop.setCredit("1.00")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "2" } == "2")

        let admin = try shop.database.connect()
        try admin.execute("BEGIN")
        try admin.query("SELECT FROM webhooky.webhook_health WHERE webhook_id = $1 FOR UPDATE", [String(locked)])
        try shop.setCredit("2.00")
        let heldLine = "outcomes of a webhook wait for a lock"
        #expect(try Self.wait { logs.all.contains { $0.contains(heldLine) } ? true : nil } == true, "\(logs.all.joined(separator: "\n"))")
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE webhook_id = \(locked) ORDER BY id") == ["succeeded", "sending"])

        let stray = try Self.strayClaimAndALostConnection(shop, webhook: free)
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries WHERE id = \(stray)", timeout: .seconds(15)) { $0 == "succeeded" } == "succeeded",
                "\(logs.all.joined(separator: "\n"))")
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE webhook_id = \(locked) ORDER BY id") == ["succeeded", "sending"],
                "the held outcome's delivery stays claimed")
        #expect(logs.all.filter { $0.contains("gave back deliveries claimed just before the connection was lost") && $0.contains("count=1") }.count == 1,
                "\(logs.all.joined(separator: "\n"))")

        try admin.execute("COMMIT")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(15)) { $0 == "5" } == "5")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(receiver.requests.map(\.target).sorted()
                == ["/free?credit=1.00", "/free?credit=2.00", "/free?credit=3.00", "/locked?credit=1.00", "/locked?credit=2.00"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE attempts <> 1") == ["0"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["5"])
    }

    /// Makes by hand what a claim whose commit the lost connection's answer never told leaves:
    /// an event of `webhook` (credit 3.00) and its delivery claimed by the tests' worker id with
    /// a 60 s lease; then ends the dispatcher's connection. Returns the delivery's id.
    static func strayClaimAndALostConnection(_ shop: Shop, webhook: Int64) throws -> String {
        let stray = try #require(try shop.connection.query("""
            WITH event AS (
                INSERT INTO webhooky.events (event, account_id, payload, webhook_ids, fanned_out)
                VALUES ('customer.credit_changed', 'shop-42', '{"customer":{"credit":"3.00"}}', ARRAY[\(webhook)]::bigint[], true) RETURNING id)
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, claimed_by, lease_expires_at)
            SELECT id, \(webhook), 'sending', 1, 'test-worker', now() + interval '60 seconds' FROM event RETURNING id
            """).scalar ?? nil)
        #expect(try shop.connection.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'webhooky worker'").scalar == "t")
        return stray
    }

    /// A webhook to a receiver of its own and a worker that has sent one event to it.
    static func workerWithOneDelivery(_ shop: Shop, logs: LogCapture) throws -> (LoopbackReceiver, RunningWorker) {
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))
        try shop.setCredit("1")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "1" } == "1")
        return (receiver, worker)
    }

    /// The lines logged at `warning` or `error`.
    static func faultLines(_ logs: LogCapture) -> [String] {
        logs.all.filter { $0.contains(" warning ") || $0.contains(" error ") }
    }

    /// Runs `read` every 20 ms until it returns a value, for up to 10 s.
    static func wait<T>(_ read: () throws -> T?) throws -> T? {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let value = try read() { return value }
            usleep(20_000)
        }
        return nil
    }
}

/// Settings a DBA may put on the worker's role or database (`ALTER ROLE ... SET`, `ALTER
/// DATABASE ... SET`), which every new session of the worker gets.
@Suite(.timeLimit(.minutes(10))) struct SessionSettingTests {
    /// Sets `setting` to `value` for every new session of the shop's database.
    static func set(_ setting: String, _ value: String, on shop: Shop) throws {
        try shop.connection.execute("ALTER DATABASE \"\(shop.database.name)\" SET \(setting) = '\(value)'")
    }

    @Test("idle_session_timeout (PostgreSQL 14+) on the worker's database does not end its idle connections: the listener keeps listening, outcomes are written without a reconnect, and nothing is logged as lost")
    func idleSessionTimeout() throws {
        let shop = try Shop()
        try Self.set("idle_session_timeout", "1s", on: shop)
        let receiver = try LoopbackReceiver()
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        let logs = LogCapture()
        var configuration = shop.workerConfiguration(logs: logs)
        configuration.pollInterval = .seconds(30)
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1).count == 1)
        for credit in 2...3 {
            Thread.sleep(forTimeInterval: 2.5)  // every connection idle for longer than the timeout
            let start = ContinuousClock.now
            try shop.setCredit(String(credit))
            #expect(receiver.waitForRequests(credit, timeout: .seconds(15)).count == credit)
            #expect(ContinuousClock.now - start < .seconds(5), "the event waited")  // for the poll: 30 s
        }
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "3" } == "3")
        let faultLines = ConnectionFaultTests.faultLines(logs)
        #expect(faultLines.isEmpty, "\(faultLines.joined(separator: "\n"))")
    }

    @Test("idle_in_transaction_session_timeout on the worker's database: the worker never sits idle in a transaction, so nothing is cut off")
    func idleInTransactionSessionTimeout() throws {
        let shop = try Shop()
        try Self.set("idle_in_transaction_session_timeout", "100ms", on: shop)
        try shop.addCustomers(20)
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, body: "ok", delay: .milliseconds(150)) }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/c?id=#customer.id#")
        let logs = LogCapture()
        var configuration = shop.workerConfiguration(logs: logs)
        var retention = RetentionPolicy(succeeded: .zero, dead: .zero)
        retention.interval = .milliseconds(300)
        configuration.retention = retention
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100020")
        #expect(receiver.waitForRequests(20).count == 20)
        // Pruned once recorded: the pruner's sessions work too.
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.events") { $0 == "0" } == "0")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(receiver.requests.count == 20)
        let faultLines = ConnectionFaultTests.faultLines(logs)
        #expect(faultLines.isEmpty, "\(faultLines.joined(separator: "\n"))")
    }

    @Test("client_min_messages = debug5 on the worker's database (a DBA chasing a problem): the worker's log gets no line per statement, only the few of each connection's start")
    func clientMinMessages() throws {
        let shop = try Shop()
        try Self.set("client_min_messages", "debug5", on: shop)
        let receiver = try LoopbackReceiver()
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        let logs = LogCapture()
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))
        defer { worker.stop() }
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1).count == 1)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "1" } == "1")
        let notices = { logs.all.filter { $0.contains("database notice") }.count }
        let atStart = notices()
        for credit in 2...21 { try shop.setCredit(String(credit)) }
        #expect(receiver.waitForRequests(21).count == 21)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "21" } == "21")
        Thread.sleep(forTimeInterval: 1)  // polls and heartbeats meanwhile
        #expect(notices() == atStart, "\(logs.all.filter { $0.contains("database notice") }.suffix(5).joined(separator: "\n"))")
    }

    @Test("statement_timeout on the worker's database shorter than a statement of the worker (a busy server, a large batch, a DBA's trigger): the worker's own statements are not cut off, so outcomes are written and nothing is sent twice")
    func statementTimeout() throws {
        let shop = try Shop()
        // Stands for a statement that takes longer than the timeout: each insert of attempts
        // (an outcome) takes 100 ms.
        try shop.connection.execute("""
            CREATE FUNCTION public.slow_attempts() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.1); RETURN NULL; END $$;
            CREATE TRIGGER slow_attempts BEFORE INSERT ON webhooky.attempts FOR EACH STATEMENT EXECUTE FUNCTION public.slow_attempts();
            """)
        try Self.set("statement_timeout", "50ms", on: shop)
        let receiver = try LoopbackReceiver()
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        let logs = LogCapture()
        var configuration = shop.workerConfiguration(logs: logs)
        configuration.leaseDuration = .seconds(3)
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.setCredit("1")
        try shop.setCredit("2")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(15)) { $0 == "2" } == "2")
        Thread.sleep(forTimeInterval: 4)  // past a lease: an outcome not written would be sent again
        #expect(receiver.requests.count == 2, "\(receiver.requests.map(\.target))")
        #expect(try shop.connection.query("SELECT attempt, status, response_body FROM webhooky.attempts ORDER BY id").rows == [["1", "200", "ok"], ["1", "200", "ok"]])
        let faultLines = ConnectionFaultTests.faultLines(logs)
        #expect(faultLines.isEmpty, "\(faultLines.joined(separator: "\n"))")
    }

    @Test("default_transaction_isolation on the worker's database (repeatable read, serializable), with two workers sharing the work: each delivery is sent and recorded once, and no statement fails", arguments: ["repeatable read", "serializable"])
    func isolationLevel(_ level: String) throws {
        let shop = try Shop()
        try Self.set("default_transaction_isolation", level, on: shop)
        try shop.addCustomers(200)
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, body: "ok", delay: .milliseconds(20)) }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/a?id=#customer.id#")
        try shop.addWebhook(url: receiver.baseURL + "/b?id=#customer.id#")
        let logs = LogCapture()
        var workers: [RunningWorker] = []
        for id in ["one", "two"] {
            var configuration = shop.workerConfiguration(logs: logs)
            configuration.workerID = id
            configuration.batchSize = 10
            workers.append(RunningWorker(configuration))
        }
        defer { for worker in workers { worker.stop() } }
        for first in stride(from: 100001, to: 100200, by: 20) {
            try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN \(first) AND \(first + 19)")
            usleep(50_000)
        }
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(60)) { $0 == "400" } == "400")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(receiver.requests.count == 400)
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE attempts <> 1") == ["0"])
        let faultLines = ConnectionFaultTests.faultLines(logs)
        #expect(faultLines.isEmpty, "\(faultLines.prefix(10).joined(separator: "\n"))")
    }

    @Test("default_transaction_read_only on the worker's database for longer than --wait-for-database: the worker does not start (status 3, which the unit restarts), and says which setting and what to do")
    func readOnlyAtStart() throws {
        let shop = try Shop()
        try Self.set("default_transaction_read_only", "on", on: shop)
        let worker = try WorkerProcess(database: shop.database.conninfo, workerID: "read-only", arguments: ["--poll-interval", "200ms", "--wait-for-database", "1s"])
        if !worker.waitForLog("webhooky: error: cannot start (tried for --wait-for-database 1s): ") { worker.send(SIGKILL) }  // it ran on
        #expect(worker.wait() == 3, "\(worker.log)")
        #expect(worker.log.contains("default_transaction_read_only is on, set for the database"), "\(worker.log)")
        #expect(worker.log.contains("ALTER DATABASE \(shop.database.name) RESET default_transaction_read_only;"), "\(worker.log)")
        #expect(!worker.log.contains("Check --database-url"), "not a connection problem: \(worker.log)")
    }

    @Test("default_transaction_read_only on the worker's database when it starts (a standby not yet promoted): by default it waits, with one line saying why rather than one per try, and starts once the database takes writes")
    func readOnlyAtStartIsWaitedFor() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        try shop.setCredit("7.00")  // committed before the setting: shop's own session is not read-only
        try Self.set("default_transaction_read_only", "on", on: shop)
        let worker = try WorkerProcess(database: shop.database.conninfo, workerID: "waits", arguments: ["--poll-interval", "200ms"])
        defer { worker.send(SIGKILL) }
        let waiting = "warning  cannot start: the database is read-only; waiting for it to take writes (--wait-for-database forever) error="
        #expect(worker.waitForLog(waiting), "\(worker.log)")
        Thread.sleep(forTimeInterval: 3)  // tries after 0.25, 0.5, 1 and 2 s (each ±20 %)
        #expect(worker.log.components(separatedBy: "cannot start").count - 1 == 1, "one line, not one per try: \(worker.log)")
        #expect(worker.log.contains("default_transaction_read_only is on, set for the database"), "\(worker.log)")
        #expect(receiver.requests.isEmpty)

        try shop.connection.execute("ALTER DATABASE \"\(shop.database.name)\" RESET default_transaction_read_only")
        #expect(receiver.waitForRequests(1, timeout: .seconds(30)).map(\.target) == ["/c?credit=7.00"])
        #expect(worker.log.contains("notice   connected to the database failures="), "\(worker.log)")
        worker.send(SIGTERM)
        #expect(worker.wait() == 0)
    }

    @Test("a read-only session's message names where the setting comes from and what undoes it, or the standby")
    func readOnlyMessages() {
        let message = { (source: String) in SessionSettings.readOnlyMessage(standby: false, source: source, role: "webhooky_run", database: "shop") }
        #expect(message("user").contains("set for the role webhooky_run, "))
        // Behind Pgpool-II's load balancing the check must read the primary, where the writes go.
        #expect(SessionSettings.readOnlySQL.hasPrefix("/*NO LOAD BALANCE*/\n"))
        #expect(message("user").hasSuffix("otherwise: ALTER ROLE webhooky_run RESET default_transaction_read_only;"))
        #expect(message("database user").hasSuffix("ALTER ROLE webhooky_run IN DATABASE shop RESET default_transaction_read_only;"))
        #expect(message("client").contains("PGOPTIONS"))
        #expect(message("configuration file").hasSuffix("ALTER ROLE webhooky_run SET default_transaction_read_only = off;"))
        let standby = SessionSettings.readOnlyMessage(standby: true, source: "configuration file", role: "webhooky_run", database: "shop")
        #expect(standby.contains("standby") && standby.contains("target_session_attrs=read-write"))
    }

    @Test("default_transaction_read_only set while the worker runs, then a connection of it ended: the worker keeps what it sent, says why it cannot write (the setting) without a stream of lines, and writes everything once the setting is gone")
    func readOnlyWhileRunning() throws {
        let shop = try Shop()
        let logs = LogCapture()
        let (receiver, worker) = try ConnectionFaultTests.workerWithOneDelivery(shop, logs: logs)
        defer { receiver.stop(); worker.stop() }
        try Self.set("default_transaction_read_only", "on", on: shop)
        try shop.connection.execute("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name IN ('webhooky worker', 'webhooky recorder')
            """)
        try shop.setCredit("2")
        #expect(logs.waitForLine(timeout: .seconds(10)) { $0.contains("default_transaction_read_only") }, "\(logs.all.joined(separator: "\n"))")
        Thread.sleep(forTimeInterval: 5)
        #expect(receiver.requests.count == 1, "nothing is claimed from a read-only session")
        let faultLines = ConnectionFaultTests.faultLines(logs)
        // A line per try, the tries backing off (0.25 s, 0.5 s, 1 s ...): no stream of them.
        #expect(faultLines.count <= 10, "\(faultLines.joined(separator: "\n"))")
        #expect(faultLines.dropFirst().allSatisfy { $0.contains("default_transaction_read_only is on") || $0.contains("pruning") }, "\(faultLines.joined(separator: "\n"))")
        // Each connection says it cannot write, none that it lost the database.
        #expect(logs.all.filter { $0.contains("default_transaction_read_only is on") }.allSatisfy { $0.contains("cannot write to the database") },
                "\(logs.all.filter { $0.contains("default_transaction_read_only is on") }.joined(separator: "\n"))")
        try shop.connection.execute("ALTER DATABASE \"\(shop.database.name)\" RESET default_transaction_read_only")
        #expect(receiver.waitForRequests(2, timeout: .seconds(20)).count == 2)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "2" } == "2")
    }

    @Test("an outcome that comes while the database has gone read-only (the recorder's connection ended meanwhile), and the pruning then: each says it cannot write, not that it lost the database, and the outcome is written once the setting is gone, the request sent once")
    func readOnlyRecorderAndPruner() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, body: "ok", delay: .seconds(2)) }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        let logs = LogCapture()
        var configuration = shop.workerConfiguration(logs: logs)
        var retention = RetentionPolicy(succeeded: .seconds(3600), dead: .seconds(3600))
        retention.interval = .milliseconds(300)
        configuration.retention = retention
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.setCredit("1")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'sending'") { $0 == "1" } == "1")
        try Self.set("default_transaction_read_only", "on", on: shop)
        try shop.connection.execute("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'webhooky recorder'
            """)
        for who in ["recording outcomes: cannot write to the database", "pruning old history cannot write to the database"] {
            #expect(logs.waitForLine(timeout: .seconds(10)) { $0.contains(who) && $0.contains("default_transaction_read_only is on") },
                    "\(logs.all.joined(separator: "\n"))")
        }
        #expect(!logs.all.contains { $0.contains("default_transaction_read_only is on") && $0.contains("lost the database") }, "\(logs.all.joined(separator: "\n"))")
        try shop.connection.execute("ALTER DATABASE \"\(shop.database.name)\" RESET default_transaction_read_only")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(20)) { $0 == "1" } == "1")
        #expect(receiver.requests.count == 1)
    }
}
