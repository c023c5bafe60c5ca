import Delivery
import Glibc
import HTTPClient
import Log
import Postgres
import Schema
import Templates

/// The worker's main loop, on its own thread: claims due deliveries, renders them, hands them
/// to the HTTP client, and records what came back. It owns its database connection; the
/// listener and the HTTP client reach it only through the ``DispatcherInbox``.
final class Dispatcher {
    /// A delivery handed to the HTTP client and not yet recorded.
    private struct InFlight {
        let deliveryID: Int64
        var machine: DeliveryStateMachine
        let webhookID: Int64
        /// The revision of the webhook its request was rendered from.
        let revision: Int
        let endpoint: String
    }

    private let configuration: WorkerConfiguration
    private let inbox: DispatcherInbox
    private let http: HTTPClient
    /// The configured logger, its lines written together once per turn of the loop (a line per
    /// delivery would otherwise be a `write(2)` per delivery).
    private let logger: Logger
    private let logBuffer: LogBuffer
    private var connection: Connection?
    private var webhooks = WebhookCache()
    /// Requests in flight, by their HTTP request tag. (A delivery may be in flight twice when a
    /// request outlived its lease and the delivery was claimed again; each attempt is its own.)
    private var inFlight: [Int64: InFlight] = [:]
    private var nextTag: Int64 = 0
    /// Outcomes not yet handed to the recorder (see ``outcomesDue``).
    private var unrecorded: [AttemptRecord] = []
    /// Writes outcomes on its own connection.
    private let recorder: OutcomeRecorder
    /// Deliveries to give back unsent (cancelled at shutdown, or waiting in the line of an endpoint that stopped answering).
    private var unreleased: [UnsentClaim] = []
    /// Whether a give-back of ``unreleased`` or ``deferred`` failed in a way that may have
    /// committed it (a lost connection): then it goes again before anything is claimed.
    private var releaseMayHaveCommitted = false
    /// Whether claims this worker made may be in the database without its knowing: a claim or
    /// fan-out whose commit the lost connection's reply never told. Checked after a reconnect
    /// (see ``giveBackStrayClaims()``), else they would wait for their lease (60 s).
    private var strayClaims = StrayClaimsCheck.none
    private enum StrayClaimsCheck {
        case none
        /// Reconnected: a heartbeat must first show that the worker id is still this worker's
        /// (another start may have taken it over while it was cut off: its claims are not strays).
        case waitingForHeartbeat
        /// Made at the next turn with a usable connection.
        case due
    }
    /// Webhooks whose outcomes wait for a lock someone holds (see ``OutcomeRecorder``): they
    /// get no room, none of their deliveries is claimed, until those are written, or their
    /// outcomes would pile up held too. As the recorder said at the start of this turn.
    private var heldWebhooks: Set<Int64> = []
    /// Deliveries to give back because their endpoint was at its limit when they were sent (or
    /// their webhook changed since their claim, see ``send(_:)``: due again at once),
    /// with when they are due again: at once when the webhook's endpoint is fixed (the claim
    /// sees that it is full, and claims them again when a request to it finishes), else (a
    /// webhook whose URL template varies its host, whose claims cannot know the host) in a
    /// second, or, for a host that did not answer (held below ``EndpointAllowance/initial``),
    /// in a request timeout, when its requests in flight have ended (see `claimDeferredAt`),
    /// so that a full endpoint is never claimed and given back in a loop.
    private var deferred: [(claim: UnsentClaim, dueIn: Duration)] = []
    private var claimDeferredAt: ContinuousClock.Instant?
    /// When to claim after a NOTIFY about due deliveries (see ``claimAfterNotify``).
    private var claimAfterNotifyAt: ContinuousClock.Instant?
    /// Deliveries held per endpoint and per webhook: requests in flight, and requests waiting in
    /// the HTTP client's line for their endpoint (see ``budget(of:)``).
    private var endpointLoad: [String: Int] = [:]
    private var webhookLoad: [Int64: Int] = [:]
    /// Which endpoints answer quickly enough to get a line (see ``budget(of:)``).
    private var quickEndpoints: QuickEndpoints
    /// How many requests each endpoint has earned by answering (see ``budget(of:)``).
    private var allowance: EndpointAllowance
    /// Whether the endpoints that got no answer before this worker started are in
    /// ``allowance`` (see ``recallUnansweredEndpoints()``).
    private var unansweredRecalled = false
    /// When the current turn of the loop began (the time of the results it handles).
    private var turnStarted: ContinuousClock.Instant = .now
    /// Webhooks with due deliveries that their endpoint's limit held back (a claim cut short by
    /// their share, a fan-out that left them pending): when a request to that endpoint finishes
    /// (of any webhook: several may share one), claim again; their deliveries would otherwise
    /// wait for the next poll. A webhook leaves the set when a claim that had room for it
    /// found less than its share (its due queue is empty, or it is disabled).
    private var webhooksWithMoreDue: Set<Int64> = []
    private var wantsClaim = true
    /// Whether events may be waiting for their deliveries (after a NOTIFY, a poll, a full batch).
    private var wantsFanOut = true
    /// After a NOTIFY about due deliveries (a test, a redelivery; see ``Listener/eventPayload``),
    /// claim within this long, at most once per that long (a stream of them must not cost a
    /// claim each), whatever the fan-outs find.
    private static let claimAfterNotify: Duration = .milliseconds(50)
    /// Fan-outs continue after the last event fanned out, so that they do not wade through the
    /// index entries of events already done; 0 looks from the start again (after a short batch,
    /// and at least once per poll interval), which finds events whose transactions committed
    /// out of id order.
    private var fanOutAfter: Int64 = 0
    /// Set while the fan-out waits for room (see ``FanOutHold``).
    private var fanOutHold: FanOutHold?
    /// Whether a batch of this range of events had more deliveries than the worker, or one of
    /// its webhooks, could take (``DeliveryStore/fanOutFitting(_:events:after:workerID:lease:room:rooms:capacity:)``
    /// wrote nothing): the rest of the range takes the full statement at once.
    private var fittingFailedInRange = false
    /// Per webhook, the last delivery claimed: the next claim reads its queue after it (past the
    /// index entries of deliveries already claimed, which VACUUM has not removed yet). Cleared
    /// on every poll, so that deliveries that became due out of order (committed by another
    /// worker or an admin with an earlier `next_attempt_at`) wait one poll interval at most;
    /// and on the claim after a NOTIFY about due deliveries (``claimAfterNotify``), so that a
    /// test or a redelivery of a webhook whose queue is being claimed does not wait for the poll.
    private var claimAfter: [Int64: ClaimCursor] = [:]
    /// When to plan the statements again (see ``PlanRenewal``).
    private var planRenewal = PlanRenewal(now: .now)
    /// What this worker's row says: it waits for a NOTIFY (idle), or finds work by itself (busy).
    private var wantsWakeup = true
    /// After going idle, a few quick looks for events committed by transactions that read
    /// `wants_wakeup = false` just before it changed (so sent no NOTIFY).
    private var stragglerChecks: [ContinuousClock.Instant] = []
    /// How fast fan-outs find new events: fast enough, and the worker stays awake (no NOTIFY
    /// wanted), looking for them on its own.
    private var eventRate: EventRate
    private var nextAwakeCheck: ContinuousClock.Instant = .now
    private var nextHeartbeat: ContinuousClock.Instant = .now
    /// Whether a refresh of `webhooky.wanted_events` was refused (said once in the log).
    private var refreshRefused = false
    private var nextPoll: ContinuousClock.Instant = .now
    /// Whether this turn checks the webhooks of the requests in flight (see ``checkLine()``).
    private var lineCheckDue = false
    private var nextReap: ContinuousClock.Instant = .now
    /// Which leases the next reap reads (from shortly before the last reap; all at least every 5 minutes).
    private var reapWindow = ReapWindow()
    /// No database work before this instant: after a lost connection (reconnect then) or a
    /// failing statement (try again then), growing with each failure in a row.
    private var databaseBackoffUntil: ContinuousClock.Instant = .now
    private var backoff = Backoff()
    /// Which of the failed statements and reconnects are logged while the database stays down.
    private var outage = OutageLog()
    private var random = SystemRandomNumberGenerator()
    private var stopDeadline: ContinuousClock.Instant?
    /// The other process that holds this worker's id, once a heartbeat found one (a second
    /// worker started with the same `--worker-id`): the dispatcher stops then, as on a stop
    /// request, rather than share the id's claims with it.
    private(set) var workerIDTakenBy: WorkerRow?
    /// Why the database's schema is no longer this binary's, once a heartbeat found it so (a
    /// newer binary's `webhooky migrate` ran while this worker ran, or an older schema was
    /// restored): the dispatcher stops then, as on a stop request, rather than go on with
    /// statements and rules of another version.
    private(set) var schemaMismatch: String?
    /// The `started_at` of this worker's row: which start of a worker with this id the row
    /// belongs to. It fences the heartbeat, `wants_wakeup` and the row's removal. When the
    /// start-up check could not register the worker, it is one of the worker's own making,
    /// which the first heartbeat that can write inserts (and replaces with the row's text).
    private var startedAt: String
    /// The server process of the dispatcher's session, the current one or the one lost last:
    /// ended, if it still runs, before a new session does anything (see ``LostSession``).
    private var backend: Backend?
    /// How this installation writes `webhook-id` (read once, at the start).
    private let messageIDs: MessageIDs

    /// Finished attempts since the last summary line (see ``DeliveryTally``).
    private var tally: DeliveryTally

    /// Readies a new database connection for the dispatcher: notices go to the log, and the
    /// worker's prepared statements are planned once (generic plans), not on every call.
    ///
    /// A plan made once may be made while the tables are still small (a fresh install, a drained
    /// queue), when a sequential scan looks cheapest; kept as the tables grow, it would turn each
    /// statement into a full scan. Every statement of the worker is written for its indexes, so
    /// the session plans with sequential scans disabled. JIT compilation is off: a table too
    /// small for any index (`webhooky.workers`) still gets a sequential scan, whose "disabled"
    /// cost would pass the JIT threshold and spend 40-70 ms compiling a statement that runs in
    /// microseconds.
    ///
    /// With `lockTimeout`, a statement that waits longer than that for a lock fails (SQLSTATE
    /// `55P03`) instead of waiting for as long as someone holds it. The role's or the
    /// database's `statement_timeout`, `idle_session_timeout` and
    /// `default_transaction_isolation` do not apply (``SessionSettings``), and a read-only
    /// session (a standby, `default_transaction_read_only`) is refused with SQLSTATE `25006`
    /// and what to do (``SessionSettings/requireWritable(_:)``).
    /// Returns the session's server process, when it can be known (see ``LostSession``).
    @discardableResult
    static func prepareSession(_ connection: Connection, logger: Logger, lockTimeout: Duration? = nil) throws(PostgresError) -> Backend? {
        connection.onNotice { logger.notice("database notice", ["message": $0]) }
        let lockTimeout = lockTimeout.map { "; SET lock_timeout = \(DeliveryStore.milliseconds($0))" } ?? ""
        // DateStyle ISO: the claim cursor's timestamp text is read back by the same session, and
        // an abbreviated zone (DateStyle SQL, 'PST' in Asia/Manila) would be read as another one.
        // The overrides first: a role's client_min_messages = debug5 sends a message for every statement.
        try connection.execute(SessionSettings.overridesSQL
                               + "; SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; SET jit = off; SET DateStyle = 'ISO, MDY'" + lockTimeout)
        try SessionSettings.requireWritable(connection)
        return try LostSession.backend(of: connection)
    }

    /// A new connection named `applicationName` (as `pg_stat_activity` shows it), readied by
    /// ``prepareSession(_:logger:lockTimeout:)``, and its server process. When it replaces a
    /// lost session (`lost`), that session's process is ended first if it still runs
    /// (``LostSession/end(_:from:logger:patience:)``).
    static func openSession(_ configuration: WorkerConfiguration, applicationName: String, logger: Logger,
                            lockTimeout: Duration? = nil, replacing lost: Backend? = nil) throws(PostgresError) -> (Connection, Backend?) {
        let connection = try Connection(conninfo: configuration.databaseURL, applicationName: applicationName)
        let backend = try prepareSession(connection, logger: logger, lockTimeout: lockTimeout)
        if let lost { try LostSession.end(lost, from: connection, logger: logger) }
        return (connection, backend)
    }

    /// The longest a statement of the dispatcher waits for a lock: 5 s. Its claims and fan-outs
    /// skip locked rows, but a heartbeat, a release or a lease reap waits for a row or table that
    /// someone's open transaction holds (an admin's `LOCK TABLE`, a forgotten `BEGIN`), and
    /// meanwhile nothing else happens: finished requests are not recorded (their leases run
    /// out, and they are sent again), and a stop request is not seen. Such a statement fails
    /// instead, and is tried again after a backoff like any failing statement.
    static let lockTimeout: Duration = .seconds(5)

    /// `startedAt` is the `started_at` the worker registered its row with, or made up when it
    /// could not (see ``WorkerIDCheck``).
    init(configuration: WorkerConfiguration, connection: Connection, backend: Backend?, inbox: DispatcherInbox, http: HTTPClient,
         startedAt: String, messageIDs: MessageIDs) {
        self.configuration = configuration
        self.backend = backend
        self.startedAt = startedAt
        self.messageIDs = messageIDs
        self.connection = connection
        self.inbox = inbox
        self.http = http
        (self.logger, self.logBuffer) = configuration.logger.buffered()
        self.eventRate = EventRate(awakeAbove: configuration.awakeAboveEventsPerSecond)
        self.quickEndpoints = QuickEndpoints(enabled: configuration.leaseDuration >= configuration.http.requestTimeout * 2 + .seconds(2))
        self.allowance = EndpointAllowance(limit: Dispatcher.endpointLimit(configuration), answeredWithin: configuration.http.requestTimeout / 4)
        self.tally = DeliveryTally(interval: configuration.logSummaryInterval, now: .now)
        self.recorder = OutcomeRecorder(configuration: configuration, logger: configuration.logger) { [inbox] in inbox.wake() }
    }

    /// Runs until a stop is requested and everything held is recorded or released.
    func run() {
        while true {
            let news = inbox.take()
            turnStarted = .now
            if news.notified { wantsFanOut = true }
            noteHeldWebhooks()
            if news.deliveriesDue { claimAfterNotifyAt = claimAfterNotifyAt ?? .now + Dispatcher.claimAfterNotify }
            if news.stopRequested && stopDeadline == nil { beginStopping() }
            if news.webhooksChanged { lineCheckDue = true }  // see checkLine()
            for result in news.results { finish(result) }

            if connection == nil { reconnectIfDue() }
            // New work first (it waits on the network), then the bookkeeping of what finished.
            checkTimers()
            if databaseUsable { replanIfGrown() }
            // A give-back cut off by a lost connection may have committed: it is done again before
            // anything is claimed, or a claim could take that very delivery again, for the same
            // attempt, which the give-back done later would then give back while its request is
            // in flight (and it would be sent twice). One refused (a lock wait) changed nothing.
            if databaseUsable && releaseMayHaveCommitted { releaseUnsent() }
            if databaseUsable && stopDeadline == nil && lineCheckDue { checkLine() }
            if databaseUsable && !unansweredRecalled { recallUnansweredEndpoints() }
            if databaseUsable && stopDeadline == nil && strayClaims == .due { giveBackStrayClaims() }
            if databaseUsable && stopDeadline == nil { claimAndSend() }
            if databaseUsable && stopDeadline == nil { fanOutAndSend() }
            submitOutcomes()
            if databaseUsable { releaseUnsent() }
            if databaseUsable && stopDeadline == nil && ContinuousClock.now >= nextHeartbeat { heartbeat() }
            if databaseUsable && stopDeadline == nil && ContinuousClock.now >= nextReap { reapExpiredLeases() }
            if databaseUsable && stopDeadline == nil { updateWakeup() }

            logSummary()

            if let stopDeadline {
                let written = unrecorded.isEmpty && unreleased.isEmpty && deferred.isEmpty && recorder.unwritten == 0
                if inFlight.isEmpty && (written || ContinuousClock.now >= stopDeadline) {
                    logSummary(final: true)
                    break
                }
                if ContinuousClock.now >= stopDeadline && !inFlight.isEmpty {
                    logger.warning("shutdown grace period over; cancelling requests in flight", ["in_flight": inFlight.count])
                    http.shutdown()
                }
            }
            logBuffer.flush()
            if ((canClaim && wantsClaim) || nextFanOut != nil) && databaseUsable && stopDeadline == nil { continue }
            inbox.wait(timeout: sleepTime())
        }
        defer { logBuffer.flush() }
        logBuffer.flush()
        let unwritten = recorder.finish(by: stopDeadline ?? .now)
        // After the outcomes are written, so that the other workers find what this one left due.
        if let connection { _ = try? WorkerRegistry.removeAndHandOver(connection, id: configuration.workerID, startedAt: startedAt) }
        if unwritten > 0 || !unreleased.isEmpty || !deferred.isEmpty {
            logger.error("stopped without the database (unreachable, or its statements still waiting at the end of the grace period): outcomes not recorded; their leases will expire and they will be sent again", [
                "unrecorded": unwritten, "unreleased": unreleased.count + deferred.count,
            ])
        }
    }

    // MARK: Claiming

    /// Requests that may start now: the limit, less those in flight, less outcomes beyond one
    /// full window that the recorder has not written yet (when it cannot write, for instance
    /// without a connection, the worker stops taking work instead of sending deliveries whose
    /// outcomes would be lost and sent again after their lease).
    private var capacity: Int {
        let unwritten = recorder.unwritten + unrecorded.count
        return configuration.maximumInFlight - inFlight.count - max(0, unwritten - configuration.maximumInFlight)
    }

    /// Claim only when a worthwhile batch fits, so that a busy worker claims in batches.
    private var canClaim: Bool {
        capacity >= max(1, min(configuration.batchSize, configuration.maximumInFlight) / 2) || (inFlight.isEmpty && capacity > 0)
    }

    /// The poll timer (the backstop for lost notifications, and how retries become due) and the
    /// quick looks after going idle.
    private func checkTimers() {
        let now = ContinuousClock.now
        if now >= nextPoll {
            wantsFanOut = true
            wantsClaim = true
            lookFromTheStart()
            claimAfter.removeAll()
            nextPoll = now + configuration.pollInterval
            lineCheckDue = true
            quickEndpoints.forget(unusedSince: now - .seconds(60))
            allowance.forget(unusedSince: now - .seconds(60))
        }
        if let due = claimAfterNotifyAt, now >= due {
            claimAfterNotifyAt = nil
            wantsClaim = true
            // What the NOTIFY is about (a test, a redelivery) is due since its transaction
            // began, which may be before the place a cursor has reached meanwhile.
            claimAfter.removeAll()
        }
        if let due = claimDeferredAt, now >= due {
            claimDeferredAt = nil
            wantsClaim = true
        }
        if awake && now >= nextAwakeCheck {
            wantsFanOut = true
            nextAwakeCheck = now + configuration.awakeCheckInterval
        }
        if let due = stragglerChecks.first, now >= due {
            stragglerChecks.removeFirst()
            wantsFanOut = true
        }
    }

    private func replanIfGrown() {
        guard let connection, planRenewal.isDue(now: .now) else { return }
        // Counted as done even when it fails: a server that refuses DEALLOCATE must not stop
        // the worker (the old plans keep working; a lost connection brings new ones anyway).
        planRenewal.planned(now: .now)
        do {
            try connection.forgetPreparedStatements()
        } catch {
            databaseFailed(error)
        }
    }

    /// Why the next fan-out waits: the next event did not fit (its endpoint, or the worker, was
    /// full). Its deliveries would otherwise be inserted `pending` and claimed by a second
    /// statement, a third more database work per delivery; waiting a moment lets them be
    /// created claimed. The fan-out goes on when that endpoint has half of what it may have in
    /// flight free again (a quarter for a quick endpoint, whose line holds the next requests meanwhile);
    /// while it stays full longer than ``WorkerConfiguration/fanOutPatience``, each fan-out
    /// takes a whole batch and leaves what does not fit `pending` in its webhook's fair queue,
    /// so a slow endpoint holds other webhooks' events back for that long at most.
    private struct FanOutHold {
        /// The webhook whose endpoint had no room; `nil` when the worker was at its own limit.
        var webhookID: Int64?
        /// Since when the fan-out has made no progress.
        var since: ContinuousClock.Instant
        /// The worker's free capacity then: a hold on it ends when it has grown (an event with
        /// more deliveries than the worker can ever take at once waits for the patience), or
        /// after the whole batch the patience let through (unlike a webhook's hold).
        var capacity: Int
    }

    /// The next fan-out, if one should run now: how many events, and whether only what fits.
    private var nextFanOut: (events: Int, onlyWhatFits: Bool)? {
        guard wantsFanOut else { return nil }
        let free = capacity
        let fitting = min(configuration.batchSize, free)
        guard let hold = fanOutHold else { return fitting > 0 ? (fitting, true) : nil }
        if canClaim {
            if let webhookID = hold.webhookID {
                // A quick endpoint's line holds the next requests while the fan-out runs: go on
                // at a quarter of its share; others at half of what they may have in flight
                // (fewer, larger fan-outs).
                let room = room(of: webhookID)
                let endpoint = webhooks.endpoint(of: webhookID)
                let allowed = endpoint.map { allowance.allowed($0) } ?? endpointLimit
                let hasLine = endpoint.map { budget(of: $0) > allowed } ?? false
                let share = hasLine ? endpointLimit / 4 : allowed / 2
                if room >= max(1, share) { return (min(fitting, room), true) }
            } else if free > hold.capacity {
                return (fitting, true)
            }
        }
        if ContinuousClock.now - hold.since >= configuration.fanOutPatience { return (configuration.batchSize, false) }
        return nil
    }

    /// Runs the fan-out `next`: the short statement when its batch fits the room of every
    /// webhook listed in the rooms (each event has a webhook at most once; the statement checks
    /// the others' default room itself), unless the worker's limit or a webhook's room stopped
    /// that statement in this range already; else the full one. Without a hold, the batch may
    /// be cut to the smallest room (the full statement would stop there for a webhook with that
    /// many events), but not below half an endpoint's share; while held, only a batch that fits
    /// as it is. Returns the fan-out and how many events it asked for.
    private func runFanOut(_ next: (events: Int, onlyWhatFits: Bool), on connection: Connection) throws(PostgresError) -> (DeliveryStore.FanOut, Int) {
        let rooms = webhookRooms()
        let fitting = min(next.events, rooms.values.min().map { min($0, endpointLimit) } ?? endpointLimit)
        let fits = fitting == next.events || (fanOutHold == nil && fitting >= max(1, endpointLimit / 2))
        if fitting > 0 && fits && !fittingFailedInRange {
            if let fanOut = try DeliveryStore.fanOutFitting(
                connection, events: fitting, after: fanOutAfter, workerID: configuration.workerID, lease: configuration.leaseDuration,
                room: allowance.initial, rooms: rooms, capacity: capacity
            ) {
                return (fanOut, fitting)
            }
            fittingFailedInRange = true
        }
        let fanOut = try DeliveryStore.fanOut(
            connection, events: next.events, after: fanOutAfter, workerID: configuration.workerID, lease: configuration.leaseDuration,
            room: allowance.initial, rooms: rooms, capacity: capacity, onlyWhatFits: next.onlyWhatFits
        )
        return (fanOut, next.events)
    }

    /// The next fan-out looks from the first event not fanned out (a new range).
    private func lookFromTheStart() {
        fanOutAfter = 0
        fittingFailedInRange = false
    }

    /// Fans out new events: creates their deliveries, claimed when they can be sent now.
    private func fanOutAndSend() {
        guard let connection, wantsFanOut else { return }
        guard let next = nextFanOut else {
            // The worker is full: wait for room (or patience) like for a full endpoint.
            if fanOutHold == nil { fanOutHold = FanOutHold(webhookID: nil, since: .now, capacity: capacity) }
            return
        }
        let fanOut: DeliveryStore.FanOut
        let requested: Int
        let started = ContinuousClock.now
        do {
            (fanOut, requested) = try runFanOut(next, on: connection)
        } catch {
            databaseFailed(error)
            return
        }
        let now = ContinuousClock.now
        eventRate.found(fanOut.events, now: now)
        eventRate.looked(found: fanOut.events, taking: now - started)
        if fanOut.stopped {
            // Wait for room; the events before the one that did not fit are done.
            let since = fanOut.events == 0 ? fanOutHold?.since ?? .now : .now
            fanOutHold = FanOutHold(webhookID: fanOut.stoppedBy, since: since, capacity: capacity)
            if let last = fanOut.lastEventID { fanOutAfter = last }
        } else if fanOut.events == requested, let last = fanOut.lastEventID {
            fanOutAfter = last
            wantsFanOut = true
            // A batch cut to a full endpoint's room was probably all of it: wait for its room
            // again rather than lock a whole batch of events that will not fit. (After a batch
            // of everything, the hold stays as it was: still out of patience.)
            if next.onlyWhatFits, let hold = fanOutHold { fanOutHold = FanOutHold(webhookID: hold.webhookID, since: .now, capacity: capacity) }
        } else {
            // The range is exhausted; if it did not start at the beginning, look once more from
            // there (for events of transactions that committed out of id order).
            wantsFanOut = fanOutAfter != 0
            lookFromTheStart()
            // After a whole batch taken because the patience ran out, a webhook's hold stays,
            // still out of patience: the next fan-out goes on with only what fits once the held
            // endpoint has room again, and takes a whole batch at once while it is still full.
            // Ended here, each new event of a webhook whose endpoint stays full (a dead one that
            // shares the event type of a quick one) would wait the whole patience again, and
            // every other webhook's delivery of it with it. A hold on the worker's own capacity
            // ends: it ends otherwise only when the worker has more room than when it was set,
            // which never comes when that was all of it (an event with more deliveries than
            // the worker may have in flight), and every later fan-out would take a whole batch
            // with the full statement, never wait for room, until a reconnect.
            if next.onlyWhatFits || fanOutHold?.webhookID == nil { fanOutHold = nil }
        }
        if fanOut.pending > 0 { wantsClaim = true }
        // Deliveries left pending because their endpoint was at its limit: claim them as soon as
        // one of its requests finishes (a claim made now would skip the webhook, its room being 0).
        webhooksWithMoreDue.formUnion(fanOut.pendingWebhooks)
        planRenewal.record(fanOut.pending + fanOut.claimed.count)
        guard !fanOut.claimed.isEmpty else {
            databaseWorked()
            return
        }
        do {
            try webhooks.load(for: fanOut.claimed, from: connection)
        } catch {
            unreleased.append(contentsOf: fanOut.claimed.map(\.unsent))
            databaseFailed(error)
            return
        }
        databaseWorked()
        send(fanOut.claimed)
    }

    private func claimAndSend() {
        guard wantsClaim, canClaim, let connection else { return }
        let limit = min(configuration.batchSize, capacity)
        let rooms = webhookRooms()
        let claimed: [ClaimedDelivery]
        do {
            claimed = try DeliveryStore.claim(
                connection, limit: limit, workerID: configuration.workerID, lease: configuration.leaseDuration,
                room: allowance.initial, rooms: rooms, after: claimAfter
            )
        } catch {
            databaseFailed(error)
            return
        }
        do {
            try webhooks.load(for: claimed, from: connection)
        } catch {
            // Claimed but cannot be rendered now: give them back (or, if the connection is
            // gone, their lease will run out) rather than hold them unsent.
            unreleased.append(contentsOf: claimed.map(\.unsent))
            databaseFailed(error)
            return
        }
        databaseWorked()
        planRenewal.record(claimed.count)
        // A webhook that filled its share may have more due: claim again as soon as one of its
        // requests finishes (or right away when the whole batch was used).
        var claimedPerWebhook: [Int64: Int] = [:]
        for delivery in claimed {
            claimedPerWebhook[delivery.webhookID, default: 0] += 1
            if let position = delivery.position, claimAfter[delivery.webhookID].map({ $0 < position }) ?? true {
                claimAfter[delivery.webhookID] = position
            }
        }
        for id in webhooksWithMoreDue where (rooms[id] ?? allowance.initial) > 0 && claimedPerWebhook[id, default: 0] < (rooms[id] ?? allowance.initial) {
            webhooksWithMoreDue.remove(id)
        }
        for (id, count) in claimedPerWebhook where count >= (rooms[id] ?? allowance.initial) {
            webhooksWithMoreDue.insert(id)
        }
        wantsClaim = claimed.count == limit
        send(claimed)
    }

    /// Before its first claim: the endpoints whose last request, within the hour
    /// (``EndpointAllowance/unansweredMemory``) before this worker started, got no answer (the
    /// attempts on record say so, whichever worker made them) may have 1 request in flight, as
    /// if this worker had seen them fail. Otherwise each would start at
    /// ``EndpointAllowance/initial``, and after a restart amid an outage 32 dead endpoints (by
    /// default) would take all the worker's requests until their first timeouts. A statement
    /// that fails with the connection still up (say, an old role without SELECT on
    /// `webhooky.attempts`) is not tried again: the endpoints then start as new ones.
    private func recallUnansweredEndpoints() {
        guard let connection else { return }
        do {
            let unanswered = try DeliveryStore.unansweredWebhooks(connection, within: EndpointAllowance.unansweredMemory)
            try webhooks.load(ids: Set(unanswered.map(\.id)), from: connection)
            let now = ContinuousClock.now
            for (id, endedAgo) in unanswered {
                if let endpoint = webhooks.endpoint(of: id) { allowance.recallUnanswered(endpoint, endedAt: now - endedAgo) }
            }
        } catch {
            guard !error.isTransient, connection.isConnected else { return databaseFailed(error) }
            logger.warning("cannot read which endpoints did not answer before this start; they start as new ones", ["error": error.description])
        }
        unansweredRecalled = true
    }

    /// Whether a finished request to `endpoint` (of webhook `webhookID`) makes room for a
    /// webhook in ``webhooksWithMoreDue``: the same webhook, or one with the same fixed endpoint
    /// (or one whose endpoint is not known in advance).
    private func frees(endpoint: String, webhookID: Int64) -> Bool {
        guard !webhooksWithMoreDue.isEmpty else { return false }
        if webhooksWithMoreDue.contains(webhookID) { return true }
        return webhooksWithMoreDue.contains { (webhooks.endpoint(of: $0) ?? endpoint) == endpoint }
    }

    /// Requests in flight one endpoint may have: the configured limit, but never more than
    /// three quarters of all, so that other endpoints always keep some. What an endpoint may
    /// have now is what it has earned of it (see ``EndpointAllowance``).
    private var endpointLimit: Int { Dispatcher.endpointLimit(configuration) }

    private static func endpointLimit(_ configuration: WorkerConfiguration) -> Int {
        max(1, min(configuration.maximumInFlightPerEndpoint, configuration.maximumInFlight * 3 / 4))
    }

    /// Deliveries one endpoint may hold: the requests in flight it has earned (see
    /// ``EndpointAllowance``), and, once it has earned all of ``endpointLimit`` and while its
    /// requests are quick (see ``QuickEndpoints``), as many again waiting in the HTTP client's
    /// line for it (within three quarters of all), which start as soon as one of its requests
    /// ends, without waiting for the database: the next fan-out is written while they go out.
    ///
    /// With `earned` false (a webhook whose URL template varies its origin: its claims cannot
    /// know which endpoint, or what it earned, before the URL is rendered), ``endpointLimit``
    /// (and the line when it is quick), unless the endpoint did not answer (held below
    /// ``EndpointAllowance/initial``): then what it earned, like any other, and what goes
    /// beyond it is given back, due a request timeout later (see ``deferred``); `nil`: such a webhook's own share.
    private func budget(of endpoint: String?, earned: Bool = true) -> Int {
        guard let endpoint else { return endpointLimit }
        let earnedSoFar = allowance.allowed(endpoint)
        let allowed = earned || earnedSoFar < allowance.initial ? earnedSoFar : endpointLimit
        guard allowed >= endpointLimit, quickEndpoints.contains(endpoint) else { return allowed }
        return max(endpointLimit, min(2 * configuration.maximumInFlightPerEndpoint, configuration.maximumInFlight * 3 / 4))
    }

    /// Takes the recorder's held webhooks for this turn; once one is written, its deliveries
    /// (pending meanwhile) are claimed and its events fanned out again.
    private func noteHeldWebhooks() {
        let held = recorder.heldWebhooks
        guard held != heldWebhooks else { return }
        if !heldWebhooks.isSubset(of: held) {
            wantsClaim = true
            wantsFanOut = true
        }
        heldWebhooks = held
    }

    /// The share one webhook may still take now (see ``webhookRooms()``).
    private func room(of webhookID: Int64) -> Int {
        if heldWebhooks.contains(webhookID) { return 0 }
        let endpoint = webhooks.endpoint(of: webhookID)
        var room = budget(of: endpoint) - webhookLoad[webhookID, default: 0]
        if let endpoint, let load = endpointLoad[endpoint] {
            room = min(room, budget(of: endpoint) - load)
        }
        return max(0, room)
    }

    /// The share each webhook may still take, for the webhooks whose share is not the
    /// statements' default (what a new endpoint may have, ``EndpointAllowance/initial``): those
    /// with requests in flight, and those whose endpoint has earned more, was cut below it (it
    /// did not answer) or holds requests of another webhook. Its endpoint's budget minus what
    /// that endpoint (or the webhook itself) already holds.
    private func webhookRooms() -> [Int64: Int] {
        var rooms: [Int64: Int] = [:]
        for (id, load) in webhookLoad {
            rooms[id] = max(0, budget(of: webhooks.endpoint(of: id)) - load)
        }
        // A webhook whose URL template varies its origin: its own share (its claims cannot know
        // the endpoint, nor what that earned; ``send(_:)`` holds a host that did not answer to
        // what it earned, within the share: however many of its hosts are dead, together they
        // hold no more than the share, and the worker's other webhooks keep the rest).
        for id in webhooks.templatedIDs where rooms[id] == nil { rooms[id] = endpointLimit }
        // The webhooks of the endpoints that hold requests or may have more or fewer than the default.
        for endpoint in Set(endpointLoad.keys).union(allowance.endpointsNotAtInitial) {
            let load = endpointLoad[endpoint, default: 0]
            let budget = budget(of: endpoint)
            guard load > 0 || budget != allowance.initial else { continue }
            for id in webhooks.webhooks(at: endpoint) { rooms[id] = min(rooms[id] ?? budget, max(0, budget - load)) }
        }
        for id in heldWebhooks { rooms[id] = 0 }
        return rooms
    }

    private func send(_ claimed: [ClaimedDelivery]) {
        guard !claimed.isEmpty else { return }
        var requests: [HTTPRequest] = []
        requests.reserveCapacity(claimed.count)
        let timestamp = Int(wallClock())
        for delivery in claimed {
            if webhooks.changedSinceClaim(delivery) {
                // The claim decided on a revision that a change committed since replaced (a
                // pause, an edit, a move to another account) or deleted: sent now, it would go
                // out as the webhook is after the change, which the claim did not check. Given
                // back, due now: claimed again as the webhook is, or left as a pause, move or
                // delete left it (ended dead, the unmade attempt not counted).
                deferred.append((delivery.unsent, .zero))
                continue
            }
            var machine = DeliveryStateMachine(attempt: delivery.attempt, retryBase: delivery.retryBase, policy: configuration.retryPolicy)
            do {
                let webhook = try webhooks.webhook(for: delivery).get()
                machine.followsRedirects = webhook.maximumRedirects > 0
                let payload = try JSONParser.parsePayload(delivery.payload)
                let rendered = try webhook.request(payload: payload, messageID: messageIDs.messageID(deliveryID: delivery.id), timestamp: timestamp,
                                                   isTest: delivery.isTest, limits: configuration.requestLimits)
                // A fixed origin (the usual case) was keyed once, when the webhook was parsed.
                let endpoint = webhook.endpoint ?? Endpoint.key(forURL: rendered.url) ?? rendered.url
                if endpointLoad[endpoint, default: 0] >= budget(of: endpoint, earned: webhook.endpoint != nil) {
                    // Another webhook on the same endpoint filled it meanwhile: try again when it
                    // has room.
                    // A host that did not answer has room again only once one of its requests
                    // ended, within a request timeout: its deliveries claimed again every second
                    // meanwhile would each be claimed and given back some 15 times per timeout,
                    // for as long as it is down.
                    let dueIn: Duration = webhook.endpoint != nil ? .zero
                        : allowance.allowed(endpoint) < allowance.initial ? configuration.http.requestTimeout : .seconds(1)
                    deferred.append((delivery.unsent, dueIn))
                    if webhook.endpoint != nil { webhooksWithMoreDue.insert(delivery.webhookID) }
                    continue
                }
                endpointLoad[endpoint, default: 0] += 1
                webhookLoad[delivery.webhookID, default: 0] += 1
                requests.append(HTTPRequest(
                    tag: nextTag,
                    method: rendered.method,
                    url: rendered.url,
                    headers: rendered.headers.map {
                        HTTPHeader(name: $0.name, value: $0.value, staysWithOrigin: $0.staysWithOrigin, valueWithoutBody: $0.valueWithoutBody)
                    },
                    body: rendered.body.map { Array($0.utf8) },
                    maximumRedirects: webhook.maximumRedirects,
                    endpoint: endpoint
                ))
                inFlight[nextTag] = InFlight(deliveryID: delivery.id, machine: machine, webhookID: delivery.webhookID, revision: webhook.revision,
                                             endpoint: endpoint)
                nextTag += 1
            } catch {
                // The request cannot be made: the delivery ends dead with the reason.
                let completion = machine.finish(.unsendable("cannot build the request: \(error)"), now: wallClock(), random: &random)
                complete(deliveryID: delivery.id, webhookID: delivery.webhookID, attempt: delivery.attempt, completion: completion,
                         errorCode: DeliveryStore.invalidRequestCode, startedAt: wallClock(), duration: .zero, responseBody: nil)
            }
        }
        // What was logged before (a reconnect, the outcomes just finished) goes out before the
        // requests it led to.
        logBuffer.flush()
        http.send(requests)
    }

    /// Takes out of the HTTP client's line the deliveries whose webhook changed since their
    /// request was rendered, so that none goes out as the webhook was before the change
    /// committed: those whose webhook has another revision now (any UPDATE of the row makes one:
    /// a pause, an edit, a move) or was deleted. They come back cancelled and are given back
    /// unsent (see ``finish(_:)``): a paused webhook's then wait pending, an edited one's are
    /// claimed again with the new revision, those a delete or move ended stay as it left them;
    /// a paused webhook's tests, claimed again with the new revision, stay. Requests already
    /// started go on. Made when a NOTIFY says a webhook changed (it does not say which, see
    /// ``Listener/webhookChangedPayload``; any role may send one, so the revisions decide), when
    /// the listener has connected again (a NOTIFY sent meanwhile never reached it), and once per
    /// poll: a worker that does not listen (`--no-listen`, behind a transaction-mode pooler)
    /// would otherwise send what waits in line as the webhook was. A check that fails stays due: it is made again as soon as the database may be used
    /// (a change's NOTIFY comes once, and the next poll may be long after the line has gone out).
    private func checkLine() {
        guard let connection, !inFlight.isEmpty else {
            lineCheckDue = false
            return
        }
        let current: [Int64: Int]
        do {
            current = try DeliveryStore.revisions(connection, ids: Array(Set(inFlight.values.map(\.webhookID))))
        } catch {
            databaseFailed(error)
            return
        }
        lineCheckDue = false
        let stale = inFlight.compactMap { tag, entry in current[entry.webhookID] == entry.revision ? nil : tag }
        if !stale.isEmpty { http.cancelWaiting(tags: Set(stale)) }
    }

    // MARK: Outcomes

    private func finish(_ result: HTTPResult) {
        guard var entry = inFlight.removeValue(forKey: result.tag) else { return }
        endpointLoad[entry.endpoint, default: 1] -= 1
        if endpointLoad[entry.endpoint] == 0 { endpointLoad[entry.endpoint] = nil }
        webhookLoad[entry.webhookID, default: 1] -= 1
        if webhookLoad[entry.webhookID] == 0 { webhookLoad[entry.webhookID] = nil }
        if frees(endpoint: entry.endpoint, webhookID: entry.webhookID) { wantsClaim = true }
        // Only an answer says how quick the endpoint is (a refused connection or a cancelled
        // request takes no time at all); a request that could not get one costs the endpoint
        // half of what it may have in flight.
        switch result.outcome {
        case .success:
            quickEndpoints.finished(entry.endpoint, after: result.duration, now: turnStarted)
            allowance.answered(entry.endpoint, after: result.duration, now: turnStarted)
        case .failure(let error) where HTTPError.Code.noAnswer.contains(error.code):
            quickEndpoints.unanswered(entry.endpoint, now: turnStarted)
            allowance.unanswered(entry.endpoint, now: turnStarted)
        case .failure:
            break
        }
        let attemptResult: DeliveryStateMachine.AttemptResult
        var responseBody: String? = nil
        switch result.outcome {
        case .success(let response):
            attemptResult = .response(status: response.status, retryAfter: response.retryAfter)
            // PostgreSQL text cannot hold NUL; invalid UTF-8 becomes U+FFFD when decoded.
            responseBody = String(decoding: response.body, as: UTF8.self).replacingNUL()
        case .failure(let error) where error.code == .cancelled:
            unreleased.append(UnsentClaim(deliveryID: entry.deliveryID, attempt: entry.machine.attempt))
            return
        case .failure(let error) where error.code == .interrupted:
            // Sent, maybe received: an attempt on record, due again at once.
            attemptResult = .interrupted(DeliveryStore.interruptedPrefix + " while the request was in flight (its shutdown grace period was over); it may have arrived, and will be sent again")
        case .failure(let error) where error.code == .invalidURL || error.code == .addressNotAllowed:
            // Retrying cannot help: a malformed URL, or an address the policy refuses.
            attemptResult = .unsendable(error.message)
        case .failure(let error):
            attemptResult = .transportFailure(error.message)
        }
        let completion = entry.machine.finish(attemptResult, now: wallClock(), random: &random)
        // An answer has its status; a failure is recorded with the HTTP client's code for it.
        let errorCode = if case .failure(let error) = result.outcome { error.code.rawValue } else { String?.none }
        complete(deliveryID: entry.deliveryID, webhookID: entry.webhookID, attempt: entry.machine.attempt, completion: completion,
                 errorCode: errorCode, startedAt: result.startedAt, duration: result.duration, responseBody: responseBody)
    }

    private func complete(deliveryID: Int64, webhookID: Int64, attempt: Int, completion: DeliveryStateMachine.Completion,
                          errorCode: String?, startedAt: Double, duration: Duration, responseBody: String?) {
        let milliseconds = duration.inSeconds * 1000
        if unrecorded.isEmpty { firstUnrecordedAt = .now }
        unrecorded.append(AttemptRecord(
            deliveryID: deliveryID, webhookID: webhookID, attempt: attempt, completion: completion, errorCode: errorCode,
            startedAt: startedAt, durationMilliseconds: milliseconds, responseBody: responseBody
        ))
        let rounded = (milliseconds * 10).rounded() / 10
        tally.count(completion.state)
        switch completion.state {
        case .succeeded:
            logger.debug("delivery succeeded", ["delivery": deliveryID, "webhook": webhookID, "attempt": attempt, "status": completion.status ?? 0, "duration_ms": rounded])
        case .pending:
            let retry = completion.retryIn.map(\.shortDescription) ?? "?"
            logger.warning("delivery failed, will retry", ["delivery": deliveryID, "webhook": webhookID, "attempt": attempt, "status": completion.status.map(String.init) ?? "none",
                                                           "error": completion.error ?? "", "retry_in": retry, "duration_ms": rounded])
        default:
            logger.error("delivery dead", ["delivery": deliveryID, "webhook": webhookID, "attempt": attempt, "status": completion.status.map(String.init) ?? "none",
                                           "error": completion.error ?? "", "duration_ms": rounded])
        }
    }

    /// Outcomes are written in batches: at once when a batch is full, when the worker stops,
    /// or when nothing else is in flight; otherwise once the oldest has waited
    /// ``recordingDelay``. Under a steady trickle this turns one statement per outcome into one
    /// per few milliseconds; the receiver's request is not delayed (only its record).
    private static let recordingDelay: Duration = .milliseconds(10)
    private var firstUnrecordedAt: ContinuousClock.Instant?

    private var outcomesDue: Bool {
        guard let first = firstUnrecordedAt else { return false }
        return unrecorded.count >= configuration.batchSize || inFlight.isEmpty || stopDeadline != nil
            || ContinuousClock.now - first >= Dispatcher.recordingDelay
    }

    /// Hands the outcomes over to the recorder when they are due.
    private func submitOutcomes() {
        guard outcomesDue else { return }
        recorder.submit(unrecorded)
        unrecorded.removeAll(keepingCapacity: true)
        firstUnrecordedAt = nil
    }

    /// Gives back deliveries claimed and not sent (cancelled at shutdown or behind a request
    /// without an answer, their endpoint full, or their webhook changed since their claim).
    private func releaseUnsent() {
        guard let connection, !unreleased.isEmpty || !deferred.isEmpty else { return }
        do {
            if !unreleased.isEmpty {
                try DeliveryStore.release(connection, unreleased, workerID: configuration.workerID)
                unreleased.removeAll()
            }
            if !deferred.isEmpty {
                // Each part is forgotten once given back: given back again after another part
                // failed, it would give back the same delivery claimed anew meanwhile, for the same
                // attempt, while its request is in flight (and it would be sent twice).
                for (delay, claims) in Dictionary(grouping: deferred, by: \.dueIn).sorted(by: { $0.key < $1.key }) {
                    try DeliveryStore.release(connection, claims.map(\.claim), workerID: configuration.workerID, dueIn: delay)
                    deferred.removeAll { $0.dueIn == delay }
                    if delay == .zero {
                        // Due now: a claim right away takes them if their endpoint has room again,
                        // and keeps them for a finishing request if not.
                        wantsClaim = true
                    } else {
                        claimDeferredAt = min(claimDeferredAt ?? .now + delay, .now + delay)
                    }
                }
            }
            releaseMayHaveCommitted = false
        } catch {
            if error.isTransient || !connection.isConnected { releaseMayHaveCommitted = true }
            databaseFailed(error)
        }
    }

    private func reapExpiredLeases() {
        guard let connection else { return }
        do {
            let reaped = try DeliveryStore.reapExpiredLeases(connection, window: &reapWindow)
            if reaped > 0 {
                logger.warning("took back deliveries whose lease expired", ["count": reaped])
                wantsClaim = true
            }
            let ended = try DeliveryStore.endDeliveriesOfDeletedWebhooks(connection)
            if ended > 0 {
                logger.warning("ended deliveries of deleted webhooks (created while the delete was being committed)", ["count": ended])
            }
        } catch {
            databaseFailed(error)
        }
        nextReap = .now + max(.seconds(1), configuration.leaseDuration / 4)
    }

    /// Says what the deliveries came to since the last summary, when one is due.
    private func logSummary(final: Bool = false) {
        guard let summary = tally.take(now: .now, final: final) else { return }
        logger.info("deliveries", ["succeeded": summary.succeeded, "retrying": summary.retrying, "dead": summary.dead,
                                   "per_second": summary.perSecond, "in_flight": inFlight.count])
    }

    // MARK: Heartbeat and wake-ups

    private func heartbeat() {
        guard let connection else { return }
        do {
            switch try WorkerRegistry.upsert(connection, id: configuration.workerID, host: configuration.host, pid: getpid(), version: Worker.version,
                                             listening: configuration.listen, wantsWakeup: wantsWakeup, startedAt: startedAt) {
            case .written(let start):
                startedAt = start
                // The start checked the version; a migration may have run since.
                do {
                    try Migrator(connection: connection).requireCurrent()
                    if strayClaims == .waitingForHeartbeat { strayClaims = .due }
                } catch let error as SchemaError {
                    logger.error("the schema is no longer this binary's; stopping", [
                        "error": error.message, "hint": "start the webhooky binary that matches it (the one that migrated)",
                    ])
                    schemaMismatch = error.message
                    return beginStopping()
                } catch let error as PostgresError {
                    databaseFailed(error)
                } catch {
                    logger.error("cannot check the schema version", ["error": "\(error)"])
                }
            case .heldBy(let other):
                logger.error("another worker took over this worker id; stopping", [
                    "worker": configuration.workerID, "other_host": other.host, "other_pid": other.pid, "other_started_at": other.startedAt,
                    "hint": WorkerIDCheck.hint(for: configuration.workerID),
                ])
                workerIDTakenBy = other
                return beginStopping()
            case nil:
                break
            }
        } catch {
            databaseFailed(error)
        }
        refreshWantedEvents(connection)
        nextHeartbeat = .now + WorkerRegistry.heartbeatInterval
    }

    /// Gives back unsent the claims this worker holds in the database and knows nothing of: a
    /// claim or fan-out that committed while the connection was lost before its answer came.
    /// Known are the requests in flight (and in the HTTP client's line), the deliveries waiting
    /// to be given back, and the outcomes not yet written, here or in the recorder (whose list
    /// is read before the claims are: it only shrinks meanwhile, since outcomes are handed to
    /// it on this thread).
    private func giveBackStrayClaims() {
        guard let connection else { return }
        var known = Set(unreleased)
        for entry in inFlight.values { known.insert(UnsentClaim(deliveryID: entry.deliveryID, attempt: entry.machine.attempt)) }
        for (claim, _) in deferred { known.insert(claim) }
        for record in unrecorded { known.insert(record.claim) }
        known.formUnion(recorder.claimsInHand)
        do {
            let stray = try DeliveryStore.ownClaims(connection, workerID: configuration.workerID).filter { !known.contains($0) }
            if !stray.isEmpty {
                try DeliveryStore.release(connection, stray, workerID: configuration.workerID)
                logger.warning("gave back deliveries claimed just before the connection was lost (their claim committed unseen); they are due now",
                               ["count": stray.count])
                wantsClaim = true
            }
            strayClaims = .none
        } catch {
            databaseFailed(error)
        }
    }

    /// A refresh that fails (a role without the right to it) costs only time, never an
    /// event: it is said once, and the worker goes on.
    private func refreshWantedEvents(_ connection: Connection) {
        guard connection.isConnected else { return }
        do {
            try WorkerRegistry.refreshWantedEvents(connection)
        } catch {
            guard connection.isConnected else { return databaseFailed(error) }
            if !refreshRefused {
                logger.warning("cannot refresh webhooky.wanted_events: triggers of events that no webhook wants any more keep running until it works",
                               ["error": error.description, "hint": "GRANT EXECUTE ON FUNCTION webhooky.refresh_wanted_events() TO webhooky_worker (or SELECT webhooky.grant_roles())"])
                refreshRefused = true
            }
        }
    }

    /// Whether events come fast enough that the worker looks for them on its own.
    private var awake: Bool { eventRate.isAwake(now: .now) }

    /// Busy (more work waiting right now): stop asking for NOTIFYs, which cost every committing
    /// transaction a database-wide lock. Idle again: ask for them, and look a few more times
    /// for events whose transactions read the flag just before it changed.
    private func updateWakeup() {
        guard configuration.listen, let connection else { return }
        let busy = wantsFanOut || (wantsClaim && canClaim) || inFlight.count >= configuration.maximumInFlight || awake
        guard busy == wantsWakeup else { return }
        do {
            try WorkerRegistry.setWantsWakeup(connection, id: configuration.workerID, startedAt: startedAt, !busy)
            wantsWakeup = !busy
            if !busy {
                let now = ContinuousClock.now
                stragglerChecks = [1, 3, 10, 30, 100, 300].map { now + .milliseconds($0) }
            }
        } catch {
            databaseFailed(error)
        }
    }

    // MARK: Database connection

    private var databaseUsable: Bool { connection != nil && ContinuousClock.now >= databaseBackoffUntil }

    /// After a failed statement: reconnect later if the connection is gone (or the server is
    /// read-only, shutting down...), else try again later; either way with growing backoff,
    /// never in a tight loop.
    private func databaseFailed(_ error: PostgresError) {
        let delay = backoff.nextDelay(using: &random)
        databaseBackoffUntil = .now + delay
        // The DETAIL (a lock's, a process's number) differs from one failure to the next.
        let reason = "\(error.sqlState ?? "") \(error.message)"
        if !error.isTransient, connection?.isConnected == true {
            outage.log("database statement failed; trying again", error: error.description, reason: reason, retryIn: delay, level: .error, to: logger)
            return
        }
        outage.log("lost the database connection; will reconnect", error: error.description, reason: reason, retryIn: delay, level: .error, to: logger)
        connection = nil
    }

    /// After statements that worked: the next failure starts a new backoff, and is logged.
    private func databaseWorked() {
        backoff.reset()
        outage.ended("database statements work again", to: logger)
    }

    private func reconnectIfDue() {
        guard ContinuousClock.now >= databaseBackoffUntil else { return }
        do {
            (connection, backend) = try Dispatcher.openSession(configuration, applicationName: "webhooky worker", logger: logger,
                                                               lockTimeout: Dispatcher.lockTimeout, replacing: backend)
            wantsClaim = true
            wantsFanOut = true
            // Look from the start (a cursor's timestamp text belongs to the old session), and
            // plan with the tables as they are now.
            lookFromTheStart()
            reapWindow.readEveryLeaseNext()
            fanOutHold = nil
            claimAfter.removeAll()
            planRenewal = PlanRenewal(now: .now)
            nextReap = .now
            nextHeartbeat = .now
            strayClaims = .waitingForHeartbeat
            outage.recovered(logger).notice("reconnected to the database")
        } catch {
            let delay = backoff.nextDelay(using: &random)
            databaseBackoffUntil = .now + delay
            let what = error.sqlState == SessionSettings.readOnly ? "cannot write to the database" : "cannot reach the database"
            outage.log("\(what); retrying", error: error.message, retryIn: delay, to: logger)
        }
    }

    // MARK: Timing and shutdown

    private func beginStopping() {
        stopDeadline = .now + configuration.shutdownGracePeriod
        // Deliveries waiting in the HTTP client's line are given back at once, not sent during
        // the grace period (where they could be cut short and sent again).
        http.stopStarting()
        recorder.stopGathering()
        logger.notice("stopping: finishing requests in flight", ["in_flight": inFlight.count])
    }

    private func sleepTime() -> Duration {
        let now = ContinuousClock.now
        var wake = min(nextPoll, nextReap, nextHeartbeat)
        if let straggler = stragglerChecks.first { wake = min(wake, straggler) }
        if awake { wake = min(wake, nextAwakeCheck) }
        if let first = firstUnrecordedAt { wake = min(wake, first + Dispatcher.recordingDelay) }
        if let claimDeferredAt { wake = min(wake, claimDeferredAt) }
        if let claimAfterNotifyAt { wake = min(wake, claimAfterNotifyAt) }
        if wantsFanOut, let hold = fanOutHold { wake = min(wake, hold.since + configuration.fanOutPatience) }
        if !databaseUsable { wake = databaseBackoffUntil }
        if let stopDeadline { wake = min(wake, stopDeadline) }
        return max(.milliseconds(1), min(wake - now, .seconds(1)))
    }

    private func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

extension String {
    /// The text with every NUL replaced by U+FFFD (PostgreSQL text cannot hold NUL).
    func replacingNUL() -> String {
        guard utf8.contains(0) else { return self }
        return String(unicodeScalars.map { $0 == "\u{0}" ? "\u{FFFD}" : Character($0) })
    }
}
