import Glibc
import HTTPClient
import Operations

/// `webhooky preview`: the exact request a webhook would send, without sending it.
enum PreviewCommand {
    /// What `webhooky preview --help` prints.
    static let usage = """
        Usage: webhooky preview WEBHOOK_ID [--event EVENT_ID | --payload JSON] [--unmask] [options]

        Prints the exact request the worker would send for a webhook (method and URL, headers,
        body) without sending anything. It is rendered by the worker's own code, with
        webhook-id msg_preview and the current time (so the signature is real, for that id
        and time). By default the payload is the sample of the webhook's event type
        (webhooky.event_types.sample). The signing secret itself is never printed.

        Secrets are hidden unless --unmask is given: in the URL the values of query
        parameters named, or partly named (api-key, client_secret, accessToken), key, token, apikey,
        secret, password, passwd, auth, signature, sig or credential(s) (and a password
        before @, or a user name alone); in the headers Authorization and every header whose
        name contains token, key, secret, password, passwd, credential, cookie, auth or
        signature keep only their first word
        (Bearer ***); --mask-parameters adds parameter names. The body is printed as it is. libcurl adds Host, Accept and
        Content-Length when it sends.

        Options:
          --event EVENT_ID     render with the payload of a recorded event (webhooky.events.id);
                               a test's event (webhooky.send_test) adds webhooky-test: true
          --payload JSON       render with this payload (a JSON object); @FILE reads it from a
                               file, - from standard input
          --unmask             print secret values as they are
          --mask-parameters NAME,...  also mask these query parameters (e.g. sig,hash)
          --database-url URL   libpq connection string or URI [DATABASE_URL, else PG* variables]

        Exit status: 0 printed; 1 no such webhook or event, no sample, or the template cannot
        render this payload (the reason is printed: the worker would end such a delivery dead);
        2 bad options or a payload that is not a JSON object; 3 database unreachable;
        4 schema missing or of another version.

        Examples:
          webhooky preview 3
          webhooky preview 3 --event 1842
          webhooky preview 3 --payload '{"customer": {"id": 1001, "email": "jan@example.cz"}}'
          webhooky preview 3 --payload @order.json --unmask
        """

    /// Runs `webhooky preview` with the arguments after the command name; returns the exit status.
    static func main(_ rawArguments: [String]) -> Int32 {
        if Help.printsUsage(for: rawArguments, usage) { return 0 }
        let webhookID: Int64
        let payload: PreviewPayload
        let arguments: Arguments
        do {
            arguments = try Arguments(rawArguments, command: "preview", options: ["database-url", "event", "payload", "mask-parameters"],
                                      switches: ["unmask"], positionals: 1)
            guard let id = arguments.positionals.first else {
                throw Arguments.UsageError(description: "which webhook? give its id: webhooky preview WEBHOOK_ID")
            }
            webhookID = try Arguments.identifier(id, what: "WEBHOOK_ID", table: "webhooky.webhooks")
            payload = try parsePayload(arguments)
        } catch {
            return Arguments.reportUsageError(error, command: "preview", usage: usage)
        }
        do {
            let connection = try CommandDatabase.open(arguments, applicationName: "webhooky preview")
            let preview = try RequestPreview.load(connection, webhookID: webhookID, payload: payload, timestamp: Int(TextFormatting.now()))
            for note in preview.notes { Help.note(note) }
            let extra = Set((arguments.string("mask-parameters") ?? "").split(separator: ",").map { $0.lowercased() })
            print(preview.text(unmask: arguments.has("unmask"), userAgent: HTTPClient.Configuration().userAgent, extraSecretParameters: extra))
            return 0
        } catch let exit as CommandExit {
            return exit.status
        } catch let error as OperationsError where error.code == .invalidInput {
            Help.fail(error.description)
            return 2
        } catch {
            return CommandDatabase.report(error)
        }
    }

    /// `--event`, `--payload` (text, `@file` or `-`), or the sample.
    static func parsePayload(_ arguments: Arguments) throws(Arguments.UsageError) -> PreviewPayload {
        switch (arguments.string("event"), arguments.string("payload")) {
        case (.some, .some):
            throw Arguments.UsageError(description: "give --event or --payload, not both")
        case (let event?, nil):
            return .event(try Arguments.identifier(event, what: "--event", table: "webhooky.events"))
        case (nil, let payload?):
            if payload == "-" {
                return .json(try readAll(descriptor: 0, naming: "--payload -: cannot read standard input"))
            }
            if payload.hasPrefix("@") {
                let path = String(payload.dropFirst())
                let descriptor = open(path, O_RDONLY)
                guard descriptor >= 0 else {
                    throw Arguments.UsageError(description: "--payload \(payload): cannot read \(path): \(String(cString: strerror(errno)))")
                }
                defer { close(descriptor) }
                return .json(try readAll(descriptor: descriptor, naming: "--payload \(payload): cannot read \(path)"))
            }
            return .json(payload)
        case (nil, nil):
            return .sample
        }
    }

    /// Everything that can be read from `descriptor`, as UTF-8 text; a read that fails (a
    /// directory, say) is an error that starts with `what`.
    private static func readAll(descriptor: Int32, naming what: String) throws(Arguments.UsageError) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw Arguments.UsageError(description: "\(what): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
