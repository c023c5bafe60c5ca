import Glibc

/// An IPv4 or IPv6 address, as the HTTP client connects to it.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    /// Parses the text form: dotted-decimal IPv4 (`192.168.0.1`, exactly four decimal parts) or
    /// IPv6 (`fe80::1`, `::ffff:127.0.0.1`), without brackets, zone or port.
    /// Returns `nil` for anything else.
    public init?(_ text: String) {
        // A NUL would end the C string early: "127.0.0.1\0junk" must not parse as 127.0.0.1.
        guard !text.utf8.contains(0) else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.bytes = withUnsafeBytes(of: v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self.bytes = withUnsafeBytes(of: v6) { Array($0) }
            return
        }
        return nil
    }

    /// The address with these bytes (network order); `nil` unless there are 4 or 16.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// The IPv4 address `a.b.c.d`.
    init(ipv4 parts: (UInt8, UInt8, UInt8, UInt8)) {
        self.bytes = [parts.0, parts.1, parts.2, parts.3]
    }

    /// The IPv6 address whose leading 16-bit groups are `groups` (at most 8; the rest are zero).
    init(ipv6 groups: [UInt16]) {
        var bytes = [UInt8](repeating: 0, count: 16)
        for (index, group) in groups.prefix(8).enumerated() {
            bytes[index * 2] = UInt8(group >> 8)
            bytes[index * 2 + 1] = UInt8(group & 0xFF)
        }
        self.bytes = bytes
    }

    /// True for an IPv4 address, false for IPv6.
    public var isIPv4: Bool { bytes.count == 4 }

    /// The address as text: `169.254.169.254`, `fe80::1`, `::ffff:127.0.0.1`.
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let family = isIPv4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count)) != nil
        }
        guard written else { return bytes.map(String.init).joined(separator: ".") }
        return String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The IPv4 address an IPv6 address stands for, and the form it takes: IPv4-mapped
    /// (`::ffff:a.b.c.d`, ::ffff:0:0/96), NAT64 (`64:ff9b::a.b.c.d`, 64:ff9b::/96) or 6to4
    /// (`2002:AABB:CCDD::/48`). `nil` for IPv4 addresses and other IPv6 addresses.
    public var embeddedIPv4: (address: IPAddress, form: String)? {
        guard !isIPv4 else { return nil }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return IPAddress(bytes: Array(bytes[12..<16])).map { ($0, "IPv4-mapped") }
        }
        if bytes[0..<12] == [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] {
            return IPAddress(bytes: Array(bytes[12..<16])).map { ($0, "NAT64") }
        }
        if bytes[0] == 0x20 && bytes[1] == 0x02 {
            return IPAddress(bytes: Array(bytes[2..<6])).map { ($0, "6to4") }
        }
        return nil
    }
}

/// A network in CIDR notation: an address and how many leading bits are fixed
/// (`10.20.0.0/16`, `fc00::/7`).
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    /// The network's first address (every bit after the prefix is zero).
    public let address: IPAddress
    /// Leading bits every address of the network shares: 0...32 for IPv4, 0...128 for IPv6.
    public let prefixLength: Int

    /// Parses `address/prefix` (`10.20.0.0/16`, `fd00::/8`), or a single address, which means
    /// just that address (`/32` or `/128`).
    ///
    /// - Throws: ``AddressPolicyError`` when the address is not IPv4 or IPv6 text, the prefix is
    ///   not a decimal number in range, or bits after the prefix are set (`10.20.1.0/16`: the
    ///   error suggests `10.20.0.0/16`), so a typo cannot silently allow more than meant.
    public init(_ cidr: String) throws(AddressPolicyError) {
        let parts = cidr.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let addressText = parts.first else {
            throw AddressPolicyError("\"\(cidr)\" is not a network: write an address and a prefix length, e.g. 10.20.0.0/16")
        }
        guard let address = IPAddress(String(addressText)) else {
            throw AddressPolicyError("\"\(cidr)\" is not a network: \"\(addressText)\" is not an IPv4 or IPv6 address")
        }
        let maximum = address.bytes.count * 8
        var prefixLength = maximum
        if parts.count == 2 {
            let prefixText = parts[1]
            guard !prefixText.isEmpty, prefixText.count <= 3, prefixText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = Int(prefixText), value <= maximum else {
                throw AddressPolicyError("\"\(cidr)\" is not a network: the prefix length must be a number from 0 to \(maximum)")
            }
            prefixLength = value
        }
        let network = IPNetwork(masking: address, prefixLength: prefixLength)
        guard network.address == address else {
            throw AddressPolicyError("\"\(cidr)\" is not a network: bits after the first \(prefixLength) are set; did you mean \(network)?")
        }
        self = network
    }

    /// The network of `prefixLength` bits that contains `address` (bits after the prefix are
    /// cleared). `prefixLength` is clamped to the address's size.
    public init(masking address: IPAddress, prefixLength: Int) {
        let length = max(0, min(prefixLength, address.bytes.count * 8))
        var bytes = address.bytes
        for index in bytes.indices {
            bytes[index] &= IPNetwork.maskByte(index: index, prefixLength: length)
        }
        self.address = IPAddress(bytes: bytes) ?? address  // same count as `address`: never nil
        self.prefixLength = length
    }

    /// True when `candidate` is in the network; an IPv4 address is never in an IPv6 network
    /// and the other way round (``AddressPolicy`` looks through IPv4-mapped forms itself).
    public func contains(_ candidate: IPAddress) -> Bool {
        guard candidate.bytes.count == address.bytes.count else { return false }
        for index in candidate.bytes.indices where candidate.bytes[index] & IPNetwork.maskByte(index: index, prefixLength: prefixLength) != address.bytes[index] {
            return false
        }
        return true
    }

    /// `10.20.0.0/16`, `fc00::/7`.
    public var description: String { "\(address)/\(prefixLength)" }

    private static func maskByte(index: Int, prefixLength: Int) -> UInt8 {
        let bits = prefixLength - index * 8
        if bits >= 8 { return 0xFF }
        if bits <= 0 { return 0 }
        return UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
    }
}

/// A network or address policy that cannot be parsed.
public struct AddressPolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, naming the text that was given, e.g.
    /// `"10.20.1.0/16" is not a network: bits after the first 16 are set; did you mean 10.20.0.0/16?`.
    public var message: String

    /// An error with `message`.
    public init(_ message: String) { self.message = message }

    /// The ``message``.
    public var description: String { message }
}
