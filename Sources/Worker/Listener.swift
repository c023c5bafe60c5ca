import Log
import Glibc
import Postgres

/// Drives the LISTEN connection on its own thread: executes what ``ListenerStateMachine``
/// decides, and wakes the dispatcher when a notification arrives or after a reconnection.
final class Listener {
    /// The channel `webhooky.emit` and the admin functions notify.
    static let channel = "webhooky"
    /// The payload of `webhooky.emit`'s NOTIFY (migration 0017): new events. Any other (the
    /// admin functions, enabling a webhook and a stopping worker send an empty one) also means
    /// that deliveries may be due now.
    static let eventPayload = "event"
    /// The payload of the NOTIFY of a change of a webhook row (migration 0049): no id, which
    /// every role that may LISTEN would see. The worker checks the revisions of the webhooks it
    /// has in flight (``Dispatcher`` `checkLine`).
    static let webhookChangedPayload = "webhook"

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
        // Whether the next wake-up is about due deliveries too: a NOTIFY other than an
        // emitter's, or a (re)connection (set there), after which notifications may have been missed.
        var deliveriesDue = false
        // Whether a webhook's row may have changed since the last wake-up: a NOTIFY of a change,
        // or a (re)connection (one may have been missed while the listener was not connected).
        var webhooksChanged = false
        // Whether a connection was lost or refused since the last one: its return is logged.
        var failedSinceConnected = false
        // Which of the failed connects are logged while the database stays down.
        var outage = OutageLog()
        while true {
            if shouldStop() { action = machine.stop() }
            switch action {
            case .connect:
                do {
                    let opened = try Connection(conninfo: conninfo, applicationName: "webhooky listener")
                    opened.onNotice { [logger] in logger.notice("database notice", ["message": $0]) }
                    try SessionSettings.override(opened)  // an idle_session_timeout would end it between notifications
                    try opened.listen(Listener.channel)
                    connection = opened
                    deliveriesDue = true
                    webhooksChanged = true
                    let logger = outage.recovered(logger)
                    if failedSinceConnected {
                        logger.notice("listener reconnected to the database; listening again", ["channel": Listener.channel])
                        failedSinceConnected = false
                    } else {
                        logger.debug("listening for notifications", ["channel": Listener.channel])
                    }
                    action = machine.connected()
                } catch {
                    failedSinceConnected = true
                    action = machine.failed(using: &random)
                    if case .waitAndReconnect(let delay) = action {
                        outage.log("listener cannot connect; retrying", error: error.message, retryIn: delay, to: logger)
                    }
                }
            case .wakeDispatcherAndListen:
                inbox.postNotification(deliveriesDue: deliveriesDue, webhooksChanged: webhooksChanged)
                deliveriesDue = false
                webhooksChanged = false
                action = .listen
            case .listen:
                guard let current = connection else {
                    action = machine.failed(using: &random)
                    continue
                }
                do {
                    let notifications = try current.waitForNotifications(timeout: .milliseconds(500))
                    if notifications.contains(where: { $0.payload != Listener.eventPayload }) { deliveriesDue = true }
                    if notifications.contains(where: { $0.payload == Listener.webhookChangedPayload }) { webhooksChanged = true }
                    action = notifications.isEmpty ? machine.idle() : machine.notified()
                } catch {
                    logger.warning("listener lost its connection; reconnecting", ["error": error.message])
                    failedSinceConnected = true
                    connection = nil
                    action = machine.failed(using: &random)
                }
            case .waitAndReconnect(let delay):
                connection = nil
                _ = pause(until: .now + delay, unless: shouldStop)
                action = machine.delayElapsed()
            case .close:
                connection = nil
                return
            }
        }
    }
}
