import Operations

/// `webhooky status`: every webhook's health in one table.
enum StatusCommand {
    /// What `webhooky status --help` prints.
    static let usage = """
        Usage: webhooky status [options]

        Prints the webhooky.health view as a table, one row per webhook: id, name, enabled,
        deliveries pending and how long the oldest has waited, attempts answered 2xx (OK) and
        deliveries that gave up (DEAD) in the last 24 hours, failed attempts in a row and for
        how long (FAILS: "12 for 1h 5m"), the last status or error (shortened; an error with
        its code first, a connection error with its host and port: "[connect_failure]
        crm.example.com port 443"), median and 95th percentile duration in ms over 24 hours,
        and why Webhooky disabled it. The full view: SELECT * FROM webhooky.health;
        When no worker has a heartbeat within 30 s, a last line says so: nothing is sent.

        Options:
          --database-url URL   libpq connection string or URI [DATABASE_URL, else PG* variables]

        Exit status: 0 printed; 1 the role may not read webhooky.health (webhooky_admin may; a
        tenant's role sees its own account's); 2 bad options; 3 database unreachable; 4 schema
        missing or of another version.

        Examples:
          webhooky status
          webhooky status --database-url postgresql://admin@db.internal/shop
          watch -n 5 webhooky status
        """

    /// Runs `webhooky status` with the arguments after the command name; returns the exit status.
    static func main(_ rawArguments: [String]) -> Int32 {
        let parsed = Arguments.parse(rawArguments, command: "status", usage: usage, options: ["database-url"])
        guard let arguments = parsed.arguments else { return parsed.exitStatus }
        do {
            let connection = try CommandDatabase.open(arguments, applicationName: "webhooky status")
            let style = TerminalStyle.forStandardOutput()
            print(HealthTable.text(try HealthTable.load(connection), style: style))
            // Not for a tenant's role, which may not read webhooky.workers.
            if let absence = try WorkerPresence.absence(connection) { print("\n" + style.bad(absence)) }
            return 0
        } catch let exit as CommandExit {
            return exit.status
        } catch {
            return CommandDatabase.report(error)
        }
    }
}
