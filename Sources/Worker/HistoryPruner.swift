import Foundation
import Log
import Postgres
import Synchronization

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
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    /// Starts the pruner's thread.
    init(configuration: WorkerConfiguration, policy: RetentionPolicy, logger: Logger, firstRunAfter: Duration = .seconds(10)) {
        let thread = Thread { [self] in
            run(configuration: configuration, policy: policy, logger: logger, firstRunAfter: firstRunAfter)
            stopped.signal()
        }
        thread.name = "webhooky-pruner"
        thread.start()
    }

    /// Asks the pruner to stop after the batch under way (if any), without waiting.
    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        wake.signal()
    }

    /// Stops after the batch under way (if any) and waits for the thread to end.
    func stop() {
        requestStop()
        stopped.wait()
    }

    private var isStopping: Bool { stopRequested.load(ordering: .acquiring) }

    private func run(configuration: WorkerConfiguration, policy: RetentionPolicy, logger: Logger, firstRunAfter: Duration) {
        var next = ContinuousClock.now + firstRunAfter
        var backoff = Backoff()
        var random = SystemRandomNumberGenerator()
        while !isStopping {
            let now = ContinuousClock.now
            if now < next {
                _ = wake.wait(timeout: .now() + .milliseconds(Int(DeliveryStore.milliseconds(next - now)) + 1))
                continue
            }
            do throws(PostgresError) {
                let connection = try Dispatcher.openSession(configuration, applicationName: "webhooky pruner", logger: logger)
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
                next = .now + policy.interval
            } catch {
                let delay = backoff.nextDelay(using: &random)
                logger.error("pruning old history failed; trying again", ["error": error.message, "retry_in": delay.shortDescription])
                next = .now + delay
            }
        }
    }
}
