import Foundation
import LoopbackReceiver
import Postgres
import TestSupport
import Testing
@testable import Worker

/// Outcomes of a steady trickle of deliveries are written a few at a time, not one statement
/// (and one commit) each (``WorkerConfiguration/outcomeGathering``).
@Suite struct OutcomeGatheringTests {
    @Test("ten deliveries 10 ms apart: their outcomes are written in a few statements, and every one of them is written")
    func outcomesOfATrickleAreWrittenTogether() throws {
        let shop = try Shop()
        try shop.addCustomers(10)
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/trickle")
        // Counts the statements that write attempts.
        try shop.connection.execute("""
            CREATE TABLE public.attempt_statements (at timestamptz DEFAULT clock_timestamp());
            CREATE FUNCTION public.note_attempt_statement() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO public.attempt_statements DEFAULT VALUES; RETURN NULL; END $$;
            CREATE TRIGGER note_attempt_statement AFTER INSERT ON webhooky.attempts
                FOR EACH STATEMENT EXECUTE FUNCTION public.note_attempt_statement();
            """)
        var configuration = shop.workerConfiguration()
        configuration.outcomeGathering = .seconds(1)
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        _ = try shop.waitFor("SELECT count(*) FROM webhooky.workers WHERE wants_wakeup") { $0 == "1" }

        for customer in 100_001...100_010 {
            try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = \(customer)")
            usleep(10_000)
        }
        #expect(receiver.waitForRequests(10, timeout: .seconds(20)).count == 10)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.attempts") { $0 == "10" } == "10")
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") == ["10"])
        let statements = Int(try shop.column("SELECT count(*) FROM public.attempt_statements").first.flatMap { $0 } ?? "") ?? -1
        #expect((1...3).contains(statements), "10 outcomes written by \(statements) statements")
    }
}
