import Delivery
import HTTPClient
public import Postgres
public import Templates

/// The payload a preview renders a webhook with.
public enum PreviewPayload: Sendable, Hashable {
    /// The sample of the webhook's event type (`webhooky.event_types.sample`).
    case sample
    /// The payload of a recorded event (`webhooky.events.id`).
    case event(Int64)
    /// A payload given as JSON text; it must be a JSON object.
    case json(String)
}

/// The exact request a webhook would send for a payload, rendered by the same code as the
/// worker's (``Webhook/request(payload:messageID:timestamp:isTest:limits:)``) but never sent.
///
/// The signing secret is used to sign and then forgotten: it is in no property and no text.
public struct RequestPreview: Sendable {
    /// The `webhook-id` of every preview (a real delivery's is `webhooky.message_id(id)`).
    public static let messageID = "msg_preview"

    /// `webhooks.id`.
    public let webhookID: Int64
    /// `webhooks.name` (may be empty).
    public let webhookName: String
    /// The webhook's event type.
    public let event: String
    /// Whether the webhook is enabled (a disabled one sends nothing).
    public let enabled: Bool
    /// Where the payload came from, in words: `the sample of customer.credit_changed`.
    public let payloadDescription: String
    /// The request: method, URL, headers (Webhooky's included) and body, unredacted.
    public let request: RenderedRequest
    /// Things worth knowing about this preview (a disabled webhook, an event of another type),
    /// one sentence each.
    public let notes: [String]

    /// Loads webhook `webhookID` and renders its request for `payload`.
    ///
    /// - Parameters:
    ///   - connection: A connection that may read `webhooky.webhooks`, `event_types` and `events`.
    ///   - timestamp: `webhook-timestamp`, seconds since 1970 (and what the signature covers).
    /// - Throws: ``OperationsError`` (`notFound`: no such webhook, event or sample;
    ///   `invalidInput`: the given payload is not a JSON object; `cannotRender`: the templates
    ///   cannot make a request for this payload, with the reason), or ``PostgresError``.
    public static func load(_ connection: Connection, webhookID: Int64, payload: PreviewPayload, timestamp: Int) throws -> RequestPreview {
        let rows = try connection.query("""
            SELECT w.id, w.revision, w.name, w.url, w.body, w.headers::text, w.secret, w.event, w.enabled, w.account_id, t.sample::text,
                   w.previous_secret, extract(epoch FROM w.previous_secret_expires_at)
              FROM webhooky.webhooks w LEFT JOIN webhooky.event_types t ON t.name = w.event
             WHERE w.id = $1
            """, [String(webhookID)])
        guard rows.rowCount == 1 else {
            throw OperationsError(.notFound, "there is no webhook \(webhookID)",
                                  hint: "SELECT id, name, event, enabled FROM webhooky.webhooks ORDER BY id; lists them (webhooky status too).")
        }
        let name = rows[0, 2] ?? ""
        let event = rows[0, 7] ?? ""
        let enabled = rows[0, 8] == "t"
        // The name is anyone's who may write the row (a tenant's, for an admin's terminal): its
        // control characters print as ?, never as escape sequences, as in status, tail and doctor.
        let label = "webhook \(webhookID)" + (name.isEmpty ? "" : " \"\(TextFormatting.printable(name))\"")
        var notes: [String] = []
        if !enabled {
            notes.append("\(label) is disabled: nothing is sent until it is enabled (webhooky.send_test sends a test all the same)")
        }

        let payloadText: String
        let description: String
        var isTest = false
        switch payload {
        case .sample:
            guard let sample = rows[0, 10] else {
                throw OperationsError(.notFound, "the event type \"\(event)\" of \(label) has no sample payload",
                                      hint: "Preview with --payload '{\"customer\": {\"id\": 1}}' or with a recorded event (--event ID), or give the event type a sample: UPDATE webhooky.event_types SET sample = '{...}' WHERE name = '\(event)';")
            }
            payloadText = sample
            description = "the sample of \(event)"
        case .event(let eventID):
            let found = try connection.query("SELECT payload::text, event, account_id, is_test FROM webhooky.events WHERE id = $1", [String(eventID)])
            guard found.rowCount == 1, let text = found[0, 0] else {
                throw OperationsError(.notFound, "there is no event \(eventID)",
                                      hint: "SELECT id, event, created_at FROM webhooky.events ORDER BY id DESC LIMIT 20; lists the latest (events go with their deliveries after the retention period).")
            }
            payloadText = text
            description = "the payload of event \(eventID)"
            // A test's event (webhooky.send_test): its requests say so, as the worker sends them.
            isTest = found[0, 3] == "t"
            if let other = found[0, 1], other != event {
                notes.append("event \(eventID) is a \(other) event, but \(label) fires on \(event)")
            }
            if let account = rows[0, 9], found[0, 2] != account {
                notes.append("event \(eventID) belongs to account \(found[0, 2].map { "\"\(TextFormatting.printable($0))\"" } ?? "none"), "
                             + "but \(label) fires only for account \"\(TextFormatting.printable(account))\"")
            }
        case .json(let text):
            payloadText = try normalizedPayload(text, connection: connection)
            description = "the given payload"
        }

        let webhook: Webhook
        do {
            webhook = try Webhook(id: webhookID, revision: Int(rows[0, 1] ?? "1") ?? 1, name: name, url: rows[0, 3] ?? "",
                                  body: rows[0, 4], headersJSON: rows[0, 5] ?? "{}", secret: rows[0, 6],
                                  // While a rotated secret's overlap lasts, the worker signs with both.
                                  previousSecret: rows[0, 11], previousSecretExpiresAt: rows[0, 12].flatMap(Double.init))
        } catch {
            throw OperationsError(.cannotRender, "\(label) cannot be used: \(error.message)",
                                  hint: "Correct the row with UPDATE webhooky.webhooks SET ... WHERE id = \(webhookID); until then the worker ends its deliveries dead.")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parsePayload(payloadText)
        } catch {
            throw OperationsError(.invalidInput, "the payload is not valid JSON: \(error)")
        }
        let offered = parsed.variableNames
        for variable in webhook.template.variables where variable.value(in: parsed) == nil {
            guard parsed.value(at: variable.path) != .null else {
                // There, but null: no misspelt name to guess at.
                notes.append("\(variable) is null in \(description): it renders as the empty string (\"\" where it stands alone as a JSON value)")
                continue
            }
            let guess = Suggestion.closest(to: variable.name, among: offered).map { "; did you mean #\($0)#" } ?? ""
            notes.append("\(variable) is not in \(description): it renders as the empty string (a misspelt name\(guess)? webhooky.variables(\(TextFormatting.sqlLiteral(event))) lists the names)")
        }
        notes += webhook.template.unclosedVariables(offered: Set(offered)).map(\.sentence)
        var quotedNoted: Set<Variable> = []
        for variable in webhook.template.body?.quotedAlone ?? [] where quotedNoted.insert(variable).inserted {
            // Often meant (an amount kept as text), but a receiver that expects a number gets a string.
            let (type, text): (String, String)
            switch variable.value(in: parsed) {
            case .number(let number): (type, text) = ("number", number)
            case .bool(let value): (type, text) = ("boolean", String(value))
            default: continue
            }
            notes.append("\(variable) stands alone in quotes in the body, so the \(type) \(text) goes out as a JSON string (\"\(text)\"); "
                + "without the quotes around it, it goes out as a JSON \(type)")
        }
        do {
            let request = try webhook.request(payload: parsed, messageID: messageID, timestamp: timestamp, isTest: isTest)
            if let refusal = AddressPolicy.standard.refusal(ofHostIn: request.url) {
                notes.append("a worker ends this delivery dead unless it runs with an allow-list for the address: \(refusal)")
            }
            if request.body?.unicodeScalars.contains(where: TextFormatting.isDELOrC1) == true {
                notes.append("the body holds control characters (U+007F to U+009F): the request below shows them as \\u escapes (the same JSON), and they go out as they are")
            }
            if request.headers.contains(where: { $0.value.unicodeScalars.contains(where: TextFormatting.isDELOrC1) }) {
                notes.append("a header value holds control characters (U+0080 to U+009F): the request below shows them as ?, and they go out as they are")
            }
            if let hash = request.url.firstIndex(of: "#") {
                // Only a name-like start is shown: the rest of a URL may hold a key.
                let start = request.url[request.url.index(after: hash)...].prefix(while: { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }).prefix(40)
                notes.append("the URL's part from '#\(start)' on is a fragment, which HTTP never sends: the request goes out without it (a variable missing its closing '#'? write #name#, or a literal # as %23)")
            }
            return RequestPreview(webhookID: webhookID, webhookName: name, event: event, enabled: enabled,
                                  payloadDescription: description, request: request, notes: notes)
        } catch {
            throw OperationsError(.cannotRender, "\(label) cannot render a request for \(description): \(error.message)",
                                  hint: "The worker would end such a delivery dead at once, with this reason. Change the template, or the data behind the variable.")
        }
    }

    /// Checks that `text` is a JSON object and returns it as PostgreSQL's `jsonb` prints it,
    /// which is how the worker reads an event's payload (numbers such as `1e2` become `100`).
    static func normalizedPayload(_ text: String, connection: Connection) throws -> String {
        let value: JSONValue
        do {
            value = try JSONParser.parsePayload(text)
        } catch {
            throw OperationsError(.invalidInput, "the payload is not valid JSON: \(error)",
                                  hint: "Quote it for the shell, e.g. --payload '{\"customer\": {\"id\": 1001, \"email\": \"a@example.cz\"}}', or read it from a file with --payload @payload.json.")
        }
        guard case .object = value else {
            throw OperationsError(.invalidInput, "the payload must be a JSON object ({...}), as webhooky.emit records them",
                                  hint: "For example --payload '{\"customer\": {\"id\": 1001}}'.")
        }
        let normalized: String?
        do {
            normalized = try connection.query("SELECT $1::jsonb::text", [text]).scalar
        } catch {
            guard error.code == .statementFailed else { throw error }
            // For example a \u0000 escape, which JSON allows and jsonb does not.
            throw OperationsError(.invalidInput, "PostgreSQL does not accept the payload as jsonb: \(error.message)")
        }
        return normalized ?? text
    }

    /// The request as text: `METHOD URL`, the headers one per line (`User-Agent` first, as
    /// the HTTP client sends it, when `userAgent` is given and the webhook sets none of its own:
    /// libcurl then sends only the webhook's), and the body after a blank line. A header whose
    /// value is blank (spaces and tabs only) is printed `Name:`, as it is sent: empty.
    /// Secrets in the URL and headers are hidden (see ``Redaction``) unless `unmask` is true;
    /// the body is shown as it is but for DEL and C1 control characters, which are shown as
    /// `\u` escapes (a terminal may take U+009B as an escape sequence's start; a header value
    /// shows them as `?`). The signing secret is never part of it.
    ///
    /// - Parameter extraSecretParameters: More query parameter names to mask (lowercase).
    public func text(unmask: Bool, userAgent: String?, extraSecretParameters: Set<String> = []) -> String {
        let url = unmask ? request.url : Redaction.url(request.url, extraParameters: extraSecretParameters)
        var lines = ["\(request.method) \(TextFormatting.printable(url))"]
        if let userAgent, !request.headers.contains(where: { $0.name.lowercased() == "user-agent" }) {
            lines.append("User-Agent: \(userAgent)")
        }
        for header in request.headers {
            let value = unmask ? header.value : Redaction.headerValue(name: header.name, value: header.value)
            // A value of only spaces and tabs goes out empty (see the HTTP client's Transfer).
            let blank = value.allSatisfy { $0 == " " || $0 == "\t" }
            lines.append(blank ? "\(header.name):" : "\(header.name): \(TextFormatting.markingDELAndC1(value))")
        }
        if let body = request.body {
            lines.append("")
            lines.append(TextFormatting.escapingDELAndC1(inJSON: body))
        }
        return lines.joined(separator: "\n")
    }
}
