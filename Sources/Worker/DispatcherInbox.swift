import Glibc
import HTTPClient
import Synchronization

/// Where other threads leave news for the dispatcher (finished requests, a NOTIFY, a stop
/// request) and how the dispatcher sleeps until there is some.
///
/// Sleeping is `poll(2)` on a self-pipe, whose timeout runs on the monotonic clock: a
/// wall-clock step (NTP, a VM resumed) can neither stall the worker nor wake it early.
final class DispatcherInbox: Sendable {
    /// What arrived since the last ``take()``.
    struct News {
        var results: [HTTPResult] = []
        var notified = false
        /// Whether a notification said deliveries may be due now (not only new events).
        var deliveriesDue = false
        /// Whether a webhook's row changed (updated or deleted; see ``Listener/webhookChangedPayload``).
        var webhooksChanged = false
        var stopRequested = false
    }

    private struct State {
        var news = News()
        /// Whether a byte was written to the pipe since the last ``take()``: then one more
        /// would wake the dispatcher no sooner, and the write is left out (a system call and
        /// often a context switch saved per batch of results).
        var signalled = false
    }

    private let state = Mutex(State())
    /// A non-blocking pipe: a byte written to `wakeWrite` makes `wakeRead` readable. Both ends
    /// live as long as the inbox.
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init() {
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) == 0 {
            for end in ends {
                _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
                _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            }
        }
        wakeRead = ends[0]
        wakeWrite = ends[1]
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    func post(results: [HTTPResult]) {
        update { $0.results.append(contentsOf: results) }
    }

    /// A NOTIFY arrived (or the listener reconnected); `deliveriesDue`: not only about new
    /// events (see ``Listener/eventPayload``); `webhooksChanged`: a webhook's row changed.
    func postNotification(deliveriesDue: Bool = false, webhooksChanged: Bool = false) {
        update { news in
            news.notified = true
            news.deliveriesDue = news.deliveriesDue || deliveriesDue
            news.webhooksChanged = news.webhooksChanged || webhooksChanged
        }
    }

    /// Wakes the dispatcher without news (it looks at its state again).
    func wake() {
        update { _ in }
    }

    func requestStop() {
        update { $0.stopRequested = true }
    }

    /// Takes everything that arrived (a stop, once requested, stays requested).
    func take() -> News {
        // The pipe is emptied before `signalled` is cleared: news posted in between is taken
        // here, and news posted after it writes a byte again, so none waits unsignalled.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { scratch in
            // A short read emptied the pipe; a full one may have left more.
            while read(wakeRead, scratch.baseAddress, scratch.count) == scratch.count {}
        }
        return state.withLock { state in
            defer {
                state.news = News(stopRequested: state.news.stopRequested)
                state.signalled = false
            }
            return state.news
        }
    }

    /// Sleeps until news arrives or `timeout` passes. News posted after the last ``take()``
    /// ends the sleep at once.
    func wait(timeout: Duration) {
        let milliseconds = timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        var descriptor = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, Int32(clamping: max(0, milliseconds)))
    }

    private func update(_ change: (inout News) -> Void) {
        let alreadySignalled = state.withLock { state in
            change(&state.news)
            defer { state.signalled = true }
            return state.signalled
        }
        guard !alreadySignalled else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)  // a full pipe is already readable: nothing lost
    }
}
