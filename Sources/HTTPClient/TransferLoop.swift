import CCurl
import Glibc

/// The client's thread: adds queued requests to the multi handle, drives transfers and hands
/// finished ones to the completion handler in batches. Everything here runs on that thread.
final class TransferLoop {
    private let multi: MultiHandle
    private let configuration: HTTPClient.Configuration
    private let completion: HTTPClient.Completion
    /// Requests waiting for room, and how many run (see ``StartQueue``).
    private var queue: StartQueue
    /// Transfers in flight, by their easy handle.
    private var inFlight: [UnsafeMutableRawPointer: (easy: EasyHandle, transfer: Transfer)] = [:]
    /// Handles whose transfer ended, kept (with their connection cache entry) for the next requests.
    private var idleHandles: [EasyHandle] = []
    /// When each connection was left idle, for the look at a kept-alive one before it is reused.
    private let connections = ConnectionSockets()

    init(multi: MultiHandle, configuration: HTTPClient.Configuration, completion: @escaping HTTPClient.Completion) {
        self.multi = multi
        self.configuration = configuration
        self.completion = completion
        self.queue = StartQueue(totalLimit: configuration.maximumConcurrentRequests, endpointLimit: configuration.maximumRequestsPerEndpoint)
    }

    /// Runs until `take` reports stopping; `take` hands over newly queued requests, the tags of
    /// waiting requests to cancel, and whether to start nothing more.
    func run(take: () -> (requests: [HTTPRequest], cancelTags: Set<Int64>, startsNothing: Bool, stopping: Bool)) {
        var finished: [HTTPResult] = []
        while true {
            let (requests, cancelTags, startsNothing, stopping) = take()
            for request in requests { queue.enqueue(request) }
            if !cancelTags.isEmpty { cancelWaiting(tags: cancelTags, into: &finished) }
            if startsNothing { cancelWaiting(into: &finished) }
            if stopping {
                cancelAll(into: &finished)
                completeIfAny(&finished)
                return
            }
            startWaiting(into: &finished)
            var running: Int32 = 0
            curl_multi_perform(multi.pointer, &running)
            let ended = collectFinished(into: &finished)
            completeIfAny(&finished)
            // What ended may have made room for a waiting request.
            if ended > 0 && queue.waitingCount > 0 { continue }
            curl_multi_poll(multi.pointer, nil, 0, 1000, nil)
        }
    }

    private func completeIfAny(_ finished: inout [HTTPResult]) {
        guard !finished.isEmpty else { return }
        completion(finished)
        finished.removeAll(keepingCapacity: true)
    }

    private func startWaiting(into finished: inout [HTTPResult]) {
        while let request = queue.next() {
            guard let easy = idleHandles.popLast() ?? EasyHandle() else {
                queue.finished(request)
                finished.append(Transfer.failure(request, HTTPError(code: .other, message: "libcurl could not create a handle (out of memory)")))
                continue
            }
            start(Transfer(request: request, handle: easy, configuration: configuration, connections: connections), on: easy, into: &finished)
        }
    }

    /// Adds `transfer` to the multi handle; when it cannot start, its request ends with the reason.
    private func start(_ transfer: Transfer, on easy: EasyHandle, into finished: inout [HTTPResult]) {
        if let error = transfer.configure() {
            return end(transfer, on: easy, with: error, into: &finished)
        }
        let added = curl_multi_add_handle(multi.pointer, easy.pointer)
        guard added == CURLM_OK else {
            let message = "libcurl could not start the request: \(String(cString: curl_multi_strerror(added)))"
            return end(transfer, on: easy, with: HTTPError(code: .other, message: message), into: &finished)
        }
        inFlight[easy.pointer] = (easy, transfer)
    }

    /// Ends the request of `transfer`, which could not start, with `error`.
    private func end(_ transfer: Transfer, on easy: EasyHandle, with error: HTTPError, into finished: inout [HTTPResult]) {
        queue.finished(transfer.request)
        finished.append(transfer.failed(error))
        recycle(easy, transfer)
    }

    /// Returns how many requests ended.
    private func collectFinished(into finished: inout [HTTPResult]) -> Int {
        var ended = 0
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi.pointer, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
            let code = message.pointee.data.result
            guard let (easy, transfer) = inFlight.removeValue(forKey: handle) else {
                curl_multi_remove_handle(multi.pointer, handle)
                continue
            }
            // Its connection goes back to libcurl's cache, idle from now (asked before the handle
            // lets go of it).
            let connection = transfer.usedConnection
            curl_multi_remove_handle(multi.pointer, handle)
            if let connection { connections.idle(connection.key, socket: connection.socket, since: .now) }
            switch transfer.ending(code: code) {
            case .result(let result):
                queue.finished(transfer.request)
                finished.append(result)
                recycle(easy, transfer)
                ended += 1
                if case .failure(let error) = result.outcome, HTTPError.Code.noAnswer.contains(error.code), let endpoint = transfer.request.endpoint {
                    giveUpLine(of: endpoint, into: &finished)
                }
            case .redirect(let next, let chain):
                ended += goOn(next, continuing: chain, after: transfer, on: easy, into: &finished)
            case .again(let request, let chain):
                // Unsent so far: on a new connection.
                ended += goOn(request, continuing: chain, after: transfer, on: easy, freshConnection: true, into: &finished)
            }
        }
        return ended
    }

    /// Sends `request`, the next hop of `chain` (a redirect's, or the same hop again), at once on
    /// the handle `transfer` ended on, without queueing again: the request keeps its place among
    /// the running ones (of its endpoint too). Returns how many requests ended (1 when the hop
    /// could not start).
    private func goOn(_ request: HTTPRequest, continuing chain: RedirectChain, after transfer: Transfer, on easy: EasyHandle,
                      freshConnection: Bool = false, into finished: inout [HTTPResult]) -> Int {
        transfer.releaseResources()
        let before = finished.count
        start(Transfer(request: request, continuing: chain, handle: easy, configuration: configuration, connections: connections,
                       freshConnection: freshConnection), on: easy, into: &finished)
        return finished.count - before
    }

    /// The requests waiting in `endpoint`'s line end unsent (``HTTPError/Code/cancelled``): a
    /// request to it just got no answer, and each would otherwise wait its turn behind the
    /// endpoint's other running requests, then hang for a whole timeout too.
    private func giveUpLine(of endpoint: String, into finished: inout [HTTPResult]) {
        for request in queue.removeWaiting(of: endpoint) {
            finished.append(Transfer.failure(request, HTTPError(code: .cancelled, message: "not sent: a request to the same endpoint ahead of it got no answer")))
        }
    }

    /// The waiting requests tagged `tags` end unsent (``HTTPError/Code/cancelled``).
    private func cancelWaiting(tags: Set<Int64>, into finished: inout [HTTPResult]) {
        for request in queue.removeWaiting(where: { tags.contains($0.tag) }) {
            finished.append(Transfer.failure(request, HTTPError(code: .cancelled, message: "not sent: taken back before its turn")))
        }
    }

    private func cancelWaiting(into finished: inout [HTTPResult]) {
        for request in queue.removeAllWaiting() {
            finished.append(Transfer.failure(request, HTTPError(code: .cancelled, message: "not sent: the HTTP client is shutting down")))
        }
    }

    private func cancelAll(into finished: inout [HTTPResult]) {
        cancelWaiting(into: &finished)
        for (handle, (easy, transfer)) in inFlight {
            queue.finished(transfer.request)
            curl_multi_remove_handle(multi.pointer, handle)
            finished.append(transfer.interrupted())
            recycle(easy, transfer)
        }
        inFlight.removeAll()
    }

    /// Keeps a handle for the next request (which sets again every option a request may
    /// change); the connection it used stays in the multi handle's cache.
    private func recycle(_ easy: EasyHandle, _ transfer: Transfer) {
        transfer.releaseResources()
        idleHandles.append(easy)
    }
}
