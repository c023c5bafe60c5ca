import Delivery
import Foundation
import Templates
import Testing

/// Standard Webhooks signing, checked with an independent HMAC (``IndependentHMAC``) the way the
/// reference verifiers do it: `whsec_` dropped, the rest base64-decoded, `v1,` + base64 of
/// HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body bytes>"), space-separated.
@Suite struct SignatureComplianceTests {
    /// `whsec_` + base64 of `count` bytes 1, 2, 3...
    static func secret(bytes count: Int, offset: UInt8 = 0) -> (text: String, key: [UInt8]) {
        let key = (0..<count).map { UInt8($0 + 1) &+ offset }
        return ("whsec_" + Data(key).base64EncodedString(), key)
    }

    static func expected(key: [UInt8], id: String, timestamp: Int, body: [UInt8]) -> String {
        "v1," + Data(IndependentHMAC.hmacSHA256(key: key, message: Array("\(id).\(timestamp).".utf8) + body)).base64EncodedString()
    }

    @Test("secrets of 24 and 64 bytes (the spec's bounds), a body with non-ASCII text, a GET signed over no body",
          arguments: [24, 32, 64])
    func signatureMatchesAnIndependentHMAC(bytes: Int) throws {
        let (text, key) = SignatureComplianceTests.secret(bytes: bytes)
        let payload = try JSONParser.parse(#"{"name": "Žluťoučký kůň \"🎉\"\n", "credit": 12345678901234.56}"#)
        let post = try Webhook(id: 1, revision: 1, name: "", url: "https://erp.example/h", body: ##"{"n": "#name#", "c": #credit#}"##,
                               headersJSON: "{}", secret: text)
        let request = try post.request(payload: payload, messageID: "msg_0a1b2c3d4e_7", timestamp: 1_796_053_955)
        let body = try #require(request.body)
        #expect(body == #"{"n": "Žluťoučký kůň \"🎉\"\n", "c": 12345678901234.56}"#)
        #expect(request.headers.first { $0.name == "webhook-signature" }?.value
            == SignatureComplianceTests.expected(key: key, id: "msg_0a1b2c3d4e_7", timestamp: 1_796_053_955, body: Array(body.utf8)))
        #expect(request.headers.first { $0.name == "webhook-timestamp" }?.value == "1796053955")
        #expect(request.headers.first { $0.name == "webhook-id" }?.value == "msg_0a1b2c3d4e_7")

        let get = try Webhook(id: 2, revision: 1, name: "", url: "https://erp.example/h?c=#credit#", body: nil, headersJSON: "{}", secret: text)
        let getRequest = try get.request(payload: payload, messageID: "msg_0a1b2c3d4e_8", timestamp: 1_796_053_955)
        #expect(getRequest.body == nil)
        #expect(getRequest.headers.first { $0.name == "webhook-signature" }?.value
            == SignatureComplianceTests.expected(key: key, id: "msg_0a1b2c3d4e_8", timestamp: 1_796_053_955, body: []))
    }

    @Test("during a rotation's overlap: the new secret's signature, a space, the previous one's; from its expiry on the new one alone")
    func rotationSignsWithBothUntilTheExpiry() throws {
        let (new, newKey) = SignatureComplianceTests.secret(bytes: 32)
        let (old, oldKey) = SignatureComplianceTests.secret(bytes: 32, offset: 100)
        let webhook = try Webhook(id: 1, revision: 1, name: "", url: "https://erp.example/h", body: "{}", headersJSON: "{}",
                                  secret: new, previousSecret: old, previousSecretExpiresAt: 1_796_053_956)
        let during = try webhook.request(payload: .object(.init()), messageID: "msg_1", timestamp: 1_796_053_955)
        #expect(during.headers.first { $0.name == "webhook-signature" }?.value
            == SignatureComplianceTests.expected(key: newKey, id: "msg_1", timestamp: 1_796_053_955, body: Array("{}".utf8)) + " "
            + SignatureComplianceTests.expected(key: oldKey, id: "msg_1", timestamp: 1_796_053_955, body: Array("{}".utf8)))
        let after = try webhook.request(payload: .object(.init()), messageID: "msg_1", timestamp: 1_796_053_956)
        #expect(after.headers.first { $0.name == "webhook-signature" }?.value
            == SignatureComplianceTests.expected(key: newKey, id: "msg_1", timestamp: 1_796_053_956, body: Array("{}".utf8)))
    }
}
