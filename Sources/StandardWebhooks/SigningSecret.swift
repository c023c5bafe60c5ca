import Foundation

/// A Standard Webhooks signing secret: `whsec_` followed by base64 of 24 to 64 random bytes.
///
/// Its `description` is redacted, so printing or logging a secret shows nothing of it.
public struct SigningSecret: Sendable, Hashable, CustomStringConvertible {
    /// The key bytes (the base64 part, decoded).
    public let key: [UInt8]

    /// Parses `text` (`whsec_...`); `nil` when it is not in that format.
    public init?(_ text: String) {
        guard text.hasPrefix("whsec_"), let data = Data(base64Encoded: String(text.dropFirst(6))), (24...64).contains(data.count) else {
            return nil
        }
        self.key = Array(data)
    }

    /// A new secret of 32 random bytes; `nil` only if the system has no randomness to give.
    public static func generate() -> SigningSecret? {
        guard let bytes = HMACSHA256.randomBytes(32) else { return nil }
        return SigningSecret(key: bytes)
    }

    private init(key: [UInt8]) {
        self.key = key
    }

    /// The secret as it is stored: `whsec_` + base64.
    public var encoded: String { "whsec_" + Data(key).base64EncodedString() }

    /// Always `whsec_***`: a secret never reaches a log by accident.
    public var description: String { "whsec_***" }
}
