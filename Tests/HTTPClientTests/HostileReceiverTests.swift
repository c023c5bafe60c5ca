import Foundation
import HTTPClient
import Testing

/// Receivers that answer in ways HTTP allows but servers should not, or that servers do anyway.
@Suite(.timeLimit(.minutes(10))) struct HostileReceiverTests {
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
