/// What `webhooky doctor` says to do about a webhook whose attempts fail, from its last one:
/// the workers' address policy refused it (allow the network, or fix the URL), the endpoint
/// refused the request's credentials (401, 403: an API key or token, or the signing secret,
/// and whether a rotation's overlap ended just before the failures began), it answered slower
/// than `--request-timeout` (it may have done the work: each retry sends it again), or the
/// connection failed (by its code: timeout, refused, DNS, TLS); or else watch it and fix the
/// endpoint or the URL.
struct FailureAdvice: Sendable, Hashable {
    /// The webhook's id.
    var webhookID: String
    /// The last attempt's error as recorded, `nil` when it was answered with a status.
    var lastError: String?
    /// The last attempt's error code (`attempts.error_code`), `nil` when it got a status.
    var lastErrorCode: String?
    /// The last attempt's HTTP status, when it got one.
    var lastStatus: Int?
    /// Whether the webhook has a signing secret.
    var signed: Bool
    /// Seconds from the end of the last `webhooky.rotate_secret` overlap to the first of the
    /// failures in a row, when the overlap ended before they began; `nil` otherwise.
    var failingAfterOverlap: Double?

    /// How long after a rotation's overlap ended a run of failures still points at it. Default 1 day.
    static let overlapWindow: Double = 86_400

    /// One or two sentences, each ending with a full stop.
    var text: String {
        if lastError?.hasPrefix("refused to connect to ") == true {
            return "The workers refuse that address (a private or internal network): to reach it, start them with --allow-network CIDR (README, \"Security\"); otherwise fix the webhook's URL."
        }
        let watch = "watch it with webhooky tail --webhook \(webhookID)."
        switch lastErrorCode {
        // libcurl's words for the whole request's time ("Operation timed out after 15000
        // milliseconds with 0 bytes received"), not for the connection's.
        case "timeout" where lastError?.hasPrefix("Operation timed out") == true:
            return "The endpoint takes longer to answer than the workers wait (webhooky run --request-timeout, 15s by default): "
                + "it may have done the work all the same, and each retry sends the request again. Make it answer 2xx at once and do the work afterwards, "
                + "or start the workers with a longer --request-timeout; " + watch
        case "timeout" where lastError?.hasPrefix("Resolving timed out") == true:
            return "The host name did not resolve within the workers' --connect-timeout (5s by default): the workers' DNS server is slow or unreachable; " + watch
        case "timeout":
            return "No connection within the workers' --connect-timeout (5s by default): the host is down, or a firewall drops the packets; " + watch
        case "connect_failure":
            return "Nothing accepts connections there: the service is down, or the webhook's URL names the wrong host or port; " + watch
        case "dns_failure":
            return "The host name does not resolve: a typo in the webhook's URL, or the workers' DNS; " + watch
        case "tls_failure":
            return "The TLS handshake failed: the endpoint's certificate has expired, is self-signed or is for another name, or the port does not speak TLS; " + watch
        default: break
        }
        guard let status = lastStatus, status == 401 || status == 403 else {
            return "Watch it with webhooky tail --webhook \(webhookID); fix the endpoint or the webhook's URL."
        }
        var text = "The endpoint refuses the request (\(status)): an API key or token in the webhook's URL or headers that is wrong or expired"
            + (signed ? ", or a receiver that checks another signing secret than the webhook's" : "")
            + "; webhooky preview \(webhookID) shows the request (keys masked)."
        if signed, let gap = failingAfterOverlap, gap >= 0, gap <= Self.overlapWindow {
            text += " The failures began \(TextFormatting.duration(seconds: gap)) after the overlap of its last webhooky.rotate_secret ended, when the previous secret stopped signing: "
                + "the receiver probably still checks that one; give it the webhook's current secret."
        }
        return text
    }
}
