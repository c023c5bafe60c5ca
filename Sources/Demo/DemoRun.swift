import Foundation
import HTTPClient
import LocalPostgres
import Log
import LoopbackReceiver
import Postgres
import Schema
import StandardWebhooks
import Synchronization
import Worker

/// `webhooky demo`: the whole product on a private PostgreSQL and a loopback receiver, narrated.
public struct DemoRun {
    private let keep: Bool
    private let out = DemoOutput()

    /// - Parameter keep: Leave PostgreSQL running at the end until Ctrl-C.
    public init(keep: Bool = false) {
        self.keep = keep
    }

    public func run() throws {
        out.title("Webhooky demo")
        out.line("Everything below runs on this machine: a private PostgreSQL, the webhooky worker, and a")
        out.line("receiver on 127.0.0.1 standing in for your ERP. Nothing is left behind.")

        out.step("Starting a private PostgreSQL" + (geteuid() == 0 ? " (as the postgres OS user, since initdb refuses root)" : ""))
        let signals = DemoSignals()
        let cluster = try LocalCluster(name: "demo")
        signals.cleanUp(cluster)
        defer {
            // Either this cleans up, or an interrupt's handler does (and ends the process).
            signals.takeCleanUp()
            cluster.destroy()
            out.step("Cleaned up: PostgreSQL stopped and \(cluster.directory) removed.")
        }
        out.detail("data and socket in \(cluster.directory)")
        let admin = try Connection(conninfo: cluster.conninfo())
        try admin.execute("CREATE DATABASE shop")
        let conninfo = cluster.conninfo(database: "shop")
        let db = try Connection(conninfo: conninfo, applicationName: "webhooky demo")

        out.step("Installing the webhooky schema (what `webhooky migrate` does)")
        let applied = try Migrator(connection: db).migrate()
        if let first = applied.first, let last = applied.last {
            out.detail("applied \(applied.count) migrations, sql/\(first.fileName) to sql/\(last.fileName): schema version \(last.version)")
        }
        out.step("Installing the reference shop (sql/examples/ellity.sql): tables and two triggers")
        try db.execute(Migrations.referenceDomain)
        try db.execute("""
            INSERT INTO ellity.eshops VALUES ('eshop-42', 'Demo Shop');
            INSERT INTO ellity.customer_groups VALUES (3, 'eshop-42', 'Wholesale');
            INSERT INTO ellity.vip_tiers VALUES (1, 'eshop-42', 'Silver', 0), (2, 'eshop-42', 'Gold', 1000);
            INSERT INTO ellity.customers VALUES (1001, 'eshop-42', 'jan.novak+vip@example.cz', 1000.00, 3, 1);
            """)
        out.detail("customer 1001, jan.novak+vip@example.cz, credit 1000.00, group Wholesale, tier Silver")

        out.step("Starting a receiver on 127.0.0.1 (the \"other party\")")
        let receiver = try LoopbackReceiver()
        defer { receiver.stop() }
        out.detail("listening at \(receiver.baseURL)")

        out.step("Creating the seed's two webhooks with plain SQL")
        let getURL = receiver.baseURL + "/erp/credit?id=#customer.id#&email=#customer.email#"
        let postBody = """
            {
              "eshop":"#account.eshopId#",
              "email":"#customer.email#",
              "credit":"#customer.credit#",
              "custom": {
               "field":"vlastni_pole"
              }
            }
            """
        out.sql("""
            INSERT INTO webhooky.webhooks (name, event, url)
            VALUES ('ERP credit sync', 'customer.credit_changed',
                    '\(getURL)');
            """)
        try db.query("INSERT INTO webhooky.webhooks (name, event, url) VALUES ($1, 'customer.credit_changed', $2)", ["ERP credit sync", getURL])
        out.sql("""
            INSERT INTO webhooky.webhooks (name, event, url, body, secret)
            VALUES ('E-mail tool: VIP tier', 'customer.tier_changed',
                    '\(receiver.baseURL)/mailer/vip',
                    '\(postBody)',
                    webhooky.new_secret());
            """)
        let secret = try db.query(
            "INSERT INTO webhooky.webhooks (name, event, url, body, secret) VALUES ($1, 'customer.tier_changed', $2, $3, webhooky.new_secret()) RETURNING secret",
            ["E-mail tool: VIP tier", receiver.baseURL + "/mailer/vip", postBody]
        ).scalar

        out.step("Starting the worker (what `webhooky run` does)")
        let logs = DemoLog()
        var configuration = WorkerConfiguration(databaseURL: conninfo, workerID: "demo-worker")
        // The demo's receiver is on 127.0.0.1, which the worker refuses by default.
        configuration.http.addressPolicy = .allowingLoopback
        configuration.logger = Logger(level: .debug) { logs.append($0) }  // a line per delivery
        let worker = Worker(configuration: configuration)
        let finished = DispatchSemaphore(value: 0)
        let failure = DemoLog()
        let thread = Thread {
            do throws(WorkerError) { try worker.run() } catch { failure.append(error.message) }
            finished.signal()
        }
        thread.start()
        defer {
            worker.stop()
            finished.wait()
        }

        out.step("A customer's credit changes")
        out.sql("UPDATE ellity.customers SET credit = credit + 250.50 WHERE id = 1001;")
        try db.execute("UPDATE ellity.customers SET credit = credit + 250.50 WHERE id = 1001")
        try show(requestNumber: 1, receiver: receiver, logs: logs, failure: failure, secret: secret)

        out.step("The customer moves to the Gold tier")
        out.sql("UPDATE ellity.customers SET tier_id = 2 WHERE id = 1001;")
        try db.execute("UPDATE ellity.customers SET tier_id = 2 WHERE id = 1001")
        try show(requestNumber: 2, receiver: receiver, logs: logs, failure: failure, secret: secret)

        out.step("What Webhooky recorded, as an admin sees it")
        Thread.sleep(forTimeInterval: 0.2)
        let table = try db.query("""
            SELECT d.id, w.name, d.state, d.attempts, d.last_status, to_char(d.completed_at, 'HH24:MI:SS.MS') AS done
              FROM webhooky.deliveries d JOIN webhooky.webhooks w ON w.id = d.webhook_id ORDER BY d.id
            """)
        out.sql("SELECT d.id, w.name, d.state, d.attempts, d.last_status ... FROM webhooky.deliveries d JOIN webhooky.webhooks w ...;")
        out.table(table)

        if keep {
            out.step("PostgreSQL stays up. Explore with:")
            out.line("    psql '\(conninfo)'")
            out.line("    DATABASE_URL='\(conninfo)' webhooky status    # or doctor, tail, preview 1")
            out.line("Press Ctrl-C to stop and remove everything.")
            signals.wait()
        }
    }

    private func show(requestNumber: Int, receiver: LoopbackReceiver, logs: DemoLog, failure: DemoLog, secret: String?) throws {
        let requests = receiver.waitForRequests(requestNumber, timeout: .seconds(15))
        if let problem = failure.all.first { throw DemoError("the worker stopped: \(problem)") }
        guard requests.count >= requestNumber else {
            throw DemoError("no request reached the receiver within 15 s; worker log:\n" + logs.all.joined(separator: "\n"))
        }
        Thread.sleep(forTimeInterval: 0.05)
        for line in logs.take() { out.log(line) }
        let request = requests[requestNumber - 1]
        out.request(request, port: receiver.port)
        if let secret = secret.flatMap(SigningSecret.init), let signature = request.header("webhook-signature"),
           let id = request.header("webhook-id"), let timestamp = request.header("webhook-timestamp") {
            let valid = WebhookSignature.verify(id: id, timestamp: timestamp, body: request.body, header: signature, secret: secret)
            out.detail(valid ? "webhook-signature verified with the webhook's secret: authentic ✓" : "webhook-signature did NOT verify ✗")
        }
    }

}

/// Ctrl-C (SIGINT), SIGTERM and SIGHUP during the demo: the server runs detached (pg_ctl), so
/// a signal that ended only this process would leave it and its folder behind. Until
/// ``wait()`` the first signal stops the cluster, removes its folder and exits with 130;
/// during ``wait()`` (`--keep`) it ends the wait and the demo cleans up as usual.
///
/// `@unchecked Sendable`: the signal sources are set up once in `init` and only resumed; the
/// rest is behind locks.
final class DemoSignals: @unchecked Sendable {
    private let cluster = Mutex<LocalCluster?>(nil)
    private let waiting = Mutex<DispatchSemaphore?>(nil)
    private let interrupted = Atomic(false)
    private var sources: [any DispatchSourceSignal] = []

    init() {
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in received() }
            source.resume()
            sources.append(source)
        }
    }

    /// The cluster to destroy if the demo is interrupted.
    func cleanUp(_ cluster: LocalCluster) {
        self.cluster.withLock { $0 = cluster }
    }

    /// Waits for a signal.
    func wait() {
        let semaphore = DispatchSemaphore(value: 0)
        waiting.withLock { $0 = semaphore }
        semaphore.wait()
    }

    /// Claims the clean-up for the demo's own ending; when an interrupt's handler has claimed
    /// it already, waits for good (the handler exits the process: the demo's own steps fail as
    /// the server goes, and must not exit first).
    func takeCleanUp() {
        guard interrupted.exchange(true, ordering: .acquiringAndReleasing) else { return }
        while true { sleep(60) }
    }

    private func received() {
        if let semaphore = waiting.withLock({ $0 }) {
            semaphore.signal()
            return
        }
        guard !interrupted.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if let cluster = cluster.withLock({ $0 }) {
            cluster.destroy()
            Logger.writeStandardError("\nwebhooky demo: interrupted; PostgreSQL stopped and \(cluster.directory) removed\n")
        }
        exit(130)
    }
}

/// A demo failure, explained.
struct DemoError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Log lines collected from the worker's thread.
final class DemoLog: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    func take() -> [String] {
        lines.withLock { lines in
            defer { lines.removeAll() }
            return lines
        }
    }
}
