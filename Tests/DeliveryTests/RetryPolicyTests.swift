import Delivery
import TestSupport
import Testing

@Suite struct RetryPolicyTests {
    @Test func standardScheduleMatchesItsDocumentation() {
        var random = SeededRandom()
        var policy = RetryPolicy.standard
        policy.jitter = 0
        let delays = (1...11).map { policy.delay(afterFailedAttempt: $0, using: &random) }
        let seconds: [Int64] = [5, 30, 120, 600, 1800, 3600, 7200, 14_400, 28_800, 43_200, 86_400]
        #expect(delays.count == seconds.count)
        for (delay, expected) in zip(delays, seconds) {
            #expect(delay.map { abs(($0 - .seconds(expected)) / .seconds(1)) < 0.001 } == true, "\(String(describing: delay)) vs \(expected)s")
        }
        #expect(policy.maximumAttempts == 12)
        #expect(policy.delay(afterFailedAttempt: 12, using: &random) == nil)
    }

    @Test func jitterStaysWithinTwentyPercent() {
        var random = SystemRandomNumberGenerator()
        let policy = RetryPolicy(delays: [.seconds(100)])
        var seen: Set<Int> = []
        for _ in 0..<1000 {
            let delay = policy.delay(afterFailedAttempt: 1, using: &random)!
            #expect(delay >= .seconds(80) && delay <= .seconds(120))
            seen.insert(Int(delay / .seconds(1)))
        }
        #expect(seen.count > 10, "delays must vary")
    }

    @Test func retryAfterWaitsAtLeastThatLongButIsCapped() {
        var random = SeededRandom()
        let policy = RetryPolicy(delays: [.seconds(5)], jitter: 0.2, maximumRetryAfter: .seconds(3600))
        #expect(policy.delay(afterFailedAttempt: 1, retryAfter: .seconds(120), using: &random) == .seconds(120))
        let jittered = policy.delay(afterFailedAttempt: 1, retryAfter: .seconds(1), using: &random)
        #expect(jittered.map { $0 >= .seconds(4) && $0 <= .seconds(6) } == true)
        #expect(policy.delay(afterFailedAttempt: 1, retryAfter: .seconds(999_999), using: &random) == .seconds(3600))
        #expect(policy.delay(afterFailedAttempt: 2, retryAfter: .seconds(1), using: &random) == nil)
    }

    @Test func retryAfterParsesSecondsAndHTTPDates() {
        let now = 1_445_412_400.0  // Wed, 21 Oct 2015 07:26:40 GMT
        #expect(RetryPolicy.parseRetryAfter("120", now: now) == .seconds(120))
        #expect(RetryPolicy.parseRetryAfter(" 7 ", now: now) == .seconds(7))
        #expect(RetryPolicy.parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now: now) == .seconds(80))
        #expect(RetryPolicy.parseRetryAfter("Wed, 21 Oct 2015 07:20:00 GMT", now: now) == nil)
        #expect(RetryPolicy.parseRetryAfter("soon", now: now) == nil)
        #expect(RetryPolicy.parseRetryAfter("-5", now: now) == nil)
    }

    @Test("Retry-After in the two obsolete HTTP date forms that RFC 9110 has recipients accept, RFC 850 and asctime (only IMF-fixdate was read, the others ignored)")
    func retryAfterParsesObsoleteDateForms() {
        let now = 1_445_412_400.0  // Wed, 21 Oct 2015 07:26:40 GMT
        #expect(RetryPolicy.parseRetryAfter("Wednesday, 21-Oct-15 07:28:00 GMT", now: now) == .seconds(80))
        #expect(RetryPolicy.parseRetryAfter("Wed Oct 21 07:28:00 2015", now: now) == .seconds(80))
        #expect(RetryPolicy.parseRetryAfter("Sun Nov  1 07:26:40 2015", now: now) == .seconds(11 * 86_400), "the day padded with a space")
        // A two-digit year more than 50 years ahead is the century before: 2094 would be, so 1994 (past: none).
        #expect(RetryPolicy.parseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now: now) == nil)
        #expect(RetryPolicy.parseRetryAfter("Friday, 31-Dec-65 23:59:59 GMT", now: now) == .seconds(366 * 86_400), "2065, capped at a year")
        for malformed in ["Wednesday, 21-Oct-2015 07:28:00 GMT", "Wednesday, 21-Oct-15 7:28:00 GMT", "Wed Oct 21 07:28:00 15",
                          "Wed Oct 21 07:28 2015", "Wed Foo 21 07:28:00 2015", "Wednesday 21-Oct-15 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 UTC"] {
            #expect(RetryPolicy.parseRetryAfter(malformed, now: now) == nil, "\(malformed)")
        }
    }

    @Test("whatever Retry-After an endpoint sends, the delay is finite: no overflow, no crash")
    func hostileRetryAfterIsBounded() {
        let now = 1_445_412_400.0
        let year = Duration.seconds(366 * 86_400)
        // A year beyond four digits overflowed the date arithmetic and trapped the worker.
        #expect(RetryPolicy.parseRetryAfter("Sun, 06 Nov 300000000 08:49:37 GMT", now: now) == nil)
        #expect(RetryPolicy.parseRetryAfter("Sun, 06 Nov 999999999999999999 08:49:37 GMT", now: now) == nil)
        #expect(RetryPolicy.parseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", now: now) == year)
        #expect(RetryPolicy.parseRetryAfter("9223372036854775807", now: now) == year)
        #expect(RetryPolicy.parseRetryAfter("99999999999999999999999", now: now) == nil)
        #expect(RetryPolicy.parseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", now: .nan) == nil)

        // Through the state machine: a retry at most maximumRetryAfter away.
        var random = SeededRandom()
        for header in ["Sun, 06 Nov 300000000 08:49:37 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "9223372036854775807"] {
            var machine = DeliveryStateMachine(attempt: 1, policy: .standard)
            let completion = machine.finish(.response(status: 503, retryAfter: header), now: now, random: &random)
            #expect(completion.state == .pending)
            #expect(completion.retryIn.map { $0 <= RetryPolicy.standard.maximumRetryAfter } == true)
        }
    }
}

@Suite struct DeliveryStateMachineTests {
    let policy = RetryPolicy(delays: [.seconds(10), .seconds(20)], jitter: 0)

    @Test func twoHundredsSucceed() {
        var random = SeededRandom()
        for status in [200, 201, 204, 299] {
            var machine = DeliveryStateMachine(attempt: 1, policy: policy)
            let completion = machine.finish(.response(status: status, retryAfter: nil), now: 0, random: &random)
            #expect(completion == .init(state: .succeeded, retryIn: nil, status: status, error: nil))
            #expect(machine.state == .succeeded)
        }
    }

    @Test func failuresRetryOnScheduleThenDie() {
        var random = SeededRandom()
        var first = DeliveryStateMachine(attempt: 1, policy: policy)
        #expect(first.finish(.response(status: 500, retryAfter: nil), now: 0, random: &random)
                == .init(state: .pending, retryIn: .seconds(10), status: 500, error: "HTTP 500"))
        #expect(first.state == .retrying(after: .seconds(10)))
        var second = DeliveryStateMachine(attempt: 2, policy: policy)
        #expect(second.finish(.transportFailure("Connection refused"), now: 0, random: &random)
                == .init(state: .pending, retryIn: .seconds(20), status: nil, error: "Connection refused"))
        var third = DeliveryStateMachine(attempt: 3, policy: policy)
        #expect(third.finish(.response(status: 404, retryAfter: nil), now: 0, random: &random)
                == .init(state: .dead, retryIn: nil, status: 404, error: "HTTP 404 (gave up after 3 attempts)"))
        #expect(third.state == .dead)
    }

    @Test("an attempt the worker cut short is due again at once, even on the last attempt of the schedule, and marked as not the endpoint's failure")
    func interruptedAttemptsAreDueAtOnce() {
        var random = SeededRandom()
        var last = DeliveryStateMachine(attempt: 3, policy: policy)
        #expect(last.finish(.interrupted("worker stopped"), now: 0, random: &random)
                == .init(state: .pending, retryIn: .zero, status: nil, error: "worker stopped", interrupted: true))
        #expect(last.state == .retrying(after: .zero))
    }

    @Test func redirectsAreFailuresThatSaySo() {
        var random = SeededRandom()
        var machine = DeliveryStateMachine(attempt: 1, policy: policy)
        #expect(machine.finish(.response(status: 302, retryAfter: nil), now: 0, random: &random).error == "HTTP 302: redirects are not followed")
        var following = DeliveryStateMachine(attempt: 1, policy: policy, followsRedirects: true)
        #expect(following.finish(.response(status: 302, retryAfter: nil), now: 0, random: &random).error
                == "HTTP 302: a redirect without a Location header, nothing to follow")
    }

    @Test func unsendableRequestsDieAtOnce() {
        var random = SeededRandom()
        var machine = DeliveryStateMachine(attempt: 1, policy: policy)
        #expect(machine.finish(.unsendable("bad URL"), now: 0, random: &random) == .init(state: .dead, retryIn: nil, status: nil, error: "bad URL"))
    }

    @Test func retryAfterOnAFailureIsHonoured() {
        var random = SeededRandom()
        var machine = DeliveryStateMachine(attempt: 1, policy: policy)
        #expect(machine.finish(.response(status: 503, retryAfter: "60"), now: 0, random: &random).retryIn == .seconds(60))
    }
}
