import Glibc

/// When each of the client's connections was last left idle, and its socket, so that a kept-alive
/// `http` connection that stayed idle for a while is looked at before a request goes out on it
/// again.
///
/// libcurl (7.88) counts an idle connection as alive as long as it is not closed, even when the
/// server wrote to it meanwhile: an answer nobody asked for, most often a `408 Request Timeout`
/// that a server (Node.js, some proxies) sends before closing a connection that stayed idle too
/// long. The next request sent on that connection would take those bytes for its answer (a 408
/// for a request the server never read, or another request's status). ``isStale(_:)`` says
/// whether such bytes wait, and ``discard(_:)`` ends the connection so that libcurl drops it.
///
/// Only a connection idle for ``lookAfter`` or longer is looked at (one `recv` peek): servers
/// write to idle connections when their keep-alive timeout runs out, and a connection used again
/// at once, as under load, costs nothing more. Only `http`: an `https` connection may be
/// HTTP/2, where a server writes frames at any time. Lives on the client's thread only.
final class ConnectionSockets {
    /// A connection idle this long is looked at before it is used again: 5 ms.
    static let lookAfter: Duration = .milliseconds(5)

    /// The idle connections: their socket and since when, by ``key(localPort:remotePort:)``
    /// (what libcurl tells of a connection when it hands it to a request). Two connections with
    /// the same two ports to different hosts share a key: the later one's entry is kept, which
    /// at worst skips one look, or looks once at a connection that has nothing waiting.
    private var idle: [Int: (socket: Int32, since: ContinuousClock.Instant)] = [:]

    /// The key of a connection from local port `localPort` to remote port `remotePort`.
    static func key(localPort: Int, remotePort: Int) -> Int {
        localPort << 16 | remotePort
    }

    /// When entries were last cleared out.
    private var lastClearing: ContinuousClock.Instant = .now

    /// The connection `key`, on `socket`, was left idle at `instant` (its request ended). Past
    /// 4,096 entries, those idle for longer than libcurl keeps a connection (118 s) go, at most
    /// every 10 s; past 65,536, all (which costs at most one look each).
    func idle(_ key: Int, socket: Int32, since instant: ContinuousClock.Instant) {
        idle[key] = (socket, instant)
        guard idle.count > 4_096, instant - lastClearing >= .seconds(10) || idle.count > 65_536 else { return }
        lastClearing = instant
        idle = idle.count > 65_536 ? [:] : idle.filter { instant - $0.value.since < .seconds(120) }
    }

    /// The socket of connection `key`, about to be used again at `now`, when it has been idle
    /// long enough to be looked at first.
    func socketDueForALook(_ key: Int, now: ContinuousClock.Instant) -> Int32? {
        guard let entry = idle[key], now - entry.since >= ConnectionSockets.lookAfter else { return nil }
        return entry.socket
    }

    /// Whether anything can be read from the idle connection on `socket`: bytes the server
    /// wrote although no request was waiting for them, or its end (closed, reset).
    static func isStale(_ socket: Int32) -> Bool {
        var byte: UInt8 = 0
        let count = recv(socket, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return !(count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    }

    /// Ends a stale connection: reads and drops what waits (libcurl would count a socket with
    /// unread bytes as alive) and shuts it down, so that libcurl finds it closed and drops it.
    /// The socket itself stays libcurl's to close.
    func discard(_ socket: Int32, key: Int) {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while recv(socket, &scratch, scratch.count, Int32(MSG_DONTWAIT)) > 0 {}
        shutdown(socket, Int32(SHUT_RDWR))
        idle[key] = nil
    }
}
