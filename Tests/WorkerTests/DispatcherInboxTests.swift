import Foundation
import Testing
@testable import Worker

@Suite struct DispatcherInboxTests {
    static func timed(_ body: () -> Void) -> Duration {
        let start = ContinuousClock.now
        body()
        return ContinuousClock.now - start
    }

    @Test("news posted while the dispatcher works ends its next wait at once; without news it sleeps the whole timeout")
    func newsBeforeWait() {
        let inbox = DispatcherInbox()
        inbox.postNotification()
        #expect(DispatcherInboxTests.timed { inbox.wait(timeout: .seconds(5)) } < .seconds(1))
        #expect(inbox.take().notified)
        let slept = DispatcherInboxTests.timed { inbox.wait(timeout: .milliseconds(300)) }
        #expect(slept >= .milliseconds(250), "slept only \(slept) with nothing new")
    }

    @Test("news posted during a wait wakes it promptly; the next wait sleeps again (no spinning on a stale wake-up)")
    func newsDuringWait() {
        let inbox = DispatcherInbox()
        let poster = Thread {
            Thread.sleep(forTimeInterval: 0.2)
            inbox.wake()
        }
        poster.start()
        let woke = DispatcherInboxTests.timed { inbox.wait(timeout: .seconds(10)) }
        #expect(woke >= .milliseconds(150) && woke < .seconds(5), "\(woke)")
        _ = inbox.take()
        let slept = DispatcherInboxTests.timed { inbox.wait(timeout: .milliseconds(300)) }
        #expect(slept >= .milliseconds(250), "slept only \(slept) after the wake-up was taken")
        inbox.requestStop()
        #expect(DispatcherInboxTests.timed { inbox.wait(timeout: .seconds(5)) } < .seconds(1))
        #expect(inbox.take().stopRequested)
        let afterStop = DispatcherInboxTests.timed { inbox.wait(timeout: .milliseconds(300)) }
        #expect(afterStop >= .milliseconds(250), "a stop, once taken, does not keep waking the dispatcher")
    }

    @Test("a post after a take wakes the next wait, however many posts came before the take (one wake-up byte per take, none lost)")
    func postAfterTakeWakes() {
        let inbox = DispatcherInbox()
        for _ in 0..<100 { inbox.postNotification() }
        #expect(inbox.take().notified)
        inbox.wake()
        #expect(DispatcherInboxTests.timed { inbox.wait(timeout: .seconds(5)) } < .seconds(1), "the post after the take did not wake the wait")
        _ = inbox.take()
        let slept = DispatcherInboxTests.timed { inbox.wait(timeout: .milliseconds(300)) }
        #expect(slept >= .milliseconds(250), "slept only \(slept): a wake-up byte was left over")
    }

    @Test("posts racing with take and wait from another thread are never left waiting for the timeout")
    func racingPostsAreNeverLost() {
        let inbox = DispatcherInbox()
        let posts = 20_000
        let poster = Thread {
            for index in 0..<posts {
                inbox.postNotification()
                if index % 64 == 0 { sched_yield() }
            }
            inbox.requestStop()
        }
        let start = ContinuousClock.now
        poster.start()
        var longestWait = Duration.zero
        while true {
            // A post whose wake-up was lost would leave this wait to its 10 s timeout.
            let waited = DispatcherInboxTests.timed { inbox.wait(timeout: .seconds(10)) }
            longestWait = max(longestWait, waited)
            if inbox.take().stopRequested { break }
        }
        #expect(longestWait < .seconds(5), "a wait lasted \(longestWait) with news posted")
        #expect(ContinuousClock.now - start < .seconds(8))
    }
}
