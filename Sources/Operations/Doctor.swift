public import Postgres
import Schema

/// One finding of `webhooky doctor`: how it stands, about what, in plain words, and what to do.
public struct DoctorCheck: Sendable, Hashable {
    /// How it stands.
    public enum Level: String, Sendable, Hashable, Comparable {
        /// Nothing to do.
        case ok = "OK"
        /// Needs a look; Webhooky still works.
        case warn = "WARN"
        /// Broken: webhooks are not sent, or will not be.
        case fail = "FAIL"

        private var rank: Int { self == .ok ? 0 : self == .warn ? 1 : 2 }
        /// `ok` < `warn` < `fail`.
        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rank < rhs.rank }
    }

    /// How it stands.
    public var level: Level
    /// What was checked, one word or two: `connection`, `workers`, `backlog`...
    public var topic: String
    /// The finding in one sentence, with what to do when it is not OK.
    public var summary: String
    /// Further lines: the items behind the finding, the SQL to look closer or fix it.
    public var details: [String]

    /// A finding.
    public init(_ level: Level, _ topic: String, _ summary: String, details: [String] = []) {
        self.level = level
        self.topic = topic
        self.summary = summary
        self.details = details
    }
}

/// `webhooky doctor`: checks a database and its workers and explains, in plain words, what is
/// well and what needs attention.
///
/// Thresholds (all properties, with these defaults):
///
/// | check | OK while | otherwise |
/// |---|---|---|
/// | workers | a heartbeat within 30 s | FAIL |
/// | backlog | the oldest due delivery or waiting event waits under 5 min | WARN |
/// | NOTIFY queue | at most 50 % full | WARN |
/// | dead deliveries | none in the last 24 h | WARN |
/// | webhooks | none failing or disabled by Webhooky | WARN |
/// | events | each event type with enabled webhooks had an event within 10 times its usual gap (over its last 1,000 events), or within an hour | WARN |
/// | triggers | every trigger whose WHEN reads `webhooky.wanted_events` tests the bit of each event it emits; every login role that may fire one that calls `webhooky.emit` (and every `SECURITY DEFINER` trigger function's owner) may call it | FAIL |
/// | accounts | no trigger function emits an event without an account, or asks `has_webhooks` for it without one while no webhook for every account wants it, when enabled webhooks for one account want the event | WARN |
public struct Doctor: Sendable {
    /// A worker whose heartbeat is older is not alive, in seconds. Default 30.
    public var heartbeatWindow: Double = WorkerPresence.heartbeatWindow
    /// A backlog whose oldest item waits longer needs attention, in seconds. Default 300.
    public var backlogWarning: Double = 300
    /// NOTIFY queue usage (0 to 1) above which it needs attention. Default 0.5.
    public var notifyQueueWarning: Double = 0.5
    /// An event type is overdue after this many times its usual gap... Default 10.
    public var paceFactor: Double = 10
    /// ...and at least this long, in seconds. Default 3600.
    public var paceMinimum: Double = 3600
    /// ...and this many times the longest silence between those events (events that stop
    /// every night stopped as long the night before). Default 1.5.
    public var paceLongestSilenceFactor: Double = 1.5
    /// Recent events of a type, none of which has a variable its sample has, that make a
    /// webhook's use of that variable a finding (it was sent as ""). Default 10.
    public var sampleOnlyMinimumEvents = 10
    /// Events of a type needed to know its pace. Default 10.
    public var paceMinimumEvents = 10
    /// The pace is read from the last ``paceRecentEvents`` events of each type among this many
    /// latest events (so that the check never scans a large table). Default 200,000.
    public var paceScanEvents = 200_000
    /// The most events of a type the pace is read from; when there are as many, the silence
    /// before them counts too (a nightly batch). Default 1,000.
    public var paceRecentEvents = 1_000

    /// The version of this binary, shown in the schema finding.
    public let binaryVersion: String

    /// A doctor for a binary of `binaryVersion`.
    public init(binaryVersion: String) {
        self.binaryVersion = binaryVersion
    }

    /// Runs every check on `connection` and returns the findings in order: connection,
    /// schema, privileges, roles, owner, workers, backlog, NOTIFY queue, dead deliveries, webhooks, settings,
    /// variables, events, triggers, accounts.
    /// When the schema does not match this binary the checks that read it are left out.
    public func examine(_ connection: Connection) -> [DoctorCheck] {
        var checks = [check("connection") { () throws(PostgresError) in try connectionCheck(connection) }]
        let schema = schemaCheck(connection)
        checks.append(schema)
        guard schema.level == .ok else { return checks }
        var tenant = (try? connection.query(RolePrivileges.tenantOnlySQL).scalar) == "t"
        if tenant, let missing = Doctor.tenantWithoutAccount(connection) {
            // It sees nothing at all: that is the finding, and the other checks say why as usual.
            checks.append(missing)
            tenant = false
        } else {
            checks.append(check("privileges") { () throws(PostgresError) in try privilegesCheck(connection, tenant: tenant) })
        }
        checks.append(check("roles", tenant: tenant) { () throws(PostgresError) in try rolesCheck(connection) })
        checks.append(check("owner", tenant: tenant) { () throws(PostgresError) in try ownerCheck(connection) })
        checks.append(check("workers", tenant: tenant) { () throws(PostgresError) in try workersCheck(connection) })
        checks.append(check("backlog", tenant: tenant) { () throws(PostgresError) in try backlogCheck(connection) })
        checks.append(check("NOTIFY queue", tenant: tenant) { () throws(PostgresError) in try notifyQueueCheck(connection) })
        checks.append(check("dead", tenant: tenant) { () throws(PostgresError) in try deadCheck(connection) })
        checks.append(check("webhooks", tenant: tenant) { () throws(PostgresError) in try webhooksCheck(connection) })
        checks.append(check("settings", tenant: tenant) { () throws(PostgresError) in try settingsCheck(connection) })
        checks.append(check("variables", tenant: tenant) { () throws(PostgresError) in try templateVariablesCheck(connection) })
        checks.append(check("events", tenant: tenant) { () throws(PostgresError) in try eventsCheck(connection, tenant: tenant) })
        checks.append(check("triggers", tenant: tenant) { () throws(PostgresError) in try triggerConditionsCheck(connection) })
        checks.append(check("accounts", tenant: tenant) { () throws(PostgresError) in try accountsCheck(connection, tenant: tenant) })
        return checks
    }

    /// The finding when the database cannot be reached at all.
    public static func unreachable(_ error: PostgresError) -> DoctorCheck {
        DoctorCheck(.fail, "connection", "cannot connect to the database: \(error.message)", details: [
            "Check the connection string (--database-url, DATABASE_URL or PGHOST, PGDATABASE, PGUSER...), that PostgreSQL runs and accepts this role (pg_hba.conf), and its password (PGPASSWORD or ~/.pgpass).",
        ])
    }

    /// 0 when every finding is OK, 1 when something needs attention.
    public static func exitStatus(_ checks: [DoctorCheck]) -> Int32 {
        checks.allSatisfy { $0.level == .ok } ? 0 : 1
    }

    /// The findings as text: one line each, `OK`, `WARN` or `FAIL`, the topic and the summary,
    /// details indented below; then a last line that counts what needs attention.
    public static func report(_ checks: [DoctorCheck], style: TerminalStyle) -> String {
        var lines: [String] = []
        for check in checks {
            let level = TextFormatting.padded(check.level.rawValue, to: 4)
            let painted = switch check.level {
            case .ok: style.good(level)
            case .warn: style.warning(level)
            case .fail: style.bad(level)
            }
            // Findings quote names people chose: printed without their control characters.
            lines.append(painted + "  " + style.strong(TextFormatting.padded(check.topic, to: 12)) + "  " + TextFormatting.printable(check.summary))
            for detail in check.details { lines.append(String(repeating: " ", count: 20) + TextFormatting.printable(detail)) }
        }
        let failures = checks.filter { $0.level == .fail }.count
        let warnings = checks.filter { $0.level == .warn }.count
        lines.append("")
        if failures + warnings == 0 {
            lines.append(style.good("All is well."))
        } else {
            var counts: [String] = []
            if failures > 0 { counts.append("\(failures) \(failures == 1 ? "failure" : "failures")") }
            if warnings > 0 { counts.append("\(warnings) \(warnings == 1 ? "warning" : "warnings")") }
            let text = "Needs attention: " + counts.joined(separator: ", ") + "."
            lines.append(failures > 0 ? style.bad(text) : style.warning(text))
        }
        return lines.joined(separator: "\n")
    }

    /// A FAIL when the tenant's role has no account (no row in webhooky.tenants): it may see
    /// nothing; `nil` when it has one.
    static func tenantWithoutAccount(_ connection: Connection) -> DoctorCheck? {
        do {
            _ = try connection.query("SELECT webhooky.caller_account()")
            return nil
        } catch {
            let role = (try? connection.query("SELECT current_user").scalar).flatMap { $0 } ?? "ROLE"
            return DoctorCheck(.fail, "privileges", error.message, details: [
                "An admin gives the role its account: INSERT INTO webhooky.tenants (role_name, account_id) VALUES ('\(role)', '...'); (or log in as the tenant's own role, without SET ROLE).",
            ])
        }
    }

    /// Runs one check; a statement that fails (often for lack of a privilege) becomes a WARN
    /// that says so (for a tenant's role: an OK, "not visible"), and the other checks go on.
    private func check(_ topic: String, tenant: Bool = false, _ body: () throws(PostgresError) -> DoctorCheck) -> DoctorCheck {
        do {
            return try body()
        } catch {
            if tenant && error.sqlState == "42501" {
                // A tenant's role is meant not to see this; nothing needs attention.
                return DoctorCheck(.ok, topic, "not visible to a tenant's role (\(error.message))")
            }
            var details = ["The other checks went on."]
            if error.sqlState == "42501" {
                details = ["Run the doctor as a role that may read the webhooky schema (a member of webhooky_admin, or its owner)."]
            }
            return DoctorCheck(.warn, topic, "could not check: \(error.message)", details: details)
        }
    }

    private func schemaCheck(_ connection: Connection) -> DoctorCheck {
        do {
            try Migrator(connection: connection).requireCurrent()
            return DoctorCheck(.ok, "schema", "version \(Migrations.latestVersion), the version of this binary (webhooky \(binaryVersion))")
        } catch let error as SchemaError {
            return DoctorCheck(.fail, "schema", error.message,
                               details: ["Workers refuse to start until it matches; the other checks need it too and were left out."])
        } catch let error as PostgresError where error.sqlState == "42501" {
            let role = (try? connection.query("SELECT quote_ident(current_user)").scalar) ?? "this role"
            return DoctorCheck(.fail, "schema", "role \(role) may not use the webhooky schema (\(error.message))", details: [
                "A DBA grants what the role is for: GRANT webhooky_worker TO \(role); to run the worker, GRANT webhooky_admin TO \(role); for admin work and the doctor.",
                "The other checks need the schema and were left out.",
            ])
        } catch {
            return DoctorCheck(.fail, "schema", "cannot read the schema version: \(error)")
        }
    }
}
