import Foundation
import LoopbackReceiver
import Postgres
import TestSupport
import Testing
@testable import Worker

/// Outcomes of a steady trickle of deliveries are written a few at a time, not one statement
/// (and one commit) each (``WorkerConfiguration/outcomeGathering``).
@Suite struct OutcomeGatheringTests {
    /// Sends a delivery for each of `customers` customers' credit changes, `gap` apart, to a
    /// worker gathering outcomes for `gathering`, while every statement that writes attempts
    /// takes `writeSeconds`; returns when each such statement wrote (seconds, from the first).
    static func attemptStatements(customers: Int, gap: Duration, gathering: Duration, writeSeconds: Double) throws -> [Double] {
        let shop = try Shop()
        try shop.addCustomers(customers)
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/trickle")
        try shop.connection.execute("""
            CREATE TABLE public.attempt_statements (at timestamptz DEFAULT clock_timestamp());
            CREATE FUNCTION public.note_attempt_statement() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO public.attempt_statements DEFAULT VALUES; PERFORM pg_sleep(\(writeSeconds)); RETURN NULL; END $$;
            CREATE TRIGGER note_attempt_statement AFTER INSERT ON webhooky.attempts
                FOR EACH STATEMENT EXECUTE FUNCTION public.note_attempt_statement();
            """)
        var configuration = shop.workerConfiguration()
        configuration.outcomeGathering = gathering
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE wants_wakeup") { $0 == "1" }

        for customer in 100_001...(100_000 + customers) {
            try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = \(customer)")
            usleep(UInt32(gap / .microseconds(1)))
        }
        #expect(receiver.waitForRequests(customers, timeout: .seconds(20)).count == customers)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.attempts") { $0 == String(customers) } == String(customers))
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") == [String(customers)])
        return try shop.column("SELECT extract(epoch FROM at - min(at) OVER ())::text FROM public.attempt_statements ORDER BY at")
            .compactMap { $0.flatMap(Double.init) }
    }

    /// The shortest time between two statements' writes (infinity for fewer than two).
    static func shortestGap(_ times: [Double]) -> Double {
        zip(times, times.dropFirst()).map { $1 - $0 }.min() ?? .infinity
    }

    @Test("ten deliveries 10 ms apart: their outcomes are written in a few statements, and every one of them is written")
    func outcomesOfATrickleAreWrittenTogether() throws {
        // A machine under load only spreads the deliveries out more; each write still waits
        // the gathering time for more after the first outcome it takes.
        let times = try OutcomeGatheringTests.attemptStatements(customers: 10, gap: .milliseconds(10), gathering: .seconds(1), writeSeconds: 0)
        #expect(times.count < 10 && OutcomeGatheringTests.shortestGap(times) >= 0.9, "10 outcomes written at \(times) s")
    }

    @Test("outcomes that come while a batch is being written wait for more too: a slow write is not followed by one statement per outcome")
    func outcomesDuringAWriteAreGatheredAgain() throws {
        // 30 deliveries over about 1.2 s, each write taking 100 ms: a write every 400 ms or so
        // (gathering 300), not one after the other (every 100 ms) once the first has started.
        let times = try OutcomeGatheringTests.attemptStatements(customers: 30, gap: .milliseconds(40), gathering: .milliseconds(300), writeSeconds: 0.1)
        #expect(times.count > 1 && times.count < 30 && OutcomeGatheringTests.shortestGap(times) >= 0.3, "30 outcomes written at \(times) s")
    }

    @Test("a stopping worker writes its last outcomes at once instead of gathering them")
    func stoppingWritesAtOnce() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/last")
        var configuration = shop.workerConfiguration()
        configuration.outcomeGathering = .seconds(20)
        configuration.shutdownGracePeriod = .seconds(25)  // a stop waits for unwritten outcomes up to this long
        let worker = RunningWorker(configuration)
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE wants_wakeup") { $0 == "1" }
        try shop.setCredit("150.00")
        #expect(receiver.waitForRequests(1, timeout: .seconds(10)).count == 1)
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["0"], "gathered, not written yet")
        let started = ContinuousClock.now
        #expect(worker.stop(timeout: .seconds(30)).stoppedInTime)
        let stopping = ContinuousClock.now - started
        #expect(stopping < .seconds(10), "the stop waited \(stopping) for the gathering window")
        #expect(try shop.column("SELECT state FROM webhooky.deliveries") == ["succeeded"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.attempts") == ["1"])
    }
}
