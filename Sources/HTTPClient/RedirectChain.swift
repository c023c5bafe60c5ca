import CCurl

/// The hops of one request so far, and what a redirect leads to: the next hop's request, or the
/// error that ends the chain. A value that sends nothing; the transfer loop acts on its answer.
///
/// The client follows redirects itself, one transfer per hop (libcurl's `CURLOPT_FOLLOWLOCATION`
/// is off), because libcurl would send every custom header to every hop. Here a hop to another
/// origin than the first URL's leaves out the headers that ``HTTPHeader/staysWithOrigin``, for
/// the rest of the chain. Everything else is what libcurl does with `CURLOPT_POSTREDIR` set for
/// 301 and 302: any 3xx with a `Location` is followed, resolved as libcurl resolves it; 303
/// turns every method but `GET` and `HEAD` into a `GET` without body; 301, 302, 307, 308 and
/// the other 3xx keep method and body (a webhook's POST keeps its message).
struct RedirectChain {
    /// What comes after a redirect.
    enum Next {
        /// The next hop: send this request.
        case follow(HTTPRequest)
        /// The chain ends with this error.
        case fail(HTTPError)
    }

    /// Wall-clock start of the first hop, in seconds since 1970.
    let startedAt: Double
    /// Monotonic start of the first hop: the request timeout and the duration count from here.
    let started: ContinuousClock.Instant
    /// Redirects followed so far.
    private(set) var followed = 0
    /// The first URL's origin (`scheme://host:port`), known from the first redirect on.
    private var origin: String?
    /// Whether a hop so far was `https`: from then on only `https` is followed.
    private var secure = false

    /// A chain whose first hop started at `startedAt` (wall clock) and `started` (monotonic).
    init(startedAt: Double, started: ContinuousClock.Instant) {
        self.startedAt = startedAt
        self.started = started
    }

    /// What follows the response `status` with the `Location` header `location` to `request`,
    /// the current hop: `nil` when the response is the result (the request follows no
    /// redirects, the status is not 3xx, or there is no `Location`).
    mutating func next(after request: HTTPRequest, status: Int, location: String?) -> Next? {
        guard request.maximumRedirects > 0, (300...399).contains(status), let location, !location.isEmpty else { return nil }
        guard followed < request.maximumRedirects else {
            return .fail(HTTPError(code: .tooManyRedirects, message: "Maximum (\(request.maximumRedirects)) redirects followed"))
        }
        guard let url = CurlURL(), url.set(request.url, flags: CurlURL.requestFlags), let from = url.parts(),
              url.set(location, flags: CurlURL.redirectFlags), let to = url.parts() else {
            return .fail(HTTPError(code: .redirectRefused, message: "The redirect target URL could not be parsed"))
        }
        if followed == 0 { origin = from.origin }
        secure = secure || from.scheme == "https"
        guard to.scheme == "https" || to.scheme == "http" else {
            return .fail(HTTPError(code: .redirectRefused, message: "refused to follow a redirect to a URL that is not http or https"))
        }
        guard !secure || to.scheme == "https" else {
            return .fail(HTTPError(code: .redirectRefused, message: "refused to follow a redirect from https to http"))
        }
        followed += 1
        var next = request
        next.url = to.url
        // A 303 says the request was handled and points at the result: that is fetched. A 301
        // or 302 keeps the POST and its body (libcurl's CURLOPT_POSTREDIR with 301 and 302):
        // RFC 9110 only allows the change to GET, and a webhook moved from http to https would
        // otherwise reach its new URL as a GET without its message, which the receiver may well
        // answer 200 to.
        if status == 303 && request.method != "GET" && request.method != "HEAD" {
            next.method = "GET"
            next.body = nil
            for index in next.headers.indices {
                if let value = next.headers[index].valueWithoutBody {
                    next.headers[index].value = value
                    next.headers[index].valueWithoutBody = nil
                }
            }
        }
        if to.origin == nil || to.origin != origin {
            next.headers.removeAll { $0.staysWithOrigin || RedirectChain.alwaysStaysWithOrigin($0.name) }
        }
        return .follow(next)
    }

    /// `Authorization` and `Cookie`, which never go to another origin (libcurl's rule too).
    static func alwaysStaysWithOrigin(_ name: String) -> Bool {
        let lowercased = name.lowercased()
        return lowercased == "authorization" || lowercased == "cookie"
    }
}

/// A libcurl URL handle (`curl_url`), freed in `deinit`: URLs are read exactly as libcurl
/// reads them when it connects, so that an origin compared here is the one connected to.
final class CurlURL {
    /// The flags libcurl parses `CURLOPT_URL` with (and the handle's `CURLOPT_PATH_AS_IS`).
    static let requestFlags = UInt32(CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS)
    /// The flags libcurl resolves a followed `Location` with, and any scheme (refused afterwards,
    /// with a reason, unless it is http or https).
    static let redirectFlags = UInt32(CURLU_URLENCODE | CURLU_ALLOW_SPACE | CURLU_PATH_AS_IS | CURLU_NON_SUPPORT_SCHEME)

    /// The parts of a URL that redirects are judged by.
    struct Parts {
        /// The whole URL, absolute.
        var url: String
        /// The scheme, lowercase.
        var scheme: String
        /// `scheme://host:port`, the host in lowercase ASCII, the port always given; `nil`
        /// for a URL without host (`file:///etc/passwd`).
        var origin: String?
        /// The host as written (an IPv6 address in brackets); `nil` for a URL without host.
        var host: String? = nil
    }

    private let handle: OpaquePointer

    /// A handle without a URL; `nil` when libcurl is out of memory.
    init?() {
        guard let handle = curl_url() else { return nil }
        self.handle = handle
    }

    deinit {
        curl_url_cleanup(handle)
    }

    /// Sets the URL to `text`; a relative one is resolved against the URL set before. False
    /// when `text` is not a URL.
    func set(_ text: String, flags: UInt32) -> Bool {
        curl_url_set(handle, CURLUPART_URL, text, flags) == CURLUE_OK
    }

    /// The current URL's parts; `nil` when there is none.
    func parts() -> Parts? {
        guard let url = get(CURLUPART_URL), let scheme = get(CURLUPART_SCHEME).map(CurlURL.asciiLowercase) else { return nil }
        guard let host = get(CURLUPART_HOST), let port = get(CURLUPART_PORT, flags: UInt32(CURLU_DEFAULT_PORT)) else {
            return Parts(url: url, scheme: scheme, origin: nil)
        }
        return Parts(url: url, scheme: scheme, origin: "\(scheme)://\(CurlURL.asciiLowercase(host)):\(port)", host: host)
    }

    private func get(_ part: CURLUPart, flags: UInt32 = 0) -> String? {
        var value: UnsafeMutablePointer<CChar>?
        guard curl_url_get(handle, part, &value, flags) == CURLUE_OK, let value else { return nil }
        defer { curl_free(value) }
        return String(cString: value)
    }

    /// `text` with A-Z lowercased and every other character kept: host names compare without
    /// regard to ASCII case only, so that two hosts that merely look alike count as two origins.
    private static func asciiLowercase(_ text: String) -> String {
        String(decoding: text.utf8.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
