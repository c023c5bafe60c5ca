/// When to try a failed delivery again, and when to give up. Pure: the random source is
/// passed in, so tests can fix it.
///
/// The default schedule (``standard``), each delay varied by up to ±20 % (jitter) so that
/// many deliveries failing together do not retry together:
///
/// | attempt | after the previous attempt | since the first attempt (about) |
/// |--------:|---------------------------:|--------------------------------:|
/// | 1       | —                          | 0                               |
/// | 2       | 5 s                        | 5 s                             |
/// | 3       | 30 s                       | 35 s                            |
/// | 4       | 2 min                      | 2.6 min                         |
/// | 5       | 10 min                     | 12.6 min                        |
/// | 6       | 30 min                     | 43 min                          |
/// | 7       | 1 h                        | 1.7 h                           |
/// | 8       | 2 h                        | 3.7 h                           |
/// | 9       | 4 h                        | 7.7 h                           |
/// | 10      | 8 h                        | 15.7 h                          |
/// | 11      | 12 h                       | 27.7 h                          |
/// | 12      | 24 h                       | 51.7 h                          |
///
/// After attempt 12 fails the delivery is `dead`. A `Retry-After` answer (seconds or an HTTP
/// date) makes the next attempt wait at least that long, up to ``maximumRetryAfter``.
public struct RetryPolicy: Sendable, Hashable {
    /// Delay before each retry: `delays[0]` after the first attempt, and so on.
    public var delays: [Duration]
    /// Each delay is multiplied by a random factor in `1 ± jitter`. Default 0.2.
    public var jitter: Double
    /// The longest wait a `Retry-After` header can impose. Default 24 h.
    public var maximumRetryAfter: Duration

    /// The default schedule: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h, 24 h.
    public static let standard = RetryPolicy(delays: [
        .seconds(5), .seconds(30), .seconds(120), .seconds(600), .seconds(1800), .seconds(3600),
        .seconds(7200), .seconds(14_400), .seconds(28_800), .seconds(43_200), .seconds(86_400),
    ])

    public init(delays: [Duration], jitter: Double = 0.2, maximumRetryAfter: Duration = .seconds(86_400)) {
        self.delays = delays
        self.jitter = jitter
        self.maximumRetryAfter = maximumRetryAfter
    }

    /// Attempts in all, the first included: `delays.count + 1`.
    public var maximumAttempts: Int { delays.count + 1 }

    /// The wait before the next attempt after attempt number `attempt` (from 1) failed, or
    /// `nil` when the schedule is exhausted and the delivery should be given up.
    ///
    /// - Parameters:
    ///   - retryAfter: How long the endpoint asked to wait, if it did; honoured up to
    ///     ``maximumRetryAfter`` and never shortened by jitter.
    ///   - random: The source of jitter.
    public func delay(afterFailedAttempt attempt: Int, retryAfter: Duration? = nil, using random: inout some RandomNumberGenerator) -> Duration? {
        guard attempt >= 1, attempt <= delays.count else { return nil }
        let base = delays[attempt - 1]
        let factor = jitter > 0 ? Double.random(in: (1 - jitter)...(1 + jitter), using: &random) : 1
        var delay = base * factor
        if let retryAfter { delay = max(delay, min(retryAfter, maximumRetryAfter)) }
        return delay
    }

    /// Parses a `Retry-After` value: a number of seconds (`120`) or an HTTP date relative to
    /// `now` (seconds since 1970) in any of the three forms RFC 9110 has recipients accept
    /// (`Wed, 21 Oct 2015 07:28:00 GMT`, `Wednesday, 21-Oct-15 07:28:00 GMT`, `Wed Oct 21
    /// 07:28:00 2015`). Returns `nil` for anything else or a date in the past. Whatever an endpoint
    /// sends, the result is finite and at most a year (``delay(afterFailedAttempt:retryAfter:using:)``
    /// caps it further at ``maximumRetryAfter``).
    public static func parseRetryAfter(_ value: String, now: Double) -> Duration? {
        let trimmed = value.trimmingSpaces()
        if let seconds = Int(trimmed), seconds >= 0 { return .seconds(min(seconds, longestRetryAfterSeconds)) }
        guard now.isFinite, let date = HTTPDate.parse(trimmed, now: now), date > now else { return nil }
        return .milliseconds(Int64(min(date - now, Double(longestRetryAfterSeconds)) * 1000))
    }

    /// A year: no `Retry-After` is taken for longer (an endpoint's answer must not overflow).
    static let longestRetryAfterSeconds = 366 * 86_400
}

extension String {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

/// HTTP date parsing without Foundation's date formatters: IMF-fixdate (`Sun, 06 Nov 1994
/// 08:49:37 GMT`), the form RFC 9110 requires senders to use, and the two obsolete forms it
/// requires recipients to accept, RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`).
enum HTTPDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since 1970, or `nil` when `text` is none of the three forms. `now` (seconds
    /// since 1970) places an RFC 850 date's two-digit year: in `now`'s century, or the one
    /// before when that would be more than 50 years after `now` (RFC 9110, 5.6.7).
    static func parse(_ text: String, now: Double) -> Double? {
        let parts = text.split(separator: " ")
        switch parts.count {
        case 6 where parts[5] == "GMT":  // IMF-fixdate
            // A four-digit year, as IMF-fixdate has: a larger one would overflow the arithmetic below.
            guard parts[3].count == 4, let year = Int(parts[3]) else { return nil }
            return seconds(year: year, month: parts[2], day: parts[1], clock: parts[4])
        case 4 where parts[3] == "GMT" && parts[0].hasSuffix(","):  // RFC 850
            let date = parts[1].split(separator: "-", omittingEmptySubsequences: false)
            guard date.count == 3, date[2].count == 2, let twoDigits = Int(date[2]), now.isFinite, abs(now) < 1e12 else { return nil }
            let thisYear = 1970 + Int((now / 86_400 / 365.2425).rounded(.down))
            var year = thisYear - thisYear % 100 + twoDigits
            if year > thisYear + 50 { year -= 100 }
            return seconds(year: year, month: date[1], day: date[0], clock: parts[2])
        case 5:  // asctime: the day padded with a space, which the split drops
            guard parts[0].count == 3, parts[4].count == 4, let year = Int(parts[4]) else { return nil }
            return seconds(year: year, month: parts[1], day: parts[2], clock: parts[3])
        default:
            return nil
        }
    }

    /// Seconds since 1970 of a civil date and `HH:MM:SS` time (UTC), or `nil` when out of range.
    private static func seconds(year: Int, month: Substring, day: Substring, clock: Substring) -> Double? {
        guard year >= 0, let monthIndex = months.firstIndex(of: String(month)), day.count <= 2, let day = Int(day) else { return nil }
        let time = clock.split(separator: ":", omittingEmptySubsequences: false)
        let fields = time.compactMap { $0.count == 2 ? Int($0) : nil }
        guard time.count == 3, fields.count == 3, (1...31).contains(day), (0...23).contains(fields[0]), (0...59).contains(fields[1]),
              (0...60).contains(fields[2]) else {
            return nil
        }
        return Double(daysSinceEpoch(year: year, month: monthIndex + 1, day: day) * 86_400 + fields[0] * 3600 + fields[1] * 60 + fields[2])
    }

    /// Days from 1970-01-01 to the given civil date (proleptic Gregorian calendar).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
