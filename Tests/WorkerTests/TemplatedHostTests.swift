import Foundation
import HTTPClient
import LoopbackReceiver
import Postgres
import Synchronization
import TestSupport
import Testing
import Worker

/// A webhook whose URL template varies its host (say, each account's own shop domain): what its
/// hosts that do not answer may hold, and what their deliveries cost meanwhile.
@Suite(.timeLimit(.minutes(10))) struct TemplatedHostTests {
    /// Adds event `port.test` and a webhook of it whose URL takes its port from the event
    /// (`http://127.0.0.1:#port#/t`: each port its own endpoint); returns its id.
    @discardableResult
    static func addPortWebhook(_ shop: Shop) throws -> Int64 {
        try shop.connection.execute("""
            INSERT INTO webhooky.event_types (name, description, sample) VALUES ('port.test', 'a port per event', '{"port": "1"}')
            """)
        return try shop.addWebhook(event: "port.test", url: "http://127.0.0.1:#port#/t")
    }

    /// Commits `count` events of `port.test` for `port`.
    static func emit(_ shop: Shop, port: String, _ count: Int) throws {
        try shop.connection.query("SELECT webhooky.emit('port.test', json_build_object('port', $1::text)::jsonb, 'shop-42') FROM generate_series(1, $2::int)",
                                  [port, String(count)])
    }

    @Test("a webhook whose URL template varies its host holds at most its share however many of its hosts are dead: the worker's other webhooks keep the rest (its dead hosts' requests did not count against its share, so sixty dead hosts at 1 each took nearly every request of the worker)")
    func deadHostsTogetherHoldAtMostTheShare() throws {
        let shop = try Shop()
        let templated = try Self.addPortWebhook(shop)
        let dead = try (0..<60).map { _ in try LoopbackPort(listening: true) }
        let quick = try LoopbackReceiver()
        defer { quick.stop() }
        try shop.connection.execute("INSERT INTO webhooky.event_types (name, description, sample) VALUES ('quick.test', 'a quick endpoint', '{}')")
        try shop.addWebhook(event: "quick.test", url: quick.baseURL + "/quick")

        var configuration = shop.workerConfiguration(retry: Array(repeating: .milliseconds(100), count: 100))
        configuration.maximumInFlight = 64
        configuration.maximumInFlightPerEndpoint = 16  // the webhook's share 16, a new host 2
        configuration.batchSize = 16
        configuration.http.requestTimeout = .seconds(1)
        configuration.shutdownGracePeriod = .milliseconds(200)
        let worker = RunningWorker(configuration)
        defer { worker.stop(timeout: .seconds(30)) }

        // An event for each of sixty dead hosts, each retried 100 ms after its timeout.
        for silent in dead { try Self.emit(shop, port: silent.port, 1) }
        // Within a few timeouts every dead host has had its requests and is down to 1. (Six
        // seconds at least: the hosts held at 1 are what took more than the share, so the rounds
        // after the first ones must be on record; longer on a busy machine, whose claims lag
        // behind the 1 s timeouts.)
        Thread.sleep(forTimeInterval: 6)
        #expect(try shop.waitFor("SELECT count(DISTINCT delivery_id) >= 40 FROM webhooky.attempts", timeout: .seconds(30)) { $0 == "t" } == "t",
                "the dead hosts got their requests")
        // The most requests of the webhook at once, from its attempts on record (each with its start and duration).
        let peak = try shop.column("""
            SELECT max((SELECT count(*) FROM webhooky.attempts b
                         WHERE b.webhook_id = a.webhook_id AND b.started_at <= a.started_at
                           AND b.started_at + b.duration_ms * interval '1 millisecond' > a.started_at))
              FROM webhooky.attempts a WHERE a.webhook_id = $1
            """, [String(templated)]).first.flatMap { $0.flatMap { Int($0) } } ?? 0
        #expect(peak > 0 && peak <= 16, "the templated webhook had \(peak) of the worker's 64 requests at once, more than its share of 16")
        let waits = try ReliabilityTests.waitsForFive(at: quick, pause: 0.2) { _ in
            try shop.connection.execute("SELECT webhooky.emit('quick.test', '{}', 'shop-42')")
        }
        #expect(waits.count == 5 && waits.filter { $0 < 0.5 }.count >= 4, "the other webhook's events waited \(waits.map { String(format: "%.3f", $0) }) s")
    }

    @Test("the deliveries of a templated webhook's host that does not answer, beyond the 1 it holds, are given back until its request in flight has ended, not claimed and given back again every second for as long as it is down")
    func deadHostsDeliveriesAreNotClaimedEverySecond() throws {
        let shop = try Shop()
        try Self.addPortWebhook(shop)
        let dead = try LoopbackPort(listening: true)
        // Notes each give-back (`sending` -> `pending`, its attempt not counted) with its time.
        try shop.connection.execute("""
            CREATE TABLE public.given_back (delivery_id bigint, at timestamptz);
            CREATE FUNCTION public.note_given_back() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN INSERT INTO public.given_back VALUES (NEW.id, clock_timestamp()); RETURN NULL; END $$;
            CREATE TRIGGER note_given_back AFTER UPDATE ON webhooky.deliveries FOR EACH ROW
                WHEN (OLD.state = 'sending' AND NEW.state = 'pending' AND NEW.attempts < OLD.attempts) EXECUTE FUNCTION public.note_given_back();
            """)
        var configuration = shop.workerConfiguration(retry: [.seconds(60)])
        configuration.maximumInFlightPerEndpoint = 16  // the webhook's share 16, a new host 2
        configuration.http.requestTimeout = .seconds(3)
        configuration.shutdownGracePeriod = .milliseconds(200)
        let worker = RunningWorker(configuration)
        defer { worker.stop(timeout: .seconds(30)) }

        // Forty events for the dead host: the first 16 time out after 3 s; then it holds 1 and
        // the others of each claim are given back.
        try Self.emit(shop, port: dead.port, 40)
        #expect(try shop.waitFor("SELECT count(*) > 0 FROM public.given_back", timeout: .seconds(15)) { $0 == "t" } == "t",
                "deliveries beyond what the dead host holds were given back")
        Thread.sleep(forTimeInterval: 4)
        let gaps = try shop.column("""
            SELECT extract(epoch FROM min(at - previous))::numeric(6, 2)
              FROM (SELECT at, lag(at) OVER (PARTITION BY delivery_id ORDER BY at) AS previous FROM public.given_back) g
             WHERE previous IS NOT NULL
            """)
        let shortest = gaps.first.flatMap { $0.flatMap { Double($0) } }
        #expect(shortest.map { $0 >= 2.5 } ?? true, "a delivery was given back again \(shortest ?? 0) s after its last give-back, before the dead host's request (3 s timeout) could end")
    }

    @Test("a webhook whose URL template varies its host: a host that does not answer holds what it earned of its own requests (down to 1), not the webhook's whole share, so the webhook's other hosts get their events at once (before, the dead host's retries filled the share again and again, and every host of the webhook waited for their timeouts)")
    func deadTemplatedHostHoldsOnlyItsOwn() throws {
        let shop = try Shop()
        let dead = try LoopbackReceiver { _, _ in .hang }
        defer { dead.stop() }
        let quick = try LoopbackReceiver()
        defer { quick.stop() }
        try Self.addPortWebhook(shop)
        var configuration = shop.workerConfiguration(retry: Array(repeating: .milliseconds(100), count: 100))
        configuration.maximumInFlightPerEndpoint = 16  // a new endpoint may have 2, the webhook 16
        configuration.http.requestTimeout = .seconds(2)
        configuration.shutdownGracePeriod = .milliseconds(200)
        let worker = RunningWorker(configuration)
        defer { worker.stop(timeout: .seconds(30)) }
        func emit(_ receiver: LoopbackReceiver, _ count: Int) throws {
            try Self.emit(shop, port: String(receiver.baseURL.split(separator: ":").last ?? ""), count)
        }
        // Forty events for the dead host: more than the webhook's share, each retried 100 ms after its timeout.
        try emit(dead, 40)
        #expect(dead.waitForRequests(1, timeout: .seconds(5)).count >= 1)
        Thread.sleep(forTimeInterval: 2.5)  // the first requests timed out, and the next went out
        let waits = try ReliabilityTests.waitsForFive(at: quick, pause: 0.4) { _ in try emit(quick, 1) }
        #expect(waits.count == 5 && waits.filter { $0 < 0.5 }.count >= 4, "the quick host's events waited \(waits.map { String(format: "%.3f", $0) }) s")
        let held = try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE state = 'sending'")
        #expect(held.first.flatMap { $0.flatMap { Int($0) } }.map { $0 <= 2 } == true, "requests held by the dead host: \(held)")
    }
}
