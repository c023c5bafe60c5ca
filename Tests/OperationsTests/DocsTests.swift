import Foundation
import LocalPostgres
import LoopbackReceiver
import Postgres
import TestSupport
import Testing

/// The recipes in docs/ work: every SQL block runs, in order, on a fresh installation with a
/// worker sending to a local receiver, and every `webhooky` command shown runs.
@Suite(.timeLimit(.minutes(10))) struct DocsTests {
    static let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("docs")

    /// The fenced blocks of `language` in a Markdown file, in order.
    static func blocks(_ language: String, in file: String) throws -> [String] {
        let text = try String(contentsOf: docs.appendingPathComponent(file), encoding: .utf8)
        var blocks: [String] = []
        var current: [Substring]? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```\(language)" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append((current ?? []).joined(separator: "\n"))
                current = nil
            } else if current != nil {
                current?.append(line)
            }
        }
        return blocks
    }

    @Test("every SQL block of admin.md, then of dba.md, runs on a fresh installation", arguments: [["admin.md", "dba.md"]])
    func sqlBlocksRun(files: [String]) throws {
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver()
        // The reader's application role, which dba.md grants webhooky_emitter to.
        try database.connection.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'shop_app') THEN CREATE ROLE shop_app; END IF; END $$")
        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        var count = 0
        for file in files {
            for block in try DocsTests.blocks("sql", in: file) {
                // Deliveries go to the receiver; each block starts once the worker is done with the last.
                let sql = block.replacingOccurrences(of: "https://erp.example.com", with: receiver.baseURL)
                    .replacingOccurrences(of: "https://mailer.example.com", with: receiver.baseURL)
                _ = try database.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state IN ('pending', 'sending')", timeout: .seconds(10)) { $0 == "0" }
                do {
                    try database.connection.execute(sql)
                } catch {
                    Issue.record("\(file): this block fails: \(error)\n\(block)")
                    _ = try? database.connection.execute("ROLLBACK")
                }
                count += 1
            }
        }
        #expect(count >= 15)
        #expect(try database.value("SELECT count(*) FROM webhooky.deliveries WHERE is_test") == "3")
        #expect(receiver.requests.count >= 4, "the tests and the redelivery were sent")
        #expect(try database.value("SELECT count(*) FROM pg_roles WHERE rolname IN ('webhooky', 'integrator')") == "2")
    }

    @Test("README's example on the reference domain records the two events its comments promise")
    func readmeReferenceDomainExample() throws {
        let database = try AdminDatabase()
        let block = try #require(try DocsTests.blocks("sql", in: "../README.md").first { $0.contains("INSERT INTO ellity.eshops") })
        #expect(block.hasPrefix("BEGIN;") && block.hasSuffix("ROLLBACK;"), "nothing of the example is kept or sent")
        // Run up to its ROLLBACK, look at what it recorded, then roll back.
        try database.connection.execute(block.replacingOccurrences(of: "ROLLBACK;", with: ""))
        let events = try database.column("SELECT event FROM webhooky.events ORDER BY id")
        try database.connection.execute("ROLLBACK")
        #expect(events == ["customer.credit_changed", "customer.tier_changed"])
    }

    @Test("every webhooky command shown in the docs runs (preview, status, doctor, migrate, --help)")
    func commandsRun() throws {
        let database = try AdminDatabase()
        try DocsTests.blocks("sql", in: "admin.md").prefix(2).forEach { try database.connection.execute($0) }  // the two webhooks
        _ = try database.value("SELECT webhooky.send_test(1)")  // event 1
        let binary = URL(fileURLWithPath: try WorkerProcess.executable()).deletingLastPathComponent().path
        var ran = 0
        for file in ["admin.md", "dba.md"] {
            for block in try DocsTests.blocks("sh", in: file) {
                for line in block.split(separator: "\n") {
                    let command = line.split(separator: "#", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                    guard command.hasPrefix("webhooky "), !command.contains("--database-url"),
                          !command.hasPrefix("webhooky tail"), !command.hasPrefix("webhooky run") || command.contains("--help") else { continue }
                    let output = "/tmp/webhooky-docs-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
                    defer { unlink(output) }
                    let pid = try ChildProcess.spawn("/bin/sh", ["-c", command], outputPath: output,
                                                     environment: ["PATH": "\(binary):/usr/bin:/bin", "DATABASE_URL": database.url])
                    let status = ChildProcess.wait(pid)
                    #expect(status == 0 || (status == 1 && command.hasPrefix("webhooky doctor")), "\(file): \(command)\n\(ChildProcess.readFile(output) ?? "")")
                    ran += 1
                }
            }
        }
        #expect(ran >= 6)
    }
}
