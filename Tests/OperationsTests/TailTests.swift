import Foundation
import Glibc
import LoopbackReceiver
import Postgres
import Synchronization
import TestSupport
import Testing

/// `webhooky tail`, run as a child process while attempts are recorded.
@Suite(.timeLimit(.minutes(10))) struct TailTests {
    /// Records attempt `number` of `delivery` (of `webhook`) on `connection`, as the worker
    /// does; returns the attempt's id.
    @discardableResult
    static func recordAttempt(_ connection: Connection, delivery: Int64, webhook: Int64, number: Int = 1, status: Int? = 200, error: String? = nil,
                              errorCode: String? = nil) throws -> Int64 {
        let id = try connection.query("""
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, error, error_code, worker)
            VALUES ($1, $2, $3, now(), 12.5, $4, $5, $6, 'test') RETURNING id
            """, [String(delivery), String(webhook), String(number), status.map(String.init), error, errorCode]).scalar
        return Int64(id ?? "") ?? -1
    }

    /// The lines of `output` that show delivery `delivery`.
    static func lines(_ output: String, delivery: Int64) -> [Substring] {
        output.split(separator: "\n").filter { $0.contains(" delivery \(delivery) ") }
    }

    @Test("tail starts with the last 20 attempts, then shows each new one once, also when attempts commit out of id order")
    func showsAttemptsAsTheyAreRecorded() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x", name: "ERP")
        var old: [Int64] = []
        for _ in 1...25 {
            let delivery = try database.addDelivery(webhook: webhook, state: "succeeded", attempts: 1)
            try TailTests.recordAttempt(database.connection, delivery: delivery, webhook: webhook)
            old.append(delivery)
        }
        let tail = try CommandProcess(["tail", "--database-url", database.url])
        let start = tail.waitForOutput { TailTests.lines($0, delivery: old[24]).count == 1 }
        #expect(start.split(separator: "\n").count == 20)
        #expect(TailTests.lines(start, delivery: old[4]).isEmpty && TailTests.lines(start, delivery: old[5]).count == 1)
        #expect(TailTests.lines(start, delivery: old[24]).first?.contains(#"webhook \#(webhook) "ERP""#) == true)

        // A slow transaction takes the lower id; a quick one commits a higher id first.
        let slow = try database.database.connect()
        let late = try database.addDelivery(webhook: webhook, state: "dead", attempts: 1)
        let early = try database.addDelivery(webhook: webhook, state: "pending", attempts: 1)
        try slow.execute("BEGIN")
        let lowID = try TailTests.recordAttempt(slow, delivery: late, webhook: webhook, status: 503, error: "HTTP 503 (gave up after 1 attempts)")
        let highID = try TailTests.recordAttempt(database.connection, delivery: early, webhook: webhook, status: nil, error: "Connection refused")
        #expect(lowID < highID)
        let afterEarly = tail.waitForOutput { TailTests.lines($0, delivery: early).count == 1 }
        #expect(TailTests.lines(afterEarly, delivery: early).first?.contains("error") == true)
        Thread.sleep(forTimeInterval: 1.2)  // a few polls while the low id is not visible
        try slow.execute("COMMIT")
        let afterLate = tail.waitForOutput { TailTests.lines($0, delivery: late).count == 1 }
        #expect(TailTests.lines(afterLate, delivery: late).first?.contains("503") == true)
        #expect(TailTests.lines(afterLate, delivery: late).first?.contains("dead  HTTP 503 (gave up after 1 attempts)") == true)

        Thread.sleep(forTimeInterval: 1.2)
        tail.send(SIGINT)
        let outcome = tail.wait(timeout: .seconds(10))
        #expect(outcome.status == 0, "stops cleanly on Ctrl-C: \(outcome.errors)")
        #expect(TailTests.lines(outcome.output, delivery: early).count == 1 && TailTests.lines(outcome.output, delivery: late).count == 1, "each attempt once")
        #expect(outcome.output.split(separator: "\n").count == 22)
        #expect(!outcome.output.contains("\u{1B}["), "no colour when stdout is not a terminal")
        #expect(outcome.errors.contains("the last 20 attempts, then new ones as they are recorded"))
    }

    @Test("--webhook shows only that webhook's attempts; real attempts of a worker show status, retry and success; SIGTERM stops")
    func filtersByWebhook() throws {
        let database = try AdminDatabase()
        let failedOnce = Atomic(false)
        let receiver = try LoopbackReceiver { request, _ in
            request.target == "/watched" && !failedOnce.exchange(true, ordering: .relaxed) ? .status(503) : .ok
        }
        let watched = try database.addWebhook(url: receiver.baseURL + "/watched", name: "watched")
        let other = try database.addWebhook(url: receiver.baseURL + "/other", name: "other")
        let tail = try CommandProcess(["tail", "--webhook", String(watched), "--database-url", database.url])
        let deadline = ContinuousClock.now + .seconds(10)
        while tail.errors.isEmpty && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(tail.errors.contains("no attempts of webhook \(watched) yet"))
        #expect(tail.output.isEmpty)

        let worker = RunningWorker(database.workerConfiguration(retry: [.seconds(3)]))
        defer { worker.stop() }
        let otherDelivery = try #require(try database.value("SELECT webhooky.send_test($1)", [String(other)]))
        _ = try database.waitFor("SELECT state FROM webhooky.deliveries WHERE id = \(otherDelivery)") { $0 == "succeeded" }
        let delivery = try #require(try database.value("SELECT webhooky.send_test($1)", [String(watched)]))
        let first = tail.waitForOutput { $0.contains("delivery \(delivery) ") }
        #expect(first.contains("attempt 1") && first.contains("503") && first.contains("retry in"), "\(first)")
        let second = tail.waitForOutput { $0.contains("attempt 2") }
        #expect(second.split(separator: "\n").last?.contains("200") == true)
        #expect(second.split(separator: "\n").last?.contains("succeeded (test)") == true)
        #expect(!second.contains("delivery \(otherDelivery) "), "another webhook's attempts are not shown")

        tail.send(SIGTERM)
        #expect(tail.wait(timeout: .seconds(10)).status == 0)
    }

    @Test("an attempt shown from before tail started says the delay the worker chose (retry in 9m 55s), not the time left when tail started (7m 59s); one whose retry is overdue says it is due")
    func retryDelayOfEarlierAttempts() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x", name: "ERP")
        // Attempt 1 started 2 min ago and took 5 s; the worker chose 9 min 55 s, of which 8 min are left.
        let waiting = try database.addDelivery(webhook: webhook, attempts: 1)
        let overdue = try database.addDelivery(webhook: webhook, attempts: 1)
        try database.connection.execute("""
            BEGIN;
            UPDATE webhooky.deliveries SET next_attempt_at = now() + interval '8 minutes', last_status = 503 WHERE id = \(waiting);
            UPDATE webhooky.deliveries SET next_attempt_at = now() - interval '1 minute', last_status = 503 WHERE id = \(overdue);
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, worker)
            VALUES (\(waiting), \(webhook), 1, now() - interval '2 minutes', 5000, 503, 'w'),
                   (\(overdue), \(webhook), 1, now() - interval '10 minutes', 5000, 503, 'w');
            COMMIT;
            """)
        let tail = try CommandProcess(["tail", "--database-url", database.url])
        let output = tail.waitForOutput { $0.split(separator: "\n").count >= 2 }
        tail.send(SIGINT)
        #expect(tail.wait(timeout: .seconds(10)).status == 0)
        let waitingLine = try #require(TailTests.lines(output, delivery: waiting).first)
        #expect(waitingLine.contains("503") && waitingLine.contains("retry in 9m 55s"), "\(waitingLine)")
        #expect(TailTests.lines(output, delivery: overdue).first?.contains("retry due") == true, "\(output)")
    }

    @Test("a failed attempt's line shows its error code in brackets before the message, in the columns of the others; an answered one shows none")
    func showsTheErrorCode() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x", name: "ERP")
        let timedOut = try database.addDelivery(webhook: webhook, state: "dead", attempts: 1)
        let answered = try database.addDelivery(webhook: webhook, state: "dead", attempts: 1)
        try TailTests.recordAttempt(database.connection, delivery: timedOut, webhook: webhook, status: nil,
                                    error: "Connection timed out after 5001 milliseconds (gave up after 1 attempts)", errorCode: "timeout")
        try TailTests.recordAttempt(database.connection, delivery: answered, webhook: webhook, status: 503, error: "HTTP 503 (gave up after 1 attempts)")
        let tail = try CommandProcess(["tail", "--database-url", database.url])
        let output = tail.waitForOutput { $0.split(separator: "\n").count >= 2 }
        tail.send(SIGINT)
        #expect(tail.wait(timeout: .seconds(10)).status == 0)
        let failed = try #require(TailTests.lines(output, delivery: timedOut).first)
        let other = try #require(TailTests.lines(output, delivery: answered).first)
        #expect(failed.hasSuffix("  error   12.5 ms  dead  [timeout] Connection timed out after 5001 milliseconds (gave up after 1 attempts)"), "\(failed)")
        #expect(other.hasSuffix("  503     12.5 ms  dead  HTTP 503 (gave up after 1 attempts)"), "\(other)")
    }

    @Test("--since starts with the attempts of that period; a webhook that does not exist is an error")
    func since() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x")
        for hoursAgo in [30, 3, 1] {
            let delivery = try database.addDelivery(webhook: webhook, state: "succeeded", attempts: 1)
            try database.connection.query("""
                INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, worker)
                VALUES ($1, $2, 1, now() - $3 * interval '1 hour', 5, 200, 'w')
                """, [String(delivery), String(webhook), String(hoursAgo)])
        }
        let tail = try CommandProcess(["tail", "--since", "4h", "--database-url", database.url])
        let output = tail.waitForOutput { $0.split(separator: "\n").count >= 2 }
        Thread.sleep(forTimeInterval: 0.6)
        tail.send(SIGINT)
        let outcome = tail.wait(timeout: .seconds(10))
        #expect(outcome.status == 0)
        #expect(output.split(separator: "\n").count == 2, "the attempts of 3 h and 1 h ago, not the one of 30 h ago")
        let missing = try database.run(["tail", "--webhook", "424242"])
        #expect(missing.status == 1)
        #expect(missing.errors.contains("there is no webhook 424242"))
        // Under a second, the note says so (it said "the last 0ms"); an attempt stamped a minute
        // ahead stands for one made within it.
        let recent = try database.addDelivery(webhook: webhook, state: "succeeded", attempts: 1)
        try database.connection.query("""
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, worker)
            VALUES ($1, $2, 1, now() + interval '1 minute', 5, 200, 'w')
            """, [String(recent), String(webhook)])
        let brief = try CommandProcess(["tail", "--since", "500ms", "--database-url", database.url])
        _ = brief.waitForOutput { !$0.isEmpty }
        brief.send(SIGINT)
        #expect(brief.wait(timeout: .seconds(10)).status == 0)
        #expect(brief.errors.contains("the attempts of the last 500ms, then new ones"), "\(brief.errors)")
        let bad = try database.run(["tail", "--since", "soon"])
        #expect(bad.status == 2)
        #expect(bad.errors.contains("--since must be a duration such as 500ms, 5s, 2m, 1h or 1d"))
    }

    @Test("--since with more attempts than it shows (10,000) says where the cut is, not \"the attempts of the last 4h\"; with none in that time it says so, not \"no attempts yet\"")
    func sinceWithMoreThanItShows() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x")
        let delivery = try database.addDelivery(webhook: webhook, state: "succeeded", attempts: 10_005)
        try database.connection.query("""
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, worker)
            SELECT $1, $2, g, now() - interval '2 hours' + g * interval '100 milliseconds', 5, 200, 'w' FROM generate_series(1, 10005) g
            """, [String(delivery), String(webhook)])
        let tail = try CommandProcess(["tail", "--since", "4h", "--database-url", database.url])
        let output = tail.waitForOutput { $0.split(separator: "\n").count >= 10_000 }
        tail.send(SIGINT)
        #expect(tail.wait(timeout: .seconds(10)).status == 0)
        let lines = output.split(separator: "\n")
        #expect(lines.count == 10_000)
        #expect(lines.first?.contains("attempt 6 ") == true, "the newest 10,000: attempts 6 to 10,005")
        let first = String(try #require(lines.first?.components(separatedBy: "  webhook ").first))
        #expect(tail.errors.contains("the last 10,000 of the attempts of the last 4h, from \(first) on (older ones left out: narrow it with --webhook ID or a shorter --since), then new ones as they are recorded"),
                "\(tail.errors)")

        let quiet = try CommandProcess(["tail", "--since", "1m", "--database-url", database.url])
        _ = quiet.waitForErrors { $0.contains("waiting for new ones") }
        quiet.send(SIGINT)
        #expect(quiet.wait(timeout: .seconds(10)).status == 0)
        #expect(quiet.errors.contains("no attempts in the last 1m; waiting for new ones (Ctrl-C stops)"), "\(quiet.errors)")
    }
}
