import CCurl
import Glibc

/// An easy handle and what stays with it from one request to the next: its error buffer and
/// the options that are the same for every request (set once, on first use). libcurl keeps
/// options between transfers, so a handle is reused without `curl_easy_reset`.
final class EasyHandle {
    let pointer: UnsafeMutableRawPointer
    /// Where libcurl writes the reason of a failure; lives as long as the handle.
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    /// Whether the per-handle options have been set.
    var configured = false
    /// The handle's ``HTTPClient/Configuration/fixedAddresses`` for libcurl; lives as long as the handle.
    var fixedAddresses: UnsafeMutablePointer<curl_slist>?

    init?() {
        guard let pointer = curl_easy_init() else { return nil }
        self.pointer = pointer
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(pointer)
        errorBuffer.deallocate()
        if let fixedAddresses { curl_slist_free_all(fixedAddresses) }
    }
}

/// One hop of a request in flight: its easy handle's settings, and what comes back.
///
/// Lives on the client's thread only. The write and header callbacks receive it as an
/// unretained pointer; the transfer loop keeps it alive until the transfer is removed.
final class Transfer {
    /// What a finished transfer leads to.
    enum Ending {
        /// The request's result.
        case result(HTTPResult)
        /// A redirect to follow: the next hop's request, and the chain that it continues.
        case redirect(HTTPRequest, RedirectChain)
        /// The same hop again, unsent so far, on a new connection: the kept-alive one libcurl
        /// chose had an answer waiting that nobody asked for (see ``ConnectionSockets``).
        case again(HTTPRequest, RedirectChain)
    }

    /// The request being sent: for a redirect hop, the request as that hop sends it.
    let request: HTTPRequest
    /// The hops before this one, and when the first started.
    private var chain: RedirectChain
    private let easy: EasyHandle
    private var handle: UnsafeMutableRawPointer { easy.pointer }
    private let configuration: HTTPClient.Configuration
    private let connections: ConnectionSockets
    /// Whether this hop must open a connection of its own instead of reusing one.
    private let freshConnection: Bool
    /// Whether this hop opened a socket (a new connection), not when it reuses a kept-alive one.
    private var openedConnection = false
    /// Whether the pre-request callback stopped this hop before it was sent, because its
    /// kept-alive connection was stale.
    private var stoppedOnStaleConnection = false
    private var headerLines: HeaderLines?
    private var body: [UInt8] = []
    private var bodyTruncated = false
    private var retryAfter: String?
    private var location: String?
    /// The first connection attempt the address policy refused, if any.
    private var refusal: AddressPolicy.Refusal?
    /// Whether an address the policy allows was tried: then a failure to connect is the
    /// endpoint's (down, refusing), not the policy's, even if another of its addresses was refused.
    private var triedAllowedAddress = false

    /// A transfer of `request` on `easy` (new, or used before), not yet configured: the first
    /// hop, starting now, or a hop that continues `chain` (a redirect's, or the same one again);
    /// on a new connection with `freshConnection` (default `false`: a kept-alive one if any).
    init(request: HTTPRequest, continuing chain: RedirectChain? = nil, handle easy: EasyHandle, configuration: HTTPClient.Configuration,
         connections: ConnectionSockets, freshConnection: Bool = false) {
        self.request = request
        self.chain = chain ?? RedirectChain(startedAt: Transfer.wallClock(), started: .now)
        self.easy = easy
        self.configuration = configuration
        self.connections = connections
        self.freshConnection = freshConnection
        easy.errorBuffer[0] = 0
    }

    deinit {
        releaseResources()
    }

    /// Frees the header list; called when the handle is recycled.
    func releaseResources() {
        headerLines?.deallocate()
        headerLines = nil
    }

    /// Collects the first code that is not `CURLE_OK`.
    private struct Codes {
        var failed = CURLE_OK
        mutating func add(_ code: CURLcode) {
            if failed == CURLE_OK { failed = code }
        }
    }

    /// The options every request on a handle shares (set on its first use).
    private func configureHandle(_ codes: inout Codes) {
        codes.add(webhooky_curl_easy_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
        codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        // Redirects are followed by the transfer loop, one transfer per hop (see RedirectChain).
        codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Transfer.milliseconds(configuration.connectTimeout)))
        // Every connection (each redirect hop is a transfer of its own) is opened by
        // `onOpenSocket`, which refuses addresses the policy does not allow. An empty proxy
        // disables proxies, including those named by http_proxy, https_proxy and ALL_PROXY: a
        // proxy would be the only address checked.
        codes.add(webhooky_curl_easy_setopt_opensocket(handle, CURLOPT_OPENSOCKETFUNCTION, Transfer.onOpenSocket))
        codes.add(webhooky_curl_easy_setopt_string(handle, CURLOPT_PROXY, ""))
        // Verification is always on; a custom CA bundle replaces the system's (no CA folder).
        codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1))
        codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2))
        if let caBundlePath = configuration.caBundlePath {
            codes.add(webhooky_curl_easy_setopt_string(handle, CURLOPT_CAINFO, caBundlePath))
            codes.add(webhooky_curl_easy_setopt_string(handle, CURLOPT_CAPATH, nil))
        }
        // The path goes out as rendered: libcurl would otherwise squash "/a/../b" to "/b", so
        // that a variable's value ".." could drop the path segment before it.
        codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_PATH_AS_IS, 1))
        codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1))
        codes.add(webhooky_curl_easy_setopt_string(handle, CURLOPT_USERAGENT, configuration.userAgent))
        codes.add(webhooky_curl_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, easy.errorBuffer))
        codes.add(webhooky_curl_easy_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, Transfer.onBody))
        codes.add(webhooky_curl_easy_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, Transfer.onHeader))
        codes.add(webhooky_curl_easy_setopt_prereq(handle, CURLOPT_PREREQFUNCTION, Transfer.onConnectionReady))
        for entry in configuration.fixedAddresses {
            easy.fixedAddresses = curl_slist_append(easy.fixedAddresses, entry) ?? easy.fixedAddresses
        }
        if let fixedAddresses = easy.fixedAddresses {
            codes.add(webhooky_curl_easy_setopt_list(handle, CURLOPT_RESOLVE, fixedAddresses))
        }
    }

    /// Sets the options of this request (and, on a handle's first use, those it shares with
    /// every request); returns an error instead when one is refused. Every option a request
    /// may change is set again, so nothing of the handle's previous request carries over.
    func configure() -> HTTPError? {
        // The hops of a redirect chain share the request timeout.
        let remaining = Transfer.milliseconds(configuration.requestTimeout - (.now - chain.started))
        guard remaining > 0 else { return timeout() }
        var codes = Codes()
        if !easy.configured {
            configureHandle(&codes)
            easy.configured = codes.failed == CURLE_OK
        }
        let context = Unmanaged.passUnretained(self).toOpaque()
        codes.add(webhooky_curl_easy_setopt_pointer(handle, CURLOPT_OPENSOCKETDATA, context))
        codes.add(webhooky_curl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, context))
        codes.add(webhooky_curl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, context))
        codes.add(webhooky_curl_easy_setopt_pointer(handle, CURLOPT_PREREQDATA, context))
        codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_FRESH_CONNECT, freshConnection ? 1 : 0))
        codes.add(webhooky_curl_easy_setopt_string(handle, CURLOPT_URL, request.url))
        codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, remaining))

        // The method and body: a body makes the request a POST-like upload (its method name
        // replaced unless it is POST); without one it is a GET, renamed unless it is GET. A POST
        // without a body sends an empty one.
        let body = request.body ?? (request.method == "POST" ? [] : nil)
        if let body {
            codes.add(webhooky_curl_easy_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
            codes.add(body.withUnsafeBufferPointer { buffer in
                // COPYPOSTFIELDS copies the bytes, so the buffer need not outlive this call.
                buffer.baseAddress.map { webhooky_curl_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0)) }
                    ?? webhooky_curl_easy_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")
            })
            codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_POST, 1))
        } else {
            codes.add(webhooky_curl_easy_setopt_long(handle, CURLOPT_HTTPGET, 1))
        }
        let renamed = request.method != (body == nil ? "GET" : "POST")
        codes.add(webhooky_curl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, renamed ? request.method : nil))
        // "Expect:" with no value stops libcurl from waiting for a 100-continue on larger bodies.
        let headerLines = HeaderLines(request.headers, then: ["Expect:"])
        self.headerLines = headerLines
        codes.add(webhooky_curl_easy_setopt_list(handle, CURLOPT_HTTPHEADER, headerLines.list))

        if codes.failed != CURLE_OK {
            return HTTPError(code: Transfer.errorCode(codes.failed), message: "libcurl refused an option: \(String(cString: curl_easy_strerror(codes.failed)))")
        }
        return nil
    }

    /// What a finished transfer leads to, given libcurl's code: the request's result, or the
    /// next hop of a redirect it follows.
    func ending(code: CURLcode) -> Ending {
        if stoppedOnStaleConnection && code == CURLE_ABORTED_BY_CALLBACK {
            return .again(request, chain)
        }
        var status = 0
        _ = webhooky_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        let outcome: Result<HTTPResponse, HTTPError>
        // A 2xx status is the answer even when the connection then breaks or stalls before the
        // whole body has come: the receiver has said that it accepted the request (Standard
        // Webhooks counts the status), and sending it again would only make a duplicate. The
        // response has what came of the body, marked truncated.
        let acceptedThenFailed = code != CURLE_OK && (200...299).contains(status)
        if code == CURLE_OK || (code == CURLE_WRITE_ERROR && bodyTruncated && status > 0) || acceptedThenFailed {
            switch chain.next(after: request, status: status, location: location) {
            case .follow(let next)?:
                return .redirect(next, chain)
            case .fail(let error)?:
                outcome = .failure(error)
            case nil:
                outcome = .success(HTTPResponse(status: status, retryAfter: retryAfter, location: location, body: body,
                                                bodyTruncated: bodyTruncated || acceptedThenFailed))
            }
        } else if let refusal, code == CURLE_COULDNT_CONNECT, !triedAllowedAddress {
            // libcurl only knows that no socket was opened; say which address (or name) and why.
            outcome = .failure(HTTPError(code: .addressNotAllowed, message: refusal.message(resolvedFrom: Transfer.hostName(of: request.url))))
        } else if code == CURLE_OPERATION_TIMEDOUT && chain.followed > 0 {
            // libcurl counts only this hop's time.
            return .result(failed(timeout()))
        } else {
            let detail = String(cString: easy.errorBuffer)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            var requestSize = 0
            _ = webhooky_curl_easy_getinfo_long(handle, CURLINFO_REQUEST_SIZE, &requestSize)
            if code == CURLE_UNSUPPORTED_PROTOCOL && requestSize > 0 {
                // The request went out, so its URL was fine: libcurl says "unsupported protocol"
                // of the answer too, when it is not HTTP ("Received HTTP/0.9 when not allowed",
                // what a TLS port or another service sends back). A failure like any other, not
                // a URL that retrying cannot help.
                outcome = .failure(HTTPError(code: .other, message: "the answer is not HTTP: \(message)"))
            } else if code == CURLE_OUT_OF_MEMORY && detail.isEmpty && requestSize > 0 {
                // libcurl refuses a response header line longer than 100 KB (CURL_MAX_HTTP_HEADER)
                // with this code and no message: the endpoint's doing, not this machine's memory.
                outcome = .failure(HTTPError(code: .other, message: "the answer has a header line longer than 100 KB, which libcurl does not read (libcurl: \(message))"))
            } else {
                outcome = .failure(HTTPError(code: Transfer.errorCode(code), message: message))
            }
        }
        return .result(HTTPResult(tag: request.tag, outcome: outcome, startedAt: chain.startedAt, duration: .now - chain.started))
    }

    /// The result of a transfer stopped by shutdown while in flight.
    func interrupted() -> HTTPResult {
        failed(HTTPError(code: .interrupted, message: "interrupted: the HTTP client was shut down while the request was in flight"))
    }

    /// The result of this request ending with `error`, its time counted from the first hop.
    func failed(_ error: HTTPError) -> HTTPResult {
        HTTPResult(tag: request.tag, outcome: .failure(error), startedAt: chain.startedAt, duration: .now - chain.started)
    }

    /// The error of a redirect chain whose time ran out.
    private func timeout() -> HTTPError {
        let elapsed = Transfer.milliseconds(.now - chain.started)
        let redirects = chain.followed == 1 ? "1 redirect" : "\(chain.followed) redirects"
        return HTTPError(code: .timeout, message: "Operation timed out after \(elapsed) milliseconds, \(redirects) followed")
    }

    /// The result of a request that could not be started.
    static func failure(_ request: HTTPRequest, _ error: HTTPError) -> HTTPResult {
        HTTPResult(tag: request.tag, outcome: .failure(error), startedAt: wallClock(), duration: .zero)
    }

    /// Now, in seconds since 1970.
    static func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    private static let onBody: webhooky_curl_data_callback = { data, size, count, context in
        guard let data, let context else { return 0 }
        let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
        let length = size * count
        let room = transfer.configuration.maximumResponseBodyBytes - transfer.body.count
        data.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
            transfer.body.append(contentsOf: UnsafeBufferPointer(start: bytes, count: min(room, length)))
        }
        if length > room {
            // Stop reading: the rest of a large body is never downloaded.
            transfer.bodyTruncated = true
            return 0
        }
        return length
    }

    /// The host of `url` when it is a name (not an IP address), as libcurl reads it.
    static func hostName(of url: String) -> String? {
        guard let parsed = CurlURL(), parsed.set(url, flags: CurlURL.requestFlags), let host = parsed.parts()?.host else { return nil }
        let unbracketed = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return IPAddress(unbracketed) == nil ? host : nil
    }

    /// Opens the socket of a connection attempt if the address policy allows its address;
    /// otherwise remembers the refusal and returns `CURL_SOCKET_BAD`, which makes libcurl try the
    /// host's next address or fail with `CURLE_COULDNT_CONNECT`.
    private static let onOpenSocket: curl_opensocket_callback = { context, purpose, address in
        guard let context, let address, purpose == CURLSOCKTYPE_IPCXN else { return CURL_SOCKET_BAD }
        let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
        var bytes = [UInt8](repeating: 0, count: 16)
        let count = Int(webhooky_curl_sockaddr_ip(address, &bytes))
        guard let ip = IPAddress(bytes: Array(bytes.prefix(count))) else { return CURL_SOCKET_BAD }
        if let refusal = transfer.configuration.addressPolicy.refusal(for: ip) {
            if transfer.refusal == nil { transfer.refusal = refusal }
            return CURL_SOCKET_BAD
        }
        transfer.triedAllowedAddress = true
        let opened = socket(address.pointee.family, address.pointee.socktype | Int32(SOCK_CLOEXEC.rawValue), address.pointee.protocol)
        if opened >= 0 { transfer.openedConnection = true }
        return opened
    }

    /// Called once the hop has its connection, before its request is sent. A kept-alive `http`
    /// connection idle for a while (see ``ConnectionSockets``) is looked at first, and when the
    /// server wrote to it meanwhile (or closed it), it is discarded and the hop stopped unsent,
    /// to go out again on a new connection (``Ending/again(_:_:)``).
    private static let onConnectionReady: curl_prereq_callback = { context, _, _, remotePort, localPort in
        guard let context else { return Int32(CURL_PREREQFUNC_OK) }
        let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
        // A connection this hop opened is new.
        guard !transfer.openedConnection, transfer.looksAtItsConnection else { return Int32(CURL_PREREQFUNC_OK) }
        let key = ConnectionSockets.key(localPort: Int(localPort), remotePort: Int(remotePort))
        guard let socket = transfer.connections.socketDueForALook(key, now: .now), ConnectionSockets.isStale(socket) else {
            return Int32(CURL_PREREQFUNC_OK)
        }
        transfer.connections.discard(socket, key: key)
        transfer.stoppedOnStaleConnection = true
        return Int32(CURL_PREREQFUNC_ABORT)
    }

    /// Whether a kept-alive connection is looked at before this hop uses it (see
    /// ``ConnectionSockets``): `http` only; `https` is left alone.
    private var looksAtItsConnection: Bool { request.url.utf8.starts(with: "http:".utf8) }

    /// The socket and ``ConnectionSockets/key(localPort:remotePort:)`` of the connection the
    /// transfer used, once it has ended (`nil` when it had none, or is not looked at again).
    var usedConnection: (socket: Int32, key: Int)? {
        guard looksAtItsConnection else { return nil }
        var socket = curl_socket_t(-1)
        var localPort = 0
        var remotePort = 0
        _ = webhooky_curl_easy_getinfo_socket(handle, CURLINFO_ACTIVESOCKET, &socket)
        _ = webhooky_curl_easy_getinfo_long(handle, CURLINFO_LOCAL_PORT, &localPort)
        _ = webhooky_curl_easy_getinfo_long(handle, CURLINFO_PRIMARY_PORT, &remotePort)
        guard socket >= 0, localPort > 0 else { return nil }
        return (socket, ConnectionSockets.key(localPort: localPort, remotePort: remotePort))
    }

    /// Called for every header line; only two headers matter, so the others are compared as
    /// bytes and never turned into strings.
    private static let onHeader: webhooky_curl_data_callback = { data, size, count, context in
        guard let data, let context else { return 0 }
        let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
        let length = size * count
        let line = UnsafeRawBufferPointer(start: data, count: length)
        if line.starts(with: "HTTP/".utf8) {
            // A new response (after a 100 Continue): forget the previous headers.
            transfer.retryAfter = nil
            transfer.location = nil
        } else if let value = headerValue(line, named: "retry-after") {
            transfer.retryAfter = value
        } else if (transfer.location ?? "").isEmpty, let value = headerValue(line, named: "location") {
            // The first Location that is not empty counts, as when libcurl followed redirects.
            transfer.location = value
        }
        return length
    }

    /// The trimmed value of `line` if it is the header `name` (lowercase ASCII), any case.
    static func headerValue(_ line: UnsafeRawBufferPointer, named name: String) -> String? {
        let name = name.utf8
        guard line.count > name.count, line[name.count] == UInt8(ascii: ":") else { return nil }
        for (offset, expected) in name.enumerated() {
            var byte = line[offset]
            if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { byte += 32 }
            guard byte == expected else { return nil }
        }
        return String(decoding: line[(name.count + 1)...], as: UTF8.self).trimmingWhitespace()
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    static func errorCode(_ code: CURLcode) -> HTTPError.Code {
        switch code {
        case CURLE_OPERATION_TIMEDOUT: .timeout
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: .dnsFailure
        case CURLE_COULDNT_CONNECT: .connectFailure
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
             CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
             CURLE_SSL_CRL_BADFILE, CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED:
            .tlsFailure
        case CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM:
            .connectionBroken
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: .invalidURL
        case CURLE_TOO_MANY_REDIRECTS: .tooManyRedirects
        default: .other
        }
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs, CR and LF.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
