import Foundation
import HTTPClient
import LoopbackReceiver
import Postgres
import Schema
import TestSupport
import Testing
@testable import Worker

/// `webhooky.attempts.error_code`: why each failed attempt failed, as a code an admin can query.
@Suite(.timeLimit(.minutes(10))) struct AttemptErrorCodeTests {
    @Test("each failed attempt is on record with the code of its failure (timeout, connect_failure, redirect_refused, too_many_redirects, invalid_request for a header that renders a line break); an attempt answered with a status, 2xx or not, has none")
    func failedAttemptsHaveTheirCode() throws {
        let shop = try Shop()
        let silent = try LoopbackPort(listening: true)
        let closed = try LoopbackPort(listening: false)
        let failing = try LoopbackReceiver { _, _ in .status(503) }
        defer { failing.stop() }
        let answering = try LoopbackReceiver()
        defer { answering.stop() }
        let toFTP = try LoopbackReceiver { _, _ in .respond(status: 302, headers: [.init(name: "Location", value: "ftp://127.0.0.1/moved")]) }
        defer { toFTP.stop() }
        let loop = try LoopbackReceiver { request, _ in .respond(status: 302, headers: [.init(name: "Location", value: request.target + "x")]) }
        defer { loop.stop() }

        try shop.addWebhook(url: "http://127.0.0.1:\(silent.port)/hook", name: "a timeout")
        try shop.addWebhook(url: "http://127.0.0.1:\(closed.port)/hook", name: "b refused")
        try shop.addWebhook(url: failing.baseURL + "/hook", name: "c 503")
        try shop.addWebhook(url: answering.baseURL + "/hook", name: "d 200")
        let redirects = [try shop.addWebhook(url: toFTP.baseURL + "/hook", name: "e to ftp"), try shop.addWebhook(url: loop.baseURL + "/hook", name: "f loop")]
        try shop.connection.execute("UPDATE webhooky.webhooks SET follow_redirects = true WHERE id IN (\(redirects.map(String.init).joined(separator: ", ")))")
        // The tier's name holds a line break (Shop.trickyTierName): the header cannot be sent.
        try shop.addWebhook(event: "customer.tier_changed", url: answering.baseURL + "/tier", headers: ##"{"X-Tier": "#customer.tier.name#"}"##, name: "g header")

        var configuration = shop.workerConfiguration(retry: [.seconds(60)])
        configuration.http.requestTimeout = .milliseconds(500)
        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        try shop.setCredit("3")
        try shop.setTier(2)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.attempts") { $0 == "7" } == "7")
        #expect(try shop.connection.query("""
            SELECT w.name, a.status::text, a.error_code FROM webhooky.attempts a JOIN webhooky.webhooks w ON w.id = a.webhook_id ORDER BY w.name
            """).rows == [
            ["a timeout", nil, "timeout"], ["b refused", nil, "connect_failure"], ["c 503", "503", nil], ["d 200", "200", nil],
            ["e to ftp", nil, "redirect_refused"], ["f loop", nil, "too_many_redirects"], ["g header", nil, "invalid_request"],
        ])
        // libcurl's words for a refused connection, which status shortens to the host and port
        // (HealthTableTests.connectionErrorsKeepTheirHost).
        let refused = try shop.connection.query("SELECT a.error FROM webhooky.attempts a JOIN webhooky.webhooks w ON w.id = a.webhook_id WHERE w.name = 'b refused'")
        #expect(refused[0, 0]?.hasPrefix("Failed to connect to 127.0.0.1 port \(closed.port) after ") == true)
        #expect(refused[0, 0]?.hasSuffix(" ms: Couldn't connect to server") == true)
    }

    @Test("an attempt the worker's stop cut short is on record as interrupted")
    func interruptedAttemptHasItsCode() throws {
        let shop = try Shop()
        let silent = try LoopbackPort(listening: true)
        try shop.addWebhook(url: "http://127.0.0.1:\(silent.port)/hook")
        var configuration = shop.workerConfiguration()
        configuration.http.requestTimeout = .seconds(20)
        configuration.shutdownGracePeriod = .milliseconds(200)
        let worker = RunningWorker(configuration)
        try shop.setCredit("3")
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'sending'") { $0 == "1" } == "1")
        Thread.sleep(forTimeInterval: 0.3)  // the request is in flight
        worker.stop()
        #expect(try shop.connection.query("SELECT status::text, error_code FROM webhooky.attempts").rows == [[nil, "interrupted"]])
    }

    @Test("the row the lease reap writes for a worker that died is lease_expired, and the worker, back after all, still writes its own row beside it")
    func leaseExpiryRowHasItsCode() throws {
        let (shop, connection, claimed) = try OutcomeRecordTests.twoClaimedDeliveries()
        try shop.connection.execute("UPDATE webhooky.deliveries SET lease_expires_at = now() - interval '1 second' WHERE id = \(claimed[0].id)")
        #expect(try DeliveryStore.reapExpiredLeases(connection) == 1)
        #expect(try shop.connection.query("SELECT status::text, error_code FROM webhooky.attempts WHERE delivery_id = $1", [String(claimed[0].id)]).rows
                == [[nil, "lease_expired"]])
        let late = [OutcomeRecordTests.succeeded(claimed[0])]
        #expect(try DeliveryStore.unrecorded(connection, late, workerID: "w1").count == 1)
        _ = try DeliveryStore.record(connection, late, workerID: "w1", autoDisable: nil)
        #expect(try shop.connection.query("SELECT status::text, error_code FROM webhooky.attempts WHERE delivery_id = $1 ORDER BY id", [String(claimed[0].id)]).rows
                == [[nil, "lease_expired"], ["200", nil]])
    }

    @Test("the upgrade to schema version 54 gives the lease expiry rows and the interrupted attempts already on record their code, which their error text told exactly; the other failed attempts keep none")
    func upgradeCodesOnlyWhatTheTextTellsExactly() throws {
        let connection = try TestCluster.newDatabase(atSchemaVersion: 53)
        try connection.execute("""
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, error, worker) VALUES
                (1, 1, 1, now(), 1, NULL, '\(DeliveryStore.leaseExpiredPrefix)the worker that claimed it (w1) stopped or lost the database before recording the outcome', 'w1'),
                (1, 1, 2, now(), 1, NULL, '\(DeliveryStore.interruptedPrefix) while the request was in flight (its shutdown grace period was over); it may have arrived, and will be sent again', 'w1'),
                (1, 1, 3, now(), 1, NULL, 'Operation timed out after 500 milliseconds with 0 bytes received', 'w1'),
                (1, 1, 4, now(), 1, 503, 'HTTP 503', 'w1'),
                (1, 1, 5, now(), 1, 200, NULL, 'w1')
            """)
        try Migrator(connection: connection).migrate()
        #expect(try connection.column("SELECT coalesce(error_code, 'none') FROM webhooky.attempts ORDER BY attempt")
                == ["lease_expired", "interrupted", "none", "none", "none"])
    }

    @Test("the column's comment names every code the worker writes")
    func commentNamesEveryCode() throws {
        let shop = try Shop()
        let comment = try #require(try shop.column("SELECT col_description('webhooky.attempts'::regclass, attnum) FROM pg_attribute WHERE attrelid = 'webhooky.attempts'::regclass AND attname = 'error_code'").first ?? nil)
        let codes: [HTTPError.Code] = [.timeout, .dnsFailure, .connectFailure, .tlsFailure, .connectionBroken, .other, .redirectRefused, .tooManyRedirects,
                                       .invalidURL, .addressNotAllowed, .interrupted]
        for code in codes.map(\.rawValue) + [DeliveryStore.invalidRequestCode, DeliveryStore.leaseExpiredCode] {
            #expect(comment.contains("\(code) ("), "the comment does not explain \(code)")
        }
    }
}
