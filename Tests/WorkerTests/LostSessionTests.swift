import Dispatch
import Foundation
import Log
import LoopbackReceiver
import Postgres
import TestSupport
import Testing
@testable import Worker

/// A connection that breaks on the worker's side only (a proxy's restart) while the server's
/// process goes on: what that process still runs must not commit behind the new session's back.
@Suite struct LostSessionTests {
    /// A table and trigger that hold every insert into `table` (`webhooky.attempts`: the outcome
    /// statement, after its delivery's update; `webhooky.deliveries`: a fan-out) until ``openGate(_:)``.
    static func closeGate(_ shop: Shop, on table: String) throws {
        try shop.connection.execute("""
            CREATE TABLE public.gate (open boolean NOT NULL);
            INSERT INTO public.gate VALUES (false);
            CREATE FUNCTION public.wait_at_gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                WHILE NOT (SELECT open FROM public.gate) LOOP PERFORM pg_sleep(0.01); END LOOP;
                RETURN NEW;
            END $$;
            CREATE TRIGGER wait_at_gate BEFORE INSERT ON \(table) FOR EACH ROW EXECUTE FUNCTION public.wait_at_gate();
            """)
    }

    static func openGate(_ shop: Shop) throws {
        try shop.connection.execute("UPDATE public.gate SET open = true")
    }

    /// A worker whose connections all go through a ``SessionRelay``, sending to a receiver that
    /// answers `status`, with a gate on `gateOn` (see ``closeGate(_:on:)``). ``stop()`` opens the
    /// gate first (a test that failed early leaves no statement waiting there), then stops the
    /// worker and closes the relay.
    struct GatedWorker {
        let relay: SessionRelay
        let receiver: LoopbackReceiver
        let webhook: Int64
        let logs: LogCapture
        let worker: RunningWorker
        private let shop: Shop

        init(_ shop: Shop, gateOn table: String, status: Int, retry: [Duration]? = nil) throws {
            self.shop = shop
            relay = try SessionRelay(to: shop.database.cluster)
            receiver = try LoopbackReceiver { _, _ in .respond(status: status) }
            webhook = try shop.addWebhook(url: receiver.baseURL + "/hook")
            try LostSessionTests.closeGate(shop, on: table)
            let logs = LogCapture()
            self.logs = logs
            var configuration = retry.map { shop.workerConfiguration(logs: logs, retry: $0) } ?? shop.workerConfiguration(logs: logs)
            configuration.databaseURL = relay.conninfo(database: shop.database.name)
            worker = RunningWorker(configuration)
        }

        func stop() {
            try? LostSessionTests.openGate(shop)
            worker.stop()
            relay.close()
        }
    }

    /// A session named `webhooky recorder` in a 60 s `pg_sleep`, on a thread that signals
    /// `ended` once its statement returns; `lost` is its process.
    static func sleepingSession(_ shop: Shop) throws -> (lost: Backend, ended: DispatchSemaphore) {
        let conninfo = shop.database.conninfo
        let ended = DispatchSemaphore(value: 0)
        Thread {
            _ = try? Connection(conninfo: conninfo, applicationName: "webhooky recorder").execute("SELECT pg_sleep(60)")
            ended.signal()
        }.start()
        let sleeping = "FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep' AND query LIKE 'SELECT pg_sleep%'"
        _ = try shop.waitFor("SELECT count(*) \(sleeping)") { $0 == "1" }
        let row = try shop.connection.query("SELECT pid::text, backend_start::text \(sleeping)").rows
        let lost = Backend(pid: try #require(row.first?[0].flatMap { Int32($0) }), startedAt: try #require(row.first?[1]), applicationName: "webhooky recorder")
        return (lost, ended)
    }

    @Test("a session's server process is the one libpq was told of at the start, directly and through a relay that passes the start-up messages on")
    func aSessionKnowsItsServerProcess() throws {
        let shop = try Shop()
        let relay = try SessionRelay(to: shop.database.cluster)
        defer { relay.close() }
        for conninfo in [shop.database.conninfo, relay.conninfo(database: shop.database.name)] {
            let connection = try Connection(conninfo: conninfo)
            let backend = try #require(try LostSession.backend(of: connection))
            #expect(backend.pid == connection.backendPID)
            #expect(try shop.column("SELECT backend_start = $2::timestamptz FROM pg_stat_activity WHERE pid = $1::integer",
                                    [String(backend.pid), backend.startedAt]) == ["t"])
        }
    }

    @Test("the lost session's process is ended only while it is in a statement or transaction, and only as the session it was (pid, start, application name); never the caller's own")
    func onlyABusyLostProcessIsEnded() throws {
        let shop = try Shop()
        let caller = try Connection(conninfo: shop.database.conninfo)
        let quiet = try Connection(conninfo: shop.database.conninfo, applicationName: "webhooky recorder")
        let idle = try #require(try LostSession.backend(of: quiet))
        #expect(try LostSession.end(idle, from: caller, logger: Logger(level: .error)) == false, "an idle process has nothing to commit")
        #expect(quiet.isConnected && (try? quiet.execute("SELECT 1")) != nil)
        #expect(try LostSession.end(try #require(try LostSession.backend(of: caller)), from: caller, logger: Logger(level: .error)) == false)

        let (lost, sleeping) = try LostSessionTests.sleepingSession(shop)
        let renamed = Backend(pid: lost.pid, startedAt: lost.startedAt, applicationName: "webhooky worker")
        #expect(try LostSession.end(renamed, from: caller, logger: Logger(level: .error)) == false, "another connection's process")
        let logs = LogCapture()
        #expect(try LostSession.end(lost, from: caller, logger: logs.logger(), patience: .seconds(20)) == true)
        #expect(try shop.column("SELECT count(*) FROM pg_stat_activity WHERE pid = \(lost.pid)") == ["0"], "ended and gone before end returned")
        #expect(sleeping.wait(timeout: .now() + 10) == .success)
        #expect(logs.all.contains { $0.contains("ended the lost session's server process") && $0.contains("state=active") })
    }

    @Test("a new session whose lost process does not end within the patience (2 s) is not used: its opening fails as a lost connection naming the pid, so the caller writes nothing and tries again after its backoff, and the next one goes on once the process is gone")
    func aLostProcessThatStaysFailsTheNewSession() throws {
        let shop = try Shop()
        let logs = LogCapture()
        let configuration = shop.workerConfiguration(logs: logs)
        let (lost, sleeping) = try LostSessionTests.sleepingSession(shop)
        // A stopped process takes its SIGTERM only once continued: it outlasts the patience.
        defer { kill(lost.pid, SIGCONT) }
        #expect(kill(lost.pid, SIGSTOP) == 0)
        let error = #expect(throws: PostgresError.self) {
            try Dispatcher.openSession(configuration, applicationName: "webhooky recorder", logger: logs.logger(), replacing: lost)
        }
        #expect(error?.code == .connectionLost)
        #expect(error?.isTransient == true, "retried after the backoff, like any lost connection")
        #expect(error?.message.contains("(pid \(lost.pid)) did not end within 2s") == true, "\(error?.message ?? "")")
        #expect(!logs.all.contains { $0.contains("ended the lost session's server process") })
        #expect(kill(lost.pid, SIGCONT) == 0)
        #expect(try shop.waitFor("SELECT count(*) FROM pg_stat_activity WHERE pid = \(lost.pid)") { $0 == "0" } == "0",
                "the terminated process ends once it runs again")
        #expect(sleeping.wait(timeout: .now() + 10) == .success)
        // The next try finds it gone: nothing to end, the new session is used.
        let (connection, backend) = try Dispatcher.openSession(configuration, applicationName: "webhooky recorder", logger: logs.logger(), replacing: lost)
        #expect(try connection.execute("SELECT 1").scalar == "1")
        #expect(backend?.pid == connection.backendPID)
    }

    @Test("a fan-out still running on the server when the dispatcher's connection broke is ended before the new session fans out: the event is delivered at once, not after the lost claim's lease")
    func fanOutOfALostSessionIsEnded() throws {
        let shop = try Shop()
        let gated = try GatedWorker(shop, gateOn: "webhooky.deliveries", status: 204)
        defer { gated.stop() }
        let (relay, receiver, logs) = (gated.relay, gated.receiver, gated.logs)

        try shop.setCredit("7")
        let fanningOut = "SELECT pid::text FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'webhooky worker' AND wait_event = 'PgSleep' AND query LIKE 'WITH fresh AS%'"
        let first = try #require(try shop.waitFor(fanningOut) { $0 != nil }, "the fan-out never reached the gate")
        relay.cutClients()
        // The new session fans the event out again, on a new process: the lost one is gone (without
        // the end, the new fan-out would skip the event it holds locked, and the lost one would
        // commit its delivery claimed for the lease's 60 s once the gate opens).
        let second = try shop.waitFor(fanningOut + " AND pid <> \(first)") { $0 != nil }
        try #require(second != nil, "the new session did not fan the event out again")
        #expect(try shop.column("SELECT count(*) FROM pg_stat_activity WHERE pid = \(first)") == ["0"])
        try LostSessionTests.openGate(shop)
        // The dispatcher's lines are written after its statements (the fan-out waited at the gate).
        #expect(logs.waitForLine { $0.contains("ended the lost session's server process") && $0.contains("pid=\(first)") }, "\(logs.all)")
        #expect(receiver.waitForRequests(1, timeout: .seconds(10)).count == 1, "not delivered within 10 s")
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        #expect(try shop.connection.query("SELECT count(*)::text, max(attempts)::text FROM webhooky.deliveries").rows == [["1", "1"]])
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["1"])
        #expect(receiver.requests.count == 1)
    }

    @Test("an application name is written as an SQL constant (libpq's PQescapeLiteral) that reads back the same, whatever standard_conforming_strings says", arguments: [
        "webhooky recorder", "it's", #"back\slash \' both"#, "ünï 🎉", "",
    ])
    func applicationNameConstant(name: String) throws {
        let shop = try Shop()
        for setting in ["on", "off"] {
            try shop.connection.execute("SET standard_conforming_strings = \(setting); SET escape_string_warning = off")
            #expect(try shop.connection.execute("SELECT \(try shop.connection.quoteLiteral(name))").scalar == name, "standard_conforming_strings \(setting)")
        }
    }

    @Test("an outcome statement still running on the server when the worker's side of its connection broke is ended before the recorder looks it up and writes it again: one attempts row and one failure counted, not two")
    func outcomeOfALostSessionIsWrittenOnce() throws {
        let shop = try Shop()
        let gated = try GatedWorker(shop, gateOn: "webhooky.attempts", status: 503, retry: [.seconds(3600)])
        defer { gated.stop() }
        let (relay, receiver, logs, webhook) = (gated.relay, gated.receiver, gated.logs, gated.webhook)

        try shop.setCredit("7")
        let recording = "SELECT pid::text FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE 'WITH outcome AS%'"
        // At the gate (its pg_sleep), not merely active: a statement being parsed (the prepare
        // of its first use) shows as active with its text too, and cut there it never runs.
        let first = try #require(try shop.waitFor(recording + " AND wait_event = 'PgSleep'") { $0 != nil }, "the outcome statement never reached the gate")
        relay.cutClients()
        // The recorder reconnects, finds the outcome unwritten and writes it again, on a new process.
        let second = try shop.waitFor(recording + " AND pid <> \(first)") { $0 != nil }
        try #require(second != nil, "the recorder did not write the outcome again")
        try LostSessionTests.openGate(shop)

        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "pending" } == "pending")
        #expect(try shop.waitFor("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'WITH outcome AS%' AND state = 'active'") { $0 == "0" } == "0")
        #expect(try shop.connection.query("SELECT attempt::text, status::text FROM webhooky.attempts").rows == [["1", "503"]],
                "the outcome was recorded twice")
        #expect(try shop.column("SELECT consecutive_failures::text FROM webhooky.webhook_health WHERE webhook_id = $1", [String(webhook)]) == ["1"])
        #expect(try shop.column("SELECT attempts::text FROM webhooky.deliveries") == ["1"])
        #expect(logs.waitForLine { $0.contains("ended the lost session's server process") && $0.contains("pid=\(first)") }, "\(logs.all)")
        #expect(receiver.requests.count == 1)
    }
}
