import Delivery
import Templates

/// Text of a webhook's body and headers that reads as a variable missing its closing `#`.
extension RequestTemplate {
    /// One `#name` written without its closing `#`, which goes out as written.
    struct UnclosedVariable: Sendable, Hashable {
        /// Where it is, in words: `the body`, `header "X-Customer"`.
        var place: String
        /// The name after the `#`, e.g. `customer.id`; `nil` when it is not to be shown: text
        /// of a secret header's value (see ``Redaction/isSecretHeader(_:)``) that is not a
        /// name the payload has, which may be part of a literal API key.
        var name: String?

        /// What `webhooky preview` and `doctor` say about it, e.g. `'#customer.id' in the body
        /// has no closing '#', so it is sent as written, not as a value (a variable missing its
        /// closing '#'? write #customer.id#)`.
        var sentence: String {
            guard let name else {
                return "\(place) has a '#name' without its closing '#' (not quoted: the header's value is secret), so it is sent as written, not as a value (a variable missing its closing '#'? write #name#)"
            }
            return "'#\(name)' in \(place) has no closing '#', so it is sent as written, not as a value (a variable missing its closing '#'? write #\(name)#)"
        }
    }

    /// The names written after a `#` in the body or a header value without a closing `#` that
    /// read as variables: names that `offered` holds (the payload's, the event's) or dotted ones
    /// (`#customer.id`), in order, the body's first. A literal such as `#fff`, `#top` or
    /// `issue #12` is none of them. The URL's are fragments, which preview notes apart. In a
    /// secret header's value (which preview masks) only a name the payload has is quoted.
    func unclosedVariables(offered: Set<String>) -> [UnclosedVariable] {
        func readsAsVariable(_ name: String) -> Bool { name.contains(".") || offered.contains(name) }
        let body = (body?.unclosedNames ?? []).filter(readsAsVariable).map { UnclosedVariable(place: "the body", name: $0) }
        let headers = headers.flatMap { header in
            let secret = Redaction.isSecretHeader(header.name)
            return header.unclosedNames.filter(readsAsVariable).map {
                UnclosedVariable(place: "header \"\(header.name)\"", name: !secret || offered.contains($0) ? $0 : nil)
            }
        }
        return body + headers
    }
}
