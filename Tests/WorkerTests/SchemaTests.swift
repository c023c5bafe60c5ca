import Foundation
import LocalPostgres
import Postgres
@testable import Schema
import Synchronization
import Templates
import TestSupport
import Testing
import Worker

/// Installing, upgrading and checking the schema; the SQL interface's own rules.
@Suite(.timeLimit(.minutes(10))) struct SchemaTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func everyMigrationFileIsEmbeddedInOrder() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.repository.appendingPathComponent("sql").path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files == Migrations.all.map(\.fileName))
        #expect(Migrations.all.map(\.version) == Array(1...Migrations.all.count))
        for migration in Migrations.all {
            let text = try String(contentsOf: Self.repository.appendingPathComponent("sql/" + migration.fileName), encoding: .utf8)
            #expect(text == migration.sql, "the binary embeds the file as it is in sql/")
        }
    }

    @Test func migrateInstallsThenHasNothingToDo() throws {
        let database = try TestCluster.newEmptyDatabase()
        let connection = try database.connect()
        let migrator = Migrator(connection: connection)
        #expect(try migrator.pending().map(\.version) == Migrations.all.map(\.version))
        #expect(try migrator.migrate().map(\.version) == Migrations.all.map(\.version))
        #expect(try migrator.migrate().isEmpty)
        #expect(try migrator.appliedVersions() == Migrations.all.map(\.version))
        #expect(throws: Never.self) { try migrator.requireCurrent() }
    }

    @Test("every function, table and view of the schema has a COMMENT ON, as the README says (\\df+ webhooky.* lists them)")
    func everyObjectSaysWhatItIs() throws {
        let connection = try TestCluster.newDatabase().connect()
        let uncommented = try connection.column("""
            SELECT p.oid::regprocedure::text FROM pg_proc p
             WHERE p.pronamespace = 'webhooky'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
            UNION ALL
            SELECT c.oid::regclass::text FROM pg_class c
             WHERE c.relnamespace = 'webhooky'::regnamespace AND c.relkind IN ('r', 'v', 'm') AND obj_description(c.oid, 'pg_class') IS NULL
             ORDER BY 1
            """)
        #expect(uncommented == [])
        // A comment that says what no longer holds is worse than none: disabled webhooks' pending
        // deliveries have not been parked at 'infinity' since 0002.
        let nextAttempt = try connection.column("SELECT col_description('webhooky.deliveries'::regclass, attnum) FROM pg_attribute WHERE attrelid = 'webhooky.deliveries'::regclass AND attname = 'next_attempt_at'")
        #expect(nextAttempt.first??.contains("infinity") == false, "\(nextAttempt)")
    }

    @Test("an upgrade that needs a lock held by an application's open transaction gives up after 1 s per try, rolled back, so the application's emits never queue behind it for longer; once that transaction ends, the upgrade goes through")
    func upgradeDoesNotQueueTheApplicationBehindALock() throws {
        let database = try TestCluster.newEmptyDatabase()
        let migrating = try database.connect()
        // Version 24: migration 0025 recreates the row-level security policies of
        // webhooky.webhooks and webhooky.events, which takes their ACCESS EXCLUSIVE lock.
        try Migrator(connection: migrating, migrations: Array(Migrations.all.prefix(24))).migrate()
        let application = try database.connect()
        try application.execute("""
            INSERT INTO webhooky.event_types (name) VALUES ('order.paid');
            INSERT INTO webhooky.webhooks (name, event, url) VALUES ('ERP', 'order.paid', 'https://erp.example.com/orders')
            """)
        // An application transaction that emitted and is still open (a slow request, a batch job).
        try application.execute("BEGIN")
        try application.query("SELECT webhooky.emit('order.paid', '{}')")

        let outcome = Mutex<String?>(nil)
        let finished = DispatchSemaphore(value: 0)
        let conninfo = database.conninfo
        Thread {
            defer { finished.signal() }
            do {
                var migrator = Migrator(connection: try Connection(conninfo: conninfo))
                migrator.lockTries = 3
                migrator.lockRetryPause = .milliseconds(300)
                try migrator.migrate()
                outcome.withLock { $0 = "applied" }
            } catch {
                outcome.withLock { $0 = "\(error)" }
            }
        }.start()
        Thread.sleep(forTimeInterval: 0.5)  // the migration waits for its lock by now

        // Another change of the application emits meanwhile. Without a lock timeout it waited
        // behind the migration, which waited for the open transaction: for as long as that
        // stayed open (here for ever, but for the statement timeout).
        let other = try database.connect()
        try other.execute("SET statement_timeout = '15s'")
        let start = ContinuousClock.now
        #expect(throws: Never.self) { try other.query("SELECT webhooky.emit('order.paid', '{}')") }
        let waited = ContinuousClock.now - start
        #expect(waited < .seconds(3), "an emit waited \(waited) behind the migration")

        #expect(finished.wait(timeout: .now() + 30) == .success)
        let message = outcome.withLock { $0 } ?? "still running"
        #expect(message.contains("0025_history_stays_with_its_account.sql waited 1s for a lock 3 times and was rolled back"), "\(message)")
        #expect(message.contains("pid \(try application.query("SELECT pg_backend_pid()").scalar.flatMap { $0 } ?? "?") (role"), "names the open transaction: \(message)")
        #expect(try migrating.query("SELECT max(version) FROM webhooky.migrations").scalar == "24", "nothing of 0025 applied")

        try application.execute("COMMIT")
        // A caller's own lock_timeout comes back afterwards, not the session's default.
        try migrating.execute("SET lock_timeout = '7s'")
        #expect(try Migrator(connection: migrating).migrate().first?.version == 25)
        #expect(try migrating.query("SELECT max(version) FROM webhooky.migrations").scalar == String(Migrations.latestVersion))
        #expect(try migrating.query("SHOW lock_timeout").scalar == "7s", "the session's own lock_timeout again")
    }

    @Test("a migration that ran long before it ran out of its lock timeout is not tried again (its work, an index built on a large table, would be done again each time), and says so; migrate --lock-timeout 0 waits for the lock instead, and a value that is no duration is a usage error")
    func aLongTryIsNotRepeated() throws {
        let database = try TestCluster.newEmptyDatabase()
        let migrating = try database.connect()
        try Migrator(connection: migrating, migrations: Array(Migrations.all.prefix(24))).migrate()
        let application = try database.connect()
        try application.execute("BEGIN")
        try application.query("SELECT count(*) FROM webhooky.webhooks")  // holds a lock 0025 needs

        var migrator = Migrator(connection: migrating)
        migrator.longestRetriedTry = .zero  // every try counts as long here
        migrator.lockTimeout = .milliseconds(200)
        var retries = 0
        #expect {
            try migrator.migrate(retrying: { _ in retries += 1 })
        } throws: { error in
            "\(error)".contains("0025_history_stays_with_its_account.sql ran 0s and then waited 200ms for a lock; it was rolled back (nothing of it was applied) and not tried again, since its work would be done again")
                && "\(error)".contains("webhooky migrate --lock-timeout 0 waits for it")
        }
        #expect(retries == 0)
        #expect(try migrating.query("SELECT max(version) FROM webhooky.migrations").scalar == "24")
        // The wait that ended a try is not its work: a quick migration behind a long lock
        // timeout is tried again.
        migrator.longestRetriedTry = .milliseconds(200)
        migrator.lockTimeout = .milliseconds(300)
        migrator.lockTries = 2
        migrator.lockRetryPause = .milliseconds(50)
        #expect {
            try migrator.migrate(retrying: { _ in retries += 1 })
        } throws: { error in
            "\(error)".contains("0025_history_stays_with_its_account.sql waited 300ms for a lock 2 times and was rolled back")
        }
        #expect(retries == 1)

        let bad = try CommandProcess.run(["migrate", "--database-url", database.conninfo, "--lock-timeout", "soon"])
        #expect(bad.status == 2)
        #expect(bad.errors.contains("--lock-timeout must be a duration such as 500ms, 5s, 2m, 1h or 1d"), "\(bad.errors)")
        // Beyond what lock_timeout holds, or under a millisecond (which rounded to 0, no bound).
        for value in ["30d", "0.4ms"] {
            let outside = try CommandProcess.run(["migrate", "--database-url", database.conninfo, "--lock-timeout", value])
            #expect(outside.status == 2)
            #expect(outside.errors.contains("--lock-timeout must be 0 (no bound) or from 1ms to 24d, not \"\(value)\""), "\(outside.errors)")
        }

        // --lock-timeout 0: the upgrade waits for the open transaction and then goes through.
        let waiting = try CommandProcess(["migrate", "--database-url", database.conninfo, "--lock-timeout", "0"])
        Thread.sleep(forTimeInterval: 2.5)  // longer than the default timeout and its first retry
        try application.execute("COMMIT")
        let outcome = waiting.wait(timeout: .seconds(60))
        #expect(outcome.status == 0, "\(outcome.output)\(outcome.errors)")
        #expect(!outcome.output.contains("trying"), "it waited, it did not retry: \(outcome.output)")
        #expect(try migrating.query("SELECT max(version) FROM webhooky.migrations").scalar == String(Migrations.latestVersion))
    }

    @Test("a migration that PostgreSQL ends to break a deadlock with an application's transaction is rolled back and tried again, and says why: it failed with 'deadlock detected'")
    func aDeadlockedMigrationIsTriedAgain() throws {
        let database = try TestCluster.newEmptyDatabase()
        let migrating = try database.connect()
        try Migrator(connection: migrating).migrate()
        try migrating.execute("CREATE TABLE public.first (x int); CREATE TABLE public.second (x int)")

        var migrator = Migrator(connection: migrating, migrations: Migrations.all + [Self.lockingTwoTables(Migrations.latestVersion + 1)])
        migrator.lockRetryPause = .milliseconds(50)
        var retries: [Migrator.Retry] = []
        let applied = try Self.againstADeadlock(database) { try migrator.migrate(retrying: { retries.append($0) }) }
        #expect(applied.map(\.version) == [Migrations.latestVersion + 1])
        #expect(retries.map(\.attempt) == [2])
        #expect(retries.map(\.cause) == [.deadlock])
        #expect(try migrating.query("SELECT max(version) FROM webhooky.migrations").scalar == String(Migrations.latestVersion + 1))

        // Out of tries: the error says it was a deadlock, not a lock held by someone else.
        migrator = Migrator(connection: migrating, migrations: Migrations.all + [1, 2].map { Self.lockingTwoTables(Migrations.latestVersion + $0) })
        migrator.lockTries = 1
        try Self.againstADeadlock(database) {
            #expect {
                try migrator.migrate()
            } throws: { error in
                "\(error)".contains("locks_two_tables.sql was ended by a deadlock with another transaction once and was rolled back (nothing of it was applied): "
                                    + "it and another transaction each waited for a lock the other held")
                    && "\(error)".contains("Run webhooky migrate again; if it keeps happening, a job of your application takes the same tables' locks in the other order")
                    && !"\(error)".contains("--lock-timeout 0")
            }
        }
    }

    /// A migration that locks table first, then second (after 0.5 s), and is the one ended
    /// when that makes a deadlock.
    static func lockingTwoTables(_ version: Int) -> Migration {
        Migration(version: version, name: "locks_two_tables", sql: """
            BEGIN;
            DO $$ BEGIN PERFORM webhooky.begin_migration(\(version), 'locks_two_tables'); END $$;
            SET LOCAL deadlock_timeout = '100ms';  -- this one is ended, not the application's
            LOCK TABLE public.first;
            SELECT pg_sleep(0.5);
            LOCK TABLE public.second;
            COMMIT;
            """)
    }

    /// Runs `migrate` while an application's transaction holds table second and, once the
    /// migration holds first, asks for first: a deadlock.
    static func againstADeadlock<T>(_ database: TestDatabase, _ migrate: () throws -> T) throws -> T {
        let conninfo = database.conninfo
        let holdsSecond = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        Thread {
            defer { finished.signal() }
            do {
                let application = try Connection(conninfo: conninfo)
                try application.execute("BEGIN; SET LOCAL deadlock_timeout = '30s'; LOCK TABLE public.second")
                holdsSecond.signal()
                while try application.query("""
                    SELECT count(*) FROM pg_locks WHERE relation = 'public.first'::regclass AND granted AND pid <> pg_backend_pid()
                    """).scalar == "0" { Thread.sleep(forTimeInterval: 0.01) }
                try application.execute("LOCK TABLE public.first")
                try application.execute("COMMIT")
            } catch {
                failure.withLock { $0 = "\(error)" }
                holdsSecond.signal()
            }
        }.start()
        holdsSecond.wait()
        let result = try migrate()
        finished.wait()
        #expect(failure.withLock { $0 } == nil)
        return result
    }

    @Test("a superuser upgrading the database owner's installation migrates as that owner: every object keeps one owner, and the owner's prune and grant_roles still work")
    func upgradeByASuperuserKeepsTheOwner() throws {
        let database = try TestCluster.newEmptyDatabase()
        let superuser = try database.connect()
        let owner = "owner_\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try superuser.execute("CREATE ROLE \(owner) LOGIN; ALTER DATABASE \(database.name) OWNER TO \(owner)")
        let asOwner = try Connection(conninfo: database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(owner)"))
        // Installed by the database owner at version 12, upgraded by the superuser.
        try Migrator(connection: asOwner, migrations: Array(Migrations.all.prefix(12))).migrate()
        #expect(try Migrator(connection: superuser).installedBy()?.isMember == true)
        try Migrator(connection: superuser).migrate()
        #expect(try superuser.query("SELECT current_user").scalar == "postgres", "the superuser's session is itself again")
        let others = try superuser.query("""
            SELECT c.relname || ' ' || pg_get_userbyid(c.relowner) FROM pg_class c
             WHERE c.relnamespace = 'webhooky'::regnamespace AND pg_get_userbyid(c.relowner) <> $1
            UNION ALL
            SELECT p.proname || ' ' || pg_get_userbyid(p.proowner) FROM pg_proc p
             WHERE p.pronamespace = 'webhooky'::regnamespace AND pg_get_userbyid(p.proowner) <> $1
            """, [owner]).rows.compactMap { $0[0] }
        #expect(others.isEmpty, "objects of the schema owned by another role than its installer: \(others)")
        // Without the SET ROLE: "permission denied for function first_id_since" (prune, owned by
        // the owner, calls a function the superuser created) and "permission denied for table role_grants".
        #expect(throws: Never.self) { try asOwner.query("SELECT * FROM webhooky.prune()") }
        #expect(throws: Never.self) { try asOwner.query("SELECT webhooky.grant_roles()") }
        #expect(throws: Never.self) { try Migrator(connection: asOwner).requireCurrent() }
    }

    @Test("webhooky migrate on a schema at version 49 gives the same functions (definition, owner rights, search_path, EXECUTE grants, comment), tables and views (grants, column grants, comments), policies, triggers and role_grants rows as a fresh install")
    func anUpgradeGivesWhatAFreshInstallGives() throws {
        func catalog(_ database: TestDatabase) throws -> [[String?]] {
            try database.connect().query("""
                SELECT 'function', p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.prosecdef::text, p.proconfig::text,
                       p.proacl::text, obj_description(p.oid, 'pg_proc')
                  FROM pg_proc p WHERE p.pronamespace = 'webhooky'::regnamespace
                UNION ALL
                SELECT 'relation', c.relname, c.relkind::text, c.relacl::text, obj_description(c.oid, 'pg_class'),
                       (SELECT string_agg(a.attname || ' ' || coalesce(a.attacl::text, '') || ' ' || coalesce(col_description(c.oid, a.attnum), ''), '; ' ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                       CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END
                  FROM pg_class c WHERE c.relnamespace = 'webhooky'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S')
                UNION ALL
                SELECT 'policy', p.tablename || ' ' || p.policyname, p.roles::text, p.cmd, p.qual, p.with_check, NULL
                  FROM pg_policies p WHERE p.schemaname = 'webhooky'
                UNION ALL
                SELECT 'trigger', t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text, NULL, NULL, NULL
                  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                 WHERE c.relnamespace = 'webhooky'::regnamespace AND NOT t.tgisinternal
                UNION ALL
                SELECT 'role_grant', g.position::text, g.role_name, g.statement, NULL, NULL, NULL FROM webhooky.role_grants g
                 ORDER BY 1, 2, 3
                """).rows
        }
        let fresh = try TestCluster.newEmptyDatabase()
        try Migrator(connection: fresh.connect()).migrate()
        let older = try TestCluster.newEmptyDatabase()
        let connection = try older.connect()
        try Migrator(connection: connection, migrations: Array(Migrations.all.prefix { $0.version <= 49 })).migrate()
        try Migrator(connection: connection).migrate()
        let (installed, upgraded) = (try catalog(fresh), try catalog(older))
        #expect(installed.count > 100)
        #expect(upgraded.filter { !installed.contains($0) } == [], "only after an upgrade")
        #expect(installed.filter { !upgraded.contains($0) } == [], "only in a fresh install")
    }

    @Test func aNewerSchemaIsRefused() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        try connection.execute("INSERT INTO webhooky.migrations (version, name) VALUES (999, 'from the future')")
        let migrator = Migrator(connection: connection)
        #expect(throws: SchemaError.self) { try migrator.migrate() }
        do {
            try migrator.requireCurrent()
            Issue.record("a newer schema was accepted")
        } catch let error as SchemaError {
            #expect(error.code == .newer)
            #expect(error.message.contains("version 999"))
            #expect(error.message.contains("upgrade webhooky"))
        }
    }

    @Test func theWorkerRefusesADatabaseWithoutTheSchema() throws {
        let database = try TestCluster.newEmptyDatabase()
        let worker = RunningWorker(WorkerConfiguration(databaseURL: database.conninfo))
        let outcome = worker.waitUntilFinished(timeout: .seconds(20))
        #expect(outcome.stoppedInTime)
        #expect(outcome.error?.code == .schemaMismatch)
        #expect(outcome.error?.exitStatus == 4)
        #expect(outcome.error?.message == "the webhooky schema is not installed in database \(database.name); run \"webhooky migrate\" first (or point --database-url at the right database)")
    }

    @Test("a worker told not to wait for its database (startupWait zero) refuses one it cannot reach")
    func theWorkerRefusesAnUnreachableDatabase() throws {
        var configuration = WorkerConfiguration(databaseURL: "host=/nonexistent-webhooky-socket-dir dbname=x connect_timeout=2")
        configuration.startupWait = .zero
        let worker = RunningWorker(configuration)
        let outcome = worker.waitUntilFinished(timeout: .seconds(20))
        #expect(outcome.stoppedInTime)
        #expect(outcome.error?.code == .databaseUnavailable)
        #expect(outcome.error?.exitStatus == 3)
        #expect(outcome.error?.message.hasPrefix("cannot connect to the database: ") == true)
    }

    @Test("psql -X -v ON_ERROR_STOP=1 -f installs the same schema file by file, and refuses to run a file twice")
    func psqlAppliesTheFiles() throws {
        let database = try TestCluster.newEmptyDatabase()
        let psql = try #require(["/usr/bin/psql", "/usr/lib/postgresql/15/bin/psql"].first { FileManager.default.isExecutableFile(atPath: $0) })
        func apply(_ path: String) throws -> ChildProcess.Outcome {
            try ChildProcess.run(psql, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database.conninfo, "-f", Self.repository.appendingPathComponent(path).path])
        }
        // Out of order: refused, nothing applied.
        if Migrations.all.count > 1 {
            let early = try apply("sql/" + Migrations.all[1].fileName)
            #expect(early.status != 0)
        }
        for migration in Migrations.all {
            let outcome = try apply("sql/" + migration.fileName)
            #expect(outcome.status == 0, "\(migration.fileName): \(outcome.output)")
        }
        let again = try apply("sql/0001_core.sql")
        #expect(again.status != 0)
        #expect(again.output.contains("Webhooky migration 0001 (core) is already applied to this database"))
        #expect(again.output.contains("Run \"webhooky migrate\""))
        if let last = Migrations.all.last, last.version > 1 {
            let twice = try apply("sql/" + last.fileName)
            #expect(twice.output.contains("is already applied to this database"))
        }
        let connection = try database.connect()
        #expect(throws: Never.self) { try Migrator(connection: connection).requireCurrent() }
        let domain = try apply("sql/examples/ellity.sql")
        #expect(domain.status == 0, "\(domain.output)")
    }

    @Test("docs/dba.md's loop that applies the files by hand installs, does nothing when run again, and upgrades an older schema: it starts after the version installed")
    func theDocumentedPsqlLoopUpgrades() throws {
        let psql = try #require(["/usr/bin/psql", "/usr/lib/postgresql/15/bin/psql"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let dba = try String(contentsOf: Self.repository.appendingPathComponent("docs/dba.md"), encoding: .utf8)
        let block = try #require(dba.components(separatedBy: "```sh\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
            .first { $0.contains("applied=$(psql") }, "docs/dba.md has no such loop")
        // As written, but for a test database and with this machine's psql.
        let script = "cd '\(Self.repository.path)' && PATH='\(URL(fileURLWithPath: psql).deletingLastPathComponent().path)':$PATH && "
            + block.replacingOccurrences(of: "-d shop", with: "-d \"$DATABASE\"")
        func loop(_ database: TestDatabase) throws -> ChildProcess.Outcome {
            try ChildProcess.run("/bin/bash", ["-c", "DATABASE='\(database.conninfo)'; " + script])
        }
        func version(_ database: TestDatabase) throws -> String? {
            try database.connect().query("SELECT max(version) FROM webhooky.migrations").scalar ?? nil
        }

        let fresh = try TestCluster.newEmptyDatabase()
        let install = try loop(fresh)
        #expect(install.status == 0, "\(install.output)")
        #expect(try version(fresh) == String(Migrations.latestVersion))
        let again = try loop(fresh)
        #expect(again.status == 0 && !again.output.contains("already applied"), "\(again.output)")

        // A schema one version behind, installed file by file.
        let older = try TestCluster.newEmptyDatabase()
        for migration in Migrations.all.dropLast() {
            let outcome = try ChildProcess.run(psql, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", older.conninfo, "-f",
                                                      Self.repository.appendingPathComponent("sql/" + migration.fileName).path])
            try #require(outcome.status == 0, "\(migration.fileName): \(outcome.output)")
        }
        let upgrade = try loop(older)
        #expect(upgrade.status == 0 && !upgrade.output.contains("already applied"), "\(upgrade.output)")
        #expect(try version(older) == String(Migrations.latestVersion))
    }

    @Test("webhook-id: each installation draws its own prefix, so two count their deliveries into different ids; deliveries created before the prefix (schema version 24) keep msg_<id>")
    func messageIDsAreUniqueAcrossInstallations() throws {
        // Installed up to version 23, with a delivery, then upgraded.
        let older = try TestCluster.newEmptyDatabase()
        let connection = try older.connect()
        let version24 = try #require(Migrations.all.firstIndex { $0.version == 24 })
        try Migrator(connection: connection, migrations: Array(Migrations.all.prefix(version24))).migrate()
        try connection.execute("""
            INSERT INTO webhooky.event_types (name, description, sample) VALUES ('t.t', 'test', '{}');
            INSERT INTO webhooky.webhooks (name, event, url) VALUES ('w', 't.t', 'https://hooks.example/x');
            INSERT INTO webhooky.events (event, payload) VALUES ('t.t', '{}');
            INSERT INTO webhooky.deliveries (event_id, webhook_id) SELECT e.id, w.id FROM webhooky.events e, webhooky.webhooks w;
            """)
        try Migrator(connection: connection).migrate()
        try connection.execute("INSERT INTO webhooky.deliveries (event_id, webhook_id) SELECT e.id, w.id FROM webhooky.events e, webhooky.webhooks w")
        let ids = try connection.query("SELECT webhooky.message_id(id) FROM webhooky.deliveries ORDER BY id").rows.map { $0[0] ?? "" }
        #expect(ids.count == 2)
        #expect(ids.first == "msg_1", "created before the prefix: the id it was sent with")
        let prefix = try #require(connection.query("SELECT message_id_prefix FROM webhooky.installation").scalar ?? nil)
        #expect(prefix.wholeMatch(of: /msg_[0-9a-f]{10}_/) != nil, "\(prefix)")
        #expect(ids.last == prefix + "2")

        // A new installation: every delivery carries its own, other prefix.
        let fresh = try TestCluster.newDatabase()
        let other = try #require(fresh.connect().query("SELECT message_id_prefix, prefixed_from FROM webhooky.installation").rows.first)
        #expect(other[0] != prefix && other[1] == "1")
        #expect(try fresh.connect().query("SELECT webhooky.message_id(1)").scalar == other[0].map { $0 + "1" })
    }

    @Test("a schema without its installation row (a data-only restore gone wrong) stops the worker with status 4 and says what is missing, instead of 3, which the unit restarts for ever")
    func aMissingInstallationRowIsASchemaProblem() throws {
        let shop = try Shop()
        try shop.connection.execute("DELETE FROM webhooky.installation")
        let outcome = RunningWorker(shop.workerConfiguration()).waitUntilFinished(timeout: .seconds(20))
        #expect(outcome.error?.code == .schemaMismatch)
        #expect(outcome.error?.exitStatus == 4)
        #expect(outcome.error?.message.hasPrefix("webhooky.installation holds no row") == true, "\(String(describing: outcome.error))")
    }

    @Test func emitRefusesUnknownEventsAndNonObjectPayloads() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        do {
            try connection.query("SELECT webhooky.emit('order.nope', '{}')")
            Issue.record("an unknown event was accepted")
        } catch {
            #expect(error.message == "webhooky.emit: unknown event 'order.nope'")
            #expect(error.sqlState == "22023")
            // A typo is told from a new event: the known ones are named, in order.
            #expect(error.hint == "Known events: 'customer.credit_changed', 'customer.tier_changed'. Correct the name in the trigger that "
                + "calls webhooky.emit, or, for a new event, register it first: INSERT INTO webhooky.event_types (name, description, sample) VALUES (...).")
        }
        do {
            try connection.query("SELECT webhooky.emit('customer.credit_changed', '[1]')")
            Issue.record("an array payload was accepted")
        } catch {
            #expect(error.message == "webhooky.emit('customer.credit_changed'): payload must be a JSON object, not array")
        }
        #expect(try connection.query("SELECT webhooky.emit('customer.credit_changed', '{}') IS NULL").scalar == "t", "no webhook: nothing recorded")
        #expect(try connection.query("SELECT count(*) FROM webhooky.events").scalar == "0")
    }

    @Test("at most one NOTIFY per transaction, and none while every worker is busy")
    func notifyOnlyWhenAWorkerWaits() throws {
        let shop = try Shop()
        try shop.addWebhook(url: "http://127.0.0.1:9/x")
        let listener = try shop.database.connect()
        try listener.listen("webhooky")
        func notificationsAfter(_ change: () throws -> Void) throws -> Int? {
            try shop.notifications(on: listener, after: change)?.count
        }
        func fiftyEventsInOneTransaction() throws {
            try shop.connection.execute("BEGIN")
            for credit in 1...50 { try shop.setCredit(String(credit)) }
            try shop.connection.execute("COMMIT")
        }
        #expect(try notificationsAfter(fiftyEventsInOneTransaction) == 0, "no worker at all: nobody to wake")
        try shop.connection.execute("INSERT INTO webhooky.workers (id, host, pid, version, listening, wants_wakeup) VALUES ('idle', 'h', 1, 'v', true, true)")
        #expect(try notificationsAfter(fiftyEventsInOneTransaction) == 1, "an idle worker: one NOTIFY for the transaction")
        try shop.connection.execute("UPDATE webhooky.workers SET wants_wakeup = false")
        #expect(try notificationsAfter(fiftyEventsInOneTransaction) == 0, "a busy worker finds events by itself")
        #expect(try shop.column("SELECT count(*) FROM webhooky.events") == ["150"])
    }

    @Test("emit's NOTIFY says 'event'; the admin functions' NOTIFY says something else (deliveries are due), also to a busy worker")
    func notificationsSayWhatTheyAreAbout() throws {
        let shop = try Shop()
        let webhook = try shop.addWebhook(url: "http://127.0.0.1:9/x")
        let listener = try shop.database.connect()
        try listener.listen("webhooky")
        func payloads(after change: () throws -> Void) throws -> [String]? {
            try shop.notifications(on: listener, after: change)
        }
        try shop.connection.execute("INSERT INTO webhooky.workers (id, host, pid, version, listening, wants_wakeup) VALUES ('idle', 'h', 1, 'v', true, true)")
        #expect(try payloads { try shop.setCredit("7") } == ["event"])
        try shop.connection.execute("UPDATE webhooky.workers SET wants_wakeup = false")
        let test = try payloads { _ = try shop.column("SELECT webhooky.send_test($1)", [String(webhook)]) }
        #expect(test?.count == 1 && test?.first != "event", "\(String(describing: test))")
    }

    @Test(arguments: [
        ("url", "ftp://x/", "URL must start with http:// or https://"),
        ("url", "https:///x", "URL has no host"),
        ("url", "https://user@/x", "URL has no host"),
        ("url", "http://:8080/x", "URL has no host"),
        ("url", "https://#customer.email#@/x?id=#customer.id#", "URL has no host"),
        ("url", "https://x/a b", "URL contains a space"),
        ("url", "http://127.0.0.1:99999/x", "URL has a port that is not a number from 1 to 65535"),
        ("url", "https://user:pw@x:0/", "URL has a port that is not a number from 1 to 65535"),
        ("url", "https://[::1]:8o8o/?id=#customer.id#", "URL has a port that is not a number from 1 to 65535"),
        ("url", "https://[zz::1]/x", "URL has a host in brackets that is not an IPv6 address"),
        ("url", "https://[192.0.2.1]/x", "URL has a host in brackets that is not an IPv6 address"),
        ("url", "https://[2001:db8::1]x/", "URL has a host in brackets that is not an IPv6 address"),
        ("url", "https://[2001:db8::1/x", "URL has a host in brackets that is not an IPv6 address"),
        ("headers", #"{"X": 1}"#, "header \"X\" must have a string value, not a JSON number"),
        ("headers", #"["X"]"#, "headers must be a JSON object"),
        ("headers", #"{"Bad Name": "v"}"#, "\"Bad Name\" is not a valid HTTP header name"),
        ("headers", #"{"webhook-signature": "v"}"#, "header \"webhook-signature\" is set by Webhooky"),
        ("headers", #"{"X-A": "a\nb"}"#, "header \"X-A\" contains a line break or control character"),
        ("secret", "whsec_short", "secret must be \"whsec_\" followed by 24 to 64 bytes in base64"),
        ("event", "order.unknown", "unknown event 'order.unknown'"),
    ])
    func badWebhooksAreRefusedNamingTheWebhook(column: String, value: String, message: String) throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        var values = ["event": "customer.credit_changed", "url": "https://erp.example/x", "headers": "{}", "secret": nil] as [String: String?]
        values[column] = value
        do {
            try connection.query(
                "INSERT INTO webhooky.webhooks (name, event, url, headers, secret) VALUES ('ERP sync', $1, $2, $3::jsonb, $4)",
                [values["event"] ?? nil, values["url"] ?? nil, values["headers"] ?? nil, values["secret"] ?? nil]
            )
            Issue.record("accepted \(column) = \(value)")
        } catch {
            #expect(error.sqlState == "23514")
            #expect(error.message.hasPrefix(#"the new webhook "ERP sync": "#), "\(error.message)")
            #expect(error.message.contains(message), "\(error.message)")
            #expect(error.hint?.isEmpty == false, "no hint on what to do: \(error.message)")
        }
    }

    @Test("a body with a placeholder missing its closing '#' where a value stands is refused naming it and what to write ('found a word that is not JSON' suggested nothing); another word, or a '#name' where even a placeholder may not stand, keeps its message", arguments: [
        (#"{"c": #customer.credit}"#,
         "line 1, character 7: found a word that is not JSON (text takes double quotes); '#customer.credit' looks like a variable missing its closing '#': write #customer.credit#"),
        ("{\"email\": \"#customer.email#\",\n \"credit\": #customer.credit, \"id\": #customer.id#}",
         "line 2, character 12: found a word that is not JSON (text takes double quotes); '#customer.credit' looks like a variable missing its closing '#': write #customer.credit#"),
        (#"[#customer.id#, #customer.tier.name]"#,
         "line 1, character 17: found a word that is not JSON (text takes double quotes); '#customer.tier.name' looks like a variable missing its closing '#': write #customer.tier.name#"),
        (#"{"c": hello}"#, "line 1, character 11: found a word that is not JSON (text takes double quotes)"),
        (#"{"c": #1}"#, "line 1, character 7: found a word that is not JSON (text takes double quotes)"),
        (#"{"c": 1 #customer.id}"#, "line 1, character 9: found a word that is not JSON (text takes double quotes)"),
        (#"{#customer.id: 1}"#, "line 1, character 2: found a word that is not JSON (text takes double quotes)"),
    ])
    func unclosedPlaceholderInABodyIsNamed(body: String, place: String) throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        do {
            try connection.query("INSERT INTO webhooky.webhooks (name, event, url, body) VALUES ('ERP', 'customer.credit_changed', 'https://erp.example/x', $1)", [body])
            Issue.record("accepted: \(body)")
        } catch {
            #expect(error.sqlState == "23514")
            #expect(error.message == #"the new webhook "ERP": body is not valid JSON at \#(place)"#, "\(error.message)")
        }
    }

    @Test("a refusal of a webhook when it is saved says what to do: a reserved header, a header value with a line break or over its limit, a malformed previous_secret (which also names the webhook) had no hint; a malformed secret's hint suits the statement (it suggested an UPDATE to an INSERT)")
    func refusalsSayWhatToDo() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        let insert = "INSERT INTO webhooky.webhooks (name, event, url, headers, secret) VALUES ('ERP', 'customer.credit_changed', 'https://erp.example/x', $1::jsonb, $2)"
        let reserved = Self.refusal(connection, insert, [#"{"Webhook-Id": "x"}"#, nil])
        #expect(reserved?.hint?.hasPrefix("Leave it out of headers: Webhooky sends webhook-id, webhook-timestamp and webhook-signature itself") == true, "\(String(describing: reserved))")
        let lineBreak = Self.refusal(connection, insert, [#"{"X-Shop": "a\r\nX-Other: b"}"#, nil])
        #expect(lineBreak?.hint?.hasPrefix("Write the value on one line, without control characters") == true, "\(String(describing: lineBreak))")
        let long = Self.refusal(connection, insert, ["{\"X-Big\": \"" + String(repeating: "v", count: 5000) + "\"}", nil])
        #expect(long?.hint?.hasPrefix("Shorten the value, or an admin raises the limit: INSERT INTO webhooky.settings VALUES ('max_header_value_length', '8192')") == true, "\(String(describing: long))")
        for secret in ["whsec_short", "whsec_abc"] {  // too short; not base64 at all
            let inserted = Self.refusal(connection, insert, ["{}", secret])
            #expect(inserted?.hint?.hasPrefix("Write webhooky.new_secret() as its value, e.g. INSERT INTO webhooky.webhooks") == true, "\(String(describing: inserted))")
        }

        let id = try #require(try connection.query(insert + " RETURNING id", ["{}", nil]).scalar)
        for secret in ["whsec_short", "whsec_abc"] {
            let updated = Self.refusal(connection, "UPDATE webhooky.webhooks SET secret = $1 WHERE id = $2", [secret, id])
            #expect(updated?.hint == "Generate one with: UPDATE webhooky.webhooks SET secret = webhooky.new_secret() WHERE id = \(id); (or SET secret = NULL for unsigned requests)",
                    "\(String(describing: updated))")
        }
        for previous in ["whsec_short", "whsec_abc"] {
            let refused = Self.refusal(connection, "UPDATE webhooky.webhooks SET previous_secret = $1 WHERE id = $2", [previous, id])
            #expect(refused?.message == "webhook \(id) \"ERP\": previous_secret must be \"whsec_\" followed by 24 to 64 bytes in base64", "\(String(describing: refused))")
            #expect(refused?.hint == "It is the secret before the last rotation, which webhooky.rotate_secret(\(id)) sets; leave it NULL, or give it a secret in the form webhooky.new_secret() makes.",
                    "\(String(describing: refused))")
        }
    }

    @Test("a refused INSERT names 'the new webhook', not the id the sequence handed the refused row (no webhook has it, and the next INSERT gets another); a refused UPDATE names the webhook by its id, for each check of a saved webhook", arguments: [
        ("event", "order.unknown", "unknown event 'order.unknown'"),                                                       // check_webhook
        ("url", "https://[zz::1]/x", "URL has a host in brackets that is not an IPv6 address"),                           // check_webhook_url
        ("headers", "{\"X-Big\": \"" + String(repeating: "v", count: 5000) + "\"}", "header \"X-Big\" is 5000 characters long; the limit is 4096"),  // check_webhook_limits
        ("previous_secret", "whsec_short", "previous_secret must be \"whsec_\" followed by 24 to 64 bytes in base64"),    // check_previous_secret
        ("body", String(repeating: "[", count: 513) + String(repeating: "]", count: 513), "body is nested deeper than 512 levels"),  // check_webhook_body_depth
        ("url", nil, "url must not be NULL"),                                                                             // check_webhook_required_columns
    ] as [(String, String?, String)])
    func refusedInsertsNameNoID(column: String, value: String?, message: String) throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        // A sequence value that cannot be mistaken for another number in a message.
        try connection.execute("ALTER SEQUENCE webhooky.webhooks_id_seq RESTART WITH 987654321")
        var values: [String: String?] = ["event": "customer.credit_changed", "url": "https://erp.example/x", "headers": "{}", "previous_secret": nil, "body": nil]
        values[column] = value
        let insert = "INSERT INTO webhooky.webhooks (name, event, url, headers, previous_secret, body) VALUES ($1, $2, $3, $4::jsonb, $5, $6)"
        for name in ["ERP", ""] {
            do {
                try connection.query(insert, [name, values["event"] ?? nil, values["url"] ?? nil, values["headers"] ?? nil, values["previous_secret"] ?? nil, values["body"] ?? nil])
                Issue.record("accepted \(column) = \(String(describing: value))")
            } catch {
                let handed = try #require(try connection.query("SELECT currval('webhooky.webhooks_id_seq')").scalar)
                #expect(try connection.query("SELECT count(*) FROM webhooky.webhooks WHERE id = $1", [handed]).scalar == "0")
                #expect(error.message == (name.isEmpty ? "the new webhook: " : #"the new webhook "\#(name)": "#) + message, "\(error)")
                #expect(!error.description.contains(handed), "the refused row's sequence value is named: \(error)")
            }
        }

        let id = try #require(try connection.query("INSERT INTO webhooky.webhooks (name, event, url) VALUES ('ERP', 'customer.credit_changed', 'https://erp.example/x') RETURNING id").scalar)
        do {
            let cast = column == "headers" ? "::jsonb" : ""
            try connection.query("UPDATE webhooky.webhooks SET \(column) = $2\(cast) WHERE id = $1", [id, value])
            Issue.record("an UPDATE of \(column) = \(String(describing: value)) was accepted")
        } catch {
            #expect(error.message == #"webhook \#(id) "ERP": "# + message, "\(error)")
        }
    }

    @Test("a host written out, or a variable for it, after a user name or before a port is accepted when saved")
    func urlsWithAHostAreSaved() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        for url in ["https://user:pw@erp.example:8443/x", "https://#customer.email#@erp.example/x", "https://user@#customer.email#/x",
                    "http://#customer.email#:8080/x", "http://[::1]:8080/x", "https://erp.example:/x", "https://#customer.id#",
                    "https://[2001:DB8::1]/x", "https://[::ffff:192.0.2.1]:8443/x", "https://[fe80::1%25eth0]/x", "https://[2001:db8::#customer.id#]/x"] {
            #expect(throws: Never.self, "\(url)") {
                try connection.query("INSERT INTO webhooky.webhooks (name, event, url) VALUES ('fine', 'customer.credit_changed', $1)", [url])
            }
        }
    }

    @Test("a host in brackets that is no IPv6 address (https://[zz::1]/x) is refused when saved, with a hint, not at every delivery with libcurl's 'URL using bad/illegal format'; a webhook saved with one before can still be disabled, renamed and given a URL that works")
    func bracketedHostsMustBeIPv6Addresses() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        do {
            try connection.query("INSERT INTO webhooky.webhooks (name, event, url) VALUES ('ERP', 'customer.credit_changed', 'https://[zz::1]/x')")
            Issue.record("https://[zz::1]/x was accepted")
        } catch {
            #expect(error.sqlState == "23514")
            #expect(error.message == #"the new webhook "ERP": URL has a host in brackets that is not an IPv6 address"#, "\(error.message)")
            #expect(error.hint?.hasPrefix("Brackets hold an IPv6 address, as in https://[2001:db8::1]:8443/hooks") == true, "\(error.hint ?? "no hint")")
        }
        // One saved before the check (as by an older schema).
        try connection.execute("ALTER TABLE webhooky.webhooks DISABLE TRIGGER check_webhook_url")
        let id = try #require(try connection.query(
            "INSERT INTO webhooky.webhooks (name, event, url) VALUES ('old', 'customer.credit_changed', 'https://[zz::1]/x') RETURNING id").scalar)
        try connection.execute("ALTER TABLE webhooky.webhooks ENABLE TRIGGER check_webhook_url")
        try connection.query("UPDATE webhooky.webhooks SET enabled = false, disabled_reason = 'the endpoint answered 410 Gone', disabled_at = now() WHERE id = $1", [id])
        try connection.query("UPDATE webhooky.webhooks SET name = 'old, renamed', url = url WHERE id = $1", [id])
        #expect(throws: PostgresError.self) {
            try connection.query("UPDATE webhooky.webhooks SET url = 'https://[yy::1]/x' WHERE id = $1", [id])
        }
        try connection.query("UPDATE webhooky.webhooks SET url = 'https://[2001:db8::1]/x', enabled = true WHERE id = $1", [id])

        // An admin's and a tenant's role save one too (the check runs with their rights).
        let suffix = "\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try connection.execute("""
            CREATE ROLE admin_\(suffix) LOGIN IN ROLE webhooky_admin;
            CREATE ROLE tenant_\(suffix) LOGIN IN ROLE webhooky_tenant;
            INSERT INTO webhooky.tenants (role_name, account_id) VALUES ('tenant_\(suffix)', 'eshop-42');
            """)
        for role in ["admin_\(suffix)", "tenant_\(suffix)"] {
            let saving = try Connection(conninfo: database.conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(role)"))
            #expect(throws: Never.self, "\(role)") {
                try saving.query("INSERT INTO webhooky.webhooks (name, event, url) VALUES ($1, 'customer.credit_changed', 'https://[2001:db8::2]:8443/x')", [role])
            }
        }
    }

    @Test("a body nested deeper than the worker renders (512 levels) is refused when saved")
    func deepBodiesAreRefusedWhereTheWorkerWouldRefuseThem() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        let fine = String(repeating: "[", count: 511) + "#x#" + String(repeating: "]", count: 511)
        let deep = String(repeating: "[", count: 512) + "#x#" + String(repeating: "]", count: 512)
        #expect(throws: Never.self) { try BodyTemplate(fine) }
        #expect(throws: TemplateError.self) { try BodyTemplate(deep) }
        try connection.query("INSERT INTO webhooky.webhooks (name, event, url, body) VALUES ('fine', 'customer.credit_changed', 'https://x/', $1)", [fine])
        do {
            try connection.query("INSERT INTO webhooky.webhooks (name, event, url, body) VALUES ('deep', 'customer.credit_changed', 'https://x/', $1)", [deep])
            Issue.record("a body nested 513 levels deep was accepted")
        } catch {
            #expect(error.message == #"the new webhook "deep": body is nested deeper than 512 levels"#, "\(error.message)")
        }
    }

    @Test("the database's check and the worker's template engine accept and refuse the same bodies")
    func sqlAndSwiftAgreeOnBodies() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        let bodies = [
            ##"{"a": #x#}"##, ##"{"a": "#x#"}"##, ##"{"a": "\#x#"}"##, ##"{"a": "\\#x#"}"##, ##"{#x#: 1}"##, ##"{"a": 1#x#}"##, ##"{"a": #x##y#}"##,
            ##"[#x#, #y.z#, "#a.b.c#"]"##, "#x#", "##x#", ##"{"a": "#fff"}"##, ##"{"a": #fff}"##, ##"{"a": -#x#}"##, ##"{"a": #x#.5}"##,
            ##"{"a": "\u#x#"}"##, ##"{"a": "\u00e9#x#"}"##, ##"{"a": [#x#]"##, ##"{"a": tru#x#}"##, " [ #x# , #y# ] ", "{\"a\": \"#x#\n\"}",
            ##"{"a": "#x#", "a": #x#}"##, "[1, 2, 3]", "12345678901234.56", ##""#x#""##, "#a##b#", ##"{"#a#": #b#}"##,
        ]
        for (index, body) in bodies.enumerated() {
            let swiftAccepts = (try? BodyTemplate(body)) != nil
            var sqlAccepts = true
            do {
                try connection.query("INSERT INTO webhooky.webhooks (name, event, url, body) VALUES ($1, 'customer.credit_changed', 'https://x/', $2)", ["b\(index)", body])
            } catch {
                sqlAccepts = false
            }
            #expect(swiftAccepts == sqlAccepts, "\(body): Swift \(swiftAccepts), SQL \(sqlAccepts)")
        }
    }

    @Test func whiteSpaceBodyMeansGetAndEmptySecretMeansUnsigned() throws {
        let database = try TestCluster.newDatabase()
        let connection = try database.connect()
        let row = try connection.query("""
            INSERT INTO webhooky.webhooks (event, url, body, secret) VALUES ('customer.credit_changed', 'https://x/', E' \\n\\t ', '')
            RETURNING body IS NULL, secret IS NULL
            """).rows
        #expect(row == [["t", "t"]])
    }
}
