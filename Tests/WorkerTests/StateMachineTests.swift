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

    @Test("two reasons that take turns are logged once each, then once a minute between them; past 3 distinct reasons (as configured) a new one waits for the minute's line too")
    func reasonsThatTakeTurns() {
        var log = OutageLog()
        log.distinctReasons = 3
        let start = ContinuousClock.now
        #expect(log.failed(reason: "connection refused", now: start) == .failed)
        #expect(log.failed(reason: "the database system is starting up", now: start + .seconds(1)) == .failed)
        #expect(log.failed(reason: "connection refused", now: start + .seconds(2)) == nil, "logged before in this outage")
        #expect(log.failed(reason: "the database system is starting up", now: start + .seconds(3)) == nil)
        #expect(log.failed(reason: "connection refused", now: start + .seconds(61)) == .stillFailing(failures: 5, lasting: .seconds(61)))
        #expect(log.failed(reason: "too many clients already", now: start + .seconds(62)) == .failed, "a third reason")
        #expect(log.failed(reason: "no route to host", now: start + .seconds(63)) == nil, "a fourth waits for the minute")
        #expect(log.failed(reason: "no route to host", now: start + .seconds(122)) == .stillFailing(failures: 8, lasting: .seconds(122)))
    }

    @Test("a reason that leaves out the DETAIL: failures whose text differs only there make one line, which shows the first one's text")
    func aDetailThatChangesMakesNoNewLine() {
        let logs = LogCapture()
        var log = OutageLog()
        for pid in [4711, 4712, 4713] {
            log.log("database statement failed; trying again", error: "deadlock detected (SQLSTATE 40P01)\nDETAIL: Process \(pid) waits for ShareLock",
                    reason: "40P01 deadlock detected", retryIn: .seconds(1), level: .error, to: logs.logger())
        }
        #expect(logs.all.count == 1, "\(logs.all)")
        #expect(logs.all.first?.contains("Process 4711") == true, "\(logs.all)")
    }

    @Test("the line of a start that waits for the database hints at the connection string only for refusals that waiting does not mend by itself", arguments: [
        ("connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: FATAL:  database \"shop\" does not exist", true),
        ("connection to server at \"10.0.0.5\", port 5432 failed: FATAL:  role \"webhooky\" does not exist", true),
        ("connection to server at \"10.0.0.5\", port 5432 failed: FATAL:  password authentication failed for user \"webhooky\"", true),
        ("connection to server at \"10.0.0.5\", port 5432 failed: FATAL:  no pg_hba.conf entry for host \"10.0.0.9\", user \"webhooky\", database \"shop\", no encryption", true),
        ("connection to server at \"10.0.0.5\", port 5432 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?", false),
        ("could not translate host name \"db\" to address: Name or service not known", false),
        ("connection to server at \"10.0.0.5\", port 5432 failed: FATAL:  the database system is starting up", false),
    ])
    func waitingHint(message: String, hinted: Bool) {
        #expect((Worker.waitingHint(for: message) != nil) == hinted, "\(message)")
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
