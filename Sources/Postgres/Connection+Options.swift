import CLibPQ
import Glibc

extension Connection {
    /// A connection option whose values libpq checks before it connects, and refuses every
    /// connection with when it holds another.
    struct CheckedOption: Sendable {
        /// The keyword, e.g. `sslmode`.
        let keyword: String
        /// The values libpq takes, in the order its documentation lists them; empty for a
        /// whole number.
        let values: [String]
        /// Whether libpq compares them without regard to case, and takes an empty value (the
        /// TLS versions: empty is no bound).
        var ignoresCaseAndTakesEmpty = false
    }

    /// The options libpq 15 refuses a bad value of before it connects (`connectOptions2`, and
    /// `connect_timeout` at the start of every connection), with the values it takes; the
    /// same through libpq 17. Other options are left to libpq: some are read only for a TCP
    /// connection (keepalives) or one host of several (port).
    static let checkedOptions: [CheckedOption] = [
        CheckedOption(keyword: "sslmode", values: ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
        CheckedOption(keyword: "gssencmode", values: ["disable", "prefer", "require"]),
        CheckedOption(keyword: "channel_binding", values: ["disable", "prefer", "require"]),
        CheckedOption(keyword: "target_session_attrs", values: ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"]),
        CheckedOption(keyword: "ssl_min_protocol_version", values: ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"], ignoresCaseAndTakesEmpty: true),
        CheckedOption(keyword: "ssl_max_protocol_version", values: ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"], ignoresCaseAndTakesEmpty: true),
        CheckedOption(keyword: "connect_timeout", values: []),
    ]

    /// Refuses a value of a ``checkedOptions`` option that libpq would refuse when connecting:
    /// from the connection string as `PQconninfoParse` read it (`options`), or else from
    /// libpq's environment variable for it (`PGSSLMODE`...), unless the string names a
    /// `service`, whose file may set it instead.
    ///
    /// The message names the option and the values libpq takes, and quotes the value (these
    /// options hold no secret).
    static func checkOptionValues(_ options: [String: String]) throws(PostgresError) {
        let defaults = options["service"] == nil ? environmentDefaults() : [:]
        for option in checkedOptions {
            let given = options[option.keyword]
            guard let value = given ?? defaults[option.keyword]?.value else { continue }
            guard !option.accepts(value) else { continue }
            let source = given != nil ? "" : defaults[option.keyword].map { " (from the environment variable \($0.variable))" } ?? ""
            let takes = option.values.isEmpty ? "a whole number of seconds"
                : "one of " + option.values.dropLast().joined(separator: ", ") + " or " + (option.values.last ?? "")
            let shown = value.count <= 40 && value.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "\"" }) ? "\"\(value)\"" : "\"…\""
            throw PostgresError(code: .connectionFailed,
                                message: "\(option.keyword) \(shown)\(source) is not a value libpq takes: it takes \(takes)")
        }
    }

    /// The values libpq's environment variables give the ``checkedOptions``, with each
    /// variable's name (`PQconndefaults`, which also reads `PGSERVICE`'s file).
    private static func environmentDefaults() -> [String: (value: String, variable: String)] {
        guard let defaults = PQconndefaults() else { return [:] }
        defer { PQconninfoFree(defaults) }
        var found: [String: (value: String, variable: String)] = [:]
        var index = 0
        while let keyword = defaults[index].keyword {
            if let value = defaults[index].val, let variable = defaults[index].envvar {
                let name = String(cString: variable)
                // Only what the environment set: a compiled-in default is always valid.
                if getenv(name) != nil { found[String(cString: keyword)] = (String(cString: value), name) }
            }
            index += 1
        }
        return found
    }
}

extension Connection.CheckedOption {
    /// Whether libpq takes `value`: one of ``values`` (compared as libpq does), or for a whole
    /// number what libpq's `parse_int_param` takes (white space around an optionally signed
    /// 32-bit integer).
    func accepts(_ value: String) -> Bool {
        if values.isEmpty {
            let spaces: Set<Character> = [" ", "\t", "\n", "\u{0B}", "\u{0C}", "\r"]
            let trimmed = String(value.drop(while: { spaces.contains($0) }).reversed().drop(while: { spaces.contains($0) }).reversed())
            return Int32(trimmed) != nil
        }
        if ignoresCaseAndTakesEmpty { return value.isEmpty || values.contains { $0.lowercased() == value.lowercased() } }
        return values.contains(value)
    }
}
