/// The endpoints whose requests end quickly. For these the worker keeps a second line of
/// deliveries waiting in the HTTP client (see `Dispatcher.budget(of:)`): they start the moment
/// one of the endpoint's requests ends, while the dispatcher writes the next fan-out, instead of
/// the endpoint idling until it has. A slow endpoint gets no such line, so it can never hold
/// more than its share of the worker's capacity.
///
/// An endpoint is quick after ``streak`` requests in a row that each ended within
/// ``threshold``: one slow request makes it slow again, so an overloaded endpoint that sheds
/// some requests with a quick 503 and takes seconds over the rest is not quick. Endpoints with no
/// request for a minute are forgotten (``forget(unusedSince:)``), so the set holds only
/// endpoints in use (templated hosts would otherwise add one each).
///
/// Only when the lease allows it (`enabled`): a delivery waiting in line starts within one
/// request timeout (the requests ahead of it are at most one endpoint's share, each ending
/// within the timeout) and then takes at most another, so the lease must cover two request
/// timeouts and a margin, or another worker could take the delivery over while it waits.
struct QuickEndpoints {
    /// A request that ended within this counts as quick. 50 ms.
    static let threshold: Duration = .milliseconds(50)
    /// Quick requests in a row that make an endpoint quick. 16.
    static let streak = 16

    let enabled: Bool
    /// Quick requests in a row, and when the last request ended, per endpoint.
    private var endpoints: [String: (quickInARow: Int, lastEnded: ContinuousClock.Instant)] = [:]

    /// Quick endpoints are counted only when `enabled` (the lease covers two request timeouts).
    init(enabled: Bool) {
        self.enabled = enabled
    }

    /// A request to `endpoint` ended after `duration`, at `now`.
    mutating func finished(_ endpoint: String, after duration: Duration, now: ContinuousClock.Instant) {
        guard enabled else { return }
        let quick = duration < QuickEndpoints.threshold
        endpoints[endpoint] = (quick ? (endpoints[endpoint]?.quickInARow ?? 0) + 1 : 0, now)
    }

    /// A request to `endpoint` ended without an answer (a timeout, a failed or broken
    /// connection), at `now`: the endpoint is not quick (an endpoint that answered quickly and
    /// then hangs must not keep its line).
    mutating func unanswered(_ endpoint: String, now: ContinuousClock.Instant) {
        guard enabled else { return }
        endpoints[endpoint] = (0, now)
    }

    /// Forgets the endpoints whose last request ended before `instant`.
    mutating func forget(unusedSince instant: ContinuousClock.Instant) {
        endpoints = endpoints.filter { $0.value.lastEnded >= instant }
    }

    func contains(_ endpoint: String) -> Bool {
        (endpoints[endpoint]?.quickInARow ?? 0) >= QuickEndpoints.streak
    }

    /// How many endpoints are remembered.
    var count: Int { endpoints.count }
}
