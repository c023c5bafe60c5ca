import Glibc
import Log
import Postgres

/// Before a worker claims anything, makes sure that no other live worker runs under its id,
/// and makes the id's row in `webhooky.workers` its own.
///
/// Two workers started with one `--worker-id` (a copied command line; the default,
/// `hostname:pid`, cannot collide) would share one row there and one `claimed_by` on
/// deliveries: each could give back, take back or record the other's claims. What the row of
/// the id says decides:
///
/// | the row of this id | the starting worker |
/// | --- | --- |
/// | none, or this process's own | starts |
/// | last heartbeat over 15 s ago (``freshFor``) | takes the row over and starts |
/// | another pid on this host that no longer runs (a crashed predecessor) | takes the row over and starts |
/// | anything else: a live twin, or a predecessor on another host that crashed | watches its heartbeat for up to 7 s (``watchFor``): when it advances, refuses to start (``WorkerError/Code/workerIDInUse``); when it does not, takes the row over and starts |
///
/// Taking the row over is fenced by the heartbeat that was looked at, so of two workers started
/// at once with one id, the second to write looks again (and finds the first alive). A twin that
/// gets past this anyway is found by the heartbeat (``WorkerRegistry/upsertSQL``).
struct WorkerIDCheck {
    /// A row whose heartbeat is older than this belongs to a worker that is gone: three
    /// heartbeat intervals, 15 s.
    static let freshFor: Duration = WorkerRegistry.heartbeatInterval * 3
    /// How long a fresh row of another process is watched for a new heartbeat: one heartbeat
    /// interval and 2 s, 7 s.
    static let watchFor: Duration = WorkerRegistry.heartbeatInterval + .seconds(2)
    /// How often the row is read while watching: every 250 ms.
    static let watchEvery: Duration = .milliseconds(250)
    /// What the operator should do about two workers with one id.
    static let hint = "give each worker its own --worker-id, or leave it out: the default is hostname:pid"

    /// What a first look at the row of the id calls for.
    enum FirstLook: Equatable {
        /// Nobody else holds the id: start.
        case start
        /// A worker that is gone holds it, for this reason: take the row over.
        case takeOver(reason: String)
        /// Its worker may be alive: watch its heartbeat.
        case watch
    }

    /// What `row` (the row of the id, if any) calls for, for this process (`host`, `pid`);
    /// `isRunning` tells whether a process id runs on this host.
    static func firstLook(at row: WorkerRow?, host: String, pid: Int32, isRunning: (Int32) -> Bool) -> FirstLook {
        guard let row, row.host != host || row.pid != pid else { return .start }
        if row.heartbeatAge > freshFor.inSeconds {
            return .takeOver(reason: "its last heartbeat was \(Duration.seconds(row.heartbeatAge).shortDescription) ago")
        }
        if row.host == host && !isRunning(row.pid) { return .takeOver(reason: "its process no longer runs on this host") }
        return .watch
    }

    /// Whether process `pid` runs on this host (it may belong to another user).
    static func isRunning(_ pid: Int32) -> Bool {
        pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)
    }

    let configuration: WorkerConfiguration
    let connection: Connection
    /// This process's id.
    let pid: Int32 = getpid()

    /// Makes the row of the worker's id its own, or throws ``WorkerError/Code/workerIDInUse``
    /// when another live worker holds it. Returns `false` when `stopRequested` became true
    /// while it watched (nothing written then).
    ///
    /// A statement that fails (no privilege on `webhooky.workers`, a read-only server, a lost
    /// connection) does not keep the worker from starting, as it did not before this check: it
    /// is logged, and the worker starts and backs off like any worker whose statements fail.
    /// Its heartbeat still finds a twin once it can write.
    func run(stopRequested: () -> Bool) throws(WorkerError) -> Bool {
        let outcome: Outcome
        do {
            outcome = try settle(stopRequested: stopRequested)
        } catch {
            configuration.logger.warning("cannot check whether another worker has this worker id; starting (the heartbeat checks again)", [
                "worker": configuration.workerID, "error": error.description,
            ])
            return true
        }
        switch outcome {
        case .started: return true
        case .stopRequested: return false
        case .inUse(let other): throw .workerIDInUse(configuration.workerID, by: other, whileRunning: false)
        }
    }

    private enum Outcome {
        case started
        case stopRequested
        case inUse(WorkerRow)
    }

    private enum Watched {
        case stopRequested
        case gone
        case quiet
        case alive(WorkerRow)
    }

    private func settle(stopRequested: () -> Bool) throws(PostgresError) -> Outcome {
        let logger = configuration.logger
        var lastSeen: WorkerRow?
        // Each round that fails to write found the row written by someone else meanwhile.
        for _ in 0..<3 {
            var row = try WorkerRegistry.read(connection, id: configuration.workerID)
            lastSeen = row ?? lastSeen
            var reason: String?
            switch WorkerIDCheck.firstLook(at: row, host: configuration.host, pid: pid, isRunning: WorkerIDCheck.isRunning) {
            case .start:
                break
            case .takeOver(let why):
                reason = why
            case .watch:
                guard let seen = row else { break }
                logger.notice("another worker has this worker id and a fresh heartbeat: waiting to see whether it is alive before starting", [
                    "worker": configuration.workerID, "other_host": seen.host, "other_pid": seen.pid,
                    "heartbeat_age": Duration.seconds(seen.heartbeatAge).shortDescription, "wait_at_most": WorkerIDCheck.watchFor.shortDescription,
                ])
                switch try watch(seen, stopRequested: stopRequested) {
                case .stopRequested: return .stopRequested
                case .alive(let other): return .inUse(other)
                case .gone: row = nil
                case .quiet: reason = "its heartbeat did not advance in \(WorkerIDCheck.watchFor.shortDescription)"
                }
            }
            let registered = try WorkerRegistry.register(connection, id: configuration.workerID, host: configuration.host, pid: pid,
                                                         version: Worker.version, listening: configuration.listen, replacing: row)
            guard registered else { continue }
            if let reason, let row {
                logger.notice("took over the worker id from a worker that is gone", [
                    "worker": configuration.workerID, "previous_host": row.host, "previous_pid": row.pid, "reason": reason,
                ])
            }
            return .started
        }
        return try .inUse(WorkerRegistry.read(connection, id: configuration.workerID) ?? lastSeen
            ?? WorkerRow(host: "?", pid: 0, heartbeatAt: "", heartbeatAge: 0))
    }

    /// Reads the row until its heartbeat (or its holder) changes, it is removed, or
    /// ``watchFor`` has passed.
    private func watch(_ seen: WorkerRow, stopRequested: () -> Bool) throws(PostgresError) -> Watched {
        let deadline = ContinuousClock.now + WorkerIDCheck.watchFor
        while ContinuousClock.now < deadline {
            if stopRequested() { return .stopRequested }
            usleep(UInt32(WorkerIDCheck.watchEvery.inSeconds * 1e6))
            guard let now = try WorkerRegistry.read(connection, id: configuration.workerID) else { return .gone }
            if now.heartbeatAt != seen.heartbeatAt || now.host != seen.host || now.pid != seen.pid { return .alive(now) }
        }
        return .quiet
    }
}

extension WorkerError {
    /// Another live worker runs with the worker id `id`, on `other`'s host and pid.
    static func workerIDInUse(_ id: String, by other: WorkerRow, whileRunning: Bool) -> WorkerError {
        let what = whileRunning
            ? "another worker took over --worker-id \(id) while this one ran (host \(other.host), pid \(other.pid))"
            : "another worker is running with --worker-id \(id) (host \(other.host), pid \(other.pid): its heartbeat advanced while this one waited)"
        return WorkerError(.workerIDInUse, "\(what); \(WorkerIDCheck.hint)")
    }
}

extension Duration {
    /// The duration in seconds.
    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
