import Demo

/// `webhooky demo`.
enum DemoCommand {
    static let usage = """
        Usage: webhooky demo [--keep]

        Shows Webhooky end to end with nothing to set up: starts a private PostgreSQL (as the
        postgres OS user when run as root), installs the schema and an Ellity-style shop, starts
        a receiver on 127.0.0.1, creates the seed's two webhooks, changes a customer's credit and
        VIP tier, prints every request the receiver gets, and removes everything again.

        Options:
          --keep   leave PostgreSQL running at the end and print how to connect with psql;
                   Ctrl-C then removes it

        Examples:
          webhooky demo
          webhooky demo --keep      # then, in another terminal: DATABASE_URL='...' webhooky status
        """

    static func main(_ rawArguments: [String]) -> Int32 {
        let parsed = Arguments.parse(rawArguments, command: "demo", usage: usage, options: [], switches: ["keep"])
        guard let arguments = parsed.arguments else { return parsed.exitStatus }
        do {
            try DemoRun(keep: arguments.has("keep")).run()
            return 0
        } catch {
            Help.fail("the demo failed: \(error)")
            return 1
        }
    }
}
