import Log
import TestSupport
import Testing
@testable import Worker

@Suite struct BackoffTests {
    @Test func doublesUpToTheCapWithJitterAndResets() {
        var random = SeededRandom()
        var backoff = Backoff()
        let nominal: [Double] = [0.25, 0.5, 1, 2, 4, 8, 10, 10, 10]
        for expected in nominal {
            let delay = backoff.nextDelay(using: &random)
            let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
            #expect(seconds >= expected * 0.8 - 1e-9 && seconds <= expected * 1.2 + 1e-9, "\(seconds) for \(expected)")
        }
        backoff.reset()
        #expect(backoff.nextDelay(using: &random) <= .milliseconds(300))
    }
}

@Suite struct OutageLogTests {
    @Test("an outage logs its first failure, the same failure again once a minute with the count so far, another reason at once; a success says how long it lasted and starts afresh")
    func linesOfAnOutage() {
        var log = OutageLog()
        let start = ContinuousClock.now
        #expect(!log.isFailing)
        #expect(log.failed(reason: "connection refused", now: start) == .failed)
        #expect(log.isFailing)
        #expect(log.failed(reason: "connection refused", now: start + .seconds(10)) == nil)
        #expect(log.failed(reason: "connection refused", now: start + .milliseconds(59_999)) == nil)
        #expect(log.failed(reason: "connection refused", now: start + .seconds(60)) == .stillFailing(failures: 4, lasting: .seconds(60)))
        #expect(log.failed(reason: "connection refused", now: start + .seconds(70)) == nil)
        #expect(log.failed(reason: "the database system is starting up", now: start + .seconds(80)) == .failed)
        #expect(log.failed(reason: "the database system is starting up", now: start + .seconds(90)) == nil)
        #expect(log.failed(reason: "the database system is starting up", now: start + .seconds(140)) == .stillFailing(failures: 8, lasting: .seconds(140)))
        #expect(log.succeeded(now: start + .seconds(145)) == OutageLog.Ended(failures: 8, lasted: .seconds(145)))
        #expect(!log.isFailing)
        #expect(log.succeeded(now: start + .seconds(146)) == nil, "nothing failed since")
        #expect(log.failed(reason: "connection refused", now: start + .seconds(150)) == .failed, "a new outage is logged from its start")
    }

    @Test("an outage that no reconnect ends (statements failing on a live connection) says once that it is over, with its count; a success with nothing failed says nothing")
    func anOutageSaysItEnded() {
        let logs = LogCapture()
        var log = OutageLog()
        log.ended("database statements work again", to: logs.logger())
        log.log("database statement failed; trying again", error: "could not extend file: No space left on device", retryIn: .seconds(1), level: .error, to: logs.logger())
        log.ended("database statements work again", to: logs.logger())
        log.ended("database statements work again", to: logs.logger())
        #expect(logs.all.count == 2, "\(logs.all)")
        #expect(logs.all.first?.contains(" error    database statement failed; trying again error=\"could not extend file: No space left on device\" retry_in=1s") == true, "\(logs.all)")
        #expect(logs.all.last?.contains(" notice   database statements work again failures=1 failed_for=") == true, "\(logs.all)")
    }
}

@Suite struct ListenerStateMachineTests {
    @Test func connectListenWakeAndReconnect() {
        var random = SeededRandom()
        var machine = ListenerStateMachine()
        #expect(machine.start() == .connect)
        #expect(machine.connected() == .wakeDispatcherAndListen, "a new connection catches up on missed notifications")
        #expect(machine.state == .listening)
        #expect(machine.idle() == .listen)
        #expect(machine.notified() == .wakeDispatcherAndListen)
        guard case .waitAndReconnect(let first) = machine.failed(using: &random) else {
            Issue.record("a lost connection must back off")
            return
        }
        #expect(first <= .milliseconds(300))
        #expect(machine.delayElapsed() == .connect)
        let retry = machine.failed(using: &random)
        guard case .waitAndReconnect(let second) = retry else {
            Issue.record("a failed reconnect must back off")
            return
        }
        #expect(second > first)
        #expect(machine.delayElapsed() == .connect)
        #expect(machine.connected() == .wakeDispatcherAndListen)
        #expect(machine.stop() == .close)
        #expect(machine.notified() == .close)
        #expect(machine.failed(using: &random) == .close)
    }
}
