/// Requests waiting for their turn to start, and how many are running: at most `totalLimit` in
/// all, and at most `endpointLimit` with the same ``HTTPRequest/endpoint`` (requests without one
/// count only against the total).
///
/// Within an endpoint, requests start in the order they came; endpoints whose next request may
/// start take turns, so a full endpoint never holds back another's requests. Every operation
/// costs the same however many endpoints wait. Pure bookkeeping: nothing here touches libcurl.
struct StartQueue {
    /// A first-in, first-out list that does not move its elements when one is taken.
    private struct FIFO<Element> {
        private var items: [Element] = []
        private var head = 0

        var isEmpty: Bool { head == items.count }

        mutating func append(_ item: Element) {
            items.append(item)
        }

        mutating func removeFirst() -> Element {
            let item = items[head]
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return item
        }
    }

    /// An endpoint's line and how many of its requests run. `nil` stands for requests without
    /// an endpoint (no limit of their own).
    private struct Line {
        var waiting = FIFO<HTTPRequest>()
        var running = 0
        /// Whether the line is in ``StartQueue/turns``.
        var hasTurn = false
    }

    let totalLimit: Int
    let endpointLimit: Int
    /// Lines with waiting requests or running ones (an endpoint with neither has no entry).
    private var lines: [String?: Line] = [:]
    /// Lines whose first request may start once the total allows, in the order they became so.
    private var turns = FIFO<String?>()
    private(set) var running = 0
    private(set) var waitingCount = 0

    /// A queue that lets `totalLimit` requests run at once, at most `endpointLimit` of them to
    /// one endpoint (both at least 1).
    init(totalLimit: Int, endpointLimit: Int) {
        self.totalLimit = max(1, totalLimit)
        self.endpointLimit = max(1, endpointLimit)
    }

    /// Adds a request at the end of its endpoint's line.
    mutating func enqueue(_ request: HTTPRequest) {
        lines[request.endpoint, default: Line()].waiting.append(request)
        waitingCount += 1
        giveTurnIfReady(request.endpoint)
    }

    /// The next request that may start now, counted as running; `nil` when every waiting
    /// request's endpoint is full, the total is reached, or nothing waits.
    mutating func next() -> HTTPRequest? {
        var endpoint: String??
        while endpoint == nil, running < totalLimit, !turns.isEmpty {
            let candidate = turns.removeFirst()
            if lines[candidate]?.waiting.isEmpty == false {
                endpoint = candidate
            } else {
                // A turn left behind by ``removeWaiting(of:)``: nothing of that line waits any more.
                lines[candidate]?.hasTurn = false
                if lines[candidate]?.running == 0 { lines[candidate] = nil }
            }
        }
        guard let endpoint else { return nil }
        let limit = endpointLimit
        let (request, again) = { (line: inout Line) in
            let request = line.waiting.removeFirst()
            line.running += 1
            // Its next request waits for another turn, behind the other lines.
            line.hasTurn = StartQueue.mayStart(line, endpoint, limit: limit)
            return (request, line.hasTurn)
        }(&lines[endpoint]!)
        if again { turns.append(endpoint) }
        waitingCount -= 1
        running += 1
        return request
    }

    /// A request that ``next()`` returned has ended (or could not start).
    mutating func finished(_ request: HTTPRequest) {
        running -= 1
        let endpoint = request.endpoint
        guard lines[endpoint] != nil else { return }
        let limit = endpointLimit
        let (emptied, turn) = { (line: inout Line) in
            line.running -= 1
            let turn = !line.hasTurn && StartQueue.mayStart(line, endpoint, limit: limit)
            if turn { line.hasTurn = true }
            // A line still among the turns (its waiting requests taken out) leaves with its turn.
            return (line.running == 0 && line.waiting.isEmpty && !line.hasTurn, turn)
        }(&lines[endpoint]!)
        if turn { turns.append(endpoint) }
        if emptied { lines[endpoint] = nil }
    }

    /// Takes every waiting request out, each endpoint's in order (running ones stay counted).
    mutating func removeAllWaiting() -> [HTTPRequest] {
        turns = FIFO()
        let endpoints = Array(lines.keys)
        for endpoint in endpoints { lines[endpoint]!.hasTurn = false }
        return endpoints.flatMap { removeWaiting(of: $0) }
    }

    /// Takes the requests waiting in `endpoint`'s line out, in order (its running ones stay
    /// counted). Its turn, if it has one, stays among the turns and is skipped.
    mutating func removeWaiting(of endpoint: String?) -> [HTTPRequest] {
        guard lines[endpoint] != nil else { return [] }
        var removed: [HTTPRequest] = []
        while !lines[endpoint]!.waiting.isEmpty { removed.append(lines[endpoint]!.waiting.removeFirst()) }
        waitingCount -= removed.count
        if lines[endpoint]!.running == 0 && !lines[endpoint]!.hasTurn { lines[endpoint] = nil }
        return removed
    }

    /// Takes the waiting requests that `shouldRemove` picks out of their lines (the others keep
    /// their order; running ones stay counted). A line left without waiting requests keeps its
    /// turn, if it has one, which is skipped.
    mutating func removeWaiting(where shouldRemove: (HTTPRequest) -> Bool) -> [HTTPRequest] {
        var removed: [HTTPRequest] = []
        for endpoint in Array(lines.keys) {
            var kept = FIFO<HTTPRequest>()
            var line = lines[endpoint]!
            while !line.waiting.isEmpty {
                let request = line.waiting.removeFirst()
                if shouldRemove(request) { removed.append(request) } else { kept.append(request) }
            }
            line.waiting = kept
            lines[endpoint] = line.running == 0 && line.waiting.isEmpty && !line.hasTurn ? nil : line
        }
        waitingCount -= removed.count
        return removed
    }

    /// Puts the endpoint's line among the turns when its first request may start (it has one,
    /// and the endpoint has room), unless it is there already.
    private mutating func giveTurnIfReady(_ endpoint: String?) {
        guard let line = lines[endpoint], !line.hasTurn, StartQueue.mayStart(line, endpoint, limit: endpointLimit) else { return }
        lines[endpoint]!.hasTurn = true
        turns.append(endpoint)
    }

    /// Whether the first request of `endpoint`'s line may start once the total allows: it has
    /// one, and the endpoint has room under `limit` (requests without an endpoint always do).
    /// Static, so that it can be asked while the line is being changed in place.
    private static func mayStart(_ line: Line, _ endpoint: String?, limit: Int) -> Bool {
        !line.waiting.isEmpty && (endpoint == nil || line.running < limit)
    }
}
