import CCurl
import Foundation
import Synchronization
import ThreadNames

/// An HTTP client on libcurl's multi interface: one dedicated thread drives every transfer,
/// requests go in and results come out in batches.
///
/// Connections are kept alive and reused per host. Redirects are not followed unless a request
/// asks for them (``HTTPRequest/maximumRedirects``); then the client follows them itself, hop
/// by hop. Only the first ``Configuration/maximumResponseBodyBytes`` of a response body are read.
///
/// Safe for sending to URLs that other people wrote:
/// - Every connection attempt (redirect hops included) is checked, after DNS resolution,
///   against ``Configuration/addressPolicy``: by default private and internal networks are
///   refused with ``HTTPError/Code/addressNotAllowed``.
/// - Proxies are never used, whatever `http_proxy`, `https_proxy` or `ALL_PROXY` say.
/// - Only `http` and `https`, also for redirect hops, and never `http` after `https`.
/// - A redirect to another origin does not carry the headers that stay with the first one
///   (``HTTPHeader/staysWithOrigin``, the default), nor `Authorization` or `Cookie`.
/// - TLS certificates and host names are always verified, against the system's CA bundle (or
///   ``Configuration/caBundlePath``); there is no way to turn verification off.
public final class HTTPClient: Sendable {
    /// Limits and timeouts; every field has a safe default.
    public struct Configuration: Sendable {
        /// Transfers in flight at once; more wait in a queue. Default 256.
        public var maximumConcurrentRequests: Int = 256
        /// Open connections to one host at once; more requests to that host wait (in libcurl,
        /// whose timeout does not run meanwhile); 0: no limit. Default 16.
        public var maximumConnectionsPerHost: Int = 16
        /// Requests with the same ``HTTPRequest/endpoint`` in flight at once; more wait their
        /// turn, in order, without holding back other endpoints' requests. Set it to
        /// ``maximumConnectionsPerHost`` or below, so that a request that starts never waits for
        /// a connection. Default `Int.max`: no limit but ``maximumConcurrentRequests``.
        ///
        /// When a request to an endpoint ends without an answer (``HTTPError/Code/noAnswer``),
        /// the requests waiting in that endpoint's line end at once, unsent, with
        /// ``HTTPError/Code/cancelled``: each would otherwise wait for a place and then, most
        /// likely, hang for a whole timeout too. The caller decides whether to send them again.
        public var maximumRequestsPerEndpoint: Int = .max
        /// Time allowed to establish a connection (TCP and TLS). Default 5 s.
        public var connectTimeout: Duration = .seconds(5)
        /// Time allowed for a whole request, from start to the last byte of the response (of
        /// the last hop, when it follows redirects). Default 15 s.
        public var requestTimeout: Duration = .seconds(15)
        /// Bytes of a response body that are read; the transfer stops after that. Default 4096.
        public var maximumResponseBodyBytes: Int = 4096
        /// Which addresses may be connected to, checked after DNS resolution for every
        /// connection attempt and redirect hop. Default ``AddressPolicy/standard``: public
        /// internet addresses only. Tests, the demo and development on 127.0.0.1 need
        /// ``AddressPolicy/allowingAll`` or an allow-list such as `127.0.0.0/8`.
        public var addressPolicy: AddressPolicy = .standard
        /// A PEM file of CA certificates trusted for `https` instead of the system's. Default
        /// `nil`: the system's CA bundle. Meant for tests with a throwaway CA.
        public var caBundlePath: String? = nil
        /// Addresses to use for host names instead of asking DNS, in libcurl's `CURLOPT_RESOLVE`
        /// form `host:port:address[,address...]` (e.g. `hooks.example.com:443:203.0.113.7`).
        /// They are checked by ``addressPolicy`` like any other. Meant for tests and for pinning
        /// a name; default none.
        public var fixedAddresses: [String] = []
        /// The `User-Agent` header. Default `Webhooky/1`.
        public var userAgent: String = "Webhooky/1"

        /// The defaults above.
        public init() {}
    }

    /// Receives finished requests, in batches, on the client's thread. Keep it short.
    public typealias Completion = @Sendable ([HTTPResult]) -> Void

    /// Requests queued for the client's thread, and whether it should stop.
    private final class Inbox: Sendable {
        struct State {
            var requests: [HTTPRequest] = []
            /// Tags of requests to take out of their line unsent (see ``HTTPClient/cancelWaiting(tags:)``).
            var cancelTags: Set<Int64> = []
            /// Set by ``HTTPClient/stopStarting()``: nothing more starts.
            var startsNothing = false
            var stopping = false
            /// Whether the client's thread was woken since it last took the requests: then
            /// waking it again would not make it take them sooner (one system call saved per
            /// batch sent while it works).
            var woken = false
        }

        let state = Mutex(State())
    }

    private let inbox = Inbox()
    private let multi: MultiHandle

    /// Starts the client's thread.
    ///
    /// - Parameters:
    ///   - configuration: Limits and timeouts.
    ///   - completion: Called on the client's thread with each batch of finished requests.
    /// - Throws: ``HTTPError/Code/other`` when libcurl cannot create its multi handle (out of memory).
    public init(configuration: Configuration = Configuration(), completion: @escaping Completion) throws(HTTPError) {
        CurlGlobal.initialize()
        guard let multi = MultiHandle(configuration: configuration) else {
            throw HTTPError(code: .other, message: "libcurl could not create a multi handle (out of memory)")
        }
        let inbox = self.inbox
        self.multi = multi
        let thread = Thread {
            nameThisThread("webhooky-http")
            let loop = TransferLoop(multi: multi, configuration: configuration, completion: completion)
            loop.run { inbox.state.withLock { state in
                defer {
                    state.requests.removeAll(keepingCapacity: true)
                    state.cancelTags.removeAll()
                    state.woken = false
                }
                return (state.requests, state.cancelTags, state.startsNothing, state.stopping)
            } }
            multi.finishedSignal.signal()
        }
        thread.start()
    }

    /// Queues `requests`; their results arrive through the completion handler.
    public func send(_ requests: [HTTPRequest]) {
        guard !requests.isEmpty else { return }
        let alreadyWoken = inbox.state.withLock { state in
            state.requests.append(contentsOf: requests)
            defer { state.woken = true }
            return state.woken
        }
        // The thread takes requests after every wake-up it consumes, so a wake-up still
        // pending covers these too.
        if !alreadyWoken { multi.wakeUp() }
    }

    /// Takes the requests tagged `tags` that still wait for their turn out of their line: they
    /// finish with ``HTTPError/Code/cancelled`` (never sent). Those already started go on; a tag
    /// of no waiting request is ignored. For requests that should no longer go out as they were
    /// made (their webhook changed).
    public func cancelWaiting(tags: Set<Int64>) {
        guard !tags.isEmpty else { return }
        let alreadyWoken = inbox.state.withLock { state in
            state.cancelTags.formUnion(tags)
            defer { state.woken = true }
            return state.woken
        }
        if !alreadyWoken { multi.wakeUp() }
    }

    /// Starts no more requests: those waiting for their turn, and any sent from now on, finish
    /// at once with ``HTTPError/Code/cancelled`` (never sent); those in flight go on. For a
    /// graceful stop, before waiting for what is in flight.
    public func stopStarting() {
        inbox.state.withLock { $0.startsNothing = true }
        multi.wakeUp()
    }

    /// Stops the client: requests still waiting finish with ``HTTPError/Code/cancelled``, those
    /// in flight with ``HTTPError/Code/interrupted``. Blocks until the client's thread has ended.
    public func shutdown() {
        let alreadyStopping = inbox.state.withLock { state in
            defer { state.stopping = true }
            return state.stopping
        }
        guard !alreadyStopping else { return }
        multi.wakeUp()
        multi.finishedSignal.wait()
    }
}

/// libcurl's global initialisation, done exactly once before any handle exists.
enum CurlGlobal {
    private static let once: Void = {
        curl_global_init(Int(CURL_GLOBAL_ALL))
    }()

    static func initialize() { once }
}

/// The multi handle, shared with other threads only for `curl_multi_wakeup`.
///
/// `@unchecked Sendable`: every libcurl call on `pointer` happens on the client's thread, except
/// `curl_multi_wakeup`, which libcurl documents as safe to call from any thread. The handle is
/// freed only in `deinit`, after the thread has ended (it holds a reference until then).
final class MultiHandle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let finishedSignal = DispatchSemaphore(value: 0)

    init?(configuration: HTTPClient.Configuration) {
        guard let pointer = curl_multi_init() else { return nil }
        self.pointer = pointer
        _ = webhooky_curl_multi_setopt_long(pointer, CURLMOPT_MAX_TOTAL_CONNECTIONS, configuration.maximumConcurrentRequests)
        _ = webhooky_curl_multi_setopt_long(pointer, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maximumConnectionsPerHost)
        _ = webhooky_curl_multi_setopt_long(pointer, CURLMOPT_MAXCONNECTS, configuration.maximumConcurrentRequests)
    }

    func wakeUp() {
        curl_multi_wakeup(pointer)
    }

    deinit {
        curl_multi_cleanup(pointer)
    }
}
