public import Templates

/// The largest request a webhook may render; a delivery whose rendered request is larger ends
/// `dead` with the reason (a huge payload value cannot make the worker send megabytes).
public struct RequestLimits: Sendable, Hashable {
    /// Bytes of the rendered URL. Default 8,192.
    public var maximumURLBytes: Int = 8192
    /// Bytes of the rendered body. Default 1 MiB.
    public var maximumBodyBytes: Int = 1_048_576
    /// Bytes of all the webhook's own header values together, rendered. Default 16,384.
    public var maximumHeaderBytes: Int = 16_384

    public init() {}

    /// 8 KiB of URL, 1 MiB of body, 16 KiB of custom headers.
    public static let standard = RequestLimits()

    /// Throws ``TemplateError/Code/requestTooLarge`` naming the part and the limit.
    public func check(_ request: RenderedRequest) throws(TemplateError) {
        let urlBytes = request.url.utf8.count
        if urlBytes > maximumURLBytes {
            throw TemplateError(.requestTooLarge, "the rendered URL is \(urlBytes) bytes; the limit is \(maximumURLBytes)")
        }
        let bodyBytes = request.body?.utf8.count ?? 0
        if bodyBytes > maximumBodyBytes {
            throw TemplateError(.requestTooLarge, "the rendered body is \(bodyBytes) bytes; the limit is \(maximumBodyBytes)")
        }
        let headerBytes = request.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        if headerBytes > maximumHeaderBytes {
            throw TemplateError(.requestTooLarge, "the rendered headers are \(headerBytes) bytes; the limit is \(maximumHeaderBytes)")
        }
    }
}
