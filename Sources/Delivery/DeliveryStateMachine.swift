/// The life of one delivery, as a value. The worker feeds it what happened and writes what it
/// returns; it does no I/O itself.
///
/// ```
/// pending ──claimed──▶ sending ──2xx───────────────────────▶ succeeded
///                        │ ├──failed, retries left──────────▶ pending (retrying at next_attempt_at)
///                        │ ├──failed, schedule exhausted────▶ dead
///                        │ └──worker stopped mid-request────▶ pending (due at once)
///                        └────request cannot be made────────▶ dead
/// ```
public struct DeliveryStateMachine: Sendable {
    /// Where the delivery is.
    public enum State: Sendable, Hashable {
        case sending(attempt: Int)
        case succeeded
        /// Pending again, due after the delay.
        case retrying(after: Duration)
        case dead
    }

    /// What an attempt came to.
    public enum AttemptResult: Sendable, Hashable {
        /// The endpoint answered with this status (and maybe a `Retry-After` value).
        case response(status: Int, retryAfter: String?)
        /// No answer: timeout, refused or broken connection, TLS or DNS failure. Retried.
        case transportFailure(String)
        /// The request cannot be made at all (bad rendered URL, header injection, unknown
        /// scheme): retrying cannot help, so the delivery ends dead.
        case unsendable(String)
        /// The worker itself cut the attempt short (it stopped while the request was in flight):
        /// no answer, which says nothing about the endpoint. Due again at once.
        case interrupted(String)
    }

    /// What to record for the delivery (its row in `webhooky.deliveries`).
    public struct Completion: Sendable, Hashable {
        /// `pending` (a retry is scheduled), `succeeded` or `dead`.
        public var state: DeliveryState
        /// With `pending`: how long until the retry.
        public var retryIn: Duration?
        /// The HTTP status, when there was a response.
        public var status: Int?
        /// Why the attempt failed; `nil` on success.
        public var error: String?
        /// Whether the worker cut the attempt short (``AttemptResult/interrupted(_:)``): it is
        /// not held against the endpoint. Default `false`.
        public var interrupted: Bool

        public init(state: DeliveryState, retryIn: Duration? = nil, status: Int? = nil, error: String? = nil, interrupted: Bool = false) {
            self.state = state
            self.retryIn = retryIn
            self.status = status
            self.error = error
            self.interrupted = interrupted
        }
    }

    public private(set) var state: State
    /// The number of the attempt being made, from 1.
    public let attempt: Int
    /// Attempts the current retry schedule does not count: those made before a redelivery
    /// started it, and those cut short by a worker's shutdown (``AttemptResult/interrupted(_:)``).
    public let retryBase: Int
    /// Whether the request follows redirects (the webhook's `follow_redirects`): then a 3xx
    /// answer that is the result had no `Location` to follow. Default `false`.
    public var followsRedirects: Bool
    private let policy: RetryPolicy

    /// A delivery just claimed for attempt number `attempt` (from 1), of which `retryBase` do
    /// not count in the retry schedule (default 0), for a webhook that follows redirects or not
    /// (default `false`).
    public init(attempt: Int, retryBase: Int = 0, policy: RetryPolicy, followsRedirects: Bool = false) {
        self.state = .sending(attempt: attempt)
        self.attempt = attempt
        self.retryBase = retryBase
        self.followsRedirects = followsRedirects
        self.policy = policy
    }

    /// Records the result of the attempt and returns what to write. Call it once.
    ///
    /// - Parameters:
    ///   - result: What happened.
    ///   - now: Wall-clock seconds since 1970, for `Retry-After` dates.
    ///   - random: Jitter for the retry delay.
    public mutating func finish(_ result: AttemptResult, now: Double, random: inout some RandomNumberGenerator) -> Completion {
        switch result {
        case .response(let status, _) where (200...299).contains(status):
            state = .succeeded
            return Completion(state: .succeeded, retryIn: nil, status: status, error: nil)
        case .response(let status, let retryAfter):
            let wait = retryAfter.flatMap { RetryPolicy.parseRetryAfter($0, now: now) }
            return fail(attempt: attempt, status: status, error: DeliveryStateMachine.describe(status: status, followsRedirects: followsRedirects),
                        retryAfter: wait, random: &random)
        case .transportFailure(let message):
            return fail(attempt: attempt, status: nil, error: message, retryAfter: nil, random: &random)
        case .unsendable(let message):
            state = .dead
            return Completion(state: .dead, retryIn: nil, status: nil, error: message)
        case .interrupted(let message):
            state = .retrying(after: .zero)
            return Completion(state: .pending, retryIn: .zero, status: nil, error: message, interrupted: true)
        }
    }

    private mutating func fail(attempt: Int, status: Int?, error: String, retryAfter: Duration?, random: inout some RandomNumberGenerator) -> Completion {
        if let delay = policy.delay(afterFailedAttempt: attempt - retryBase, retryAfter: retryAfter, using: &random) {
            state = .retrying(after: delay)
            return Completion(state: .pending, retryIn: delay, status: status, error: error)
        }
        state = .dead
        return Completion(state: .dead, retryIn: nil, status: status, error: error + " (gave up after \(attempt - retryBase) attempts)")
    }

    static func describe(status: Int, followsRedirects: Bool) -> String {
        switch status {
        case 300...399 where followsRedirects: "HTTP \(status): a redirect without a Location header, nothing to follow"
        case 300...399: "HTTP \(status): redirects are not followed"
        default: "HTTP \(status)"
        }
    }
}

/// The states of a row in `webhooky.deliveries` (the SQL CHECK constraint allows exactly these).
public enum DeliveryState: String, Sendable, Hashable {
    /// Waiting for its first attempt or between retries.
    case pending
    /// Claimed by a worker, which holds a lease on it.
    case sending
    /// The endpoint answered 2xx.
    case succeeded
    /// Webhooky gave up; it can be redelivered with SQL.
    case dead
}
