/// libpq's messages as ``Connection`` passes them on: without anything that may be a password.
extension Connection {
    /// libpq's message about a connection string it cannot parse, with any quoted part that may
    /// be a value shown as `"…"`.
    static func describeSyntaxError(_ detail: String) -> String {
        // These quote a keyword, which is never a secret: a misspelt one is the usual mistake.
        for prefix in ["invalid connection option \"", "invalid URI query parameter: \""] where detail.hasPrefix(prefix) {
            let name = detail.dropFirst(prefix.count).prefix(while: { $0 != "\"" })
            if (1...40).contains(name.count), name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
                return "\(prefix)\(name)\" (a misspelt keyword? the list: https://www.postgresql.org/docs/15/libpq-connect.html#LIBPQ-PARAMKEYWORDS)"
            }
        }
        return redactQuoted(detail)
    }

    /// libpq's message about a connection that could not be made, with quoted text shown as
    /// `"…"` where it may hold a piece of the password.
    ///
    /// In a `postgresql://` URL, libpq ends the user information at the first `@` and looks
    /// for it only before the first `/`. A password holding an `@` or a `/` that is not
    /// percent-encoded is therefore split: what follows its `@` becomes the host, or what
    /// precedes its `/` the port (and the rest the database name), and libpq quotes those
    /// back: `could not translate host name "ssw0rd@db.internal" to address`, `invalid
    /// integer value "pa" for connection option "port"`. Such a URL's password is taken as
    /// everything between the first `:` and the last `@`; a quoted text that contains one of
    /// its parts between `@` and `/` is hidden, and the message says how to write the URL.
    /// A piece may be split again at a `:` (what follows it in the host part becomes the port:
    /// `p@ss:w0rd@db` gives the port `w0rd@db`), and may itself be as short as one letter, so
    /// every quoted text is hidden but a connection option's name (`"port"`), which libpq's
    /// messages quote from their own text.
    /// Any other message is returned as it is (libpq never quotes a password it parsed).
    static func describeConnectionFailure(_ message: String, conninfo: String) -> String {
        guard let pieces = passwordPiecesOfSplitURL(conninfo) else { return message }
        let hidden = redactQuoted(message) { quoted in
            !optionNames.contains(quoted) || pieces.contains { $0.split(separator: ":").contains { $0 == quoted } }
        }
        guard hidden != message else { return message }
        return hidden + " (in a postgresql:// URL a password's @ is written %40 and its / %2F)"
    }

    /// The parts between `@` and `/` of the password of a `postgresql://` or `postgres://`
    /// URL whose user information libpq cannot find where it is (see
    /// ``describeConnectionFailure(_:conninfo:)``); `nil` for any other connection string.
    static func passwordPiecesOfSplitURL(_ conninfo: String) -> [Substring]? {
        guard let scheme = ["postgresql://", "postgres://"].first(where: { conninfo.hasPrefix($0) }) else { return nil }
        let rest = conninfo.dropFirst(scheme.count)
        guard let lastAt = rest.lastIndex(of: "@") else { return nil }
        let userInformation = rest[..<lastAt]
        guard userInformation.contains(where: { $0 == "@" || $0 == "/" }),
              let colon = userInformation.firstIndex(of: ":") else { return nil }
        let pieces = userInformation[userInformation.index(after: colon)...].split(whereSeparator: { $0 == "@" || $0 == "/" })
        return pieces.isEmpty ? nil : pieces
    }

    /// The message of a connection the server closed: the reason the server gave before it
    /// did (a FATAL message, in `libpqMessage` when a statement was running, else in
    /// `fatalNotice`): `terminating connection due to administrator command (the server closed
    /// the connection)` for `pg_terminate_backend`, not libpq's own words, which blame a crash
    /// ("server closed the connection unexpectedly. This probably means the server terminated
    /// abnormally"). Without a reason, `libpqMessage` as it is.
    package static func describeLoss(_ libpqMessage: String, fatalNotice: String?) -> String {
        guard let reason = fatalReason(in: libpqMessage) ?? fatalNotice else { return libpqMessage }
        return reason + " (the server closed the connection)"
    }

    /// The text of `message`'s first line when it is a FATAL message, without its `FATAL:`
    /// (libpq puts the server's message first, then its own words on the loss; a later line
    /// may be anyone's text, such as a detail). A server whose `lc_messages` translates
    /// `FATAL` gives nil: libpq's words stand.
    static func fatalReason(in message: String) -> String? {
        guard let line = message.split(separator: "\n").first, line.hasPrefix("FATAL:") else { return nil }
        let reason = line.dropFirst("FATAL:".count).drop { $0 == " " }
        return reason.isEmpty ? nil : String(reason)
    }

    /// `text` with everything between double quotes replaced by `…`, but a quoted `=`.
    static func redactQuoted(_ text: String) -> String {
        redactQuoted(text) { $0 != "=" }
    }

    /// `text` with the quoted parts for which `hide` holds replaced by `…`; an unclosed quote
    /// hides what follows it when `hide` holds for that.
    static func redactQuoted(_ text: String, hide: (String) -> Bool) -> String {
        var result = ""
        var quoted: String? = nil
        for character in text {
            if character == "\"" {
                if let inside = quoted {
                    result += (hide(inside) ? "…" : inside) + "\""
                    quoted = nil
                } else {
                    result.append(character)
                    quoted = ""
                }
            } else if quoted != nil {
                quoted?.append(character)
            } else {
                result.append(character)
            }
        }
        // An unclosed quote: what followed it stays hidden.
        if let inside = quoted { result += hide(inside) ? "…" : inside }
        return result
    }
}
