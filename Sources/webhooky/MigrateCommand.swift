import Postgres
import Schema

/// `webhooky migrate`: installs or upgrades the schema.
enum MigrateCommand {
    static let usage = """
        Usage: webhooky migrate [options]

        Installs the webhooky schema, or upgrades it by applying the numbered migrations it
        lacks, each in its own transaction, in order. Applying it again changes nothing.
        Refuses a database whose schema is newer than this binary. An upgrade runs as the role
        that installed the schema (SET ROLE) when this role may act as it, as a superuser may,
        so that every object of the schema keeps one owner. Each lock a statement waits for,
        it waits for at most 1s (an open transaction that called webhooky.emit holds some), so
        that your application's changes do not queue behind the upgrade for longer: the
        migration is then rolled back and tried again 2s later, 5 times in all (not again when
        the try ran over 10s before it: its work would be done again); one that PostgreSQL
        ends to break a deadlock too.

        Options:
          --database-url URL     libpq connection string or URI [DATABASE_URL, else PG* variables]
          --dry-run              print what would be applied, change nothing
          --lock-timeout DURATION how long a statement waits for each lock (500ms, 1s, 1m); 0 waits
                                 as long as it takes, while the application's changes queue behind
                                 it [1s]

        Exit status: 0 done (or nothing to do); 1 this role may not read the schema; 2 bad
        options; 3 database unreachable; 4 schema newer than this binary; 5 a migration failed
        (it was rolled back).

        Examples:
          webhooky migrate --database-url postgresql://admin@db.internal/shop
          webhooky migrate --dry-run
          for f in sql/0*.sql; do psql -X -v ON_ERROR_STOP=1 -f "$f" || break; done
                               # by hand, a new installation only: an upgrade by hand starts
                               # after the version installed (docs/dba.md, "Install")
        """

    static func main(_ rawArguments: [String]) -> Int32 {
        let parsed = Arguments.parse(rawArguments, command: "migrate", usage: usage, options: ["database-url", "lock-timeout"], switches: ["dry-run"])
        guard let arguments = parsed.arguments else { return parsed.exitStatus }
        let lockTimeout: Duration?
        do {
            lockTimeout = try arguments.duration("lock-timeout")
            // PostgreSQL's lock_timeout is whole milliseconds in an integer; 0 waits without a
            // bound, so a value under 1 ms (which rounds to 0) is refused, not taken as 0.
            let text = arguments.string("lock-timeout") ?? ""
            let zero = !text.contains(where: { ("1"..."9").contains($0) })
            if let value = lockTimeout, !zero, value < .milliseconds(1) || value > .milliseconds(Int(Int32.max)) {
                throw Arguments.UsageError(description: "--lock-timeout must be 0 (no bound) or from 1ms to 24d, not \(Arguments.quoted(arguments.string("lock-timeout") ?? ""))")
            }
        } catch {
            return Arguments.reportUsageError(error, command: "migrate", usage: usage)
        }
        let connection: Connection
        do {
            connection = try Connection(conninfo: Help.databaseURL(arguments), applicationName: "webhooky migrate")
        } catch {
            Help.fail("cannot connect to the database: \(error.message)\n\(CommandDatabase.connectionHint)")
            return 3
        }
        // The migrations' notices (the group roles it could not create, say) among its own
        // lines, not as libpq's raw "NOTICE:  ..." on standard error.
        connection.onNotice { print(MigrateCommand.noticeLines($0)) }
        var migrator = Migrator(connection: connection)
        if let lockTimeout { migrator.lockTimeout = lockTimeout }
        var role = "?"
        do {
            // Which database it is, as libpq picked it from the URL, DATABASE_URL or PG* variables
            // (only said: a server that cannot answer this fails at the migrations' own statements).
            if let target = try? connection.query("SELECT current_database(), current_user, coalesce(inet_server_addr()::text || ':' || inet_server_port(), 'local socket')") {
                role = target[0, 1] ?? "?"
                print("database \"\(target[0, 0] ?? "?")\" as role \"\(role)\" (\(target[0, 2] ?? "?"))")
            }
            // A superuser upgrading the database owner's installation migrates as that owner.
            if try !migrator.pending().isEmpty, let owner = try migrator.installedBy(), !owner.isCurrentUser {
                print(owner.isMember
                    ? "migrating as role \(owner.quotedName), the owner of the webhooky schema"
                    : "the webhooky schema belongs to role \(owner.quotedName), and this role may not act as it: migrate as \(owner.quotedName) or a superuser")
            }
            if arguments.has("dry-run") {
                let pending = try migrator.pending()
                let current = try migrator.appliedVersions().last ?? 0
                if pending.isEmpty {
                    print("schema is up to date (version \(current)); nothing to do")
                } else {
                    print("schema version \(current == 0 ? "none (not installed)" : String(current)); would apply:")
                    for migration in pending { print("  \(migration.fileName)") }
                }
                return 0
            }
            let applied = try migrator.migrate(progress: { print("applying \($0.fileName) ...") }, retrying: { retry in
                let whose = retry.cause == .lockTimeout ? " that another transaction holds" : ""
                print("  \(retry.migration.fileName) \(retry.cause.sentence(lockTimeout: migrator.lockTimeout))\(whose); rolled back, "
                      + "trying it again in \(Migrator.text(migrator.lockRetryPause)) (try \(retry.attempt) of \(migrator.lockTries))"
                      + (retry.holders.isEmpty ? "" : "\n  sessions holding locks on webhooky's tables: " + retry.holders.joined(separator: "; ")))
            })
            let current = try migrator.appliedVersions().last ?? 0
            print(applied.isEmpty ? "schema is up to date (version \(current)); nothing to do" : "done: schema version \(current)")
            return 0
        } catch let error as SchemaError {
            Help.fail(error.message)
            return error.code == .newer ? 4 : 5
        } catch let error as PostgresError {
            // Not a migration's failure (that is a SchemaError): reading the schema failed, so
            // nothing was applied.
            let advice = error.sqlState == "42501" ? "\nMigrate as the role that installed it (the owner of webhooky.migrations) or as a superuser." : ""
            Help.fail("cannot read the webhooky schema as role \(role): \(error.message)" + advice)
            return error.isTransient ? 3 : 1
        } catch {
            Help.fail("\(error)")
            return 5
        }
    }

    /// A server notice as migrate prints it: `notice: ...`, and its `HINT`/`DETAIL` lines
    /// indented below it (`hint: ...`).
    static func noticeLines(_ message: String) -> String {
        message.split(separator: "\n").map { line -> String in
            guard let colon = line.firstIndex(of: ":"), line[..<colon].allSatisfy({ $0.isUppercase }), !line[..<colon].isEmpty else {
                return "  " + line.drop(while: { $0 == " " })
            }
            let label = line[..<colon].lowercased(), text = line[line.index(after: colon)...].drop(while: { $0 == " " })
            return ["notice", "warning"].contains(label) ? "\(label): \(text)" : "  \(label): \(text)"
        }.joined(separator: "\n")
    }
}
