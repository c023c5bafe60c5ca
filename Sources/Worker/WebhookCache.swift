import Delivery
import Postgres

/// Webhooks parsed once per revision. A delivery names its webhook's revision; a new
/// revision (the row was edited) is read and parsed again.
struct WebhookCache {
    private var entries: [Int64: (revision: Int, webhook: Result<Webhook, WebhookError>)] = [:]
    /// The usable cached webhooks by fixed endpoint, and those whose URL template varies their
    /// origin (see ``webhooks(at:)``, ``templatedIDs``).
    private var byEndpoint: [String: Set<Int64>] = [:]
    private(set) var templatedIDs: Set<Int64> = []

    /// Reads and parses the webhooks of `deliveries` whose revision is not cached yet; those
    /// deleted meanwhile are forgotten (their deliveries cannot be sent: an older revision, with
    /// its URL and secret, is not what the admin left).
    mutating func load(for deliveries: [ClaimedDelivery], from connection: Connection) throws(PostgresError) {
        var missing: Set<Int64> = []
        for delivery in deliveries where entries[delivery.webhookID]?.revision != delivery.webhookRevision {
            missing.insert(delivery.webhookID)
        }
        try load(ids: missing, from: connection)
    }

    /// Reads and parses webhooks `ids` as they are now; those deleted are forgotten.
    mutating func load(ids: Set<Int64>, from connection: Connection) throws(PostgresError) {
        guard !ids.isEmpty else { return }
        let rows = try DeliveryStore.webhooks(connection, ids: Array(ids))
        for id in ids.subtracting(rows.map(\.id)) {
            forget(id)
        }
        for row in rows {
            let webhook = Result { () throws(WebhookError) -> Webhook in
                try Webhook(id: row.id, revision: row.revision, name: row.name, url: row.url, body: row.body, headersJSON: row.headers, secret: row.secret,
                            previousSecret: row.previousSecret, previousSecretExpiresAt: row.previousSecretExpiresAt, followRedirects: row.followRedirects)
            }
            forget(row.id)
            entries[row.id] = (row.revision, webhook)
            if case .success(let parsed) = webhook {
                if let endpoint = parsed.endpoint { byEndpoint[endpoint, default: []].insert(row.id) } else { templatedIDs.insert(row.id) }
            }
        }
    }

    /// Drops webhook `id` from the cache and its indexes.
    private mutating func forget(_ id: Int64) {
        if let old = endpoint(of: id) { byEndpoint[old]?.remove(id) }
        templatedIDs.remove(id)
        entries[id] = nil
    }

    /// The usable cached webhooks whose fixed endpoint is `endpoint`.
    func webhooks(at endpoint: String) -> Set<Int64> {
        byEndpoint[endpoint] ?? []
    }

    /// The fixed endpoint of webhook `id`, or `nil` when it is not cached, cannot be used, or
    /// its URL template varies its origin.
    func endpoint(of id: Int64) -> String? {
        guard case .success(let webhook)? = entries[id]?.webhook else { return nil }
        return webhook.endpoint
    }

    /// Whether webhook `delivery.webhookID` changed after the claim or fan-out decided on it and
    /// before ``load(for:from:)`` read it: cached at another revision than the one the claim
    /// read (a pause, an edit, a move), or not cached (deleted).
    func changedSinceClaim(_ delivery: ClaimedDelivery) -> Bool {
        guard let entry = entries[delivery.webhookID] else { return true }
        return entry.revision != delivery.webhookRevision
    }

    /// The webhook for `delivery`, or why it cannot be used.
    func webhook(for delivery: ClaimedDelivery) -> Result<Webhook, WebhookError> {
        guard let entry = entries[delivery.webhookID] else {
            return .failure(WebhookError("webhook \(delivery.webhookID) was deleted"))
        }
        return entry.webhook
    }
}
