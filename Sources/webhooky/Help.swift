import Glibc
import Log
import Schema
import Worker

/// Usage texts and error reporting shared by the commands.
enum Help {
    static var version: String { Worker.version }
    static var schemaVersion: Int { Migrations.latestVersion }

    static let overview = """
        webhooky: send HTTP webhooks when data changes in PostgreSQL.

        Usage: webhooky <command> [options]

        Commands:
          run       Run the worker: deliver webhooks as events are committed.
          migrate   Install or upgrade the webhooky schema in a database.
          preview   Print the exact request a webhook would send, without sending it.
          tail      Show delivery attempts as they happen.
          status    Show every webhook's health in one table.
          doctor    Check the database and the workers; explain what needs attention.
          demo      Try it all on a private, throwaway PostgreSQL (nothing to set up).
          version   Print the version.

        Run "webhooky <command> --help" for a command's options and examples.

        Examples:
          webhooky migrate --database-url postgresql://admin@db.internal/shop
          webhooky run
          webhooky preview 3 --payload '{"customer": {"id": 1001}}'
          webhooky tail --webhook 3
          webhooky status
          webhooky doctor

        The database is given with --database-url (a libpq connection string or URI), or the
        DATABASE_URL environment variable, or else libpq's own PGHOST, PGDATABASE, PGUSER...

        Exit status: 0 done; 1 failed (doctor: something needs attention); 2 bad options;
        3 database unreachable; 4 schema missing, older or newer than this binary; 5 a
        migration failed (rolled back), or (run) another live worker has this --worker-id;
        6 (run) another worker took this --worker-id over while this one ran; 7 (run) this
        role lacks the worker's privileges; 130 (run) a second SIGTERM, SIGINT or SIGHUP.
        Recipes: docs/admin.md (webhooks, tests, redelivery) and docs/dba.md (install, roles,
        triggers, retention, workers).
        """

    /// `webhooky version --help`.
    static let versionUsage = """
        Usage: webhooky version

        Prints the version of this binary and the schema version it works with. It takes no options.

        Examples:
          webhooky version
        """

    /// Whether `arguments` ask for help (`--help`, `-h`); if so, `usage` has been printed.
    static func printsUsage(for arguments: [String], _ usage: String) -> Bool {
        guard arguments.contains("--help") || arguments.contains("-h") else { return false }
        print(usage)
        return true
    }

    /// Prints `message` on stderr as `webhooky: error: ...`.
    static func fail(_ message: String) {
        printOnStandardError("webhooky: error: \(message)")
    }

    /// Prints `message` on stderr as `webhooky: note: ...` (things worth knowing that are not
    /// part of a command's output).
    static func note(_ message: String) {
        printOnStandardError("webhooky: note: \(message)")
    }

    /// Prints `text` and a line break on stderr, in one `write(2)`.
    static func printOnStandardError(_ text: String) {
        Logger.writeStandardError(text + "\n")
    }

    /// The connection string: `--database-url`, else `DATABASE_URL`, else "" (libpq's PG* variables).
    static func databaseURL(_ arguments: Arguments) -> String {
        if let url = arguments.string("database-url") { return url }
        if let url = getenv("DATABASE_URL") { return String(cString: url) }
        return ""
    }
}
