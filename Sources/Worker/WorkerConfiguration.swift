public import Delivery
public import HTTPClient
public import Log
import Glibc

/// Everything `webhooky run` can be told; every field has a documented default.
public struct WorkerConfiguration: Sendable {
    /// libpq connection string or URI; empty means libpq's `PG*` environment variables.
    public var databaseURL: String
    /// This worker's name in `deliveries.claimed_by`, `attempts.worker` and `webhooky.workers`;
    /// one per running worker (a worker whose id a live worker has refuses to start, see
    /// ``WorkerError/Code/workerIDInUse``). Default: `<hostname>:<pid>`.
    public var workerID: String
    /// The host name recorded in `webhooky.workers`.
    public var host: String = WorkerConfiguration.hostName()
    /// Deliveries claimed per query. Default 100.
    public var batchSize: Int = 100
    /// Requests in flight at once, over all endpoints. Default 256.
    public var maximumInFlight: Int = 256
    /// Requests in flight at once to one endpoint (`scheme://host:port`): a slow or dead
    /// endpoint can hold at most this many of ``maximumInFlight``; a new endpoint may have an
    /// eighth of it and earns the rest by answering, and one whose requests end without an
    /// answer is cut by half each time, down to 1 (`EndpointAllowance`). For an
    /// endpoint that has earned all of it and whose
    /// last 16 requests each ended within 50 ms, as many deliveries again wait in line in the HTTP client (never
    /// more than this many at once are sent), so the endpoint is not idle while the next
    /// deliveries are written; only while ``leaseDuration`` covers two request timeouts and 2 s.
    /// Default 64.
    public var maximumInFlightPerEndpoint: Int = 64
    /// How long new events wait for room when their endpoint is full before their deliveries
    /// are created `pending` in the webhook's queue (which costs the database a second write
    /// per delivery, but lets events of other webhooks behind them go first): events of other
    /// webhooks behind them wait as long (`webhooky run` takes at most 1 s). Default 20 ms.
    public var fanOutPatience: Duration = .milliseconds(20)
    /// When the worker stays awake, looking for new events every ``awakeCheckInterval`` instead
    /// of asking emitting transactions for a NOTIFY (which takes a database-wide lock at their
    /// commit): while it finds at least this many events per second, or enough that NOTIFYs
    /// would hold that lock 80 % of the time by the WAL flush it measures (see ``EventRate``).
    /// Default 2,500; 0 never (by either rule).
    public var awakeAboveEventsPerSecond: Double = 2_500
    /// How often an awake worker looks for new events. Default 1 ms.
    public var awakeCheckInterval: Duration = .milliseconds(1)
    /// How long outcomes wait to be written together: the first outcome of a batch waits up
    /// to this long for more (at most ``OutcomeRecorder/gatherLimit`` or ``maximumInFlight``
    /// outcomes; not while the worker stops), so that a steady stream of deliveries is recorded
    /// in a statement (and a commit) per few milliseconds instead of one per delivery. Sending
    /// does not wait for it. Default 5 ms; zero writes outcomes as soon as the dispatcher hands
    /// them over (it holds them up to 10 ms while other requests are in flight).
    public var outcomeGathering: Duration = .milliseconds(5)
    /// How long a claimed delivery belongs to this worker; when a worker dies its claims are
    /// taken over once the lease has run out. Must exceed the request timeout. Default 60 s.
    public var leaseDuration: Duration = .seconds(60)
    /// How often the worker looks for due deliveries when no NOTIFY woke it (the backstop for a
    /// missed notification, and how retries become due). Default 1 s.
    public var pollInterval: Duration = .seconds(1)
    /// Whether to LISTEN for wake-ups. Default `true`; `false` polls only (for connection
    /// poolers in transaction mode).
    public var listen: Bool = true
    /// How long a starting worker keeps trying a database that is unreachable, refuses
    /// connections for now (starting up, too many clients) or is read-only (a standby), before
    /// ``Worker/run()`` throws; `nil` tries until it connects or the worker is stopped. Retries
    /// follow ``Backoff`` (up to 10 s apart); the first failure is logged, then one line a
    /// minute (``OutageLog``). Default `nil`.
    public var startupWait: Duration? = nil
    /// How long a stopping worker waits for requests in flight before it cancels and releases
    /// them. Default 10 s.
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// When to retry and when to give up. Default ``RetryPolicy/standard``.
    public var retryPolicy: RetryPolicy = .standard
    /// The largest request a webhook may render (8 KiB URL, 1 MiB body, 16 KiB headers); a
    /// larger one ends the delivery `dead` with the reason.
    public var requestLimits: RequestLimits = .standard
    /// How long history is kept, pruned by the worker. Default ``RetentionPolicy/standard``;
    /// `nil` never prunes (prune by hand with `SELECT * FROM webhooky.prune()`).
    public var retention: RetentionPolicy? = .standard
    /// When a webhook that keeps failing is disabled. Default ``AutoDisablePolicy/standard``;
    /// `nil` never disables a webhook (an HTTP 410 Gone answer still does).
    public var autoDisable: AutoDisablePolicy? = .standard
    /// HTTP timeouts, address policy and the rest (connect 5 s, request 15 s, 4 KiB of response
    /// body kept). Its limits on requests are the worker's own: see ``httpClient``.
    public var http = HTTPClient.Configuration()
    /// Where the worker logs. Default: stderr at `info`, where successful deliveries are
    /// summed up in one line every ``logSummaryInterval`` (failed attempts get a line each);
    /// `debug` adds a line per successful delivery.
    public var logger: Logger = Logger()
    /// How often the log sums up the deliveries made (only when there were some). Default 10 s.
    public var logSummaryInterval: Duration = .seconds(10)

    /// What the worker's HTTP client is given: ``http`` with the worker's limits, whatever
    /// ``http`` says about them: as many requests at once as ``maximumInFlight``, and a line per
    /// endpoint of ``maximumInFlightPerEndpoint`` (which the lease argument of the endpoint line
    /// relies on), with no connection limit of libcurl's own per host (it would hold a redirect
    /// hop to a busy host without its timeout running).
    var httpClient: HTTPClient.Configuration {
        var client = http
        client.maximumConcurrentRequests = maximumInFlight
        client.maximumRequestsPerEndpoint = maximumInFlightPerEndpoint
        client.maximumConnectionsPerHost = 0
        return client
    }

    /// A configuration with defaults for everything but the database.
    public init(databaseURL: String, workerID: String? = nil) {
        self.databaseURL = databaseURL
        self.workerID = workerID ?? WorkerConfiguration.defaultWorkerID()
    }

    static func defaultWorkerID() -> String {
        "\(hostName()):\(getpid())"
    }

    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        return gethostname(&name, name.count) == 0
            ? String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "unknown"
    }
}

/// When Webhooky gives up on a webhook and disables it: after ``failures`` failed attempts in
/// a row that span at least ``period`` with no success in between. An HTTP 410 Gone answer
/// disables a webhook at once. Re-enabling it (`UPDATE webhooky.webhooks SET enabled = true`)
/// resumes delivery of everything still pending.
public struct AutoDisablePolicy: Sendable, Hashable {
    /// Failed attempts in a row. Default 10.
    public var failures: Int
    /// How long the webhook must have been failing. Default 5 days.
    public var period: Duration

    public init(failures: Int, period: Duration) {
        self.failures = failures
        self.period = period
    }

    /// 10 failed attempts in a row over at least 5 days.
    public static let standard = AutoDisablePolicy(failures: 10, period: .seconds(5 * 86_400))
}

/// How long finished deliveries (with their attempts and events) are kept. The worker deletes
/// older ones every ``interval``, in batches of ``batchSize`` rows, each its own short
/// transaction; several workers share the work.
public struct RetentionPolicy: Sendable, Hashable {
    /// Succeeded deliveries are deleted this long after they succeeded. Default 7 days.
    public var succeeded: Duration
    /// Dead deliveries are deleted this long after they died. Default 30 days.
    public var dead: Duration
    /// How often the worker prunes. Default 5 minutes.
    public var interval: Duration = .seconds(300)
    /// Deliveries deleted per transaction. Default 1,000.
    public var batchSize: Int = 1000

    public init(succeeded: Duration, dead: Duration) {
        self.succeeded = succeeded
        self.dead = dead
    }

    /// Succeeded kept 7 days, dead 30 days.
    public static let standard = RetentionPolicy(succeeded: .seconds(7 * 86_400), dead: .seconds(30 * 86_400))
}
