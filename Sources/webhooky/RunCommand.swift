import Delivery
import Dispatch
import Glibc
import HTTPClient
import Log
import Worker

/// `webhooky run`: the worker.
enum RunCommand {
    static let usage = """
        Usage: webhooky run [options]

        Runs the worker: LISTENs for new events, claims due deliveries, renders and sends them,
        retries failures, and records every attempt in webhooky.deliveries and webhooky.attempts.
        Stops cleanly on SIGTERM, SIGINT or SIGHUP (a second signal stops at once; there is
        nothing to reload: restart it to change options).

        Options (defaults in brackets):
          --database-url URL          libpq connection string or URI [DATABASE_URL, else PG* variables]
          --worker-id NAME            name recorded on claims and attempts, one per worker: a worker
                                      whose id a live worker has refuses to start (status 5) [hostname:pid]
          --batch-size N              deliveries claimed per query [100]
          --max-in-flight N           requests in flight at once [256]
          --max-in-flight-per-endpoint N  requests in flight to one scheme://host:port [64]
                                      (an endpoint starts with an eighth and earns the rest
                                      by answering; as many again may wait in line for a
                                      quick endpoint)
          --connect-timeout DURATION  time to connect (TCP and TLS) [5s]
          --request-timeout DURATION  time for a whole request [15s]
          --lease DURATION            how long a claim lasts before another worker may take it over [60s]
          --poll-interval DURATION    backstop poll when no NOTIFY arrives [1s]
          --no-listen                 poll only, no LISTEN (for transaction-mode connection poolers)
          --stay-awake-above N        events/s above which the worker looks for events itself every
                                      millisecond instead of asking for a NOTIFY per commit (also
                                      below, while NOTIFYs would hold the commit lock 80 % of the
                                      time by the WAL flush it measures); 0 never [2500]
          --fan-out-patience DURATION how long new events wait for room at their full endpoint before
                                      their deliveries queue as pending (one more write each); other
                                      webhooks' events behind them wait as long, so at most 1s [20ms]
          --outcome-gathering DURATION  how long an attempt's outcome waits to be written together
                                      with others, at most 1s (sending never waits for it); 0ms: as
                                      soon as the dispatcher hands it over [5ms]
          --retry-schedule LIST       delays between attempts [5s,30s,2m,10m,30m,1h,2h,4h,8h,12h,24h]
          --shutdown-grace DURATION   how long a stop waits for requests in flight [10s]
          --wait-for-database DURATION  at the start, how long to keep trying a database that is
                                      unreachable or read-only (a standby) before exiting with
                                      status 3; 0s exits at once [forever: a line a minute says why]
          --disable-after-failures N  disable a webhook after N failed attempts in a row... [10]
          --disable-after DURATION    ...that span at least this long with no success [5d]
          --no-auto-disable           never disable a failing webhook (410 Gone still disables)
          --keep-succeeded DURATION   delete succeeded deliveries this long after success, at least 1s [7d]
          --keep-dead DURATION        delete dead deliveries this long after they died, at least 1s [30d]
          --no-prune                  keep all history (prune by hand: SELECT * FROM webhooky.prune())
          --log-level LEVEL           trace, debug, info, notice, warning, error, critical [info];
                                      info sums up successful deliveries every 10 s, debug adds a
                                      line for each
          --allow-network CIDR,...    also allow these private or internal networks, e.g. 10.20.0.0/16
                                      [none: loopback, private, link-local, ... addresses are refused]
          --allow-private-networks    allow every address (development only; never in production)

        Durations: 500ms, 5s, 2m, 1h, 1d. Exit status: 0 stopped cleanly; 1 an internal
        failure (out of memory); 2 bad options;
        3 database unreachable, login refused, or read-only (a standby, or
        default_transaction_read_only on the role or database) for longer than
        --wait-for-database; 4 schema missing or of another version
        (at the start, or found at a heartbeat: a newer binary migrated while this one ran);
        5 another live worker has this --worker-id (checked at the start, which may wait up to
        7s for its heartbeat); 6 another worker took this --worker-id over while this one ran
        (found at a heartbeat; restart it: the restart checks again); 7 this role lacks the
        worker's privileges (GRANT webhooky_worker TO it);
        130 a second SIGTERM, SIGINT or SIGHUP (stopped at once, without waiting for requests).

        Examples:
          webhooky run --database-url postgresql://webhooky_run@db.internal/shop
          DATABASE_URL='host=/run/postgresql dbname=shop' webhooky run --max-in-flight 512
          webhooky run --retry-schedule 10s,1m,10m --log-level notice
        """

    static func main(_ rawArguments: [String]) -> Int32 {
        if Help.printsUsage(for: rawArguments, usage) { return 0 }
        let configuration: WorkerConfiguration
        do {
            configuration = try parse(rawArguments)
        } catch {
            return Arguments.reportUsageError(error, command: "run", usage: usage)
        }
        let worker = Worker(configuration: configuration)
        let signals = SignalHandler(logger: configuration.logger, lease: configuration.leaseDuration) { worker.stop() }
        defer { withExtendedLifetime(signals) {} }
        do {
            try worker.run()
            return 0
        } catch {
            Help.fail(error.code == .databaseUnavailable ? "\(error.message)\n\(CommandDatabase.connectionHint)" : error.message)
            return error.exitStatus
        }
    }

    static func parse(_ rawArguments: [String]) throws(Arguments.UsageError) -> WorkerConfiguration {
        let arguments = try Arguments(
            rawArguments, command: "run",
            options: ["database-url", "worker-id", "batch-size", "max-in-flight", "max-in-flight-per-endpoint", "connect-timeout",
                      "request-timeout", "lease", "poll-interval", "retry-schedule", "shutdown-grace", "wait-for-database", "log-level",
                      "stay-awake-above", "fan-out-patience", "outcome-gathering",
                      "disable-after-failures", "disable-after", "keep-succeeded", "keep-dead", "allow-network"],
            switches: ["no-listen", "no-auto-disable", "no-prune", "allow-private-networks"]
        )
        if let id = arguments.string("worker-id"), id.allSatisfy(\.isWhitespace) {
            throw Arguments.UsageError(description: "--worker-id must name the worker, not be empty; leave it out for the default, hostname:pid")
        }
        var configuration = WorkerConfiguration(databaseURL: Help.databaseURL(arguments), workerID: arguments.string("worker-id"))
        if let value = try arguments.integer("batch-size", in: 1...10_000) { configuration.batchSize = value }
        if let value = try arguments.integer("max-in-flight", in: 1...100_000) { configuration.maximumInFlight = value }
        if let value = try arguments.integer("max-in-flight-per-endpoint", in: 1...10_000) { configuration.maximumInFlightPerEndpoint = value }
        // An option that a switch turns off would be silently ignored: say so instead.
        for (option, switchOff) in [("keep-succeeded", "no-prune"), ("keep-dead", "no-prune"),
                                    ("disable-after-failures", "no-auto-disable"), ("disable-after", "no-auto-disable")]
        where arguments.has(switchOff) && arguments.string(option) != nil {
            throw Arguments.UsageError(description: "--\(option) has no effect with --\(switchOff): leave one of them out")
        }
        if let value = try arguments.integer("disable-after-failures", in: 1...1_000_000) { configuration.autoDisable?.failures = value }
        if let value = try arguments.duration("disable-after") { configuration.autoDisable?.period = value }
        if arguments.has("no-auto-disable") { configuration.autoDisable = nil }
        for option in ["keep-succeeded", "keep-dead"] {
            guard let value = try arguments.duration(option) else { continue }
            // Pruning goes by whole seconds: 500ms would have been 0, history deleted at once.
            guard value >= .seconds(1) else {
                throw Arguments.UsageError(description: "--\(option) must be at least 1s, not \(Arguments.quoted(arguments.string(option) ?? "")) (history is kept for whole seconds)")
            }
            if option == "keep-succeeded" { configuration.retention?.succeeded = value } else { configuration.retention?.dead = value }
        }
        if arguments.has("no-prune") { configuration.retention = nil }
        if let list = arguments.string("allow-network") {
            do {
                configuration.http.addressPolicy = try AddressPolicy(allowing: list.split(separator: ",").map(String.init))
            } catch {
                throw Arguments.UsageError(description: "--allow-network: \(error)")
            }
        }
        if arguments.has("allow-private-networks") { configuration.http.addressPolicy = .allowingAll }
        if let value = try arguments.duration("connect-timeout") { configuration.http.connectTimeout = value }
        if let value = try arguments.duration("request-timeout") { configuration.http.requestTimeout = value }
        if let value = try arguments.duration("lease") { configuration.leaseDuration = value }
        if let value = try arguments.duration("poll-interval") { configuration.pollInterval = value }
        if let value = try arguments.integer("stay-awake-above", in: 0...10_000_000) { configuration.awakeAboveEventsPerSecond = Double(value) }
        if let value = try arguments.duration("fan-out-patience") {
            // Every event behind a full endpoint's waits too, whatever its webhooks: longer would
            // let one slow endpoint hold all the others back.
            guard value <= .seconds(1) else {
                throw Arguments.UsageError(description: "--fan-out-patience must be at most 1s, not \(Arguments.quoted(arguments.string("fan-out-patience") ?? "")) (the events of other webhooks behind a full endpoint's wait as long)")
            }
            configuration.fanOutPatience = value
        }
        if let value = try arguments.duration("outcome-gathering") {
            // Longer would only keep finished deliveries unrecorded (and sent again after a crash).
            guard value <= .seconds(1) else {
                throw Arguments.UsageError(description: "--outcome-gathering must be at most 1s, not \(Arguments.quoted(arguments.string("outcome-gathering") ?? ""))")
            }
            configuration.outcomeGathering = value
        }
        if let value = try arguments.duration("shutdown-grace") { configuration.shutdownGracePeriod = value }
        if let text = arguments.string("wait-for-database"), text != "forever" {
            guard let value = Arguments.parseDuration(text) else {
                throw Arguments.UsageError(description: "--wait-for-database must be a duration such as 0s, 30s, 5m or 1h, or forever; not \(Arguments.quoted(text))")
            }
            configuration.startupWait = value
        }
        if let value = try arguments.durations("retry-schedule") { configuration.retryPolicy.delays = value }
        if arguments.has("no-listen") { configuration.listen = false }
        if let name = arguments.string("log-level") {
            guard let level = Logger.Level(name: name) else {
                throw Arguments.UsageError(description: "--log-level must be one of trace, debug, info, notice, warning, error, critical; not \(Arguments.quoted(name))")
            }
            configuration.logger = Logger(level: level)
        }
        // 0 is not "no limit": every request would time out before it is sent (libcurl's own 0
        // for the connect timeout would mean its default of 300 s).
        for (name, value) in [("connect-timeout", configuration.http.connectTimeout), ("request-timeout", configuration.http.requestTimeout)]
        where value < .milliseconds(1) {
            throw Arguments.UsageError(description: "--\(name) must be at least 1ms, not \(Arguments.quoted(arguments.string(name) ?? "")) (there is no unlimited timeout)")
        }
        if configuration.pollInterval < .milliseconds(10) {
            throw Arguments.UsageError(description: "--poll-interval must be at least 10ms")
        }
        if configuration.leaseDuration < configuration.http.requestTimeout + .seconds(2) {
            throw Arguments.UsageError(description: "--lease (\(configuration.leaseDuration.shortDescription)) must exceed --request-timeout (\(configuration.http.requestTimeout.shortDescription)) by at least 2s, or a slow request could be sent twice")
        }
        return configuration
    }
}

/// Turns SIGTERM, SIGINT and SIGHUP into a call of `onStop`; a second signal, of any of these
/// kinds, exits at once (status 130). SIGHUP would otherwise end the process at once, holding its
/// claims until their lease runs out: a closed terminal or ssh session sends it, and so does an
/// operator used to reloading daemons with it (the worker has no configuration to reload).
final class SignalHandler {
    /// Signals received so far, of both kinds; read and written only on the handlers' queue.
    private final class Count: @unchecked Sendable {
        var received = 0
    }

    private var sources: [any DispatchSourceSignal] = []

    /// With a `logger` (the worker's), each signal is logged by name: the first as the reason
    /// of the stop, a second with what becomes of the requests in flight (sent again once
    /// `lease` has run out).
    init(logger: Logger? = nil, lease: Duration = .zero, onStop: @escaping @Sendable () -> Void) {
        let queue = DispatchQueue(label: "webhooky-signals")
        let count = Count()
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT"), (SIGHUP, "SIGHUP")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {  // holds its source: both live as long as the process
                // Signals that came together arrive as one event: `data` counts them.
                count.received += max(1, Int(source.data))
                if count.received > 1 {
                    logger?.warning("second stop signal: exiting at once, without waiting for requests in flight or recording them; "
                                   + "what this worker holds is sent again once its lease has run out", ["signal": name, "lease": lease.shortDescription])
                    _exit(130)
                }
                logger?.notice("stop requested", ["signal": name])
                onStop()
            }
            source.resume()
            sources.append(source)
        }
    }
}
