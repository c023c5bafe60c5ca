import Operations
import Postgres
import Worker

/// `webhooky doctor`: is everything in order, and if not, what to do.
enum DoctorCommand {
    /// What `webhooky doctor --help` prints.
    static let usage = """
        Usage: webhooky doctor [options]

        Checks the database and the workers and explains each finding in plain words, one line
        each, OK, WARN or FAIL, with what to do:
          connection     server version, database, role
          schema         the schema version against this binary's
          privileges     whether the role can run the worker and do admin work
          roles          the group roles webhooky_worker, _admin, _emitter and _tenant
                         exist and have their privileges
          owner          objects of the schema that belong to another role than its
                         installer (with the statements that give them back)
          workers        workers with a heartbeat in the last 30 s (none: FAIL)
          backlog        deliveries due and events not yet fanned out (WARN when the oldest
                         has waited over 5 minutes)
          NOTIFY queue   pg_notification_queue_usage() (WARN over 50 %)
          dead           deliveries that gave up in the last 24 hours
          webhooks       failing webhooks, and those Webhooky disabled (and why), and the
                         webhooks whose deliveries wait behind a failing one on its endpoint
          settings       rows of webhooky.settings that are no limit, or not a whole number
                         (FAIL: every save of a webhook fails on it)
          variables      enabled webhooks' template variables that neither the event's sample
                         nor its recent events have (a misspelt name renders as ""), or that
                         only its sample has while its last events (10 or more) never did
                         (unless they carry a name around it as null every time)
          events         event types that have had no event for over 10 times their usual
                         gap and at least an hour: a dropped or disabled trigger?
          triggers       triggers whose WHEN clause tests another event's bit in
                         webhooky.wanted_events than the events they emit (FAIL), that emit
                         an event webhooky.event_types does not have, that a role may fire
                         without GRANT webhooky_emitter, or whose function calls
                         webhooky.emit with the caller's search_path (with the statement
                         that fixes each)
          accounts       webhooks for one account whose event a trigger emits without an
                         account: they never get it

        Options:
          --database-url URL   libpq connection string or URI [DATABASE_URL, else PG* variables]

        Exit status: 0 all OK; 1 something needs attention (a WARN or a FAIL); 2 bad options;
        3 database unreachable.

        Examples:
          webhooky doctor
          webhooky doctor --database-url 'postgresql://integrator@db.internal/shop'
          webhooky doctor || alert "webhooky needs attention"
        """

    /// Runs `webhooky doctor` with the arguments after the command name; returns the exit status.
    static func main(_ rawArguments: [String]) -> Int32 {
        let parsed = Arguments.parse(rawArguments, command: "doctor", usage: usage, options: ["database-url"])
        guard let arguments = parsed.arguments else { return parsed.exitStatus }
        let style = TerminalStyle.forStandardOutput()
        let connection: Connection
        do {
            connection = try Connection(conninfo: Help.databaseURL(arguments), applicationName: "webhooky doctor")
        } catch {
            print(Doctor.report([Doctor.unreachable(error)], style: style))
            return 3
        }
        connection.onNotice { _ in }
        let checks = Doctor(binaryVersion: Worker.version).examine(connection)
        print(Doctor.report(checks, style: style))
        return Doctor.exitStatus(checks)
    }
}
