import TestSupport
import Testing
import Worker

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
