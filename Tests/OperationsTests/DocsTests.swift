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
        try fencedBlocks(in: file).filter { $0.language == language }.map(\.text)
    }

    /// Every fenced block of a Markdown file with its language (`sql`, `sh`, or empty), in order.
    static func fencedBlocks(in file: String) throws -> [(language: String, text: String)] {
        let text = try String(contentsOf: docs.appendingPathComponent(file), encoding: .utf8)
        var blocks: [(language: String, text: String)] = []
        var current: (language: String, lines: [Substring])? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line.hasPrefix("```") {
                current = (String(line.dropFirst(3)), [])
            } else if let open = current, line == "```" {
                blocks.append((open.language, open.lines.joined(separator: "\n")))
                current = nil
            } else if current != nil {
                current?.lines.append(line)
            }
        }
        return blocks
    }

    /// The `webhooky` commands of an `sh` block that run against a database given in
    /// `DATABASE_URL` and end by themselves (not `run`, `tail`, or those with their own URL).
    static func commands(in block: String) -> [String] {
        block.split(separator: "\n").compactMap { line in
            let command = line.split(separator: "#", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard command.hasPrefix("webhooky "), !command.contains("--database-url"),
                  !command.hasPrefix("webhooky tail"), !command.hasPrefix("webhooky run") || command.contains("--help") else { return nil }
            return command
        }
    }

    /// Runs a documented command as the reader would, with the built binary on the `PATH`.
    static func run(_ command: String, databaseURL: String) throws -> (status: Int32, output: String) {
        let binary = URL(fileURLWithPath: try WorkerProcess.executable()).deletingLastPathComponent().path
        let output = "/tmp/webhooky-docs-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
        defer { unlink(output) }
        let pid = try ChildProcess.spawn("/bin/sh", ["-c", command], outputPath: output,
                                         environment: ["PATH": "\(binary):/usr/bin:/bin", "DATABASE_URL": databaseURL])
        let status = ChildProcess.wait(pid)
        return (status, ChildProcess.readFile(output) ?? "")
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
        #expect(try database.value("SELECT count(*) FROM pg_roles WHERE rolname IN ('webhooky_run', 'integrator')") == "2")
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

    @Test("README's exit statuses of the worker put a malformed connection string under the status run exits with (2, which systemd does not restart), not under 3")
    func readmeExitStatusOfAMalformedConnectionString() throws {
        let run = try CommandProcess.run(["run", "--database-url", "host='unterminated"])
        #expect(run.status == 2, "\(run.errors)")
        let readme = try String(contentsOf: DocsTests.docs.appendingPathComponent("../README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "- **Exit status**: "))
        let rest = readme[start.upperBound...]
        let paragraph = rest[..<(rest.range(of: "\n- ")?.lowerBound ?? rest.endIndex)].replacingOccurrences(of: "\n ", with: "")
        let items = paragraph.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        let item = try #require(items.first { $0.contains("malformed connection") }, "\(paragraph)")
        #expect(item.hasPrefix("\(run.status) "), "\(item)")
    }

    @Test("README names every row webhooky.settings takes, and its example of one is accepted")
    func readmeNamesTheSettings() throws {
        let database = try AdminDatabase()
        let file = try String(contentsOf: DocsTests.docs.appendingPathComponent("../README.md"), encoding: .utf8)
        let named = DocsTests.settingsNamed(in: file.replacingOccurrences(of: "\n  ", with: " "))
        // The schema's own list, from the hint of a name that is no setting.
        let known = DocsTests.knownSettings(database.connection)
        #expect(!known.isEmpty)
        let examples = named.filter { $0.hasPrefix("INSERT INTO webhooky.settings") }
        #expect(examples.count == 1)
        #expect(named.subtracting(examples) == known)
        for example in examples { _ = try database.connection.execute(example) }
    }

    /// The code spans of README's sentence on `webhooky.settings`, up to its `;`.
    static func settingsNamed(in readme: String) -> Set<String> {
        guard let start = readme.range(of: "rows of `webhooky.settings` change them: ") else { return [] }
        let sentence = readme[start.upperBound...].prefix { $0 != ";" }
        let pieces = sentence.components(separatedBy: "`")
        var named: Set<String> = []
        for index in pieces.indices where index % 2 == 1 { named.insert(pieces[index]) }
        return named
    }

    /// The names in the hint of `webhooky.settings`' check: "Settings: a, b, c. For example: ...".
    static func knownSettings(_ connection: Connection) -> Set<String> {
        var hint = ""
        do {
            _ = try connection.execute("INSERT INTO webhooky.settings VALUES ('no_such_setting', '1')")
        } catch {
            hint = error.hint ?? ""
        }
        guard let start = hint.range(of: "Settings: ") else { return [] }
        let list = hint[start.upperBound...].prefix { $0 != "." }
        return Set(list.components(separatedBy: ", "))
    }

    @Test("the worker's login role is named alike in README, dba.md, run --help and deploy/webhooky.env.example")
    func workerRoleIsNamedAlike() throws {
        let root = DocsTests.docs.deletingLastPathComponent()
        let env = try String(contentsOf: root.appendingPathComponent("deploy/webhooky.env.example"), encoding: .utf8)
        let url = try #require(env.split(separator: "\n").first { $0.hasPrefix("DATABASE_URL=") })
        let user = String(url.dropFirst("DATABASE_URL=postgresql://".count).prefix { $0 != "@" })
        #expect(user == "webhooky_run")
        for file in ["README.md", "docs/dba.md"] {
            let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            #expect(text.contains("CREATE ROLE \(user) LOGIN"), "\(file) creates another login role for the worker than the env example uses")
            #expect(!text.contains("postgresql://webhooky@"), "\(file) connects the worker as another role")
        }
        let help = try CommandProcess.run(["run", "--help"]).output
        #expect(!help.contains("postgresql://webhooky@"), "run --help connects as another role")
    }

    @Test("every webhooky command shown in the docs runs (preview, status, doctor, migrate, --help)")
    func commandsRun() throws {
        let database = try AdminDatabase()
        try DocsTests.blocks("sql", in: "admin.md").prefix(2).forEach { try database.connection.execute($0) }  // the two webhooks
        _ = try database.value("SELECT webhooky.send_test(1)")  // event 1
        var ran = 0
        for file in ["admin.md", "dba.md"] {
            for block in try DocsTests.blocks("sh", in: file) {
                for command in DocsTests.commands(in: block) {
                    let (status, output) = try DocsTests.run(command, databaseURL: database.url)
                    #expect(status == 0 || (status == 1 && command.hasPrefix("webhooky doctor")), "\(file): \(command)\n\(output)")
                    ran += 1
                }
            }
        }
        #expect(ran >= 6)
    }

    @Test("dba.md's check_webhooky maps doctor to a Nagios plugin's statuses: a FAIL (no worker) and an unreachable database are CRITICAL (2), a WARN alone WARNING (1), all well OK (0)")
    func nagiosCheck() throws {
        let script = try #require(try DocsTests.blocks("sh", in: "dba.md").first { $0.contains("check_webhooky") }, "dba.md has no check_webhooky")
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver()
        let webhook = try database.addWebhook(url: receiver.baseURL + "/ok", name: "ERP")

        let noWorker = try DocsTests.run(script, databaseURL: database.url)
        #expect(noWorker.status == 2, "\(noWorker.output)")
        #expect(noWorker.output.hasPrefix("WEBHOOKY CRITICAL: FAIL workers no worker alive"), "\(noWorker.output)")
        let unreachable = try DocsTests.run(script, databaseURL: "host=/nonexistent port=1 dbname=shop")
        #expect(unreachable.status == 2, "\(unreachable.output)")
        #expect(unreachable.output.hasPrefix("WEBHOOKY CRITICAL: FAIL connection cannot connect"), "\(unreachable.output)")

        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        _ = try database.value("SELECT webhooky.send_test($1)", [String(webhook)])
        _ = try database.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" }
        let healthy = try DocsTests.run(script, databaseURL: database.url)
        #expect(healthy.status == 0 && healthy.output == "WEBHOOKY OK\n", "\(healthy.output)")

        _ = try database.addDelivery(webhook: webhook, state: "dead", attempts: 12)
        let warning = try DocsTests.run(script, databaseURL: database.url)
        #expect(warning.status == 1, "\(warning.output)")
        #expect(warning.output.hasPrefix("WEBHOOKY WARNING: WARN dead 1 delivery gave up"), "\(warning.output)")
    }

    @Test("admin.md read top to bottom: each command works where it stands, after the SQL above it only")
    func adminRecipesInOrder() throws {
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver()
        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        var ran = 0
        for block in try DocsTests.fencedBlocks(in: "admin.md") {
            _ = try database.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state IN ('pending', 'sending')", timeout: .seconds(10)) { $0 == "0" }
            switch block.language {
            case "sql":
                let sql = block.text.replacingOccurrences(of: "https://erp.example.com", with: receiver.baseURL)
                    .replacingOccurrences(of: "https://mailer.example.com", with: receiver.baseURL)
                try database.connection.execute(sql)
            case "sh":
                for command in DocsTests.commands(in: block.text) {
                    let (status, output) = try DocsTests.run(command, databaseURL: database.url)
                    #expect(status == 0 || (status == 1 && command.hasPrefix("webhooky doctor")), "admin.md: \(command)\n\(output)")
                    ran += 1
                }
            default:
                continue
            }
        }
        #expect(ran >= 3)
    }
}

/// README's receiver recipe, run as a receiver would run it.
extension DocsTests {
    /// README's Python `verify()`, unchanged.
    static func readmeVerifier() throws -> String {
        try #require(try DocsTests.fencedBlocks(in: "../README.md").first { $0.language == "python" && $0.text.contains("def verify(") }?.text,
                     "README has no Python verify()")
    }

    @Test("README's Python verify() accepts the requests the worker sends (a signed POST with non-ASCII text and exact numbers, a GET over its empty body, both signatures of a rotation's overlap, headers in a plain dict as sent) and refuses another webhook's secret and a timestamp over 5 minutes old")
    func readmeVerifierAcceptsWhatTheWorkerSends() throws {
        let verifier = try DocsTests.readmeVerifier()
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver()
        let postSecret = try #require(try database.value("SELECT webhooky.new_secret()"))
        let getSecret = try #require(try database.value("SELECT webhooky.new_secret()"))
        let post = try database.addWebhook(url: receiver.baseURL + "/post",
                                           body: ##"{"email": "#customer.email#", "credit": #customer.credit#, "tier": "#customer.tier.name#"}"##,
                                           secret: postSecret)
        let get = try database.addWebhook(url: receiver.baseURL + "/get?id=#customer.id#", secret: getSecret)
        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        let payload = #"{"customer": {"id": 9007199254740993, "email": "žluť@example.cz", "credit": 12345678901234.56, "tier": {"name": "Gold \"Plus\"\n🎉"}}}"#
        _ = try database.value("SELECT webhooky.send_test($1, $2::jsonb)", [String(post), payload])
        _ = try database.value("SELECT webhooky.send_test($1, $2::jsonb)", [String(get), payload])
        try #require(receiver.waitForRequests(2).count == 2)
        _ = try database.value("SELECT webhooky.rotate_secret($1)", [String(post)])
        let rotated = try #require(try database.value("SELECT secret FROM webhooky.webhooks WHERE id = $1", [String(post)]))
        _ = try database.value("SELECT webhooky.send_test($1, $2::jsonb)", [String(post), payload])
        let requests = receiver.waitForRequests(3)
        try #require(requests.count == 3)
        let byPath = Dictionary(grouping: requests, by: { $0.target.hasPrefix("/post") ? "post" : "get" })
        let posts = try #require(byPath["post"]), gets = try #require(byPath["get"])
        try #require(posts.count == 2 && gets.count == 1)
        #expect(gets[0].method == "GET" && gets[0].body.isEmpty && posts[0].method == "POST")
        #expect(posts[1].header("webhook-signature")?.split(separator: " ").count == 2, "the overlap signs with both secrets")

        // Each case: a request as received, the secrets to try, what verify() must answer for each.
        let cases: [(request: ReceivedRequest, secrets: [String], expected: [Bool])] = [
            (posts[0], [postSecret, getSecret], [true, false]),
            (gets[0], [getSecret, postSecret], [true, false]),
            (posts[1], [rotated, postSecret, getSecret], [true, true, false]),
        ]
        let json = try JSONSerialization.data(withJSONObject: cases.map { item in
            [
                "headers": Dictionary(item.request.headers.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first }),
                "body": Data(item.request.body).base64EncodedString(),
                "secrets": item.secrets,
            ] as [String: Any]
        })
        let folder = "/tmp/webhooky-docs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try json.write(to: URL(fileURLWithPath: folder + "/requests.json"))
        // Fresh as received, then with the clock 301 s past each request's timestamp.
        try (verifier + """

            import json, sys
            for case in json.load(open(sys.argv[1])):
                body = base64.b64decode(case["body"])
                fresh = [verify(secret, case["headers"], body) for secret in case["secrets"]]
                now = time.time
                time.time = lambda: int(case["headers"]["webhook-timestamp"]) + 301
                late = [verify(secret, case["headers"], body) for secret in case["secrets"]]
                time.time = now
                print(" ".join(str(v).lower() for v in fresh), "/", " ".join(str(v).lower() for v in late))

            """).write(toFile: folder + "/verify.py", atomically: false, encoding: .utf8)
        let output = folder + "/output"
        let pid = try ChildProcess.spawn("/bin/sh", ["-c", "python3 \(folder)/verify.py \(folder)/requests.json 2>&1"], outputPath: output,
                                         environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"])
        let status = ChildProcess.wait(pid)
        let printed = ChildProcess.readFile(output) ?? ""
        #expect(status == 0, "\(printed)")
        let expected = cases.map { item in
            item.expected.map(String.init).joined(separator: " ") + " / " + item.expected.map { _ in "false" }.joined(separator: " ")
        }
        #expect(printed.split(separator: "\n").map(String.init) == expected, "\(printed)")
    }
}
