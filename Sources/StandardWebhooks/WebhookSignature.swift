import Foundation

/// Standard Webhooks signatures (https://www.standardwebhooks.com): the `webhook-signature`
/// header is `v1,` + base64(HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")).
public enum WebhookSignature {
    /// The `webhook-signature` value for one request.
    ///
    /// - Parameters:
    ///   - id: The `webhook-id` header value.
    ///   - timestamp: The `webhook-timestamp` value, seconds since 1970.
    ///   - body: The exact body bytes sent (empty for a `GET`).
    ///   - secrets: One or more secrets; each gives one space-separated `v1,...` signature.
    public static func sign(id: String, timestamp: Int, body: [UInt8], secrets: [SigningSecret]) -> String {
        let content = Array("\(id).\(timestamp).".utf8) + body
        return secrets.map { secret in
            "v1," + Data(HMACSHA256.authenticationCode(key: secret.key, message: content)).base64EncodedString()
        }.joined(separator: " ")
    }

    /// Checks a received request the way a receiver should: some `v1` signature in `header`
    /// matches, and `timestamp` is within `tolerance` seconds (default 300) of `now` (default:
    /// the current time, seconds since 1970).
    public static func verify(
        id: String, timestamp: String, body: [UInt8], header: String, secret: SigningSecret,
        now: Int? = nil, tolerance: Int = 300
    ) -> Bool {
        let now = now ?? Int(Date().timeIntervalSince1970)
        // Subtracted with overflow reported: a hostile timestamp must not trap the receiver.
        guard let seconds = Int(timestamp) else { return false }
        let (age, overflow) = now.subtractingReportingOverflow(seconds)
        guard !overflow, age != .min, abs(age) <= tolerance else { return false }
        let expected = sign(id: id, timestamp: seconds, body: body, secrets: [secret])
        return header.split(separator: " ").contains { candidate in
            constantTimeEqual(Array(candidate.utf8), Array(expected.utf8))
        }
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
