import Delivery
import Foundation
import StandardWebhooks
import Templates
import Testing

@Suite struct SignatureTests {
    @Test("the Standard Webhooks example signature (also computed with Python's hmac module)")
    func knownVector() throws {
        let secret = try #require(SigningSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let signature = WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330,
                                              body: Array(#"{"test": 2432232314}"#.utf8), secrets: [secret])
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        #expect(WebhookSignature.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: "1614265330", body: Array(#"{"test": 2432232314}"#.utf8),
                                        header: "v1,bad v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", secret: secret, now: 1_614_265_400))
        #expect(!WebhookSignature.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: "1614265330", body: Array(#"{"test": 2432232315}"#.utf8),
                                         header: signature, secret: secret, now: 1_614_265_400))
        #expect(!WebhookSignature.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: "1614265330", body: Array(#"{"test": 2432232314}"#.utf8),
                                         header: signature, secret: secret, now: 1_614_265_330 + 301))
    }

    @Test("verify refuses a hostile timestamp instead of trapping on overflow")
    func hostileTimestampsAreRefused() throws {
        let secret = try #require(SigningSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        for (timestamp, now) in [("-9223372036854775808", 1_614_265_400), ("9223372036854775807", -5), ("-9223372036854775807", Int.max), ("1614265330", Int.min)] {
            #expect(!WebhookSignature.verify(id: "msg_1", timestamp: timestamp, body: [], header: "v1,x", secret: secret, now: now))
        }
    }

    @Test func secretsAreParsedStrictlyAndNeverPrinted() throws {
        #expect(SigningSecret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == nil)
        #expect(SigningSecret("whsec_c2hvcnQ=") == nil)
        #expect(SigningSecret("whsec_not base64!") == nil)
        let generated = try #require(SigningSecret.generate())
        #expect(generated.key.count == 32)
        #expect(SigningSecret(generated.encoded) == generated)
        #expect("\(generated)" == "whsec_***")
        #expect(String(describing: [generated]) == "[whsec_***]")
    }
}

@Suite struct WebhookRequestTests {
    let payload = try! JSONParser.parse(#"{"customer": {"id": 9007199254740993, "email": "a+b@c.cz"}}"#)

    @Test func postGetsContentTypeAndStandardHeaders() throws {
        let webhook = try Webhook(id: 1, revision: 1, name: "x", url: "https://h/#customer.id#", body: ##"{"e": "#customer.email#"}"##,
                                  headersJSON: #"{"Authorization": "Bearer k"}"#, secret: nil)
        let request = try webhook.request(payload: payload, messageID: "msg_7", timestamp: 1_700_000_000)
        #expect(request.method == "POST")
        #expect(request.url == "https://h/9007199254740993")
        #expect(request.body == #"{"e": "a+b@c.cz"}"#)
        #expect(request.headers.map { "\($0.name): \($0.value)" } == [
            "Content-Type: application/json", "Authorization: Bearer k", "webhook-id: msg_7", "webhook-timestamp: 1700000000",
        ])
    }

    @Test func getHasNoContentTypeAndSignsTheEmptyBody() throws {
        let secret = try #require(SigningSecret.generate())
        let webhook = try Webhook(id: 1, revision: 1, name: "x", url: "https://h/", body: nil, headersJSON: "{}", secret: secret.encoded)
        let request = try webhook.request(payload: payload, messageID: "msg_8", timestamp: 1_700_000_000)
        #expect(request.method == "GET")
        #expect(request.body == nil)
        let expected = WebhookSignature.sign(id: "msg_8", timestamp: 1_700_000_000, body: [], secrets: [secret])
        #expect(request.headers.map(\.name) == ["webhook-id", "webhook-timestamp", "webhook-signature"])
        #expect(request.headers.last?.value == expected)
    }

    @Test func aWebhooksOwnContentTypeWins() throws {
        let webhook = try Webhook(id: 1, revision: 1, name: "x", url: "https://h/", body: "{}", headersJSON: #"{"content-type": "application/vnd.x+json"}"#, secret: nil)
        let request = try webhook.request(payload: payload, messageID: "msg_9", timestamp: 1)
        #expect(request.headers.filter { $0.name.lowercased() == "content-type" }.map(\.value) == ["application/vnd.x+json"])
    }

    @Test("the webhook's custom headers stay with its URL's origin; Webhooky's headers and Content-Type may follow a redirect")
    func customHeadersStayWithTheOrigin() throws {
        let secret = try #require(SigningSecret.generate())
        for (headersJSON, contentType) in [(#"{"X-Api-Key": "k", "Authorization": "Bearer t"}"#, "Content-Type"),
                                           (#"{"X-Api-Key": "k", "content-type": "application/vnd.x+json", "Authorization": "Bearer t"}"#, "content-type")] {
            let webhook = try Webhook(id: 1, revision: 1, name: "x", url: "https://h/", body: "{}", headersJSON: headersJSON, secret: secret.encoded)
            let request = try webhook.request(payload: payload, messageID: "msg_10", timestamp: 1)
            #expect(request.headers.filter(\.staysWithOrigin).map(\.name) == ["X-Api-Key", "Authorization"])
            #expect(Set(request.headers.filter { !$0.staysWithOrigin }.map(\.name)) == [contentType, "webhook-id", "webhook-timestamp", "webhook-signature"])
        }
    }

    @Test func unusableRowsAreExplained() {
        #expect(throws: WebhookError("headers must be a JSON object")) {
            try Webhook(id: 1, revision: 1, name: "", url: "https://h/", body: nil, headersJSON: "[]", secret: nil)
        }
        #expect(throws: WebhookError("header \"X\" must have a string value")) {
            try Webhook(id: 1, revision: 1, name: "", url: "https://h/", body: nil, headersJSON: #"{"X": 1}"#, secret: nil)
        }
        #expect(throws: WebhookError("URL must start with http:// or https:// (got scheme \"gopher\")")) {
            try Webhook(id: 1, revision: 1, name: "", url: "gopher://h/", body: nil, headersJSON: "{}", secret: nil)
        }
        #expect(throws: WebhookError("secret is not a Standard Webhooks secret (whsec_ + base64 of 24 to 64 bytes)")) {
            try Webhook(id: 1, revision: 1, name: "", url: "https://h/", body: nil, headersJSON: "{}", secret: "hunter2")
        }
    }

    @Test("a delivery's webhook-id: the installation's prefix and its id, or msg_ and its id when it is older than the prefix")
    func messageIDs() {
        let ids = MessageIDs(prefix: "msg_3f9a2c71d0_", prefixedFrom: 100)
        #expect(ids.messageID(deliveryID: 99) == "msg_99")
        #expect(ids.messageID(deliveryID: 100) == "msg_3f9a2c71d0_100")
        #expect(ids.messageID(deliveryID: 9_007_199_254_740_993) == "msg_3f9a2c71d0_9007199254740993")
    }
}
