/// The LISTEN connection's lifecycle, as a value:
///
/// ```
/// idle ──start──▶ connecting ──connected──▶ listening ──notified──▶ listening (wake dispatcher)
///                   ▲    │                     │
///                   │    └──failed──┐  ┌──failed (connection lost)
///                   │               ▼  ▼
///                   └──delay over── backingOff (0.25 s … 10 s, capped)
/// any state ──stop──▶ stopped
/// ```
///
/// On every (re)connection the dispatcher is woken too, so that events committed while the
/// listener was away (whose notifications are lost) are found at once.
public struct ListenerStateMachine: Sendable {
    public enum State: Sendable, Hashable {
        case idle
        case connecting
        case listening
        case backingOff(Duration)
        case stopped
    }

    /// What the driver should do next.
    public enum Action: Sendable, Hashable {
        /// Open a connection and run LISTEN.
        case connect
        /// Wake the dispatcher, then wait for notifications.
        case wakeDispatcherAndListen
        /// Wait for notifications.
        case listen
        /// Close the connection and wait this long before connecting again.
        case waitAndReconnect(Duration)
        /// Close the connection and end.
        case close
    }

    public private(set) var state: State = .idle
    private var backoff = Backoff()

    public init() {}

    public mutating func start() -> Action {
        state = .connecting
        return .connect
    }

    /// The connection is open and LISTEN succeeded.
    public mutating func connected() -> Action {
        guard state == .connecting else { return state == .stopped ? .close : .listen }
        state = .listening
        backoff.reset()
        return .wakeDispatcherAndListen
    }

    /// Notifications arrived.
    public mutating func notified() -> Action {
        state == .listening ? .wakeDispatcherAndListen : .close
    }

    /// Waiting timed out with nothing received.
    public mutating func idle() -> Action {
        state == .listening ? .listen : .close
    }

    /// Connecting failed or the connection broke.
    public mutating func failed(using random: inout some RandomNumberGenerator) -> Action {
        guard state != .stopped else { return .close }
        let delay = backoff.nextDelay(using: &random)
        state = .backingOff(delay)
        return .waitAndReconnect(delay)
    }

    /// The backoff delay is over.
    public mutating func delayElapsed() -> Action {
        guard case .backingOff = state else { return state == .stopped ? .close : .listen }
        state = .connecting
        return .connect
    }

    public mutating func stop() -> Action {
        state = .stopped
        return .close
    }
}
