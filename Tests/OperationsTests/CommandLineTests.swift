import Foundation
import Postgres
import Schema
import TestSupport
import Testing

/// What every command says about itself, and the exit statuses they share.
@Suite(.timeLimit(.minutes(10))) struct CommandLineTests {
    @Test("every command has --help with examples (also as `webhooky help COMMAND`); the overview lists them all",
          arguments: ["run", "migrate", "preview", "tail", "status", "doctor", "demo"])
    func help(command: String) throws {
        let outcome = try CommandProcess.run([command, "--help"])
        #expect(outcome.status == 0)
        #expect(outcome.output.hasPrefix("Usage: webhooky \(command)"))
        #expect(outcome.output.contains("Examples:"))
        let asTopic = try CommandProcess.run(["help", command])
        #expect(asTopic.status == 0)
        #expect(asTopic.output == outcome.output)
        let overview = try CommandProcess.run(["--help"])
        #expect(overview.output.contains("\n  \(command) "))
    }

    @Test("doctor --help names every check that the doctor prints")
    func doctorHelpNamesEveryCheck() throws {
        let database = try TestCluster.newDatabase()
        let doctor = try CommandProcess.run(["doctor", "--database-url", database.conninfo])
        // "OK    NOTIFY queue  0.0 % full": the status in 6 columns, the check's name in 14.
        let names = doctor.output.split(separator: "\n").filter { line in ["OK ", "WARN ", "FAIL "].contains { line.hasPrefix($0) } }
            .map { $0.dropFirst(6).prefix(14).trimmingCharacters(in: .whitespaces) }
        #expect(names.count >= 13, "\(doctor.output)")
        let help = try CommandProcess.run(["doctor", "--help"]).output
        for name in names {
            #expect(help.contains("\n  \(name) "), "doctor --help does not list the check \(name)")
        }
    }

    @Test("the overview lists every exit status that run --help documents")
    func overviewListsEveryExitStatus() throws {
        let overview = try CommandProcess.run(["--help"]).output.replacingOccurrences(of: "\n", with: " ")
        for status in ["5 a migration failed", "6 (run)", "7 (run)", "130 (run)"] {
            #expect(overview.contains(status), "webhooky --help does not mention \(status)")
        }
    }

    @Test("a mistyped option is refused with the option that was probably meant; one far from every option gets no guess",
          arguments: [(["migrate", "--dryrun"], "unknown option --dryrun for \"webhooky migrate\"; did you mean --dry-run?"),
                      (["run", "--alow-network", "127.0.0.0/8"], "unknown option --alow-network for \"webhooky run\"; did you mean --allow-network?"),
                      (["tail", "--webhok", "1"], "unknown option --webhok for \"webhooky tail\"; did you mean --webhook?"),
                      (["status", "--verbose"], "unknown option --verbose for \"webhooky status\"\n")])
    func mistypedOptionGetsAGuess(arguments: [String], message: String) throws {
        let result = try CommandProcess.run(arguments)
        #expect(result.status == 2)
        #expect(result.errors.hasPrefix("webhooky: error: " + message), "\(result.errors)")
    }

    @Test("bad options exit 2, an unreachable database 3, a database without the schema 4", arguments: ["preview 1", "tail", "status"])
    func exitStatuses(command: String) throws {
        let arguments = command.split(separator: " ").map(String.init)
        let bad = try CommandProcess.run(arguments + ["--no-such-option"])
        #expect(bad.status == 2)
        #expect(bad.errors.hasPrefix("webhooky: error: unknown option --no-such-option for \"webhooky \(arguments[0])\""))

        let unreachable = try CommandProcess.run(arguments + ["--database-url", "host=/nonexistent-socket-dir port=1"])
        #expect(unreachable.status == 3)
        #expect(unreachable.errors.contains("cannot connect to the database: "))
        #expect(unreachable.errors.contains("Check --database-url or DATABASE_URL"))

        let empty = try TestCluster.newEmptyDatabase()
        let missing = try CommandProcess.run(arguments + ["--database-url", empty.conninfo])
        #expect(missing.status == 4)
        #expect(missing.errors == "webhooky: error: the webhooky schema is not installed in database \(empty.name); run \"webhooky migrate\" first (or point --database-url at the right database)\n")
    }

    @Test("run and migrate, too, say what to check when the database cannot be reached", arguments: ["run --wait-for-database 0s", "migrate", "migrate --dry-run"])
    func unreachableDatabaseSaysWhatToCheck(command: String) throws {
        let arguments = command.split(separator: " ").map(String.init)
        let unreachable = try CommandProcess.run(arguments + ["--database-url", "host=/nonexistent-socket-dir port=1"])
        #expect(unreachable.status == 3)
        #expect(unreachable.errors.contains("cannot connect to the database: "), "\(unreachable.errors)")
        #expect(unreachable.errors.contains("Check --database-url or DATABASE_URL"), "\(unreachable.errors)")
    }

    @Test("migrate as a role that lacks a privilege says which role to migrate as, not only PostgreSQL's \"permission denied\" (exit 5)")
    func migrateWithoutPrivilegeSaysWhichRole() throws {
        // A fresh install by a role that may not create a schema in the database.
        let empty = try TestCluster.newEmptyDatabase()
        let stranger = "stranger_\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try empty.connect().execute("CREATE ROLE \(stranger) LOGIN")
        let install = try CommandProcess.run(["migrate", "--database-url", empty.conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(stranger)")])
        #expect(install.status == 5, "\(install.errors)")
        #expect(install.errors.contains("migration 0001_core.sql failed and was rolled back: permission denied for database \(empty.name)"), "\(install.errors)")
        #expect(install.errors.contains("\nInstall as a role that may create schemas in this database: its owner or a superuser (docs/dba.md, \"Install\")."), "\(install.errors)")

        // An upgrade by an admin's role, which may read the schema but not change its objects.
        let older = try TestCluster.newEmptyDatabase()
        let superuser = try older.connect()
        try Migrator(connection: superuser, migrations: Array(Migrations.all.dropLast())).migrate()
        let admin = "admin_\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try superuser.execute("CREATE ROLE \(admin) LOGIN IN ROLE webhooky_admin")
        let upgrade = try CommandProcess.run(["migrate", "--database-url", older.conninfo.replacingOccurrences(of: "user=postgres", with: "user=\(admin)")])
        #expect(upgrade.status == 5, "\(upgrade.errors)")
        #expect(upgrade.errors.contains("(SQLSTATE 42501)"), "\(upgrade.errors)")
        #expect(upgrade.errors.contains("\nMigrate as the role that installed the schema (the owner of webhooky.migrations) or as a superuser."), "\(upgrade.errors)")
    }

    @Test("an option given twice is refused (exit 2), not the last one taken in silence",
          arguments: [
              (["run", "--allow-network", "10.20.0.0/16", "--allow-network", "127.0.0.0/8"],
               "--allow-network is given twice (\"10.20.0.0/16\" and \"127.0.0.0/8\"); give it once, with its values separated by commas"),
              (["preview", "1", "--event", "1", "--event=2"], "--event is given twice (\"1\" and \"2\"); give it once"),
              (["tail", "--since", "1h", "--webhook", "3", "--since", "2h"], "--since is given twice (\"1h\" and \"2h\"); give it once"),
              // A connection string may hold a password: not quoted.
              (["status", "--database-url", "postgresql://u:s3cret@db.invalid/x", "--database-url=postgresql://u:0ther@db.invalid/x"],
               "--database-url is given twice; give it once"),
          ])
    func repeatedOptionsAreRefused(arguments: [String], error: String) throws {
        let outcome = try CommandProcess.run(arguments)
        #expect(outcome.status == 2)
        #expect(outcome.errors.hasPrefix("webhooky: error: \(error)\nUsage: webhooky \(arguments[0])"), "\(outcome.errors)")
        #expect(!outcome.errors.contains("s3cret") && !outcome.errors.contains("0ther"), "\(outcome.errors)")
        // A switch given twice is still the switch.
        let twice = try CommandProcess.run(["migrate", "--dry-run", "--dry-run", "--database-url", "host=/nonexistent-socket-dir port=1"])
        #expect(twice.status == 3, "\(twice.errors)")
    }

    @Test("a connection string typed where no option takes it is refused without being quoted: the error showed its password (a URL given without --database-url, the pieces of an unquoted --database-url $DATABASE_URL that the shell split, a value taken by the option before it)",
          arguments: [(["status", "postgresql://admin:s3cret@db.invalid/shop"], "unexpected argument \"…\" for \"webhooky status\" (not shown: it looks like a connection string"),
                      (["run", "--database-url", "host=db.invalid", "password=s3cret", "dbname=shop"], "unexpected argument \"…\" for \"webhooky run\" (not shown:"),
                      (["run", "--worker-id", "--database-url", "postgresql://admin:s3cret@db.invalid/shop"], "unexpected argument \"…\" for \"webhooky run\" (not shown:"),
                      (["preview", "postgresql://admin:s3cret@db.invalid/shop"], "WEBHOOK_ID must be a positive whole number (an id from webhooky.webhooks), not \"…\""),
                      (["tail", "--since", "password=s3cret"], "--since must be a duration such as 500ms, 5s, 2m, 1h or 1d (at most 100 years), not \"…\""),
                      (["doctor", "--database-url:postgresql://admin:s3cret@db.invalid/shop"], "unknown option --… for \"webhooky doctor\" (not shown:"),
                      (["postgresql://admin:s3cret@db.invalid/shop"], "unknown command \"…\" (not shown: it looks like a connection string")])
    func connectionStringsTypedAmissAreNotQuoted(arguments: [String], error: String) throws {
        let outcome = try CommandProcess.run(arguments)
        #expect(outcome.status == 2)
        #expect(outcome.errors.hasPrefix("webhooky: error: \(error)"), "\(outcome.errors)")
        #expect(!outcome.errors.contains("s3cret") && !outcome.output.contains("s3cret"), "\(outcome.errors)")
    }

    @Test("version refuses what it does not take (exit 2, as the other commands do), and has --help",
          arguments: [(["version", "--foo"], "unknown option --foo for \"webhooky version\""),
                      (["--version", "extra"], "unexpected argument \"extra\" for \"webhooky version\"")])
    func versionTakesNoArguments(arguments: [String], error: String) throws {
        let outcome = try CommandProcess.run(arguments)
        #expect(outcome.status == 2)
        #expect(outcome.output.isEmpty, "\(outcome.output)")
        #expect(outcome.errors.hasPrefix("webhooky: error: \(error)\nUsage: webhooky version\nSee: webhooky version --help"), "\(outcome.errors)")
        let plain = try CommandProcess.run(["version"])
        #expect(plain.status == 0)
        #expect(plain.output.hasPrefix("webhooky "))
        let help = try CommandProcess.run(["version", "--help"])
        #expect(help.status == 0)
        #expect(help.output.hasPrefix("Usage: webhooky version\n"))
    }

    @Test("no command at all is a usage error (exit 2, the overview on stderr, nothing on stdout): it printed the overview and exited 0, so a script that left the command out took it for success; help and --help still exit 0 on stdout")
    func noCommandIsAUsageError() throws {
        let outcome = try CommandProcess.run([])
        #expect(outcome.status == 2)
        #expect(outcome.output.isEmpty, "\(outcome.output)")
        let overview = try CommandProcess.run(["--help"])
        #expect(overview.status == 0)
        #expect(overview.output.hasPrefix("webhooky: send HTTP webhooks"))
        #expect(outcome.errors == overview.output)
        let help = try CommandProcess.run(["help"])
        #expect(help.status == 0)
        #expect(help.output == overview.output)
        #expect(help.errors.isEmpty && overview.errors.isEmpty)
    }

    @Test func unknownCommandsAreNamed() throws {
        let outcome = try CommandProcess.run(["stats"])
        #expect(outcome.status == 2)
        #expect(outcome.errors.contains("unknown command \"stats\"; the commands are run, migrate, preview, tail, status, doctor, demo and version"))
        let help = try CommandProcess.run(["help", "stats"])
        #expect(help.status == 2)
        #expect(help.errors.contains("no help on \"stats\": the commands are run, migrate, preview, tail, status, doctor, demo and version"))
        #expect(help.output.isEmpty, "not the overview as if all were well")
    }
}
