import Delivery
import Glibc
import HTTPClient
import Log
import Postgres
import Templates

/// The worker's main loop, on its own thread: claims due deliveries, renders them, hands them
/// to the HTTP client, and records what came back. It owns its database connection; the
/// listener and the HTTP client reach it only through the ``DispatcherInbox``.
final class Dispatcher {
    /// A delivery handed to the HTTP client and not yet recorded.
    private struct InFlight {
        var machine: DeliveryStateMachine
        let webhookID: Int64
        let endpoint: String
    }

    private let configuration: WorkerConfiguration
    private let inbox: DispatcherInbox
    private let http: HTTPClient
    private let logger: Logger
    private var connection: Connection?
    private var webhooks = WebhookCache()
    private var inFlight: [Int64: InFlight] = [:]
    /// Outcomes not yet written (kept while the database is unreachable).
    private var unrecorded: [AttemptRecord] = []
    /// Deliveries to give back unsent (cancelled at shutdown).
    private var unreleased: [Int64] = []
    /// Deliveries to give back for a moment because their endpoint was at its limit.
    private var deferred: [Int64] = []
    /// Requests in flight per endpoint and per webhook.
    private var endpointLoad: [String: Int] = [:]
    private var webhookLoad: [Int64: Int] = [:]
    private var wantsClaim = true
    private var nextPoll: ContinuousClock.Instant = .now
    private var nextReap: ContinuousClock.Instant = .now
    private var reconnectAt: ContinuousClock.Instant = .now
    private var backoff = Backoff()
    private var random = SystemRandomNumberGenerator()
    private var stopDeadline: ContinuousClock.Instant?

    init(configuration: WorkerConfiguration, connection: Connection, inbox: DispatcherInbox, http: HTTPClient) {
        self.configuration = configuration
        self.connection = connection
        self.inbox = inbox
        self.http = http
        self.logger = configuration.logger
    }

    /// Runs until a stop is requested and everything held is recorded or released.
    func run() {
        while true {
            let news = inbox.take()
            if news.notified { wantsClaim = true }
            if news.stopRequested && stopDeadline == nil { beginStopping() }
            for result in news.results { finish(result) }

            if connection == nil { reconnectIfDue() }
            if connection != nil { writeOutcomes() }
            if connection != nil && stopDeadline == nil { claimAndSend() }
            if connection != nil && stopDeadline == nil && ContinuousClock.now >= nextReap { reapExpiredLeases() }

            if let stopDeadline {
                if inFlight.isEmpty && (connection == nil ? ContinuousClock.now >= stopDeadline : unrecorded.isEmpty && unreleased.isEmpty && deferred.isEmpty) {
                    break
                }
                if ContinuousClock.now >= stopDeadline && !inFlight.isEmpty {
                    logger.warning("shutdown grace period over; cancelling requests in flight", ["in_flight": inFlight.count])
                    http.shutdown()
                }
            }
            if canClaim && wantsClaim && connection != nil && stopDeadline == nil { continue }
            inbox.wait(timeout: sleepTime())
        }
        if !unrecorded.isEmpty || !unreleased.isEmpty {
            logger.error("stopped without the database: outcomes not recorded; their leases will expire and they will be sent again", [
                "unrecorded": unrecorded.count, "unreleased": unreleased.count,
            ])
        }
    }

    // MARK: Claiming

    private var capacity: Int { configuration.maximumInFlight - inFlight.count }

    /// Claim only when a worthwhile batch fits, so that a busy worker claims in batches.
    private var canClaim: Bool {
        capacity >= max(1, min(configuration.batchSize, configuration.maximumInFlight) / 2) || (inFlight.isEmpty && capacity > 0)
    }

    private func claimAndSend() {
        let now = ContinuousClock.now
        if now >= nextPoll { wantsClaim = true }
        guard wantsClaim, canClaim, let connection else { return }
        let limit = min(configuration.batchSize, capacity)
        let claimed: [ClaimedDelivery]
        do {
            claimed = try DeliveryStore.claim(
                connection, limit: limit, workerID: configuration.workerID, lease: configuration.leaseDuration,
                room: configuration.maximumInFlightPerEndpoint, rooms: busyWebhookRooms()
            )
            try webhooks.load(for: claimed, from: connection)
        } catch {
            lostDatabase(error)
            return
        }
        nextPoll = now + configuration.pollInterval
        wantsClaim = claimed.count == limit
        send(claimed)
    }

    /// The share each webhook with requests in flight may still take: the per-endpoint limit
    /// minus what its endpoint (or the webhook itself) already has in flight.
    private func busyWebhookRooms() -> [Int64: Int] {
        let limit = configuration.maximumInFlightPerEndpoint
        var rooms: [Int64: Int] = [:]
        for (id, load) in webhookLoad where load > 0 {
            rooms[id] = max(0, limit - load)
        }
        guard !endpointLoad.isEmpty else { return rooms }
        for (id, endpoint) in webhooks.fixedEndpoints() {
            guard let load = endpointLoad[endpoint], load > 0 else { continue }
            rooms[id] = min(rooms[id] ?? limit, max(0, limit - load))
        }
        return rooms
    }

    private func send(_ claimed: [ClaimedDelivery]) {
        guard !claimed.isEmpty else { return }
        var requests: [HTTPRequest] = []
        requests.reserveCapacity(claimed.count)
        let timestamp = Int(wallClock())
        for delivery in claimed {
            var machine = DeliveryStateMachine(attempt: delivery.attempt, policy: configuration.retryPolicy)
            do {
                let webhook = try webhooks.webhook(for: delivery).get()
                let payload = try JSONParser.parse(delivery.payload)
                let rendered = try webhook.request(payload: payload, messageID: Webhook.messageID(deliveryID: delivery.id), timestamp: timestamp)
                let endpoint = Endpoint.key(forURL: rendered.url) ?? rendered.url
                if endpointLoad[endpoint, default: 0] >= configuration.maximumInFlightPerEndpoint {
                    // Another webhook on the same endpoint filled it meanwhile: try again shortly.
                    deferred.append(delivery.id)
                    continue
                }
                endpointLoad[endpoint, default: 0] += 1
                webhookLoad[delivery.webhookID, default: 0] += 1
                requests.append(HTTPRequest(
                    tag: delivery.id,
                    method: rendered.method,
                    url: rendered.url,
                    headers: rendered.headers.map { HTTPHeader(name: $0.name, value: $0.value) },
                    body: rendered.body.map { Array($0.utf8) }
                ))
                inFlight[delivery.id] = InFlight(machine: machine, webhookID: delivery.webhookID, endpoint: endpoint)
            } catch {
                // The request cannot be made: the delivery ends dead with the reason.
                let completion = machine.finish(.unsendable("cannot build the request: \(error)"), now: wallClock(), random: &random)
                complete(deliveryID: delivery.id, webhookID: delivery.webhookID, attempt: delivery.attempt, completion: completion,
                         startedAt: wallClock(), duration: .zero, responseBody: nil)
            }
        }
        http.send(requests)
    }

    // MARK: Outcomes

    private func finish(_ result: HTTPResult) {
        guard var entry = inFlight.removeValue(forKey: result.tag) else { return }
        endpointLoad[entry.endpoint, default: 1] -= 1
        if endpointLoad[entry.endpoint] == 0 { endpointLoad[entry.endpoint] = nil }
        webhookLoad[entry.webhookID, default: 1] -= 1
        if webhookLoad[entry.webhookID] == 0 { webhookLoad[entry.webhookID] = nil }
        let attemptResult: DeliveryStateMachine.AttemptResult
        var responseBody: String? = nil
        switch result.outcome {
        case .success(let response):
            attemptResult = .response(status: response.status, retryAfter: response.retryAfter)
            responseBody = String(decoding: response.body, as: UTF8.self)
        case .failure(let error) where error.code == .cancelled:
            unreleased.append(result.tag)
            return
        case .failure(let error) where error.code == .invalidURL:
            attemptResult = .unsendable(error.message)
        case .failure(let error):
            attemptResult = .transportFailure(error.message)
        }
        let completion = entry.machine.finish(attemptResult, now: wallClock(), random: &random)
        complete(deliveryID: result.tag, webhookID: entry.webhookID, attempt: entry.machine.attempt, completion: completion,
                 startedAt: result.startedAt, duration: result.duration, responseBody: responseBody)
    }

    private func complete(deliveryID: Int64, webhookID: Int64, attempt: Int, completion: DeliveryStateMachine.Completion,
                          startedAt: Double, duration: Duration, responseBody: String?) {
        let milliseconds = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        unrecorded.append(AttemptRecord(
            deliveryID: deliveryID, webhookID: webhookID, attempt: attempt, completion: completion,
            startedAt: startedAt, durationMilliseconds: milliseconds, responseBody: responseBody
        ))
        let rounded = (milliseconds * 10).rounded() / 10
        switch completion.state {
        case .succeeded:
            logger.info("delivery succeeded", ["delivery": deliveryID, "webhook": webhookID, "attempt": attempt, "status": completion.status ?? 0, "duration_ms": rounded])
        case .pending:
            let retry = completion.retryIn.map(\.shortDescription) ?? "?"
            logger.warning("delivery failed, will retry", ["delivery": deliveryID, "webhook": webhookID, "attempt": attempt, "status": completion.status.map(String.init) ?? "none",
                                                           "error": completion.error ?? "", "retry_in": retry, "duration_ms": rounded])
        default:
            logger.error("delivery dead", ["delivery": deliveryID, "webhook": webhookID, "attempt": attempt, "status": completion.status.map(String.init) ?? "none",
                                           "error": completion.error ?? "", "duration_ms": rounded])
        }
    }

    private func writeOutcomes() {
        guard let connection, !unrecorded.isEmpty || !unreleased.isEmpty || !deferred.isEmpty else { return }
        do {
            if !unrecorded.isEmpty {
                let result = try DeliveryStore.record(connection, unrecorded, workerID: configuration.workerID, autoDisable: configuration.autoDisable)
                unrecorded.removeAll(keepingCapacity: true)
                for (id, reason) in result.disabled {
                    logger.error("webhook disabled; re-enable it with UPDATE webhooky.webhooks SET enabled = true", ["webhook": id, "reason": reason])
                }
            }
            if !unreleased.isEmpty {
                try DeliveryStore.release(connection, unreleased, workerID: configuration.workerID)
                unreleased.removeAll()
            }
            if !deferred.isEmpty {
                try DeliveryStore.release(connection, deferred, workerID: configuration.workerID, dueIn: .seconds(1))
                deferred.removeAll()
            }
        } catch {
            lostDatabase(error)
        }
    }

    private func reapExpiredLeases() {
        guard let connection else { return }
        do {
            let reaped = try DeliveryStore.reapExpiredLeases(connection)
            if reaped > 0 {
                logger.warning("took back deliveries whose lease expired", ["count": reaped])
                wantsClaim = true
            }
        } catch {
            lostDatabase(error)
        }
        nextReap = .now + max(.seconds(1), configuration.leaseDuration / 4)
    }

    // MARK: Database connection

    private func lostDatabase(_ error: any Error) {
        if let error = error as? PostgresError, !error.isTransient, connection?.isConnected == true {
            // A statement failed but the connection is fine: report it and carry on.
            logger.error("database statement failed", ["error": error.description])
            return
        }
        logger.error("lost the database connection; will reconnect", ["error": "\(error)"])
        connection = nil
        reconnectAt = .now + backoff.nextDelay(using: &random)
    }

    private func reconnectIfDue() {
        guard ContinuousClock.now >= reconnectAt else { return }
        do {
            connection = try Connection(conninfo: configuration.databaseURL, applicationName: "webhooky worker")
            connection?.onNotice { [logger] in logger.notice("database notice", ["message": $0]) }
            backoff.reset()
            wantsClaim = true
            nextReap = .now
            logger.notice("reconnected to the database")
        } catch {
            let delay = backoff.nextDelay(using: &random)
            reconnectAt = .now + delay
            logger.warning("cannot reach the database; retrying", ["error": error.message, "retry_in": delay.shortDescription])
        }
    }

    // MARK: Timing and shutdown

    private func beginStopping() {
        stopDeadline = .now + configuration.shutdownGracePeriod
        logger.notice("stopping: finishing requests in flight", ["in_flight": inFlight.count])
    }

    private func sleepTime() -> Duration {
        let now = ContinuousClock.now
        var wake = nextPoll
        if connection != nil { wake = min(wake, nextReap) } else { wake = reconnectAt }
        if let stopDeadline { wake = min(wake, stopDeadline) }
        return max(.milliseconds(1), min(wake - now, .seconds(1)))
    }

    private func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
