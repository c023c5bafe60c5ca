import Foundation
import Glibc
import LocalPostgres

/// A failure to set up the TLS fixtures; the test fails with this message.
struct TLSFixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A throwaway certificate authority and two server certificates signed by it, made with the
/// `openssl` command line in a temporary folder that is removed on deinit:
/// `localhost` (names `localhost` and `127.0.0.1`) and `other` (names only `other.example`).
final class TestCertificates {
    /// The temporary folder holding every file.
    let folder: String
    /// The openssl executable.
    let openssl: String

    /// The test CA's certificate (PEM), for ``HTTPClient/Configuration/caBundlePath``.
    var caPath: String { folder + "/ca.pem" }

    /// Creates the CA and both server certificates (P-256 keys, valid for a day).
    init() throws {
        openssl = try TestCertificates.findOpenSSL()
        var template = Array("/tmp/webhooky-tls-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw TLSFixtureError("could not create a temporary folder: \(String(cString: strerror(errno)))")
        }
        folder = String(cString: created)
        try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", folder + "/ca.key", "-out", caPath, "-days", "1", "-subj", "/CN=Webhooky Test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try makeServerCertificate("localhost", subjectAltName: "DNS:localhost,IP:127.0.0.1")
        try makeServerCertificate("other", subjectAltName: "DNS:other.example")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// The certificate and key of server certificate `name` (`localhost` or `other`).
    func server(_ name: String) -> (certificate: String, key: String) {
        ("\(folder)/\(name).pem", "\(folder)/\(name).key")
    }

    private func makeServerCertificate(_ name: String, subjectAltName: String) throws {
        let (certificate, key) = server(name)
        let request = "\(folder)/\(name).csr"
        let extensions = "\(folder)/\(name).ext"
        let text = "subjectAltName=\(subjectAltName)\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
        guard FileManager.default.createFile(atPath: extensions, contents: Data(text.utf8)) else {
            throw TLSFixtureError("could not write \(extensions)")
        }
        try run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", key, "-out", request, "-subj", "/CN=\(name) test server"])
        try run(["x509", "-req", "-in", request, "-CA", caPath, "-CAkey", folder + "/ca.key", "-CAcreateserial",
                 "-out", certificate, "-days", "1", "-extfile", extensions])
    }

    private func run(_ arguments: [String]) throws {
        let outcome = try ChildProcess.run(openssl, arguments)
        guard outcome.status == 0 else {
            throw TLSFixtureError("openssl \(arguments.joined(separator: " ")) failed (status \(outcome.status)): \(outcome.output)")
        }
    }

    /// The `openssl` executable on `PATH`; a missing one fails the test, never skips it.
    static func findOpenSSL() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") where !folder.isEmpty {
            let candidate = "\(folder)/openssl"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw TLSFixtureError("the TLS tests need the openssl command line, which is not on PATH (\(path)): install it with `apt-get install openssl` (`make deps` does)")
    }
}

/// `openssl s_server -www` on 127.0.0.1 with a certificate: answers every request with
/// `HTTP/1.0 200 ok` and a status page; or, given a folder, `-HTTP`: answers `GET /name` with
/// the file `name` of that folder, which holds the whole response (status line, headers with
/// CRLF, body). Killed on ``stop()`` or deinit.
final class TLSServer {
    /// The port it listens on (chosen by the system).
    let port: Int
    private let pid: Int32
    private let logPath: String
    private var stopped = false

    /// Starts the server with `certificate` and `key` and waits until it listens; with
    /// `responsesFolder`, it serves that folder's files as whole responses.
    init(openssl: String, certificate: String, key: String, responsesFolder: String? = nil) throws {
        logPath = "/tmp/webhooky-s_server-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        let arguments = ["s_server", "-accept", "127.0.0.1:0", "-cert", certificate, "-key", key]
        if let responsesFolder {
            // -HTTP reads files relative to its working folder; exec keeps the pid for stop().
            let command = "cd '\(responsesFolder)' && exec '\(openssl)' " + (arguments + ["-HTTP"]).map { "'\($0)'" }.joined(separator: " ")
            pid = try ChildProcess.spawn("/bin/sh", ["-c", command], outputPath: logPath)
        } else {
            pid = try ChildProcess.spawn(openssl, arguments + ["-www"], outputPath: logPath)
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let log = ChildProcess.readFile(logPath) ?? ""
            // s_server prints `ACCEPT 127.0.0.1:PORT` once it listens.
            if let line = log.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT ") }),
               let portText = line.split(separator: ":").last, let port = Int(portText) {
                self.port = port
                return
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid || ContinuousClock.now > deadline {
                Glibc.kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                unlink(logPath)
                throw TLSFixtureError("openssl s_server did not start listening: \(log)")
            }
            usleep(20_000)
        }
    }

    deinit { stop() }

    /// Stops the server and waits for it to end.
    func stop() {
        guard !stopped else { return }
        stopped = true
        // SIGKILL: a child started from the test runner's threads may inherit a mask that
        // blocks SIGTERM (it did here), and s_server has nothing to clean up.
        ChildProcess.kill(pid, signal: SIGKILL)
        _ = ChildProcess.wait(pid)
        unlink(logPath)
    }
}
