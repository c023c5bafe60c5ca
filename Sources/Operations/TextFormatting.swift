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

    /// `text` cut to at most `limit` characters, ending in `…` when cut; line breaks become
    /// spaces so that one value stays on one line, and other control characters `?` (a name
    /// someone chose must not send escape sequences to the admin's terminal).
    public static func shortened(_ text: String, to limit: Int) -> String {
        let flat = printable(text)
        guard flat.count > limit else { return flat }
        return String(flat.prefix(max(0, limit - 1))) + "…"
    }

    /// `text` on one line and safe to print: line breaks and tabs become spaces, other control
    /// characters (C0, DEL, C1: terminal escape sequences start with them) become `?`.
    public static func printable(_ text: String) -> String {
        String(text.map { character -> Character in
            if character.isNewline || character == "\t" { return " " }
            let isControl = character.unicodeScalars.contains { $0.properties.generalCategory == .control }
            return isControl ? "?" : character
        })
    }

    /// `text` padded with spaces to `width` characters (on the right, or on the left when
    /// `right` is true, for numbers).
    public static func padded(_ text: String, to width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
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
