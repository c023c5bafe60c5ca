import Glibc
import Log

/// A private, throwaway PostgreSQL cluster: its own data folder and Unix socket in a temporary
/// folder, no TCP port. Used by `webhooky demo`, the tests and the benchmarks.
///
/// `initdb` refuses to run as root, so when the current user is root every server program runs
/// as the `postgres` OS user (through `runuser`), and the folders are handed to that user.
public final class LocalCluster: Sendable {
    /// How the server is stopped.
    public enum StopMode: String, Sendable {
        /// Waits for nothing: disconnects clients, shuts down cleanly. Default.
        case fast
        /// Like a crash: no clean shutdown; the next start runs crash recovery.
        case immediate
    }

    /// The temporary folder holding everything (`data/`, `socket/`, `server.log`).
    public let directory: String
    /// The folder holding the server's Unix socket; use it as libpq's `host`.
    public let socketDirectory: String
    /// The port number in the socket's name (no TCP listener is opened).
    public let port: Int
    /// The server's log file.
    public let logPath: String
    private let binDirectory: String
    private let serverOptions: String
    private let runAsPostgres: Bool

    /// Creates and starts a cluster.
    ///
    /// - Parameters:
    ///   - name: Part of the temporary folder's name, e.g. `demo` → `/tmp/webhooky-demo-XXXXXX`.
    ///   - durable: `true` keeps PostgreSQL's crash safety (`fsync` on), as benchmarks need;
    ///     `false` (the default) turns `fsync` off for speed, as tests want: a server crash or
    ///     `stop(mode: .immediate)` still loses no committed transaction, an OS crash could.
    ///   - settings: Extra server settings (`-c name=value`).
    ///   - password: When given, the superuser `postgres` gets this password and every
    ///     connection must present it (SCRAM); by default connections are trusted.
    public init(name: String = "cluster", durable: Bool = false, settings: [String: String] = [:], password: String? = nil) throws(LocalPostgresError) {
        LocalCluster.removeAbandonedClusters()
        self.binDirectory = try LocalCluster.findBinDirectory()
        self.runAsPostgres = geteuid() == 0
        var template = Array("/tmp/webhooky-\(name)-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw LocalPostgresError("could not create a temporary folder in /tmp: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: created)
        socketDirectory = directory + "/socket"
        logPath = directory + "/server.log"
        port = 5432
        // No TCP, and a socket only its owner (and root) can reach: trust authentication then
        // admits no other local user.
        var options = [
            "-c listen_addresses=''",
            "-k \(socketDirectory)",
            "-c unix_socket_permissions=0700",
            "-p \(port)",
            "-c max_connections=200",
            "-c shared_buffers=128MB",
        ]
        if !durable { options += ["-c fsync=off", "-c full_page_writes=off"] }
        options += settings.sorted(by: { $0.key < $1.key }).map { "-c \($0.key)=\($0.value)" }
        serverOptions = options.joined(separator: " ")

        do {
            try prepareFolders()
            try writeOwnerFile()
            var initdb = ["-D", dataDirectory, "--no-sync", "-U", "postgres", "-E", "UTF8", "--locale=C"]
            if let password {
                let passwordFile = directory + "/password"
                try writeFile(passwordFile, password + "\n")
                initdb += ["-A", "scram-sha-256", "--pwfile", passwordFile]
            } else {
                initdb += ["-A", "trust"]
            }
            try runServerProgram("initdb", initdb)
            try start()
        } catch {
            destroy()
            throw error
        }
    }

    /// The data folder.
    public var dataDirectory: String { directory + "/data" }

    /// A libpq connection string for `database` as the superuser `postgres`.
    public func conninfo(database: String = "postgres") -> String {
        "host=\(socketDirectory) port=\(port) user=postgres dbname=\(database)"
    }

    /// Starts the server and waits until it accepts connections.
    public func start() throws(LocalPostgresError) {
        try runServerProgram("pg_ctl", ["-D", dataDirectory, "-o", serverOptions, "-l", logPath, "-w", "-t", "60", "start"])
    }

    /// Stops the server.
    public func stop(mode: StopMode = .fast) throws(LocalPostgresError) {
        try runServerProgram("pg_ctl", ["-D", dataDirectory, "-m", mode.rawValue, "-w", "-t", "60", "stop"])
    }

    /// Stops (in `mode`) and starts the server again.
    public func restart(mode: StopMode = .fast) throws(LocalPostgresError) {
        try stop(mode: mode)
        try start()
    }

    /// Stops the server at once and deletes every file of the cluster. Safe to call twice.
    public func destroy() {
        if access(dataDirectory + "/postmaster.pid", F_OK) == 0 {
            _ = try? runServerProgram("pg_ctl", ["-D", dataDirectory, "-m", "immediate", "-w", "stop"])
        }
        _ = try? ChildProcess.run("/bin/rm", ["-rf", directory])
    }

    /// The last `lines` lines of the server log (for error messages).
    public func logTail(lines: Int = 20) -> String {
        let text = ChildProcess.readFile(logPath) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    private func prepareFolders() throws(LocalPostgresError) {
        // Both 0700 (mkdtemp's mode): only the cluster's owner, and root, may enter. As root
        // the folders go to the postgres user, which runs the server.
        guard mkdir(socketDirectory, 0o700) == 0 else {
            throw LocalPostgresError("could not create \(socketDirectory): \(String(cString: strerror(errno)))")
        }
        guard runAsPostgres else { return }
        guard let user = getpwnam("postgres") else {
            throw LocalPostgresError("running as root, but there is no 'postgres' OS user to run PostgreSQL as (initdb refuses root); install postgresql-15 or run as a normal user")
        }
        for path in [directory, socketDirectory] {
            guard chown(path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
                throw LocalPostgresError("could not give \(path) to the postgres user: \(String(cString: strerror(errno)))")
            }
        }
    }

    private func writeOwnerFile() throws(LocalPostgresError) {
        try writeFile(directory + "/owner.pid", "\(getpid())\n")
    }

    private func writeFile(_ path: String, _ text: String) throws(LocalPostgresError) {
        guard let file = fopen(path, "w") else {
            throw LocalPostgresError("could not write \(path): \(String(cString: strerror(errno)))")
        }
        fputs(text, file)
        fclose(file)
        if runAsPostgres, let user = getpwnam("postgres") {
            chown(path, user.pointee.pw_uid, user.pointee.pw_gid)
        }
    }

    private func runServerProgram(_ program: String, _ arguments: [String]) throws(LocalPostgresError) {
        let executable = binDirectory + "/" + program
        let outcome: ChildProcess.Outcome
        if runAsPostgres {
            outcome = try ChildProcess.run(LocalCluster.runuserPath, ["-u", "postgres", "--", executable] + arguments)
        } else {
            outcome = try ChildProcess.run(executable, arguments)
        }
        guard outcome.status == 0 else {
            var message = "\(program) failed (exit status \(outcome.status)):\n\(outcome.output)"
            if program == "pg_ctl" { message += "\nserver log (\(logPath)):\n\(logTail())" }
            throw LocalPostgresError(message)
        }
    }

    private static var runuserPath: String {
        ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first { access($0, X_OK) == 0 } ?? "runuser"
    }

    /// The folder with `initdb` and `pg_ctl`: `$WEBHOOKY_PG_BINDIR`, else the newest
    /// `/usr/lib/postgresql/N/bin` (Debian's layout), else the folder of `pg_ctl` on `PATH`.
    static func findBinDirectory() throws(LocalPostgresError) -> String {
        if let configured = getenv("WEBHOOKY_PG_BINDIR").map({ String(cString: $0) }), !configured.isEmpty {
            return configured
        }
        for version in (12...30).reversed() {
            let candidate = "/usr/lib/postgresql/\(version)/bin"
            if access(candidate + "/initdb", X_OK) == 0 { return candidate }
        }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") where access("\(folder)/pg_ctl", X_OK) == 0 && access("\(folder)/initdb", X_OK) == 0 {
            return String(folder)
        }
        throw LocalPostgresError("PostgreSQL server programs (initdb, pg_ctl) not found; install postgresql-15 (apt-get install postgresql-15) or set WEBHOOKY_PG_BINDIR")
    }

    /// Stops and deletes clusters left behind by processes that died without cleaning up
    /// (their `owner.pid` names a process that no longer exists). Only folders this user made
    /// (owned by it, or by `postgres` when it is root: see ``prepareFolders()``), not links,
    /// and a server only when its process really runs in that folder: anyone can create
    /// `/tmp/webhooky-...` with a `postmaster.pid` naming another process.
    static func removeAbandonedClusters() {
        guard let folder = opendir("/tmp") else { return }
        var owners: Set<uid_t> = [geteuid()]
        if geteuid() == 0, let postgres = getpwnam("postgres") { owners.insert(postgres.pointee.pw_uid) }
        var abandoned: [String] = []
        while let entry = readdir(folder) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            guard name.hasPrefix("webhooky-") else { continue }
            let path = "/tmp/" + name
            var status = stat()
            guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR, owners.contains(status.st_uid),
                  status.st_mode & 0o022 == 0 else { continue }
            guard let text = ChildProcess.readFile(path + "/owner.pid"),
                  let owner = Int32(text.filter(\.isNumber)) else { continue }
            if Glibc.kill(owner, 0) != 0 && errno == ESRCH { abandoned.append(path) }
        }
        closedir(folder)
        guard !abandoned.isEmpty, let binDirectory = try? findBinDirectory() else { return }
        for path in abandoned {
            let data = path + "/data"
            if let text = ChildProcess.readFile(data + "/postmaster.pid"),
               let line = text.split(separator: "\n").first, let server = Int32(line), Glibc.kill(server, 0) == 0 || errno != ESRCH {
                // A live process: stop it only if it is the postmaster of this folder (its
                // working directory is the data folder); otherwise leave the folder alone.
                guard processDirectory(server) == data else { continue }
                let pg_ctl = binDirectory + "/pg_ctl"
                if geteuid() == 0 {
                    _ = try? ChildProcess.run(runuserPath, ["-u", "postgres", "--", pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"])
                } else {
                    _ = try? ChildProcess.run(pg_ctl, ["-D", data, "-m", "immediate", "-w", "stop"])
                }
            }
            _ = try? ChildProcess.run("/bin/rm", ["-rf", path])
        }
    }

    /// The working directory of process `pid`, or `nil` when it cannot be read.
    static func processDirectory(_ pid: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/\(pid)/cwd", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
