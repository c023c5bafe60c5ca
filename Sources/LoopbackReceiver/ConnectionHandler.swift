import Glibc

/// Reads requests from one connection and writes the replies, until the peer closes.
struct ConnectionHandler {
    let socket: Int32
    /// Stores a complete request and returns its number (from 1).
    let record: (ReceivedRequest) -> Int
    let responder: LoopbackReceiver.Responder
    private var buffer: [UInt8] = []

    init(socket: Int32, record: @escaping (ReceivedRequest) -> Int, responder: @escaping LoopbackReceiver.Responder) {
        self.socket = socket
        self.record = record
        self.responder = responder
    }

    mutating func run() {
        while let request = readRequest() {
            let number = record(request)
            switch responder(request, number) {
            case .respond(let status, let headers, let body, let delay):
                if delay > .zero { sleepFor(delay) }
                var head = "HTTP/1.1 \(status) \(ConnectionHandler.reason(status))\r\nContent-Length: \(body.utf8.count)\r\n"
                for header in headers { head += "\(header.name): \(header.value)\r\n" }
                head += "\r\n"
                guard write(Array(head.utf8) + Array(body.utf8)) else { return }
            case .hang:
                // Read until the client closes or the receiver stops.
                var scratch = [UInt8](repeating: 0, count: 4096)
                while ConnectionHandler.receive(socket, &scratch) > 0 {}
                return
            case .reset:
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(socket, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                return
            case .raw(let bytes):
                _ = write(Array(bytes.utf8))
                return
            }
        }
    }

    /// Reads one request (head and `Content-Length` body); `nil` when the connection ends.
    private mutating func readRequest() -> ReceivedRequest? {
        var headEnd: Int? = nil
        while true {
            if let end = ConnectionHandler.find([13, 10, 13, 10], in: buffer) {
                headEnd = end
                break
            }
            guard fill() else { return nil }
        }
        guard let headEnd else { return nil }
        let head = String(decoding: buffer[0..<headEnd], as: UTF8.self)
        var lines = ConnectionHandler.lines(of: head)
        guard !lines.isEmpty else { return nil }
        let requestLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        guard requestLine.count >= 2 else { return nil }
        var headers: [ReceivedRequest.Header] = []
        var contentLength = 0
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" }))
            headers.append(ReceivedRequest.Header(name: name, value: value))
            if name.lowercased() == "content-length" { contentLength = Int(value) ?? 0 }
        }
        let bodyStart = headEnd + 4
        while buffer.count < bodyStart + contentLength {
            guard fill() else { return nil }
        }
        let body = Array(buffer[bodyStart..<(bodyStart + contentLength)])
        buffer.removeFirst(bodyStart + contentLength)
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return ReceivedRequest(
            method: String(requestLine[0]),
            target: String(requestLine[1]),
            headers: headers,
            body: body,
            receivedAt: Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
        )
    }

    private mutating func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let count = ConnectionHandler.receive(socket, &chunk)
        guard count > 0 else { return false }
        buffer.append(contentsOf: chunk[0..<count])
        return true
    }

    private func write(_ bytes: [UInt8]) -> Bool {
        sendAll(bytes, to: socket)
    }

    /// `recv(2)` into `buffer`, again when a signal interrupted it (the test process gets
    /// signals from the children it starts; an interrupted read is not the end of the request).
    static func receive(_ socket: Int32, _ buffer: inout [UInt8]) -> Int {
        while true {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count < 0 && errno == EINTR { continue }
            return count
        }
    }

    private func sleepFor(_ duration: Duration) {
        var request = timespec(tv_sec: Int(duration.components.seconds), tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<(start + needle.count)]) == needle { return start }
        }
        return nil
    }

    /// `text` split at CRLF.
    static func lines(of text: String) -> [Substring] {
        text.split(separator: "\r\n", omittingEmptySubsequences: false)
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 410: "Gone"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

/// Writes all of `bytes` to `socket` (again after a signal); false when the peer is gone.
public func sendAll(_ bytes: [UInt8], to socket: Int32) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let sent = bytes[offset...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent < 0 && errno == EINTR { continue }
        if sent <= 0 { return false }
        offset += sent
    }
    return true
}
