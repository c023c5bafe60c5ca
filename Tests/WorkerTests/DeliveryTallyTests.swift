import Delivery
import Foundation
import Log
import LoopbackReceiver
import TestSupport
import Testing
import Worker

@Suite struct DeliveryTallyTests {
    let start = ContinuousClock.now

    @Test("a summary is due once an interval has passed, with what was counted, and starts the next interval")
    func dueAfterTheInterval() {
        var tally = DeliveryTally(interval: .seconds(10), now: start)
        for _ in 0..<25 { tally.count(.succeeded) }
        tally.count(.pending)
        tally.count(.dead)
        tally.count(.pending)
        #expect(tally.take(now: start + .seconds(9)) == nil, "not due yet")
        let summary = tally.take(now: start + .seconds(10))
        #expect(summary == DeliveryTally.Summary(succeeded: 25, retrying: 2, dead: 1, over: .seconds(10)))
        #expect(summary?.perSecond == 3)  // 28 attempts in 10 s, rounded
        #expect(tally.succeeded == 0 && tally.retrying == 0 && tally.dead == 0)
        tally.count(.succeeded)
        #expect(tally.take(now: start + .seconds(19)) == nil, "the next interval starts at the summary")
        #expect(tally.take(now: start + .seconds(20))?.succeeded == 1)
    }

    @Test("an interval without attempts says nothing (an idle worker's log stays quiet)")
    func quietWhenIdle() {
        var tally = DeliveryTally(interval: .seconds(10), now: start)
        #expect(tally.take(now: start + .seconds(60)) == nil)
        tally.count(.succeeded)
        #expect(tally.take(now: start + .seconds(65)) == nil, "the idle minute started a new interval")
        #expect(tally.take(now: start + .seconds(70)) == DeliveryTally.Summary(succeeded: 1, retrying: 0, dead: 0, over: .seconds(10)))
    }

    @Test("the final summary (a stopping worker) is due at once, if anything was counted")
    func finalSummary() {
        var tally = DeliveryTally(interval: .seconds(10), now: start)
        #expect(tally.take(now: start + .milliseconds(1), final: true) == nil)
        tally.count(.dead)
        let summary = tally.take(now: start + .milliseconds(500), final: true)
        #expect(summary?.dead == 1)
        #expect(summary?.perSecond == 2)
    }

    @Test("at info a running worker sums its deliveries up: no line per success, a line per failed attempt")
    func workerLogsSummariesAtInfo() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver { request, _ in request.target == "/down" ? .status(503, body: "down") : .ok }
        try shop.addWebhook(url: receiver.baseURL + "/up")
        try shop.addWebhook(url: receiver.baseURL + "/down")
        let logs = LogCapture()
        var configuration = shop.workerConfiguration(retry: [.seconds(60)])
        configuration.logger = logs.logger(level: .info)
        configuration.logSummaryInterval = .milliseconds(300)
        let worker = RunningWorker(configuration)
        defer { worker.stop() }

        for credit in ["1", "2", "3"] { try shop.setCredit(credit) }
        #expect(receiver.waitForRequests(6).count == 6)
        #expect(logs.waitForLine { $0.contains(" deliveries succeeded=") })
        worker.stop()
        let lines = logs.all
        let summaries = lines.filter { $0.contains("info     deliveries succeeded=") }
        func total(_ key: String) -> Int {
            summaries.compactMap { line in
                line.split(separator: " ").first { $0.hasPrefix(key + "=") }.flatMap { Int($0.dropFirst(key.count + 1)) }
            }.reduce(0, +)
        }
        #expect(total("succeeded") == 3, "\(summaries)")
        #expect(total("retrying") == 3, "\(summaries)")
        #expect(total("dead") == 0)
        #expect(!lines.contains { $0.contains("delivery succeeded") }, "no line per success at info")
        #expect(lines.filter { $0.contains("delivery failed, will retry") }.count == 3)
    }

    @Test("at debug the line per successful delivery is back")
    func debugHasALinePerSuccess() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/up")
        let logs = LogCapture()
        let worker = RunningWorker(shop.workerConfiguration(logs: logs))  // LogCapture's default level: debug
        defer { worker.stop() }

        try shop.setCredit("5")
        #expect(receiver.waitForRequests(1).count == 1)
        #expect(logs.waitForLine { $0.contains("debug    delivery succeeded delivery=") && $0.contains(" status=200 ") })
    }
}
