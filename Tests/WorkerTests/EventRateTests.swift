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
        let end = EventRateTests.stream(&rate, events: 50, every: .milliseconds(1), count: 100, from: .now)
        #expect(!rate.isAwake(now: end))
    }
}
