/// Which IP addresses the HTTP client may connect to: a pure value, checked against the address
/// of every connection attempt after DNS resolution (redirect hops included).
///
/// By default (``standard``) only addresses on the public internet are allowed. Refused:
///
/// | range | kind |
/// |---|---|
/// | `0.0.0.0/8`, `::/128` | unspecified ("this network") |
/// | `127.0.0.0/8`, `::1/128` | loopback |
/// | `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` | private (RFC 1918) |
/// | `100.64.0.0/10` | carrier-grade NAT |
/// | `169.254.0.0/16` (cloud metadata `169.254.169.254`), `fe80::/10` | link-local |
/// | `fc00::/7` | unique-local |
/// | `fec0::/10` | site-local (deprecated) |
/// | `224.0.0.0/4`, `ff00::/8` | multicast |
/// | `255.255.255.255/32` | broadcast |
/// | `240.0.0.0/4`, `192.0.0.0/24`, `::/96` (IPv4-compatible), `64:ff9b:1::/48`, `100::/64` | reserved |
/// | `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20` | documentation |
/// | `198.18.0.0/15`, `2001:2::/48` | benchmarking |
///
/// An IPv6 address that stands for an IPv4 address (IPv4-mapped `::ffff:0:0/96`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) is judged by that IPv4 address.
///
/// ``allowedNetworks`` lets chosen networks through (`10.20.0.0/16` for an internal service
/// that webhooks may call; an IPv4 network also allows its IPv4-mapped, NAT64 and 6to4 forms);
/// ``allowsAllAddresses`` turns the check off (development, the demo, tests on 127.0.0.1).
public struct AddressPolicy: Sendable, Hashable {
    /// Networks allowed even though they are private or internal. Default: none.
    public var allowedNetworks: [IPNetwork]
    /// Allows every address, internal networks included: for development, the demo and tests
    /// only, never for a deployment that sends tenants' webhooks. Default `false`.
    public var allowsAllAddresses: Bool

    /// A policy that refuses every private and internal address except `allowedNetworks`
    /// (default: none), or allows everything when `allowsAllAddresses` (default `false`).
    public init(allowedNetworks: [IPNetwork] = [], allowsAllAddresses: Bool = false) {
        self.allowedNetworks = allowedNetworks
        self.allowsAllAddresses = allowsAllAddresses
    }

    /// A policy that refuses every private and internal address except the networks in
    /// `allowedNetworks`, given in CIDR notation (`["10.20.0.0/16", "fd12:3456::/32"]`).
    ///
    /// - Throws: ``AddressPolicyError`` naming the first entry that is not a network.
    public init(allowing allowedNetworks: [String]) throws(AddressPolicyError) {
        var networks: [IPNetwork] = []
        for text in allowedNetworks { networks.append(try IPNetwork(text)) }
        self.init(allowedNetworks: networks)
    }

    /// What may be connected to, in a few words for a log line: `public only`, `public and
    /// 10.20.0.0/16`, `all`.
    public var summary: String {
        if allowsAllAddresses { return "all" }
        if allowedNetworks.isEmpty { return "public only" }
        return "public and " + allowedNetworks.map(\.description).joined(separator: ", ")
    }

    /// The default: public internet addresses only, no allow-list.
    public static let standard = AddressPolicy()

    /// Every address allowed, internal networks included: for development, the demo and tests.
    public static let allowingAll = AddressPolicy(allowsAllAddresses: true)

    /// Public addresses and this machine's loopback (`127.0.0.0/8`, `::1`): for the demo and
    /// tests, whose receivers listen on 127.0.0.1; every other internal network stays refused.
    public static let allowingLoopback = AddressPolicy(allowedNetworks: [
        IPNetwork(masking: IPAddress(ipv4: (127, 0, 0, 0)), prefixLength: 8),
        IPNetwork(masking: IPAddress(ipv6: [0, 0, 0, 0, 0, 0, 0, 1]), prefixLength: 128),
    ])

    /// True when the client may connect to `address`.
    public func isAllowed(_ address: IPAddress) -> Bool {
        refusal(for: address) == nil
    }

    /// Why the client may not connect to `address`, or `nil` when it may.
    public func refusal(for address: IPAddress) -> Refusal? {
        if allowsAllAddresses { return nil }
        let embedded = address.embeddedIPv4
        let isAllowListed = allowedNetworks.contains { network in
            network.contains(address) || embedded.map { network.contains($0.address) } == true
        }
        if isAllowListed { return nil }
        if let embedded, let kind = AddressPolicy.internalKind(of: embedded.address) {
            return Refusal(address: address, kind: kind, form: embedded.form)
        }
        return AddressPolicy.internalKind(of: address).map { Refusal(address: address, kind: $0, form: nil) }
    }

    /// What kind of internal address `address` is, or `nil` for an address on the public
    /// internet. IPv4-mapped, NAT64 and 6to4 forms are looked through: `::ffff:10.0.0.1` is
    /// ``InternalAddressKind/privateNetwork``.
    public static func internalKind(of address: IPAddress) -> InternalAddressKind? {
        if let embedded = address.embeddedIPv4 { return internalKind(of: embedded.address) }
        return internalRanges.first { $0.network.contains(address) }?.kind
    }

    /// Every internal range, most specific first where they overlap.
    static let internalRanges: [(network: IPNetwork, kind: InternalAddressKind)] = [
        (v4(0, 0, 0, 0, 8), .unspecified),
        (v4(10, 0, 0, 0, 8), .privateNetwork),
        (v4(100, 64, 0, 0, 10), .carrierGradeNAT),
        (v4(127, 0, 0, 0, 8), .loopback),
        (v4(169, 254, 0, 0, 16), .linkLocal),
        (v4(172, 16, 0, 0, 12), .privateNetwork),
        (v4(192, 0, 0, 0, 24), .reserved),
        (v4(192, 0, 2, 0, 24), .documentation),
        (v4(192, 168, 0, 0, 16), .privateNetwork),
        (v4(198, 18, 0, 0, 15), .benchmarking),
        (v4(198, 51, 100, 0, 24), .documentation),
        (v4(203, 0, 113, 0, 24), .documentation),
        (v4(224, 0, 0, 0, 4), .multicast),
        (v4(255, 255, 255, 255, 32), .broadcast),
        (v4(240, 0, 0, 0, 4), .reserved),
        (v6([], 128), .unspecified),
        (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), .loopback),
        (v6([], 96), .reserved),
        (v6([0x0064, 0xFF9B, 0x0001], 48), .reserved),
        (v6([0x0100], 64), .reserved),
        (v6([0x2001, 0x0002], 48), .benchmarking),
        (v6([0x2001, 0x0DB8], 32), .documentation),
        (v6([0x3FFF], 20), .documentation),
        (v6([0xFC00], 7), .uniqueLocal),
        (v6([0xFE80], 10), .linkLocal),
        (v6([0xFEC0], 10), .siteLocal),
        (v6([0xFF00], 8), .multicast),
    ]

    private static func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, _ prefixLength: Int) -> IPNetwork {
        IPNetwork(masking: IPAddress(ipv4: (a, b, c, d)), prefixLength: prefixLength)
    }

    /// The IPv6 network whose leading 16-bit groups are `groups` (the rest zero).
    private static func v6(_ groups: [UInt16], _ prefixLength: Int) -> IPNetwork {
        return IPNetwork(masking: IPAddress(ipv6: groups), prefixLength: prefixLength)
    }
}

extension AddressPolicy {
    /// Why this policy would refuse every connection to `url`'s host, as far as that is known
    /// without DNS: the host is an IP address the policy refuses, or `localhost` (a loopback
    /// address wherever it resolves); `nil` for any other name (only connecting tells) and for
    /// an allowed address.
    public func refusal(ofHostIn url: String) -> String? {
        guard let parsed = CurlURL(), parsed.set(url, flags: CurlURL.requestFlags), let host = parsed.parts()?.host?.lowercased() else { return nil }
        let unbracketed = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let address = IPAddress(unbracketed) { return refusal(for: address)?.description }
        guard host == "localhost" || host.hasSuffix(".localhost"), let loopback = IPAddress("127.0.0.1") else { return nil }
        return refusal(for: loopback)?.message(resolvedFrom: host)
    }

    /// A connection the policy refuses: the address, and why.
    public struct Refusal: Sendable, Hashable, CustomStringConvertible {
        /// The address that was refused, as resolved (e.g. `169.254.169.254`, `::ffff:10.0.0.1`).
        public var address: IPAddress
        /// What kind of internal address it is (for an IPv4-mapped, NAT64 or 6to4 address: the
        /// kind of the IPv4 address it stands for).
        public var kind: InternalAddressKind
        /// `IPv4-mapped`, `NAT64` or `6to4` when the address stands for an internal IPv4
        /// address; `nil` otherwise.
        public var form: String?

        /// A refusal of `address` as `kind`, in `form` (default `nil`: the address itself).
        public init(address: IPAddress, kind: InternalAddressKind, form: String? = nil) {
            self.address = address
            self.kind = kind
            self.form = form
        }

        /// The error message: `refused to connect to 169.254.169.254 (link-local address):
        /// private and internal networks are not allowed; allow them with an allow-list (webhooky run --allow-network CIDR)`.
        public var description: String {
            message(resolvedFrom: nil)
        }

        /// The error message when `host`, a name, resolved to the address (`nil`: the URL
        /// named the address itself): `refused to connect to hooks.internal (it resolves to a
        /// private address (RFC 1918)): ...`. The address is left out: the message is recorded
        /// where whoever wrote the URL reads it, and must not tell them what an internal name
        /// resolves to (the operator can ask DNS).
        public func message(resolvedFrom host: String?) -> String {
            let what = form.map { "\($0) form of a \(kind)" } ?? kind.description
            let article = what.first.map { "aeiouAEIOU".contains($0) } == true ? "an" : "a"
            let target = host.map { "\($0) (it resolves to \(article) \(what))" } ?? "\(address) (\(what))"
            return "refused to connect to \(target): private and internal networks are not allowed; allow them with an allow-list (webhooky run --allow-network CIDR)"
        }
    }
}

/// The kinds of addresses that are not on the public internet (see ``AddressPolicy``).
public enum InternalAddressKind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// `0.0.0.0/8` and `::`: "this network"; connecting to 0.0.0.0 reaches the local host.
    case unspecified
    /// `127.0.0.0/8` and `::1`.
    case loopback
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918).
    case privateNetwork
    /// `100.64.0.0/10` (RFC 6598).
    case carrierGradeNAT
    /// `169.254.0.0/16` (cloud metadata services live here) and `fe80::/10`.
    case linkLocal
    /// `fc00::/7`, IPv6's private networks.
    case uniqueLocal
    /// `fec0::/10`, deprecated but still routed inside some networks.
    case siteLocal
    /// `224.0.0.0/4` and `ff00::/8`.
    case multicast
    /// `255.255.255.255`.
    case broadcast
    /// `240.0.0.0/4`, `192.0.0.0/24`, IPv4-compatible `::/96`, local-use NAT64 `64:ff9b:1::/48`,
    /// discard-only `100::/64`.
    case reserved
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    case documentation
    /// `198.18.0.0/15` and `2001:2::/48`, often used inside networks.
    case benchmarking

    /// How messages name it: `link-local address`, `private address (RFC 1918)`.
    public var description: String {
        switch self {
        case .unspecified: "unspecified (\"this network\") address"
        case .loopback: "loopback address"
        case .privateNetwork: "private address (RFC 1918)"
        case .carrierGradeNAT: "carrier-grade NAT address"
        case .linkLocal: "link-local address"
        case .uniqueLocal: "unique-local address"
        case .siteLocal: "site-local address"
        case .multicast: "multicast address"
        case .broadcast: "broadcast address"
        case .reserved: "reserved address"
        case .documentation: "documentation address"
        case .benchmarking: "benchmarking address"
        }
    }
}
