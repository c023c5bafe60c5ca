import Log
import Glibc
import Postgres

/// Drives the LISTEN connection on its own thread: executes what ``ListenerStateMachine``
/// decides, and wakes the dispatcher when a notification arrives or after a reconnection.
final class Listener {
    /// The channel `webhooky.emit` notifies.
    static let channel = "webhooky"

    private let conninfo: String
    private let inbox: DispatcherInbox
    private let logger: Logger

    init(conninfo: String, inbox: DispatcherInbox, logger: Logger) {
        self.conninfo = conninfo
        self.inbox = inbox
        self.logger = logger
    }

    /// Runs until `shouldStop` returns true (checked at least twice a second).
    func run(shouldStop: () -> Bool) {
        var machine = ListenerStateMachine()
        var random = SystemRandomNumberGenerator()
        var connection: Connection? = nil
        var action = machine.start()
        while true {
            if shouldStop() { action = machine.stop() }
            switch action {
            case .connect:
                do {
                    let opened = try Connection(conninfo: conninfo, applicationName: "webhooky listener")
                    opened.onNotice { [logger] in logger.notice("database notice", ["message": $0]) }
                    try opened.listen(Listener.channel)
                    connection = opened
                    logger.debug("listening for notifications", ["channel": Listener.channel])
                    action = machine.connected()
                } catch {
                    logger.warning("listener cannot connect; retrying", ["error": error.message])
                    action = machine.failed(using: &random)
                }
            case .wakeDispatcherAndListen:
                inbox.postNotification()
                action = .listen
            case .listen:
                guard let current = connection else {
                    action = machine.failed(using: &random)
                    continue
                }
                do {
                    let notifications = try current.waitForNotifications(timeout: .milliseconds(500))
                    action = notifications.isEmpty ? machine.idle() : machine.notified()
                } catch {
                    logger.warning("listener lost its connection; reconnecting", ["error": error.message])
                    connection = nil
                    action = machine.failed(using: &random)
                }
            case .waitAndReconnect(let delay):
                connection = nil
                let until = ContinuousClock.now + delay
                while ContinuousClock.now < until && !shouldStop() {
                    sleep(for: min(.milliseconds(100), until - .now))
                }
                action = machine.delayElapsed()
            case .close:
                connection = nil
                return
            }
        }
    }

    private func sleep(for duration: Duration) {
        var request = timespec(tv_sec: Int(duration.components.seconds), tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
