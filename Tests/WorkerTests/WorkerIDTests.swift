import Foundation
import Glibc
import LocalPostgres
import LoopbackReceiver
import Postgres
import Synchronization
import TestSupport
import Testing
@testable import Worker

/// Two workers started with one `--worker-id` would share `claimed_by` (each could give back,
/// take back or record the other's claims): the second refuses to start, a crashed
/// predecessor's row does not stop a restart, and a worker whose id is taken while it runs stops
/// (with a status that a supervisor restarts). Host and pid tell nothing (containers share
/// them); the row's `started_at` does.
@Suite(.timeLimit(.minutes(10))) struct WorkerIDTests {
    /// A shop with a webhook to a new receiver's `/ID`, and a `webhooky run --worker-id ID`
    /// that has registered its row and made one delivery.
    static func deliveringWorkerProcess(id: String) throws -> (Shop, LoopbackReceiver, WorkerProcess) {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/" + id)
        let worker = try WorkerProcess(database: shop.database.conninfo, workerID: id, arguments: ReliabilityTests.fastWorker)
        #expect(try shop.waitFor("SELECT pid FROM webhooky.workers WHERE id = '\(id)'") { $0 == String(worker.pid) } == String(worker.pid))
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1).count == 1)
        return (shop, receiver, worker)
    }

    @Test("a second worker started with the first's --worker-id refuses to start (exit 5, naming the id, host and pid); the first keeps delivering")
    func secondWorkerWithTheSameIDRefuses() throws {
        let (shop, receiver, first) = try Self.deliveringWorkerProcess(id: "twin")
        let host = try #require(try shop.column("SELECT host FROM webhooky.workers").first ?? nil)
        let started = try #require(try shop.column("SELECT started_at FROM webhooky.workers").first ?? nil)

        let second = try CommandProcess.run(["run", "--database-url", shop.database.conninfo, "--worker-id", "twin", "--allow-network", "127.0.0.0/8"]
                                            + ReliabilityTests.fastWorker, timeout: .seconds(20))
        #expect(second.status == 5, "\(second.errors)")
        #expect(second.errors.contains("waiting to see whether it is alive before starting"), "\(second.errors)")
        #expect(second.errors.contains("""
            webhooky: error: another worker is running with --worker-id twin (host \(host), pid \(first.pid), started \(started); its heartbeat \
            advanced while this one waited); give each worker its own --worker-id, or leave it out: the default is hostname:pid (unless \
            containers share a hostname)
            """), "\(second.errors)")

        // The first worker's row is still its own, and it goes on delivering.
        #expect(try shop.connection.query("SELECT host, pid FROM webhooky.workers").rows == [[host, String(first.pid)]])
        try shop.setCredit("2")
        #expect(receiver.waitForRequests(2).count == 2)
        #expect(try shop.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state = 'succeeded'") { $0 == "2" } == "2")
        #expect(receiver.requests.map(\.target) == ["/twin", "/twin"], "the refused worker sent nothing")
        first.send(SIGTERM)
        #expect(first.wait() == 0)
        #expect(!first.log.contains("another worker took over"))
    }

    /// Whose process a row of another worker names.
    enum OtherPID: Sendable {
        /// A process of this host that has ended (or one of another pid namespace).
        case ended
        /// This test process's own pid (another container's pid 1, say).
        case this
        case other(Int32)

        func value() throws -> Int32 {
            switch self {
            case .this: return getpid()
            case .other(let pid): return pid
            case .ended:
                let pid = try ChildProcess.spawn("/bin/true", [])
                _ = ChildProcess.wait(pid)
                return pid
            }
        }
    }

    /// A row of a worker that crashed, written as the test says, under the test worker's id.
    struct LeftRow: Sendable, CustomTestStringConvertible {
        var what: String
        /// `nil`: this host.
        var host: String?
        var pid: OtherPID
        var heartbeatAge: String
        /// What the worker logs about it.
        var logged: String
        var testDescription: String { what }
    }

    /// Writes a row of another start of a worker with the test worker's id, started a day ago.
    static func insertOtherRow(_ shop: Shop, host: String, pid: Int32, heartbeatAge: String = "0 s") throws {
        try shop.connection.query("""
            INSERT INTO webhooky.workers (id, host, pid, version, started_at, heartbeat_at, listening)
            VALUES ('test-worker', $1, $2, '1.0.0', now() - interval '1 day', now() - $3::interval, true)
            """, [host, String(pid), heartbeatAge])
    }

    @Test("a row left by a crashed worker with the same id does not stop a start: the worker takes it over and says why", arguments: [
        LeftRow(what: "a fresh heartbeat of a process of this host that has ended (watched: it may run in another pid namespace)",
                host: nil, pid: .ended, heartbeatAge: "0 s", logged: #"reason="its heartbeat did not advance in 7s""#),
        LeftRow(what: "a fresh heartbeat with this host and this pid (another container's, not this process's: watched)",
                host: nil, pid: .this, heartbeatAge: "0 s", logged: #"reason="its heartbeat did not advance in 7s""#),
        LeftRow(what: "another host's, its last heartbeat a minute ago", host: "crashed-elsewhere", pid: .other(4242), heartbeatAge: "60 s",
                logged: #"reason="its last heartbeat was 60s ago""#),
        LeftRow(what: "another host's with a fresh heartbeat that does not advance", host: "crashed-elsewhere", pid: .other(4242), heartbeatAge: "0 s",
                logged: #"reason="its heartbeat did not advance in 7s""#),
    ])
    func crashedPredecessorsRowDoesNotStopAStart(row: LeftRow) throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/restart")
        let logs = LogCapture()
        let configuration = shop.workerConfiguration(logs: logs)
        let pid = try row.pid.value()
        try Self.insertOtherRow(shop, host: row.host ?? configuration.host, pid: pid, heartbeatAge: row.heartbeatAge)

        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        #expect(try shop.waitFor("SELECT pid = \(getpid()) AND started_at > now() - interval '1 minute' FROM webhooky.workers") { $0 == "t" } == "t")
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1).count == 1)
        #expect(try shop.connection.query("SELECT host, started_at > now() - interval '1 minute' FROM webhooky.workers").rows == [[configuration.host, "t"]],
                "the row is this worker's, started now")
        let takeOver = logs.all.filter { $0.contains("took over the worker id from a worker that is gone") }
        #expect(takeOver.count == 1 && takeOver[0].contains("previous_pid=\(pid)") && takeOver[0].contains(row.logged), "\(logs.all)")
        let waited = logs.all.contains { $0.contains("waiting to see whether it is alive") && $0.contains("other_pid=\(pid)") }
        #expect(waited == (row.logged.contains("did not advance")), "every fresh row is watched, whatever host and pid it names")
    }

    /// Writes `now()` into the heartbeat of the test worker's row every 250 ms, on its own
    /// connection and thread, as a live worker would (only faster), until stopped.
    final class AdvancingHeartbeat: Sendable {
        private let stopping = Atomic(false)
        private let done = DispatchSemaphore(value: 0)

        init(_ database: TestDatabase) {
            let thread = Thread { [self] in
                let connection = try? database.connect()
                #expect(connection != nil, "no connection to advance the heartbeat on")
                while let connection, !stopping.load(ordering: .acquiring) {
                    _ = try? connection.execute("UPDATE webhooky.workers SET heartbeat_at = now() WHERE id = 'test-worker'")
                    usleep(250_000)
                }
                done.signal()
            }
            thread.start()
        }

        func stop() {
            guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
            done.wait()
        }
    }

    @Test("a worker refuses to start (exit 5) while a row of another start with its host, or its very host and pid, shows an advancing heartbeat", arguments: [
        OtherPID.this,  // containers sharing a hostname, each running webhooky as pid 1
        OtherPID.ended,  // host networking: a live worker in another pid namespace of this host
    ])
    func advancingRowOfThisHostRefuses(pid: OtherPID) throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/twin")
        try shop.setCredit("1")
        let logs = LogCapture()
        let configuration = shop.workerConfiguration(logs: logs)
        let otherPID = try pid.value()
        try Self.insertOtherRow(shop, host: configuration.host, pid: otherPID)
        let row = try shop.connection.query("SELECT host, pid::text, started_at::text FROM webhooky.workers").rows
        let started = try #require(row.first?[2] ?? nil)
        let heartbeat = AdvancingHeartbeat(shop.database)
        defer { heartbeat.stop() }

        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        let (stoppedInTime, error) = worker.waitUntilFinished(timeout: .seconds(15))
        #expect(stoppedInTime, "the worker started beside a live twin")
        #expect(error?.code == .workerIDInUse)
        #expect(error?.exitStatus == 5)
        #expect(error?.message.hasPrefix("""
            another worker is running with --worker-id test-worker (host \(configuration.host), pid \(otherPID), started \(started); \
            its heartbeat advanced while this one waited)
            """) == true, "\(error?.message ?? "")")
        #expect(logs.waitForLine { $0.contains("waiting to see whether it is alive") && $0.contains("other_pid=\(otherPID)") }, "\(logs.all)")
        #expect(!logs.all.contains { $0.contains("took over the worker id") }, "\(logs.all)")
        heartbeat.stop()
        #expect(try shop.connection.query("SELECT host, pid::text, started_at::text FROM webhooky.workers").rows == row, "the other's row is left alone")
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries") == ["0"], "the refused worker fanned out and claimed nothing")
        #expect(receiver.requests.isEmpty)
    }

    @Test("a worker whose id another start takes over while it runs stops (exit 6, the other named) without overwriting or removing the other's row")
    func workerWhoseIDIsTakenStops() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/taken")
        let logs = LogCapture()
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))
        defer { worker.stop() }
        #expect(try shop.waitFor("SELECT pid FROM webhooky.workers") { $0 == String(getpid()) } == String(getpid()))
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1).count == 1)

        // A twin that the start-up check could not see writes the row (say, it took the id over
        // while this worker was cut off from the database).
        try shop.connection.execute("UPDATE webhooky.workers SET host = 'twin-host', pid = 4242, started_at = now(), heartbeat_at = now()")
        let started = try #require(try shop.column("SELECT started_at FROM webhooky.workers").first ?? nil)
        let (stoppedInTime, error) = worker.waitUntilFinished(timeout: .seconds(15))
        #expect(stoppedInTime, "the worker went on sharing its id")
        #expect(error?.code == .workerIDTakenOver)
        #expect(error?.exitStatus == 6)
        #expect(error?.message == """
            another worker took over --worker-id test-worker while this one ran (host twin-host, pid 4242, started \(started)); \
            give each worker its own --worker-id, or leave it out: the default is hostname:pid (unless containers share a hostname)
            """)
        #expect(logs.all.filter { $0.contains("another worker took over this worker id; stopping") && $0.contains("other_pid=4242") }.count == 1)
        #expect(try shop.connection.query("SELECT host, pid FROM webhooky.workers").rows == [["twin-host", "4242"]], "the other's row is left alone")
    }

    @Test("a `webhooky run` whose row another start with its very host and pid takes over (another container's pid 1) stops with exit 6, a status the systemd unit restarts")
    func displacedRunExitsWithARestartableStatus() throws {
        let (shop, _, worker) = try Self.deliveringWorkerProcess(id: "displaced")

        // Another start with the same host and pid: only started_at differs.
        try shop.connection.execute("UPDATE webhooky.workers SET started_at = now(), heartbeat_at = now()")
        let before = try shop.connection.query("SELECT host, pid::text, started_at::text, heartbeat_at::text FROM webhooky.workers").rows
        _ = worker.waitForLog("worker stopped", timeout: .seconds(20))
        #expect(worker.log.contains("another worker took over this worker id; stopping"), "the worker went on sharing its id\n\(worker.log)")
        // Once it logged that it stopped it exits by itself, a moment later (closing its
        // connections): a SIGKILL sent then anyway could come first on a busy machine (status
        // 137). Killed only when it did not stop, so that the test ends.
        if !worker.log.contains("worker stopped") { worker.send(SIGKILL) }
        let status = worker.wait()
        #expect(status == 6, "\(worker.log)")
        #expect(try shop.connection.query("SELECT host, pid::text, started_at::text, heartbeat_at::text FROM webhooky.workers").rows == before,
                "the other's row is neither written nor removed")

        // The unit restarts on 5 and 6 (Restart=on-failure), not on 2, 4 or 7.
        let unit = try String(contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("deploy/webhooky.service").path, encoding: .utf8)
        #expect(unit.contains("\nRestart=on-failure\n"))
        #expect(unit.contains("\nStartLimitIntervalSec=0\n"), "a database down for long must not end the restarts")
        let prevented = unit.split(separator: "\n").first { $0.hasPrefix("RestartPreventExitStatus=") }?.dropFirst("RestartPreventExitStatus=".count)
            .split(separator: " ").map(String.init)
        #expect(prevented == ["2", "4", "7"])
    }

    @Test("the writes of a worker whose id another start took over (wants_wakeup, heartbeat, removal) leave the other's row alone; a heartbeat that finds its row gone inserts it again with its own start")
    func displacedWorkersWritesAreFenced() throws {
        let shop = try Shop()
        let connection = try shop.database.connect()
        let mine = try #require(try WorkerRegistry.register(connection, id: "w1", host: "h", pid: 1, version: "v", listening: true, replacing: nil))
        #expect(try WorkerRegistry.register(connection, id: "w1", host: "h", pid: 1, version: "v", listening: true, replacing: nil) == nil,
                "a row with the same host and pid is not this process's")
        func heartbeat(_ startedAt: String, wantsWakeup: Bool = true) throws -> WorkerRegistry.Heartbeat? {
            try WorkerRegistry.upsert(connection, id: "w1", host: "h", pid: 1, version: "v", listening: true, wantsWakeup: wantsWakeup, startedAt: startedAt)
        }
        guard case .written(let written) = try heartbeat(mine) else { Issue.record("the owner's heartbeat was not written"); return }
        #expect(written == mine)

        // Another start with the same host and pid takes the row over (the start-up check's write).
        let seen = try #require(try WorkerRegistry.read(connection, id: "w1"))
        let theirs = try #require(try WorkerRegistry.register(connection, id: "w1", host: "h", pid: 1, version: "v", listening: true, replacing: seen))
        #expect(theirs != mine)
        let row = "SELECT started_at::text, wants_wakeup::text, heartbeat_at::text FROM webhooky.workers WHERE id = 'w1'"
        let before = try shop.connection.query(row).rows

        try WorkerRegistry.setWantsWakeup(connection, id: "w1", startedAt: mine, false)
        #expect(try shop.connection.query(row).rows == before, "the displaced worker flipped the new owner's wants_wakeup")
        guard case .heldBy(let other) = try heartbeat(mine, wantsWakeup: false) else { Issue.record("the displaced heartbeat was written"); return }
        #expect(other.startedAt == theirs)
        try WorkerRegistry.removeAndHandOver(connection, id: "w1", startedAt: mine)
        #expect(try shop.connection.query(row).rows == before, "the displaced worker wrote or removed the new owner's row")

        // The new owner's own writes go through.
        try WorkerRegistry.setWantsWakeup(connection, id: "w1", startedAt: theirs, false)
        #expect(try shop.column("SELECT wants_wakeup::text FROM webhooky.workers") == ["false"])

        // A row removed under a worker (stale during an outage) comes back with its start.
        try shop.connection.execute("DELETE FROM webhooky.workers")
        guard case .written(let again) = try heartbeat(theirs) else { Issue.record("the heartbeat did not insert the row again"); return }
        #expect(again == theirs)
        #expect(try shop.column("SELECT started_at::text FROM webhooky.workers") == [theirs])
        // With a start of its own making (the start-up check could not run), the heartbeat
        // registers the worker with it; a heartbeat whose answer was lost (the row written,
        // the reply gone) finds the row its own the next time, not another worker's.
        try shop.connection.execute("DELETE FROM webhooky.workers")
        let made = WorkerRegistry.startOfOwnMaking()
        guard case .written(let first) = try heartbeat(made) else { Issue.record("the heartbeat did not insert the row"); return }
        #expect(try shop.column("SELECT started_at::text FROM webhooky.workers") == [first])
        #expect(try shop.column("SELECT (started_at = '\(made)'::timestamptz)::text FROM webhooky.workers") == ["true"])
        guard case .written(let second) = try heartbeat(made) else { Issue.record("the worker's own row, written with its made-up start, was taken for another's"); return }
        #expect(second == first)
        guard case .heldBy(let other) = try heartbeat(WorkerRegistry.startOfOwnMaking(now: timespec(tv_sec: 1, tv_nsec: 0))) else {
            Issue.record("a heartbeat with another made-up start took a row it did not write"); return
        }
        #expect(other.startedAt == first)

        // The start-up check registers with the start the worker made up: a registration whose
        // answer was lost is still its own at the first heartbeat.
        try shop.connection.execute("DELETE FROM webhooky.workers")
        let start = WorkerRegistry.startOfOwnMaking()
        _ = try WorkerRegistry.register(connection, id: "w1", host: "h", pid: 1, version: "v", listening: true, startedAt: start, replacing: nil)
        guard case .written = try heartbeat(start) else { Issue.record("the worker's own registration was taken for another's"); return }
    }

    @Test("a start of the worker's own making is this process's clock in UTC, to the microsecond, in a form PostgreSQL reads")
    func startOfOwnMakingIsUTCToTheMicrosecond() throws {
        #expect(WorkerRegistry.startOfOwnMaking(now: timespec(tv_sec: 1_796_203_845, tv_nsec: 7_008_999)) == "2026-12-02 09:30:45.007008+00")
        #expect(WorkerRegistry.startOfOwnMaking(now: timespec(tv_sec: 0, tv_nsec: 0)) == "1970-01-01 00:00:00.000000+00")
        let shop = try Shop()
        try shop.connection.execute("SET TimeZone = 'Asia/Kolkata'")
        #expect(try shop.column("SELECT '\(WorkerRegistry.startOfOwnMaking(now: timespec(tv_sec: 1_796_203_845, tv_nsec: 7_008_999)))'::timestamptz::text")
                == ["2026-12-02 15:00:45.007008+05:30"])
    }

    @Test("a takeover that commits while the heartbeat waits for the row: the heartbeat names the other start, not this worker's own row (which its statement began with)")
    func takeoverDuringTheHeartbeatNamesTheOther() throws {
        let shop = try Shop()
        let mine = try #require(try WorkerRegistry.register(shop.connection, id: "w1", host: "h", pid: 1, version: "v", listening: true, replacing: nil))
        let twin = try shop.database.connect()
        try twin.execute("BEGIN; UPDATE webhooky.workers SET host = 'twin-host', pid = 4242, started_at = clock_timestamp(), heartbeat_at = now() WHERE id = 'w1'")
        // The heartbeat waits for the twin's row lock.
        let found = try shop.committing(twin, whileWaiting: "%INSERT INTO webhooky.workers%") {
            try WorkerRegistry.upsert($0, id: "w1", host: "h", pid: 1, version: "v", listening: true, wantsWakeup: true, startedAt: mine)
        }
        guard case .heldBy(let other)? = try found?.get() else {
            Issue.record("the heartbeat did not find the row held by the twin"); return
        }
        #expect(other.host == "twin-host")
        #expect(other.pid == 4242)
        #expect(other.startedAt != mine)
        #expect(try shop.column("SELECT started_at::text FROM webhooky.workers") == [other.startedAt])
    }
}

/// The start-up decision alone, with no database.
@Suite struct WorkerIDFirstLookTests {
    static func row(host: String = "h1", pid: Int32 = 7, age: Double = 1) -> WorkerRow {
        WorkerRow(host: host, pid: pid, heartbeatAt: "2026-01-01 00:00:00+00", heartbeatAge: age, startedAt: "2026-01-01 00:00:00+00")
    }

    static func look(_ row: WorkerRow?) -> WorkerIDCheck.FirstLook {
        WorkerIDCheck.firstLook(at: row)
    }

    @Test func startsWhenNobodyHoldsTheID() {
        #expect(Self.look(nil) == .start)
    }

    @Test func takesOverFromAWorkerThatIsGone() {
        #expect(Self.look(Self.row(host: "h2", age: 16)) == .takeOver(reason: "its last heartbeat was 16s ago"))
        #expect(Self.look(Self.row(age: 30.5)) == .takeOver(reason: "its last heartbeat was 30.5s ago"))
        #expect(Self.look(Self.row(host: WorkerConfiguration.hostName(), pid: getpid(), age: 16)) == .takeOver(reason: "its last heartbeat was 16s ago"))
    }

    @Test func watchesEveryFreshRowWhateverHostAndPidItNames() {
        #expect(Self.look(Self.row()) == .watch)
        #expect(Self.look(Self.row(host: "h2", age: 14.9)) == .watch)
        #expect(Self.look(Self.row(host: WorkerConfiguration.hostName(), pid: getpid())) == .watch, "this host and pid: another container's")
    }

    @Test func hintForTheDefaultIDSaysItCollidesInContainers() {
        #expect(WorkerIDCheck.hint(for: "prod-1") == "give each worker its own --worker-id, or leave it out: the default is hostname:pid (unless containers share a hostname)")
        let hint = WorkerIDCheck.hint(for: WorkerConfiguration.defaultWorkerID())
        #expect(hint.contains("containers that share a hostname") && !hint.contains("leave it out"), "\(hint)")
    }
}
