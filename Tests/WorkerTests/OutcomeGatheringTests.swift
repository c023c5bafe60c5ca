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
    /// takes `writeSeconds`; returns how many such statements wrote them all.
    static func attemptStatements(customers: Int, gap: Duration, gathering: Duration, writeSeconds: Double) throws -> Int {
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
        return Int(try shop.column("SELECT count(*) FROM public.attempt_statements").first.flatMap { $0 } ?? "") ?? -1
    }

    @Test("ten deliveries 10 ms apart: their outcomes are written in a few statements, and every one of them is written")
    func outcomesOfATrickleAreWrittenTogether() throws {
        let statements = try OutcomeGatheringTests.attemptStatements(customers: 10, gap: .milliseconds(10), gathering: .seconds(1), writeSeconds: 0)
        #expect((1...3).contains(statements), "10 outcomes written by \(statements) statements")
    }

    @Test("outcomes that come while a batch is being written wait for more too: a slow write is not followed by one statement per outcome")
    func outcomesDuringAWriteAreGatheredAgain() throws {
        // 30 deliveries over about 1.2 s, each write taking 100 ms: a write every 400 ms or so
        // (gathering 300), not one after the other once the first write has started.
        let statements = try OutcomeGatheringTests.attemptStatements(customers: 30, gap: .milliseconds(40), gathering: .milliseconds(300), writeSeconds: 0.1)
        #expect((2...6).contains(statements), "30 outcomes over 1.2 s written by \(statements) statements")
    }
}
