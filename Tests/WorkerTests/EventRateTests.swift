import Testing
@testable import Worker

@Suite struct EventRateTests {
    /// `count` looks, `interval` apart, each finding `events`; returns the time of the last.
    static func stream(_ rate: inout EventRate, events: Int, every interval: Duration, count: Int, from start: ContinuousClock.Instant) -> ContinuousClock.Instant {
        var now = start
        for _ in 0..<count {
            now += interval
            rate.found(events, now: now)
        }
        return now
    }

    @Test("3,000 events per second (3 per millisecond) keep the worker awake; the estimate is the rate")
    func fastStreamKeepsAwake() {
        var rate = EventRate()
        let end = EventRateTests.stream(&rate, events: 3, every: .milliseconds(1), count: 1_000, from: .now)
        #expect(rate.isAwake(now: end))
        #expect(abs(rate.estimate(now: end) - 3_000) < 100, "\(rate.estimate(now: end))")
    }

    @Test("2,000 events per second, one at a time: NOTIFY wakes the worker (the lowest latency)")
    func slowerStreamSleeps() {
        var rate = EventRate()
        let end = EventRateTests.stream(&rate, events: 1, every: .microseconds(500), count: 2_000, from: .now)
        #expect(!rate.isAwake(now: end))
        #expect(abs(rate.estimate(now: end) - 2_000) < 100, "\(rate.estimate(now: end))")
    }

    @Test("when the events stop, empty looks decay the rate and the worker asks for NOTIFY again within tens of milliseconds")
    func stopsBeingAwake() {
        var rate = EventRate()
        var now = EventRateTests.stream(&rate, events: 5, every: .milliseconds(1), count: 500, from: .now)
        #expect(rate.isAwake(now: now))
        now = EventRateTests.stream(&rate, events: 0, every: .milliseconds(1), count: 60, from: now)  // 5,000/s * e^-0.6 = 2,744/s
        #expect(rate.isAwake(now: now))
        now = EventRateTests.stream(&rate, events: 0, every: .milliseconds(1), count: 20, from: now)  // 5,000/s * e^-0.8 = 2,247/s
        #expect(!rate.isAwake(now: now))
        #expect(!rate.isAwake(now: now + .seconds(10)), "also without a look: the estimate decays with time")
    }

    @Test("one large transaction (500 events at once) wakes the worker for a moment only")
    func oneBurst() {
        var rate = EventRate()
        let start = ContinuousClock.now
        rate.found(500, now: start)  // 5,000/s right after
        #expect(rate.isAwake(now: start))
        #expect(!rate.isAwake(now: start + .milliseconds(100)))
    }

    @Test("a threshold of 0 never keeps the worker awake")
    func zeroNever() {
        var rate = EventRate(awakeAbove: 0)
        for _ in 0..<10 {
            rate.looked(found: 1, taking: .microseconds(900))
            rate.looked(found: 0, taking: .microseconds(100))
        }
        let end = EventRateTests.stream(&rate, events: 50, every: .milliseconds(1), count: 100, from: .now)
        #expect(!rate.isAwake(now: end))
    }

    /// `rate` after fan-outs that wrote one event in `writing` and found none in `finding`.
    static func timed(writing: Duration, finding: Duration?) -> EventRate {
        var rate = EventRate()
        for _ in 0..<20 {
            rate.looked(found: 1, taking: writing)
            if let finding { rate.looked(found: 0, taking: finding) }
            rate.looked(found: 40, taking: .milliseconds(5))  // a large fan-out times its writes too: not counted
        }
        return rate
    }

    @Test("a slow WAL flush (0.7 ms: NOTIFYs let through about 1,400 commits a second) keeps the worker awake at 1,300 events a second, where NOTIFYs would hold the commit lock 91 % of the time")
    func slowFlushKeepsAwake() throws {
        var rate = EventRateTests.timed(writing: .microseconds(850), finding: .microseconds(150))
        #expect(abs(try #require(rate.walFlush) - 0.0007) < 0.00001)
        let end = EventRateTests.stream(&rate, events: 13, every: .milliseconds(10), count: 100, from: .now)
        #expect(abs(rate.estimate(now: end) - 1_300) < 100)
        #expect(rate.isAwake(now: end))
    }

    @Test("a quick WAL flush (0.3 ms) leaves 2,000 events a second to NOTIFY (the lock held 60 % of the time), and an idle worker asks for NOTIFY whatever the flush")
    func quickFlushLeavesNotify() throws {
        var rate = EventRateTests.timed(writing: .microseconds(450), finding: .microseconds(150))
        #expect(abs(try #require(rate.walFlush) - 0.0003) < 0.00001)
        let end = EventRateTests.stream(&rate, events: 1, every: .microseconds(500), count: 2_000, from: .now)
        #expect(!rate.isAwake(now: end))
        var slow = EventRateTests.timed(writing: .milliseconds(5), finding: .microseconds(150))
        #expect(!slow.isAwake(now: .now), "no events: nothing to hold the lock")
        let later = EventRateTests.stream(&slow, events: 1, every: .milliseconds(10), count: 100, from: .now)
        #expect(!slow.isAwake(now: later), "100 events a second with a 4.85 ms flush: the lock held 49 % of the time")
    }

    @Test("until a fan-out that found nothing is timed, the whole of one that wrote counts as the flush (longer: awake sooner)")
    func flushWithoutAnEmptyLook() throws {
        let rate = EventRateTests.timed(writing: .microseconds(600), finding: nil)
        #expect(abs(try #require(rate.walFlush) - 0.0006) < 0.00001)
        #expect(EventRate().walFlush == nil)
    }
}
