import Foundation
import Log
import Postgres
import Synchronization
import ThreadNames

/// Deletes old history (``RetentionPolicy``) on its own thread and connection, so that pruning
/// a large table, a second or more per batch, never holds back the dispatcher's fan-outs and
/// claims.
///
/// Every ``RetentionPolicy/interval`` (the first time `firstRunAfter` after the start: the worker
/// passes 10 s, or the interval when shorter) it connects, deletes
/// batches until none is left, one batch per transaction, and disconnects. Several workers may
/// prune at once: each batch locks its rows with SKIP LOCKED, so they share the work (and no
/// session lock is needed, which a transaction-mode connection pooler would not keep). A
/// failure is logged and tried again with growing backoff (``Backoff``).
final class HistoryPruner: Sendable {
    private let stopRequested = Atomic(false)
    /// Cancels the statement of the run under way, if any.
    private let canceller = Mutex<StatementCanceller?>(nil)
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// Starts the pruner's thread.
    init(configuration: WorkerConfiguration, policy: RetentionPolicy, logger: Logger, firstRunAfter: Duration = .seconds(10)) {
        let thread = Thread { [self] in
            nameThisThread("webhooky-pruner")
            run(configuration: configuration, policy: policy, logger: logger, firstRunAfter: firstRunAfter)
            stopped.signal()
        }
        thread.start()
    }

    /// Asks the pruner to stop, without waiting: the batch under way (if any) is cancelled
    /// (it may wait for a lock someone holds; a later run deletes its rows).
    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        wake.signal()
        canceller.withLock { $0 }?.cancel()
    }

    /// Stops as ``requestStop()`` does and waits for the thread to end.
    func stop() {
        requestStop()
        // Again every 100 ms: a cancel that comes just before a batch begins does nothing.
        while stopped.wait(timeout: .now() + .milliseconds(100)) == .timedOut {
            canceller.withLock { $0 }?.cancel()
        }
    }

    private var isStopping: Bool { stopRequested.load(ordering: .acquiring) }

    private func run(configuration: WorkerConfiguration, policy: RetentionPolicy, logger: Logger, firstRunAfter: Duration) {
        var next = ContinuousClock.now + firstRunAfter
        var backoff = Backoff()
        var outage = OutageLog()
        var random = SystemRandomNumberGenerator()
        while !isStopping {
            let now = ContinuousClock.now
            if now < next {
                _ = wake.wait(timeout: .now() + .milliseconds(Int(DeliveryStore.milliseconds(next - now)) + 1))
                continue
            }
            do throws(PostgresError) {
                let (connection, _) = try Dispatcher.openSession(configuration, applicationName: "webhooky pruner", logger: logger)
                canceller.withLock { $0 = connection.makeCanceller() }
                defer { canceller.withLock { $0 = nil } }
                var pruned = (deliveries: 0, events: 0)
                while !isStopping {
                    let batch = try DeliveryStore.prune(connection, policy)
                    pruned.deliveries += batch.deliveries
                    pruned.events += batch.events
                    if batch.deliveries == 0 && batch.events == 0 { break }
                }
                if pruned.deliveries + pruned.events > 0 {
                    logger.notice("pruned old history", ["deliveries": pruned.deliveries, "events": pruned.events])
                }
                backoff.reset()
                outage.ended("pruning old history works again", to: logger)
                next = .now + policy.interval
            } catch {
                if isStopping { break }  // cancelled by the stop (or failed meanwhile: no matter)
                let delay = backoff.nextDelay(using: &random)
                let what = error.sqlState == SessionSettings.readOnly ? "cannot write to the database" : "failed"
                outage.log("pruning old history \(what); trying again", error: error.message, retryIn: delay, level: .error, to: logger)
                next = .now + delay
            }
        }
    }
}
