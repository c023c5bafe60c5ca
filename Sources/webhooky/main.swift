import Glibc

// `webhooky`: run the worker, install or upgrade the schema, look at what it does (preview,
// tail, status, doctor), or try it all in a demo.
// Exit status: 0 success; 1 unexpected failure, or (doctor) something needs attention;
// 2 usage error; 3 database unreachable or login refused; 4 schema missing, older or newer than
// this binary; 5 a migration failed, or (run) another live worker has this --worker-id; 6 (run)
// another worker took this --worker-id over while this one ran; 7 (run) the role lacks the
// worker's privileges; 130 (run) a second SIGTERM, SIGINT or SIGHUP.

signal(SIGPIPE, SIG_IGN)
var arguments = Array(CommandLine.arguments.dropFirst())
// No command at all is a usage error (exit 2), not a request for help (exit 0): a script that
// left the command out must not take the overview for success. The overview goes to stderr,
// as every usage error's text does; `webhooky help` and `--help` print it on stdout.
guard !arguments.isEmpty else {
    Help.printOnStandardError(Help.overview)
    exit(2)
}
let command = arguments.removeFirst()
/// What an unknown command's error says.
let knownCommands = "the commands are run, migrate, preview, tail, status, doctor, demo and version (see webhooky --help)"

/// The commands, by name.
let commands: [String: ([String]) -> Int32] = [
    "run": RunCommand.main, "migrate": MigrateCommand.main, "preview": PreviewCommand.main, "tail": TailCommand.main,
    "status": StatusCommand.main, "doctor": DoctorCommand.main, "demo": DemoCommand.main,
]

let status: Int32
if let run = commands[command] {
    status = run(arguments)
} else {
    switch command {
    case "help", "--help", "-h":
        // `webhooky help run` is `webhooky run --help`.
        if let topic = arguments.first, let help = commands[topic] {
            status = help(["--help"])
        } else if let topic = arguments.first {
            Help.fail("no help on \(Arguments.quoted(topic)): \(knownCommands)")
            status = 2
        } else {
            print(Help.overview)
            status = 0
        }
    case "version", "--version":
        // No options: one typed here is a mistake (exit 2), as for every other command.
        let parsed = Arguments.parse(arguments, command: "version", usage: Help.versionUsage, options: [])
        if parsed.arguments != nil {
            print("webhooky \(Help.version) (schema version \(Help.schemaVersion))")
        }
        status = parsed.exitStatus
    default:
        Help.fail("unknown command \(Arguments.quoted(command))\(Arguments.connectionStringAdvice(command)); \(knownCommands)")
        status = 2
    }
}
exit(status)
