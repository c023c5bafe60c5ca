import Dispatch
import Glibc
import Log
import Operations
import Postgres
import Synchronization

/// `webhooky tail`: delivery attempts as they happen.
enum TailCommand {
    /// What `webhooky tail --help` prints.
    static let usage = """
        Usage: webhooky tail [--webhook ID] [--since DURATION] [options]

        Shows delivery attempts as they are recorded, one line each: time, webhook, delivery,
        attempt, HTTP status (or "error"), duration, and what became of the delivery
        (succeeded, retry in ..., dead), then the error when there is one: its code in
        brackets ([timeout], [connect_failure], ...; see webhooky.attempts.error_code) and
        its message. Starts with the last 20 attempts (or those started within --since, at
        most the last 10,000: a note says where they start), then polls webhooky.attempts
        every 500 ms. Attempts that commit out of
        order are shown too. Ctrl-C (SIGINT) or SIGTERM stops it. Colour only on a terminal,
        and never when NO_COLOR is set.

        Options:
          --webhook ID         only this webhook's attempts
          --since DURATION     start with the attempts of this long ago (e.g. 10m, 2h, 1d)
                               instead of the last 20
          --database-url URL   libpq connection string or URI [DATABASE_URL, else PG* variables]

        Exit status: 0 stopped by Ctrl-C or SIGTERM; 1 no such webhook, or the role may not
        read webhooky.attempts (webhooky_admin may; a tenant's role sees its own account's);
        2 bad options; 3 database unreachable; 4 schema missing or of another version.

        Examples:
          webhooky tail
          webhooky tail --webhook 3 --since 1h
          NO_COLOR=1 webhooky tail > attempts.log
        """

    /// How often new attempts are looked for.
    static let pollInterval = 0.5

    /// Runs `webhooky tail` with the arguments after the command name; returns the exit status.
    static func main(_ rawArguments: [String]) -> Int32 {
        if Help.printsUsage(for: rawArguments, usage) { return 0 }
        let arguments: Arguments
        let webhookID: Int64?
        let since: Duration?
        do {
            arguments = try Arguments(rawArguments, command: "tail", options: ["database-url", "webhook", "since"], switches: [])
            webhookID = try arguments.string("webhook").map { (text: String) throws(Arguments.UsageError) -> Int64 in
                try Arguments.identifier(text, what: "--webhook", table: "webhooky.webhooks")
            }
            since = try arguments.duration("since")
        } catch {
            return Arguments.reportUsageError(error, command: "tail", usage: usage)
        }
        var connection: Connection
        do {
            connection = try CommandDatabase.open(arguments, applicationName: "webhooky tail")
            if let webhookID, try connection.query("SELECT 1 FROM webhooky.webhooks WHERE id = $1", [String(webhookID)]).rowCount == 0 {
                Help.fail("there is no webhook \(webhookID)\nSELECT id, name FROM webhooky.webhooks ORDER BY id; lists them (webhooky status too).")
                return 1
            }
        } catch let exit as CommandExit {
            return exit.status
        } catch {
            return CommandDatabase.report(error)
        }

        let stop = StopRequest()
        let signals = SignalHandler { stop.request() }
        defer { withExtendedLifetime(signals) {} }
        let style = TerminalStyle.forStandardOutput()
        let started = ContinuousClock.now
        func elapsed() -> Double {
            let duration = ContinuousClock.now - started
            return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        /// Prints `rows`; `false` when standard output is gone (e.g. `webhooky tail | head`).
        func show(_ rows: [AttemptRow]) -> Bool {
            let today = TextFormatting.now()
            for row in rows { print(row.line(style: style, today: today)) }
            return fflush(nil) == 0
        }

        var feed = AttemptFeed(webhookID: webhookID)
        do {
            let history = try feed.start(connection, since: since, now: elapsed())
            let scope = webhookID.map { " of webhook \($0)" } ?? ""
            let what = since.map { since in
                let attempts = "the attempts\(scope) of the last \(TextFormatting.duration(seconds: since.inSeconds))"
                // More than it shows: say where the cut is, not "the attempts of the last 1h".
                guard feed.historyTruncated, let first = history.first else { return attempts }
                return "the last \(TextFormatting.count(history.count)) of \(attempts), from \(TextFormatting.clockTime(first.startedAt, today: TextFormatting.now())) on "
                    + "(older ones left out: narrow it with --webhook ID or a shorter --since)"
            } ?? "the last \(history.count == 1 ? "attempt" : "\(history.count) attempts")\(scope)"
            // With --since, none in that time is not none at all.
            let none = "no attempts\(scope)" + (since.map { " in the last \(TextFormatting.duration(seconds: $0.inSeconds))" } ?? " yet")
            Help.note(history.isEmpty ? "\(none); waiting for new ones (Ctrl-C stops)" : "\(what), then new ones as they are recorded (Ctrl-C stops)")
            guard show(history) else { return 0 }
        } catch {
            return CommandDatabase.report(error)
        }

        while !stop.wait(seconds: pollInterval), !standardOutputClosed() {
            do {
                guard show(try feed.poll(connection, now: elapsed())) else { break }
            } catch where error.isTransient {
                let reason = error.message.split(whereSeparator: { $0.isNewline }).map { $0.trimmingPrefix(while: \.isWhitespace) }.joined(separator: " ")
                Help.note("lost the database (\(reason)); reconnecting")
                guard let reconnected = reconnect(arguments, stop: stop) else { break }
                connection = reconnected
                Help.note("reconnected")
            } catch {
                return CommandDatabase.report(error)
            }
        }
        return 0
    }

    /// Whether whoever read standard output has gone (the reader of a pipe closed it).
    private static func standardOutputClosed() -> Bool {
        var descriptor = pollfd(fd: 1, events: Int16(POLLOUT), revents: 0)
        return poll(&descriptor, 1, 0) == 1 && descriptor.revents & Int16(POLLERR | POLLHUP) != 0
    }

    /// Connects again with growing pauses (0.5 s … 5 s) until it works or a stop is requested.
    private static func reconnect(_ arguments: Arguments, stop: StopRequest) -> Connection? {
        var pause = 0.5
        while !stop.wait(seconds: pause) {
            if let connection = try? Connection(conninfo: Help.databaseURL(arguments), applicationName: "webhooky tail") {
                return connection
            }
            pause = min(pause * 2, 5)
        }
        return nil
    }
}

/// A stop asked for by a signal, which wakes whoever waits for it.
final class StopRequest: Sendable {
    private let requested = Atomic(false)
    private let semaphore = DispatchSemaphore(value: 0)

    /// Asks to stop; safe from any thread.
    func request() {
        requested.store(true, ordering: .releasing)
        semaphore.signal()
    }

    /// Waits up to `seconds`; returns `true` when a stop was requested.
    func wait(seconds: Double) -> Bool {
        if requested.load(ordering: .acquiring) { return true }
        _ = semaphore.wait(timeout: .now() + seconds)
        return requested.load(ordering: .acquiring)
    }
}
