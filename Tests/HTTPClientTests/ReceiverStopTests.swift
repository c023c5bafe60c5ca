import Foundation
import Glibc
import LoopbackReceiver
import Synchronization
import Testing

/// The loopback receiver is what every delivery test talks to; tests run in parallel, so one
/// test's receiver stopping must never touch another's sockets.
/// (The limit is generous: a test of the parallel suite may wait long for a thread to run on,
/// and this one bounds its own work to 5 s.)
@Suite(.timeLimit(.minutes(10))) struct ReceiverStopTests {
    /// One request over a fresh connection; the status line, or what went wrong.
    static func get(port: Int) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return "socket failed" }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)  // a reply that never comes is a failure, not a hang
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return "connect failed: \(String(cString: strerror(errno)))" }
        let request = Array("GET /probe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return "send failed" }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !reply.contains(10) {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return "connection ended after \(reply.count) bytes" }
            reply += chunk[0..<count]
        }
        return String(decoding: reply.prefix { $0 != 13 }, as: UTF8.self)
    }

    @Test("receivers started and stopped by the hundred, each with a connection open, never break another receiver's requests")
    func stoppingReceiversLeaveOthersAlone() throws {
        let steady = try LoopbackReceiver()
        let churning = Atomic<Bool>(true)
        for _ in 0..<4 {
            Thread {
                while churning.load(ordering: .relaxed) {
                    guard let other = try? LoopbackReceiver() else { continue }
                    _ = ReceiverStopTests.get(port: other.port)  // gives it a connection to shut down
                    other.stop()
                }
            }.start()
        }
        defer { churning.store(false, ordering: .relaxed) }
        // 4,000 requests, or as many as 5 s allow on a busy machine (the whole suite runs in parallel).
        var failures: [String] = []
        var sent = 0
        let deadline = ContinuousClock.now + .seconds(5)
        while sent < 4_000 && ContinuousClock.now < deadline {
            let status = ReceiverStopTests.get(port: steady.port)
            if status != "HTTP/1.1 200 OK" { failures.append(status) }
            sent += 1
        }
        #expect(failures.isEmpty, "\(failures.count) of \(sent) requests failed: \(Set(failures))")
        #expect(steady.requests.count == sent)
    }
}
