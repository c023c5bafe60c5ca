import Glibc

/// Runs programs with `posix_spawn` and `waitpid`.
///
/// Foundation's `Process.waitUntilExit()` hangs forever on `pg_ctl start`, whose daemonised
/// server keeps inherited descriptors open; here every inherited descriptor above stderr is
/// marked close-on-exec first, and the child's output goes to a file, never to a pipe.
package enum ChildProcess {
    /// How a finished program ended.
    package struct Outcome: Sendable {
        /// The exit status, or 128 + the signal number when it was killed.
        package var status: Int32
        /// What it printed on stdout and stderr.
        package var output: String
    }

    /// Runs `executable` with `arguments`, waits for it, and returns its status and output.
    package static func run(_ executable: String, _ arguments: [String]) throws(LocalPostgresError) -> Outcome {
        let outputPath = "/tmp/webhooky-spawn-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { unlink(outputPath) }
        let pid = try spawn(executable, arguments, outputPath: outputPath)
        let status = wait(pid)
        return Outcome(status: status, output: readFile(outputPath) ?? "")
    }

    /// Starts `executable` without waiting; stdin is `/dev/null`, stdout and stderr are
    /// appended to `outputPath` (`/dev/null` by default). Returns the child's pid.
    package static func spawn(_ executable: String, _ arguments: [String], outputPath: String = "/dev/null", environment: [String: String]? = nil) throws(LocalPostgresError) -> Int32 {
        markInheritedDescriptorsCloseOnExec()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        let argv = [executable] + arguments
        var pid: Int32 = 0
        let result = withCStrings(argv) { argvPointers in
            guard let environment else {
                return posix_spawn(&pid, executable, &actions, nil, argvPointers, environ)
            }
            return withCStrings(environment.map { "\($0.key)=\($0.value)" }) { environmentPointers in
                posix_spawn(&pid, executable, &actions, nil, argvPointers, environmentPointers)
            }
        }
        guard result == 0 else {
            throw LocalPostgresError("could not start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// Waits for `pid` to end; returns its exit status, or 128 + signal when it was killed.
    package static func wait(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// Sends `signal` to `pid`.
    package static func kill(_ pid: Int32, signal: Int32) {
        _ = Glibc.kill(pid, signal)
    }

    /// The contents of the file at `path` as UTF-8 text, or `nil` if it cannot be read.
    package static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func markInheritedDescriptorsCloseOnExec() {
        guard let directory = opendir("/proc/self/fd") else { return }
        var descriptors: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if let descriptor = Int32(name), descriptor > 2 { descriptors.append(descriptor) }
        }
        closedir(directory)
        for descriptor in descriptors {
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
        defer { copies.forEach { free($0) } }
        return body(copies)
    }
}

/// A failure to create, start or stop a local PostgreSQL cluster.
public struct LocalPostgresError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
