/// Hides secrets in what Webhooky shows people: URLs and header values of a webhook's request,
/// for `webhooky preview` and for logs. Pure: no I/O, no state.
///
/// | what | example | shown as |
/// |---|---|---|
/// | a query parameter named like a secret (see ``secretParameterNames``) | `?apikey=k3y&id=7` | `?apikey=***&id=7` |
/// | a password in the URL | `https://bob:pw@h/` | `https://bob:***@h/` |
/// | a user name alone (often a token) | `https://sk_4f2@h/` | `https://***@h/` |
/// | `Authorization` and headers whose name contains a ``secretHeaderWords`` word | `Bearer abc` | `Bearer ***` |
/// | such a header of one word | `abc` | `***` |
///
/// Everything else is kept exactly, so a redacted request still shows its shape.
public enum Redaction {
    /// What a hidden value is replaced by.
    public static let mask = "***"

    /// Words that make a URL query parameter secret: its name (percent-decoded, without regard
    /// to case) is one of them, or has one as a word (see ``words(of:)``): `key`, `token`,
    /// `apikey`, `secret`, `password`, `passwd`, `auth`, `signature`, `sig`, `credential`,
    /// `credentials` (so `api-key`, `client_secret`, `auth_token`, `access_key`, `accessToken`,
    /// `clientSecret` and `auth[token]` are hidden too; `monkey` and `tokenizer` are not).
    public static let secretParameterNames: Set<String> = [
        "key", "token", "apikey", "secret", "password", "passwd", "auth", "signature", "sig", "credential", "credentials",
    ]

    /// Words that make a header secret when its name contains one (without regard to case):
    /// `token`, `key`, `secret`, `password`, `passwd`, `credential`, `cookie`, `auth`, `signature`.
    /// `Authorization` and `Proxy-Authorization` are secret too.
    public static let secretHeaderWords = ["token", "key", "secret", "password", "passwd", "credential", "cookie", "auth", "signature"]

    /// `url` with the values of secret query parameters and any password in its user
    /// information (or the user name, when it comes alone) replaced by ``mask``. Parameters are
    /// split on `&`; a parameter without `=` has no value and is kept. The fragment (after `#`)
    /// is kept.
    ///
    /// - Parameter extraParameters: More parameter names to hide, besides
    ///   ``secretParameterNames`` (lowercase; default none).
    public static func url(_ url: String, extraParameters: Set<String> = []) -> String {
        var result = redactUserInformation(url)
        guard let question = result.firstIndex(of: "?") else { return result }
        let afterQuestion = result.index(after: question)
        let fragmentStart = result[afterQuestion...].firstIndex(of: "#") ?? result.endIndex
        let query = result[afterQuestion..<fragmentStart]
        let redacted = query.split(separator: "&", omittingEmptySubsequences: false).map { parameter -> String in
            guard let equals = parameter.firstIndex(of: "=") else { return String(parameter) }
            let name = parameter[..<equals]
            guard isSecretParameter(String(name)) || extraParameters.contains(percentDecoded(String(name)).lowercased()),
                  parameter.index(after: equals) < parameter.endIndex else { return String(parameter) }
            return name + "=" + mask
        }.joined(separator: "&")
        result.replaceSubrange(afterQuestion..<fragmentStart, with: redacted)
        return result
    }

    /// Whether a header called `name` carries a secret: `Authorization`, `Proxy-Authorization`,
    /// or a name containing one of ``secretHeaderWords`` (but not `webhook-signature`).
    public static func isSecretHeader(_ name: String) -> Bool {
        let lowered = name.lowercased()
        if lowered == "authorization" || lowered == "proxy-authorization" { return true }
        // Webhooky's own signature differs for every request and gives no secret away.
        if lowered == "webhook-signature" { return false }
        return secretHeaderWords.contains { lowered.contains($0) }
    }

    /// The value of header `name` as it may be shown: a secret header keeps only its first
    /// word when that is an authentication scheme (letters, digits, `-` and `_`, followed by
    /// more text: `Bearer ***`), and is ``mask`` otherwise (one word, or a first word such as
    /// a cookie's `session=abc;`); an empty value stays empty; other headers are kept as they are.
    public static func headerValue(name: String, value: String) -> String {
        guard isSecretHeader(name) else { return value }
        let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let first = words.first else { return value }
        let isScheme = first.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "-" || scalar == "_")
        }
        return words.count > 1 && isScheme ? first + " " + mask : mask
    }

    /// Whether a query parameter called `name` (possibly percent-encoded) carries a secret.
    public static func isSecretParameter(_ name: String) -> Bool {
        let decoded = percentDecoded(name)
        return words(of: decoded).contains { secretParameterNames.contains($0) }
    }

    /// The words of a parameter name, lowercase: the parts between characters that are not
    /// letters or digits, themselves split where a capital starts a word and between letters
    /// and digits, so that the camelCase names many APIs use count as the words they are made
    /// of (`accessToken`, `APIKey2`, `auth[token]`: `access token`, `api key 2`, `auth token`).
    static func words(of name: String) -> [String] {
        let characters = Array(name)
        var words: [String] = []
        var word = ""
        for (index, character) in characters.enumerated() {
            guard character.isLetter || character.isNumber else {
                if !word.isEmpty { words.append(word.lowercased()) }
                word = ""
                continue
            }
            if let previous = word.last {
                let next = index + 1 < characters.count ? characters[index + 1] : nil
                let startsWord = (character.isUppercase && (previous.isLowercase || (previous.isUppercase && next?.isLowercase == true)))
                    || character.isNumber != previous.isNumber
                if startsWord {
                    words.append(word.lowercased())
                    word = ""
                }
            }
            word.append(character)
        }
        if !word.isEmpty { words.append(word.lowercased()) }
        return words
    }

    /// `https://user:password@host/...` with the password replaced by ``mask``; a user name
    /// without a password (`https://TOKEN@host/`, how many APIs take a key) is replaced whole.
    static func redactUserInformation(_ url: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://") else { return url }
        let authorityStart = schemeEnd.upperBound
        let authorityEnd = url[authorityStart...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? url.endIndex
        let authority = url[authorityStart..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return url }
        var result = url
        if let colon = authority[..<at].firstIndex(of: ":") {
            result.replaceSubrange(result.index(after: colon)..<at, with: mask)
        } else if at > authorityStart {
            result.replaceSubrange(authorityStart..<at, with: mask)
        }
        return result
    }

    /// `text` with `%XX` sequences decoded (invalid sequences are kept as written).
    static func percentDecoded(_ text: String) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let high = hexValue(iterator[iterator.startIndex]), let low = hexValue(iterator[iterator.startIndex + 1]) {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
