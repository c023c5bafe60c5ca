import Foundation
import Glibc
import Synchronization
import ThreadNames

/// A small HTTP/1.1 server on 127.0.0.1 that records every request and answers as told:
/// the "other party" in the demo and in tests. One thread per connection, keep-alive supported.
public final class LoopbackReceiver: Sendable {
    /// Decides the reply to each request; the argument counts requests from 1.
    public typealias Responder = @Sendable (_ request: ReceivedRequest, _ number: Int) -> Reply

    private final class State: Sendable {
        struct Values {
            var requests: [ReceivedRequest] = []
            var connections: [Int32] = []
            var accepted = 0
            var stopped = false
        }

        let values = Mutex(Values())
        let arrived = NSCondition()
    }

    /// The port the receiver listens on (chosen by the system).
    public let port: Int
    private let listener: Int32
    private let state = State()
    private let responder: Responder

    /// Starts listening on 127.0.0.1 on a free port.
    ///
    /// - Parameter responder: The reply to each request; by default `200 ok` to everything.
    public init(responder: @escaping Responder = { _, _ in .ok }) throws(ReceiverError) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw ReceiverError("socket() failed: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(listener, 512) == 0 else {
            let reason = String(cString: strerror(errno))
            close(listener)
            throw ReceiverError("could not listen on 127.0.0.1: \(reason)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
        self.listener = listener
        self.responder = responder
        let thread = Thread { [state, responder] in
            nameThisThread("receiver-accept")
            LoopbackReceiver.acceptLoop(listener: listener, state: state, responder: responder)
        }
        thread.start()
    }

    deinit {
        stop()
    }

    /// `http://127.0.0.1:PORT`, to which a path is appended.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Every request received so far, in order of arrival.
    public var requests: [ReceivedRequest] {
        state.values.withLock { $0.requests }
    }

    /// How many TCP connections the receiver has accepted so far.
    public var connectionsAccepted: Int {
        state.values.withLock { $0.accepted }
    }

    /// Waits until at least `count` requests have arrived or `timeout` passes, and returns all
    /// requests received so far (check the count: fewer means the timeout passed).
    @discardableResult
    public func waitForRequests(_ count: Int, timeout: Duration = .seconds(10)) -> [ReceivedRequest] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        state.arrived.lock()
        defer { state.arrived.unlock() }
        while true {
            let requests = state.values.withLock { $0.requests }
            if requests.count >= count || !state.arrived.waitBriefly(before: deadline) { return requests }
        }
    }

    /// Stops listening and closes every connection. Safe to call more than once.
    ///
    /// Descriptors are only shut down here, never closed: a descriptor number, once closed, is
    /// handed to the next socket anyone in the process opens (another test's receiver or HTTP
    /// client), which a late `shutdown` or `accept` would then break. So the listener is closed
    /// by its accept loop when that ends, and a connection by its thread, under the lock that
    /// also guards the list this reads.
    public func stop() {
        state.values.withLock { values in
            guard !values.stopped else { return }
            values.stopped = true
            shutdown(listener, Int32(SHUT_RDWR))  // ends the accept loop's accept(2)
            for connection in values.connections { shutdown(connection, Int32(SHUT_RDWR)) }
        }
    }

    private static func acceptLoop(listener: Int32, state: State, responder: @escaping Responder) {
        defer { close(listener) }
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            let accepted = state.values.withLock { values in
                guard !values.stopped else { return false }
                values.connections.append(connection)
                values.accepted += 1
                return true
            }
            guard accepted else {
                close(connection)
                return
            }
            var yes: Int32 = 1
            setsockopt(connection, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
            let thread = Thread {
                nameThisThread("receiver-conn")
                var handler = ConnectionHandler(socket: connection, record: { request in
                    let number = state.values.withLock { values in
                        values.requests.append(request)
                        return values.requests.count
                    }
                    state.arrived.lock()
                    state.arrived.broadcast()
                    state.arrived.unlock()
                    return number
                }, responder: responder)
                handler.run()
                state.values.withLock { values in
                    values.connections.removeAll { $0 == connection }
                    close(connection)
                }
            }
            thread.start()
        }
    }
}

/// A failure to start a ``LoopbackReceiver``.
public struct ReceiverError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
