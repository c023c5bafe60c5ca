import Glibc

/// Small text helpers for the admin commands' output: durations, clock times, shortening and
/// padding.
public enum TextFormatting {
    /// A duration in seconds, short and rounded for people: `850ms`, `12s`, `5m 3s`, `2h 5m`,
    /// `3d 4h`. Negative values count as zero.
    public static func duration(seconds: Double) -> String {
        let seconds = max(0, seconds)
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        let whole = Int(seconds.rounded(.down))
        if whole < 60 { return "\(whole)s" }
        let (days, hours, minutes, rest) = (whole / 86_400, whole % 86_400 / 3600, whole % 3600 / 60, whole % 60)
        if days > 0 { return hours > 0 ? "\(days)d \(hours)h" : "\(days)d" }
        if hours > 0 { return minutes > 0 ? "\(hours)h \(minutes)m" : "\(hours)h" }
        return rest > 0 ? "\(minutes)m \(rest)s" : "\(minutes)m"
    }

    /// A request's duration in milliseconds: `3 ms`, `12.5 ms` (under 100 ms), `850 ms`, `1.2 s`.
    public static func milliseconds(_ value: Double) -> String {
        if value >= 1000 { return formatted(value / 1000, decimals: 1) + " s" }
        if value < 100 { return formatted(value, decimals: 1) + " ms" }
        return "\(Int(value.rounded())) ms"
    }

    /// `value` with `decimals` digits after the point (no trailing `.0` for whole numbers when
    /// `decimals` is 1 and the value is 10 or more).
    public static func formatted(_ value: Double, decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        if decimals == 0 || (rounded == rounded.rounded() && rounded >= 10) { return String(Int(rounded)) }
        let whole = Int(rounded.rounded(.towardZero))
        let fraction = Int(((abs(rounded) - Double(abs(whole))) * scale).rounded())
        let digits = String(fraction)
        return "\(rounded < 0 && whole == 0 ? "-" : "")\(whole)." + String(repeating: "0", count: max(0, decimals - digits.count)) + digits
    }

    /// A count with thousands separated by commas: `12,345`.
    public static func count(_ value: Int) -> String {
        let digits = String(abs(value))
        var result = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { result += "," }
            result.append(digit)
        }
        return value < 0 ? "-" + result : result
    }

    /// An error as status, tail and doctor show it: its code in brackets, then its message
    /// (`[timeout] Operation timed out ...`); either alone when the other is missing.
    public static func coded(_ message: String?, code: String?) -> String {
        [code.map { "[\($0)]" }, message].compactMap { $0 }.joined(separator: " ")
    }

    /// `text` cut to at most `limit` columns of a terminal (see ``width(_:)``), ending in `…`
    /// when cut; line breaks become spaces so that one value stays on one line, and other
    /// control characters `?` (a name someone chose must not send escape sequences to the
    /// admin's terminal).
    public static func shortened(_ text: String, to limit: Int) -> String {
        let flat = printable(text)
        guard width(flat) > limit else { return flat }
        var result = ""
        var used = 0
        for character in flat {
            let columns = width(character)
            guard used + columns <= limit - 1 else { break }
            result.append(character)
            used += columns
        }
        return result + "…"
    }

    /// How many columns of a terminal `text` takes: 2 for each wide character (CJK, Hangul,
    /// fullwidth forms, emoji), 0 for marks and other characters that print nothing of their
    /// own, 1 for the rest. `count` counts characters, so a table of Japanese or emoji names
    /// padded by it would lose its columns.
    public static func width(_ text: String) -> Int {
        text.reduce(0) { $0 + width($1) }
    }

    /// The columns one character (a grapheme cluster) takes; see ``width(_:)``.
    static func width(_ character: Character) -> Int {
        let scalars = character.unicodeScalars
        guard let first = scalars.first else { return 0 }
        // An emoji shown as one (U+FE0F asks for that) is wide, whatever follows it.
        if first.properties.isEmojiPresentation || (scalars.count > 1 && scalars.contains("\u{FE0F}") && first.properties.isEmoji) {
            return 2
        }
        switch first.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format, .control: return first.value == 0x00AD ? 1 : 0
        default: break
        }
        return isWide(first.value) ? 2 : 1
    }

    /// East Asian Wide and Fullwidth code points (Unicode's EastAsianWidth.txt, W and F, in
    /// the ranges that matter for text).
    private static func isWide(_ value: UInt32) -> Bool {
        switch value {
        case 0x1100...0x115F, 0x231A...0x231B, 0x2329...0x232A, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF,
             0x4E00...0x9FFF, 0xA000...0xA4CF, 0xA960...0xA97F, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE10...0xFE19,
             0xFE30...0xFE6F, 0xFF00...0xFF60, 0xFFE0...0xFFE6, 0x1F300...0x1F64F, 0x1F900...0x1F9FF,
             0x20000...0x2FFFD, 0x30000...0x3FFFD:
            return true
        default:
            return false
        }
    }

    /// `text` on one line and safe to print: line breaks and tabs become spaces, other control
    /// characters (C0, DEL, C1: terminal escape sequences start with them; NEL, U+0085, too,
    /// though Unicode counts it as a line break) become `?`.
    public static func printable(_ text: String) -> String {
        String(text.map { character -> Character in
            if (character.isNewline && character != "\u{85}") || character == "\t" { return " " }
            let isControl = character.unicodeScalars.contains { $0.properties.generalCategory == .control }
            return isControl ? "?" : character
        })
    }

    /// `text` as an SQL string literal to paste into psql: `'customer.credit_changed'`, a
    /// quote in it doubled.
    public static func sqlLiteral(_ text: String) -> String {
        "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") + "'"
    }

    /// Whether `scalar` is DEL or a C1 control character (U+007F to U+009F): JSON strings may
    /// hold them as they are, and some terminals take U+009B as the start of an escape sequence.
    public static func isDELOrC1(_ scalar: Unicode.Scalar) -> Bool {
        (0x7F...0x9F).contains(scalar.value)
    }

    /// `text` with DEL and C1 control characters as `?` and nothing else changed (a tab stays a
    /// tab): for a header value, whose other control characters the templates already refuse.
    public static func markingDELAndC1(_ text: String) -> String {
        replacingDELAndC1(text) { _ in "?" }
    }

    /// JSON text with DEL and C1 control characters written as `\u` escapes (`\u009b`): the
    /// same JSON value, safe to print. Such characters can only stand inside a JSON string, where
    /// the escape means the character itself.
    public static func escapingDELAndC1(inJSON json: String) -> String {
        replacingDELAndC1(json) { "\\u00" + String($0.value, radix: 16) }
    }

    /// `text` with each DEL or C1 control character replaced by `replacement(character)`.
    private static func replacingDELAndC1(_ text: String, by replacement: (Unicode.Scalar) -> String) -> String {
        guard text.unicodeScalars.contains(where: isDELOrC1) else { return text }
        var shown = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if isDELOrC1(scalar) { shown.append(contentsOf: replacement(scalar).unicodeScalars) } else { shown.append(scalar) }
        }
        return String(shown)
    }

    /// `text` padded with spaces to `width` columns of a terminal (on the right, or on the
    /// left when `right` is true, for numbers).
    public static func padded(_ text: String, to width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - TextFormatting.width(text)))
        return right ? padding + text : text + padding
    }

    /// The local time of `epochSeconds` (seconds since 1970) as `HH:MM:SS.mmm`, preceded by
    /// the date `YYYY-MM-DD ` when that is not the date of `today` (also seconds since 1970).
    public static func clockTime(_ epochSeconds: Double, today: Double) -> String {
        let parts = localParts(epochSeconds)
        let now = localParts(today)
        let millis = Int(((epochSeconds - epochSeconds.rounded(.down)) * 1000).rounded(.down))
        var text = two(parts.tm_hour) + ":" + two(parts.tm_min) + ":" + two(parts.tm_sec) + "." + three(millis)
        if parts.tm_year != now.tm_year || parts.tm_yday != now.tm_yday {
            text = "\(parts.tm_year + 1900)-" + two(parts.tm_mon + 1) + "-" + two(parts.tm_mday) + " " + text
        }
        return text
    }

    /// The current wall-clock time in seconds since 1970.
    public static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    private static func localParts(_ epochSeconds: Double) -> tm {
        var seconds = time_t(epochSeconds.rounded(.down))
        var parts = tm()
        localtime_r(&seconds, &parts)
        return parts
    }

    private static func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    private static func three(_ value: Int) -> String { value < 10 ? "00\(value)" : value < 100 ? "0\(value)" : "\(value)" }
}
