import Drill
import Glibc
import TestSupport
import Testing

/// A small fault drill on every test run: events committed while the chaos receiver
/// misbehaves, the worker is SIGKILLed and PostgreSQL is restarted. Nothing may be lost.
@Suite(.timeLimit(.minutes(10))) struct DrillTests {
    @Test func smallFaultDrillLosesNothing() throws {
        var configuration = FaultDrill.Configuration(workerExecutable: try WorkerProcess.executable())
        configuration.events = 400
        configuration.webhooks = 4
        configuration.workerKills = 2
        configuration.postgresRestarts = 2
        configuration.emitDuration = .seconds(10)
        configuration.drainTimeout = .seconds(90)
        configuration.progress = { _ in }
        let report = try FaultDrill(configuration: configuration).run()
        #expect(report.lost == 0, "\(report.table)")
        #expect(report.eventsInDatabase >= report.events, "\(report.table)")
        #expect(report.succeeded + report.dead.reduce(0) { $0 + $1.count } == report.expected, "\(report.table)")
        #expect(report.succeeded > 0)
        #expect(access("/tmp/webhooky-drill-worker-\(getpid()).log", F_OK) != 0, "the drill's worker log is left behind")
    }
}

/// The drill's chaos schedule: when each fault falls due within the emitting time.
@Suite struct FaultScheduleTests {
    @Test func faultsAreSpreadOverTheEmittingTimeInOrder() {
        let schedule = FaultDrill.schedule(workerKills: 3, postgresRestarts: 2, over: .seconds(10))
        #expect(schedule.map(\.after) == [.seconds(1), .seconds(3), .seconds(5), .seconds(8), .seconds(9)])
        #expect(schedule.map(\.fault) == [.killWorker, .restartFast, .killWorker, .restartImmediate, .killWorker])
    }

    @Test func aDurationUnderASecondKeepsItsFraction() {
        let schedule = FaultDrill.schedule(workerKills: 1, postgresRestarts: 1, over: .milliseconds(500))
        #expect(schedule.map(\.after) == [.milliseconds(50), .milliseconds(150)])
        #expect(schedule.map(\.fault) == [.killWorker, .restartFast])
    }

    @Test func noFaultsWhenNoneAreAskedFor() {
        #expect(FaultDrill.schedule(workerKills: 0, postgresRestarts: 0, over: .seconds(10)).isEmpty)
    }
}
