/// How many requests each endpoint may have in flight: an endpoint earns them by answering.
///
/// A new endpoint may have ``initial`` requests in flight (an eighth of the per-endpoint limit,
/// 8 of 64 by default), one more for every request it answers within ``answeredWithin`` (any
/// HTTP status; a quarter of the request timeout, 3.75 s by default), up to ``limit``; a later
/// answer moves it one towards ``initial`` (down from above, up from below). A request that
/// ends without an answer (a timeout, a failed connection, DNS lookup or TLS handshake, a broken
/// connection) halves it, down to 1. So an endpoint that answers grows to its full share within
/// its first few dozen requests, one that turns slow gives it back an answer at a time, and
/// one that hangs or is down holds ``initial`` until its first requests end unanswered, then 4,
/// 2 and 1: however many such endpoints a worker sends to, each holds one request once its first
/// ones timed out (before, each kept ``initial``, and 32 of them took a worker's 256 requests,
/// every other endpoint waiting for their timeouts). One that answered and then hangs keeps
/// what it had earned until those requests time out, and no more: at its first request without
/// an answer, the deliveries waiting in its line in the HTTP client are given back unsent
/// instead of each hanging for another timeout (see ``QuickEndpoints``). A webhook whose URL
/// template varies its host gets the full ``limit`` for all its hosts together instead (its
/// claims cannot know the host, nor what it earned, in advance), but a host of it held below
/// ``initial`` (it did not answer) is held to what it earned when a request to it is made
/// (the dispatcher's `budget(of:earned:)`).
///
/// Endpoints with no request for a minute are forgotten (``forget(unusedSince:)``) and start
/// again at ``initial``, so the table holds only endpoints in use; one held below ``initial``
/// (it did not answer) is remembered for an hour since its last request, so that a dead
/// endpoint's retries, minutes apart, do not each start at ``initial`` again. A worker that
/// starts recalls, from the attempts on record, the endpoints whose last request within that
/// hour got no answer (``recallUnanswered(_:endedAt:)``): they start at 1, so that a restart
/// amid an outage does not give every dead endpoint ``initial`` again.
struct EndpointAllowance {
    /// The most requests an endpoint may have in flight (the worker's per-endpoint limit).
    let limit: Int
    /// What an endpoint starts with (an eighth of ``limit``, at least 1), and where slow answers
    /// move it; requests without an answer take it below, down to 1.
    let initial: Int
    /// An answer within this earns one more request.
    let answeredWithin: Duration
    /// Requests allowed, and when the last request ended, per endpoint.
    private var endpoints: [String: (allowed: Int, lastEnded: ContinuousClock.Instant)] = [:]

    init(limit: Int, answeredWithin: Duration) {
        self.limit = max(1, limit)
        self.initial = max(1, limit / 8)
        self.answeredWithin = answeredWithin
    }

    /// Requests `endpoint` may have in flight now.
    func allowed(_ endpoint: String) -> Int {
        endpoints[endpoint]?.allowed ?? initial
    }

    /// A request to `endpoint` was answered after `duration`, at `now`: within
    /// ``answeredWithin`` it earns one more request; a later answer moves it one towards
    /// ``initial`` (it answers, but slowly).
    mutating func answered(_ endpoint: String, after duration: Duration, now: ContinuousClock.Instant) {
        let allowed = allowed(endpoint)
        let next = duration <= answeredWithin ? min(limit, allowed + 1) : allowed < initial ? allowed + 1 : max(initial, allowed - 1)
        endpoints[endpoint] = (next, now)
    }

    /// The remembered endpoints that may have more or fewer than ``initial`` in flight (what the
    /// claim and fan-out statements give an endpoint they are not told about).
    var endpointsNotAtInitial: [String] {
        endpoints.compactMap { $0.value.allowed != initial ? $0.key : nil }
    }

    /// A request to `endpoint` ended without an answer, at `now`: half as many, at least 1.
    mutating func unanswered(_ endpoint: String, now: ContinuousClock.Instant) {
        endpoints[endpoint] = (max(1, allowed(endpoint) / 2), now)
    }

    /// `endpoint`'s last request, made before this worker started, ended without an answer at
    /// `ended` (the attempts on record say so): unless this worker knows better already, it may
    /// have 1 in flight, as after requests of its own that got no answer. It earns more by
    /// answering (one per quick answer: it doubles with each round of answers).
    mutating func recallUnanswered(_ endpoint: String, endedAt ended: ContinuousClock.Instant) {
        guard endpoints[endpoint] == nil else { return }
        endpoints[endpoint] = (1, ended)
    }

    /// How long an endpoint held below ``initial`` is remembered after its last request.
    static let unansweredMemory: Duration = .seconds(3600)

    /// Forgets the endpoints whose last request ended before `instant` (those held below
    /// ``initial``: an hour before it).
    mutating func forget(unusedSince instant: ContinuousClock.Instant) {
        endpoints = endpoints.filter {
            $0.value.lastEnded >= ($0.value.allowed < initial ? instant - EndpointAllowance.unansweredMemory : instant)
        }
    }

    /// How many endpoints are remembered.
    var count: Int { endpoints.count }
}
