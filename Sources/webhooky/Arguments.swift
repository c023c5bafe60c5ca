import Glibc
import Operations
import Postgres

/// Command-line options of one command: `--name value`, `--name=value` and `--flag`. An option
/// that takes a value may be given once; a switch given twice is the switch.
struct Arguments {
    /// A problem with what was typed, reported with the command's usage; exit status 2.
    struct UsageError: Error, CustomStringConvertible {
        var description: String
    }

    private var values: [String: String] = [:]
    private var flags: Set<String> = []
    private let command: String
    /// The arguments that are not options, in order (at most the number allowed).
    private(set) var positionals: [String] = []

    /// How a command's `main` begins: the parsed arguments, or (when `arguments` is `nil`) the
    /// exit status after printing `usage` for `--help` (0), or a usage error with the usage's
    /// first line (2).
    struct Parsed {
        let arguments: Arguments?
        let exitStatus: Int32
    }

    static func parse(_ arguments: [String], command: String, usage: String, options: Set<String>, switches: Set<String> = []) -> Parsed {
        if Help.printsUsage(for: arguments, usage) { return Parsed(arguments: nil, exitStatus: 0) }
        do {
            return Parsed(arguments: try Arguments(arguments, command: command, options: options, switches: switches), exitStatus: 0)
        } catch {
            return Parsed(arguments: nil, exitStatus: reportUsageError(error, command: command, usage: usage))
        }
    }

    /// Prints a usage error: the error, the usage line, and where the rest is (the whole help
    /// would bury the error). Returns 2, the exit status for it.
    static func reportUsageError(_ error: any Error, command: String, usage: String) -> Int32 {
        let usageLine = usage.split(separator: "\n").first.map(String.init) ?? "Usage: webhooky \(command)"
        Help.fail("\(error)\n\(usageLine)\nSee: webhooky \(command) --help")
        return 2
    }

    /// Parses `arguments`, accepting only `options` (which take a value), `switches`, and up
    /// to `positionals` arguments that are not options (default none).
    init(_ arguments: [String], command: String, options: Set<String>, switches: Set<String>, positionals allowed: Int = 0) throws(UsageError) {
        self.command = command
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                guard positionals.count < allowed else {
                    throw UsageError(description: "unexpected argument \(Arguments.quoted(argument)) for \"webhooky \(command)\""
                                     + Arguments.connectionStringAdvice(argument))
                }
                positionals.append(argument)
                continue
            }
            var name = String(argument.dropFirst(2))
            var value: String? = nil
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if switches.contains(name) {
                guard value == nil else { throw UsageError(description: "--\(name) takes no value") }
                flags.insert(name)
            } else if options.contains(name) {
                if value == nil {
                    guard index < arguments.count else { throw UsageError(description: "--\(name) needs a value") }
                    value = arguments[index]
                    index += 1
                }
                // The last one would win in silence: `--allow-network A --allow-network B`
                // would allow only B, `--event 1 --event 2` preview event 2.
                // A connection string's values are not quoted: they may hold a password.
                if let earlier = values[name] {
                    let both = name == "database-url" ? "" : " (\(Arguments.quoted(earlier)) and \(Arguments.quoted(value ?? "")))"
                    throw UsageError(description: "--\(name) is given twice\(both); give it once"
                                     + (name == "allow-network" || name == "mask-parameters" ? ", with its values separated by commas" : ""))
                }
                values[name] = value
            } else {
                // `--database-url:postgresql://user:s3cret@db/shop` is one "name".
                guard !Arguments.mayBeConnectionString(name) else {
                    throw UsageError(description: "unknown option --… for \"webhooky \(command)\"" + Arguments.connectionStringAdvice(name))
                }
                let guess = Suggestion.closest(to: name, among: options.union(switches)).map { "; did you mean --\($0)?" } ?? ""
                throw UsageError(description: "unknown option --\(name) for \"webhooky \(command)\"\(guess)")
            }
        }
        if options.contains("database-url") { try checkDatabaseURL() }
    }

    /// Refuses a connection string that libpq cannot parse (`--database-url`, else
    /// `DATABASE_URL`), or an option value libpq refuses before it connects (`sslmode=bogus`,
    /// also from libpq's `PGSSLMODE`...), as a bad option, status 2: connecting again cannot
    /// help (a supervisor restarts on status 3, database unreachable). libpq's message hides
    /// what it quotes (a password, maybe).
    private func checkDatabaseURL() throws(UsageError) {
        let source: String?
        let url: String
        if let value = values["database-url"] {
            (source, url) = ("--database-url", value)
        } else if let value = getenv("DATABASE_URL") {
            (source, url) = ("DATABASE_URL", String(cString: value))
        } else {
            (source, url) = (nil, "")  // libpq's defaults and PG* variables
        }
        do {
            try Connection.checkSyntax(of: url)
        } catch {
            throw UsageError(description: source.map { "\($0): " + error.message } ?? error.message)
        }
    }

    /// `text` in double quotes, as errors show what was typed; `"…"` when it may be (a piece of)
    /// a connection string, which may hold a password: it holds `=` (`password=s3cret`, what an
    /// unquoted `--database-url $DATABASE_URL` leaves over when the shell splits it at its
    /// spaces), `@` or `://` (`postgresql://user:s3cret@db/shop` given without `--database-url`).
    /// The values these errors quote (numbers, ids, durations, log levels) never hold such text.
    static func quoted(_ text: String) -> String {
        mayBeConnectionString(text) ? "\"…\"" : "\"\(text)\""
    }

    /// What to do when `argument`, not quoted by ``quoted(_:)``, may be a connection string:
    /// empty for any other argument.
    static func connectionStringAdvice(_ argument: String) -> String {
        guard mayBeConnectionString(argument) else { return "" }
        return " (not shown: it looks like a connection string or a piece of one, which may hold a password; give the whole string "
            + "with --database-url 'host=... dbname=...', quoted as one argument, or in DATABASE_URL)"
    }

    static func mayBeConnectionString(_ text: String) -> Bool {
        text.contains("=") || text.contains("@") || text.contains("://")
    }

    func has(_ flag: String) -> Bool { flags.contains(flag) }

    func string(_ name: String) -> String? { values[name] }

    /// A whole number within `range`.
    func integer(_ name: String, in range: ClosedRange<Int>) throws(UsageError) -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw UsageError(description: "--\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(Arguments.quoted(text))")
        }
        return value
    }

    /// A webhook, event or delivery id: a positive whole number. `what` names it in the error,
    /// `table` says where such ids are (`webhooky.webhooks`).
    static func identifier(_ text: String, what: String, table: String) throws(UsageError) -> Int64 {
        guard let value = Int64(text), value > 0 else {
            throw UsageError(description: "\(what) must be a positive whole number (an id from \(table)), not \(Arguments.quoted(text))")
        }
        return value
    }

    /// A duration such as `500ms`, `5s`, `2m`, `1h`, `1d` (a bare number is seconds).
    func duration(_ name: String) throws(UsageError) -> Duration? {
        guard let text = values[name] else { return nil }
        guard let duration = Arguments.parseDuration(text) else {
            throw UsageError(description: "--\(name) must be a duration such as 500ms, 5s, 2m, 1h or 1d (at most 100 years), not \(Arguments.quoted(text))")
        }
        return duration
    }

    /// A comma-separated list of durations, e.g. `5s,30s,2m`.
    func durations(_ name: String) throws(UsageError) -> [Duration]? {
        guard let text = values[name] else { return nil }
        var result: [Duration] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let duration = Arguments.parseDuration(String(part)) else {
                throw UsageError(description: "--\(name) must be durations separated by commas, such as 5s,30s,2m,1h; \(Arguments.quoted(String(part))) is not a duration")
            }
            result.append(duration)
        }
        return result
    }

    /// A duration of at most ``longestDuration``: digits with an optional decimal fraction and
    /// a unit (`ms`, `s`, `m`, `h`, `d`; none is seconds); `nil` for anything else (a larger one,
    /// which would overflow, and what `Double` reads besides: `0x10`, `1e3`, `+5`, ` 5`).
    static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        let unit = units.first { text.hasSuffix($0.0) }
        let digits = unit.map { text.dropLast($0.0.count) } ?? Substring(text)
        let parts = digits.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0 >= "0" && $0 <= "9" } }) else { return nil }
        let seconds = unit?.1 ?? 1
        guard let number = Double(digits), number * seconds <= longestDuration else { return nil }
        return .milliseconds(Int64((number * seconds * 1000).rounded()))
    }

    /// The longest duration an option takes, in seconds: 100 years.
    static let longestDuration: Double = 100 * 366 * 86_400
}
