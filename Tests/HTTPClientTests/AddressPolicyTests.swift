import HTTPClient
import Testing

/// `IPAddress(text)`, failing the test when the text does not parse.
func ip(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> IPAddress {
    try #require(IPAddress(text), "\(text) should parse", sourceLocation: sourceLocation)
}

/// The pure address rules: no network.
@Suite struct AddressPolicyTests {
    /// Every range the requirement names, with its first, a middle and its last address.
    static let internalIPv4: [(String, InternalAddressKind)] = [
        ("0.0.0.0", .unspecified), ("0.1.2.3", .unspecified), ("0.255.255.255", .unspecified),
        ("127.0.0.1", .loopback), ("127.0.0.0", .loopback), ("127.255.255.255", .loopback), ("127.1.2.3", .loopback),
        ("10.0.0.0", .privateNetwork), ("10.20.30.40", .privateNetwork), ("10.255.255.255", .privateNetwork),
        ("172.16.0.0", .privateNetwork), ("172.20.1.1", .privateNetwork), ("172.31.255.255", .privateNetwork),
        ("192.168.0.0", .privateNetwork), ("192.168.1.1", .privateNetwork), ("192.168.255.255", .privateNetwork),
        ("100.64.0.0", .carrierGradeNAT), ("100.100.100.100", .carrierGradeNAT), ("100.127.255.255", .carrierGradeNAT),
        ("169.254.0.0", .linkLocal), ("169.254.169.254", .linkLocal), ("169.254.255.255", .linkLocal),
        ("224.0.0.0", .multicast), ("224.0.0.251", .multicast), ("239.255.255.255", .multicast),
        ("240.0.0.0", .reserved), ("250.1.2.3", .reserved), ("255.255.255.254", .reserved),
        ("255.255.255.255", .broadcast),
        ("192.0.0.8", .reserved),
        ("192.0.2.1", .documentation), ("198.51.100.7", .documentation), ("203.0.113.255", .documentation),
        ("198.18.0.0", .benchmarking), ("198.19.255.255", .benchmarking),
    ]

    static let internalIPv6: [(String, InternalAddressKind)] = [
        ("::", .unspecified),
        ("::1", .loopback),
        ("fe80::", .linkLocal), ("fe80::1", .linkLocal), ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", .linkLocal),
        ("fc00::", .uniqueLocal), ("fd12:3456:789a::1", .uniqueLocal), ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", .uniqueLocal),
        ("fec0::1", .siteLocal),
        ("ff00::", .multicast), ("ff02::1", .multicast), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", .multicast),
        ("::2", .reserved), ("::8.8.8.8", .reserved),
        ("64:ff9b:1::1", .reserved), ("100::1", .reserved),
        ("2001:db8::1", .documentation), ("3fff::1", .documentation),
        ("2001:2::1", .benchmarking),
    ]

    /// Public addresses, including the neighbours of every IPv4 range's edges.
    static let publicAddresses = [
        "1.1.1.1", "8.8.8.8", "93.184.216.34", "1.0.0.0", "9.255.255.255", "11.0.0.0",
        "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0",
        "172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0", "192.0.1.0", "192.0.3.0",
        "198.17.255.255", "198.20.0.0", "223.255.255.255",
        "2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001:82b::200e", "fbff::1", "fe7f::1",
        "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2001:db9::1",
    ]

    @Test(arguments: internalIPv4 + internalIPv6)
    func internalAddressesAreRefusedByDefault(_ text: String, _ kind: InternalAddressKind) throws {
        let address = try ip(text)
        #expect(AddressPolicy.internalKind(of: address) == kind)
        #expect(!AddressPolicy.standard.isAllowed(address))
        #expect(AddressPolicy.standard.refusal(for: address) == AddressPolicy.Refusal(address: address, kind: kind))
        #expect(AddressPolicy.allowingAll.isAllowed(address))
    }

    @Test(arguments: publicAddresses)
    func publicAddressesAreAllowed(_ text: String) throws {
        let address = try ip(text)
        #expect(AddressPolicy.internalKind(of: address) == nil)
        #expect(AddressPolicy.standard.isAllowed(address))
        #expect(AddressPolicy.standard.refusal(for: address) == nil)
    }

    /// IPv4-mapped, NAT64 and 6to4 forms are judged by the IPv4 address they stand for.
    @Test(arguments: [
        ("::ffff:127.0.0.1", InternalAddressKind.loopback, "IPv4-mapped"),
        ("::ffff:7f00:1", .loopback, "IPv4-mapped"),
        ("::ffff:169.254.169.254", .linkLocal, "IPv4-mapped"),
        ("::ffff:10.1.2.3", .privateNetwork, "IPv4-mapped"),
        ("::ffff:0.0.0.0", .unspecified, "IPv4-mapped"),
        ("::ffff:255.255.255.255", .broadcast, "IPv4-mapped"),
        ("64:ff9b::127.0.0.1", .loopback, "NAT64"),
        ("64:ff9b::a9fe:a9fe", .linkLocal, "NAT64"),
        ("64:ff9b::192.168.0.1", .privateNetwork, "NAT64"),
        ("64:ff9b::100.64.0.1", .carrierGradeNAT, "NAT64"),
        ("2002:7f00:1::", .loopback, "6to4"),
        ("2002:a9fe:a9fe:1::5", .linkLocal, "6to4"),
    ])
    func embeddedIPv4FormsAreLookedThrough(_ text: String, _ kind: InternalAddressKind, _ form: String) throws {
        let address = try ip(text)
        #expect(AddressPolicy.internalKind(of: address) == kind)
        let refusal = try #require(AddressPolicy.standard.refusal(for: address))
        #expect(refusal.kind == kind)
        #expect(refusal.form == form)
        #expect(refusal.description.contains("(\(form) form of a \(kind))"))
    }

    @Test func theRefusalNamesTheAddressAndWhy() throws {
        let refusal = try #require(AddressPolicy.standard.refusal(for: ip("169.254.169.254")))
        #expect(refusal.description == "refused to connect to 169.254.169.254 (link-local address): private and internal networks are not allowed; allow them with an allow-list (webhooky run --allow-network CIDR)")
        let mapped = try #require(AddressPolicy.standard.refusal(for: ip("::ffff:10.0.0.1")))
        #expect(mapped.description.hasPrefix("refused to connect to ::ffff:10.0.0.1 (IPv4-mapped form of a private address (RFC 1918)):"))
    }

    @Test func anAllowListLetsItsNetworksThroughAndNothingElse() throws {
        let policy = try AddressPolicy(allowing: ["10.20.0.0/16", "127.0.0.0/8", "fd12:3456::/32"])
        for allowed in ["10.20.0.0", "10.20.255.255", "127.0.0.1", "127.9.9.9", "fd12:3456::1", "8.8.8.8",
                        "::ffff:10.20.1.1", "64:ff9b::10.20.1.1", "2002:a14:101::1", "::ffff:127.0.0.1"] {
            #expect(policy.isAllowed(try ip(allowed)), "\(allowed)")
        }
        for refused in ["10.21.0.0", "10.19.255.255", "10.0.0.1", "192.168.1.1", "169.254.169.254", "::1",
                        "fd12:3457::1", "::ffff:10.21.0.1", "fe80::1"] {
            #expect(!policy.isAllowed(try ip(refused)), "\(refused)")
        }
        #expect(policy.allowedNetworks.map(\.description) == ["10.20.0.0/16", "127.0.0.0/8", "fd12:3456::/32"])
        #expect(!policy.allowsAllAddresses)
    }

    @Test func anAllowedSingleAddressAllowsOnlyThatAddress() throws {
        let policy = try AddressPolicy(allowing: ["169.254.169.254", "::1"])
        #expect(policy.isAllowed(try ip("169.254.169.254")))
        #expect(!policy.isAllowed(try ip("169.254.169.253")))
        #expect(policy.isAllowed(try ip("::1")))
        #expect(!policy.isAllowed(try ip("127.0.0.1")))
    }

    @Test func allowingAllAllowsEverything() throws {
        #expect(AddressPolicy.allowingAll.allowsAllAddresses)
        for text in ["127.0.0.1", "0.0.0.0", "::", "ff02::1", "255.255.255.255", "8.8.8.8"] {
            #expect(AddressPolicy.allowingAll.refusal(for: try ip(text)) == nil)
        }
    }

    @Test(arguments: [
        ("10.20.0.0/16", "10.20.0.0/16"), ("0.0.0.0/0", "0.0.0.0/0"), ("10.20.0.5", "10.20.0.5/32"),
        ("127.0.0.1/32", "127.0.0.1/32"), ("fc00::/7", "fc00::/7"), ("::/0", "::/0"), ("fe80::1", "fe80::1/128"),
        ("FD12:3456::/32", "fd12:3456::/32"), ("::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"),
    ])
    func networksParse(_ text: String, _ canonical: String) throws {
        #expect(try IPNetwork(text).description == canonical)
    }

    @Test func networkMembership() throws {
        let network = try IPNetwork("172.16.0.0/12")
        #expect(network.contains(try ip("172.16.0.0")))
        #expect(network.contains(try ip("172.31.255.255")))
        #expect(!network.contains(try ip("172.32.0.0")))
        #expect(!network.contains(try ip("::ffff:172.16.0.1")), "families never mix in IPNetwork itself")
        #expect(try IPNetwork("0.0.0.0/0").contains(ip("255.255.255.255")))
        #expect(try IPNetwork("fc00::/7").contains(ip("fdff::1")))
        #expect(try !IPNetwork("fc00::/7").contains(ip("fe00::1")))
        #expect(IPNetwork(masking: try ip("10.20.30.40"), prefixLength: 16).description == "10.20.0.0/16")
    }

    @Test(arguments: [
        ("", "\"\" is not a network: \"\" is not an IPv4 or IPv6 address"),
        ("10.20.0/16", "\"10.20.0/16\" is not a network: \"10.20.0\" is not an IPv4 or IPv6 address"),
        ("10.20.0.0.0/16", "\"10.20.0.0.0/16\" is not a network: \"10.20.0.0.0\" is not an IPv4 or IPv6 address"),
        ("010.20.0.0/16", "\"010.20.0.0/16\" is not a network: \"010.20.0.0\" is not an IPv4 or IPv6 address"),
        ("256.0.0.0/8", "\"256.0.0.0/8\" is not a network: \"256.0.0.0\" is not an IPv4 or IPv6 address"),
        ("example.com/24", "\"example.com/24\" is not a network: \"example.com\" is not an IPv4 or IPv6 address"),
        (" 10.0.0.0/8", "\" 10.0.0.0/8\" is not a network: \" 10.0.0.0\" is not an IPv4 or IPv6 address"),
        ("fe80::1%eth0/64", "\"fe80::1%eth0/64\" is not a network: \"fe80::1%eth0\" is not an IPv4 or IPv6 address"),
        ("fc00:::/7", "\"fc00:::/7\" is not a network: \"fc00:::\" is not an IPv4 or IPv6 address"),
        ("/8", "\"/8\" is not a network: \"\" is not an IPv4 or IPv6 address"),
        ("10.0.0.0/", "\"10.0.0.0/\" is not a network: the prefix length must be a number from 0 to 32"),
        ("10.0.0.0/33", "\"10.0.0.0/33\" is not a network: the prefix length must be a number from 0 to 32"),
        ("10.0.0.0/-1", "\"10.0.0.0/-1\" is not a network: the prefix length must be a number from 0 to 32"),
        ("10.0.0.0/+8", "\"10.0.0.0/+8\" is not a network: the prefix length must be a number from 0 to 32"),
        ("10.0.0.0/ 8", "\"10.0.0.0/ 8\" is not a network: the prefix length must be a number from 0 to 32"),
        ("10.0.0.0/eight", "\"10.0.0.0/eight\" is not a network: the prefix length must be a number from 0 to 32"),
        ("fc00::/129", "\"fc00::/129\" is not a network: the prefix length must be a number from 0 to 128"),
        ("10.0.0.0/8/8", "\"10.0.0.0/8/8\" is not a network: write an address and a prefix length, e.g. 10.20.0.0/16"),
        ("10.20.1.0/16", "\"10.20.1.0/16\" is not a network: bits after the first 16 are set; did you mean 10.20.0.0/16?"),
        ("127.0.0.1/8", "\"127.0.0.1/8\" is not a network: bits after the first 8 are set; did you mean 127.0.0.0/8?"),
        ("fd00::1/8", "\"fd00::1/8\" is not a network: bits after the first 8 are set; did you mean fd00::/8?"),
    ])
    func malformedNetworksAreRefusedWithAReason(_ text: String, _ message: String) {
        #expect(throws: AddressPolicyError(message)) { try IPNetwork(text) }
    }

    @Test func anAllowListNamesItsFirstBadEntry() {
        #expect(throws: AddressPolicyError("\"10.0.0.0/40\" is not a network: the prefix length must be a number from 0 to 32")) {
            try AddressPolicy(allowing: ["192.168.0.0/16", "10.0.0.0/40", "nonsense"])
        }
    }

    @Test func addressesParseStrictly() throws {
        #expect(IPAddress("127.0.0.1\0junk") == nil)
        #expect(IPAddress("127.1") == nil)
        #expect(IPAddress("0x7f.0.0.1") == nil)
        #expect(IPAddress("2130706433") == nil)
        #expect(IPAddress("[::1]") == nil)
        #expect(try ip("::FFFF:7F00:1").description == "::ffff:127.0.0.1")
        #expect(try ip("2001:0db8:0000:0000:0000:0000:0000:0001").description == "2001:db8::1")
        #expect(try ip("10.0.0.1").isIPv4)
        #expect(try !ip("::1").isIPv4)
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(IPAddress(bytes: [10, 0, 0, 1])?.description == "10.0.0.1")
    }
}
