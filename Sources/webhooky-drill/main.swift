import Drill
import Foundation
import Log

// `webhooky-drill`: the fault drill (see bench/drill). Exit status 0 when nothing was lost,
// 1 when something was, 2 on bad options.

let usage = """
    Usage: webhooky-drill [--events N] [--webhooks N] [--kills N] [--restarts N] [--duration 60s] [--seed N] [--output FILE]

    Commits N events (default 10,000) for N e-shops with one webhook each (default 20) while a
    receiver on 127.0.0.1 answers at random with 500s, silence past the timeout, resets and slow
    answers; kills the worker with SIGKILL (default 5 times) and restarts PostgreSQL (default
    twice); then checks every committed event against what the receiver got and prints a table.
    --output also writes the table (Markdown) to FILE.
    """

var arguments = Array(CommandLine.arguments.dropFirst())
// Beside this executable, wherever it was started from (argv[0] is a bare name when found on PATH).
let ownPath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
let executable = URL(fileURLWithPath: ownPath).deletingLastPathComponent().appendingPathComponent("webhooky").path
var configuration = FaultDrill.Configuration(workerExecutable: executable)
var output: String? = nil
func count(_ value: String, _ option: String, minimum: Int) -> Int {
    guard let number = Int(value), number >= minimum else { fail("\(option) must be a whole number of at least \(minimum)") }
    return number
}
func fail(_ message: String) -> Never {
    Logger.writeStandardError("webhooky-drill: \(message)\n\n\(usage)\n")
    exit(2)
}
while !arguments.isEmpty {
    let option = arguments.removeFirst()
    if option == "--help" || option == "-h" {
        print(usage)
        exit(0)
    }
    guard !arguments.isEmpty else { fail("\(option) needs a value") }
    let value = arguments.removeFirst()
    switch option {
    case "--events": configuration.events = count(value, option, minimum: 1)
    case "--webhooks": configuration.webhooks = count(value, option, minimum: 1)
    case "--kills": configuration.workerKills = count(value, option, minimum: 0)
    case "--restarts": configuration.postgresRestarts = count(value, option, minimum: 0)
    case "--duration":
        guard let seconds = Double(value.hasSuffix("s") ? String(value.dropLast()) : value), seconds > 0 else { fail("--duration must be seconds, e.g. 60s") }
        configuration.emitDuration = .milliseconds(Int64(seconds * 1000))
    case "--seed":
        guard let seed = UInt64(value) else { fail("--seed must be a number") }
        configuration.seed = seed
    case "--output": output = value
    default: fail("unknown option \(option)")
    }
}
guard FileManager.default.isExecutableFile(atPath: configuration.workerExecutable) else {
    fail("the webhooky executable is not next to webhooky-drill (\(configuration.workerExecutable)); build both products")
}

do {
    let report = try FaultDrill(configuration: configuration).run()
    let text = """
        Fault drill, \(ISO8601DateFormatter().string(from: Date())): \(configuration.events) events, \(configuration.webhooks) webhooks, \
        \(configuration.workerKills) worker kills, \(configuration.postgresRestarts) PostgreSQL restarts.

        \(report.table)
        """
    print("\n" + text)
    if let output { try text.write(toFile: output, atomically: true, encoding: .utf8) }
    exit(report.lost == 0 ? 0 : 1)
} catch {
    Logger.writeStandardError("webhooky-drill: the drill could not run: \(error)\n")
    exit(1)
}
