import Foundation
import Glibc
import LocalPostgres
import LoopbackReceiver
import Postgres
import TestSupport
import Testing
@testable import Worker

/// Two workers started with one `--worker-id` would share `claimed_by` (each could give back,
/// take back or record the other's claims): the second refuses to start, a crashed
/// predecessor's row does not stop a restart, and a worker whose id is taken while it runs stops.
@Suite(.timeLimit(.minutes(2))) struct WorkerIDTests {
    @Test("a second worker started with the first's --worker-id refuses to start (exit 5, naming the id, host and pid); the first keeps delivering")
    func secondWorkerWithTheSameIDRefuses() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/twin")
        let first = try WorkerProcess(database: shop.database.conninfo, workerID: "twin", arguments: ReliabilityTests.fastWorker)
        #expect(try shop.waitFor("SELECT pid FROM webhooky.workers WHERE id = 'twin'") { $0 == String(first.pid) } == String(first.pid))
        let host = try #require(try shop.column("SELECT host FROM webhooky.workers").first ?? nil)
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1).count == 1)

        let second = try CommandProcess.run(["run", "--database-url", shop.database.conninfo, "--worker-id", "twin", "--allow-network", "127.0.0.0/8"]
                                            + ReliabilityTests.fastWorker, timeout: .seconds(20))
        #expect(second.status == 5, "\(second.errors)")
        #expect(second.errors.contains("waiting to see whether it is alive before starting"), "\(second.errors)")
        #expect(second.errors.contains("""
            webhooky: error: another worker is running with --worker-id twin (host \(host), pid \(first.pid): its heartbeat advanced while \
            this one waited); give each worker its own --worker-id, or leave it out: the default is hostname:pid
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

    /// A row of a worker that crashed, written as the test says, under the test worker's id.
    struct LeftRow: Sendable, CustomTestStringConvertible {
        var what: String
        /// `nil`: this host.
        var host: String?
        /// `nil`: a process of this host that has ended.
        var pid: Int32?
        var heartbeatAge: String
        /// What the worker logs about it.
        var logged: String
        var testDescription: String { what }
    }

    @Test("a row left by a crashed worker with the same id does not stop a start: the worker takes it over and says why", arguments: [
        LeftRow(what: "a fresh heartbeat of a process of this host that has ended", host: nil, pid: nil, heartbeatAge: "0 s",
                logged: #"reason="its process no longer runs on this host""#),
        LeftRow(what: "another host's, its last heartbeat a minute ago", host: "crashed-elsewhere", pid: 4242, heartbeatAge: "60 s",
                logged: #"reason="its last heartbeat was 60s ago""#),
        LeftRow(what: "another host's with a fresh heartbeat that does not advance", host: "crashed-elsewhere", pid: 4242, heartbeatAge: "0 s",
                logged: #"reason="its heartbeat did not advance in 7s""#),
    ])
    func crashedPredecessorsRowDoesNotStopAStart(row: LeftRow) throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/restart")
        let logs = LogCapture()
        let configuration = shop.workerConfiguration(logs: logs)
        var pid = row.pid ?? 0
        if row.pid == nil {
            pid = try ChildProcess.spawn("/bin/true", [])
            _ = ChildProcess.wait(pid)
        }
        try shop.connection.query("""
            INSERT INTO webhooky.workers (id, host, pid, version, started_at, heartbeat_at, listening)
            VALUES ('test-worker', $1, $2, '1.0.0', now() - interval '1 day', now() - $3::interval, true)
            """, [row.host ?? configuration.host, String(pid), row.heartbeatAge])

        let worker = RunningWorker(configuration)
        defer { worker.stop() }
        #expect(try shop.waitFor("SELECT pid FROM webhooky.workers") { $0 == String(getpid()) } == String(getpid()))
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1).count == 1)
        #expect(try shop.connection.query("SELECT host, started_at > now() - interval '1 minute' FROM webhooky.workers").rows == [[configuration.host, "t"]],
                "the row is this worker's, started now")
        let takeOver = logs.all.filter { $0.contains("took over the worker id from a worker that is gone") }
        #expect(takeOver.count == 1 && takeOver[0].contains("previous_pid=\(pid)") && takeOver[0].contains(row.logged), "\(logs.all)")
        let waited = logs.all.contains { $0.contains("waiting to see whether it is alive") && $0.contains("other_pid=\(pid)") }
        #expect(waited == (row.logged.contains("did not advance")), "only a fresh row of another host is watched")
    }

    @Test("a worker whose id another process takes over while it runs stops (exit 5, the other named) without overwriting or removing the other's row")
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
        try shop.connection.execute("UPDATE webhooky.workers SET host = 'twin-host', pid = 4242, heartbeat_at = now()")
        let (stoppedInTime, error) = worker.waitUntilFinished(timeout: .seconds(15))
        #expect(stoppedInTime, "the worker went on sharing its id")
        #expect(error?.code == .workerIDInUse)
        #expect(error?.exitStatus == 5)
        #expect(error?.message == """
            another worker took over --worker-id test-worker while this one ran (host twin-host, pid 4242); \
            give each worker its own --worker-id, or leave it out: the default is hostname:pid
            """)
        #expect(logs.all.filter { $0.contains("another worker took over this worker id; stopping") && $0.contains("other_pid=4242") }.count == 1)
        #expect(try shop.connection.query("SELECT host, pid FROM webhooky.workers").rows == [["twin-host", "4242"]], "the other's row is left alone")
    }
}

/// The start-up decision alone, with no database.
@Suite struct WorkerIDFirstLookTests {
    static func row(host: String = "h1", pid: Int32 = 7, age: Double = 1) -> WorkerRow {
        WorkerRow(host: host, pid: pid, heartbeatAt: "2026-01-01 00:00:00+00", heartbeatAge: age)
    }

    static func look(_ row: WorkerRow?, running: Bool = true) -> WorkerIDCheck.FirstLook {
        WorkerIDCheck.firstLook(at: row, host: "h1", pid: 100, isRunning: { _ in running })
    }

    @Test func startsWhenNobodyOrThisProcessHoldsTheID() {
        #expect(Self.look(nil) == .start)
        #expect(Self.look(Self.row(pid: 100)) == .start)
    }

    @Test func takesOverFromAProcessThatIsGone() {
        #expect(Self.look(Self.row(), running: false) == .takeOver(reason: "its process no longer runs on this host"))
        #expect(Self.look(Self.row(host: "h2", age: 16)) == .takeOver(reason: "its last heartbeat was 16s ago"))
        #expect(Self.look(Self.row(age: 30.5)) == .takeOver(reason: "its last heartbeat was 30.5s ago"))
    }

    @Test func watchesAFreshRowThatMayBeAlive() {
        #expect(Self.look(Self.row()) == .watch, "a running pid of this host")
        #expect(Self.look(Self.row(host: "h2"), running: false) == .watch, "another host's pid cannot be checked here")
        #expect(Self.look(Self.row(host: "h2", age: 14.9)) == .watch)
    }
}
