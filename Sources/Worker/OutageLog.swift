import Log

/// Which of a connection's failed retries are worth a log line while the database stays down.
///
/// Each of the worker's connections retries with ``Backoff``, every 10 s once at its cap: a line
/// per retry would be six a minute per connection for as long as an outage lasts. This logs
/// the first failure, a failure for a reason not yet logged in this outage (at most
/// ``distinctReasons``, default 8: two reasons that take turns, a refused connection and a
/// server starting up, are logged once each), and then one line every ``repeatEvery`` (default
/// 60 s) that says how many retries failed and for how long; and, when a retry succeeds, that the
/// outage ended, with the same counts. Pure: the caller passes the time;
/// ``log(_:error:reason:retryIn:level:to:)`` writes the lines.
struct OutageLog: Sendable {
    /// How long failures for reasons already logged stay unlogged after the last line. Default 60 s.
    var repeatEvery: Duration = .seconds(60)
    /// How many reasons of one outage are logged as they first come; later new ones wait for
    /// the line every ``repeatEvery``, so that a reason with a changing text cannot flood the
    /// log. Default 8.
    var distinctReasons = 8

    private var since: ContinuousClock.Instant?
    private var failures = 0
    private var loggedReasons: Set<String> = []
    private var loggedAt: ContinuousClock.Instant?

    /// Whether failures came since the last success.
    var isFailing: Bool { since != nil }

    /// What a failure is worth.
    enum Line: Equatable, Sendable {
        /// The first failure, or one for a reason not yet logged in this outage.
        case failed
        /// A reason logged before (or one past ``OutageLog/distinctReasons``),
        /// ``OutageLog/repeatEvery`` after the last line: `failures` in a row over `lasting` so far.
        case stillFailing(failures: Int, lasting: Duration)
    }

    /// How an outage ended: the failures in a row before the success, and how long since the first.
    struct Ended: Equatable, Sendable {
        var failures: Int
        var lasted: Duration
    }

    /// Records a failure with its `reason` (the error's message, without details that change
    /// from one failure to the next) at `now`; returns the line to log, or nil for none.
    mutating func failed(reason: String, now: ContinuousClock.Instant) -> Line? {
        failures += 1
        let start = since ?? now
        since = start
        if let loggedAt, loggedReasons.contains(reason) || loggedReasons.count >= distinctReasons {
            guard now - loggedAt >= repeatEvery else { return nil }
            self.loggedAt = now
            return .stillFailing(failures: failures, lasting: now - start)
        }
        loggedReasons.insert(reason)
        loggedAt = now
        return .failed
    }

    /// Records a success at `now` (read only after a failure); returns how the outage ended,
    /// or nil when nothing had failed.
    mutating func succeeded(now: @autoclosure () -> ContinuousClock.Instant = .now) -> Ended? {
        guard let since else { return nil }
        let ended = Ended(failures: failures, lasted: now() - since)
        self = OutageLog(repeatEvery: repeatEvery, distinctReasons: distinctReasons)
        return ended
    }
}

extension OutageLog {
    /// Records a failure and writes `message` at `level` (default warning) with the error and
    /// when the next retry is, if ``failed(reason:now:)`` says it is worth a line; a repeated
    /// failure's line adds `failures=` (in a row) and `failing_for=`. `reason` (default: `error`)
    /// is what tells failures apart: give the message without the DETAIL when `error` has one
    /// (a lock's or a process's number changes from one failure to the next).
    mutating func log(_ message: String, error: String, reason: String? = nil, retryIn: Duration, level: Logger.Level = .warning, to logger: Logger) {
        switch failed(reason: reason ?? error, now: .now) {
        case .failed?:
            logger.log(level, message, ["error": error, "retry_in": retryIn.shortDescription])
        case .stillFailing(let failures, let lasting)?:
            logger.log(level, message, ["error": error, "retry_in": retryIn.shortDescription,
                                        "failures": failures, "failing_for": lasting.shortDescription])
        case nil:
            break
        }
    }

    /// Records a success; when failures came before it, writes `message` as a notice with
    /// `failures=` and `failed_for=` (for an outage that no reconnect ends: statements that
    /// failed on a live connection, a pruning that failed).
    mutating func ended(_ message: String, to logger: Logger) {
        guard isFailing else { return }
        recovered(logger).notice(message)
    }

    /// Records a success; returns `logger` with `failures=` and `failed_for=` added when
    /// failures came before it (for the line that says the connection is back), else `logger`.
    mutating func recovered(_ logger: Logger) -> Logger {
        guard let ended = succeeded() else { return logger }
        return logger.with("failures", ended.failures).with("failed_for", ended.lasted.shortDescription)
    }
}
