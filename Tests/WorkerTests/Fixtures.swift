import HTTPClient
import Delivery
import Foundation
import Log
import LoopbackReceiver
import Postgres
import Synchronization
import TestSupport
import Testing
import Worker

/// A database with the reference domain filled in: e-shop `shop-42`, group `Wholesale`,
/// tiers `Silver` and a tier with quotes, backslash, newline and emoji in its name, and the
/// customer 9007199254740993 (`jan+vip@example.cz`, credit 100.00).
struct Shop {
    static let customerID = "9007199254740993"
    static let trickyTierName = "Gold \"Plus\" \\ tier\nnew line 🎉"

    let database: TestDatabase
    private(set) var connection: Connection

    /// A shop in a new database of the shared test cluster, or in `database`.
    init(database: TestDatabase? = nil) throws {
        self.database = try database ?? TestCluster.newDatabase()
        connection = try self.database.connect()
        try connection.execute("""
            INSERT INTO ellity.eshops VALUES ('shop-42', 'Shop 42'), ('shop-7', 'Shop 7');
            INSERT INTO ellity.customer_groups VALUES (3, 'shop-42', 'Wholesale'), (4, 'shop-7', 'Retail');
            INSERT INTO ellity.vip_tiers VALUES (1, 'shop-42', 'Silver', 0), (7, 'shop-7', 'Bronze', 0);
            INSERT INTO ellity.customers VALUES (1, 'shop-7', 'eva@example.cz', 5, 4, 7);
            """)
        try connection.query("INSERT INTO ellity.vip_tiers VALUES (2, 'shop-42', $1, 1000)", [Shop.trickyTierName])
        try connection.query("INSERT INTO ellity.customers VALUES ($1, 'shop-42', 'jan+vip@example.cz', 100.00, 3, 1)", [Shop.customerID])
    }

    /// Opens a new connection (after PostgreSQL was restarted).
    mutating func reconnect() throws {
        connection = try database.connect()
    }

    /// Adds `count` customers of shop-42 (ids 100001...), for events in bulk.
    func addCustomers(_ count: Int) throws {
        try connection.query("INSERT INTO ellity.customers SELECT 100000 + n, 'shop-42', 'c' || n || '@example.cz', 0, 3, 1 FROM generate_series(1, $1::int) n", [String(count)])
    }

    /// Inserts a webhook and returns its id.
    @discardableResult
    func addWebhook(
        event: String = "customer.credit_changed", url: String, body: String? = nil, headers: String = "{}",
        secret: String? = nil, account: String? = nil, enabled: Bool = true, name: String = "test"
    ) throws -> Int64 {
        let result = try connection.query(
            "INSERT INTO webhooky.webhooks (name, event, url, body, headers, secret, account_id, enabled) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8) RETURNING id",
            [name, event, url, body, headers, secret, account, enabled ? "true" : "false"]
        )
        return Int64(result.scalar ?? "") ?? -1
    }

    /// The `webhook-id` of delivery `deliveryID`, as the worker writes it (`webhooky.message_id`).
    func messageID(_ deliveryID: String) throws -> String {
        (try connection.query("SELECT webhooky.message_id($1)", [deliveryID]).scalar ?? nil) ?? "no webhooky.message_id"
    }

    /// Sets the customer's credit (fires `customer.credit_changed`).
    func setCredit(_ credit: String, customer: String = Shop.customerID) throws {
        try connection.query("UPDATE ellity.customers SET credit = $1::numeric WHERE id = $2", [credit, customer])
    }

    /// Moves the customer to tier `tier` (fires `customer.tier_changed`).
    func setTier(_ tier: Int, customer: String = Shop.customerID) throws {
        try connection.query("UPDATE ellity.customers SET tier_id = $1 WHERE id = $2", [String(tier), customer])
    }

    /// The first column of every row of `sql`.
    func column(_ sql: String, _ parameters: [String?] = []) throws -> [String?] {
        try connection.column(sql, parameters)
    }

    /// `state, attempts, last_status` of every delivery, by id.
    func deliveryStates() throws -> [[String?]] {
        try connection.query("SELECT state, attempts::text, last_status::text FROM webhooky.deliveries ORDER BY id").rows
    }

    /// Waits until `condition` holds for the first column of `sql` (a single value), polling.
    func waitFor(_ sql: String, timeout: Duration = .seconds(20), until condition: (String?) -> Bool) throws -> String? {
        try connection.waitFor(sql, timeout: timeout, until: condition)
    }

    /// Runs `work` on a connection of its own in another thread, waits until one of its
    /// statements (its text like `pattern`) waits for a lock, commits the transaction that
    /// `holder` keeps open, and returns what `work` came to: what a statement sees when a change
    /// commits while it waits. `nil` (an issue recorded) when it never waited or never ended.
    func committing<T: Sendable>(_ holder: Connection, whileWaiting pattern: String,
                                 _ work: @escaping @Sendable (Connection) throws -> T) throws -> Result<T, any Error>? {
        let database = self.database
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            let result = Result { try work(try database.connect()) }
            outcome.withLock { $0 = result }
            done.signal()
        }.start()
        let like = pattern.replacingOccurrences(of: "'", with: "''")
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '\(like)'"
        let waited = try waitFor(waiting) { $0 == "1" } == "1"
        #expect(waited, "no statement like \(pattern) waited for the lock")
        try holder.execute("COMMIT")
        #expect(done.wait(timeout: .now() + 20) == .success, "the statement like \(pattern) did not end")
        return waited ? outcome.withLock { $0 } : nil
    }

    /// The payloads of the NOTIFYs on channel `webhooky` that `change` (run on ``connection``)
    /// sent, as `listener` (which LISTENs already) receives them. No time window: after the
    /// change this connection sends a marker of its own, and PostgreSQL delivers the
    /// notifications of different transactions in the order they committed, so everything
    /// before the marker is the change's. `nil` (an issue recorded) when the marker never came.
    func notifications(on listener: Connection, after change: () throws -> Void) throws -> [String]? {
        try change()
        let marker = "marker \(UInt64.random(in: 0...UInt64.max))"
        try connection.query("SELECT pg_notify('webhooky', $1)", [marker])
        var received: [String] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            received += try listener.waitForNotifications(timeout: .milliseconds(100)).map(\.payload)
            if let end = received.firstIndex(of: marker) { return Array(received[..<end]) }
        }
        Issue.record("the marker NOTIFY did not arrive within 20 s: \(received)")
        return nil
    }

    /// A worker configuration for tests: fast polling, a short retry schedule, logs captured.
    func workerConfiguration(logs: LogCapture? = nil, retry: [Duration] = [.milliseconds(100), .milliseconds(100)]) -> WorkerConfiguration {
        var configuration = WorkerConfiguration(databaseURL: database.conninfo, workerID: "test-worker")
        configuration.http.addressPolicy = .allowingLoopback  // the receivers listen on 127.0.0.1
        configuration.pollInterval = .milliseconds(200)
        configuration.retryPolicy = RetryPolicy(delays: retry, jitter: 0)
        configuration.shutdownGracePeriod = .seconds(2)
        configuration.logger = (logs ?? LogCapture()).logger()
        return configuration
    }
}
