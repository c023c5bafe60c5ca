import Foundation
import Glibc
@testable import LocalPostgres
import Testing

/// The private clusters of the demo and the tests must be private, and cleaning up after dead
/// ones must not touch anything else.
@Suite(.timeLimit(.minutes(10))) struct LocalClusterTests {
    private func mode(_ path: String) -> mode_t {
        var status = stat()
        return stat(path, &status) == 0 ? status.st_mode & 0o777 : 0o7777
    }

    @Test("only the cluster's owner (and root) can reach its socket: trust authentication admits no other local user")
    func socketIsPrivate() throws {
        let cluster = try LocalCluster(name: "private")
        defer { cluster.destroy() }
        #expect(mode(cluster.directory) == 0o700)
        #expect(mode(cluster.socketDirectory) == 0o700)
        #expect(mode(cluster.socketDirectory + "/.s.PGSQL.\(cluster.port)") == 0o700)
    }

    @Test("an abandoned-looking folder that another user made, or whose postmaster.pid names another process, is left alone")
    func cleanUpTouchesOnlyItsOwnClusters() throws {
        // A process standing for the host's real postmaster: as root, one of the postgres user,
        // which the clean-up's pg_ctl (run as postgres) could signal.
        let victim = geteuid() == 0
            ? try ChildProcess.spawn("/usr/bin/setpriv", ["--reuid=postgres", "--regid=postgres", "--clear-groups", "/bin/sleep", "60"])
            : try ChildProcess.spawn("/bin/sleep", ["60"])
        defer {
            ChildProcess.kill(victim, signal: SIGKILL)
            _ = ChildProcess.wait(victim)
        }
        // Running, not a zombie (it stays in the process table, unwaited, once killed).
        let isRunning = { (ChildProcess.readFile("/proc/\(victim)/stat") ?? "").split(separator: ")").last?.split(separator: " ").first.map { $0 != "Z" } ?? false }
        Thread.sleep(forTimeInterval: 0.2)  // setpriv has become sleep

        func fakeCluster(ownedBy owner: uid_t?) throws -> String {
            var template = Array("/tmp/webhooky-fake-XXXXXX".utf8CString)
            let path = String(cString: try #require(mkdtemp(&template)))
            try FileManager.default.createDirectory(atPath: path + "/data", withIntermediateDirectories: false)
            try "999999\n".write(toFile: path + "/owner.pid", atomically: true, encoding: .utf8)  // a dead owner
            try "\(victim)\n\(path)/data\n".write(toFile: path + "/data/postmaster.pid", atomically: true, encoding: .utf8)
            if let owner { _ = try? ChildProcess.run("/bin/chown", ["-R", "\(owner)", path]) }
            return path
        }
        let someoneElses = try fakeCluster(ownedBy: 65534)  // nobody
        let mineWithAForeignPID = try fakeCluster(ownedBy: nil)
        defer {
            for path in [someoneElses, mineWithAForeignPID] { _ = try? ChildProcess.run("/bin/rm", ["-rf", path]) }
        }

        LocalCluster.removeAbandonedClusters()
        #expect(isRunning(), "a process named in a postmaster.pid that is not that folder's server is never stopped")
        #expect(FileManager.default.fileExists(atPath: someoneElses), "another user's folder is left alone")
        #expect(FileManager.default.fileExists(atPath: mineWithAForeignPID), "a folder whose named server is someone else's process is left alone")

        // A real abandoned folder of this user, its server gone: removed.
        try "\(999_998)\n\(mineWithAForeignPID)/data\n".write(toFile: mineWithAForeignPID + "/data/postmaster.pid", atomically: true, encoding: .utf8)
        LocalCluster.removeAbandonedClusters()
        #expect(!FileManager.default.fileExists(atPath: mineWithAForeignPID))
        #expect(isRunning())
    }
}
