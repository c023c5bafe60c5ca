import CCurl

/// A request's header lines as the `curl_slist` libcurl reads (`CURLOPT_HTTPHEADER`), built in
/// one allocation: the list's nodes followed by their NUL-terminated lines, where
/// `curl_slist_append` would allocate a node and a copy of the line for each header. libcurl
/// only reads the list, during the transfer; ``deallocate()`` frees it after.
struct HeaderLines {
    /// The first node, for `CURLOPT_HTTPHEADER`.
    let list: UnsafeMutablePointer<curl_slist>
    private let storage: UnsafeMutableRawPointer

    /// The lines of `headers` in their order, then each of `extraLines` as written.
    ///
    /// A header is written `Name: value`; one whose value is empty, or only spaces and tabs
    /// (which HTTP trims anyway), `Name;`, libcurl's form for sending it empty (`Name:` would
    /// remove it).
    init(_ headers: [HTTPHeader], then extraLines: [String]) {
        let count = headers.count + extraLines.count
        precondition(count > 0, "a header list has at least one line")
        let nodesSize = count * MemoryLayout<curl_slist>.stride
        var textSize = 0
        for header in headers {
            textSize += header.name.utf8.count + (HeaderLines.isBlank(header.value) ? 1 : 2 + header.value.utf8.count) + 1
        }
        for line in extraLines { textSize += line.utf8.count + 1 }
        storage = UnsafeMutableRawPointer.allocate(byteCount: nodesSize + textSize, alignment: MemoryLayout<curl_slist>.alignment)
        let nodes = storage.bindMemory(to: curl_slist.self, capacity: count)
        let text = (storage + nodesSize).bindMemory(to: CChar.self, capacity: textSize)
        list = nodes
        var written = 0
        var node = 0
        func write(_ string: String) {
            let count = string.utf8.count
            string.withCString { (text + written).update(from: $0, count: count) }
            written += count
        }
        func endLine() {
            text[written] = 0
            written += 1
        }
        func startNode() {
            (nodes + node).initialize(to: curl_slist(data: text + written, next: node + 1 < count ? nodes + node + 1 : nil))
            node += 1
        }
        for header in headers {
            startNode()
            write(header.name)
            if HeaderLines.isBlank(header.value) {
                write(";")
            } else {
                write(": ")
                write(header.value)
            }
            endLine()
        }
        for line in extraLines {
            startNode()
            write(line)
            endLine()
        }
    }

    /// Frees the list; libcurl must be done with it (the transfer removed or given other headers).
    func deallocate() {
        storage.deallocate()
    }

    /// Whether `value` is empty or only spaces and tabs.
    static func isBlank(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
    }
}
