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

    /// Parses a `Retry-After` value: a number of seconds (`120`) or an HTTP date
    /// (`Wed, 21 Oct 2015 07:28:00 GMT`, a four-digit year) relative to `now` (seconds since
    /// 1970). Returns `nil` for anything else or a date in the past. Whatever an endpoint
    /// sends, the result is finite and at most a year (``delay(afterFailedAttempt:retryAfter:using:)``
    /// caps it further at ``maximumRetryAfter``).
    public static func parseRetryAfter(_ value: String, now: Double) -> Duration? {
        let trimmed = value.trimmingSpaces()
        if let seconds = Int(trimmed), seconds >= 0 { return .seconds(min(seconds, longestRetryAfterSeconds)) }
        guard let date = HTTPDate.parse(trimmed), now.isFinite, date > now else { return nil }
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

/// IMF-fixdate parsing (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires senders
/// to use, without Foundation's date formatters.
enum HTTPDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since 1970, or `nil` when `text` is not an IMF-fixdate.
    static func parse(_ text: String) -> Double? {
        let parts = text.split(separator: " ")
        // A four-digit year, as IMF-fixdate has: a larger one would overflow the arithmetic below.
        guard parts.count == 6, parts[5] == "GMT", let day = Int(parts[1]), let month = months.firstIndex(of: String(parts[2])),
              parts[3].count == 4, let year = Int(parts[3]), year >= 0 else { return nil }
        let clock = parts[4].split(separator: ":").compactMap { Int($0) }
        guard clock.count == 3, (1...31).contains(day), (0...23).contains(clock[0]), (0...59).contains(clock[1]), (0...60).contains(clock[2]) else {
            return nil
        }
        return Double(daysSinceEpoch(year: year, month: month + 1, day: day) * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2])
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
