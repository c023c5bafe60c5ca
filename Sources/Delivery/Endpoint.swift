/// The endpoint a request goes to, `scheme://host:port` (lowercased, default port filled in):
/// the unit for per-endpoint concurrency limits, so that one slow or dead endpoint can only
/// take its share of the worker's requests in flight.
public enum Endpoint {
    /// The endpoint of an absolute `http(s)://` URL, or `nil` when it has none.
    public static func key(forURL url: String) -> String? {
        guard let schemeEnd = url.firstRange(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = url[schemeEnd.upperBound...]
        var authority = rest.prefix(while: { $0 != "/" && $0 != "?" && $0 != "#" })
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        guard !authority.isEmpty else { return nil }
        let hostPort = authority.lowercased()
        let hasPort: Bool
        if hostPort.hasPrefix("[") {
            hasPort = hostPort.firstRange(of: "]:") != nil
        } else {
            hasPort = hostPort.contains(":")
        }
        return "\(scheme)://\(hostPort)" + (hasPort ? "" : (scheme == "https" ? ":443" : ":80"))
    }
}
