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
}
