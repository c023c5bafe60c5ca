import HTTPClient
import Testing

/// Certificate and host name verification against `openssl s_server` with a throwaway CA.
@Suite(.timeLimit(.minutes(10))) struct TLSTests {
    /// A fresh CA and server certificates for each test.
    let certificates: TestCertificates

    init() throws {
        certificates = try TestCertificates()
    }

    /// Starts `openssl s_server` with server certificate `name` (`localhost` or `other`).
    func server(_ name: String) throws -> TLSServer {
        let (certificate, key) = certificates.server(name)
        return try TLSServer(openssl: certificates.openssl, certificate: certificate, key: key)
    }

    /// A client whose address policy is `policy` (loopback allowed by default) and which trusts
    /// the CA bundle at `caBundlePath` (nil: the system's).
    func client(policy: AddressPolicy? = nil, caBundlePath: String?) throws -> (HTTPClient, ResultCollector) {
        let policy = try policy ?? allowingLoopback()
        return try makeClient {
            $0.addressPolicy = policy
            $0.caBundlePath = caBundlePath
        }
    }

    @Test func aCertificateFromAnUnknownCAFailsAgainstTheSystemBundle() throws {
        let server = try server("localhost")
        defer { server.stop() }
        let (client, results) = try client(caBundlePath: nil)
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: "https://localhost:\(server.port)/")])
        let error = try failure(of: results)
        #expect(error.code == .tlsFailure)
        #expect(error.message.contains("certificate"), "libcurl's reason: \(error.message)")
    }

    @Test func theTestCAIsTrustedWithCABundlePath() throws {
        let server = try server("localhost")
        defer { server.stop() }
        let (client, results) = try client(caBundlePath: certificates.caPath)
        defer { client.shutdown() }
        client.send([
            HTTPRequest(tag: 1, method: "GET", url: "https://localhost:\(server.port)/"),
            HTTPRequest(tag: 2, method: "GET", url: "https://127.0.0.1:\(server.port)/"),
        ])
        let finished = results.wait(for: 2)
        #expect(finished.count == 2)
        for result in finished {
            let response = try result.outcome.get()
            #expect(response.status == 200)
            #expect(String(decoding: response.body, as: UTF8.self).contains("<HTML>"))
        }
    }

    @Test func aCertificateForAnotherNameFails() throws {
        let server = try server("other")
        defer { server.stop() }
        let (client, results) = try client(caBundlePath: certificates.caPath)
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: "https://127.0.0.1:\(server.port)/")])
        let error = try failure(of: results)
        #expect(error.code == .tlsFailure)
        #expect(error.message.contains("name"), "libcurl's reason: \(error.message)")
        #expect(error.message.contains("127.0.0.1"), "libcurl's reason: \(error.message)")
    }

    @Test func aMissingCABundleIsATLSFailure() throws {
        let server = try server("localhost")
        defer { server.stop() }
        let (client, results) = try client(caBundlePath: "/nonexistent/webhooky-ca.pem")
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: "https://localhost:\(server.port)/")])
        #expect(try failure(of: results).code == .tlsFailure)
    }

    /// The address check comes before TLS: a trusted server on 127.0.0.1 is still refused.
    @Test func httpsIsCheckedByTheAddressPolicyToo() throws {
        let server = try server("localhost")
        defer { server.stop() }
        let (client, results) = try client(policy: .standard, caBundlePath: certificates.caPath)
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "GET", url: "https://localhost:\(server.port)/")])
        #expect(try failure(of: results).code == .addressNotAllowed)
    }
}
