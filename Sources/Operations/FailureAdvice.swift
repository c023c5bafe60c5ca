/// What `webhooky doctor` says to do about a webhook whose attempts fail, from its last one:
/// the workers' address policy refused it (allow the network, or fix the URL), the endpoint
/// refused the request's credentials (401, 403: an API key or token, or the signing secret,
/// and whether a rotation's overlap ended just before the failures began), or else watch it
/// and fix the endpoint or the URL.
struct FailureAdvice: Sendable, Hashable {
    /// The webhook's id.
    var webhookID: String
    /// The last attempt's error as recorded, `nil` when it was answered with a status.
    var lastError: String?
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
