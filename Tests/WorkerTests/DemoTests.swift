import Foundation
import Glibc
import LocalPostgres
import Schema
import TestSupport
import Testing

/// `webhooky demo` is a newcomer's first contact: it must run to the end, show both requests,
/// verify the signature, and leave nothing behind.
@Suite(.timeLimit(.minutes(10))) struct DemoTests {
    @Test func theDemoRunsToTheEndAndCleansUp() throws {
        let outcome = try ChildProcess.run(WorkerProcess.executable(), ["demo"])
        #expect(outcome.status == 0, "\(outcome.output)")
        let output = outcome.output
        #expect(output.contains("GET /erp/credit?id=1001&email=jan.novak%2Bvip%40example.cz HTTP/1.1"))
        #expect(output.contains("POST /mailer/vip HTTP/1.1"))
        #expect(output.contains(#""credit":"1250.50""#))
        #expect(output.contains("authentic ✓"))
        #expect(output.contains("succeeded"))
        // The schema in one line, not one per migration (there are dozens).
        #expect(output.contains("applied \(Migrations.all.count) migrations, sql/0001_core.sql to sql/\(Migrations.all.last?.fileName ?? "?"): schema version \(Migrations.latestVersion)"), "\(output)")
        #expect(!output.contains("applied sql/0002"))
        let folder = try #require(output.split(separator: "\n").first { $0.contains("data and socket in ") }?
            .components(separatedBy: "data and socket in ").last)
        #expect(!FileManager.default.fileExists(atPath: folder), "the demo's cluster folder must be removed")
    }

    @Test("Ctrl-C in the middle of the demo stops its PostgreSQL and removes its folder (the server runs detached), also while its stderr is a pipe nobody reads any more (a failed write there loses the line, it does not trap)",
          arguments: [false, true])
    func anInterruptedDemoCleansUp(errorsUnread: Bool) throws {
        let demo = try CommandProcess(["demo"], errorsUnread: errorsUnread)
        let shown = demo.waitForOutput { $0.contains("data and socket in ") && $0.contains("Installing the webhooky schema") }
        let folder = try #require(shown.split(separator: "\n").first { $0.contains("data and socket in ") }?
            .components(separatedBy: "data and socket in ").last)
        demo.send(SIGINT)
        let outcome = demo.wait(timeout: .seconds(30))
        #expect(outcome.status == 130, "\(demo.output)\(demo.errors)")
        if !errorsUnread {
            #expect(demo.errors.contains("webhooky demo: interrupted; PostgreSQL stopped and \(folder) removed"))
        }
        #expect(!FileManager.default.fileExists(atPath: folder), "the demo's cluster folder must be removed")
        // No server of that folder is left running.
        let servers = try ChildProcess.run("/usr/bin/pgrep", ["-f", folder])
        #expect(servers.output.isEmpty, "\(servers.output)")
    }

    @Test("demo --keep prints a psql command and a DATABASE_URL that work from another terminal (webhooky status shows the two webhooks), and Ctrl-C removes everything")
    func aKeptDemoCanBeExplored() throws {
        let demo = try CommandProcess(["demo", "--keep"])
        let shown = demo.waitForOutput(timeout: .seconds(120)) { $0.contains("Press Ctrl-C") }
        let line = try #require(shown.split(separator: "\n").first { $0.contains("DATABASE_URL='") }, "\(shown)")
        let url = try #require(line.components(separatedBy: "DATABASE_URL='").last?.components(separatedBy: "'").first)
        #expect(shown.contains("psql '\(url)'"))
        let status = try CommandProcess.run(["status"], environment: ["DATABASE_URL": url])
        #expect(status.status == 0, "\(status.output)\(status.errors)")
        #expect(status.output.contains("ERP credit sync") && status.output.contains("E-mail tool: VIP tier"), "\(status.output)")
        let folder = try #require(shown.split(separator: "\n").first { $0.contains("data and socket in ") }?
            .components(separatedBy: "data and socket in ").last)
        demo.send(SIGINT)
        _ = demo.wait(timeout: .seconds(30))
        #expect(!FileManager.default.fileExists(atPath: folder), "the demo's cluster folder must be removed")
    }
}
