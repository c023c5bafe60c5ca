import Foundation
import Glibc
import LocalPostgres

/// A `webhooky run` process started from the built binary, for tests that kill, restart or
/// run several workers.
public final class WorkerProcess: Sendable {
    /// The process id.
    public let pid: Int32
    /// Where its stderr (the log) and stdout go.
    public let logPath: String

    /// The `webhooky` executable beside the running test binary (built by `swift build` into the
    /// same folder, whatever the configuration or build path), else the debug build's.
    public static func executable() throws -> String {
        let testBinary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let candidates = [
            URL(fileURLWithPath: testBinary).deletingLastPathComponent().appendingPathComponent("webhooky").path,
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(".build/debug/webhooky").path,
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw LocalPostgresError("the webhooky executable is not built; run `swift build` (make test does) before the tests")
        }
        return found
    }

    /// Starts `webhooky run` for `database` with `arguments` added.
    public init(database: String, workerID: String, arguments: [String] = []) throws {
        logPath = "/tmp/webhooky-worker-\(getpid())-\(workerID)-\(UInt32.random(in: 0...UInt32.max)).log"
        pid = try ChildProcess.spawn(
            WorkerProcess.executable(),
            ["run", "--database-url", database, "--worker-id", workerID, "--log-level", "debug", "--allow-network", "127.0.0.0/8"] + arguments,
            outputPath: logPath
        )
    }

    deinit {
        Glibc.kill(pid, SIGKILL)
        _ = ChildProcess.wait(pid)
        unlink(logPath)
    }

    /// Sends `signal` (e.g. `SIGKILL`, `SIGTERM`).
    public func send(_ signal: Int32) {
        Glibc.kill(pid, signal)
    }

    /// Waits for the process to end; returns its exit status (128 + signal when killed).
    public func wait() -> Int32 {
        ChildProcess.wait(pid)
    }

    /// The log so far.
    public var log: String { ChildProcess.readFile(logPath) ?? "" }

    /// Reads the log every 50 ms until it contains `text`, for up to `timeout`; returns whether it did.
    public func waitForLog(_ text: String, timeout: Duration = .seconds(15)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !log.contains(text) {
            guard ContinuousClock.now < deadline else { return false }
            usleep(50_000)
        }
        return true
    }

    /// CPU seconds (user + system) the process has used, from /proc.
    public var cpuSeconds: Double {
        guard let stat = ChildProcess.readFile("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
