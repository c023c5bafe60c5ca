import Foundation
import Glibc
import LocalPostgres
import Postgres
import Schema
import Synchronization

/// The fault drill: events committed at a steady pace while a chaos receiver misbehaves, the
/// worker is killed with SIGKILL again and again, and PostgreSQL is restarted. At the end it
/// checks every committed event against what the receiver got. Lost must be 0.
public struct FaultDrill {
    public struct Configuration: Sendable {
        /// Events committed. Default 10,000.
        public var events = 10_000
        /// Webhooks, one per e-shop; each event belongs to one e-shop. Default 20.
        public var webhooks = 20
        /// How often the worker is killed with SIGKILL. Default 5.
        public var workerKills = 5
        /// How often PostgreSQL is restarted (alternately fast and immediate). Default 2.
        public var postgresRestarts = 2
        /// The events are spread over this time. Default 60 s.
        public var emitDuration: Duration = .seconds(60)
        /// The longest wait for the backlog to drain after the last event. Default 5 min.
        public var drainTimeout: Duration = .seconds(300)
        /// Seed of the receiver's chaos. Default: random.
        public var seed: UInt64 = .random(in: 0...UInt64.max)
        /// The `webhooky` executable to run as the worker.
        public var workerExecutable: String
        /// Progress lines.
        public var progress: @Sendable (String) -> Void = { print($0) }

        public init(workerExecutable: String) {
            self.workerExecutable = workerExecutable
        }
    }

    /// The worker's options in the drill: short timeouts, lease and retry schedule, so that
    /// the drill ends in minutes.
    static let workerOptions = [
        "--request-timeout", "2s", "--connect-timeout", "1s", "--lease", "6s", "--poll-interval", "250ms",
        "--retry-schedule", "250ms,500ms,1s,2s,2s,3s,3s,5s,5s,5s", "--max-in-flight", "128",
        "--no-auto-disable", "--log-level", "warning", "--allow-network", "127.0.0.0/8",
    ]

    let configuration: Configuration

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    public func run() throws -> DrillReport {
        let say = configuration.progress
        let started = ContinuousClock.now
        say("starting a private PostgreSQL, the schema, \(configuration.webhooks) e-shops with one webhook each")
        let cluster = try LocalCluster(name: "drill")
        defer { cluster.destroy() }
        let admin = try Connection(conninfo: cluster.conninfo())
        try admin.execute("CREATE DATABASE shop")
        let conninfo = cluster.conninfo(database: "shop")
        let setup = try Connection(conninfo: conninfo)
        try Migrator(connection: setup).migrate()
        try setup.execute(Migrations.referenceDomain)

        let chaos = try ChaosReceiver(mix: .init(), seed: configuration.seed, slowAnswer: .milliseconds(800))
        defer { chaos.stop() }
        let customersPerShop = 50
        try setup.query("""
            INSERT INTO ellity.eshops SELECT 'shop-' || s, 'Shop ' || s FROM generate_series(1, $1::int) s;
            """, [String(configuration.webhooks)])
        try setup.query("INSERT INTO ellity.customer_groups SELECT s, 'shop-' || s, 'Group ' || s FROM generate_series(1, $1::int) s", [String(configuration.webhooks)])
        try setup.query("INSERT INTO ellity.vip_tiers SELECT s, 'shop-' || s, 'Tier ' || s, 0 FROM generate_series(1, $1::int) s", [String(configuration.webhooks)])
        try setup.query("""
            INSERT INTO ellity.customers
            SELECT s * 1000 + c, 'shop-' || s, 'c' || c || '+s' || s || '@example.cz', 0, s, s
              FROM generate_series(1, $1::int) s, generate_series(1, $2::int) c
            """, [String(configuration.webhooks), String(customersPerShop)])
        for shop in 1...configuration.webhooks {
            try setup.query("""
                INSERT INTO webhooky.webhooks (name, account_id, event, url, body, secret)
                VALUES ($1, $2, 'customer.credit_changed', $3, $4, webhooky.new_secret())
                """, ["shop \(shop)", "shop-\(shop)", chaos.baseURL + "/hook/\(shop)?c=#customer.id#",
                      ##"{"eshop":"#account.eshopId#","email":"#customer.email#","credit":"#customer.credit#"}"##])
        }

        let supervisor = WorkerSupervisor(executable: configuration.workerExecutable, conninfo: conninfo)
        try supervisor.start()
        defer { supervisor.stop() }
        say("worker running (pid \(supervisor.pid)); chaos receiver at \(chaos.baseURL) (seed \(configuration.seed))")

        let emitter = Emitter(conninfo: conninfo, events: configuration.events, shops: configuration.webhooks,
                              customersPerShop: customersPerShop, duration: configuration.emitDuration)
        let emitterDone = DispatchSemaphore(value: 0)
        let emitterThread = Thread {
            emitter.run()
            emitterDone.signal()
        }
        emitterThread.start()

        let emitStart = ContinuousClock.now
        for planned in FaultDrill.schedule(workerKills: configuration.workerKills, postgresRestarts: configuration.postgresRestarts,
                                         over: configuration.emitDuration) {
            let due = emitStart + planned.after
            if due > .now { Thread.sleep(forTimeInterval: DrillReport.seconds(due - .now)) }
            switch planned.fault {
            case .killWorker:
                let old = supervisor.pid
                try supervisor.killAndRestart()
                say("SIGKILL worker \(old); started \(supervisor.pid)  (\(emitter.committed) events committed so far)")
            case .restartFast, .restartImmediate:
                let mode: LocalCluster.StopMode = planned.fault == .restartFast ? .fast : .immediate
                try cluster.restart(mode: mode)
                say("PostgreSQL restarted (\(mode.rawValue))  (\(emitter.committed) events committed so far)")
            }
        }
        emitterDone.wait()
        say("\(emitter.committed) events committed; waiting for every delivery to succeed or die")

        let check = try Connection(conninfo: conninfo)
        check.onNotice { _ in }
        let drainDeadline = ContinuousClock.now + configuration.drainTimeout
        var open = Int.max
        while ContinuousClock.now < drainDeadline {
            open = Int(try check.query("SELECT count(*) FROM webhooky.deliveries WHERE state IN ('pending', 'sending')").scalar ?? "0") ?? 0
            if open == 0 { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        supervisor.stop()
        Thread.sleep(forTimeInterval: 0.3)
        say("drained; checking every event against what the receiver got")
        return try DrillReport.build(
            connection: check, committed: emitter.committed, emitRetries: emitter.retries, receipts: chaos.all,
            configuration: configuration, elapsed: ContinuousClock.now - started
        )
    }

    /// A fault the drill causes.
    public enum Fault: Equatable, Sendable { case killWorker, restartFast, restartImmediate }

    /// The chaos schedule: worker kills spread from 10 % to 90 % of the emitting time, PostgreSQL
    /// restarts (fast and immediate in turn) from 30 % to 80 %, in the order they fall due;
    /// each with its time from the start of emitting (fractions of a second kept).
    public static func schedule(workerKills: Int, postgresRestarts: Int, over emitting: Duration) -> [(after: Duration, fault: Fault)] {
        var faults: [(share: Double, fault: Fault)] = []
        for kill in 0..<workerKills {
            faults.append((0.1 + 0.8 * Double(kill) / Double(max(1, workerKills - 1)), .killWorker))
        }
        for restart in 0..<postgresRestarts {
            faults.append((0.3 + 0.5 * Double(restart) / Double(max(1, postgresRestarts - 1)), restart % 2 == 0 ? .restartFast : .restartImmediate))
        }
        return faults.sorted { $0.share < $1.share }.map { (emitting * $0.share, $0.fault) }
    }
}

/// Runs one `webhooky run` process at a time and restarts it when told.
final class WorkerSupervisor: @unchecked Sendable {
    // Touched only from the drill's main thread.
    private let executable: String
    private let conninfo: String
    private(set) var pid: Int32 = 0
    private var generation = 0
    let logPath = "/tmp/webhooky-drill-worker-\(getpid()).log"

    init(executable: String, conninfo: String) {
        self.executable = executable
        self.conninfo = conninfo
        unlink(logPath)
    }

    func start() throws {
        generation += 1
        pid = try ChildProcess.spawn(executable, ["run", "--database-url", conninfo, "--worker-id", "drill-\(generation)"] + FaultDrill.workerOptions, outputPath: logPath)
    }

    func killAndRestart() throws {
        ChildProcess.kill(pid, signal: SIGKILL)
        _ = ChildProcess.wait(pid)
        try start()
    }

    /// Stops the worker and removes its log (nothing reads it after the drill).
    func stop() {
        guard pid > 0 else { return }
        ChildProcess.kill(pid, signal: SIGTERM)
        _ = ChildProcess.wait(pid)
        pid = 0
        unlink(logPath)
    }
}

/// Commits credit changes at a steady pace, reconnecting (and retrying the change) when
/// PostgreSQL restarts. Only acknowledged commits count.
final class Emitter: Sendable {
    private let conninfo: String
    private let events: Int
    private let shops: Int
    private let customersPerShop: Int
    private let duration: Duration
    private let counters = Mutex((committed: 0, retries: 0))

    init(conninfo: String, events: Int, shops: Int, customersPerShop: Int, duration: Duration) {
        self.conninfo = conninfo
        self.events = events
        self.shops = shops
        self.customersPerShop = customersPerShop
        self.duration = duration
    }

    var committed: Int { counters.withLock { $0.committed } }
    var retries: Int { counters.withLock { $0.retries } }

    func run() {
        let start = ContinuousClock.now
        var connection: Connection? = nil
        var index = 0
        while index < events {
            let due = start + duration * (Double(index) / Double(events))
            if due > .now { Thread.sleep(forTimeInterval: DrillReport.seconds(due - .now)) }
            do {
                if connection == nil {
                    connection = try Connection(conninfo: conninfo, applicationName: "drill emitter")
                    connection?.onNotice { _ in }  // the shutdown warnings of a restart are expected
                }
                let shop = index % shops + 1
                let customer = shop * 1000 + (index / shops) % customersPerShop + 1
                try connection?.query("UPDATE ellity.customers SET credit = credit + 1.01 WHERE id = $1", [String(customer)])
                counters.withLock { $0.committed += 1 }
                index += 1
            } catch {
                connection = nil
                counters.withLock { $0.retries += 1 }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }
}
