/// The endpoints whose requests end quickly. For these the worker keeps a second line of
/// deliveries waiting in the HTTP client (see `Dispatcher.budget(of:)`): they start the moment
/// one of the endpoint's requests ends, while the dispatcher writes the next fan-out, instead of
/// the endpoint idling until it has. A slow endpoint gets no such line, so it can never hold
/// more than its share of the worker's capacity.
///
/// Only when the lease allows it (`enabled`): a delivery waiting in line starts within one
/// request timeout (the requests ahead of it are at most one endpoint's share, each ending
/// within the timeout) and then takes at most another, so the lease must cover two request
/// timeouts and a margin, or another worker could take the delivery over while it waits.
struct QuickEndpoints {
    /// A request that ended within this makes its endpoint quick; a slower one (a timeout, a
    /// slow answer) makes it slow again. 50 ms.
    static let threshold: Duration = .milliseconds(50)

    let enabled: Bool
    private var quick: Set<String> = []

    /// Quick endpoints are counted only when `enabled` (the lease covers two request timeouts).
    init(enabled: Bool) {
        self.enabled = enabled
    }

    /// A request to `endpoint` ended after `duration`.
    mutating func finished(_ endpoint: String, after duration: Duration) {
        guard enabled else { return }
        if duration < QuickEndpoints.threshold {
            quick.insert(endpoint)
        } else {
            quick.remove(endpoint)
        }
    }

    func contains(_ endpoint: String) -> Bool {
        quick.contains(endpoint)
    }
}
