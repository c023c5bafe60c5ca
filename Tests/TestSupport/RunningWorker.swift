import Foundation
public import Log
import Synchronization
import ThreadNames
public import Worker

/// A worker running on its own thread for the length of a test.
public final class RunningWorker: Sendable {
    public let worker: Worker
    private let finished = DispatchSemaphore(value: 0)
    private let failure = Mutex<WorkerError?>(nil)

    /// Starts a worker with `configuration`.
    public init(_ configuration: WorkerConfiguration) {
        let worker = Worker(configuration: configuration)
        self.worker = worker
        let thread = Thread { [self] in
            nameThisThread("test-worker")
            do throws(WorkerError) {
                try worker.run()
            } catch {
                failure.withLock { $0 = error }
            }
            finished.signal()
        }
        thread.start()
    }

    /// Stops the worker and waits (up to `timeout`) until it has returned; returns the error
    /// it failed with, if any, or `nil`. Returns `false` in `stoppedInTime` if it did not stop.
    @discardableResult
    public func stop(timeout: Duration = .seconds(30)) -> (stoppedInTime: Bool, error: WorkerError?) {
        worker.stop()
        return waitUntilFinished(timeout: timeout)
    }

    /// Waits for the worker's `run()` to return by itself (e.g. a startup failure).
    public func waitUntilFinished(timeout: Duration = .seconds(30)) -> (stoppedInTime: Bool, error: WorkerError?) {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let inTime = finished.wait(timeout: .now() + seconds) == .success
        if inTime { finished.signal() }
        return (inTime, failure.withLock { $0 })
    }
}

/// Collects log lines so a test can read them.
public final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    public init() {}

    /// A logger at `level` writing here (and nowhere else).
    public func logger(level: Logger.Level = .debug) -> Logger {
        Logger(level: level) { [self] line in lines.withLock { $0.append(line) } }
    }

    /// Every line so far.
    public var all: [String] { lines.withLock { $0 } }

    /// Waits until a line satisfies `condition` (the worker logs on its own thread, maybe a
    /// moment after the state a test waited for); returns whether one did within `timeout`.
    public func waitForLine(timeout: Duration = .seconds(10), where condition: (String) -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if all.contains(where: condition) { return true }
            if ContinuousClock.now >= deadline { return false }
            usleep(20_000)
        }
    }
}
