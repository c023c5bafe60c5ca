/// Requests waiting for their turn to start, and how many are running: at most `totalLimit` in
/// all, and at most `endpointLimit` with the same ``HTTPRequest/endpoint`` (requests without one
/// count only against the total).
///
/// Within an endpoint, requests start in the order they came; across endpoints, the request
/// that has waited longest among those whose endpoint has room goes first, so a full endpoint
/// never holds back another's requests. Pure bookkeeping: nothing here touches libcurl.
struct StartQueue {
    /// A first-in, first-out list that does not move its elements when one is taken.
    private struct FIFO {
        private var items: [(sequence: Int, request: HTTPRequest)] = []
        private var head = 0

        var isEmpty: Bool { head == items.count }
        var first: (sequence: Int, request: HTTPRequest)? { isEmpty ? nil : items[head] }

        mutating func append(_ request: HTTPRequest, sequence: Int) {
            items.append((sequence, request))
        }

        mutating func removeFirst() -> HTTPRequest {
            let request = items[head].request
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return request
        }
    }

    let totalLimit: Int
    let endpointLimit: Int
    /// Waiting requests per endpoint (only endpoints with waiting requests have an entry).
    private var waiting: [String: FIFO] = [:]
    /// Waiting requests without an endpoint.
    private var waitingAnywhere = FIFO()
    /// Running requests per endpoint (only endpoints with running requests have an entry).
    private var runningPerEndpoint: [String: Int] = [:]
    private(set) var running = 0
    private(set) var waitingCount = 0
    private var nextSequence = 0

    /// A queue that lets `totalLimit` requests run at once, at most `endpointLimit` of them to
    /// one endpoint (both at least 1).
    init(totalLimit: Int, endpointLimit: Int) {
        self.totalLimit = max(1, totalLimit)
        self.endpointLimit = max(1, endpointLimit)
    }

    /// Adds a request at the end of its endpoint's line.
    mutating func enqueue(_ request: HTTPRequest) {
        if let endpoint = request.endpoint {
            waiting[endpoint, default: FIFO()].append(request, sequence: nextSequence)
        } else {
            waitingAnywhere.append(request, sequence: nextSequence)
        }
        nextSequence += 1
        waitingCount += 1
    }

    /// The next request that may start now, counted as running; `nil` when every waiting
    /// request's endpoint is full, the total is reached, or nothing waits.
    mutating func next() -> HTTPRequest? {
        guard waitingCount > 0, running < totalLimit else { return nil }
        var chosen: String?? = nil
        var chosenSequence = Int.max
        if let first = waitingAnywhere.first {
            chosen = .some(nil)
            chosenSequence = first.sequence
        }
        for (endpoint, line) in waiting where runningPerEndpoint[endpoint, default: 0] < endpointLimit {
            if let first = line.first, first.sequence < chosenSequence {
                chosen = .some(endpoint)
                chosenSequence = first.sequence
            }
        }
        guard let endpoint = chosen else { return nil }
        let request: HTTPRequest
        if let endpoint {
            request = waiting[endpoint]!.removeFirst()
            if waiting[endpoint]!.isEmpty { waiting[endpoint] = nil }
            runningPerEndpoint[endpoint, default: 0] += 1
        } else {
            request = waitingAnywhere.removeFirst()
        }
        waitingCount -= 1
        running += 1
        return request
    }

    /// A request that ``next()`` returned has ended (or could not start).
    mutating func finished(_ request: HTTPRequest) {
        running -= 1
        guard let endpoint = request.endpoint, let count = runningPerEndpoint[endpoint] else { return }
        runningPerEndpoint[endpoint] = count > 1 ? count - 1 : nil
    }

    /// Takes every waiting request out, in the order they came.
    mutating func removeAllWaiting() -> [HTTPRequest] {
        var all: [(Int, HTTPRequest)] = []
        for endpoint in Array(waiting.keys) {
            var line = waiting.removeValue(forKey: endpoint)!
            while let first = line.first {
                all.append((first.sequence, line.removeFirst()))
            }
        }
        while let first = waitingAnywhere.first {
            all.append((first.sequence, waitingAnywhere.removeFirst()))
        }
        waitingCount = 0
        return all.sorted { $0.0 < $1.0 }.map(\.1)
    }
}
