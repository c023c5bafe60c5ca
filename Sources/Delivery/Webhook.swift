public import StandardWebhooks
public import Templates

/// A webhook as the worker uses it: its templates parsed once, for one revision of its row.
public struct Webhook: Sendable {
    /// `webhooks.id`.
    public let id: Int64
    /// `webhooks.revision`: a changed row has a new revision and is parsed again.
    public let revision: Int
    /// `webhooks.name` (may be empty).
    public let name: String
    /// URL, body and header templates.
    public let template: RequestTemplate
    /// The signing secret; `nil` sends unsigned requests.
    public let secret: SigningSecret?
    /// The secret before the last rotation, signed with too until ``previousSecretExpiresAt``.
    public let previousSecret: SigningSecret?
    /// When the previous secret stops being used, in seconds since 1970.
    public let previousSecretExpiresAt: Double?
    /// Redirects followed (each hop checked like the first): 5 when the webhook opts in
    /// (`follow_redirects`), else 0.
    public let maximumRedirects: Int
    /// The endpoint every request of this webhook goes to (see ``Endpoint``), or `nil` when a
    /// variable is part of the host, so that it is known only per request.
    public let endpoint: String?

    /// Builds a webhook from its row's columns.
    ///
    /// - Parameters:
    ///   - headersJSON: The `headers` column as JSON text (an object of strings).
    ///   - secret: The `secret` column (`whsec_...`) or `nil`.
    ///   - previousSecret: The `previous_secret` column, `nil` by default.
    ///   - previousSecretExpiresAt: `previous_secret_expires_at`, seconds since 1970.
    ///   - followRedirects: The `follow_redirects` column, `false` by default.
    /// - Throws: ``WebhookError`` when a column cannot be used; the database's checks make
    ///   this rare (a row edited while its checks were disabled, for example).
    public init(
        id: Int64, revision: Int, name: String, url: String, body: String?, headersJSON: String, secret: String?,
        previousSecret: String? = nil, previousSecretExpiresAt: Double? = nil, followRedirects: Bool = false
    ) throws(WebhookError) {
        self.id = id
        self.revision = revision
        self.name = name
        var headers: [(name: String, value: String)] = []
        do {
            guard case .object(let object) = try JSONParser.parse(headersJSON) else {
                throw WebhookError("headers must be a JSON object")
            }
            for member in object.members {
                guard case .string(let value) = member.value else {
                    throw WebhookError("header \"\(member.key)\" must have a string value")
                }
                // Its own webhooky-test header (saved before migration 0062 refused it) is never
                // sent: on a real delivery it would make the receiver drop a real event.
                guard member.key.lowercased() != Webhook.testHeaderName else { continue }
                headers.append((member.key, value))
            }
        } catch let error as WebhookError {
            throw error
        } catch {
            throw WebhookError("headers are not valid JSON: \(error)")
        }
        do {
            self.template = try RequestTemplate(url: url, body: body, headers: headers)
        } catch {
            throw WebhookError(error.message)
        }
        self.endpoint = template.url.fixedOrigin.flatMap(Endpoint.key(forURL:))
        if let secret {
            guard let parsed = SigningSecret(secret) else {
                throw WebhookError("secret is not a Standard Webhooks secret (whsec_ + base64 of 24 to 64 bytes)")
            }
            self.secret = parsed
        } else {
            self.secret = nil
        }
        if let previousSecret, let previousSecretExpiresAt {
            guard let parsed = SigningSecret(previousSecret) else {
                throw WebhookError("previous_secret is not a Standard Webhooks secret (whsec_ + base64 of 24 to 64 bytes)")
            }
            self.previousSecret = parsed
            self.previousSecretExpiresAt = previousSecretExpiresAt
        } else {
            self.previousSecret = nil
            self.previousSecretExpiresAt = nil
        }
        self.maximumRedirects = followRedirects ? 5 : 0
    }

    /// The exact request for one delivery: the rendered templates plus Webhooky's headers:
    /// `Content-Type: application/json` on a `POST` (unless the webhook sets its own),
    /// `webhook-id`, `webhook-timestamp`, with a secret `webhook-signature`, and on a test
    /// delivery (`webhooky.send_test`) `webhooky-test: true`, so that a receiver can tell a
    /// sample payload from a real event.
    ///
    /// The webhook's custom headers stay with the URL's origin
    /// (``RenderedRequest/Header/staysWithOrigin``): a redirect to another origin does not carry
    /// them. Webhooky's headers and `Content-Type` (the webhook's own too: it describes the body,
    /// which a 307 or 308 carries on) hold no secret and go on.
    ///
    /// - Parameters:
    ///   - payload: The event's payload.
    ///   - messageID: The `webhook-id`, the same for every attempt of the delivery.
    ///   - timestamp: Seconds since 1970 for `webhook-timestamp` (and the signature).
    ///   - isTest: Whether the delivery is a test (adds ``testHeaderName``). Default `false`.
    ///   While a rotated secret's overlap lasts, the signature header carries one signature per
    ///   secret (space-separated), the new one first. A webhook that follows redirects also
    ///   gets the signature of an empty body, for a 303's `GET` without it.
    /// - Throws: ``TemplateError`` when the request cannot be made (a rendered URL without a
    ///   host, a header value with a line break, a part larger than `limits` allow).
    public func request(payload: JSONValue, messageID: String, timestamp: Int, isTest: Bool = false,
                        limits: RequestLimits = .standard) throws(TemplateError) -> RenderedRequest {
        var request = try template.render(payload)
        try limits.check(request)
        var headers: [RenderedRequest.Header] = []
        headers.reserveCapacity(request.headers.count + 4)
        if request.body != nil, !request.headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            headers.append(.init(name: "Content-Type", value: "application/json", staysWithOrigin: false))
        }
        for var header in request.headers {
            if header.name.lowercased() == "content-type" { header.staysWithOrigin = false }
            headers.append(header)
        }
        headers.append(.init(name: "webhook-id", value: messageID, staysWithOrigin: false))
        headers.append(.init(name: "webhook-timestamp", value: String(timestamp), staysWithOrigin: false))
        if let secret {
            var secrets = [secret]
            if let previousSecret, let expires = previousSecretExpiresAt, Double(timestamp) < expires { secrets.append(previousSecret) }
            let signature = WebhookSignature.sign(id: messageID, timestamp: timestamp, body: Array((request.body ?? "").utf8), secrets: secrets)
            // A followed 303 fetches its Location with a GET without the body: signed as such.
            let withoutBody = maximumRedirects > 0 && request.body != nil
                ? WebhookSignature.sign(id: messageID, timestamp: timestamp, body: [], secrets: secrets) : nil
            headers.append(.init(name: "webhook-signature", value: signature, staysWithOrigin: false, valueWithoutBody: withoutBody))
        }
        if isTest { headers.append(.init(name: Webhook.testHeaderName, value: "true", staysWithOrigin: false)) }
        request.headers = headers
        return request
    }

}

extension Webhook {
    /// The header that marks a test delivery (`webhooky.send_test`): `webhooky-test: true`.
    /// It is not covered by the signature (Standard Webhooks signs the id, the timestamp and
    /// the body only). A webhook's own header of that name is left out of every request
    /// (migration 0062 refuses it; a row saved before may have it).
    public static let testHeaderName = "webhooky-test"
}

/// How the `webhook-id` of a delivery is written, the same on every retry: the installation's
/// prefix (`msg_` and 10 hex digits drawn once, then `_`) and the delivery's id, so that the
/// ids of two installations never meet at a receiver; `msg_` and the id for the deliveries
/// created before the installation had a prefix (schema version 24), which keep theirs. As
/// `webhooky.message_id()` writes it.
public struct MessageIDs: Sendable, Hashable {
    /// `msg_3f9a2c71d0_`, say.
    public var prefix: String
    /// The first delivery id written with ``prefix``.
    public var prefixedFrom: Int64

    public init(prefix: String, prefixedFrom: Int64) {
        self.prefix = prefix
        self.prefixedFrom = prefixedFrom
    }

    /// The `webhook-id` of delivery `deliveryID`.
    public func messageID(deliveryID: Int64) -> String {
        deliveryID >= prefixedFrom ? "\(prefix)\(deliveryID)" : "msg_\(deliveryID)"
    }
}

/// Why a webhook row cannot be used.
public struct WebhookError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
