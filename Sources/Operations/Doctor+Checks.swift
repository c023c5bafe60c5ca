import Delivery
import Postgres
import Schema
import Templates

/// The SQL behind each of the doctor's findings.
extension Doctor {
    /// Server version, address, database and role; FAIL on a read-only standby or a server older than 13.
    func connectionCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let result = try connection.query("""
            SELECT current_setting('server_version'), current_setting('server_version_num')::int, current_user, current_database(),
                   coalesce(host(inet_server_addr()) || ':' || current_setting('port'), 'a local socket'),
                   (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), pg_is_in_recovery()
            """)
        let version = result[0, 0] ?? "?"
        let number = result[0, 1].flatMap { Int($0) } ?? 0
        let role = result[0, 2] ?? "?"
        let summary = "PostgreSQL \(version) at \(result[0, 4] ?? "?"), database \"\(result[0, 3] ?? "?")\", role \"\(role)\""
            + (result[0, 5] == "t" ? " (superuser)" : "")
        if result[0, 6] == "t" {
            return DoctorCheck(.fail, "connection", summary + ": a read-only standby", details: [
                "Webhooky writes events, deliveries and attempts: connect the worker and the doctor to the primary.",
            ])
        }
        if number < 130_000 {
            return DoctorCheck(.fail, "connection", summary + ": Webhooky needs PostgreSQL 13 or newer")
        }
        return DoctorCheck(.ok, "connection", summary)
    }

    /// Whether the current role can run the worker, do admin work, both or neither (or is a
    /// tenant's, `tenant`, which needs neither).
    func privilegesCheck(_ connection: Connection, tenant: Bool = false) throws(PostgresError) -> DoctorCheck {
        let role = try connection.query("SELECT quote_ident(current_user)").scalar ?? "current_user"
        let missing = try connection.query(RolePrivileges.missingSQL).rows
        let worker = missing.filter { $0[0] == "worker" }.compactMap { $0[1] }
        let admin = missing.filter { $0[0] == "admin" }.compactMap { $0[1] }
        let groups = try connection.query("SELECT string_agg(rolname, ', ' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('webhooky_worker', 'webhooky_admin')").scalar ?? ""
        var details: [String] = []
        if !worker.isEmpty { details.append("missing for the worker: " + worker.joined(separator: ", ")) }
        if !admin.isEmpty { details.append("missing for admin work: " + admin.joined(separator: ", ")) }
        if (!worker.isEmpty || !admin.isEmpty) && !(groups.contains("webhooky_worker") && groups.contains("webhooky_admin")) {
            details.append("The roles webhooky_worker and webhooky_admin do not both exist: a DBA creates them (CREATE ROLE webhooky_worker NOLOGIN; CREATE ROLE webhooky_admin NOLOGIN;) and runs SELECT webhooky.grant_roles();")
        }
        switch (worker.isEmpty, admin.isEmpty) {
        case (true, true):
            return DoctorCheck(.ok, "privileges", "role \(role) can run the worker and do admin work")
        case (true, false):
            return DoctorCheck(.ok, "privileges", "role \(role) can run the worker (for admin work as well: GRANT webhooky_admin TO \(role);)")
        case (false, true):
            return DoctorCheck(.ok, "privileges", "role \(role) can do admin work (to run the worker as well: GRANT webhooky_worker TO \(role);)")
        case (false, false) where tenant:
            return DoctorCheck(.ok, "privileges", "role \(role) is a tenant's (webhooky_tenant): it sees and changes its own account's webhooks only", details: [
                "Checks of what belongs to no account (workers, the whole backlog) need webhooky_admin; they are marked as not visible.",
            ])
        case (false, false):
            return DoctorCheck(.warn, "privileges", "role \(role) can neither run the worker nor do admin work: a DBA runs GRANT webhooky_worker TO \(role); (or webhooky_admin)", details: details)
        }
    }

    /// The group roles of `webhooky.role_grants` and one privilege each has once
    /// `webhooky.grant_roles()` ran for it.
    static let groupRoles: [(role: String, probe: String)] = [
        ("webhooky_worker", "has_table_privilege('webhooky_worker', 'webhooky.deliveries', 'UPDATE')"),
        ("webhooky_admin", "has_table_privilege('webhooky_admin', 'webhooky.webhooks', 'INSERT')"),
        ("webhooky_emitter", "has_function_privilege('webhooky_emitter', 'webhooky.emit(text, jsonb, text)', 'EXECUTE')"),
        ("webhooky_tenant", "has_table_privilege('webhooky_tenant', 'webhooky.webhooks', 'SELECT')"),
    ]

    /// Whether the group roles exist (a migration by a role without CREATEROLE could not create
    /// them, and the README's `CREATE ROLE ... IN ROLE webhooky_worker` then fails) and have
    /// their privileges (roles created by hand afterwards have none until
    /// `webhooky.grant_roles()` runs). WARN, with the statements that fix it.
    func rolesCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let roles = Self.groupRoles.map(\.role)
        let existing = Set(try connection.query("SELECT rolname FROM pg_roles WHERE rolname = ANY ($1::name[])",
                                                ["{" + roles.joined(separator: ",") + "}"]).rows.compactMap { $0[0] })
        let missing = roles.filter { !existing.contains($0) }
        if !missing.isEmpty {
            return DoctorCheck(.warn, "roles", "Webhooky's group role\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", ")) \(missing.count == 1 ? "does" : "do") not exist", details: [
                "The role that migrated could not create them (that needs CREATEROLE), so GRANT webhooky_... TO a login role fails.",
                "A role with CREATEROLE runs: " + missing.map { "CREATE ROLE \($0) NOLOGIN;" }.joined(separator: " ")
                    + " Then the schema's owner runs: SELECT webhooky.grant_roles();",
            ])
        }
        let probes = Self.groupRoles.map(\.probe).joined(separator: ", ")
        let granted = try connection.query("SELECT \(probes)").rows.first ?? []
        let bare = zip(roles, granted).filter { $0.1 != "t" }.map(\.0)
        guard bare.isEmpty else {
            return DoctorCheck(.warn, "roles", "group role\(bare.count == 1 ? "" : "s") \(bare.joined(separator: ", ")) \(bare.count == 1 ? "lacks its" : "lack their") privileges", details: [
                "Created after the schema was installed? The schema's owner runs: SELECT webhooky.grant_roles();",
            ])
        }
        return DoctorCheck(.ok, "roles", "\(roles.dropLast().joined(separator: ", ")) and \(roles.last ?? "") exist, with their privileges")
    }

    /// The schema's objects that belong to another role than the one that installed it (the
    /// owner of `webhooky.migrations`), with the statement that gives each back: a statement
    /// per object, a superuser (or both owners) runs them.
    static let strayOwnersSQL = """
        WITH owner AS (SELECT c.relowner AS oid FROM pg_class c WHERE c.oid = 'webhooky.migrations'::regclass),
        objects AS (
            SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'TABLE' WHEN 'v' THEN 'VIEW'
                                  WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'SEQUENCE' END AS kind,
                   c.oid::regclass::text AS name, c.relowner AS owner
              FROM pg_class c
             WHERE c.relnamespace = 'webhooky'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
               -- A column's own sequence (identity, serial) goes with its table.
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
            UNION ALL
            SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
                   p.oid::regprocedure::text, p.proowner
              FROM pg_proc p WHERE p.pronamespace = 'webhooky'::regnamespace
            UNION ALL
            SELECT 'SCHEMA', 'webhooky', n.nspowner FROM pg_namespace n WHERE n.nspname = 'webhooky'
        )
        SELECT format('ALTER %s %s OWNER TO %I;', o.kind, o.name, (SELECT r.rolname FROM pg_roles r WHERE r.oid = (SELECT oid FROM owner))),
               (SELECT r.rolname FROM pg_roles r WHERE r.oid = o.owner)
          FROM objects o
         WHERE o.owner <> (SELECT oid FROM owner)
         ORDER BY o.kind, o.name
        """

    /// Whether every object of the schema belongs to the role that installed it. An upgrade
    /// run by another role (before `migrate` ran migrations as the schema's owner) left the
    /// newer objects to that role, and the owner's `SECURITY DEFINER` functions cannot use
    /// them: `webhooky.prune` fails on `first_id_since`, `grant_roles` on `role_grants`.
    func ownerCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let stray = try connection.query(Doctor.strayOwnersSQL)
        let owner = try Migrator(connection: connection).installedBy()?.quotedName ?? "?"
        guard stray.rowCount > 0 else { return DoctorCheck(.ok, "owner", "every object of the schema belongs to \(owner), which installed it") }
        let others = Set((0..<stray.rowCount).compactMap { stray[$0, 1] }).sorted().joined(separator: ", ")
        let statements = (0..<stray.rowCount).compactMap { stray[$0, 0] }
        return DoctorCheck(.warn, "owner", "\(stray.rowCount) of the schema's objects belong to \(others), not to \(owner), which installed it: its functions that run with its rights (webhooky.prune, grant_roles) may fail on them", details: [
            "An upgrade run by another role created them. A superuser gives them back (and webhooky migrate runs later upgrades as \(owner)):",
        ] + statements)
    }

    /// Workers with a heartbeat within ``heartbeatWindow``; none is a FAIL. A worker that is
    /// not alive but still holds claimed deliveries (killed, or cut off from the database) is
    /// named with them and when they go out again (``StrandedClaims``).
    func workersCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let result = try connection.query("""
            SELECT id, host, version, extract(epoch FROM now() - heartbeat_at), listening
              FROM webhooky.workers ORDER BY heartbeat_at DESC, id
            """)
        let stranded = try StrandedClaims.load(connection, heartbeatWindow: heartbeatWindow)
        var alive: [String] = []
        var gone: [(id: String, text: String)] = []
        for row in 0..<result.rowCount {
            let age = result[row, 3].flatMap { Double($0) } ?? .infinity
            let mode = result[row, 4] == "t" ? "listening" : "polling only (--no-listen)"
            let who = "\(result[row, 0] ?? "?") on \(result[row, 1] ?? "?"), webhooky \(result[row, 2] ?? "?")"
            if age <= heartbeatWindow {
                alive.append("\(who), heartbeat \(TextFormatting.duration(seconds: age)) ago, \(mode)")
            } else {
                gone.append((result[row, 0] ?? "?", "\(who): last heartbeat \(TextFormatting.duration(seconds: age)) ago (stopped, or lost the database)"))
            }
        }
        // Claims of workers without a row (it was removed as stale) are named by their id alone.
        let listed = Set(gone.map(\.id))
        gone += stranded.holders.filter { !listed.contains($0.worker) }.map { ($0.worker, "\($0.worker): no heartbeat row in webhooky.workers") }
        let details = gone.map { worker in
            stranded.holders.first { $0.worker == worker.id }.map { worker.text + "; " + StrandedClaims.fate(of: $0, anyAlive: !alive.isEmpty) } ?? worker.text
        }
        let held = stranded.count == 0 ? ""
            : "; \(TextFormatting.count(stranded.count)) claimed \(stranded.count == 1 ? "delivery is" : "deliveries are") held by \(stranded.whose)"
        guard !alive.isEmpty else {
            return DoctorCheck(.fail, "workers", "no worker alive: events are recorded but nothing is sent: start webhooky run" + held,
                               details: details + ["Run it next to the database, e.g. with deploy/webhooky.service: webhooky run --database-url ..."])
        }
        return DoctorCheck(.ok, "workers", (alive.count == 1 ? "1 worker alive" : "\(alive.count) workers alive") + held, details: alive + details)
    }

    /// Deliveries due and events not yet fanned out; WARN when the oldest waits over ``backlogWarning``.
    func backlogCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let result = try connection.query("""
            WITH pending AS (
                SELECT d.next_attempt_at, d.next_attempt_at <= now() AS due, w.enabled OR d.is_test AS sendable
                  FROM webhooky.deliveries d JOIN webhooky.webhooks w ON w.id = d.webhook_id
                 WHERE d.state = 'pending'
            ), waiting AS (
                SELECT e.created_at FROM webhooky.events e WHERE NOT e.fanned_out
            )
            SELECT (SELECT count(*) FROM pending WHERE due AND sendable),
                   (SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM pending WHERE due AND sendable),
                   (SELECT count(*) FROM waiting),
                   (SELECT extract(epoch FROM now() - min(created_at)) FROM waiting),
                   (SELECT count(*) FROM pending WHERE NOT due AND sendable),
                   (SELECT count(*) FROM pending WHERE NOT sendable),
                   (SELECT count(*) FROM webhooky.deliveries WHERE state = 'sending')
            """)
        // Claimed by a worker that stopped: not being sent, but held until their lease ends and a
        // live worker takes them back.
        let strandedClaims = try StrandedClaims.load(connection, heartbeatWindow: heartbeatWindow)
        let stranded = strandedClaims.count
        func int(_ column: Int) -> Int { result[0, column].flatMap { Int($0) } ?? 0 }
        let due = int(0), waiting = int(2), retrying = int(4), held = int(5), sending = int(6)
        let oldest = max(result[0, 1].flatMap { Double($0) } ?? 0, result[0, 3].flatMap { Double($0) } ?? 0)
        var details: [String] = []
        var others: [String] = []
        if retrying > 0 { others.append("\(TextFormatting.count(retrying)) pending until their retry is due") }
        if held > 0 { others.append("\(TextFormatting.count(held)) held by disabled webhooks") }
        if sending > stranded { others.append("\(TextFormatting.count(sending - stranded)) being sent") }
        if stranded > 0 { others.append("\(TextFormatting.count(stranded)) held by \(strandedClaims.whose) (see workers)") }
        if !others.isEmpty { details.append("Besides: " + others.joined(separator: ", ") + ".") }
        guard due + waiting > 0 else {
            return DoctorCheck(.ok, "backlog", "nothing waiting to be sent", details: details)
        }
        let counts = "\(TextFormatting.count(due)) \(due == 1 ? "delivery" : "deliveries") due and \(TextFormatting.count(waiting)) \(waiting == 1 ? "event" : "events") not yet fanned out"
        let age = "the oldest has been due for \(TextFormatting.duration(seconds: oldest))"
        if oldest > backlogWarning {
            let waiting = due == 0 ? [] : try WaitingWebhooks.load(connection).webhooks.map(WaitingWebhooks.line)
            return DoctorCheck(.warn, "backlog", "\(counts); \(age): the workers are not keeping up (or none runs)", details: [
                "Start more workers (webhooky run, anywhere), and make a slow endpoint answer sooner: one that takes over a quarter of --request-timeout "
                    + "gets 8 requests in flight per worker (README, \"Delivery semantics\"); webhooky tail --webhook ID shows each attempt's time"
                    + (waiting.isEmpty ? "." : ". Waiting longest:"),
            ] + waiting + details)
        }
        return DoctorCheck(.ok, "backlog", "\(counts); \(age)", details: details)
    }

    /// `pg_notification_queue_usage()`; WARN over ``notifyQueueWarning``.
    func notifyQueueCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let usage = try connection.query("SELECT pg_notification_queue_usage()").scalar.flatMap { Double($0) } ?? 0
        let percent = TextFormatting.formatted(usage * 100, decimals: 1) + " %"
        guard usage <= notifyQueueWarning else {
            return DoctorCheck(.warn, "NOTIFY queue", "\(percent) full: a session that LISTENs does not read its notifications", details: [
                "When the queue is full, NOTIFY fails, and with it every transaction that emits an event.",
                "Usually a session idle in a transaction holds it up: SELECT pid, usename, state, xact_start, query FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'; then SELECT pg_terminate_backend(pid);",
            ])
        }
        return DoctorCheck(.ok, "NOTIFY queue", "\(percent) full")
    }

    /// Deliveries that ended dead in the last 24 hours, per webhook; any is a WARN. Those that
    /// ended with their deleted webhook and those of tests (`webhooky.send_test`, which
    /// `redeliver_webhook` leaves out) are only counted apart.
    func deadCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let result = try connection.query("""
            SELECT d.webhook_id, CASE WHEN d.last_error = 'webhook deleted' THEN NULL ELSE coalesce(w.name, '') END, count(*), bool_or(w.id IS NULL),
                   to_char(date_trunc('second', min(d.created_at)) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00'), d.is_test
              FROM webhooky.deliveries d LEFT JOIN webhooky.webhooks w ON w.id = d.webhook_id
             WHERE d.state = 'dead' AND d.completed_at > now() - interval '24 hours'
             GROUP BY 1, 2, d.is_test ORDER BY count(*) DESC, d.webhook_id
            """)
        var total = 0
        var details: [String] = []
        var withDeletedWebhooks = 0
        // Tests (webhooky.send_test) are counted apart: redeliver_webhook does not send them again.
        var tests = 0
        // When the first of them was created (UTC, to the second, rounded down), of those whose webhook is still there.
        var firstCreated: String?
        // The webhooks (still there) that have them: with one, its id stands in the redelivery.
        var redeliverable: Set<String> = []
        for row in 0..<result.rowCount {
            let count = result[row, 2].flatMap { Int($0) } ?? 0
            guard let name = result[row, 1] else {
                // Ended with their webhook ("webhook deleted"): nothing to look into or send again.
                // (Those that died first and whose webhook was deleted since stay listed.)
                withDeletedWebhooks += count
                continue
            }
            guard result[row, 5] != "t" else {
                tests += count
                continue
            }
            total += count
            if result[row, 3] != "t", let created = result[row, 4] {
                if firstCreated.map({ created < $0 }) ?? true { firstCreated = created }
                redeliverable.insert(result[row, 0] ?? "?")
            }
            let label = result[row, 3] == "t" ? " (deleted since)" : name.isEmpty ? "" : " \"\(name)\""
            details.append("webhook \(result[row, 0] ?? "?")\(label): \(TextFormatting.count(count))")
        }
        var notes: [String] = []
        if withDeletedWebhooks > 0 {
            notes.append("\(TextFormatting.count(withDeletedWebhooks)) ended with \(withDeletedWebhooks == 1 ? "its deleted webhook" : "their deleted webhooks")")
        }
        if tests > 0 { notes.append("\(TextFormatting.count(tests)) test \(tests == 1 ? "delivery" : "deliveries") not counted") }
        let deletedNote = notes.isEmpty ? "" : (total == 0 ? "" : "; ") + notes.joined(separator: "; ")
        guard total > 0 else { return DoctorCheck(.ok, "dead", "no delivery gave up in the last 24 h" + (deletedNote.isEmpty ? "" : " (\(deletedNote))")) }
        // The deliveries counted above, not those only noted apart: a webhook deleted with a
        // backlog filled the last 20 with "webhook deleted" rows, and older ones were listed too.
        details.append("Why: SELECT id, webhook_id, last_status, last_error_code, last_error FROM webhooky.deliveries WHERE state = 'dead' AND completed_at > now() - interval '24 hours' AND NOT is_test AND last_error IS DISTINCT FROM 'webhook deleted' ORDER BY completed_at DESC LIMIT 20;")
        // redeliver_webhook goes by creation time, and a delivery dies long after it was created
        // (52 h with the default retry schedule, more with a longer one, or after a backlog or a
        // pause): since when the first of them was created, not a fixed age (3 days missed those
        // that died 20-24 h ago), and a time, not an age, so that it holds when run later.
        if let firstCreated {
            let webhook = redeliverable.count == 1 ? redeliverable.first! : "WEBHOOK_ID"
            details.append("Once the endpoint works, send them again: SELECT webhooky.redeliver_webhook(\(webhook), '\(firstCreated)');")
        }
        return DoctorCheck(.warn, "dead", "\(TextFormatting.count(total)) \(total == 1 ? "delivery" : "deliveries") gave up (dead) in the last 24 h" + deletedNote, details: details)
    }

    /// The names `webhooky.setting()` knows (migration 0006), as migration 0026 checks them.
    static let knownSettings = ["max_body_length", "max_header_value_length", "max_headers", "max_url_length", "max_webhooks_per_account"]

    /// Rows of `webhooky.settings` saved before migration 0026 checked them: a value that is not
    /// a whole number makes every save of a webhook fail (the checks read each limit), a FAIL;
    /// a name no setting has changes nothing, a WARN. Each with the statement that fixes it.
    func settingsCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let known = "ARRAY[" + Doctor.knownSettings.map { "'\($0)'" }.joined(separator: ", ") + "]"
        let rows = try connection.query("""
            SELECT name, format('%L', value), name = ANY (\(known)), format('%L', name)
              FROM webhooky.settings WHERE NOT name = ANY (\(known)) OR value !~ '^[0-9]{1,9}$' ORDER BY name
            """)
        guard rows.rowCount > 0 else {
            return DoctorCheck(.ok, "settings", "every row of webhooky.settings is a known limit with a whole number (no row: the defaults)")
        }
        var broken = false
        let details = (0..<rows.rowCount).map { row -> String in
            let (name, value, literal) = (TextFormatting.printable(rows[row, 0] ?? ""), TextFormatting.printable(rows[row, 1] ?? ""),
                                          TextFormatting.printable(rows[row, 3] ?? "''"))
            guard rows[row, 2] == "t" else {
                return "\(name) is no setting and changes nothing: DELETE FROM webhooky.settings WHERE name = \(literal);"
            }
            broken = true
            return "\(name) = \(value) is not a whole number, and every save of a webhook fails on it: "
                + "UPDATE webhooky.settings SET value = '...' WHERE name = \(literal); (or DELETE it for the default)"
        }
        return broken
            ? DoctorCheck(.fail, "settings", "webhooky.settings holds a limit that is not a whole number: no webhook can be added or changed", details: details)
            : DoctorCheck(.warn, "settings", "webhooky.settings holds rows that are no setting (misspelt?)", details: details)
    }

    /// Failing webhooks and those Webhooky disabled (WARN), those disabled by hand (noted).
    func webhooksCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let result = try connection.query("""
            SELECT w.id, w.name, w.enabled, w.disabled_reason, coalesce(h.consecutive_failures, 0),
                   extract(epoch FROM now() - h.failing_since),
                   (SELECT count(*) FROM webhooky.deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending' AND NOT d.is_test),
                   last.error, last.error_code, w.url, last.status, w.secret IS NOT NULL,
                   extract(epoch FROM h.failing_since - w.previous_secret_expires_at), extract(epoch FROM now() - w.disabled_at)
              FROM webhooky.webhooks w LEFT JOIN webhooky.webhook_health h ON h.webhook_id = w.id
              LEFT JOIN LATERAL (SELECT coalesce(a.error, 'HTTP ' || a.status) AS error, a.error_code, a.status FROM webhooky.attempts a
                                  WHERE a.webhook_id = w.id ORDER BY a.started_at DESC LIMIT 1) last ON true
             ORDER BY w.id
            """)
        var enabled = 0, failing = 0, disabledByWebhooky = 0, disabledByHand = 0
        var problems: [String] = []
        var notes: [String] = []
        let label = { (row: Int) in "webhook \(result[row, 0] ?? "?")" + ((result[row, 1] ?? "").isEmpty ? "" : " \"\(result[row, 1] ?? "")\"") }
        // The endpoint of each enabled webhook whose host is not templated (the worker's unit of
        // requests in flight), to name the webhooks whose deliveries wait behind a failing one.
        let endpoints = (0..<result.rowCount).map { row -> String? in
            // As the worker keys it (Webhook.endpoint): none when a variable is part of the host.
            guard result[row, 2] == "t", let url = result[row, 9], let template = try? URLTemplate(url) else { return nil }
            return template.fixedOrigin.flatMap(Endpoint.key(forURL:))
        }
        /// What waits behind the failing webhook in `row` on its endpoint: other enabled webhooks
        /// with the same endpoint and pending deliveries, which get no failure of their own (when
        /// they fail too, the endpoint is down for all of them, and each has its own line).
        func sharedEndpoint(of row: Int) -> String {
            guard let endpoint = endpoints[row] else { return "" }
            let behind = (0..<result.rowCount).filter { other in
                other != row && endpoints[other] == endpoint && (result[other, 6].flatMap { Int($0) } ?? 0) > 0
                    && (result[other, 4].flatMap { Int($0) } ?? 0) == 0
            }
            guard !behind.isEmpty else { return "" }
            let names = behind.map { "\(label($0)) (\(TextFormatting.count(result[$0, 6].flatMap { Int($0) } ?? 0)) pending)" }
            return " It shares its endpoint \(endpoint) with \(names.joined(separator: ", ")): while it fails, the workers send that endpoint "
                + "one request at a time, so \(behind.count == 1 ? "those deliveries wait" : "their deliveries wait") too; pause or fix this one "
                + "(UPDATE webhooky.webhooks SET enabled = false WHERE id = \(result[row, 0] ?? "?");) and they catch up."
        }
        for row in 0..<result.rowCount {
            let id = result[row, 0] ?? "?"
            let label = label(row)
            let waiting = result[row, 6].flatMap { Int($0) } ?? 0
            if result[row, 2] == "t" {
                enabled += 1
                let failures = result[row, 4].flatMap { Int($0) } ?? 0
                guard failures > 0 else { continue }
                failing += 1
                let since = result[row, 5].flatMap { Double($0) }.map { " for \(TextFormatting.duration(seconds: $0))" } ?? ""
                // The code first, as status and tail show it: "[timeout] Operation timed out ...";
                // a connection error as status shortens it, so that its host and port fit:
                // "[connect_failure] hooks.example.com port 443", not "... after 0 ms: Couldn'…".
                let last = result[row, 7].map { error in
                    "; last: " + (result[row, 8] == nil ? TextFormatting.shortened(error, to: 80) : HealthTable.fitted(HealthTable.brief(error), code: result[row, 8], to: 80))
                } ?? ""
                let advice = FailureAdvice(webhookID: id, lastError: result[row, 7], lastErrorCode: result[row, 8], lastStatus: result[row, 10].flatMap { Int($0) },
                                           signed: result[row, 11] == "t", failingAfterOverlap: result[row, 12].flatMap { Double($0) }).text
                problems.append("\(label): \(TextFormatting.count(failures)) failed \(failures == 1 ? "attempt" : "attempts") in a row\(since)\(last). \(advice)"
                                + sharedEndpoint(of: row))
            } else if let reason = result[row, 3] {
                disabledByWebhooky += 1
                // While it is disabled its events are not recorded for it: each hour it stays so
                // is an hour of events its receiver never gets.
                let ago = result[row, 13].flatMap { Double($0) }.map { " \(TextFormatting.duration(seconds: $0)) ago" } ?? ""
                // 410 Gone: the receiver removed that URL; enabling it again alone sends there again.
                let newURL = reason.hasPrefix("the endpoint answered 410") ? " (410: the receiver removed that URL; give the webhook its new one: UPDATE webhooky.webhooks SET url = '...' WHERE id = \(id);)" : ""
                problems.append("\(label) was disabled by Webhooky\(ago): \(reason); \(TextFormatting.count(waiting)) \(waiting == 1 ? "delivery waits" : "deliveries wait"), "
                    + "and its events since then are not recorded for it (its receiver never gets them). Once the endpoint works\(newURL): UPDATE webhooky.webhooks SET enabled = true WHERE id = \(id);")
            } else {
                disabledByHand += 1
                notes.append("\(label) is disabled by hand" + (waiting > 0 ? "; \(TextFormatting.count(waiting)) \(waiting == 1 ? "delivery waits" : "deliveries wait") for it" : ""))
            }
        }
        guard result.rowCount > 0 else {
            return DoctorCheck(.ok, "webhooks", "no webhooks yet (INSERT INTO webhooky.webhooks adds one; see docs/admin.md)")
        }
        var parts = ["\(result.rowCount) \(result.rowCount == 1 ? "webhook" : "webhooks"), \(enabled) enabled"]
        if failing > 0 { parts.append("\(failing) failing") }
        if disabledByWebhooky > 0 { parts.append("\(disabledByWebhooky) disabled by Webhooky") }
        if disabledByHand > 0 { parts.append("\(disabledByHand) disabled by hand") }
        if failing == 0 && disabledByWebhooky == 0 { parts.append("none failing") }
        return DoctorCheck(problems.isEmpty ? .ok : .warn, "webhooks", parts.joined(separator: ", "), details: problems + notes)
    }

    /// Enabled webhooks whose templates use a variable that neither their event type's sample
    /// nor its recent events have (WARN): it renders as the empty string, which is usually a
    /// misspelt name. Saving the row does not catch it (the names of an event's payload are not
    /// fixed anywhere); `webhooky preview` shows it for one webhook, this for all. A variable
    /// that only the sample has, while none of at least ``sampleOnlyMinimumEvents`` recent
    /// events did, is one too: every request had "" for it (the trigger leaves it out). Also text of
    /// the body or a header that reads as a variable missing its closing `#` (`"#customer.id"`),
    /// which is sent as written (``RequestTemplate/unclosedVariables(offered:)``).
    func templateVariablesCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let result = try connection.query("SELECT id, name, event, url, body, headers::text FROM webhooky.webhooks WHERE enabled ORDER BY id")
        // Per event: the names its sample or recent events have, those of them only its sample
        // has, and how many recent events were read (webhooky.variables reads up to 100).
        var offered: [String: (names: Set<String>, sampleOnly: Set<String>, recent: Int)] = [:]
        var nullEnclosed: [String: Bool] = [:]  // by event and variable: many webhooks share them
        var problems: [String] = []
        var compared = 0
        var flagged = 0
        var anyUnclosed = false
        for row in 0..<result.rowCount {
            let id = result[row, 0] ?? "?"
            let event = result[row, 2] ?? ""
            let label = "webhook \(id)" + ((result[row, 1] ?? "").isEmpty ? "" : " \"\(result[row, 1] ?? "")\"")
            // A row the database's checks let through always parses; one that does not is the
            // webhooks check's and the worker's to report.
            guard let webhook = try? Webhook(id: Int64(id) ?? 0, revision: 1, name: result[row, 1] ?? "", url: result[row, 3] ?? "",
                                             body: result[row, 4], headersJSON: result[row, 5] ?? "{}", secret: nil) else { continue }
            if offered[event] == nil {
                let names = try connection.query("SELECT variable, source = 'sample' FROM webhooky.variables($1)", [event])
                // As webhooky.variables reads them: the event's last 100 among the latest 10,000.
                let recent = try connection.query("""
                    SELECT least(count(*), 100) FROM (SELECT e.event, e.is_test FROM webhooky.events e ORDER BY e.id DESC LIMIT 10000) e
                     WHERE e.event = $1 AND NOT e.is_test
                    """, [event]).scalar.flatMap { Int($0) } ?? 0
                offered[event] = (Set((0..<names.rowCount).compactMap { names[$0, 0] }),
                                  Set((0..<names.rowCount).filter { names[$0, 1] == "t" }.compactMap { names[$0, 0] }), recent)
            }
            // Without a sample or any event there is nothing to compare with.
            guard let (names, sampleOnly, recent) = offered[event], !names.isEmpty else { continue }
            compared += 1
            let unknown = webhook.template.variables.filter { !names.contains($0.name) }
            // In the sample, but in none of enough real events: every request had "" for it
            // (the trigger does not put it in the payload, or no longer does).
            // Not when the events have an enclosing name, always as null (the reference
            // trigger's "tier": null for a customer without a tier): the trigger does put it in.
            var unsent: [Variable] = []
            for variable in webhook.template.variables where recent >= sampleOnlyMinimumEvents && sampleOnly.contains(variable.name) {
                let key = event + "\u{0}" + variable.name
                let excused: Bool
                if let known = nullEnclosed[key] { excused = known } else {
                    excused = try Self.enclosedInNull(variable.name, event: event, connection)
                    nullEnclosed[key] = excused
                }
                if !excused { unsent.append(variable) }
            }
            let unclosed = webhook.template.unclosedVariables(offered: names)
            if !unknown.isEmpty || !unclosed.isEmpty || !unsent.isEmpty { flagged += 1 }
            anyUnclosed = anyUnclosed || !unclosed.isEmpty
            problems += unclosed.map { "\(label): \($0.sentence)" }
            if !unsent.isEmpty {
                problems.append("\(label) uses \(unsent.map(\.description).joined(separator: ", ")), which \(event)'s sample has but none of its last \(recent) events: "
                    + "\(unsent.count == 1 ? "it was" : "they were") sent as the empty string in each (does the trigger put \(unsent.count == 1 ? "it" : "them") in the payload? "
                    + "SELECT * FROM webhooky.variables(\(TextFormatting.sqlLiteral(event))); shows where each name comes from)")
            }
            guard !unknown.isEmpty else { continue }
            let list = unknown.map(\.description).joined(separator: ", ")
            let guesses = unknown.compactMap { variable in Suggestion.closest(to: variable.name, among: names).map { "#\($0)#" } }
            let guess = guesses.isEmpty ? "" : "; did you mean \(guesses.joined(separator: ", "))"
            problems.append("\(label) uses \(list), which \(event)'s sample and recent events do not have: "
                + "\(unknown.count == 1 ? "it renders" : "they render") as the empty string (a misspelt name\(guess)? "
                + "SELECT * FROM webhooky.variables(\(TextFormatting.sqlLiteral(event))); lists the names; webhooky preview \(id) shows the request)")
        }
        guard problems.isEmpty else {
            let what = "variables their event does not have" + (anyUnclosed ? " or a #name without its closing '#'" : "")
            return DoctorCheck(.warn, "variables", "\(flagged) of \(result.rowCount) enabled \(result.rowCount == 1 ? "webhook uses" : "webhooks use") \(what)", details: problems)
        }
        return DoctorCheck(.ok, "variables", compared == 0
            ? "no enabled webhook to compare with its event's variables"
            : "every variable of the enabled webhooks is in its event's sample or recent events")
    }

    /// Whether the trigger evidently puts an enclosing name of `variable` in as null when there
    /// is nothing (the reference trigger's `"tier": null` for a customer without a tier), so
    /// that a variable inside it which no event has is no sign of a trigger that leaves it out.
    /// Each of `event`'s recent events (as ``variablesCheck(_:)`` reads them) is classed by the
    /// first name along the variable's path that is not an object: true when that is null in
    /// some and in none a string, number, boolean or array, or missing.
    static func enclosedInNull(_ variable: String, event: String, _ connection: Connection) throws(PostgresError) -> Bool {
        let depth = variable.split(separator: ".").count - 1
        guard depth > 0 else { return false }
        return try connection.query("""
            SELECT count(*) FILTER (WHERE c.kind = 'null') > 0 AND count(*) FILTER (WHERE c.kind <> 'null') = 0
              FROM (SELECT e.payload FROM (SELECT e.id, e.event, e.is_test, e.payload FROM webhooky.events e ORDER BY e.id DESC LIMIT 10000) e
                     WHERE e.event = $1 AND NOT e.is_test ORDER BY e.id DESC LIMIT 100) e
             CROSS JOIN LATERAL (
                   SELECT coalesce((SELECT coalesce(jsonb_typeof(e.payload #> (string_to_array($2, '.'))[1:d]), 'missing') AS kind
                                      FROM generate_series(1, $3::integer) d
                                     WHERE coalesce(jsonb_typeof(e.payload #> (string_to_array($2, '.'))[1:d]), 'missing') <> 'object'
                                     ORDER BY d LIMIT 1), 'missing') AS kind) c
            """, [event, variable, String(depth)]).scalar == "t"
    }

    /// Event types with enabled webhooks whose last event is overdue against their usual pace (WARN).
    /// The pace is that of an event type's last events (at most ``paceRecentEvents``, 1,000,
    /// among the newest ``paceScanEvents``), with the silence before them when there are as
    /// many, so that a nightly batch of more (one transaction's share their time) is judged by
    /// the night before it, not
    /// by its own pace; when fewer than ``paceMinimumEvents`` are left, those that
    /// `webhooky.prune` deleted count too (`webhooky.event_pace`), so a trigger dropped longer ago
    /// than the retention is still noticed. The silence counts from the last event, or from when
    /// a webhook made the type wanted again (the type's newest note in `webhooky.event_wanted`,
    /// written at the commit of that change), whichever is later. Not for a `tenant`'s role: it
    /// may not read them, and they are every account's; its own events left are its pace.
    func eventsCheck(_ connection: Connection, tenant: Bool = false) throws(PostgresError) -> DoctorCheck {
        let pruned = tenant ? "(SELECT NULL::text, NULL::bigint, NULL::timestamptz, NULL::timestamptz, NULL::interval) AS p (event, events, first_at, last_at, longest_gap)"
            : "webhooky.event_pace p"
        let wanted = tenant ? "(SELECT NULL::text, NULL::timestamptz) AS s (event, wanted_since)"
            : "(SELECT event, max(wanted_since) AS wanted_since FROM webhooky.event_wanted GROUP BY event) s"
        let result = try connection.query("""
            WITH types AS (
                SELECT DISTINCT w.event FROM webhooky.webhooks w WHERE w.enabled
            ), scan AS (
                SELECT coalesce(max(id), 0) - $1 AS floor FROM webhooky.events
            ), recent AS (
                SELECT t.event, e.created_at,
                       e.created_at - lag(e.created_at) OVER (PARTITION BY t.event ORDER BY e.created_at) AS gap
                  FROM types t CROSS JOIN LATERAL (
                       SELECT e.created_at FROM webhooky.events e
                        WHERE e.event = t.event AND NOT e.is_test AND e.id > (SELECT floor FROM scan)
                        ORDER BY e.id DESC LIMIT $3) e
            ), newest AS (
                SELECT t.event, count(r.created_at) AS n, min(r.created_at) AS first_at, max(r.created_at) AS last_at, max(r.gap) AS longest
                  FROM types t LEFT JOIN recent r ON r.event = t.event
                 GROUP BY t.event
            ), live AS (
                -- The silence before them, when they are all the scan read ($3) and may be
                -- one burst (a nightly batch: one transaction's events share their time): the
                -- newest older event in the scan, since the type was last wanted (nothing is
                -- recorded while no webhook wants it). Fewer than $3 are every event of the
                -- type in the scan: nothing older to find, and no scan made.
                SELECT n.event, n.n, n.first_at, n.last_at, greatest(n.longest, n.first_at - b.created_at) AS longest, s.wanted_since
                  FROM newest n LEFT JOIN \(wanted) ON s.event = n.event
                  LEFT JOIN LATERAL (
                       SELECT e.created_at FROM webhooky.events e
                        WHERE n.n >= $3 AND e.event = n.event AND NOT e.is_test AND e.id > (SELECT floor FROM scan)
                          AND e.created_at < n.first_at AND e.created_at >= coalesce(s.wanted_since, '-infinity')
                        ORDER BY e.id DESC LIMIT 1) b ON true
            ), paced AS (
                -- Too few events left (webhooky.prune deleted the older ones): those it deleted count too.
                -- No event is recorded while no enabled webhook wants the type: the silence counts
                -- from when one wanted it again at the earliest.
                SELECT l.event, l.n + coalesce(p.events, 0) AS n,
                       least(l.first_at, p.first_at) AS first_at, greatest(l.last_at, p.last_at) AS last_at,
                       greatest(l.longest, p.longest_gap, l.first_at - p.last_at) AS longest, l.wanted_since
                  FROM live l LEFT JOIN \(pruned) ON p.event = l.event AND l.n < $2
            )
            SELECT event, n, extract(epoch FROM now() - greatest(last_at, wanted_since)),
                   extract(epoch FROM last_at - first_at) / nullif(n - 1, 0), extract(epoch FROM longest)
              FROM paced ORDER BY event
            """, [String(paceScanEvents), String(paceMinimumEvents), String(paceRecentEvents)])
        var overdue: [(event: String, text: String)] = []
        var judged = 0
        for row in 0..<result.rowCount {
            let event = result[row, 0] ?? "?"
            let count = result[row, 1].flatMap { Int($0) } ?? 0
            guard count >= paceMinimumEvents, let silence = result[row, 2].flatMap({ Double($0) }),
                  let gap = result[row, 3].flatMap({ Double($0) }) else { continue }
            judged += 1
            // Events that pause every night (or weekend) paused as long before: only a silence
            // clearly longer than the longest among the recent events counts.
            let longest = result[row, 4].flatMap { Double($0) } ?? 0
            let usual = max(paceFactor * gap, paceMinimum)
            if silence > max(usual, paceLongestSilenceFactor * longest) {
                let beyondLongest = paceLongestSilenceFactor * longest > usual
                    ? ", longer than the longest silence among them (\(TextFormatting.duration(seconds: longest)))" : ""
                overdue.append((event, "\(event): none for \(TextFormatting.duration(seconds: silence)), though one came every \(TextFormatting.duration(seconds: gap)) on average over its last \(TextFormatting.count(count)) events\(beyondLongest): has a trigger been dropped?"))
            }
        }
        guard !overdue.isEmpty else {
            let summary = result.rowCount == 0 ? "no enabled webhooks, so no events are expected"
                : judged == 0 ? "too few events yet to know their usual pace"
                : "every event type with enabled webhooks had an event at its usual pace"
            return DoctorCheck(.ok, "events", summary)
        }
        var details: [String] = []
        for item in overdue {
            details.append(item.text)
            details.append(contentsOf: try triggers(for: item.event, connection))
        }
        return DoctorCheck(.warn, "events", overdue.count == 1 ? "1 event type has had no event for unusually long"
                           : "\(overdue.count) event types have had no event for unusually long", details: details)
    }

    /// Triggers whose WHEN clause reads `webhooky.wanted_events` must test the bit of every
    /// event their function emits (what `webhooky.wanted_condition(event)` writes); one that tests
    /// another bit (a misspelt or renamed event) silently skips its events. FAIL if any does.
    /// A trigger function that calls `webhooky.emit` with the caller's search_path, while every
    /// role may create objects in a schema (public, in a database created before PostgreSQL 15),
    /// is a WARN: a function created there can be taken for a built-in one (`jsonb_build_object`)
    /// and run with the rights of whoever changes the table. The finding gives the `ALTER
    /// FUNCTION ... SET search_path` that fixes it, and says to write the schema of the
    /// function's own tables and functions first (the ALTER alone breaks a function that finds
    /// them through the caller's search_path, and with it every change of its table).
    func triggerConditionsCheck(_ connection: Connection) throws(PostgresError) -> DoctorCheck {
        let result = try connection.query("""
            SELECT t.tgrelid::regclass::text, t.tgname, e.name
              FROM pg_trigger t
              JOIN pg_proc p ON p.oid = t.tgfoid
              JOIN webhooky.event_types e ON strpos(p.prosrc, quote_literal(e.name)) > 0
             WHERE NOT t.tgisinternal AND strpos(p.prosrc, 'webhooky.emit') > 0
               AND strpos(pg_get_triggerdef(t.oid), 'webhooky.wanted_events') > 0
               AND strpos(pg_get_triggerdef(t.oid), quote_literal(webhooky.event_bit(e.name)::text) || '::bigint') = 0
             ORDER BY 1, 2, 3
            """)
        let unknown = try unknownEventsInTriggers(connection)
        let ungranted = try connection.query(Self.writersWithoutEmitSQL)
        if result.rowCount > 0 || !unknown.isEmpty || ungranted.rowCount > 0 {
            let details = (0..<result.rowCount).map { row in
                let table = result[row, 0] ?? "?", name = result[row, 1] ?? "?", event = result[row, 2] ?? "?"
                return "Trigger \(name) on \(table) emits \(event) but its WHEN clause does not test that event's bit, so it skips \(event) events: "
                    + "re-create it with the condition that SELECT webhooky.wanted_condition('\(event)') returns."
            } + unknown.map(\.text) + (0..<ungranted.rowCount).map { row in
                let role = ungranted[row, 0] ?? "?", table = ungranted[row, 2] ?? "?", trigger = ungranted[row, 3] ?? "?"
                let who = ungranted[row, 4] == "t"
                    ? "Function \(ungranted[row, 5] ?? "?") runs as its owner \(role) (SECURITY DEFINER), which may not call webhooky.emit: each change that fires its trigger \(trigger) on \(table) fails "
                    : "Role \(role) may \(ungranted[row, 1] ?? "?") \(table), whose trigger \(trigger) calls webhooky.emit, but may not call it: each such change fails "
                // A member that does not inherit the group's rights (NOINHERIT) has it already.
                let fix = ungranted[row, 6] == "t" ? "ALTER ROLE \(role) INHERIT; (it is a member of webhooky_emitter but does not inherit its rights)"
                    : "GRANT webhooky_emitter TO \(role);"
                return who + "(\"permission denied for schema webhooky\" or \"for function emit\") and is rolled back. " + fix
            }
            let failing = unknown.filter(\.failsChanges).count
            let skipping = result.rowCount + unknown.count - failing
            let roles = Set((0..<ungranted.rowCount).compactMap { ungranted[$0, 0] }).count
            let summary = [
                skipping == 0 ? nil : skipping == 1 ? "1 trigger may skip its events" : "\(skipping) triggers may skip their events",
                failing == 0 ? nil : failing == 1 ? "1 trigger function fails the changes that reach its webhooky.emit"
                    : "\(failing) trigger functions fail the changes that reach their webhooky.emit",
                roles == 0 ? nil : roles == 1 ? "1 role fires a trigger that calls webhooky.emit but may not call it"
                    : "\(roles) roles fire a trigger that calls webhooky.emit but may not call it",
            ].compactMap { $0 }.joined(separator: "; ")
            return DoctorCheck(.fail, "triggers", summary, details: details)
        }
        let open = try connection.query(Self.searchPathExposedSQL)
        guard open.rowCount > 0 else {
            return DoctorCheck(.ok, "triggers", "every trigger that reads webhooky.wanted_events tests the events it emits")
        }
        let schemas = open[0, 2] ?? "?"
        let details = (0..<open.rowCount).map { row in
            "Function \(open[row, 0] ?? "?") (trigger \(open[row, 1] ?? "?")) calls webhooky.emit with the caller's search_path: "
                + "ALTER FUNCTION \(open[row, 0] ?? "?") SET search_path = pg_catalog, pg_temp;"
        } + [
            // The ALTER alone would break a function that finds its own tables or functions
            // through the caller's search_path: every change of its table would then fail.
            "Before the ALTER, write the schema of every table and function of your own that the function uses (shop.order_payload(NEW), not order_payload(NEW)): "
                + "with that search_path it finds only built-ins and what it names with a schema, and a name it no longer finds makes every change of its table fail.",
        ]
        return DoctorCheck(.warn, "triggers", open.rowCount == 1
                           ? "1 trigger function may run another role's code: every role may create objects in \(schemas)"
                           : "\(open.rowCount) trigger functions may run another role's code: every role may create objects in \(schemas)",
                           details: details)
    }

    /// Trigger functions that name, in `webhooky.emit('...')` or `webhooky.has_webhooks('...')`,
    /// an event that `webhooky.event_types` does not have (a misspelt or unregistered name):
    /// `has_webhooks` is false for it, so a trigger that asks it first records nothing, silently;
    /// one that calls `emit` with it unasked makes every change that runs it fail. One finding
    /// per function and name, with the registered name it probably meant, and whether the changes
    /// of its table fail (`emit` alone names it) rather than record nothing (`has_webhooks` asks first).
    private func unknownEventsInTriggers(_ connection: Connection) throws(PostgresError) -> [(text: String, failsChanges: Bool)] {
        let result = try connection.query("""
            SELECT p.oid::regprocedure::text, string_agg(DISTINCT format('%s on %s', t.tgname, t.tgrelid::regclass), ', '), m.name,
                   bool_or(m.asked)
              FROM pg_trigger t
              JOIN pg_proc p ON p.oid = t.tgfoid
             CROSS JOIN LATERAL (SELECT x[2] AS name, bool_or(x[1] = 'has_webhooks') AS asked
                                   FROM regexp_matches(p.prosrc, 'webhooky\\.(emit|has_webhooks)\\s*\\(\\s*''([^'']*)''', 'g') x
                                  GROUP BY x[2]) m
             WHERE NOT t.tgisinternal AND NOT EXISTS (SELECT 1 FROM webhooky.event_types e WHERE e.name = m.name)
             GROUP BY p.oid, m.name
             ORDER BY 1, 3
            """)
        guard result.rowCount > 0 else { return [] }
        let registered = try connection.query("SELECT name FROM webhooky.event_types")
        let names = (0..<registered.rowCount).compactMap { registered[$0, 0] }
        return (0..<result.rowCount).map { row in
            let function = result[row, 0] ?? "?", triggers = result[row, 1] ?? "?", event = result[row, 2] ?? "?"
            let guess = Suggestion.closest(to: event, among: names).map { " (did you mean '\($0)'?)" } ?? ""
            let failsChanges = result[row, 3] != "t"
            let outcome = !failsChanges ? "has_webhooks is false for it, so the trigger records nothing, silently. "
                : "webhooky.emit refuses it, so each change whose trigger reaches that call fails (\"webhooky.emit: unknown event '\(event)'\") and is rolled back. "
            return ("Function \(function) (trigger \(triggers)) names event '\(event)', which webhooky.event_types does not have\(guess): "
                + outcome
                + "Correct the name in the function, or register the event: INSERT INTO webhooky.event_types (name, description, sample) VALUES (...);",
                failsChanges)
        }
    }

    /// Trigger functions that call `webhooky.emit` without a search_path of their own, with the
    /// triggers that run them and the schemas where PUBLIC may create objects; no rows when
    /// there is no such schema (PostgreSQL 15's default).
    static let searchPathExposedSQL = """
        WITH open AS (
            SELECT string_agg(quote_ident(n.nspname), ', ' ORDER BY n.nspname) AS schemas FROM pg_namespace n
             WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' AND has_schema_privilege('public', n.oid, 'CREATE')
        )
        SELECT p.oid::regprocedure::text, string_agg(format('%s on %s', t.tgname, t.tgrelid::regclass), ', ' ORDER BY t.tgname), open.schemas
          FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid CROSS JOIN open
         WHERE open.schemas IS NOT NULL AND NOT t.tgisinternal AND strpos(p.prosrc, 'webhooky.emit') > 0
           AND NOT coalesce(EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%'), false)
         GROUP BY p.oid, open.schemas
         ORDER BY 1
        """

    /// Roles that fire a trigger whose function calls `webhooky.emit` but may not call it (no
    /// `GRANT webhooky_emitter`, or a member that does not inherit it): every such change fails.
    /// Login roles (not superusers) that may reach the table (its schema) and make one of the
    /// trigger's changes (INSERT and UPDATE also by a grant on some columns only); for a
    /// `SECURITY DEFINER` function, which calls emit as its owner, the owner instead. A trigger
    /// on a partition that PostgreSQL cloned from its parent's counts once, as the parent's.
    /// One row per role and trigger: the role, what it may do there (`UPDATE`; `NULL` for an
    /// owner), the table, the trigger, whether the function is `SECURITY DEFINER`, the function,
    /// whether the role is a member of webhooky_emitter (then it does not inherit it).
    static let writersWithoutEmitSQL = """
        WITH fired AS (
            SELECT t.tgrelid, t.tgname, c.relnamespace, p.prosecdef, p.proowner, p.oid::regprocedure::text AS function,
                   array_remove(ARRAY[CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END, CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END,
                                      CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END, CASE WHEN t.tgtype & 32 <> 0 THEN 'TRUNCATE' END], NULL) AS changes
              FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_class c ON c.oid = t.tgrelid
             WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgenabled <> 'D' AND strpos(p.prosrc, 'webhooky.emit') > 0
        ), allowed AS (
            SELECT f.*, r.oid AS role, r.rolname,
                   (SELECT string_agg(k, '/') FROM unnest(f.changes) k
                     WHERE CASE WHEN k IN ('INSERT', 'UPDATE') THEN has_any_column_privilege(r.oid, f.tgrelid, k)
                                ELSE has_table_privilege(r.oid, f.tgrelid, k) END) AS may
              FROM fired f JOIN pg_roles r ON CASE WHEN f.prosecdef THEN r.oid = f.proowner ELSE r.rolcanlogin END
             WHERE NOT r.rolsuper AND cardinality(f.changes) > 0
        )
        SELECT a.rolname, CASE WHEN NOT a.prosecdef THEN a.may END, a.tgrelid::regclass::text, a.tgname, a.prosecdef, a.function,
               EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = 'webhooky_emitter' AND m.member = a.role)
          FROM allowed a
         WHERE (a.prosecdef OR (a.may IS NOT NULL AND has_schema_privilege(a.role, a.relnamespace, 'USAGE')))
           AND NOT (has_schema_privilege(a.role, 'webhooky', 'USAGE')
                    AND has_function_privilege(a.role, 'webhooky.emit(text, jsonb, text)', 'EXECUTE'))
         ORDER BY 1, 3, 4
        """

    /// Enabled webhooks for one account (`account_id` set) whose event a trigger function emits
    /// without an account: `webhooky.emit(event, payload)` (or a `NULL` account) fires only the
    /// webhooks for every account, so these never get the event from that call; and
    /// `webhooky.has_webhooks(event)` without an account is false while no webhook for every
    /// account wants the event, so a trigger that asks it first records nothing for them. WARN,
    /// one line per function and event, with the webhooks and the fixes (for a tenant's role,
    /// which sees only its own webhooks, the `has_webhooks` case is not judged, and the fix is
    /// the DBA's). Calls whose event is not a literal are not judged, and the OK line counts them
    /// (see ``EmitCall`` for what is read).
    func accountsCheck(_ connection: Connection, tenant: Bool) throws(PostgresError) -> DoctorCheck {
        let webhooks = try connection.query("""
            SELECT w.event, w.id, w.name, quote_literal(w.account_id), w.account_id IS NULL FROM webhooky.webhooks w WHERE w.enabled ORDER BY w.event, w.id
            """)
        var forOneAccount: [String: [(id: String, label: String)]] = [:], forEveryAccount: Set<String> = []
        for row in 0..<webhooks.rowCount {
            let event = webhooks[row, 0] ?? "?", id = webhooks[row, 1] ?? "?", name = TextFormatting.printable(webhooks[row, 2] ?? "")
            if webhooks[row, 4] == "t" { forEveryAccount.insert(event); continue }
            let label = "webhook \(id)" + (name.isEmpty ? "" : " \"\(name)\"") + " (account \(TextFormatting.printable(webhooks[row, 3] ?? "?")))"
            forOneAccount[event, default: []].append((id, label))
        }
        guard !forOneAccount.isEmpty else { return DoctorCheck(.ok, "accounts", "no enabled webhook is for one account only") }
        let functions = try connection.query("""
            SELECT p.oid::regprocedure::text, string_agg(DISTINCT format('%s on %s', t.tgname, t.tgrelid::regclass), ', '), p.prosrc
              FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
             WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgenabled <> 'D'
               AND p.prosrc ~* '"?webhooky"?\\s*\\.\\s*"?(emit|has_webhooks)'
             GROUP BY p.oid, p.prosrc
             ORDER BY 1
            """)
        var details: [String] = []
        var missed: Set<String> = []
        var unjudged = 0
        for row in 0..<functions.rowCount {
            let function = functions[row, 0] ?? "?", triggers = functions[row, 1] ?? "?"
            let calls = EmitCall.calls(in: functions[row, 2] ?? "")
            unjudged += calls.filter { $0.event == nil }.count
            for event in Set(calls.filter { !$0.passesAccount }.compactMap(\.event)).sorted() {
                guard let webhooks = forOneAccount[event] else { continue }
                let emitCalls = calls.filter { $0.function == .emit && $0.event == event }
                let emitsWithout = emitCalls.contains { !$0.passesAccount }
                // has_webhooks without an account is true while a webhook for every account wants
                // it; a tenant's role cannot see those webhooks, so it does not judge this.
                guard emitsWithout || !(tenant || forEveryAccount.contains(event)) else { continue }
                missed.formUnion(webhooks.map(\.id))
                let what: String
                if !emitsWithout {
                    what = "asks webhooky.has_webhooks('\(event)') without an account, which is false while only webhooks for one account want it, so it records nothing for them"
                } else if emitCalls.allSatisfy({ !$0.passesAccount }) {
                    what = "emits \(event) without an account (webhooky.emit with two arguments, or NULL for the third), which fires only the webhooks for every account"
                } else {
                    what = "emits \(event) without an account in some of its calls (webhooky.emit with two arguments, or NULL for the third), which fire only the webhooks for every account"
                }
                let scope = emitsWithout && emitCalls.contains(where: \.passesAccount) ? "from those calls" : "from it"
                let pass = emitsWithout ? "webhooky.emit('\(event)', payload, NEW.account_column::text)" : "webhooky.has_webhooks('\(event)', NEW.account_column::text)"
                let fix = tenant
                    ? "The DBA passes the account, as the webhooks' account_id holds it: \(pass)."
                    : "Pass the account, as the webhooks' account_id holds it: \(pass); or, when these webhooks are to get every account's events, "
                        + "UPDATE webhooky.webhooks SET account_id = NULL WHERE id IN (\(webhooks.map(\.id).joined(separator: ", ")));"
                details.append("Function \(function) (trigger \(triggers)) \(what): \(webhooks.map(\.label).joined(separator: ", ")) "
                    + "\(webhooks.count == 1 ? "never gets" : "never get") \(event) events \(scope). " + fix)
            }
        }
        guard !details.isEmpty else {
            let notRead = unjudged == 0 ? ""
                : unjudged == 1 ? " (1 call names its event otherwise than as a literal and was not read)"
                : " (\(unjudged) calls name their event otherwise than as a literal and were not read)"
            return DoctorCheck(.ok, "accounts", "the trigger functions pass an account with the events that webhooks for one account want" + notRead)
        }
        return DoctorCheck(.warn, "accounts", missed.count == 1 ? "1 webhook for one account never gets events a trigger emits without an account"
                           : "\(missed.count) webhooks for one account never get events a trigger emits without an account", details: details)
    }

    /// The triggers whose function names `event` (so probably emits it), and whether they fire.
    private func triggers(for event: String, _ connection: Connection) throws(PostgresError) -> [String] {
        let result = try connection.query("""
            SELECT t.tgrelid::regclass::text, t.tgname, t.tgenabled = 'D'
              FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
             WHERE NOT t.tgisinternal AND strpos(p.prosrc, 'webhooky.emit') > 0 AND strpos(p.prosrc, quote_literal($1)) > 0
             ORDER BY 1, 2
            """, [event])
        guard result.rowCount > 0 else {
            return ["  No trigger function calls webhooky.emit('\(event)', ...): if one did, it was dropped or replaced."]
        }
        return (0..<result.rowCount).map { row in
            let table = result[row, 0] ?? "?", name = result[row, 1] ?? "?"
            return result[row, 2] == "t"
                ? "  Trigger \(name) on \(table) is DISABLED: ALTER TABLE \(table) ENABLE TRIGGER \(name);"
                : "  Trigger \(name) on \(table) is enabled: maybe nothing changed, or its WHEN condition no longer matches."
        }
    }
}
