/// How many requests each endpoint may have in flight: an endpoint earns them by answering.
///
/// A new endpoint may have ``initial`` requests in flight (an eighth of the per-endpoint limit,
/// 8 of 64 by default), one more for every request it answers within ``answeredWithin`` (any
/// HTTP status; a quarter of the request timeout, 3.75 s by default), up to ``limit``; a later
/// answer costs one. A request that ends without an answer (a timeout, a failed connection, DNS
/// lookup or TLS handshake, a broken connection) halves it; neither goes below ``initial``. So
/// an endpoint that answers grows to its full share within its first few dozen requests, one
/// that turns slow gives it back an answer at a time, and one that hangs from its first
/// request, is down or takes longer than a quarter of the timeout keeps ``initial``: 32 such
/// endpoints at once would be needed to take a worker's 256 requests (with the full share, 4
/// were enough, and every other endpoint waited for their timeouts). One that answered and then hangs keeps what it had earned until those
/// requests time out, and no more: at its first request without an answer, the deliveries
/// waiting in its line in the HTTP client are given back unsent instead of each hanging for
/// another timeout (see ``QuickEndpoints``). The dispatcher holds a webhook whose URL template varies its host to the
/// full ``limit`` instead: its claims cannot know the host, nor what it earned, in advance.
///
/// Endpoints with no request for a minute are forgotten (``forget(unusedSince:)``) and start
/// again at ``initial``, so the table holds only endpoints in use.
struct EndpointAllowance {
    /// The most requests an endpoint may have in flight (the worker's per-endpoint limit).
    let limit: Int
    /// What an endpoint starts with, and the least it keeps: an eighth of ``limit``, at least 1.
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
    /// ``answeredWithin`` it earns one more request, later it costs one (never below ``initial``).
    mutating func answered(_ endpoint: String, after duration: Duration, now: ContinuousClock.Instant) {
        let allowed = allowed(endpoint)
        endpoints[endpoint] = (duration <= answeredWithin ? min(limit, allowed + 1) : max(initial, allowed - 1), now)
    }

    /// The remembered endpoints that may have more than ``initial`` in flight.
    var endpointsAboveInitial: [String] {
        endpoints.compactMap { $0.value.allowed > initial ? $0.key : nil }
    }

    /// A request to `endpoint` ended without an answer, at `now`.
    mutating func unanswered(_ endpoint: String, now: ContinuousClock.Instant) {
        endpoints[endpoint] = (max(initial, allowed(endpoint) / 2), now)
    }

    /// Forgets the endpoints whose last request ended before `instant`.
    mutating func forget(unusedSince instant: ContinuousClock.Instant) {
        endpoints = endpoints.filter { $0.value.lastEnded >= instant }
    }

    /// How many endpoints are remembered.
    var count: Int { endpoints.count }
}
