import Glibc
import Log
import Postgres

/// Before a worker claims anything, makes sure that no other live worker runs under its id,
/// and makes the id's row in `webhooky.workers` its own.
///
/// Two workers started with one `--worker-id` (a copied command line; the default,
/// `hostname:pid`, when containers share a hostname and each runs webhooky as pid 1) would
/// share one row there and one `claimed_by` on deliveries: each could give back, take back or
/// record the other's claims. What the row of the id says decides:
///
/// | the row of this id | the starting worker |
/// | --- | --- |
/// | none | starts |
/// | last heartbeat over 15 s ago (``freshFor``) | takes the row over and starts |
/// | anything else: a live twin, or a predecessor that crashed | watches its heartbeat for up to 7 s (``watchFor``): when it advances, refuses to start (``WorkerError/Code/workerIDInUse``); when it does not, takes the row over and starts |
///
/// Host and pid tell nothing here: a row with this process's host and pid is another
/// container's (this process has written none yet), and a pid that does not run here may run
/// in another pid namespace of the same host (containers with host networking). What tells one
/// start of a worker from another is the row's `started_at`, set when a worker registers and
/// fencing its heartbeat, its `wants_wakeup` and its removal.
///
/// Taking the row over is fenced by the start and heartbeat that were looked at, so of two
/// workers started at once with one id, the second to write looks again (and finds the first
/// alive). A twin that gets past this anyway is found by the heartbeat
/// (``WorkerRegistry/upsertSQL``).
struct WorkerIDCheck {
    /// A row whose heartbeat is older than this belongs to a worker that is gone: three
    /// heartbeat intervals, 15 s.
    static let freshFor: Duration = WorkerRegistry.heartbeatInterval * 3
    /// How long a fresh row of another process is watched for a new heartbeat: one heartbeat
    /// interval and 2 s, 7 s.
    static let watchFor: Duration = WorkerRegistry.heartbeatInterval + .seconds(2)
    /// How often the row is read while watching: every 250 ms.
    static let watchEvery: Duration = .milliseconds(250)
    /// What the operator should do about two workers with the worker id `id`.
    static func hint(for id: String) -> String {
        id == WorkerConfiguration.defaultWorkerID()
            ? "the default --worker-id hostname:pid is the same in containers that share a hostname and run webhooky as the same pid: "
                + "give each worker its own --worker-id (its container or pod name, say)"
            : "give each worker its own --worker-id, or leave it out: the default is hostname:pid (unless containers share a hostname)"
    }

    /// What a first look at the row of the id calls for.
    enum FirstLook: Equatable {
        /// Nobody else holds the id: start.
        case start
        /// A worker that is gone holds it, for this reason: take the row over.
        case takeOver(reason: String)
        /// Its worker may be alive: watch its heartbeat.
        case watch
    }

    /// What `row` (the row of the id, if any) calls for. Whose host and pid it names does not
    /// matter (see ``WorkerIDCheck``).
    static func firstLook(at row: WorkerRow?) -> FirstLook {
        guard let row else { return .start }
        if row.heartbeatAge > freshFor.inSeconds {
            return .takeOver(reason: "its last heartbeat was \(Duration.seconds(row.heartbeatAge).shortDescription) ago")
        }
        return .watch
    }

    let configuration: WorkerConfiguration
    let connection: Connection
    /// This process's id.
    let pid: Int32 = getpid()

    /// How the check ended, when no other live worker holds the id.
    enum Result: Equatable {
        /// The row is this worker's from now on, registered with this `started_at` (which fences
        /// its heartbeat, `wants_wakeup` and removal; the worker made it up for itself, see
        /// ``WorkerRegistry/startOfOwnMaking(now:)``), or, when the check could not run, the
        /// start the first heartbeat that can write registers the worker with.
        case started(startedAt: String)
        /// A stop was requested while it watched (nothing written).
        case stopRequested
    }

    /// Makes the row of the worker's id its own, or throws ``WorkerError/Code/workerIDInUse``
    /// when another live worker holds it.
    ///
    /// A statement that fails (no privilege on `webhooky.workers`, a lost connection; a
    /// read-only session was refused before, see ``SessionSettings/requireWritable(_:)``)
    /// does not keep the worker from starting, as it did not before this check: it
    /// is logged, and the worker starts and backs off like any worker whose statements fail.
    /// Its heartbeat still finds a twin once it can write.
    func run(stopRequested: () -> Bool) throws(WorkerError) -> Result {
        let outcome: Outcome
        // Made up before the first write, so that a registration whose answer is lost is still
        // known as this worker's.
        let start = WorkerRegistry.startOfOwnMaking()
        do {
            outcome = try settle(start: start, stopRequested: stopRequested)
        } catch {
            configuration.logger.warning("cannot check whether another worker has this worker id; starting (the heartbeat checks again)", [
                "worker": configuration.workerID, "error": error.description,
            ])
            return .started(startedAt: start)
        }
        switch outcome {
        case .started(let startedAt): return .started(startedAt: startedAt)
        case .stopRequested: return .stopRequested
        case .inUse(let other): throw .workerIDInUse(configuration.workerID, by: other)
        }
    }

    private enum Outcome {
        case started(String)
        case stopRequested
        case inUse(WorkerRow)
    }

    private enum Watched {
        case stopRequested
        case gone
        case quiet
        case alive(WorkerRow)
    }

    private func settle(start: String, stopRequested: () -> Bool) throws(PostgresError) -> Outcome {
        let logger = configuration.logger
        var lastSeen: WorkerRow?
        // Each round that fails to write found the row written by someone else meanwhile.
        for _ in 0..<3 {
            var row = try WorkerRegistry.read(connection, id: configuration.workerID)
            lastSeen = row ?? lastSeen
            var reason: String?
            switch WorkerIDCheck.firstLook(at: row) {
            case .start:
                break
            case .takeOver(let why):
                reason = why
            case .watch:
                guard let seen = row else { break }
                logger.notice("another worker has this worker id and a fresh heartbeat: waiting to see whether it is alive before starting", [
                    "worker": configuration.workerID, "other_host": seen.host, "other_pid": seen.pid, "other_started_at": seen.startedAt,
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
                                                         version: Worker.version, listening: configuration.listen, startedAt: start, replacing: row)
            guard let startedAt = registered else { continue }
            if let reason, let row {
                logger.notice("took over the worker id from a worker that is gone", [
                    "worker": configuration.workerID, "previous_host": row.host, "previous_pid": row.pid,
                    "previous_started_at": row.startedAt, "reason": reason,
                ])
            }
            return .started(startedAt)
        }
        return try .inUse(WorkerRegistry.read(connection, id: configuration.workerID) ?? lastSeen
            ?? WorkerRow(host: "?", pid: 0, heartbeatAt: "", heartbeatAge: 0, startedAt: "?"))
    }

    /// Reads the row until its heartbeat (or its holder: another start) changes, it is
    /// removed, or ``watchFor`` has passed.
    private func watch(_ seen: WorkerRow, stopRequested: () -> Bool) throws(PostgresError) -> Watched {
        let deadline = ContinuousClock.now + WorkerIDCheck.watchFor
        while ContinuousClock.now < deadline {
            if stopRequested() { return .stopRequested }
            usleep(UInt32(WorkerIDCheck.watchEvery.inSeconds * 1e6))
            guard let now = try WorkerRegistry.read(connection, id: configuration.workerID) else { return .gone }
            if now.heartbeatAt != seen.heartbeatAt || now.startedAt != seen.startedAt { return .alive(now) }
        }
        return .quiet
    }
}

extension WorkerError {
    /// Another live worker runs with the worker id `id`: `other` (its host, pid and start).
    static func workerIDInUse(_ id: String, by other: WorkerRow) -> WorkerError {
        WorkerError(.workerIDInUse, """
            another worker is running with --worker-id \(id) (host \(other.host), pid \(other.pid), started \(other.startedAt); \
            its heartbeat advanced while this one waited); \(WorkerIDCheck.hint(for: id))
            """)
    }

    /// Another worker, `other`, took the worker id `id` over while this one ran.
    static func workerIDTakenOver(_ id: String, by other: WorkerRow) -> WorkerError {
        WorkerError(.workerIDTakenOver, """
            another worker took over --worker-id \(id) while this one ran (host \(other.host), pid \(other.pid), started \(other.startedAt)); \
            \(WorkerIDCheck.hint(for: id))
            """)
    }
}
