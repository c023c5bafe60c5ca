import Foundation
import Glibc
import HTTPClient
import LocalPostgres
import LoopbackReceiver
import Postgres
import Schema
import Synchronization
import TestSupport
import Testing
import Worker

/// Nothing lost, nobody starved: crashes, restarts, several workers, bad endpoints.
@Suite(.timeLimit(.minutes(10))) struct ReliabilityTests {
    /// `webhooky run` options for fast tests: short request timeout and lease, fast polling.
    static let fastWorker = ["--request-timeout", "1s", "--lease", "4s", "--poll-interval", "200ms", "--retry-schedule", "200ms,200ms,200ms"]

    @Test("a worker killed with SIGKILL while sending: its claim is sent again after the lease, same webhook-id")
    func killedWorkersClaimsAreResent() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, number in number == 1 ? .hang : .ok }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/crash")
        let first = try WorkerProcess(database: shop.database.conninfo, workerID: "doomed", arguments: Self.fastWorker)
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1).count == 1)
        #expect(try shop.connection.query("SELECT state, claimed_by FROM webhooky.deliveries").rows == [["sending", "doomed"]])
        first.send(SIGKILL)
        #expect(first.wait() == 128 + SIGKILL)

        let second = try WorkerProcess(database: shop.database.conninfo, workerID: "survivor", arguments: Self.fastWorker)
        let requests = receiver.waitForRequests(2, timeout: .seconds(15))
        #expect(requests.count == 2)
        #expect(Set(requests.compactMap { $0.header("webhook-id") }) == [try shop.messageID("1")])
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        #expect(try shop.deliveryStates() == [["succeeded", "2", "200"]])
        // The killed worker's attempt has its row too: no status, the lease's error.
        let history = try shop.connection.query("SELECT attempt, worker, status, error LIKE 'lease expired: the worker that claimed it (doomed)%' FROM webhooky.attempts ORDER BY attempt").rows
        #expect(history == [["1", "doomed", nil, "t"], ["2", "survivor", "200", nil]], "\(history)")
        second.send(SIGTERM)
        #expect(second.wait() == 0)
    }

    @Test("PostgreSQL restarted (fast, then immediate): the worker reconnects, listens again, and delivers everything once")
    func postgresRestarts() throws {
        let cluster = try LocalCluster(name: "restart")
        defer { cluster.destroy() }
        var shop = try Shop(database: TestDatabase.create(in: cluster))
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        let logs = LogCapture()
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))
        defer { worker.stop() }

        try shop.setCredit("1.00")
        #expect(receiver.waitForRequests(1).count == 1)
        try cluster.restart(mode: .fast)
        try shop.reconnect()
        try shop.setCredit("2.00")
        #expect(receiver.waitForRequests(2, timeout: .seconds(20)).count == 2)
        try cluster.restart(mode: .immediate)
        try shop.reconnect()
        try shop.setCredit("3.00")
        #expect(receiver.waitForRequests(3, timeout: .seconds(20)).count == 3)

        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "3" } == "3")
        #expect(receiver.requests.map(\.target) == ["/c?credit=1.00", "/c?credit=2.00", "/c?credit=3.00"])
        let log = logs.all.joined(separator: "\n")
        #expect(log.contains("listener lost its connection") || log.contains("lost the database connection"))
        #expect(log.contains("reconnected to the database") || log.contains("listening for notifications"))
    }

    @Test("PostgreSQL down when the worker starts: by default it waits, with one line rather than one per try, connects once the database is up and delivers what was committed before; a stop while it waits ends it at once, status 0")
    func databaseDownAtStart() throws {
        let cluster = try LocalCluster(name: "late")
        defer { cluster.destroy() }
        var shop = try Shop(database: TestDatabase.create(in: cluster))
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/c?credit=#customer.credit#")
        try shop.setCredit("8.00")
        try cluster.stop(mode: .fast)
        let worker = try WorkerProcess(database: shop.database.conninfo, workerID: "late", arguments: ["--poll-interval", "200ms"])
        defer { worker.send(SIGKILL) }
        #expect(worker.waitForLog("warning  cannot connect to the database; waiting for it (--wait-for-database forever) error="), "\(worker.log)")
        Thread.sleep(forTimeInterval: 3)  // tries after 0.25, 0.5, 1 and 2 s (each ±20 %)
        #expect(worker.log.components(separatedBy: "cannot connect to the database").count - 1 == 1, "one line, not one per try: \(worker.log)")

        try cluster.start()
        try shop.reconnect()
        #expect(receiver.waitForRequests(1, timeout: .seconds(30)).map(\.target) == ["/c?credit=8.00"])
        #expect(worker.log.contains("notice   connected to the database failures="), "\(worker.log)")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")

        let stopped = try WorkerProcess(database: "host=/nonexistent-webhooky-socket-dir dbname=x", workerID: "stops")
        #expect(stopped.waitForLog("waiting for it (--wait-for-database forever)"), "\(stopped.log)")
        let signalled = ContinuousClock.now
        stopped.send(SIGTERM)
        #expect(stopped.wait() == 0, "\(stopped.log)")
        #expect(ContinuousClock.now - signalled < .seconds(3), "a stop ends the wait at once")
        worker.send(SIGTERM)
        #expect(worker.wait() == 0)
    }

    @Test("PostgreSQL down for 30 s while a request is in flight: the result is recorded when it is back; no spinning meanwhile")
    func outageDuringSend() throws {
        let cluster = try LocalCluster(name: "outage")
        defer { cluster.destroy() }
        var shop = try Shop(database: TestDatabase.create(in: cluster))
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, body: "late", delay: .milliseconds(1500)) }
        try shop.addWebhook(url: receiver.baseURL + "/slow")
        let worker = try WorkerProcess(database: shop.database.conninfo, workerID: "outage",
                                       arguments: ["--request-timeout", "5s", "--lease", "60s", "--poll-interval", "200ms"])
        try shop.setCredit("4")
        #expect(receiver.waitForRequests(1).count == 1)
        try cluster.stop(mode: .fast)
        let cpuBefore = worker.cpuSeconds
        Thread.sleep(forTimeInterval: 30)
        let cpuDuringOutage = worker.cpuSeconds - cpuBefore
        #expect(cpuDuringOutage < 1.0, "the worker must back off, not spin: \(cpuDuringOutage) s of CPU in 30 s")
        // A line per connection and reason (the reason changes once: shutting down, then no
        // server), not one per try: each connection tries about 8 times in 30 s.
        let faults = worker.log.split(separator: "\n").filter { $0.contains(" warning ") || $0.contains(" error ") }
        let byMessage = Dictionary(grouping: faults) { $0.dropFirst(25).prefix { $0 != "=" } }
        #expect(byMessage.values.allSatisfy { $0.count <= 3 }, "\(faults.joined(separator: "\n"))")
        try cluster.start()
        try shop.reconnect()
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries", timeout: .seconds(30)) { $0 == "succeeded" } == "succeeded")
        #expect(try shop.connection.query("SELECT attempt, status, response_body FROM webhooky.attempts").rows == [["1", "200", "late"]])
        #expect(receiver.requests.count == 1, "sent once, recorded after the outage")
        try shop.setCredit("5")
        #expect(receiver.waitForRequests(2, timeout: .seconds(20)).count == 2, "and it carries on")
        #expect(worker.log.contains("lost the database connection"))
        #expect(worker.log.contains("reconnected to the database"))
        // Each part that said it lost the database says when it has it back (the listener's
        // next try may be up to its longest backoff, 10 s, after the outage).
        #expect(worker.log.contains("recording outcomes: reconnected to the database"), "\(worker.log)")
        #expect(worker.waitForLog("listener reconnected to the database; listening again"), "\(worker.log)")
        worker.send(SIGTERM)
        #expect(worker.wait() == 0)
    }

    @Test("a give-back whose commit the worker did not see (the connection was lost after it) is not tried again on the same delivery claimed anew: each delivery is sent once")
    func aReleaseCommittedUnseenDoesNotGiveBackANewClaim() throws {
        // Commits do not wait for a standby, but a transaction that asks for it waits for ever
        // (there is none): the first release does, and is cut off there, committed.
        let cluster = try LocalCluster(name: "release", settings: ["synchronous_standby_names": "nobody", "synchronous_commit": "local"])
        defer { cluster.destroy() }
        let shop = try Shop(database: TestDatabase.create(in: cluster))
        try shop.connection.execute("""
            CREATE TABLE public.hang_once (n integer);
            INSERT INTO public.hang_once VALUES (1);
            CREATE FUNCTION public.hang_first_release() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF OLD.state = 'sending' AND NEW.state = 'pending' AND NEW.attempts = OLD.attempts - 1 THEN
                    DELETE FROM public.hang_once;
                    IF FOUND THEN PERFORM set_config('synchronous_commit', 'on', true); END IF;
                END IF;
                RETURN NEW;
            END
            $$;
            CREATE TRIGGER hang_first_release BEFORE UPDATE ON webhooky.deliveries FOR EACH ROW EXECUTE FUNCTION public.hang_first_release();
            """)
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/a")
        try shop.addWebhook(url: receiver.baseURL + "/b")
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlightPerEndpoint = 1  // one event, two deliveries: the second is given back
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.setCredit("6")
        let waiting = "SELECT pid FROM pg_stat_activity WHERE application_name = 'webhooky worker' AND wait_event = 'SyncRep'"
        let pid = try #require(try shop.waitFor(waiting) { $0 != nil })
        #expect(receiver.waitForRequests(1).count == 1)
        try shop.connection.query("SELECT pg_terminate_backend($1::int)", [pid])
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "2" } == "2")
        Thread.sleep(forTimeInterval: 0.5)  // anything sent twice would have arrived by now
        #expect(receiver.requests.map(\.target).sorted() == ["/a", "/b"])
        let rows = try shop.connection.query("""
            SELECT d.state, d.attempts, count(a.id) FROM webhooky.deliveries d LEFT JOIN webhooky.attempts a ON a.delivery_id = d.id GROUP BY d.id ORDER BY d.id
            """).rows
        #expect(rows == [["succeeded", "1", "1"], ["succeeded", "1", "1"]], "state, attempts and attempts rows: \(rows)")
    }

    @Test("a second stop signal exits at once (status 130), whichever kind each is", arguments: [(SIGTERM, SIGINT), (SIGINT, SIGTERM), (SIGTERM, SIGTERM), (SIGHUP, SIGTERM), (SIGTERM, SIGHUP)])
    func secondSignalExitsAtOnce(first: Int32, second: Int32) throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .hang }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/hangs")
        let worker = try WorkerProcess(database: shop.database.conninfo, workerID: "signals", arguments: ["--shutdown-grace", "20s"])
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1, timeout: .seconds(20)).count == 1)
        worker.send(first)
        Thread.sleep(forTimeInterval: 0.5)
        let started = ContinuousClock.now
        worker.send(second)
        #expect(worker.wait() == 130)
        #expect(ContinuousClock.now - started < .seconds(5), "it waited for the 20 s grace period")
        let names = [SIGTERM: "SIGTERM", SIGINT: "SIGINT", SIGHUP: "SIGHUP"]
        #expect(worker.log.contains("notice   stop requested signal=\(names[first] ?? "?")\n"), "\(worker.log)")
        #expect(worker.log.hasSuffix("warning  second stop signal: exiting at once, without waiting for requests in flight or recording them; "
                                     + "what this worker holds is sent again once its lease has run out signal=\(names[second] ?? "?") lease=60s\n"), "\(worker.log)")
    }

    @Test("SIGHUP (a closed terminal or ssh session, an operator's reload habit) stops the worker as SIGTERM does: the request in flight finishes and is recorded, nothing else is held, status 0")
    func hangupStopsCleanly() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .seconds(2)) }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/hangup")
        let worker = try CommandProcess(["run", "--database-url", shop.database.conninfo, "--worker-id", "hangup", "--allow-network", "127.0.0.0/8",
                                         "--max-in-flight-per-endpoint", "1"])
        try shop.setCredit("1")
        try shop.setCredit("2")
        #expect(receiver.waitForRequests(1, timeout: .seconds(20)).count == 1)
        worker.send(SIGHUP)
        let outcome = worker.wait(timeout: .seconds(20))
        #expect(outcome.status == 0, "\(outcome.errors)")
        #expect(outcome.errors.contains("stopping: finishing requests in flight in_flight=1"), "\(outcome.errors)")
        #expect(outcome.errors.contains("worker stopped worker=hangup"), "\(outcome.errors)")
        // The second event's delivery waited for room (one per endpoint): pending, or not made yet.
        let states = try shop.column("SELECT state || ' ' || attempts || ' ' || coalesce(claimed_by, '-') FROM webhooky.deliveries ORDER BY id")
        #expect(states == ["succeeded 1 -", "pending 0 -"] || states == ["succeeded 1 -"], "\(states)")
        #expect(try shop.column("SELECT count(*) FROM webhooky.events") == ["2"])
        #expect(receiver.requests.count == 1)
    }

    @Test("three workers: each delivery sent exactly once; stopping or killing one loses nothing")
    func threeWorkers() throws {
        let shop = try Shop()
        try shop.addCustomers(400)
        let receiver = try LoopbackReceiver()
        for path in ["a", "b", "c"] { try shop.addWebhook(url: receiver.baseURL + "/\(path)?id=#customer.id#") }
        let workers = try (1...3).map { try WorkerProcess(database: shop.database.conninfo, workerID: "w\($0)", arguments: Self.fastWorker) }

        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100400")  // 400 events x 3 webhooks
        #expect(receiver.waitForRequests(1200, timeout: .seconds(60)).count == 1200)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "1200" } == "1200")
        let ids = receiver.requests.compactMap { $0.header("webhook-id") }
        #expect(ids.count == 1200 && Set(ids).count == 1200, "no delivery sent twice by different workers")
        #expect(try shop.column("SELECT count(DISTINCT worker) FROM webhooky.attempts").first.flatMap { $0.flatMap { Int($0) } } ?? 0 >= 2)

        // Stop one gracefully and kill another while more events come in.
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100400")
        workers[0].send(SIGTERM)
        workers[1].send(SIGKILL)
        #expect(workers[0].wait() == 0)
        _ = workers[1].wait()
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'", timeout: .seconds(60)) { $0 == "2400" } == "2400")
        let all = receiver.requests.compactMap { $0.header("webhook-id") }
        #expect(Set(all).count == 2400, "every delivery arrived")
        #expect(all.count - Set(all).count <= 256, "duplicates only from the killed worker's requests in flight")
        workers[2].send(SIGTERM)
        #expect(workers[2].wait() == 0)
    }

    @Test("hanging, slow, resetting, failing and huge endpoints do not hold back a healthy one")
    func badEndpointsDoNotHoldBackGoodOnes() throws {
        let shop = try Shop()
        try shop.addCustomers(100)
        let concurrent = Mutex((now: 0, peak: 0))
        let hang = try LoopbackReceiver { _, _ in
            concurrent.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
            return .hang
        }
        defer { hang.stop() }
        let slow = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .seconds(3)) }
        defer { slow.stop() }
        let reset = try LoopbackReceiver { _, _ in .reset }
        let failing = try LoopbackReceiver { _, _ in .status(500) }
        let huge = try LoopbackReceiver { _, _ in .respond(status: 200, body: String(repeating: "x", count: 5_000_000)) }
        let good = try LoopbackReceiver()
        for receiver in [hang, slow, reset, failing, huge] { try shop.addWebhook(url: receiver.baseURL + "/bad") }
        try shop.addWebhook(url: good.baseURL + "/good")
        var configuration = shop.workerConfiguration(retry: [.seconds(30)])
        configuration.maximumInFlight = 64
        configuration.maximumInFlightPerEndpoint = 8
        configuration.http.requestTimeout = .seconds(10)
        let worker = RunningWorker(configuration)
        defer { worker.stop(timeout: .seconds(30)) }

        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100100")  // 100 events x 6 webhooks
        let started = ContinuousClock.now
        let delivered = good.waitForRequests(100, timeout: .seconds(20))
        let took = ContinuousClock.now - started
        #expect(delivered.count == 100)
        // Seconds on a loaded machine; taken by the hanging endpoint, it would wait its 10 s timeout.
        #expect(took < .seconds(6), "the healthy endpoint's 100 deliveries took \(took) while 500 others were stuck")
        #expect(concurrent.withLock { $0.peak } <= 8, "a hanging endpoint holds at most its share of requests in flight")
        let hugeBody = try shop.waitFor("SELECT length(response_body) FROM webhooky.attempts WHERE webhook_id = 5 LIMIT 1") { $0 != nil }
        #expect(hugeBody == "4096", "only the first 4 KiB of a huge body are read")
    }

    /// A worker with 32 requests in flight, `perEndpoint` of them per endpoint, failed
    /// deliveries retried only after a minute, and a short shutdown grace.
    static func workerOf32(_ shop: Shop, perEndpoint: Int, requestTimeout: Duration) -> WorkerConfiguration {
        var configuration = shop.workerConfiguration(retry: [.seconds(60)])
        configuration.maximumInFlight = 32
        configuration.maximumInFlightPerEndpoint = perEndpoint
        configuration.http.requestTimeout = requestTimeout
        configuration.shutdownGracePeriod = .milliseconds(500)
        return configuration
    }

    @Test("endpoints that hang, with enough deliveries between them to fill the worker, do not hold back a healthy one: each keeps the eighth of its share it started with")
    func hangingEndpointsTogetherDoNotFillTheWorker() throws {
        let shop = try Shop()
        try shop.addCustomers(100)
        let hanging = Mutex(0)
        var dead: [LoopbackReceiver] = []
        defer { for receiver in dead { receiver.stop() } }
        for _ in 0..<4 {
            let receiver = try LoopbackReceiver { _, _ in
                hanging.withLock { $0 += 1 }
                return .hang
            }
            dead.append(receiver)
            try shop.addWebhook(url: receiver.baseURL + "/dead", account: "shop-42")
        }
        let good = try LoopbackReceiver()
        try shop.addWebhook(url: good.baseURL + "/good", account: "shop-7")
        // Four endpoints with their whole share (16; 3/4 of the worker's 32 at most) would take
        // all 32 requests; each starts with 2, and only answers earn more.
        let worker = RunningWorker(Self.workerOf32(shop, perEndpoint: 16, requestTimeout: .seconds(20)))
        defer { worker.stop(timeout: .seconds(30)) }

        // 100 events for shop-42: 100 deliveries for each of the four hanging endpoints.
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100100")
        let deadline = ContinuousClock.now + .seconds(10)
        while hanging.withLock({ $0 }) < 8 && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        Thread.sleep(forTimeInterval: 1)  // two polls: the worker takes what it will of them
        let held = hanging.withLock { $0 }
        #expect(held == 8, "the hanging endpoints hold \(held) of the worker's 32 requests (2 each)")
        for receiver in dead { #expect(receiver.requests.count == 2) }

        let started = ContinuousClock.now
        for credit in 1...5 { try shop.setCredit(String(credit), customer: "1") }  // shop-7's customer
        let delivered = good.waitForRequests(5, timeout: .seconds(15))
        let waited = ContinuousClock.now - started
        #expect(delivered.count == 5)
        #expect(waited < .seconds(3), "the healthy endpoint's 5 deliveries waited \(waited) behind four hanging endpoints")
    }

    @Test("an open transaction that holds one webhook's rows (its health row) holds back only that webhook's outcomes: the other's are recorded meanwhile, its own once the transaction ends, and each delivery is sent once")
    func aLockedWebhookHoldsBackOnlyItsOwnOutcomes() throws {
        let shop = try Shop()
        let locked = try LoopbackReceiver()
        // Answers a little later, so that its outcomes are written after the locked webhook's.
        let free = try LoopbackReceiver { _, _ in .respond(status: 200, body: "ok", delay: .milliseconds(50)) }
        let lockedID = try shop.addWebhook(url: locked.baseURL + "/locked")
        let freeID = try shop.addWebhook(url: free.baseURL + "/free")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("1")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "2" } == "2")

        // An admin's transaction left open, holding the webhook's health row (as an uncommitted
        // re-enable or delete of the webhook does).
        let admin = try shop.database.connect()
        try admin.execute("BEGIN")
        try admin.query("SELECT FROM webhooky.webhook_health WHERE webhook_id = $1 FOR UPDATE", [String(lockedID)])
        try shop.setCredit("2")
        let freeDone = "SELECT count(*) FROM webhooky.deliveries WHERE webhook_id = \(freeID) AND state = 'succeeded'"
        #expect(try shop.waitFor(freeDone, timeout: .seconds(8)) { $0 == "2" } == "2", "the other webhook's outcome waited for the lock")
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE webhook_id = \(lockedID) ORDER BY id") == ["succeeded", "sending"])
        // While its outcome is held, nothing more of that webhook is sent (its outcomes would
        // pile up held too); the other's go on.
        try shop.setCredit("3")
        let third = try shop.waitFor(freeDone, timeout: .seconds(8)) { $0 == "3" }
        let rows = try shop.connection.query("SELECT webhook_id, state, attempts, last_error FROM webhooky.deliveries ORDER BY id").rows
        #expect(third == "3", "\(rows)")
        Thread.sleep(forTimeInterval: 0.5)
        #expect(locked.requests.count == 2)
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE webhook_id = \(lockedID) ORDER BY id") == ["succeeded", "sending", "pending"])

        try admin.execute("COMMIT")
        let lockedDone = "SELECT count(*) FROM webhooky.deliveries WHERE webhook_id = \(lockedID) AND state = 'succeeded'"
        #expect(try shop.waitFor(lockedDone, timeout: .seconds(15)) { $0 == "3" } == "3", "the held outcome was written once the lock was gone, and the webhook sent again")
        #expect(locked.requests.count == 3 && free.requests.count == 3)
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["6"])
        #expect(try shop.column("SELECT last_attempt_at IS NOT NULL FROM webhooky.webhook_health WHERE webhook_id = \(lockedID)") == ["t"])
    }

    /// Notes in `public.given_back` each delivery given back unsent (the release statement:
    /// `sending` -> `pending`, its attempt not counted).
    static let noteGivenBackSQL = """
        CREATE TABLE public.given_back (delivery_id bigint);
        CREATE FUNCTION public.note_given_back() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO public.given_back VALUES (NEW.id); RETURN NULL; END $$;
        CREATE TRIGGER note_given_back AFTER UPDATE ON webhooky.deliveries FOR EACH ROW
            WHEN (OLD.state = 'sending' AND NEW.state = 'pending' AND NEW.attempts < OLD.attempts) EXECUTE FUNCTION public.note_given_back();
        """

    @Test("an endpoint that earned its whole share and a line, then hangs, holds one timeout's worth: at its first unanswered request the deliveries waiting in its line are given back unsent, not sent to hang for a second timeout")
    func answeredThenHangingGivesItsLineBack() throws {
        let shop = try Shop()
        try shop.addCustomers(300)
        try shop.connection.execute(Self.noteGivenBackSQL)
        let hanging = Mutex(0)
        let receiver = try LoopbackReceiver { _, number in
            guard number > 100 else { return .ok }
            hanging.withLock { $0 += 1 }
            return .hang
        }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/then-hangs", account: "shop-42")
        // 8 per endpoint and, once it is quick, 8 more waiting in its line.
        let worker = RunningWorker(Self.workerOf32(shop, perEndpoint: 8, requestTimeout: .seconds(2)))
        defer { worker.stop(timeout: .seconds(30)) }

        // 300 deliveries: the first 100 answered at once (the endpoint earns 8 and its line), then it hangs.
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100300")
        let deadline = ContinuousClock.now + .seconds(20)
        while hanging.withLock({ $0 }) == 0 && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(hanging.withLock { $0 } > 0, "the endpoint got its 100 answered requests")
        // The first hanging requests time out after 2 s; a second timeout's worth would start then.
        Thread.sleep(forTimeInterval: 3)
        let held = hanging.withLock { $0 }
        #expect(held <= 10, "\(held) requests hung within one timeout and a second: its share of 8, then what it keeps (1)")
        let givenBack = Int(try shop.column("SELECT count(*) FROM public.given_back")[0]!)!
        #expect(givenBack >= 1, "the deliveries in the hanging endpoint's line were given back unsent")
    }

    @Test("a webhook whose URL template varies its host may have its whole share in flight to a slow one (its claims cannot know what the host earned): none of its deliveries is claimed and given back")
    func templatedHostKeepsItsShare() throws {
        let shop = try Shop()
        let concurrent = Mutex((now: 0, peak: 0))
        let slow = try LoopbackReceiver { _, _ in
            concurrent.withLock { $0.now += 1; $0.peak = max($0.peak, $0.now) }
            defer { concurrent.withLock { $0.now -= 1 } }
            Thread.sleep(forTimeInterval: 1.5)  // slower than a quarter of the timeout: earns nothing
            return .status(200)
        }
        defer { slow.stop() }
        let port = try #require(slow.baseURL.split(separator: ":").last)
        try shop.connection.execute("""
            INSERT INTO webhooky.event_types (name, description, sample) VALUES ('host.test', 'a host per event', '{"host": "127.0.0.1"}');
            \(Self.noteGivenBackSQL)
            -- A delivery written pending and claimed later (the claim statement's way).
            CREATE TABLE public.claimed_later (delivery_id bigint);
            CREATE FUNCTION public.note_claimed_later() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO public.claimed_later VALUES (NEW.id); RETURN NULL; END $$;
            CREATE TRIGGER note_claimed_later AFTER UPDATE ON webhooky.deliveries FOR EACH ROW
                WHEN (OLD.state = 'pending' AND NEW.state = 'sending') EXECUTE FUNCTION public.note_claimed_later();
            """)
        try shop.addWebhook(event: "host.test", url: "http://#host#:\(port)/t")
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlightPerEndpoint = 8
        configuration.http.requestTimeout = .seconds(4)
        let worker = RunningWorker(configuration)
        defer { worker.stop(timeout: .seconds(30)) }

        try shop.connection.execute("SELECT webhooky.emit('host.test', '{\"host\": \"127.0.0.1\"}', 'shop-42') FROM generate_series(1, 16)")
        #expect(slow.waitForRequests(16, timeout: .seconds(20)).count == 16)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "16" } == "16")
        #expect(concurrent.withLock { $0.peak } == 8, "the templated webhook had \(concurrent.withLock { $0.peak }) requests at once, not its share of 8")
        #expect(try shop.column("SELECT count(*) FROM public.given_back") == ["0"], "deliveries claimed and given back unsent")
        // The fan-out claims the share at once (8), the other 8 wait pending for room.
        #expect(try shop.column("SELECT count(*) FROM public.claimed_later") == ["8"])
    }

    @Test("a large backlog of one webhook drains steadily without starving another webhook's new events")
    func backlogDoesNotStarveNewEvents() throws {
        let shop = try Shop()
        let busy = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .milliseconds(20)) }
        let quiet = try LoopbackReceiver()
        let busyWebhook = try shop.addWebhook(url: busy.baseURL + "/backlog")
        try shop.addWebhook(event: "customer.tier_changed", url: quiet.baseURL + "/fresh")
        // 20,000 pending deliveries for the busy webhook, all due now.
        try shop.connection.query("""
            WITH e AS (INSERT INTO webhooky.events (event, account_id, payload)
                       SELECT 'customer.credit_changed', 'shop-42', jsonb_build_object('n', n) FROM generate_series(1, 20000) n RETURNING id)
            INSERT INTO webhooky.deliveries (event_id, webhook_id) SELECT id, $1 FROM e
            """, [String(busyWebhook)])
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlight = 64
        let worker = RunningWorker(configuration)
        defer { worker.stop(timeout: .seconds(30)) }
        #expect(busy.waitForRequests(200, timeout: .seconds(20)).count >= 200, "the backlog is draining")
        let started = ContinuousClock.now
        let sentBefore = busy.requests.count
        try shop.setTier(2)
        #expect(quiet.waitForRequests(1, timeout: .seconds(10)).count == 1)
        let waited = ContinuousClock.now - started
        // How much of the backlog went first tells, whatever the machine's speed: a few batches.
        let ahead = busy.requests.count - sentBefore
        #expect(ahead < 5_000 && waited < .seconds(5), "a new event waited \(waited) behind another webhook's backlog (\(ahead) of its requests went first)")
        #expect(busy.requests.count < 20_000, "the backlog was still there when the new event went out")
    }

    /// A worker allowed 2 requests in flight per endpoint whose poll is a minute away (so only
    /// its own bookkeeping can find held-back deliveries), once it waits for NOTIFYs.
    static func idleWorkerTwoPerEndpointWithoutPolling(_ shop: Shop) throws -> RunningWorker {
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlightPerEndpoint = 2
        configuration.pollInterval = .seconds(60)
        let worker = RunningWorker(configuration)
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE wants_wakeup") { $0 == "1" }
        return worker
    }

    @Test("deliveries a fan-out leaves pending because their endpoint is at its limit go out as its requests finish, not at the next poll")
    func roomLimitedFanOutDoesNotWaitForThePoll() throws {
        let shop = try Shop()
        try shop.addCustomers(20)
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .milliseconds(50)) }
        try shop.addWebhook(url: receiver.baseURL + "/limited")
        let worker = try ReliabilityTests.idleWorkerTwoPerEndpointWithoutPolling(shop)
        defer { worker.stop(timeout: .seconds(30)) }

        // One transaction, 20 events: the fan-out claims 2 (the endpoint's limit) and leaves 18 pending.
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100020")
        let delivered = receiver.waitForRequests(20, timeout: .seconds(20))
        #expect(delivered.count == 20, "only \(delivered.count) of 20 arrived within 20 s (the poll is 60 s away)")
        let pending = try shop.connection.query("SELECT count(*) FROM webhooky.deliveries WHERE attempts = 0").scalar
        #expect(pending == "0")
    }

    @Test("a webhook held back by another webhook's requests to the same endpoint goes out when those finish")
    func sharedEndpointHandsOverItsRoom() throws {
        let shop = try Shop()
        try shop.addCustomers(3)
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .milliseconds(300)) }
        try shop.addWebhook(url: receiver.baseURL + "/credit")
        try shop.addWebhook(event: "customer.tier_changed", url: receiver.baseURL + "/tier")
        let worker = try ReliabilityTests.idleWorkerTwoPerEndpointWithoutPolling(shop)
        defer { worker.stop(timeout: .seconds(30)) }

        // Two credit changes fill the endpoint; three tier changes then find no room and wait.
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100002")
        _ = receiver.waitForRequests(1, timeout: .seconds(5))
        try shop.connection.execute("UPDATE ellity.customers SET tier_id = 2 WHERE id BETWEEN 100001 AND 100003")
        let delivered = receiver.waitForRequests(5, timeout: .seconds(20))
        #expect(delivered.filter { $0.target == "/tier" }.count == 3, "\(delivered.map(\.target))")
        #expect(delivered.filter { $0.target == "/credit" }.count == 2)
    }

    @Test("a full endpoint's new events wait for its room and are created claimed: no delivery is written pending and claimed again")
    func fullEndpointDeliveriesAreCreatedClaimed() throws {
        let shop = try Shop()
        try shop.addCustomers(600)
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/busy")
        // Counts every delivery that went pending -> sending (the claim statement's way).
        try shop.connection.execute("""
            CREATE TABLE public.claimed_again (delivery_id bigint);
            CREATE FUNCTION public.note_claimed_again() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO public.claimed_again VALUES (NEW.id); RETURN NULL; END $$;
            CREATE TRIGGER note_claimed_again AFTER UPDATE ON webhooky.deliveries FOR EACH ROW
                WHEN (OLD.state = 'pending' AND NEW.state = 'sending') EXECUTE FUNCTION public.note_claimed_again();
            """)
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100600")
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlightPerEndpoint = 4
        configuration.fanOutPatience = .seconds(30)  // only room decides here, never a noisy machine's pause
        let worker = RunningWorker(configuration)
        defer { worker.stop() }

        #expect(receiver.waitForRequests(600, timeout: .seconds(60)).count == 600)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded' AND attempts = 1") { $0 == "600" } == "600")
        #expect(try shop.connection.query("SELECT count(*) FROM public.claimed_again").scalar == "0")
    }

    @Test("events behind a full, slow endpoint's wait only the fan-out patience, not until it has room")
    func fullEndpointHoldsOtherEventsBackOnlyBriefly() throws {
        let shop = try Shop()
        try shop.addCustomers(6)
        let slow = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .seconds(3)) }
        defer { slow.stop() }
        let quick = try LoopbackReceiver()
        try shop.addWebhook(url: slow.baseURL + "/slow")
        try shop.addWebhook(event: "customer.tier_changed", url: quick.baseURL + "/quick")
        let worker = try ReliabilityTests.idleWorkerTwoPerEndpointWithoutPolling(shop)
        defer { worker.stop(timeout: .seconds(30)) }

        // Six credit changes: one fills the slow endpoint (a new endpoint may have 1 of its 2 in
        // flight until it answers, see EndpointAllowance), five wait; then a tier change behind
        // them. (Waiting for two raced: the first answer, after 3 s, lets two more go at once.)
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100006")
        #expect(slow.waitForRequests(1, timeout: .seconds(5)).count == 1)
        let started = ContinuousClock.now
        try shop.setTier(2)
        #expect(quick.waitForRequests(1, timeout: .seconds(10)).count == 1)
        let waited = ContinuousClock.now - started
        // Behind the slow endpoint's events it would wait for its 3 s answer.
        #expect(waited < .seconds(2), "the tier change waited \(waited) behind the slow endpoint's events")
        #expect(slow.waitForRequests(6, timeout: .seconds(20)).count == 6, "the held-back credit changes go out as the slow endpoint frees room")
    }

    @Test("many dead endpoints do not fill the worker: once their first requests ended unanswered each holds one request, and a quick endpoint's events go at once (each kept an eighth of the per-endpoint limit, and enough of them took every request a worker may have)")
    func deadEndpointsHoldOneEach() throws {
        let shop = try Shop()
        let (dead, quick, configuration) = try ReliabilityTests.deadEndpoints(10, shop, requestTimeout: .seconds(1))
        defer { for receiver in dead + [quick] { receiver.stop() } }
        let worker = RunningWorker(configuration)
        defer { worker.stop(timeout: .seconds(30)) }

        // Ten credit changes: ten deliveries for each dead endpoint, 3 of them at once would be
        // 30 of the worker's 32 (the held count below tells); each retried 200 ms after its timeout.
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100010")
        #expect(dead.allSatisfy { $0.waitForRequests(1, timeout: .seconds(5)).count >= 1 })
        Thread.sleep(forTimeInterval: 3)  // the first requests timed out (1 s), and the next
        let waits = try ReliabilityTests.waitsForFive(at: quick, pause: 0.3) { round in try shop.setTier(round % 2 == 0 ? 2 : 1) }
        #expect(waits.count == 5 && waits.filter { $0 < 0.5 }.count >= 4, "the quick endpoint's events waited \(waits.map { String(format: "%.3f", $0) }) s")
        let held = try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE state = 'sending'")
        #expect(held.first.flatMap { $0.flatMap { Int($0) } }.map { $0 <= 12 } == true, "requests held by the dead endpoints: \(held)")
    }

    @Test("a worker that starts while endpoints are dead knows them from their last attempts (within the hour): each holds one request from the start, and a quick endpoint's events go at once (each started at an eighth of the per-endpoint limit again, and enough of them took every request the worker may have until their first timeouts)")
    func restartedWorkerRecallsDeadEndpoints() throws {
        let shop = try Shop()
        var (dead, quick, configuration) = try ReliabilityTests.deadEndpoints(12, shop, requestTimeout: .milliseconds(500))
        defer { for receiver in dead + [quick] { receiver.stop() } }

        // The first worker: ten deliveries for each of the twelve dead endpoints, whose requests time out.
        let first = RunningWorker(configuration)
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100010")
        #expect(try shop.waitFor("SELECT count(DISTINCT webhook_id) FROM webhooky.attempts WHERE status IS NULL", timeout: .seconds(10)) { $0 == "12" } == "12")
        first.stop(timeout: .seconds(30))

        // A second worker, with a longer timeout: 3 requests for each of the twelve would be 36,
        // more than its 32, and none would end for 4 s.
        configuration.http.requestTimeout = .seconds(4)
        let second = RunningWorker(configuration)
        defer { second.stop(timeout: .seconds(30)) }
        #expect(try shop.waitFor("SELECT count(*) >= 12 FROM webhooky.deliveries WHERE state = 'sending'", timeout: .seconds(10)) { $0 == "t" } == "t",
                "the second worker sent nothing")
        Thread.sleep(forTimeInterval: 0.3)  // what it claims at once, it has claimed
        let committed = Date().timeIntervalSince1970
        try shop.setTier(2)
        let arrived = quick.waitForRequests(1, timeout: .seconds(10))
        #expect(arrived.count == 1)
        let waited = (arrived.first?.receivedAt ?? .infinity) - committed
        // Behind the dead endpoints it would wait for their 4 s timeout.
        #expect(waited < 2.5, "the quick endpoint's event waited \(String(format: "%.3f", waited)) s behind the dead endpoints")
        let held = try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE state = 'sending' AND webhook_id <> (SELECT max(id) FROM webhooky.webhooks)")
        #expect(held == ["12"], "requests in flight to the dead endpoints: \(held), the quick one waited \(String(format: "%.3f", waited)) s")
    }

    /// Commits five events for `receiver` (`commit(round)`), `pause` seconds apart, and returns
    /// how long each took from its commit to its arrival.
    static func waitsForFive(at receiver: LoopbackReceiver, pause: Double, commit: (Int) throws -> Void) throws -> [Double] {
        var waits: [Double] = []
        for round in 0..<5 {
            let committed = Date().timeIntervalSince1970
            try commit(round)
            let arrived = receiver.waitForRequests(round + 1, timeout: .seconds(10))
            #expect(arrived.count == round + 1)
            if let last = arrived.last { waits.append(last.receivedAt - committed) }
            Thread.sleep(forTimeInterval: pause)
        }
        return waits
    }

    /// `count` endpoints that never answer, each with a webhook of `customer.credit_changed`, ten
    /// customers (ids 100001-100010) whose credit changes make ten deliveries for each, a quick
    /// endpoint with a webhook of `customer.tier_changed`, and a worker configuration of 32
    /// requests in flight (a new endpoint may have 3: an eighth of three quarters of 32) that
    /// retries 40 times, 200 ms apart.
    static func deadEndpoints(_ count: Int, _ shop: Shop, requestTimeout: Duration) throws -> ([LoopbackReceiver], LoopbackReceiver, WorkerConfiguration) {
        try shop.addCustomers(10)
        var dead: [LoopbackReceiver] = []
        for number in 0..<count {
            let receiver = try LoopbackReceiver { _, _ in .hang }
            dead.append(receiver)
            try shop.addWebhook(url: receiver.baseURL + "/dead\(number)")
        }
        let quick = try LoopbackReceiver()
        try shop.addWebhook(event: "customer.tier_changed", url: quick.baseURL + "/quick")
        var configuration = shop.workerConfiguration(retry: Array(repeating: .milliseconds(200), count: 40))
        configuration.maximumInFlight = 32
        configuration.maximumInFlightPerEndpoint = 64
        configuration.http.requestTimeout = requestTimeout
        configuration.shutdownGracePeriod = .milliseconds(200)
        return (dead, quick, configuration)
    }

    @Test("a dead endpoint that stays full holds each new event of its type back once, not every time: a quick webhook of the same event gets the later events at once")
    func fullEndpointCostsThePatienceOnce() throws {
        let shop = try Shop()
        try shop.addCustomers(10)
        let dead = try LoopbackReceiver { _, _ in .hang }
        defer { dead.stop() }
        let quick = try LoopbackReceiver()
        defer { quick.stop() }
        try shop.addWebhook(url: dead.baseURL + "/dead")
        try shop.addWebhook(url: quick.baseURL + "/quick")  // the same event type
        var configuration = shop.workerConfiguration(retry: [.seconds(60)])
        configuration.http.requestTimeout = .seconds(60)    // the dead endpoint stays full for the whole test
        configuration.fanOutPatience = .seconds(1)          // long enough to tell from a busy machine's pause
        configuration.shutdownGracePeriod = .milliseconds(200)
        let worker = RunningWorker(configuration)
        defer { worker.stop(timeout: .seconds(30)) }

        // Ten events: the dead endpoint takes the 8 a new endpoint may have, the fan-out stops
        // at the ninth and, once the patience ran out, leaves its and the tenth's delivery pending.
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100010")
        #expect(quick.waitForRequests(10, timeout: .seconds(10)).count == 10)
        #expect(dead.waitForRequests(8, timeout: .seconds(5)).count == 8)

        // The endpoint is still full: the patience is spent, each new event goes out at once.
        var waits: [Duration] = []
        for credit in 1...5 {
            let started = ContinuousClock.now
            try shop.setCredit(String(credit))
            #expect(quick.waitForRequests(10 + credit, timeout: .seconds(10)).count == 10 + credit)
            waits.append(ContinuousClock.now - started)
        }
        // Four of the five at least: one may meet a pause of a loaded machine; paying the
        // patience each time, every one would wait a second or more.
        #expect(waits.filter { $0 < .milliseconds(500) }.count >= 4, "the quick webhook's deliveries waited \(waits) behind the full endpoint (patience 1 s)")
        #expect(dead.requests.count == 8)
        #expect(try shop.connection.query("SELECT count(*) FROM webhooky.deliveries WHERE webhook_id = 1 AND state = 'pending'").scalar == "7")
    }

    @Test("a stream of events wakes the worker once or so: while events come fast enough, it looks for them itself and committing transactions send no NOTIFY")
    func aStreamOfEventsSendsOneNotify() throws {
        let shop = try Shop()
        try shop.addCustomers(200)
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/stream")
        var configuration = shop.workerConfiguration()
        configuration.pollInterval = .seconds(60)  // only NOTIFYs and its own looks find events
        configuration.awakeAboveEventsPerSecond = 10  // a test machine cannot promise thousands per second
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE wants_wakeup") { $0 == "1" }
        let listener = try shop.database.connect()
        try listener.listen("webhooky")

        // 200 transactions, one event each, a few milliseconds apart.
        for id in 100_001...100_200 {
            try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = \(id)")
            Thread.sleep(forTimeInterval: 0.002)
        }
        #expect(receiver.waitForRequests(200, timeout: .seconds(20)).count == 200)
        var notifications = 0
        while case let received = try listener.waitForNotifications(timeout: .milliseconds(200)), !received.isEmpty { notifications += received.count }
        // The first wakes it; a few more come from transactions that read `wants_wakeup` just
        // before the worker said it was awake, and from pauses of this thread on a loaded
        // machine, after which the worker waits for a NOTIFY again (6 in a CI run with the whole
        // suite beside it). Without the feature every commit sends one: 200.
        #expect(notifications >= 1 && notifications <= 20, "\(notifications) NOTIFYs for 200 events in a stream")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "200" } == "200")
        // Once the stream has ended the worker waits for a NOTIFY again.
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE wants_wakeup", timeout: .seconds(20)) { $0 == "1" } == "1")
    }

    /// A running worker with one webhook (to `receiver`) that has recorded one delivery (so its
    /// outcome connection is open), and a connection holding `webhooky.attempts` locked: no
    /// outcome can be written until it commits.
    static func workerWithAttemptsLocked(_ shop: Shop, _ receiver: LoopbackReceiver, _ configuration: WorkerConfiguration) throws -> (RunningWorker, Connection) {
        try shop.addWebhook(url: receiver.baseURL + "/hook")
        let worker = RunningWorker(configuration)
        try shop.setCredit("1")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "1" } == "1")
        let locker = try shop.database.connect()
        try locker.execute("BEGIN; LOCK TABLE webhooky.attempts IN EXCLUSIVE MODE")
        return (worker, locker)
    }

    @Test("sending goes on while outcomes cannot be written (their table locked); they are written once the lock is gone")
    func sendingDoesNotWaitForOutcomes() throws {
        let shop = try Shop()
        try shop.addCustomers(10)
        let receiver = try LoopbackReceiver()
        let (worker, locker) = try ReliabilityTests.workerWithAttemptsLocked(shop, receiver, shop.workerConfiguration())
        defer { worker.stop() }
        // One event, whose outcome then waits for the lock; then more events, one at a time.
        for (index, id) in (100_001...100_005).enumerated() {
            try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = \(id)")
            #expect(receiver.waitForRequests(index + 2, timeout: .seconds(10)).count == index + 2, "event \(index + 1) was sent while outcomes waited")
            Thread.sleep(forTimeInterval: 0.05)  // past the recording delay: its outcome is being written
        }
        #expect(try shop.connection.query("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'").scalar == "1")
        try locker.execute("COMMIT")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "6" } == "6")
        #expect(try shop.connection.query("SELECT count(*) FROM webhooky.attempts").scalar == "6")
    }

    @Test("a stop while an outcome waits for a lock ends after the grace period: the waiting statement is cancelled, its connection closed")
    func stopWhileAnOutcomeWaitsForALock() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let logs = LogCapture()
        let (worker, locker) = try ReliabilityTests.workerWithAttemptsLocked(shop, receiver, shop.workerConfiguration(logs: logs))
        defer { _ = try? locker.execute("ROLLBACK") }
        try shop.setCredit("2")
        #expect(receiver.waitForRequests(2, timeout: .seconds(10)).count == 2)
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'webhooky recorder' AND wait_event_type = 'Lock'"
        #expect(try shop.waitFor(waiting) { $0 == "1" } == "1", "the outcome waits for the lock")
        let started = ContinuousClock.now
        let stop = worker.stop(timeout: .seconds(15))
        #expect(stop.stoppedInTime, "the stop waited for the lock instead of the 2 s grace period")
        #expect(ContinuousClock.now - started < .seconds(10), "the grace period (2 s) and the last write's allowance (5 s)")
        // Nothing of the stopped worker is left waiting (to write behind its back, or hold a
        // connection); its outcome is not recorded, and the delivery goes out again after its lease.
        #expect(try shop.waitFor("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'webhooky %'", timeout: .seconds(5)) { $0 == "0" } == "0")
        #expect(logs.waitForLine { $0.contains("outcomes not recorded") })
        try locker.execute("COMMIT")
        #expect(try shop.connection.query("SELECT state FROM webhooky.deliveries ORDER BY id").rows == [["succeeded"], ["sending"]])
    }

    @Test("a stop while pruning waits for a lock ends at once: the pruning statement is cancelled")
    func stopWhilePruningWaitsForALock() throws {
        let shop = try Shop()
        let locker = try shop.database.connect()
        try locker.execute("BEGIN; LOCK TABLE webhooky.attempts IN EXCLUSIVE MODE")
        defer { _ = try? locker.execute("ROLLBACK") }
        var configuration = shop.workerConfiguration()
        var retention = RetentionPolicy.standard
        retention.interval = .milliseconds(500)  // the first run half a second after the start
        configuration.retention = retention
        let worker = RunningWorker(configuration)
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'webhooky pruner' AND wait_event_type = 'Lock'"
        #expect(try shop.waitFor(waiting) { $0 == "1" } == "1", "the pruner waits for the lock")
        let started = ContinuousClock.now
        #expect(worker.stop(timeout: .seconds(15)).stoppedInTime, "the stop waited for the lock")
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(try shop.waitFor("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'webhooky %'", timeout: .seconds(5)) { $0 == "0" } == "0")
    }

    @Test("a dispatcher statement waiting for a lock gives up after a while: finished requests are recorded and a stop is seen meanwhile")
    func dispatcherDoesNotWaitForALockForEver() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/hook")
        let logs = LogCapture()
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))
        defer { worker.stop() }
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers") { $0 == "1" }
        // Someone's open transaction holds the workers table: the heartbeat waits for it.
        let locker = try shop.database.connect()
        try locker.execute("BEGIN; LOCK TABLE webhooky.workers IN EXCLUSIVE MODE")
        defer { _ = try? locker.execute("ROLLBACK") }
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'webhooky worker' AND wait_event_type = 'Lock'"
        #expect(try shop.waitFor(waiting) { $0 == "1" } == "1", "the heartbeat waits for the lock")
        try shop.setCredit("3")
        #expect(receiver.waitForRequests(1, timeout: .seconds(15)).count == 1, "the event goes out while the lock is held")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries", timeout: .seconds(15)) { $0 == "succeeded" } == "succeeded")
        #expect(logs.waitForLine { $0.contains("lock timeout") })
        #expect(worker.stop(timeout: .seconds(15)).stoppedInTime, "the stop waited for the lock")
    }

    @Test("outcomes that cannot be written hold the worker back: it stops sending after a window of them, and nothing is sent twice")
    func unwrittenOutcomesHoldTheWorkerBack() throws {
        let shop = try Shop()
        try shop.addCustomers(100)
        let receiver = try LoopbackReceiver()
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlight = 8
        let (worker, locker) = try ReliabilityTests.workerWithAttemptsLocked(shop, receiver, configuration)
        defer { worker.stop() }
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id BETWEEN 100001 AND 100100")
        // Sending has begun (a loaded machine may take a while to start), and then had the time
        // to send everything, were it not held back.
        #expect(receiver.waitForRequests(2, timeout: .seconds(10)).count >= 2)
        Thread.sleep(forTimeInterval: 1.5)
        // 8 in flight, then up to 8 unwritten beyond one window of 8: at most 16 sent meanwhile.
        let sentWhileLocked = receiver.requests.count - 1
        #expect(sentWhileLocked > 0 && sentWhileLocked <= 16, "\(sentWhileLocked) sent while no outcome could be written")
        try locker.execute("COMMIT")
        #expect(receiver.waitForRequests(101, timeout: .seconds(30)).count == 101)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded' AND attempts = 1") { $0 == "101" } == "101")
        let ids = receiver.requests.compactMap { $0.header("webhook-id") }
        #expect(Set(ids).count == ids.count, "nothing sent twice")
    }

    @Test("an event with more deliveries than the worker may have in flight still goes out (after the fan-out patience)")
    func eventLargerThanTheWorker() throws {
        let shop = try Shop()
        let receivers = try (0..<3).map { _ in try LoopbackReceiver() }
        for receiver in receivers { try shop.addWebhook(url: receiver.baseURL + "/hook") }
        var configuration = shop.workerConfiguration()
        configuration.maximumInFlight = 2
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.setCredit("7")  // one event, three deliveries, room for two at a time
        for receiver in receivers { #expect(receiver.waitForRequests(1, timeout: .seconds(10)).count == 1) }
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "3" } == "3")
    }

    @Test("a webhook that keeps failing is disabled with a reason; re-enabling it resumes delivery")
    func keepsFailingThenDisabled() throws {
        let shop = try Shop()
        let healthy = Atomic(false)
        let receiver = try LoopbackReceiver { _, _ in healthy.load(ordering: .relaxed) ? .ok : .status(503) }
        let id = try shop.addWebhook(url: receiver.baseURL + "/flaky")
        var configuration = shop.workerConfiguration(retry: Array(repeating: .milliseconds(100), count: 20))
        configuration.autoDisable = AutoDisablePolicy(failures: 3, period: .zero)
        let logs = LogCapture()
        configuration.logger = logs.logger()
        let worker = RunningWorker(configuration)
        defer { worker.stop() }

        try shop.setCredit("9")
        #expect(try shop.waitFor("SELECT enabled FROM webhooky.webhooks") { $0 == "f" } == "f")
        let reason = try shop.column("SELECT disabled_reason FROM webhooky.webhooks").first ?? nil
        #expect(reason?.hasPrefix("3 failed attempts in a row since ") == true, "\(reason ?? "nil")")
        #expect(try shop.connection.query("SELECT consecutive_failures FROM webhooky.webhook_health WHERE webhook_id = $1", [String(id)]).scalar == "3")
        #expect(logs.waitForLine { $0.contains("webhook disabled") && $0.contains("webhook=\(id)") })
        Thread.sleep(forTimeInterval: 0.5)
        let attemptsWhileDisabled = receiver.requests.count
        #expect(attemptsWhileDisabled == 3)
        #expect(try shop.column("SELECT state FROM webhooky.deliveries") == ["pending"])

        healthy.store(true, ordering: .relaxed)
        try shop.connection.execute("UPDATE webhooky.webhooks SET enabled = true")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        #expect(try shop.connection.query("SELECT disabled_reason, disabled_at FROM webhooky.webhooks").rows == [[nil, nil]])
        #expect(try shop.connection.query("SELECT consecutive_failures, failing_since FROM webhooky.webhook_health").rows == [["0", nil]])
    }

    @Test("HTTP 410 Gone disables the webhook at once")
    func goneDisables() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .status(410, body: "unsubscribed") }
        try shop.addWebhook(url: receiver.baseURL + "/gone")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("10")
        #expect(try shop.waitFor("SELECT enabled FROM webhooky.webhooks") { $0 == "f" } == "f")
        #expect(try shop.column("SELECT disabled_reason FROM webhooky.webhooks") == ["the endpoint answered 410 Gone"])
        #expect(receiver.requests.count == 1)
    }

    @Test("a webhook row locked by someone's open transaction does not hold outcomes back: it is disabled by a later failure")
    func lockedWebhookDoesNotStallOutcomes() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .status(410) }
        let webhook = try shop.addWebhook(url: receiver.baseURL + "/gone")
        let holder = try shop.database.connect()
        try holder.execute("BEGIN")
        try holder.query("SELECT id FROM webhooky.webhooks WHERE id = $1 FOR UPDATE", [String(webhook)])
        let worker = RunningWorker(shop.workerConfiguration(retry: [.milliseconds(100), .milliseconds(100), .milliseconds(100)]))
        defer { worker.stop() }
        try shop.setCredit("10")
        // Recorded while the row is locked (before, the outcome statement waited for the lock,
        // and with it every other outcome of the worker).
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.attempts") { $0 == "2" } == "2")
        #expect(try shop.column("SELECT enabled::text FROM webhooky.webhooks") == ["true"])
        try holder.execute("COMMIT")
        #expect(try shop.waitFor("SELECT enabled::text FROM webhooky.webhooks") { $0 == "false" } == "false")
        #expect(try shop.column("SELECT disabled_reason FROM webhooky.webhooks") == ["the endpoint answered 410 Gone"])
    }

    @Test("410 Gone disables a webhook written under a larger limit than today's (the outcome is not lost)")
    func goneDisablesAWebhookOverTodaysLimits() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .status(410, body: "unsubscribed") }
        let url = receiver.baseURL + "/gone?" + String(repeating: "k", count: 80)
        let webhook = try shop.addWebhook(url: url, headers: #"{"X-One": "1", "X-Two": "2"}"#)
        // An admin lowers the limits below what the webhook already has.
        try shop.connection.execute("""
            INSERT INTO webhooky.settings VALUES ('max_url_length', '64'), ('max_headers', '1')
            """)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("10")
        // Before migration 0009 the worker's disabling UPDATE failed the limit check, the whole
        // outcome was rolled back and the delivery stayed 'sending', to be sent again and again.
        #expect(try shop.waitFor("SELECT enabled FROM webhooky.webhooks") { $0 == "f" } == "f")
        #expect(try shop.column("SELECT disabled_reason FROM webhooky.webhooks") == ["the endpoint answered 410 Gone"])
        // Recorded: the attempt, and the delivery waiting (pending) until the webhook is enabled again.
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 != "sending" } == "pending")
        #expect(try shop.deliveryStates() == [["pending", "1", "410"]])
        #expect(try shop.column("SELECT status::text FROM webhooky.attempts") == ["410"])
        #expect(receiver.requests.count == 1)

        // An admin can still rename it; what a change writes is checked against today's limits.
        try shop.connection.query("UPDATE webhooky.webhooks SET name = 'old endpoint' WHERE id = $1", [String(webhook)])
        do {
            try shop.connection.query("UPDATE webhooky.webhooks SET url = $2 WHERE id = $1", [String(webhook), url + "x"])
            Issue.record("a URL over today's limit was accepted")
        } catch {
            #expect(error.message == "webhook \(webhook) \"old endpoint\": URL is \(url.count + 1) characters long; the limit is 64")
        }
        do {
            try shop.connection.query(#"UPDATE webhooky.webhooks SET headers = headers || '{"X-Three": "3"}' WHERE id = $1"#, [String(webhook)])
            Issue.record("headers over today's limit were accepted")
        } catch {
            #expect(error.message == "webhook \(webhook) \"old endpoint\": 3 headers; the limit is 1")
        }
    }
}

/// Bad configuration: one clear message and a documented exit status.
@Suite(.timeLimit(.minutes(10))) struct ConfigurationErrorTests {
    private func run(_ arguments: [String]) throws -> ChildProcess.Outcome {
        try ChildProcess.run(WorkerProcess.executable(), arguments)
    }

    @Test("a wrong password: the worker says so while it waits for the database (--wait-for-database), then exits 3, never showing the password")
    func wrongPasswordExitsThreeWithoutShowingIt() throws {
        let cluster = try LocalCluster(name: "password", password: "right-password")
        defer { cluster.destroy() }
        let outcome = try run(["run", "--database-url", cluster.conninfo() + " password=Wr0ngPassw0rd", "--wait-for-database", "3s"])
        #expect(outcome.status == 3)
        let lines = outcome.output.split(separator: "\n").map(String.init)
        #expect(lines.first?.contains(" warning  cannot connect to the database; waiting for it (--wait-for-database 3s) hint=\"this lasts until the role, "
                                      + "password or database is mended: check --database-url (or DATABASE_URL); --wait-for-database 0s (or 1m) makes the "
                                      + "worker exit with status 3 instead, for a supervisor to see\" error=") == true, "\(outcome.output)")
        #expect(lines.filter { $0.contains("waiting for it") }.count == 1, "one line while it waits: \(outcome.output)")
        #expect(outcome.output.contains("webhooky: error: cannot connect to the database (tried for --wait-for-database 3s): "), "\(outcome.output)")
        #expect(outcome.output.contains("password authentication failed"))
        #expect(!outcome.output.contains("Wr0ngPassw0rd"))
        let migrate = try run(["migrate", "--database-url", "postgresql://postgres:Wr0ngPassw0rd@/postgres?host=\(cluster.socketDirectory)"])
        #expect(migrate.status == 3)
        #expect(!migrate.output.contains("Wr0ngPassw0rd"))
    }

    @Test("a malformed connection string: a bad option (status 2, which the unit does not restart; connecting again cannot help), what is wrong (a misspelt keyword, a wrong URL scheme, a bare database name), never its password", arguments: [
        ("postgresql://user:s3cret%zzPW@localhost/db", "the connection string is malformed: invalid percent-encoded token: \"…\""),
        ("host=/tmp dbname=shop password=s3cretPw! sslmod=require",
         "the connection string is malformed: invalid connection option \"sslmod\" (a misspelt keyword? the list: https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-PARAMKEYWORDS)"),
        ("postgresq://postgres:s3cretPw!@localhost/shop",
         "the connection string is malformed: missing \"=\" after \"…\" in connection info string (a URL starts with postgresql:// or postgres://, not postgresq://)"),
        ("host=/tmp password=my s3cret", "the connection string is malformed: missing \"=\" after \"…\" in connection info string"),
        // psql's habit: a bare database name.
        ("shop", "the connection string is malformed: missing \"=\" after \"…\" in connection info string (a database name alone is written dbname=NAME, or as a URL: postgresql:///NAME)"),
    ])
    func aMalformedConnectionStringDoesNotEchoItsPassword(url: String, message: String) throws {
        try expectBadOption(url: url, message: message)
    }

    /// `run --database-url URL`, and every other command with `DATABASE_URL=URL`, exit 2 with
    /// `message` and their usage, and never show the password (`s3cret...`).
    private func expectBadOption(url: String, message: String) throws {
        let outcome = try run(["run", "--database-url", url])
        #expect(outcome.status == 2)
        #expect(outcome.output.hasPrefix("webhooky: error: --database-url: " + message + "\nUsage: webhooky run [options]\n"), "\(outcome.output)")
        #expect(!outcome.output.contains("s3cret"))
        // The other commands too, and from DATABASE_URL.
        for command in ["migrate", "doctor", "status", "tail", "preview"] {
            let other = try CommandProcess.run([command], environment: ["DATABASE_URL": url], timeout: .seconds(20))
            #expect(other.status == 2, "\(command): \(other.errors)")
            #expect(other.errors.hasPrefix("webhooky: error: DATABASE_URL: " + message + "\nUsage: webhooky \(command) "), "\(command): \(other.errors)")
            #expect(!other.errors.contains("s3cret") && !other.output.contains("s3cret"), "\(command)")
        }
    }

    @Test("an option value libpq refuses before it connects (sslmode=bogus, target_session_attrs=x, connect_timeout=5s, or PGSSLMODE=bogus) is a bad option, status 2, which the unit does not restart (it exited 3, database unreachable, and was restarted forever); values libpq takes still get as far as connecting", arguments: [
        ("postgresql://postgres:s3cretPw@localhost/shop?sslmode=bogus",
         "sslmode \"bogus\" is not a value libpq takes: it takes one of disable, allow, prefer, require, verify-ca or verify-full"),
        ("host=/tmp password=s3cretPw target_session_attrs=x",
         "target_session_attrs \"x\" is not a value libpq takes: it takes one of any, read-write, read-only, primary, standby or prefer-standby"),
        ("host=/tmp password=s3cretPw connect_timeout=5s", "connect_timeout \"5s\" is not a value libpq takes: it takes a whole number of seconds"),
        ("host=/tmp password=s3cretPw gssencmode=Prefer",
         "gssencmode \"Prefer\" is not a value libpq takes: it takes one of disable, prefer or require"),
    ])
    func anOptionValueLibpqRefusesIsABadOption(url: String, message: String) throws {
        try expectBadOption(url: url, message: message)
    }

    @Test("an option value from libpq's environment variables (PGSSLMODE=bogus) is a bad option too, with or without a connection string; values libpq takes (any case of a TLS version, a number with spaces) still connect")
    func optionValuesFromTheEnvironment() throws {
        let message = "sslmode \"bogus\" (from the environment variable PGSSLMODE) is not a value libpq takes: "
        let alone = try CommandProcess.run(["run"], environment: ["PGSSLMODE": "bogus", "DATABASE_URL": ""], timeout: .seconds(20))
        #expect(alone.status == 2)
        #expect(alone.errors.hasPrefix("webhooky: error: DATABASE_URL: " + message), "\(alone.errors)")
        let unreachable = "host=/nonexistent-socket-dir port=1"
        let withURL = try CommandProcess.run(["status", "--database-url", unreachable], environment: ["PGSSLMODE": "bogus"], timeout: .seconds(20))
        #expect(withURL.status == 2)
        #expect(withURL.errors.hasPrefix("webhooky: error: --database-url: " + message), "\(withURL.errors)")
        // The connection string's own value wins, as in libpq.
        let overridden = try CommandProcess.run(["status", "--database-url", unreachable + " sslmode=disable"], environment: ["PGSSLMODE": "bogus"], timeout: .seconds(20))
        #expect(overridden.status == 3, "\(overridden.errors)")

        let database = try TestCluster.newDatabase()
        let fine = try CommandProcess.run(["status", "--database-url", database.conninfo + " sslmode=prefer target_session_attrs=read-write ssl_min_protocol_version=tlsv1.2 connect_timeout=' 5 '"],
                                          timeout: .seconds(20))
        #expect(fine.status == 0, "\(fine.errors)")
    }

    @Test func anOlderOrNewerSchemaExitsFour() throws {
        let database = try TestCluster.newEmptyDatabase()
        let connection = try database.connect()
        try connection.execute(Migrations.all[0].sql)
        let older = try run(["run", "--database-url", database.conninfo])
        #expect(older.status == 4)
        #expect(older.output.contains("older than this webhooky binary"))
        #expect(older.output.contains("run \"webhooky migrate\""))
        let dryRun = try run(["migrate", "--dry-run", "--database-url", database.conninfo])
        #expect(dryRun.status == 0, "\(dryRun.output)")
        #expect(dryRun.output.hasPrefix("database \"\(database.name)\" as role \"postgres\" (local socket)\nschema version 1; would apply:\n  0002_"), "\(dryRun.output)")
        let migrated = try run(["migrate", "--database-url", database.conninfo])
        #expect(migrated.status == 0, "\(migrated.output)")
        #expect(migrated.output.hasPrefix("database \"\(database.name)\" as role \"postgres\" (local socket)\napplying 0002_"), "\(migrated.output)")
        #expect(migrated.output.hasSuffix("done: schema version \(Migrations.latestVersion)\n"), "\(migrated.output)")
        try connection.execute("INSERT INTO webhooky.migrations (version, name) VALUES (99, 'future')")
        let newer = try run(["run", "--database-url", database.conninfo])
        #expect(newer.status == 4)
        #expect(newer.output.contains("newer than this webhooky binary"))
        let refused = try run(["migrate", "--database-url", database.conninfo])
        #expect(refused.status == 4)
    }

    @Test("a newer binary's migration while a worker runs: the worker stops at its next heartbeat, as on SIGTERM (the request in flight finishes and is recorded), and exits with status 4, which the unit does not restart")
    func aSchemaUpgradedUnderARunningWorkerStopsIt() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { _, _ in .respond(status: 200, delay: .seconds(2)) }
        defer { receiver.stop() }
        try shop.addWebhook(url: receiver.baseURL + "/upgrade")
        let worker = try CommandProcess(["run", "--database-url", shop.database.conninfo, "--allow-network", "127.0.0.0/8"])
        worker.waitForErrors { $0.contains("worker started") }
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1, timeout: .seconds(20)).count == 1)
        let newer = Migrations.latestVersion + 1
        try shop.connection.execute("INSERT INTO webhooky.migrations (version, name) VALUES (\(newer), 'a_newer_binary')")
        let outcome = worker.wait(timeout: .seconds(20))
        #expect(outcome.status == 4, "\(outcome.errors)")
        #expect(outcome.errors.contains("error    the schema is no longer this binary's; stopping error=\"the database's Webhooky schema is version \(newer), newer than this webhooky binary (\(Migrations.latestVersion)); upgrade webhooky\""), "\(outcome.errors)")
        #expect(outcome.errors.hasSuffix("webhooky: error: the database's Webhooky schema is version \(newer), newer than this webhooky binary (\(Migrations.latestVersion)); upgrade webhooky (found while the worker ran; it stopped)\n"), "\(outcome.errors)")
        #expect(try shop.deliveryStates() == [["succeeded", "1", "200"]])
        #expect(receiver.requests.count == 1)
    }

    @Test("migrate as a role that may not read the schema: status 1 and whom to migrate as, not 5 (a migration failed), as nothing was applied")
    func migrateWithoutPrivilegesSaysWhomToMigrateAs() throws {
        let database = try TestCluster.newDatabase()
        let role = "stranger_\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try database.connect().execute("CREATE ROLE \(role) LOGIN")
        let url = database.conninfo + " user=\(role)"
        for arguments in [["migrate", "--dry-run"], ["migrate"]] {
            let outcome = try run(arguments + ["--database-url", url])
            #expect(outcome.status == 1, "\(arguments): \(outcome.output)")
            #expect(outcome.output.contains("webhooky: error: cannot read the webhooky schema as role \(role): permission denied for schema webhooky\n"
                + "Migrate as the role that installed it (the owner of webhooky.migrations) or as a superuser."), "\(arguments): \(outcome.output)")
        }
    }

    @Test("run as a role without the worker's privileges (an admin's login, an application's) stops at once with status 7 (the unit does not restart it) and says what to grant")
    func runWithoutWorkerPrivilegesSaysWhatToGrant() throws {
        let database = try TestCluster.newDatabase()
        let suffix = "\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        let connection = try database.connect()
        try connection.execute("CREATE ROLE admin_\(suffix) LOGIN IN ROLE webhooky_admin; CREATE ROLE app_\(suffix) LOGIN IN ROLE webhooky_emitter")
        for role in ["admin_\(suffix)", "app_\(suffix)"] {
            let outcome = try CommandProcess.run(["run", "--database-url", database.conninfo + " user=\(role)"], timeout: .seconds(20))
            #expect(outcome.status == 7, "\(role): \(outcome.errors)")
            #expect(outcome.errors.contains("webhooky: error: role \(role) may not run the worker: it lacks "), "\(role): \(outcome.errors)")
            #expect(outcome.errors.contains("A DBA runs GRANT webhooky_worker TO \(role); (docs/dba.md, \"Roles\")"), "\(role): \(outcome.errors)")
            #expect(!outcome.errors.contains("worker started"), "\(role): \(outcome.errors)")
        }
        // A tenant's role is not told to take the worker's role, which sees every account.
        let tenant = "tenant_\(suffix)"
        try connection.execute("CREATE ROLE \(tenant) LOGIN IN ROLE webhooky_tenant; INSERT INTO webhooky.tenants VALUES ('\(tenant)', 'shop-42')")
        let asTenant = try CommandProcess.run(["run", "--database-url", database.conninfo + " user=\(tenant)"], timeout: .seconds(20))
        #expect(asTenant.status == 7, "\(asTenant.errors)")
        #expect(asTenant.errors.hasSuffix("webhooky: error: role \(tenant) is a tenant's (webhooky_tenant) and may not run the worker, which sends every account's webhooks: "
            + "the installation's worker sends this account's too, run by its operator as a role of its own (docs/dba.md, \"Roles\"). "
            + "webhooky status and webhooky tail show how they go.\n"), "\(asTenant.errors)")
        #expect(!asTenant.errors.contains("GRANT"), "\(asTenant.errors)")
        // Every table privilege, but no row-level security policy names it (it is no member of
        // webhooky_worker): it would see no rows.
        let direct = "direct_\(suffix)"
        try connection.execute("""
            CREATE ROLE \(direct) LOGIN; GRANT USAGE ON SCHEMA webhooky TO \(direct);
            GRANT ALL ON ALL TABLES IN SCHEMA webhooky TO \(direct); GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA webhooky TO \(direct)
            """)
        let unseeing = try CommandProcess.run(["run", "--database-url", database.conninfo + " user=\(direct)"], timeout: .seconds(20))
        #expect(unseeing.status == 7, "\(unseeing.errors)")
        #expect(unseeing.errors.contains("lacks a row-level security policy of webhooky.deliveries that names it"), "\(unseeing.errors)")

        // A worker that may not refresh the wanted events, prune or disable webhooks starts
        // when told not to prune or disable (it says once that it cannot refresh, and goes on).
        let lesser = "lesser_\(suffix)"
        try connection.execute("""
            CREATE ROLE \(lesser) LOGIN IN ROLE webhooky_worker;
            REVOKE EXECUTE ON FUNCTION webhooky.refresh_wanted_events(), webhooky.prune(interval, interval, integer) FROM webhooky_worker;
            REVOKE UPDATE (enabled, disabled_reason, disabled_at) ON webhooky.webhooks FROM webhooky_worker
            """)
        let started = try CommandProcess(["run", "--no-prune", "--no-auto-disable", "--database-url", database.conninfo + " user=\(lesser)"])
        let log = started.waitForErrors { $0.contains("worker started") }
        started.send(SIGTERM)
        #expect(started.wait(timeout: .seconds(20)).status == 0, "\(started.errors)")
        #expect(log.contains("worker started"), "\(log)")
        let refused = try CommandProcess.run(["run", "--database-url", database.conninfo + " user=\(lesser)"], timeout: .seconds(20))
        #expect(refused.status == 7 && refused.errors.contains("EXECUTE on webhooky.prune(interval, interval, integer)")
                && !refused.errors.contains("refresh_wanted_events"), "\(refused.errors)")
    }

    @Test("the start-up line says which addresses may be sent to; --allow-private-networks, for development only, is a warning at start")
    func startUpSaysWhichAddressesMayBeSentTo() throws {
        let shop = try Shop()
        for (options, addresses, warns) in [(["--allow-network", "127.0.0.0/8,10.20.0.0/16"], #"addresses="public and 127.0.0.0/8, 10.20.0.0/16""#, false),
                                            ([], #"addresses="public only""#, false),
                                            (["--allow-private-networks"], "addresses=all", true)] {
            let worker = try CommandProcess(["run", "--database-url", shop.database.conninfo] + options)
            let log = worker.waitForErrors { $0.contains("worker started") }
            worker.send(SIGTERM)
            #expect(worker.wait(timeout: .seconds(20)).status == 0, "\(worker.errors)")
            #expect(log.contains(addresses), "\(options): \(log)")
            #expect(worker.errors.contains("warning  every address may be sent to, private and internal networks included (--allow-private-networks): for development only") == warns,
                    "\(options): \(worker.errors)")
        }
    }

    @Test func badOptionsExitTwo() throws {
        let cases: [(arguments: [String], message: String)] = [
            (["run", "--bogus"], "unknown option --bogus for \"webhooky run\""),
            (["run", "--lease", "soon"], "--lease must be a duration such as 500ms, 5s, 2m, 1h or 1d (at most 100 years), not \"soon\""),
            // Too large to represent: it trapped on an integer overflow.
            (["run", "--lease", "1e20s"], "--lease must be a duration such as 500ms, 5s, 2m, 1h or 1d (at most 100 years), not \"1e20s\""),
            // Double reads these too: a hexadecimal 16 s, an exponent's 1000 s.
            (["run", "--lease", "0x10"], "--lease must be a duration such as 500ms, 5s, 2m, 1h or 1d (at most 100 years), not \"0x10\""),
            (["run", "--request-timeout", "1e3"], "--request-timeout must be a duration such as 500ms, 5s, 2m, 1h or 1d (at most 100 years), not \"1e3\""),
            (["run", "--poll-interval", ".5s"], "--poll-interval must be a duration such as 500ms, 5s, 2m, 1h or 1d (at most 100 years), not \".5s\""),
            (["tail", "--since", "1e17d"], "--since must be a duration such as 500ms, 5s, 2m, 1h or 1d (at most 100 years), not \"1e17d\""),
            (["run", "--retry-schedule", "5s,1e300d"], "--retry-schedule must be durations separated by commas, such as 5s,30s,2m,1h; \"1e300d\" is not a duration"),
            (["run", "--stay-awake-above", "-5"], "--stay-awake-above must be a whole number from 0 to 10000000, not \"-5\""),
            (["run", "--fan-out-patience", "a while"], "--fan-out-patience must be a duration"),
            // 1h held every webhook's events behind a slow endpoint's for an hour each.
            (["run", "--fan-out-patience", "2s"], "--fan-out-patience must be at most 1s, not \"2s\" (the events of other webhooks behind a full endpoint's wait as long)"),
            (["run", "--outcome-gathering", "briefly"], "--outcome-gathering must be a duration"),
            (["run", "--outcome-gathering", "2m"], "--outcome-gathering must be at most 1s, not \"2m\""),
            // 0 made every request time out unsent ("Operation timed out after 0 milliseconds"), so
            // every delivery ended dead after its retries.
            (["run", "--request-timeout", "0"], "--request-timeout must be at least 1ms, not \"0\" (there is no unlimited timeout)"),
            (["run", "--connect-timeout", "0ms"], "--connect-timeout must be at least 1ms, not \"0ms\" (there is no unlimited timeout)"),
            (["run", "--worker-id", ""], "--worker-id must name the worker, not be empty; leave it out for the default, hostname:pid"),
            // 500ms was pruned as 0 s: succeeded history deleted as soon as it was written.
            (["run", "--keep-succeeded", "500ms"], "--keep-succeeded must be at least 1s, not \"500ms\" (history is kept for whole seconds)"),
            (["run", "--keep-dead", "0"], "--keep-dead must be at least 1s, not \"0\""),
            // Silently ignored before.
            (["run", "--no-prune", "--keep-dead", "90d"], "--keep-dead has no effect with --no-prune: leave one of them out"),
            (["run", "--disable-after", "1h", "--no-auto-disable"], "--disable-after has no effect with --no-auto-disable: leave one of them out"),
            (["run", "--worker-id", "  "], "--worker-id must name the worker, not be empty"),
        ]
        for (arguments, message) in cases {
            let result = try run(arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.output.contains(message), "\(arguments): \(result.output)")
        }
        #expect(try run(["frobnicate"]).status == 2)
    }
}
