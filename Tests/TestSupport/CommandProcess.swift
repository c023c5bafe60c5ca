import Foundation
import Glibc
import LocalPostgres

/// A `webhooky` command (preview, tail, status, doctor...) run from the built binary as a child
/// process, with its standard output and standard error kept apart in files.
public final class CommandProcess: Sendable {
    /// The process id.
    public let pid: Int32
    private let outputPath: String
    private let errorPath: String

    /// What a finished command did.
    public struct Outcome: Sendable {
        /// The exit status (128 + the signal number when it was killed).
        public var status: Int32
        /// Everything it printed on standard output.
        public var output: String
        /// Everything it printed on standard error.
        public var errors: String
    }

    /// Starts `webhooky arguments...` with `environment` added to the test's own (stdin is
    /// `/dev/null`). `errorsUnread`: its stderr is a pipe whose reader is gone (`| head` that
    /// ended), so every write there fails (EPIPE), and ``errors`` stays empty.
    public init(_ arguments: [String], environment: [String: String] = [:], errorsUnread: Bool = false) throws {
        let unique = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        outputPath = "/tmp/webhooky-command-\(unique).out"
        errorPath = "/tmp/webhooky-command-\(unique).err"
        let executable = try WorkerProcess.executable()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var unreadPipe: [Int32] = [-1, -1]
        if errorsUnread {
            guard pipe(&unreadPipe) == 0 else { throw LocalPostgresError("pipe: \(String(cString: strerror(errno)))") }
            close(unreadPipe[0])
            posix_spawn_file_actions_adddup2(&actions, unreadPipe[1], 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        defer { if errorsUnread { close(unreadPipe[1]) } }
        // Descriptors of the test process (sockets, the cluster's files) stay out of the child.
        for descriptor in CommandProcess.openDescriptors() where descriptor > 2 {
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        let argv = [executable] + arguments
        let environ = merged.map { "\($0.key)=\($0.value)" }
        var pid: Int32 = 0
        let result = CommandProcess.withCStrings(argv) { argvPointers in
            CommandProcess.withCStrings(environ) { environmentPointers in
                posix_spawn(&pid, executable, &actions, nil, argvPointers, environmentPointers)
            }
        }
        guard result == 0 else {
            throw LocalPostgresError("could not start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    deinit {
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        unlink(outputPath)
        unlink(errorPath)
    }

    /// Runs `webhooky arguments...` to the end (at most `timeout`, then it is killed).
    public static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(60)) throws -> Outcome {
        let process = try CommandProcess(arguments, environment: environment)
        return process.wait(timeout: timeout)
    }

    /// What it printed on standard output so far.
    public var output: String { ChildProcess.readFile(outputPath) ?? "" }

    /// What it printed on standard error so far.
    public var errors: String { ChildProcess.readFile(errorPath) ?? "" }

    /// Sends `signal` (e.g. `SIGINT`, `SIGTERM`).
    public func send(_ signal: Int32) {
        Glibc.kill(pid, signal)
    }

    /// Waits until standard output holds a line for which `condition` is true, or `timeout`
    /// passes; returns the output so far.
    @discardableResult
    public func waitForOutput(timeout: Duration = .seconds(20), until condition: (String) -> Bool) -> String {
        waitFor(\.output, timeout: timeout, until: condition)
    }

    /// Waits until standard error (where the log goes) holds a line for which `condition` is
    /// true, or `timeout` passes; returns it so far.
    @discardableResult
    public func waitForErrors(timeout: Duration = .seconds(20), until condition: (String) -> Bool) -> String {
        waitFor(\.errors, timeout: timeout, until: condition)
    }

    private func waitFor(_ stream: KeyPath<CommandProcess, String>, timeout: Duration, until condition: (String) -> Bool) -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let text = self[keyPath: stream]
            if condition(text) || ContinuousClock.now >= deadline { return text }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Waits for the process to end (killing it after `timeout`) and returns what it did.
    public func wait(timeout: Duration = .seconds(60)) -> Outcome {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { break }
            if result < 0 && errno != EINTR { return Outcome(status: -1, output: output, errors: errors) }
            if ContinuousClock.now >= deadline {
                Glibc.kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let signal = status & 0x7F
        return Outcome(status: signal == 0 ? (status >> 8) & 0xFF : 128 + signal, output: output, errors: errors)
    }

    private static func openDescriptors() -> [Int32] {
        guard let directory = opendir("/proc/self/fd") else { return [] }
        defer { closedir(directory) }
        var descriptors: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let descriptor = Int32(name) { descriptors.append(descriptor) }
        }
        return descriptors
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
        defer { copies.forEach { free($0) } }
        return body(copies)
    }
}
