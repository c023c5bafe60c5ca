import Glibc

/// A TCP port of its own on 127.0.0.1, for an endpoint that never answers: bound and
/// `listening` (connections are taken into the kernel's backlog, no request is ever read, so a
/// request times out), or bound only (every connection is refused); or the listening socket of a
/// relay that accepts on it (`SessionRelay`). Closed when released.
public final class LoopbackPort: Sendable {
    public let socket: Int32
    /// The port number, as a URL writes it.
    public let port: String

    public init(listening: Bool) throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
        }
        guard socket >= 0, bound, !listening || listen(socket, 64) == 0 else {
            if socket >= 0 { close(socket) }
            throw SocketError(errno: errno)
        }
        self.socket = socket
        port = String(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(socket) }
}

/// An `errno` as an error.
public struct SocketError: Error, CustomStringConvertible {
    public let errno: Int32
    public var description: String { String(cString: strerror(errno)) }
}
