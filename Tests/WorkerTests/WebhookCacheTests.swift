import Delivery
import Postgres
import TestSupport
import Testing
@testable import Worker

/// ``WebhookCache``: a webhook is parsed once per revision, read again when edited, and
/// forgotten when deleted.
@Suite struct WebhookCacheTests {
    @Test("a delivery claimed for a revision of a webhook that was deleted before it was read is not sent with an older revision's URL and secret")
    func aDeletedWebhookIsForgotten() throws {
        let shop = try Shop()
        try shop.addCustomers(2)
        let id = try shop.addWebhook(url: "http://127.0.0.1:9/old")
        let connection = try FanOutTests.session(shop)
        func fanOut() throws -> ClaimedDelivery { try #require(try FanOutTests.claimed(connection).first) }
        var cache = WebhookCache()
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = 100001")
        let first = try fanOut()
        try cache.load(for: [first], from: connection)
        #expect(cache.endpoint(of: id) == "http://127.0.0.1:9")

        // Edited (a new URL), an event claimed for the new revision, and then deleted before
        // the worker read that revision.
        try shop.connection.execute("UPDATE webhooky.webhooks SET url = 'http://127.0.0.1:10/new' WHERE id = \(id)")
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = 100002")
        let second = try fanOut()
        #expect(second.webhookRevision != first.webhookRevision)
        try shop.connection.execute("DELETE FROM webhooky.webhooks WHERE id = \(id)")
        try cache.load(for: [second], from: connection)
        guard case .failure(let error) = cache.webhook(for: second) else {
            Issue.record("the delivery would go out with the deleted webhook's older revision")
            return
        }
        #expect("\(error)".contains("webhook \(id) was deleted"), "\(error)")
        #expect(cache.changedSinceClaim(second), "the worker gives it back instead")
        #expect(cache.endpoint(of: id) == nil && cache.webhooks(at: "http://127.0.0.1:9").isEmpty)
    }

    @Test("a delivery claimed for a revision that a change replaced before the webhook was read (a pause and a new URL, say) is told apart: the worker gives it back instead of sending it as the webhook is after the change, which its claim did not check")
    func aChangeAfterTheClaimIsToldApart() throws {
        let shop = try Shop()
        try shop.addCustomers(2)
        let id = try shop.addWebhook(url: "http://127.0.0.1:9/before")
        let connection = try FanOutTests.session(shop)
        func fanOut() throws -> ClaimedDelivery? { try FanOutTests.claimed(connection).first }
        var cache = WebhookCache()
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = 100001")
        let claimed = try #require(try fanOut())
        // Paused and pointed elsewhere after the fan-out claimed the delivery, before the read.
        try shop.connection.execute("UPDATE webhooky.webhooks SET enabled = false, url = 'http://127.0.0.1:10/after' WHERE id = \(id)")
        try cache.load(for: [claimed], from: connection)
        #expect(cache.changedSinceClaim(claimed))
        #expect(cache.endpoint(of: id) == "http://127.0.0.1:10", "the cache holds the webhook as it is now")

        // Enabled again: the next fan-out reads the new revision, and the read of the webhook
        // after it finds that revision too.
        try shop.connection.execute("UPDATE webhooky.webhooks SET enabled = true WHERE id = \(id)")
        try shop.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = 100002")
        let next = try #require(try fanOut())
        try cache.load(for: [next], from: connection)
        #expect(!cache.changedSinceClaim(next))
        guard case .success(let webhook) = cache.webhook(for: next) else { Issue.record("the current revision is not usable"); return }
        #expect(webhook.revision == next.webhookRevision)
    }
}
