import Delivery
import Postgres

/// Webhooks parsed once per revision. A delivery names its webhook's revision; a new
/// revision (the row was edited) is read and parsed again.
struct WebhookCache {
    private var entries: [Int64: (revision: Int, webhook: Result<Webhook, WebhookError>)] = [:]

    /// Reads and parses the webhooks of `deliveries` whose revision is not cached yet.
    mutating func load(for deliveries: [ClaimedDelivery], from connection: Connection) throws(PostgresError) {
        var missing: Set<Int64> = []
        for delivery in deliveries where entries[delivery.webhookID]?.revision != delivery.webhookRevision {
            missing.insert(delivery.webhookID)
        }
        guard !missing.isEmpty else { return }
        for row in try DeliveryStore.webhooks(connection, ids: Array(missing)) {
            let webhook = Result { () throws(WebhookError) -> Webhook in
                try Webhook(id: row.id, revision: row.revision, name: row.name, url: row.url, body: row.body, headersJSON: row.headers, secret: row.secret,
                            previousSecret: row.previousSecret, previousSecretExpiresAt: row.previousSecretExpiresAt, followRedirects: row.followRedirects)
            }
            entries[row.id] = (row.revision, webhook)
        }
    }

    /// The fixed endpoint of every cached webhook that has one.
    func fixedEndpoints() -> [(id: Int64, endpoint: String)] {
        entries.compactMap { id, entry in
            guard case .success(let webhook) = entry.webhook, let endpoint = webhook.endpoint else { return nil }
            return (id, endpoint)
        }
    }

    /// The fixed endpoint of webhook `id`, or `nil` when it is not cached, cannot be used, or
    /// its URL template varies its origin.
    func endpoint(of id: Int64) -> String? {
        guard case .success(let webhook)? = entries[id]?.webhook else { return nil }
        return webhook.endpoint
    }

    /// The webhook for `delivery`, or why it cannot be used.
    func webhook(for delivery: ClaimedDelivery) -> Result<Webhook, WebhookError> {
        guard let entry = entries[delivery.webhookID] else {
            return .failure(WebhookError("webhook \(delivery.webhookID) was deleted"))
        }
        return entry.webhook
    }
}
