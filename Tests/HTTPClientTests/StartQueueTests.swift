@testable import HTTPClient
import Testing

/// ``StartQueue``: which waiting request may start, under a total and a per-endpoint limit.
@Suite struct StartQueueTests {
    private func request(_ tag: Int64, _ endpoint: String?) -> HTTPRequest {
        HTTPRequest(tag: tag, method: "POST", url: "http://127.0.0.1/", endpoint: endpoint)
    }

    /// Tags of what may start now, taken until nothing may.
    private func startable(_ queue: inout StartQueue) -> [Int64] {
        var tags: [Int64] = []
        while let next = queue.next() { tags.append(next.tag) }
        return tags
    }

    @Test("one endpoint's requests start in the order they came, at most its limit at once")
    func oneEndpointInOrder() {
        var queue = StartQueue(totalLimit: 10, endpointLimit: 2)
        for tag in 1...4 { queue.enqueue(request(Int64(tag), "a")) }
        #expect(startable(&queue) == [1, 2])
        #expect(queue.running == 2 && queue.waitingCount == 2)
        queue.finished(request(1, "a"))
        #expect(startable(&queue) == [3])
        queue.finished(request(2, "a"))
        queue.finished(request(3, "a"))
        #expect(startable(&queue) == [4])
        #expect(queue.waitingCount == 0)
    }

    @Test("a full endpoint does not hold back another endpoint's requests behind it")
    func fullEndpointDoesNotBlockOthers() {
        var queue = StartQueue(totalLimit: 10, endpointLimit: 2)
        for tag in 1...3 { queue.enqueue(request(Int64(tag), "a")) }
        queue.enqueue(request(4, "b"))
        #expect(Set(startable(&queue)) == [1, 2, 4], "1 and 2 of a (its limit), and b's 4")
        queue.finished(request(4, "b"))
        #expect(startable(&queue) == [], "b's end makes no room for a")
        queue.finished(request(1, "a"))
        #expect(startable(&queue) == [3])
    }

    @Test("the total limit counts every request, with an endpoint or without; endpoints whose next request may start take turns")
    func totalLimitAndTurns() {
        var queue = StartQueue(totalLimit: 3, endpointLimit: 5)
        queue.enqueue(request(1, "a"))
        queue.enqueue(request(2, nil))
        queue.enqueue(request(3, "b"))
        queue.enqueue(request(4, nil))
        queue.enqueue(request(5, "a"))
        #expect(startable(&queue) == [1, 2, 3])
        queue.finished(request(2, nil))
        #expect(startable(&queue) == [5], "a's turn came back before the second request without endpoint")
        queue.finished(request(3, "b"))
        #expect(startable(&queue) == [4])
        #expect(queue.running == 3 && queue.waitingCount == 0)
    }

    @Test("taking every waiting request out returns each endpoint's in order; running ones stay counted")
    func removeAllWaitingInOrder() {
        var queue = StartQueue(totalLimit: 1, endpointLimit: 1)
        queue.enqueue(request(1, "a"))
        queue.enqueue(request(2, "b"))
        queue.enqueue(request(3, nil))
        queue.enqueue(request(4, "a"))
        queue.enqueue(request(5, "b"))
        #expect(startable(&queue) == [1])
        let removed = queue.removeAllWaiting().map(\.tag)
        #expect(Set(removed) == [2, 3, 4, 5])
        #expect(removed.firstIndex(of: 2)! < removed.firstIndex(of: 5)!)
        #expect(queue.waitingCount == 0 && queue.running == 1)
        #expect(startable(&queue) == [])
        queue.finished(request(1, "a"))
        queue.enqueue(request(6, "a"))
        #expect(startable(&queue) == [6], "the queue works on after being emptied")
    }

    @Test("taking one endpoint's waiting requests out leaves the others' lines and turns as they were; the emptied endpoint's turn is skipped, and its line works on")
    func removeOneEndpointsWaiting() {
        var queue = StartQueue(totalLimit: 2, endpointLimit: 1)
        for (tag, endpoint) in [(1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a")] { queue.enqueue(request(Int64(tag), endpoint)) }
        #expect(startable(&queue) == [1, 2])
        queue.finished(request(1, "a"))  // a's next (3) has its turn now
        #expect(queue.removeWaiting(of: "a").map(\.tag) == [3, 5])
        #expect(queue.waitingCount == 1 && queue.running == 1)
        queue.finished(request(2, "b"))
        #expect(startable(&queue) == [4], "a's left-over turn is skipped")
        queue.enqueue(request(6, "a"))
        queue.enqueue(request(7, "a"))
        #expect(startable(&queue) == [6], "one turn for a, and its limit of 1 holds")
        queue.finished(request(6, "a"))
        #expect(startable(&queue) == [7])
        #expect(queue.removeWaiting(of: "nobody").isEmpty)
        queue.finished(request(4, "b"))
        queue.finished(request(7, "a"))
        #expect(queue.running == 0 && queue.waitingCount == 0)
    }

    @Test("taking chosen waiting requests out of every line keeps the others in order, with their turns; a line left empty has its turn skipped and works on")
    func removeChosenWaiting() {
        var queue = StartQueue(totalLimit: 10, endpointLimit: 1)
        for (tag, endpoint) in [(1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a"), (6, "b")] { queue.enqueue(request(Int64(tag), endpoint)) }
        #expect(startable(&queue) == [1, 2])
        #expect(queue.removeWaiting(where: { [3, 4, 6].contains($0.tag) }).map(\.tag).sorted() == [3, 4, 6])
        #expect(queue.waitingCount == 1 && queue.running == 2)
        queue.finished(request(1, "a"))
        queue.finished(request(2, "b"))
        #expect(startable(&queue) == [5], "a's 5 kept its place; b has nothing left")
        queue.enqueue(request(7, "b"))
        #expect(startable(&queue) == [7], "b's line works on")
        #expect(queue.removeWaiting(where: { _ in true }).isEmpty)
        queue.finished(request(5, "a"))
        queue.finished(request(7, "b"))
        #expect(queue.running == 0 && queue.waitingCount == 0)
    }

    @Test("many endpoints with a line of one each: every request starts, each endpoint in order, and each finished request lets its endpoint's next start")
    func manyEndpoints() {
        var queue = StartQueue(totalLimit: 10_000, endpointLimit: 1)
        for round in 0..<3 {
            for endpoint in 0..<200 { queue.enqueue(request(Int64(round * 1000 + endpoint), "e\(endpoint)")) }
        }
        var started = startable(&queue)
        #expect(started == (0..<200).map { Int64($0) })
        for round in 1..<3 {
            for tag in started { queue.finished(request(tag, "e\(tag % 1000)")) }
            started = startable(&queue)
            #expect(Set(started) == Set((0..<200).map { Int64(round * 1000 + $0) }))
        }
        #expect(queue.waitingCount == 0 && queue.running == 200)
    }

    @Test("a long line is served in order across the points where it is compacted")
    func longLineKeepsOrder() {
        var queue = StartQueue(totalLimit: 1_000, endpointLimit: 3)
        for tag in 1...500 { queue.enqueue(request(Int64(tag), "a")) }
        var started: [Int64] = startable(&queue)
        while queue.waitingCount > 0 {
            queue.finished(request(started[started.count - 3], "a"))
            started += startable(&queue)
        }
        #expect(started == Array(1...500))
    }
}
