import Foundation
import Glibc
import LoopbackReceiver
import Synchronization

/// A receiver on 127.0.0.1 (or `::1`) that hands each accepted connection to a script, which
/// reads requests and writes whatever bytes it likes, as slowly as it likes: for answers that
/// ``LoopbackReceiver`` cannot give (a trickle, headers that never end, a keep-alive connection
/// closed between two requests). Every request read through ``Connection/readRequest()`` is
/// counted.
final class RawReceiver: Sendable {
    /// One accepted connection, as its script sees it.
    struct Connection {
        let socket: Int32
        /// Which connection this is, from 1.
        let number: Int
        fileprivate let receiver: RawReceiver
        private var buffer: [UInt8] = []

        fileprivate init(socket: Int32, number: Int, receiver: RawReceiver) {
            self.socket = socket
            self.number = number
            self.receiver = receiver
        }

        /// Reads one request (its head, and a `Content-Length` body), returns its request line;
        /// `nil` when the connection ends first.
        mutating func readRequest() -> String? {
            while true {
                if let end = RawReceiver.find([13, 10, 13, 10], in: buffer) {
                    let head = String(decoding: buffer[..<end], as: UTF8.self)
                    let length = head.split(separator: "\r\n").compactMap { line -> Int? in
                        let parts = line.split(separator: ":", maxSplits: 1)
                        guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                        return Int(parts[1].trimmingCharacters(in: .whitespaces))
                    }.first ?? 0
                    while buffer.count < end + 4 + length {
                        guard fill() else { return nil }
                    }
                    buffer.removeFirst(end + 4 + length)
                    let line = String(head.split(separator: "\r\n", omittingEmptySubsequences: false)[0])
                    receiver.state.withLock { $0.requests.append(line) }
                    return line
                }
                guard fill() else { return nil }
            }
        }

        /// Writes `bytes`; false when the peer is gone.
        @discardableResult
        func write(_ bytes: [UInt8]) -> Bool {
            sendAll(bytes, to: socket)
        }

        @discardableResult
        func write(_ text: String) -> Bool { write(Array(text.utf8)) }

        /// Whether the receiver was stopped (a script that loops for ever ends then).
        var stopped: Bool { receiver.state.withLock { $0.stopped } }

        private mutating func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = recv(socket, &chunk, chunk.count, 0)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return false }
                buffer.append(contentsOf: chunk[0..<count])
                return true
            }
        }
    }

    private struct State {
        var requests: [String] = []
        var connections: [Int32] = []
        var accepted = 0
        var stopped = false
    }

    let port: Int
    /// `127.0.0.1` or `[::1]`.
    let host: String
    private let listener: Int32
    private let state = Mutex(State())

    /// Listens on a free port of 127.0.0.1, or of ::1 with `ipv6`; `script` runs on a thread
    /// of its own for each connection, which is closed when it returns.
    init(ipv6: Bool = false, script: @escaping @Sendable (inout Connection) -> Void) throws {
        let family = ipv6 ? AF_INET6 : AF_INET
        let listener = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw POSIXError(.EIO) }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var port = 0
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_addr = in6addr_loopback
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
            }
            guard bound else { close(listener); throw POSIXError(.EADDRNOTAVAIL) }
            port = Int(UInt16(bigEndian: address.sin6_port))
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
            }
            guard bound else { close(listener); throw POSIXError(.EADDRNOTAVAIL) }
            port = Int(UInt16(bigEndian: address.sin_port))
        }
        guard Glibc.listen(listener, 512) == 0 else { close(listener); throw POSIXError(.EIO) }
        self.listener = listener
        self.port = port
        self.host = ipv6 ? "[::1]" : "127.0.0.1"
        let thread = Thread { [self] in acceptLoop(script) }
        thread.start()
    }

    deinit { stop() }

    var baseURL: String { "http://\(host):\(port)" }

    /// The request lines read so far.
    var requests: [String] { state.withLock { $0.requests } }
    var connectionsAccepted: Int { state.withLock { $0.accepted } }

    /// Stops accepting and shuts every connection down (descriptors are closed by their threads).
    func stop() {
        state.withLock { state in
            guard !state.stopped else { return }
            state.stopped = true
            shutdown(listener, Int32(SHUT_RDWR))
            for connection in state.connections { shutdown(connection, Int32(SHUT_RDWR)) }
        }
    }

    private func acceptLoop(_ script: @escaping @Sendable (inout Connection) -> Void) {
        defer { close(listener) }
        while true {
            let socket = accept(listener, nil, nil)
            if socket < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = fcntl(socket, F_SETFD, FD_CLOEXEC)
            let number: Int? = state.withLock { state in
                guard !state.stopped else { return nil }
                state.connections.append(socket)
                state.accepted += 1
                return state.accepted
            }
            guard let number else { close(socket); return }
            let thread = Thread { [self] in
                var connection = Connection(socket: socket, number: number, receiver: self)
                script(&connection)
                state.withLock { state in
                    state.connections.removeAll { $0 == socket }
                    close(socket)
                }
            }
            thread.start()
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<(start + needle.count)]) == needle { return start }
        }
        return nil
    }
}

/// Sleeps `seconds` on the calling thread.
func pause(_ seconds: Double) {
    Thread.sleep(forTimeInterval: seconds)
}
