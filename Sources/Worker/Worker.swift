import Delivery
import Dispatch
import Foundation
import HTTPClient
import Log
import Postgres
import Schema
import Synchronization
import ThreadNames

/// `webhooky run`: LISTENs for wake-ups, claims due deliveries, sends them and records what
/// happened, until ``stop()``.
///
/// Threads: the caller's thread runs the dispatcher (fan-out, claims, rendering), one thread
/// drives libcurl, one writes outcomes (``OutcomeRecorder``), one holds the LISTEN connection,
/// one deletes old history now and then (``HistoryPruner``): three database connections per
/// worker (two with `--no-listen`), and a fourth while pruning. They exchange batches through
/// an inbox.
public final class Worker: Sendable {
    /// The version of Webhooky, recorded in `webhooky.workers`.
    public static let version = "1.0.0"

    private let configuration: WorkerConfiguration
    private let inbox = DispatcherInbox()
    private let stopping = StopFlag()
    /// The running pruner, told to stop as soon as the worker is (not after the grace period).
    private let pruner = Mutex<HistoryPruner?>(nil)

    public init(configuration: WorkerConfiguration) {
        self.configuration = configuration
    }

    /// Runs until ``stop()`` is called, then returns after finishing or releasing every
    /// delivery it holds. At the start it waits for a database it cannot reach yet, or that is
    /// read-only, for up to ``WorkerConfiguration/startupWait`` (default nil: for as long as it
    /// takes); a ``stop()`` during that wait returns at once, without an error.
    ///
    /// - Throws: ``WorkerError`` when it cannot start: the database stayed unreachable, or
    ///   refused the login, for all of ``WorkerConfiguration/startupWait``
    ///   (``WorkerError/Code/databaseUnavailable``) or stayed read-only
    ///   (``WorkerError/Code/databaseReadOnly``), its schema does not match
    ///   this binary (``WorkerError/Code/schemaMismatch``), its role lacks the worker's
    ///   privileges (``WorkerError/Code/notPermitted``), or another live worker has its
    ///   worker id (``WorkerError/Code/workerIDInUse``, see ``WorkerIDCheck``); and after it
    ///   stopped as on ``stop()`` because another worker took its id over while it ran
    ///   (``WorkerError/Code/workerIDTakenOver``).
    public func run() throws(WorkerError) {
        let logger = configuration.logger
        guard let (connection, backend) = try connectAtStart(logger: logger) else { return }
        let messageIDs: MessageIDs
        do {
            try Migrator(connection: connection).requireCurrent()
            try Worker.requirePrivileges(connection, configuration)
            guard let ids = try DeliveryStore.messageIDs(connection) else {
                throw WorkerError(.schemaMismatch, "webhooky.installation holds no row (the webhook-id prefix migration 0024 drew): "
                                  + "restore it with the rest of the schema's data (a data-only restore onto a new schema keeps the new one)")
            }
            messageIDs = ids
        } catch let error as SchemaError {
            throw WorkerError(.schemaMismatch, error.message)
        } catch let error as WorkerError {
            throw error
        } catch let error as PostgresError where error.sqlState == "42501" {
            throw Worker.notPermitted(connection, lacking: "access to the schema (\(error.message))")
        } catch {
            throw WorkerError(.databaseUnavailable, "cannot read the schema version: \(error)")
        }
        // Before anything is claimed: no other live worker may have this id.
        let stopping = self.stopping
        guard case .started(let startedAt) = try WorkerIDCheck(configuration: configuration, connection: connection)
            .run(stopRequested: { stopping.isSet }) else { return }

        let inbox = self.inbox
        let http: HTTPClient
        do {
            http = try HTTPClient(configuration: configuration.httpClient) { inbox.post(results: $0) }
        } catch {
            throw WorkerError(.internalFailure, error.message)
        }
        let listenerDone = DispatchSemaphore(value: 0)
        if configuration.listen {
            let conninfo = configuration.databaseURL
            let thread = Thread {
                nameThisThread("webhooky-listen")
                Listener(conninfo: conninfo, inbox: inbox, logger: logger).run { stopping.isSet }
                listenerDone.signal()
            }
            thread.start()
        } else {
            listenerDone.signal()
        }

        logger.notice("worker started", [
            "worker": configuration.workerID, "listen": configuration.listen, "batch": configuration.batchSize,
            "max_in_flight": configuration.maximumInFlight, "lease": configuration.leaseDuration.shortDescription,
            "poll": configuration.pollInterval.shortDescription, "schema": Migrations.latestVersion,
            "addresses": configuration.http.addressPolicy.summary,
        ])
        if configuration.http.addressPolicy.allowsAllAddresses {
            logger.warning("every address may be sent to, private and internal networks included (--allow-private-networks): for development only; "
                           + "in production allow only the networks a webhook needs with --allow-network")
        }
        let pruner = configuration.retention.map {
            HistoryPruner(configuration: configuration, policy: $0, logger: logger, firstRunAfter: min(.seconds(10), $0.interval))
        }
        self.pruner.withLock { $0 = pruner }
        if stopping.isSet { pruner?.requestStop() }  // a stop that came before the pruner existed
        let dispatcher = Dispatcher(configuration: configuration, connection: connection, backend: backend, inbox: inbox, http: http,
                                    startedAt: startedAt, messageIDs: messageIDs)
        dispatcher.run()
        pruner?.stop()
        stopping.set()
        http.shutdown()
        listenerDone.wait()
        logger.notice("worker stopped", ["worker": configuration.workerID])
        if let other = dispatcher.workerIDTakenBy {
            throw .workerIDTakenOver(configuration.workerID, by: other)
        }
        if let mismatch = dispatcher.schemaMismatch {
            throw WorkerError(.schemaMismatch, "\(mismatch) (found while the worker ran; it stopped)")
        }
    }

    /// Opens the dispatcher's session. While the database is unreachable, refuses connections
    /// (starting up, too many clients) or is read-only (a standby not yet promoted), tries
    /// again with ``Backoff`` for up to ``WorkerConfiguration/startupWait``, logging as
    /// ``OutageLog`` says; returns nil when the worker is stopped meanwhile.
    private func connectAtStart(logger: Logger) throws(WorkerError) -> (Connection, Backend?)? {
        var backoff = Backoff()
        var outage = OutageLog()
        var random = SystemRandomNumberGenerator()
        let giveUpAt = configuration.startupWait.map { ContinuousClock.now + $0 }
        while true {
            let failure: PostgresError
            do throws(PostgresError) {
                let connection = try Connection(conninfo: configuration.databaseURL, applicationName: "webhooky worker")
                let backend = try Dispatcher.prepareSession(connection, logger: logger, lockTimeout: Dispatcher.lockTimeout)
                if outage.isFailing { outage.recovered(logger).notice("connected to the database") }
                return (connection, backend)
            } catch {
                failure = error
            }
            let readOnly = failure.sqlState == SessionSettings.readOnly
            let limit = "--wait-for-database " + (configuration.startupWait?.shortDescription ?? "forever")
            let timedOut = giveUpAt.map { ContinuousClock.now >= $0 } ?? false
            guard failure.isTransient, !timedOut else {
                let waited = timedOut && outage.isFailing ? " (tried for \(limit))" : ""
                throw readOnly ? WorkerError(.databaseReadOnly, "cannot start\(waited): \(failure.message)")
                               : WorkerError(.databaseUnavailable, "cannot connect to the database\(waited): \(failure.message)")
            }
            // The last try is made when the wait is over, not a backoff before it.
            let now = ContinuousClock.now
            let retryAt = min(now + backoff.nextDelay(using: &random), giveUpAt ?? .now + .seconds(3600))
            let hint = Worker.waitingHint(for: failure.message)
            outage.log(readOnly ? "cannot start: the database is read-only; waiting for it to take writes (\(limit))"
                                : "cannot connect to the database; waiting for it (\(limit))",
                       error: failure.message, retryIn: retryAt - now, to: hint.map { logger.with("hint", $0) } ?? logger)
            let stopping = self.stopping
            guard pause(until: retryAt, unless: { stopping.isSet }) else { return nil }
        }
    }

    /// For a refusal that waiting mends only if someone acts meanwhile (a wrong password, a
    /// role or database that does not exist, no `pg_hba.conf` line), what to check: in a
    /// container the worker would otherwise wait for ever without a restart to show it. Read
    /// from libpq's English message (a failed connection carries no SQLSTATE); nil for others.
    static func waitingHint(for message: String) -> String? {
        let lasting = ["authentication failed", "does not exist", "no pg_hba.conf entry", "is not permitted to log in", "password is required"]
        guard lasting.contains(where: { message.contains($0) }) else { return nil }
        return "this lasts until the role, password or database is mended: check --database-url (or DATABASE_URL); "
            + "--wait-for-database 0s (or 1m) makes the worker exit with status 3 instead, for a supervisor to see"
    }

    /// Checks that the connection's role has every privilege the worker needs (those of
    /// `webhooky_worker`) and that row-level security lets it see the rows: without them it
    /// would start, then retry its first claim for ever, or find nothing to send. What this
    /// configuration does without is not asked for: refreshing the wanted events (the worker
    /// says once that it cannot, and goes on), pruning with `--no-prune`, disabling webhooks
    /// with `--no-auto-disable`.
    private static func requirePrivileges(_ connection: Connection, _ configuration: WorkerConfiguration) throws {
        var unused: Set<String> = [RolePrivileges.Feature.wantedEvents.rawValue]
        if configuration.retention == nil { unused.insert(RolePrivileges.Feature.pruning.rawValue) }
        if configuration.autoDisable == nil { unused.insert(RolePrivileges.Feature.autoDisable.rawValue) }
        let missing = try connection.query(RolePrivileges.missingSQL).rows
            .filter { $0[0] == "worker" && !unused.contains($0[2] ?? "") }.compactMap { $0[1] }
        guard missing.isEmpty else { throw notPermitted(connection, lacking: missing.joined(separator: ", ")) }
        guard try connection.query(rowsVisibleSQL).scalar == "t" else {
            throw notPermitted(connection, lacking: "a row-level security policy of webhooky.deliveries that names it or a role it belongs to "
                               + "(the schema's name webhooky_worker and webhooky_admin), so it would see no rows")
        }
    }

    /// Whether row-level security lets the current role see the rows of `webhooky.deliveries`:
    /// it does not apply to the role (its owner, a superuser, `BYPASSRLS`), or a policy names
    /// the role, a role it belongs to, or `PUBLIC`.
    static let rowsVisibleSQL = """
        SELECT NOT row_security_active('webhooky.deliveries'::regclass)
            OR EXISTS (SELECT FROM pg_catalog.pg_policy p
                        WHERE p.polrelid = 'webhooky.deliveries'::regclass
                          AND (0::oid = ANY (p.polroles) OR EXISTS (SELECT FROM unnest(p.polroles) r WHERE pg_has_role(r, 'MEMBER'))))
        """

    /// The error for a role that may not run the worker, saying what it lacks and what to grant;
    /// for a tenant's role, which must not be given the worker's reach into every account,
    /// who runs the worker instead.
    private static func notPermitted(_ connection: Connection, lacking: String) -> WorkerError {
        let role = (try? connection.query("SELECT quote_ident(current_user)").scalar).flatMap { $0 } ?? "this role"
        if (try? connection.query(RolePrivileges.tenantOnlySQL).scalar) == "t" {
            return WorkerError(.notPermitted, "role \(role) is a tenant's (webhooky_tenant) and may not run the worker, which sends every account's webhooks: "
                + "the installation's worker sends this account's too, run by its operator as a role of its own (docs/dba.md, \"Roles\"). "
                + "webhooky status and webhooky tail show how they go.")
        }
        return WorkerError(.notPermitted, "role \(role) may not run the worker: it lacks \(lacking). "
            + "A DBA runs GRANT webhooky_worker TO \(role); (docs/dba.md, \"Roles\")")
    }

    /// Asks the worker to stop: it claims nothing more, waits up to the shutdown grace period
    /// for requests in flight, records their outcomes, releases the rest, and ``run()`` returns.
    /// Safe to call from any thread, more than once.
    public func stop() {
        stopping.set()
        inbox.requestStop()
        pruner.withLock { $0 }?.requestStop()
    }
}

/// A flag set once, read from any thread.
final class StopFlag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// Why the worker could not start. Each code maps to a documented exit status of `webhooky run`.
public struct WorkerError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The database cannot be reached or refused the login. Exit status 3.
        public static let databaseUnavailable = Code(rawValue: "database_unavailable")
        /// The worker's sessions are read-only (a standby, `default_transaction_read_only` on its
        /// role or database): the message says why and what to do. Exit status 3, as it may pass
        /// (a failover ends, the maintenance is over) and a supervisor should restart it.
        public static let databaseReadOnly = Code(rawValue: "database_read_only")
        /// The `webhooky` schema is missing, older or newer than this binary. Exit status 4.
        public static let schemaMismatch = Code(rawValue: "schema_mismatch")
        /// Another live worker runs with the same worker id (`--worker-id`): this one did not
        /// start. Exit status 5.
        public static let workerIDInUse = Code(rawValue: "worker_id_in_use")
        /// Another worker took this worker's id over while it ran (this one was cut off from the
        /// database, or its heartbeat stalled, long enough to look gone): it stopped as on a
        /// stop request. Exit status 6, which a supervisor should restart on: the restart checks
        /// the id again, and refuses with 5 while the other is alive.
        public static let workerIDTakenOver = Code(rawValue: "worker_id_taken_over")
        /// The role lacks privileges the worker needs (those of `webhooky_worker`). Exit status 7,
        /// which needs a DBA (a GRANT), not a restart.
        public static let notPermitted = Code(rawValue: "not_permitted")
        /// Something the worker needs could not be created (out of memory). Exit status 1.
        public static let internalFailure = Code(rawValue: "internal_failure")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The process exit status for this error.
    public var exitStatus: Int32 {
        switch code {
        case .databaseUnavailable, .databaseReadOnly: 3
        case .schemaMismatch: 4
        case .workerIDInUse: 5
        case .workerIDTakenOver: 6
        case .notPermitted: 7
        default: 1
        }
    }
}
