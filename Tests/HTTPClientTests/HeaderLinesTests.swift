import CCurl
@testable import HTTPClient
import Testing

/// ``HeaderLines``: the header list libcurl reads, built in one allocation.
@Suite struct HeaderLinesTests {
    /// The list's lines in order, following each node's `next`.
    private func lines(_ headers: HeaderLines) -> [String] {
        var lines: [String] = []
        var node: UnsafeMutablePointer<curl_slist>? = headers.list
        while let current = node {
            lines.append(String(cString: current.pointee.data))
            node = current.pointee.next
        }
        return lines
    }

    @Test("each header is a line 'Name: value' in order, a blank value 'Name;', then the extra lines")
    func linesInOrder() {
        let headers = HeaderLines([
            HTTPHeader(name: "Content-Type", value: "application/json"),
            HTTPHeader(name: "X-Empty", value: ""),
            HTTPHeader(name: "X-Blank", value: " \t "),
            HTTPHeader(name: "X-Name", value: "Příliš žluťoučký kůň 😀"),
            HTTPHeader(name: "webhook-id", value: "msg_2b9c"),
        ], then: ["Expect:"])
        defer { headers.deallocate() }
        #expect(lines(headers) == [
            "Content-Type: application/json", "X-Empty;", "X-Blank;", "X-Name: Příliš žluťoučký kůň 😀", "webhook-id: msg_2b9c", "Expect:",
        ])
    }

    @Test("no headers: only the extra lines; many headers: every one")
    func noneAndMany() {
        let none = HeaderLines([], then: ["Expect:"])
        defer { none.deallocate() }
        #expect(lines(none) == ["Expect:"])
        let many = HeaderLines((0..<200).map { HTTPHeader(name: "X-\($0)", value: String(repeating: "v", count: $0)) }, then: ["Expect:", "Accept:"])
        defer { many.deallocate() }
        #expect(lines(many) == (0..<200).map { $0 == 0 ? "X-0;" : "X-\($0): " + String(repeating: "v", count: $0) } + ["Expect:", "Accept:"])
    }
}
