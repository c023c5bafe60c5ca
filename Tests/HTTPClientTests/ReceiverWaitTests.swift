import Foundation
import LoopbackReceiver
import Testing

/// Waiting for requests: on the monotonic clock, ending as soon as enough have arrived.
@Suite(.timeLimit(.minutes(10))) struct ReceiverWaitTests {
    @Test func aWaitEndsWhenEnoughRequestsHaveArrived() throws {
        let receiver = try LoopbackReceiver()
        let clock = ContinuousClock()
        let sender = Thread {
            Thread.sleep(forTimeInterval: 0.2)
            for _ in 0..<2 { _ = ReceiverStopTests.get(port: receiver.port) }
        }
        sender.start()
        var requests: [ReceivedRequest] = []
        let waited = clock.measure { requests = receiver.waitForRequests(2, timeout: .seconds(60)) }
        #expect(requests.map(\.target) == ["/probe", "/probe"])
        #expect(waited < .seconds(30), "the wait ran on toward its 60 s timeout after both requests came")
    }

    @Test func aWaitWithNoRequestsLastsItsTimeoutOnTheMonotonicClock() throws {
        let receiver = try LoopbackReceiver()
        let clock = ContinuousClock()
        var requests: [ReceivedRequest] = []
        let waited = clock.measure { requests = receiver.waitForRequests(1, timeout: .milliseconds(300)) }
        #expect(requests.isEmpty)
        #expect(waited >= .milliseconds(300))
    }

    @Test func aBriefWaitPastItsDeadlineReturnsFalseAtOnce() {
        let condition = NSCondition()
        condition.lock()
        defer { condition.unlock() }
        #expect(!condition.waitBriefly(before: ContinuousClock.now - .seconds(1)))
        #expect(!condition.waitBriefly(before: ContinuousClock.now))
        #expect(condition.waitBriefly(before: ContinuousClock.now + .milliseconds(20)), "a deadline ahead: waited, then true")
    }
}
