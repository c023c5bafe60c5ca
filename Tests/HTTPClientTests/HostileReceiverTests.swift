import Foundation
import HTTPClient
import Testing

/// Receivers that answer in ways HTTP allows but servers should not, or that servers do anyway.
@Suite(.timeLimit(.minutes(10))) struct HostileReceiverTests {
    /// The status and body of `result`, or its error code.
    static func outcome(_ result: HTTPResult) -> String {
        switch result.outcome {
        case .success(let response): "\(response.status) \(String(decoding: response.body, as: UTF8.self))"
        case .failure(let error): error.code.rawValue
        }
    }

    @Test("a kept-alive connection that the server wrote to while it was idle (a 408 before closing it, an answer sent twice) is not used again: the next request goes out on a new connection and gets its own answer")
    func anAnswerNobodyAskedForIsNotTheNextRequests() throws {
        // Signalled once the server has written its late bytes (after /1 and /3): a client that
        // sent the next request before that (this thread or the server's held up on a loaded
        // machine) would meet a race the test is not about.
        let lateBytes = DispatchSemaphore(value: 0)
        let receiver = try RawReceiver { connection in
            while let line = connection.readRequest() {
                let path = String(line.split(separator: " ")[1])
                connection.write("HTTP/1.1 200 OK\r\nContent-Length: \(path.utf8.count)\r\n\r\n\(path)")
                Thread.sleep(forTimeInterval: 0.05)
                if path == "/1" {
                    // What Node.js and some proxies do with a connection left idle too long.
                    connection.write("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                    lateBytes.signal()
                    return
                }
                if path == "/3" {
                    connection.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/3")
                    lateBytes.signal()
                }
            }
        }
        defer { receiver.stop() }
        let (client, results) = try makeClient { $0.maximumConcurrentRequests = 1 }  // one handle, one connection at a time
        defer { client.shutdown() }
        for number in 1...4 {
            client.send([HTTPRequest(tag: Int64(number), method: "POST", url: receiver.baseURL + "/\(number)", body: Array("{}".utf8))])
            #expect(results.wait(for: number).count == number)
            if number == 1 || number == 3 { #expect(lateBytes.wait(timeout: .now() + 10) == .success) }
            Thread.sleep(forTimeInterval: 0.2)  // the server's late bytes have come
        }
        // Before: /2 got the 408 (which its server never sent it: it never read /2), /4 got the
        // second answer to /3.
        #expect(results.wait(for: 4).map(HostileReceiverTests.outcome) == ["200 /1", "200 /2", "200 /3", "200 /4"])
        #expect(receiver.requests == ["POST /1 HTTP/1.1", "POST /2 HTTP/1.1", "POST /3 HTTP/1.1", "POST /4 HTTP/1.1"])
        #expect(receiver.connectionsAccepted == 3)
    }

    @Test("an answer with a header line over 100 KB is the endpoint's failure, and the error says so, not 'Out of memory'")
    func anOverlongHeaderLineSaysSo() throws {
        let receiver = try RawReceiver { connection in
            guard connection.readRequest() != nil else { return }
            connection.write("HTTP/1.1 503 Busy\r\nRetry-After: \(String(repeating: "9", count: 200_000))\r\nContent-Length: 0\r\n\r\n")
        }
        defer { receiver.stop() }
        let (client, results) = try makeClient()
        defer { client.shutdown() }
        client.send([HTTPRequest(tag: 1, method: "POST", url: receiver.baseURL + "/", body: Array("{}".utf8))])
        guard case .failure(let error) = try #require(results.wait(for: 1).first).outcome else {
            Issue.record("an answer libcurl cannot read is no response")
            return
        }
        #expect(error.code == .other)
        // Before: "Out of memory", which sends whoever reads webhooky.deliveries after the worker's memory.
        #expect(error.message == "the answer has a header line longer than 100 KB, which libcurl does not read (libcurl: Out of memory)")
    }
}
