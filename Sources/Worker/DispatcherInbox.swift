import Foundation
import HTTPClient

/// Where other threads leave news for the dispatcher (finished requests, a NOTIFY, a stop
/// request) and how the dispatcher sleeps until there is some.
final class DispatcherInbox: Sendable {
    /// What arrived since the last ``take()``.
    struct News {
        var results: [HTTPResult] = []
        var notified = false
        var stopRequested = false
    }

    // NSCondition's lock guards `news`: every access is between lock() and unlock().
    private let condition = NSCondition()
    nonisolated(unsafe) private var news = News()
    nonisolated(unsafe) private var hasNews = false

    func post(results: [HTTPResult]) {
        update { $0.results.append(contentsOf: results) }
    }

    func postNotification() {
        update { $0.notified = true }
    }

    func requestStop() {
        update { $0.stopRequested = true }
    }

    /// Takes everything that arrived (stop stays requested once requested).
    func take() -> News {
        condition.lock()
        defer { condition.unlock() }
        let taken = news
        news = News(stopRequested: news.stopRequested)
        hasNews = false
        return taken
    }

    /// Sleeps until news arrives or `timeout` passes.
    func wait(timeout: Duration) {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let deadline = Date(timeIntervalSinceNow: max(0, seconds))
        condition.lock()
        defer { condition.unlock() }
        while !hasNews {
            if !condition.wait(until: deadline) { return }
        }
    }

    private func update(_ change: (inout News) -> Void) {
        condition.lock()
        change(&news)
        hasNews = true
        condition.signal()
        condition.unlock()
    }
}
