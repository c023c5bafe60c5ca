import Foundation
import Glibc
public import LocalPostgres
import Synchronization

/// A relay on 127.0.0.1 in front of a test cluster's unix socket, for tests of a connection
/// that breaks between the client and the server while the server's process goes on (a proxy
/// that restarts, a network that drops one side): ``cutClients()`` shuts the client side of
/// every relayed connection and leaves the server side open, so each server process sees
/// nothing and carries on with what it was doing. ``close()`` ends everything.
public final class SessionRelay: Sendable {
    /// The port it listens on.
    public let port: String
    private let listener: LoopbackPort
    private let socketPath: String
    /// Every relayed connection, and whether ``close()`` was called.
    private let state = Mutex<(pairs: [Pair], closed: Bool)>(([], false))

    /// One relayed connection: its two sockets, closed once both pumps ended, and for a cut
    /// connection only at ``close()`` (the server's side stays open until then).
    private final class Pair: Sendable {
        let client: Int32
        let server: Int32
        private let state = Mutex((pumpsEnded: 0, cut: false, relayClosed: false, socketsClosed: false))

        init(client: Int32, server: Int32) {
            self.client = client
            self.server = server
        }

        /// Shuts the client's side (a cut), or both (the relay closes).
        func shut(relayClosing: Bool) {
            state.withLock { state in
                guard !state.socketsClosed else { return }
                shutdown(client, Int32(SHUT_RDWR))
                if relayClosing { shutdown(server, Int32(SHUT_RDWR)); state.relayClosed = true } else { state.cut = true }
                closeIfDone(&state)
            }
        }

        /// `fromClient`: the client's side ended; unless by a cut, the server is told (as it
        /// would be without the relay), so its process ends.
        func pumpEnded(fromClient: Bool) {
            state.withLock { state in
                if fromClient && !state.cut && !state.socketsClosed { shutdown(server, Int32(SHUT_WR)) }
                state.pumpsEnded += 1
                closeIfDone(&state)
            }
        }

        private func closeIfDone(_ state: inout (pumpsEnded: Int, cut: Bool, relayClosed: Bool, socketsClosed: Bool)) {
            guard !state.socketsClosed, state.pumpsEnded == 2, !state.cut || state.relayClosed else { return }
            Glibc.close(client)
            Glibc.close(server)
            state.socketsClosed = true
        }
    }

    /// Relays to `cluster`'s socket.
    public init(to cluster: LocalCluster) throws {
        socketPath = "\(cluster.socketDirectory)/.s.PGSQL.\(cluster.port)"
        guard socketPath.utf8.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { throw SocketError(errno: ENAMETOOLONG) }
        listener = try LoopbackPort(listening: true)
        port = listener.port
        Thread { [self] in acceptConnections() }.start()
    }

    /// A libpq connection string for `database` through the relay, as the superuser.
    public func conninfo(database: String) -> String {
        "host=127.0.0.1 port=\(port) user=postgres dbname=\(database)"
    }

    /// Breaks every connection relayed so far on the client's side only: the clients see the
    /// connection closed, the server processes see nothing (their sockets stay open until
    /// ``close()``, and what they send is no longer read).
    public func cutClients() {
        for pair in state.withLock({ $0.pairs }) { pair.shut(relayClosing: false) }
    }

    /// Stops accepting and closes both sides of every relayed connection.
    public func close() {
        let pairs = state.withLock { state -> [Pair] in
            guard !state.closed else { return [] }
            state.closed = true
            return state.pairs
        }
        shutdown(listener.socket, Int32(SHUT_RDWR))
        for pair in pairs { pair.shut(relayClosing: true) }
    }

    private func acceptConnections() {
        while true {
            let client = accept(listener.socket, nil, nil)
            guard client >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            guard let server = connectToServer() else { Glibc.close(client); continue }
            let pair = Pair(client: client, server: server)
            let accepted = state.withLock { state -> Bool in
                guard !state.closed else { return false }
                state.pairs.append(pair)
                return true
            }
            guard accepted else { Glibc.close(client); Glibc.close(server); continue }
            Thread { SessionRelay.pump(from: client, to: server); pair.pumpEnded(fromClient: true) }.start()
            Thread { SessionRelay.pump(from: server, to: client); pair.pumpEnded(fromClient: false) }.start()
        }
    }

    private func connectToServer() -> Int32? {
        let server = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard server >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (index, byte) in socketPath.utf8.enumerated() { path[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
        guard connected else {
            Glibc.close(server)
            return nil
        }
        return server
    }

    /// Copies bytes from one socket to the other until either side ends (a cut leaves the
    /// server's side open: the pump that reads it goes on until ``close()``).
    private static func pump(from source: Int32, to destination: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            var sent = 0
            while sent < count {
                let written = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { return }
                sent += written
            }
        }
    }
}
