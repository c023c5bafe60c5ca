import Dispatch
import Foundation
import Log
import Postgres
import Synchronization
import ThreadNames

/// Writes attempt outcomes on its own database connection and thread, so that the dispatcher's
/// connection fans out and claims while outcomes are being written: PostgreSQL works on both
/// statements at once, and neither waits for the other's commit (WAL flush). Outcomes are
/// written in the order handed over, in batches of at most ``batchLimit``; the first outcome of
/// a batch waits up to ``WorkerConfiguration/outcomeGathering`` for others (unless
/// ``gatherLimit`` or the worker's in-flight limit have come, or the worker is stopping), so
/// that a steady stream costs a statement per few milliseconds. Outcomes that come while a
/// batch is being written start the next batch when that write is done.
///
/// If the server refuses a batch (not a connection problem), each outcome is written on its
/// own, so one that cannot be stored never blocks the rest; such an outcome is retried
/// without its response body, then also without its webhook's health (and a disable), and
/// dropped (with an error in the log; its lease will run out and it will be sent again) only
/// if that fails too; a cancelled statement refuses nothing, and is first tried again as it
/// was. A lost connection midway keeps only the outcomes not
/// yet written; they are written after reconnecting, with growing backoff (``Backoff``), but
/// first those that the statement cut off may have written are looked up and left out
/// (``DeliveryStore/unrecorded(_:_:workerID:)``), so none is written twice (which would count a
/// failure twice in the webhook's health).
///
/// A statement waits at most ``lockWait`` for a row lock. Someone's open transaction that holds
/// rows an outcome writes (an admin's `DELETE` or `UPDATE` of a webhook, not yet committed, holds
/// its deliveries or its health row) would otherwise hold back every outcome of the worker, and
/// with them its capacity, until it ends. A batch that waited too long is written one webhook at
/// a time; the outcomes of a webhook whose rows are still held are kept apart (``HeldOutcomes``)
/// and tried again every ``heldRetryEvery``, while the other webhooks' outcomes go on, and the
/// dispatcher claims nothing more of that webhook until they are written (``heldWebhooks``):
/// what it sent would only be held too.
final class OutcomeRecorder: Sendable {
    /// Outcomes per statement. Default 1,000 (after an outage thousands may be waiting).
    static let batchLimit = 1_000
    /// A batch this large is written without waiting for more (``WorkerConfiguration/outcomeGathering``).
    static let gatherLimit = 100
    /// The longest a statement of the recorder waits for a row lock: 1 s. Outcomes contend only
    /// with another worker's outcomes for a webhook's health row, for milliseconds.
    static let lockWait: Duration = .seconds(1)
    /// How often outcomes held back by someone's lock are tried again: every 5 s.
    static let heldRetryEvery: Duration = .seconds(5)

    private struct State {
        var queued: [AttemptRecord] = []
        /// Taken by the thread and not yet written.
        var writing = 0
        /// The claims of the outcomes the thread took (gathered, being written or held), as of
        /// the last time it took some: with ``queued``, every claim whose outcome is unwritten
        /// (and some written since, which no longer matter).
        var inHand: [UnsentClaim] = []
        /// Set by ``finish(by:)``: write what is left, trying until then, and stop.
        var finishBy: ContinuousClock.Instant?
        /// Set by ``stopGathering()``: write what comes at once.
        var gatheringStopped = false
        /// Cancels the statement running on the thread's connection, while it has one.
        var canceller: StatementCanceller?
        /// Set by ``finish(by:)`` once the time is up: write nothing more, not even one by one.
        var givenUp = false
        /// The webhooks whose outcomes are held (see ``HeldOutcomes``).
        var heldWebhooks: Set<Int64> = []
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let configuration: WorkerConfiguration
    private let logger: Logger
    private let onWritten: @Sendable () -> Void

    /// Starts the recorder's thread; it connects when it has the first outcomes to write.
    /// `onWritten` is called (on that thread) each time everything handed over is written.
    init(configuration: WorkerConfiguration, logger: Logger, onWritten: @escaping @Sendable () -> Void) {
        self.configuration = configuration
        self.logger = logger
        self.onWritten = onWritten
        let thread = Thread { [self] in
            nameThisThread("webhooky-record")
            run()
        }
        thread.start()
    }

    /// Hands outcomes over for writing.
    func submit(_ records: [AttemptRecord]) {
        guard !records.isEmpty else { return }
        state.withLock { $0.queued.append(contentsOf: records) }
        wake.signal()
    }

    /// From now on writes outcomes as they come (the worker is stopping: nothing more is worth
    /// waiting for).
    func stopGathering() {
        state.withLock { $0.gatheringStopped = true }
        wake.signal()
    }

    /// Outcomes handed over and not written yet.
    var unwritten: Int { state.withLock { $0.queued.count + $0.writing } }

    /// The claims whose outcomes were handed over and may not be written yet (a few written
    /// ones among them): the worker holds these deliveries, though it sent them.
    var claimsInHand: [UnsentClaim] { state.withLock { $0.queued.map(\.claim) + $0.inHand } }

    /// The webhooks whose outcomes wait for a lock someone holds: the dispatcher claims none of
    /// their deliveries meanwhile.
    var heldWebhooks: Set<Int64> { state.withLock { $0.heldWebhooks } }

    /// How long the last write may take after the deadline of ``finish(by:)``: 5 s (a busy
    /// server may take a while to write the last batch; a statement waiting for a lock is
    /// cancelled after it, well within systemd's stop timeout of 30 s with the default grace of 10 s).
    static let lastWriteAllowance: Duration = .seconds(5)

    /// Writes what is left (retrying until `deadline` while the database is unreachable), stops
    /// the thread, and returns how many outcomes could not be written. A statement still
    /// running after the deadline (at least ``lastWriteAllowance`` from now), one waiting for a
    /// lock someone holds, say, is cancelled: a stopping worker never waits for another
    /// transaction to end.
    func finish(by deadline: ContinuousClock.Instant) -> Int {
        state.withLock { $0.finishBy = deadline }
        wake.signal()
        var waitUntil = max(deadline, .now + OutcomeRecorder.lastWriteAllowance)
        while stopped.wait(timeout: .now() + .milliseconds(Int(DeliveryStore.milliseconds(max(.zero, waitUntil - .now))) + 1)) == .timedOut {
            // Again and again: a cancel that comes between two statements does nothing.
            state.withLock { state in
                state.givenUp = true
                return state.canceller
            }?.cancel()
            waitUntil = .now + .milliseconds(100)
        }
        return unwritten
    }

    private var givenUp: Bool { state.withLock { $0.givenUp } }

    private func run() {
        var connection: Connection?
        /// The server process of the recorder's session, the current one or the one lost last
        /// (ended before a new session looks up what the lost one wrote, see ``LostSession``).
        var backend: Backend?
        var backoff = Backoff()
        var random = SystemRandomNumberGenerator()
        var retryAt = ContinuousClock.now
        var planRenewal = PlanRenewal(now: .now)
        var batch: [AttemptRecord] = []
        /// Outcomes of webhooks whose rows someone holds locked, kept out of the batches.
        var held = HeldOutcomes()
        /// How many of the batch's first outcomes a statement may have written without its
        /// end being seen (the connection was lost): looked up before they are written again.
        var unsure = 0
        // Whether the connection was lost since the last one opened: its return is logged.
        var lostConnection = false
        // Which of the failed writes and reconnects are logged while the database stays down.
        var outage = OutageLog()
        /// When the first outcome of the batch being gathered was taken.
        var gatheringSince: ContinuousClock.Instant?
        /// Whether the held outcomes had their last try of a finishing recorder.
        var heldTriedAtFinish = false
        while true {
            let (finishBy, gatheringStopped) = state.withLock { state -> (ContinuousClock.Instant?, Bool) in
                let room = OutcomeRecorder.batchLimit - batch.count
                if room > 0 && !state.queued.isEmpty {
                    let taken = state.queued.prefix(room)
                    // In the same hold of the lock, so that no outcome is ever in neither list: a
                    // new batch starts the list again from what is held; a growing one adds to it
                    // (what it had is in the list, written or moved to what is held since).
                    if batch.isEmpty {
                        state.inHand.removeAll(keepingCapacity: true)
                        for record in held.records { state.inHand.append(record.claim) }
                    }
                    for record in taken { state.inHand.append(record.claim) }
                    batch.append(contentsOf: taken)
                    state.queued.removeFirst(taken.count)
                }
                state.writing = batch.count + held.count
                return (state.finishBy, state.gatheringStopped)
            }
            if batch.isEmpty {
                gatheringSince = nil
                if held.isEmpty {
                    if finishBy != nil { break }
                    wake.wait()
                    continue
                }
                let now = ContinuousClock.now
                if finishBy != nil {
                    // One last try, then what is still held is left unwritten.
                    if heldTriedAtFinish { break }
                    heldTriedAtFinish = true
                } else if now < held.retryAt {
                    _ = wake.wait(timeout: .now() + .milliseconds(Int(DeliveryStore.milliseconds(held.retryAt - now)) + 1))
                    continue
                }
            }
            let now = ContinuousClock.now
            let since = gatheringSince ?? now
            gatheringSince = since
            // No more than the dispatcher may leave unwritten before it stops sending (beyond
            // that it would wait for these very outcomes).
            let gatherUpTo = min(OutcomeRecorder.gatherLimit, configuration.maximumInFlight)
            if !batch.isEmpty && finishBy == nil && !gatheringStopped && batch.count < gatherUpTo && now < since + configuration.outcomeGathering {
                _ = wake.wait(timeout: .now() + .microseconds(Int((since + configuration.outcomeGathering - now) / .microseconds(1)) + 1))
                continue
            }
            if now < retryAt {
                if let finishBy, now >= finishBy { break }
                _ = wake.wait(timeout: .now() + .milliseconds(Int(DeliveryStore.milliseconds(min(retryAt, finishBy ?? retryAt) - now)) + 1))
                continue
            }
            do {
                let current: Connection
                if let connection {
                    current = connection
                } else {
                    (current, backend) = try Dispatcher.openSession(configuration, applicationName: "webhooky recorder", logger: logger,
                                                                    lockTimeout: OutcomeRecorder.lockWait, replacing: backend)
                    connection = current
                    if lostConnection {
                        outage.recovered(logger).notice("recording outcomes: reconnected to the database", ["unwritten": batch.count])
                        lostConnection = false
                    }
                    state.withLock { $0.canceller = current.makeCanceller() }
                    planRenewal = PlanRenewal(now: .now)
                }
                if planRenewal.isDue(now: .now) {
                    planRenewal.planned(now: .now)
                    try current.forgetPreparedStatements()
                }
                if unsure > 0 {
                    let left = try DeliveryStore.unrecorded(current, Array(batch.prefix(unsure)), workerID: configuration.workerID)
                    if left.count < unsure {
                        logger.notice("outcomes written just before the connection was lost are not written again", ["count": unsure - left.count])
                    }
                    batch.replaceSubrange(0..<unsure, with: left)
                    unsure = 0
                }
                let count = batch.count
                try write(&batch, held: &held, on: current, finishing: finishBy != nil)
                gatheringSince = nil  // what came meanwhile starts a new batch, and waits for more
                planRenewal.record(count)
                backoff.reset()
                outage.ended("recording outcomes works again", to: logger)
                if publish(held, writing: held.count) { onWritten() }
            } catch {
                // What is held is written with the batch again, and looked up first like it.
                batch.insert(contentsOf: held.takeAll(), at: 0)
                _ = publish(held, writing: batch.count)
                unsure = batch.count
                let delay = backoff.nextDelay(using: &random)
                retryAt = .now + delay
                if givenUp {
                    logger.error("stopping: cancelled the outcome statement, which was still running after the shutdown grace period", ["error": error.message])
                } else if !error.isTransient, connection?.isConnected == true {
                    outage.log("recording outcomes failed; trying again", error: error.message, retryIn: delay, level: .error, to: logger)
                } else {
                    let what = error.sqlState == SessionSettings.readOnly ? "cannot write to the database; retrying" : "lost the database connection; will reconnect"
                    outage.log("recording outcomes: \(what)", error: error.message, retryIn: delay, level: .error, to: logger)
                    lostConnection = true
                    connection = nil
                    state.withLock { $0.canceller = nil }
                }
                if givenUp { break }
                if let finishBy, ContinuousClock.now >= finishBy { break }
            }
        }
        let left = held.takeAll() + batch
        state.withLock { $0.queued.insert(contentsOf: left, at: 0); $0.writing = 0; $0.heldWebhooks = [] }
        stopped.signal()
    }

    /// Says how many outcomes are being written and which webhooks' are held; returns whether
    /// nothing is left to write (neither queued nor being written).
    private func publish(_ held: HeldOutcomes, writing: Int) -> Bool {
        state.withLock { state in
            state.writing = writing
            if state.heldWebhooks != held.webhooks { state.heldWebhooks = held.webhooks }
            return state.queued.isEmpty && writing == 0
        }
    }

    /// Writes `batch`, removing each outcome once written (see the type's description); the
    /// outcomes of webhooks whose rows someone holds locked move to `held`, which is tried
    /// again when due (or at once while `finishing`).
    private func write(_ batch: inout [AttemptRecord], held: inout HeldOutcomes, on connection: Connection,
                       finishing: Bool) throws(PostgresError) {
        held.take(from: &batch)
        if !batch.isEmpty {
            if try writeGroup(batch, held: &held, on: connection) == .lockWaited {
                try writeByWebhook(&batch, held: &held, on: connection)
            }
            batch.removeAll(keepingCapacity: true)
        }
        if !held.isEmpty && (finishing || ContinuousClock.now >= held.retryAt) {
            var again = held.takeRecords()
            do {
                // All together first: most often the lock is gone for all of them.
                if try writeGroup(again, held: &held, on: connection) == .lockWaited {
                    try writeByWebhook(&again, held: &held, on: connection)
                }
            } catch {
                held.putBack(again)
                throw error
            }
        }
    }

    /// SQLSTATE `lock_not_available`: a statement waited ``lockWait`` for a lock.
    static let lockNotAvailable = "55P03"

    /// How a write of outcomes ended.
    private enum GroupWrite: Equatable {
        /// Written (those the server refused were written one by one, see ``writeAlone(_:on:)``,
        /// and any that waited too long for a lock then are held).
        case written
        /// The statement waited too long for a lock: nothing was written.
        case lockWaited
    }

    /// Writes `group` in one statement, or one by one when the server refuses it (not for a lock).
    private func writeGroup(_ group: [AttemptRecord], held: inout HeldOutcomes, on connection: Connection) throws(PostgresError) -> GroupWrite {
        var stillHeld: Set<Int64> = []
        do {
            logDisabled(try DeliveryStore.record(connection, group, workerID: configuration.workerID, autoDisable: configuration.autoDisable))
        } catch where error.sqlState == OutcomeRecorder.lockNotAvailable && connection.isConnected && !givenUp {
            return .lockWaited
        } catch where !error.isTransient && connection.isConnected && !givenUp {
            logger.warning("recording a batch of outcomes failed; recording them one by one", ["count": group.count, "error": error.message])
            for (index, record) in group.enumerated() {
                if !(try writeAlone(record, on: connection)) {
                    held.hold([record], of: record.webhookID, now: .now, logger: logger)
                    stillHeld.insert(record.webhookID)
                }
                _ = publish(held, writing: group.count - index - 1 + held.count)
            }
        }
        if !held.webhooks.isEmpty {
            for webhookID in Set(group.map(\.webhookID)).subtracting(stillHeld) { held.released(webhookID, logger: logger) }
        }
        return .written
    }

    /// Writes `records`, whose statement waited too long for a lock, one webhook at a time,
    /// removing each webhook's outcomes once written; those of a webhook whose rows are still
    /// held move to `held` (a single webhook's at once: its wait is known already).
    private func writeByWebhook(_ records: inout [AttemptRecord], held: inout HeldOutcomes, on connection: Connection) throws(PostgresError) {
        var order: [Int64] = []
        for record in records where !order.contains(record.webhookID) { order.append(record.webhookID) }
        for webhookID in order {
            let group = records.filter { $0.webhookID == webhookID }
            var waited = order.count == 1
            if !waited { waited = try writeGroup(group, held: &held, on: connection) == .lockWaited }
            if waited { held.hold(group, of: webhookID, now: .now, logger: logger) }
            records.removeAll { $0.webhookID == webhookID }
            _ = publish(held, writing: records.count + held.count)
        }
    }

    /// Writes one outcome that its batch could not: as it is, then without its response body,
    /// then also without its webhook's health (nor a disable), so that a failing health update
    /// cannot make the delivery repeat; drops it, saying so, only if all three are refused.
    /// A cancelled statement (`pg_cancel_backend`, a `statement_timeout`) refuses nothing of the
    /// outcome: the same form is tried again, up to ``cancelledRetries`` times, before a smaller one.
    /// Returns false, writing nothing, when it waited too long for a lock (the caller holds it).
    /// A lost connection is thrown (the outcome is written after reconnecting).
    private func writeAlone(_ record: AttemptRecord, on connection: Connection) throws(PostgresError) -> Bool {
        var refusal: PostgresError?
        let forms = [(record, true), (record.withoutResponseBody, true), (record.withoutResponseBody, false)]
        var form = 0
        var cancelled = 0
        while form < forms.count {
            let (record, health) = forms[form]
            do {
                logDisabled(try DeliveryStore.record(connection, [record], workerID: configuration.workerID,
                                                     autoDisable: health ? configuration.autoDisable : nil, health: health))
                if !health, let refusal {
                    logger.error("recorded an attempt without its webhook's health, which could not be updated",
                                 ["delivery": record.deliveryID, "webhook": record.webhookID, "error": refusal.message])
                }
                return true
            } catch where error.sqlState == OutcomeRecorder.lockNotAvailable && connection.isConnected && !givenUp {
                return false
            } catch where !error.isTransient && connection.isConnected && !givenUp {
                if error.sqlState == OutcomeRecorder.queryCanceled && cancelled < OutcomeRecorder.cancelledRetries {
                    cancelled += 1
                    continue
                }
                refusal = error
                form += 1
            }
        }
        logger.error("cannot record an attempt; dropped it (the delivery will be sent again when its lease expires)",
                     ["delivery": record.deliveryID, "error": refusal?.message ?? ""])
        return true
    }

    /// SQLSTATE `query_canceled`: someone cancelled the statement, or it ran past a `statement_timeout`.
    static let queryCanceled = "57014"
    /// How many cancelled statements one outcome written alone takes before it is written
    /// without its response body: 2.
    static let cancelledRetries = 2

    private func logDisabled(_ result: DeliveryStore.RecordResult) {
        for (id, reason) in result.disabled {
            logger.error("webhook disabled; re-enable it with UPDATE webhooky.webhooks SET enabled = true", ["webhook": id, "reason": reason])
        }
    }
}

/// Outcomes of webhooks whose rows someone holds locked (see ``OutcomeRecorder``), in the order
/// they came, and when to try them again.
struct HeldOutcomes {
    private(set) var records: [AttemptRecord] = []
    /// The webhooks whose outcomes are held.
    private(set) var webhooks: Set<Int64> = []
    /// When to try them again.
    private(set) var retryAt: ContinuousClock.Instant = .now

    var isEmpty: Bool { records.isEmpty }
    var count: Int { records.count }

    /// Moves the outcomes of held webhooks out of `batch` (they would wait for the lock again).
    mutating func take(from batch: inout [AttemptRecord]) {
        guard !webhooks.isEmpty else { return }
        records += batch.filter { webhooks.contains($0.webhookID) }
        batch.removeAll { webhooks.contains($0.webhookID) }
    }

    /// Holds `group`, the outcomes of `webhookID`, whose write waited too long for a lock.
    mutating func hold(_ group: [AttemptRecord], of webhookID: Int64, now: ContinuousClock.Instant, logger: Logger) {
        if webhooks.insert(webhookID).inserted {
            logger.warning("outcomes of a webhook wait for a lock that another transaction holds (an uncommitted DELETE or UPDATE of the webhook, or a LOCK TABLE?); "
                           + "the other webhooks' outcomes go on, these are tried again every \(OutcomeRecorder.heldRetryEvery.shortDescription)",
                           ["webhook": webhookID, "outcomes": group.count])
        }
        // The first held sets the time to try again; later ones do not put it off.
        if records.isEmpty { retryAt = now + OutcomeRecorder.heldRetryEvery }
        records += group
    }

    /// The outcomes of `webhookID` were written: its rows are free again.
    mutating func released(_ webhookID: Int64, logger: Logger) {
        guard webhooks.remove(webhookID) != nil else { return }
        logger.notice("the held outcomes of a webhook are written", ["webhook": webhookID])
    }

    /// Every held outcome, in order, to be tried again; their webhooks stay held until a write
    /// of theirs gets through (``released(_:logger:)``).
    mutating func takeRecords() -> [AttemptRecord] {
        defer { records = [] }
        return records
    }

    /// Puts back, first, outcomes taken by ``takeRecords()`` and not written.
    mutating func putBack(_ taken: [AttemptRecord]) {
        records = taken + records
    }

    /// Every held outcome, in order; nothing is held afterwards.
    mutating func takeAll() -> [AttemptRecord] {
        webhooks = []
        return takeRecords()
    }
}
