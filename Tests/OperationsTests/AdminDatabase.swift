import HTTPClient
import Delivery
import Foundation
import Postgres
import TestSupport
import Worker

/// A database of its own (schema and reference domain) for one test, with helpers to add
/// webhooks, run SQL and start a worker.
struct AdminDatabase {
    let database: TestDatabase
    let connection: Connection

    init() throws {
        database = try TestCluster.newDatabase()
        connection = try database.connect()
    }

    /// The connection string, as `--database-url` takes it.
    var url: String { database.conninfo }

    /// Inserts a webhook and returns its id.
    @discardableResult
    func addWebhook(
        event: String = "customer.credit_changed", url: String, body: String? = nil, headers: String = "{}",
        secret: String? = nil, enabled: Bool = true, name: String = "test"
    ) throws -> Int64 {
        let result = try connection.query(
            "INSERT INTO webhooky.webhooks (name, event, url, body, headers, secret, enabled) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7) RETURNING id",
            [name, event, url, body, headers, secret, enabled ? "true" : "false"]
        )
        return Int64(result.scalar ?? "") ?? -1
    }

    /// The first column of every row of `sql`.
    func column(_ sql: String, _ parameters: [String?] = []) throws -> [String?] {
        try connection.column(sql, parameters)
    }

    /// The single value of `sql`.
    func value(_ sql: String, _ parameters: [String?] = []) throws -> String? {
        try connection.query(sql, parameters).scalar
    }

    /// Waits until `condition` holds for the single value of `sql`, polling.
    func waitFor(_ sql: String, timeout: Duration = .seconds(20), until condition: (String?) -> Bool) throws -> String? {
        try connection.waitFor(sql, timeout: timeout, until: condition)
    }

    /// A worker for tests: fast polling, a short retry schedule, logs kept out of the way.
    func workerConfiguration(retry: [Duration] = [.milliseconds(100)]) -> WorkerConfiguration {
        var configuration = WorkerConfiguration(databaseURL: database.conninfo, workerID: "test-worker-\(database.name)")
        configuration.http.addressPolicy = .allowingLoopback  // the receivers listen on 127.0.0.1
        configuration.pollInterval = .milliseconds(200)
        configuration.retryPolicy = RetryPolicy(delays: retry, jitter: 0)
        configuration.shutdownGracePeriod = .seconds(2)
        configuration.logger = LogCapture().logger()
        return configuration
    }

    /// Runs `webhooky ARGUMENTS --database-url URL` to the end.
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandProcess.Outcome {
        try CommandProcess.run(arguments + ["--database-url", url], environment: environment)
    }

    /// Records a delivery (with its event, of the webhook's account) of `webhook` directly, as the worker would have, and
    /// returns its id.
    /// Says that every event type with a webhook has been wanted for 30 days: webhooky doctor's
    /// events check counts a silence from when its first webhook came (`webhooky.event_wanted`),
    /// and events written into the past for a test came before the test's webhooks.
    func wantedForAMonth() throws {
        try connection.execute("UPDATE webhooky.event_wanted SET wanted_since = now() - interval '30 days'")
    }

    /// Marks `webhook` failing, as the worker's outcomes would: `failures` in a row, since `since` ago
    /// (an SQL interval, e.g. `2 hours`).
    func markFailing(_ webhook: Int64, failures: Int, since: String) throws {
        try connection.query("INSERT INTO webhooky.webhook_health (webhook_id, consecutive_failures, failing_since) VALUES ($1, $2, now() - $3::interval)",
                             [String(webhook), String(failures), since])
    }

    func addDelivery(webhook: Int64, state: String = "pending", attempts: Int = 0) throws -> Int64 {
        let event = try connection.query("""
            INSERT INTO webhooky.events (event, account_id, payload, webhook_ids, fanned_out)
            SELECT w.event, w.account_id, '{}', ARRAY[w.id], true FROM webhooky.webhooks w WHERE w.id = $1 RETURNING id
            """, [String(webhook)]).scalar
        let delivery = try connection.query("""
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, completed_at)
            VALUES ($1, $2, $3, $4, CASE WHEN $3 IN ('succeeded', 'dead') THEN now() END) RETURNING id
            """, [event, String(webhook), state, String(attempts)]).scalar
        return Int64(delivery ?? "") ?? -1
    }
}
