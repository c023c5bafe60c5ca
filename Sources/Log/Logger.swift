import Glibc
import Synchronization

/// A small structured logger: one line per event on stderr,
/// `2026-11-29T11:40:00.123Z info  delivery succeeded delivery=12 status=200`.
///
/// Values are written as given, so callers must pass only what may be shown: never a signing
/// secret, a password or a URL that was not redacted (see `Redaction` in the Delivery module).
public struct Logger: Sendable {
    /// Severity, from most to least verbose.
    public enum Level: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
        case trace, debug, info, notice, warning, error, critical

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

        public var description: String {
            switch self {
            case .trace: "trace"
            case .debug: "debug"
            case .info: "info"
            case .notice: "notice"
            case .warning: "warning"
            case .error: "error"
            case .critical: "critical"
            }
        }

        /// Parses `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`.
        public init?(name: String) {
            guard let level = Level.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
            self = level
        }
    }

    /// Where finished lines go. Default: stderr.
    public typealias Sink = @Sendable (String) -> Void

    /// Lines below this level are dropped. Default `.info`.
    public var level: Level
    /// Metadata added to every line of this logger, e.g. `worker=host-1234`.
    public var metadata: [(key: String, value: String)]
    private let sink: Sink
    /// Writes finished lines, each ending in a line break, at once: one `write(2)` on stderr,
    /// else the sink per line.
    private let writeText: @Sendable (String) -> Void

    /// Creates a logger writing to `sink` (stderr by default) at `level` (`.info` by default).
    public init(level: Level = .info, sink: Sink? = nil) {
        self.level = level
        self.metadata = []
        if let sink {
            self.sink = sink
            self.writeText = { text in text.split(separator: "\n").forEach { sink(String($0)) } }
        } else {
            self.sink = { Logger.writeStandardError($0 + "\n") }
            self.writeText = { Logger.writeStandardError($0) }
        }
    }

    private init(level: Level, metadata: [(key: String, value: String)], sink: @escaping Sink, writeText: @escaping @Sendable (String) -> Void) {
        self.level = level
        self.metadata = metadata
        self.sink = sink
        self.writeText = writeText
    }

    /// The same logger (level, metadata, destination), but its lines wait in the returned
    /// buffer until ``LogBuffer/flush()``, which writes them together (one `write(2)` on
    /// stderr instead of one per line). For a thread that logs in bursts and flushes before
    /// it waits, such as the worker's dispatcher with its line per delivery.
    public func buffered() -> (logger: Logger, buffer: LogBuffer) {
        let buffer = LogBuffer(writeText: writeText)
        return (Logger(level: level, metadata: metadata, sink: { buffer.append($0) }, writeText: { buffer.append(text: $0) }), buffer)
    }

    /// A logger that adds `key=value` to every line.
    public func with(_ key: String, _ value: some CustomStringConvertible) -> Logger {
        var copy = self
        copy.metadata.append((key, value.description))
        return copy
    }

    /// Writes one line if `level` is enabled. `metadata` pairs are appended as `key=value`.
    /// Neither the message nor the metadata is evaluated when the level is not enabled.
    public func log(_ level: Level, _ message: @autoclosure () -> String, _ metadata: @autoclosure () -> KeyValuePairs<String, any CustomStringConvertible> = [:]) {
        guard level >= self.level else { return }
        var line = ""
        line.reserveCapacity(192)
        Logger.appendTimestamp(to: &line)
        line += " "
        line += Logger.paddedLevels[level.rawValue]
        line += message()
        for (key, value) in self.metadata { Logger.append(key, value, to: &line) }
        for (key, value) in metadata() { Logger.append(key, value.description, to: &line) }
        sink(line)
    }

    public func trace(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> KeyValuePairs<String, any CustomStringConvertible> = [:]) { log(.trace, message(), metadata()) }
    public func debug(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> KeyValuePairs<String, any CustomStringConvertible> = [:]) { log(.debug, message(), metadata()) }
    public func info(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> KeyValuePairs<String, any CustomStringConvertible> = [:]) { log(.info, message(), metadata()) }
    public func notice(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> KeyValuePairs<String, any CustomStringConvertible> = [:]) { log(.notice, message(), metadata()) }
    public func warning(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> KeyValuePairs<String, any CustomStringConvertible> = [:]) { log(.warning, message(), metadata()) }
    public func error(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> KeyValuePairs<String, any CustomStringConvertible> = [:]) { log(.error, message(), metadata()) }
    public func critical(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> KeyValuePairs<String, any CustomStringConvertible> = [:]) { log(.critical, message(), metadata()) }

    /// Appends ` key=value`, quoting the value when it holds spaces, quotes or `=`.
    static func append(_ key: String, _ value: String, to line: inout String) {
        line += " "
        line += key
        line += "="
        if value.isEmpty || Logger.needsQuotes(value) {
            line += "\""
            // By scalar: "\r\n" is one Character and would match neither case below.
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": line += "\\\""
                case "\\": line += "\\\\"
                case "\n": line += "\\n"
                case "\r": line += "\\r"
                default: line.unicodeScalars.append(scalar)
                }
            }
            line += "\""
        } else {
            line += value
        }
    }

    /// Whether a value holds a space, a quote, `=` or a line break (checked on bytes; values
    /// with non-ASCII text are checked character by character, for Unicode line breaks).
    static func needsQuotes(_ value: String) -> Bool {
        var ascii = true
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\""), UInt8(ascii: "="), 0x0A, 0x0B, 0x0C, 0x0D: return true
            case 0x80...: ascii = false
            default: continue
            }
        }
        return !ascii && value.contains(where: \.isNewline)
    }

    /// Each level's name padded to 9 characters (at least one space), as lines show them.
    private static let paddedLevels = Level.allCases.map { $0.description + String(repeating: " ", count: max(1, 9 - $0.description.count)) }

    /// Appends the UTC time with milliseconds, ISO 8601 (`2026-11-29T15:04:05.123Z`).
    static func appendTimestamp(to line: inout String) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { buffer in
            var index = 0
            func put(_ value: Int, digits: Int) {
                var divisor = 1
                for _ in 1..<digits { divisor *= 10 }
                var rest = max(0, value)
                for _ in 0..<digits {
                    buffer[index] = UInt8(ascii: "0") + UInt8((rest / divisor) % 10)
                    rest %= divisor
                    divisor /= 10
                    index += 1
                }
            }
            func put(_ character: Unicode.Scalar) {
                buffer[index] = UInt8(ascii: character)
                index += 1
            }
            put(Int(parts.tm_year) + 1900, digits: 4); put("-"); put(Int(parts.tm_mon) + 1, digits: 2); put("-")
            put(Int(parts.tm_mday), digits: 2); put("T"); put(Int(parts.tm_hour), digits: 2); put(":")
            put(Int(parts.tm_min), digits: 2); put(":"); put(Int(parts.tm_sec), digits: 2); put(".")
            put(Int(now.tv_nsec / 1_000_000), digits: 3); put("Z")
            line += String(decoding: UnsafeBufferPointer(rebasing: buffer[..<index]), as: UTF8.self)
        }
    }

    /// Writes `text` on stderr as it is (no line break added): one `write(2)` per call (more only
    /// after a short write), so lines from different threads never interleave. A failed write
    /// (stderr closed, a pipe whose reader is gone) loses the text and nothing else: unlike
    /// Foundation's `FileHandle.standardError.write(_:)`, which traps on Linux.
    public static func writeStandardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return }
            var offset = 0
            while offset < bytes.count {
                let written = write(2, base + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }  // a signal came first: not a lost line
                if written <= 0 { return }
                offset += written
            }
        }
    }
}

/// Log lines held back until ``flush()`` (see ``Logger/buffered()``), as one text. Holds at
/// most 1,000 lines; the next line then flushes them.
public final class LogBuffer: Sendable {
    private struct Held {
        var text = ""
        var lines = 0
    }

    private let held = Mutex(Held())
    private let writeText: @Sendable (String) -> Void

    init(writeText: @escaping @Sendable (String) -> Void) {
        self.writeText = writeText
    }

    func append(_ line: String) {
        let full = held.withLock { held in
            held.text += line
            held.text += "\n"
            held.lines += 1
            return held.lines >= 1_000
        }
        if full { flush() }
    }

    /// Lines that are already text, each ending in a line break.
    func append(text: String) {
        let full = held.withLock { held in
            held.text += text
            held.lines += text.utf8.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            return held.lines >= 1_000
        }
        if full { flush() }
    }

    /// Writes the lines held, in order.
    public func flush() {
        let text = held.withLock { held -> String in
            // The next lines go into a new buffer as large as this one was.
            var text = ""
            text.reserveCapacity(held.text.utf8.count)
            swap(&text, &held.text)
            held.lines = 0
            return text
        }
        if !text.isEmpty { writeText(text) }
    }

    deinit { flush() }
}

extension Duration {
    /// The duration in seconds, with its fraction.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// A short human form for logs and messages: `250ms`, `1.5s`, `60s`.
    public var shortDescription: String {
        let milliseconds = inSeconds * 1000
        if milliseconds < 1000 { return "\(Int(milliseconds.rounded()))ms" }
        let seconds = (milliseconds / 100).rounded() / 10
        return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
    }
}
