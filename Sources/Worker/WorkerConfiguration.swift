public import Delivery
public import HTTPClient
public import Log
import Glibc

/// Everything `webhooky run` can be told; every field has a documented default.
public struct WorkerConfiguration: Sendable {
    /// libpq connection string or URI; empty means libpq's `PG*` environment variables.
    public var databaseURL: String
    /// This worker's name in `deliveries.claimed_by` and `attempts.worker`.
    /// Default: `<hostname>:<pid>`.
    public var workerID: String
    /// Deliveries claimed per query. Default 100.
    public var batchSize: Int = 100
    /// Requests in flight at once, over all endpoints. Default 256.
    public var maximumInFlight: Int = 256
    /// How long a claimed delivery belongs to this worker; when a worker dies its claims are
    /// taken over once the lease has run out. Must exceed the request timeout. Default 60 s.
    public var leaseDuration: Duration = .seconds(60)
    /// How often the worker looks for due deliveries when no NOTIFY woke it (the backstop for a
    /// missed notification, and how retries become due). Default 1 s.
    public var pollInterval: Duration = .seconds(1)
    /// Whether to LISTEN for wake-ups. Default `true`; `false` polls only (for connection
    /// poolers in transaction mode).
    public var listen: Bool = true
    /// How long a stopping worker waits for requests in flight before it cancels and releases
    /// them. Default 10 s.
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// When to retry and when to give up. Default ``RetryPolicy/standard``.
    public var retryPolicy: RetryPolicy = .standard
    /// HTTP limits and timeouts (connect 5 s, request 15 s, 16 connections per host, 4 KiB of
    /// response body kept).
    public var http: HTTPClient.Configuration = HTTPClient.Configuration()
    /// Where the worker logs. Default: stderr at `info`.
    public var logger: Logger = Logger()

    /// A configuration with defaults for everything but the database.
    public init(databaseURL: String, workerID: String? = nil) {
        self.databaseURL = databaseURL
        self.workerID = workerID ?? WorkerConfiguration.defaultWorkerID()
    }

    static func defaultWorkerID() -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0
            ? String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "worker"
        return "\(host):\(getpid())"
    }
}
