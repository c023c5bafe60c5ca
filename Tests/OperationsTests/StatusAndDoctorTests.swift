import Foundation
import LocalPostgres
import LoopbackReceiver
import Operations
import Postgres
import Schema
import TestSupport
import Testing

/// `webhooky status` and `webhooky doctor`, run as child processes against real databases.
@Suite(.timeLimit(.minutes(10))) struct StatusAndDoctorTests {
    /// The doctor's line about `topic` (its first line; details follow indented).
    static func finding(_ output: String, _ topic: String) -> String? {
        output.split(separator: "\n").first { line in
            ["OK", "WARN", "FAIL"].contains { level in line.hasPrefix(level) } && line.dropFirst(6).hasPrefix(topic)
        }.map(String.init)
    }

    @Test("status: one row per webhook from webhooky.health, and a last line when no worker is alive")
    func status() throws {
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver { request, _ in request.target == "/bad" ? .status(503, body: "down") : .ok }
        let good = try database.addWebhook(url: receiver.baseURL + "/good", name: "ERP credit sync")
        let bad = try database.addWebhook(url: receiver.baseURL + "/bad", name: "Mailer")
        let gone = try database.addWebhook(url: receiver.baseURL + "/gone", name: "Old CRM")
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false, disabled_reason = 'the endpoint answered 410 Gone' WHERE id = $1", [String(gone)])
        let worker = RunningWorker(database.workerConfiguration(retry: [.milliseconds(50)]))
        defer { worker.stop() }
        for webhook in [good, bad, good] { _ = try database.value("SELECT webhooky.send_test($1)", [String(webhook)]) }
        _ = try database.waitFor("SELECT count(*) FROM webhooky.deliveries WHERE state IN ('succeeded', 'dead')") { $0 == "3" }

        // Failing for a known time, so that the line is exact (the failures came in milliseconds).
        try database.connection.query("UPDATE webhooky.webhook_health SET failing_since = now() - interval '2 hours' WHERE webhook_id = $1", [String(bad)])

        let outcome = try database.run(["status"])
        #expect(outcome.status == 0, "\(outcome.errors)")
        let lines = outcome.output.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("ID  NAME             ENABLED  PENDING  OLDEST  OK 24H  DEAD 24H     FAILS  LAST"), "\(outcome.output)")
        #expect(lines[1].hasPrefix(" \(good)  ERP credit sync  yes            0       -       2         0         0  200"), "\(outcome.output)")
        #expect(lines[2].hasPrefix(" \(bad)  Mailer           yes            0       -       0         1  2 for 2h  503 (gave up after 2 attempts)"), "\(outcome.output)")
        #expect(lines[3].hasPrefix(" \(gone)  Old CRM          no             0       -       0         0         0  -"), "\(outcome.output)")
        #expect(lines[3].hasSuffix("the endpoint answered 410 Gone"))

        // With the worker stopped, a last line says that nothing is sent (the table alone showed
        // only PENDING and OLDEST growing); a worker that was killed is named by its last heartbeat.
        #expect(worker.stop().stoppedInTime)
        let stopped = try database.run(["status"])
        #expect(stopped.output.hasSuffix("\n\nNo worker alive: nothing is sent. Start webhooky run; webhooky doctor says more.\n"), "\(stopped.output)")
        try database.connection.execute("""
            INSERT INTO webhooky.workers (id, host, pid, version, heartbeat_at, listening) VALUES ('killed', 'db-host', 1, '1.0.0', now() - interval '3 minutes 30 seconds', true)
            """)
        let killed = try database.run(["status"])
        // 3m 30s, or a few seconds more on a busy machine.
        #expect(killed.output.contains(#/\n\nNo worker alive \(the last heartbeat was 3m [3-5]\ds ago\): nothing is sent\. Start webhooky run; webhooky doctor says more\.\n$/#), "\(killed.output)")

        let empty = try AdminDatabase().run(["status"])
        #expect(empty.output.hasPrefix("no webhooks yet"))
    }

    @Test("status: names in Japanese, Korean or with emoji keep the columns in line (a terminal shows them two columns wide)")
    func statusWithWideNames() throws {
        let database = try AdminDatabase()
        let names = ["ERP credit sync", "日本語のショップ連携", "한국어 가게", "emoji 🎉🎉 hook", "Ｆｕｌｌｗｉｄｔｈ 名前がとても長いウェブフック"]
        for name in names { _ = try database.addWebhook(url: "https://erp.example.com/credit", name: name) }
        let outcome = try database.run(["status"])
        #expect(outcome.status == 0, "\(outcome.errors)")
        // The table, then (no worker runs here) the line that says so.
        let lines = outcome.output.split(separator: "\n").map(String.init).dropLast()
        #expect(lines.count == names.count + 1, "\(outcome.output)")
        // Each row's "yes" starts in the column of the title ENABLED, counted as a terminal does.
        let column = TextFormatting.width(String(lines[0].prefix(upTo: lines[0].range(of: "ENABLED")!.lowerBound)))
        for line in lines.dropFirst() {
            let before = line.prefix(upTo: line.range(of: "  yes  ")!.lowerBound) + "  "
            #expect(TextFormatting.width(String(before)) == column, "\(outcome.output)")
        }
        #expect(lines[2].contains("  日本語のショップ連携          yes"), "\(outcome.output)")
        // A long name is cut at 28 columns, not 28 characters (56 columns).
        #expect(lines[5].contains("  Ｆｕｌｌｗｉｄｔｈ 名前がと…  yes"), "\(outcome.output)")
    }

    @Test("doctor: all OK on a healthy database with a running worker; exit status 0")
    func healthy() throws {
        let database = try AdminDatabase()
        let receiver = try LoopbackReceiver()
        let webhook = try database.addWebhook(url: receiver.baseURL + "/ok", name: "ERP")
        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        _ = try database.value("SELECT webhooky.send_test($1)", [String(webhook)])
        _ = try database.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" }

        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 0, "\(outcome.output)\(outcome.errors)")
        for topic in ["connection", "schema", "privileges", "roles", "owner", "workers", "backlog", "NOTIFY queue", "dead", "webhooks", "settings", "variables", "events", "triggers", "accounts"] {
            #expect(StatusAndDoctorTests.finding(outcome.output, topic)?.hasPrefix("OK ") == true, "\(topic): \(outcome.output)")
        }
        #expect(StatusAndDoctorTests.finding(outcome.output, "workers")?.hasSuffix("1 worker alive") == true)
        #expect(outcome.output.contains("test-worker-\(database.database.name) on "))
        #expect(StatusAndDoctorTests.finding(outcome.output, "privileges")?.contains("can run the worker and do admin work") == true)
        #expect(outcome.output.hasSuffix("All is well.\n"))
    }

    @Test("doctor run with the worker's login: every check is made (it read no webhooky.settings, warned 'could not check' and exited 1 whatever it found), so a health check with the worker's credentials exits 0 when all is well")
    func healthyAsTheWorkersRole() throws {
        let database = try AdminDatabase()
        let role = "worker_\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try database.connection.execute("CREATE ROLE \(role) LOGIN IN ROLE webhooky_worker")
        let url = database.url.replacingOccurrences(of: "user=postgres", with: "user=\(role)")
        let worker = RunningWorker(database.workerConfiguration())
        defer { worker.stop() }
        _ = try database.waitFor("SELECT count(*) FROM webhooky.workers") { $0 == "1" }

        let healthy = try CommandProcess.run(["doctor", "--database-url", url])
        #expect(healthy.status == 0, "\(healthy.output)\(healthy.errors)")
        #expect(StatusAndDoctorTests.finding(healthy.output, "settings")
                == "OK    settings      every row of webhooky.settings is a known limit with a whole number (no row: the defaults)", "\(healthy.output)")
        #expect(!healthy.output.contains("could not check"), "\(healthy.output)")

        // It sees the rows too: one saved before migration 0026 checked them is the same finding an admin's doctor makes.
        try database.connection.execute("""
            ALTER TABLE webhooky.settings DISABLE TRIGGER check_setting;
            INSERT INTO webhooky.settings VALUES ('max_url_lenght', '4096');
            ALTER TABLE webhooky.settings ENABLE TRIGGER check_setting;
            """)
        let misspelt = try CommandProcess.run(["doctor", "--database-url", url])
        #expect(misspelt.status == 1)
        #expect(StatusAndDoctorTests.finding(misspelt.output, "settings") == "WARN  settings      webhooky.settings holds rows that are no setting (misspelt?)", "\(misspelt.output)")
        #expect(misspelt.output.contains("max_url_lenght is no setting and changes nothing: DELETE FROM webhooky.settings WHERE name = 'max_url_lenght';"))
    }

    @Test("migrate says, among its lines, that it could not create the group roles; doctor warns about them until they exist, and then until they have their privileges, with the statements that fix it")
    func missingGroupRoles() throws {
        // A cluster of its own: the shared one has the roles, and they are the cluster's.
        let cluster = try LocalCluster(name: "roles")
        defer { cluster.destroy() }
        let superuser = try Connection(conninfo: cluster.conninfo())
        try superuser.execute("CREATE ROLE shop_owner LOGIN")
        try superuser.execute("CREATE DATABASE shop OWNER shop_owner")
        let url = cluster.conninfo(database: "shop").replacingOccurrences(of: "user=postgres", with: "user=shop_owner")
        let migrated = try CommandProcess.run(["migrate", "--database-url", url])
        #expect(migrated.status == 0, "\(migrated.errors)")
        // The migration's notices come among its lines, not as libpq's raw NOTICE on stderr.
        #expect(migrated.output.contains("\nnotice: could not create the roles webhooky_worker, webhooky_admin and webhooky_emitter (that needs CREATEROLE); create them, then run SELECT webhooky.grant_roles()\n"), "\(migrated.output)")
        #expect(migrated.output.contains("\nnotice: could not create the role webhooky_tenant (that needs CREATEROLE)"), "\(migrated.output)")
        #expect(!migrated.errors.contains("NOTICE"), "\(migrated.errors)")
        func roles() throws -> [String] {
            let outcome = try CommandProcess.run(["doctor", "--database-url", url])
            let lines = outcome.output.split(separator: "\n", omittingEmptySubsequences: false)
            guard let index = lines.firstIndex(where: { $0.dropFirst(6).hasPrefix("roles") }) else { return [outcome.output] }
            return [String(lines[index])] + lines[(index + 1)...].prefix { $0.hasPrefix("      ") }.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        #expect(try roles() == [
            "WARN  roles         Webhooky's group roles webhooky_worker, webhooky_admin, webhooky_emitter, webhooky_tenant do not exist",
            "The role that migrated could not create them (that needs CREATEROLE), so GRANT webhooky_... TO a login role fails.",
            "A role with CREATEROLE runs: CREATE ROLE webhooky_worker NOLOGIN; CREATE ROLE webhooky_admin NOLOGIN; CREATE ROLE webhooky_emitter NOLOGIN; CREATE ROLE webhooky_tenant NOLOGIN; Then the schema's owner runs: SELECT webhooky.grant_roles();",
        ])
        try superuser.execute("CREATE ROLE webhooky_worker NOLOGIN; CREATE ROLE webhooky_admin NOLOGIN; CREATE ROLE webhooky_emitter NOLOGIN; CREATE ROLE webhooky_tenant NOLOGIN")
        #expect(try roles() == [
            "WARN  roles         group roles webhooky_worker, webhooky_admin, webhooky_emitter, webhooky_tenant lack their privileges",
            "Created after the schema was installed? The schema's owner runs: SELECT webhooky.grant_roles();",
        ])
        try Connection(conninfo: url).execute("SELECT webhooky.grant_roles()")
        #expect(try roles() == ["OK    roles         webhooky_worker, webhooky_admin, webhooky_emitter and webhooky_tenant exist, with their privileges"])
    }

    @Test("doctor: webhooky.settings rows saved before migration 0026 checked them: a limit that is not a whole number (every webhook save fails) is a FAIL, a name that is no setting a WARN, each with the statement that fixes it")
    func badSettings() throws {
        let database = try AdminDatabase()
        #expect(StatusAndDoctorTests.finding(try database.run(["doctor"]).output, "settings")?.hasPrefix("OK    settings      every row") == true)
        // As a database upgraded from before 0026 may hold them.
        try database.connection.execute("""
            ALTER TABLE webhooky.settings DISABLE TRIGGER check_setting;
            INSERT INTO webhooky.settings VALUES ('max_url_lenght', '4096');
            ALTER TABLE webhooky.settings ENABLE TRIGGER check_setting;
            """)
        let misspelt = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(misspelt.output, "settings") == "WARN  settings      webhooky.settings holds rows that are no setting (misspelt?)")
        #expect(misspelt.output.contains("max_url_lenght is no setting and changes nothing: DELETE FROM webhooky.settings WHERE name = 'max_url_lenght';"))
        try database.connection.execute("""
            ALTER TABLE webhooky.settings DISABLE TRIGGER check_setting;
            INSERT INTO webhooky.settings VALUES ('max_url_length', '4k');
            ALTER TABLE webhooky.settings ENABLE TRIGGER check_setting;
            """)
        let broken = try database.run(["doctor"])
        #expect(broken.status == 1)
        #expect(StatusAndDoctorTests.finding(broken.output, "settings")?.hasPrefix("FAIL  settings      webhooky.settings holds a limit that is not a whole number") == true, "\(broken.output)")
        #expect(broken.output.contains("max_url_length = '4k' is not a whole number, and every save of a webhook fails on it: UPDATE webhooky.settings SET value = '...' WHERE name = 'max_url_length';"), "\(broken.output)")
    }

    @Test("doctor: a webhook whose address the workers refuse says to allow the network with --allow-network, not to fix the endpoint")
    func refusedAddress() throws {
        let database = try AdminDatabase()
        let local = try database.addWebhook(url: "http://127.0.0.1:9/hook", name: "Local")
        try database.markFailing(local, failures: 1, since: "1 minute")
        let dead = try database.addDelivery(webhook: local, state: "dead", attempts: 1)
        let refusal = "refused to connect to 127.0.0.1 (loopback address): private and internal networks are not allowed; allow them with an allow-list (webhooky run --allow-network CIDR)"
        try TailTests.recordAttempt(database.connection, delivery: dead, webhook: local, number: 1, status: nil, error: refusal)

        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        #expect(outcome.output.contains(#"webhook \#(local) "Local": 1 failed attempt in a row for 1m; last: refused to connect to 127.0.0.1 (loopback address): private and internal"#))
        #expect(outcome.output.contains(#"The workers refuse that address (a private or internal network): to reach it, start them with --allow-network CIDR (README, "Security"); otherwise fix the webhook's URL."#))
        #expect(!outcome.output.contains("Watch it with webhooky tail --webhook \(local)"))
    }

    @Test("doctor: a variable that neither the event's sample nor its recent events have (a misspelt name) is a WARN naming the webhook and the variable")
    func misspeltVariables() throws {
        let database = try AdminDatabase()
        let good = try database.addWebhook(url: "https://erp.example.com/c?credit=#customer.credit#", body: ##"{"email":"#customer.email#"}"##, name: "ERP")
        let typo = try database.addWebhook(url: "https://crm.example.com/x?c=#customer.credti#", body: ##"{"email":"#customer.emial#","id":"#customer.id#"}"##, name: "CRM")
        let off = try database.addWebhook(url: "https://crm.example.com/y", body: ##"{"x":"#nothing.here#"}"##, enabled: false, name: "Off")

        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        #expect(StatusAndDoctorTests.finding(outcome.output, "variables")
                == "WARN  variables     1 of 2 enabled webhooks use variables their event does not have")
        #expect(outcome.output.contains(##"webhook \##(typo) "CRM" uses #customer.credti#, #customer.emial#, which customer.credit_changed's sample and recent events do not have: they render as the empty string (a misspelt name; did you mean #customer.credit#, #customer.email#? SELECT * FROM webhooky.variables('customer.credit_changed'); lists the names; webhooky preview \##(typo) shows the request)"##))
        // The command it suggests runs as written, and points at the same names.
        let suggested = outcome.output.components(separatedBy: "lists the names; webhooky ").dropFirst().first?
            .components(separatedBy: " shows the request").first ?? ""
        let preview = try database.run(suggested.split(separator: " ").map(String.init))
        #expect(preview.status == 0, "webhooky \(suggested): \(preview.errors)")
        #expect(preview.errors.contains("#customer.emial# is not in"), "\(preview.errors)")
        #expect(!outcome.output.contains("webhook \(good) \"ERP\" uses") && !outcome.output.contains("#nothing.here#"), "only enabled webhooks' unknown variables: \(off)")

        try database.connection.query("UPDATE webhooky.webhooks SET url = 'https://crm.example.com/x?c=#customer.credit#', body = $1 WHERE id = $2",
                                      [##"{"email":"#customer.email#","id":"#customer.id#"}"##, String(typo)])
        let fixed = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(fixed.output, "variables")
                == "OK    variables     every variable of the enabled webhooks is in its event's sample or recent events")
    }

    @Test("doctor: a variable that the event's sample has but none of its recent real events (the trigger does not put it in the payload) is a WARN: each request had \"\" for it, and doctor said every variable was in the sample or recent events; with fewer than 10 events it is not judged")
    func variablesOnlyTheSampleHas() throws {
        let database = try AdminDatabase()
        // #customer.tier.name# is in the sample; the events have "tier": null, as the reference
        // trigger writes it for a customer without a tier: the trigger does put it in.
        let mailer = try database.addWebhook(url: "https://mail.example.com/x?to=#customer.email#", body: ##"{"id":"#customer.id#","tier":"#customer.tier.name#"}"##, name: "Mailer")
        func record(_ count: Int) throws {
            try database.connection.query("""
                INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out)
                SELECT 'customer.credit_changed', jsonb_build_object('customer', jsonb_build_object('id', g, 'credit', '5.00', 'tier', null)), ARRAY[$1::bigint], true
                  FROM generate_series(1, $2) g
                """, [String(mailer), String(count)])
        }
        try record(5)
        let few = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(few.output, "variables")
                == "OK    variables     every variable of the enabled webhooks is in its event's sample or recent events", "\(few.output)")
        try record(7)
        let outcome = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(outcome.output, "variables")
                == "WARN  variables     1 of 1 enabled webhook uses variables their event does not have")
        #expect(outcome.output.contains(##"webhook \##(mailer) "Mailer" uses #customer.email#, which customer.credit_changed's sample has but none of its last 12 events: it was sent as the empty string in each (does the trigger put it in the payload? SELECT * FROM webhooky.variables('customer.credit_changed'); shows where each name comes from)\##n"##), "\(outcome.output)")

        // Not null every time: a tier object without a name, a group that is a string. Each
        // request had "" for them all the same; which event came last does not matter.
        try database.connection.query("""
            INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out)
            SELECT 'customer.credit_changed', jsonb_build_object('customer', jsonb_build_object('id', g, 'group', 'wholesale', 'tier', CASE WHEN g = 12 THEN NULL ELSE jsonb_build_object('id', 2) END)),
                   ARRAY[$1::bigint], true
              FROM generate_series(1, 12) g
            """, [String(mailer)])
        let shapes = try database.addWebhook(url: "https://crm.example.com/x", body: ##"{"group":"#customer.group.name#"}"##, name: "Shapes")
        let mixed = try database.run(["doctor"])
        #expect(mixed.output.contains(##"webhook \##(mailer) "Mailer" uses #customer.email#, #customer.tier.name#, which customer.credit_changed's sample has but none of its last 24 events"##), "\(mixed.output)")
        #expect(mixed.output.contains(##"webhook \##(shapes) "Shapes" uses #customer.group.name#, which customer.credit_changed's sample has but none of its last 24 events"##), "\(mixed.output)")
    }

    @Test("doctor: a variable is let off as inside a null only when no recent event has a string, or anything but null, on its way: a customer that is sometimes the text 'legacy-42' and sometimes has \"tier\": null still has #customer.tier.name# sent as \"\"")
    func nullOnlyWhereNothingElse() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://crm.example.com/x", body: ##"{"tier":"#customer.tier.name#"}"##, name: "Tiers")
        try database.connection.query("""
            INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out)
            SELECT 'customer.credit_changed', CASE WHEN g % 2 = 0 THEN '{"customer": "legacy-42"}'::jsonb ELSE '{"customer": {"id": 1, "tier": null}}'::jsonb END,
                   ARRAY[$1::bigint], true
              FROM generate_series(1, 20) g
            """, [String(webhook)])
        let outcome = try database.run(["doctor"])
        #expect(outcome.output.contains(##"webhook \##(webhook) "Tiers" uses #customer.tier.name#, which customer.credit_changed's sample has but none of its last 20 events"##), "\(outcome.output)")
    }

    @Test("doctor: a '#name' without its closing '#' in a body string or a header value (sent as written) is a WARN naming the webhook and what to write; '#fff' and 'issue #12' are not")
    func unclosedVariables() throws {
        let database = try AdminDatabase()
        let unclosed = try database.addWebhook(url: "https://crm.example.com/x", body: ##"{"id":"#customer.id","color":"#fff","issue":"issue #12"}"##,
                                               headers: ##"{"X-Customer": "#customer.email#"}"##, name: "CRM")
        _ = try database.addWebhook(url: "https://erp.example.com/c", body: ##"{"id":"#customer.id#","color":"#fff"}"##, name: "ERP")

        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        #expect(StatusAndDoctorTests.finding(outcome.output, "variables")
                == "WARN  variables     1 of 2 enabled webhooks use variables their event does not have or a #name without its closing '#'")
        #expect(outcome.output.contains(##"webhook \##(unclosed) "CRM": '#customer.id' in the body has no closing '#', so it is sent as written, not as a value (a variable missing its closing '#'? write #customer.id#)"##), "\(outcome.output)")
        #expect(!outcome.output.contains("'#fff'") && !outcome.output.contains("\"ERP\":"), "\(outcome.output)")
    }

    @Test("doctor: objects of the schema that belong to another role than its installer (an upgrade run by someone else) are a WARN listing the statements that give them back; after them, OK")
    func strayOwners() throws {
        let database = try AdminDatabase()
        let other = "upgrader_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
        try database.connection.execute("""
            CREATE ROLE \(other);
            ALTER FUNCTION webhooky.first_id_since(regclass, timestamptz) OWNER TO \(other);
            ALTER TABLE webhooky.role_grants OWNER TO \(other);
            """)
        let outcome = try database.run(["doctor"])
        let line = StatusAndDoctorTests.finding(outcome.output, "owner")
        #expect(line == "WARN  owner         2 of the schema's objects belong to \(other), not to postgres, which installed it: its functions that run with its rights (webhooky.prune, grant_roles) may fail on them", "\(outcome.output)")
        #expect(outcome.output.contains("ALTER FUNCTION webhooky.first_id_since(regclass,timestamp with time zone) OWNER TO postgres;"))
        #expect(outcome.output.contains("ALTER TABLE webhooky.role_grants OWNER TO postgres;"))
        #expect(outcome.status == 1)

        try database.connection.execute("""
            ALTER FUNCTION webhooky.first_id_since(regclass,timestamp with time zone) OWNER TO postgres;
            ALTER TABLE webhooky.role_grants OWNER TO postgres;
            DROP ROLE \(other);
            """)
        let after = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(after.output, "owner") == "OK    owner         every object of the schema belongs to postgres, which installed it")
    }

    @Test("doctor: no worker alive is a FAIL that says what to do; exit status 1")
    func noWorker() throws {
        let database = try AdminDatabase()
        try database.addWebhook(url: "https://erp.example.com/x")
        try database.connection.execute("""
            INSERT INTO webhooky.workers (id, host, pid, version, heartbeat_at, listening)
            VALUES ('old-worker', 'db-host', 1, '1.0.0', now() - interval '2 minutes 30 seconds', true)
            """)
        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        #expect(StatusAndDoctorTests.finding(outcome.output, "workers")
                == "FAIL  workers       no worker alive: events are recorded but nothing is sent: start webhooky run")
        #expect(outcome.output.contains(#/old-worker on db-host, webhooky 1\.0\.0: last heartbeat 2m [3-5]\ds ago \(stopped, or lost the database\)/#), "\(outcome.output)")
        #expect(outcome.output.hasSuffix("Needs attention: 1 failure.\n"))
    }

    @Test("doctor: a worker killed with its claims (kill -9) holds them until their lease ends; doctor names it with them and when they go out again, and the backlog no longer counts them as being sent")
    func killedWorkersClaims() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x")
        try database.connection.execute("""
            INSERT INTO webhooky.workers (id, host, pid, version, heartbeat_at, listening) VALUES
                ('live-worker', 'db-host', 1, '1.0.0', now(), true), ('killed-worker', 'db-host', 2, '1.0.0', now() - interval '2 minutes 30 seconds', true)
            """)
        for worker in ["killed-worker", "killed-worker", "live-worker", "gone-worker"] {
            let delivery = try database.addDelivery(webhook: webhook, state: "sending")
            try database.connection.query("UPDATE webhooky.deliveries SET claimed_by = $1, lease_expires_at = now() + CASE $1 WHEN 'gone-worker' THEN interval '-5 seconds' ELSE interval '90 seconds' END WHERE id = $2",
                                          [worker, String(delivery)])
        }
        let outcome = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(outcome.output, "workers")
                == "OK    workers       1 worker alive; 3 claimed deliveries are held by 2 workers that stopped")
        // 2m 30s, or up to half a minute more on a busy machine.
        #expect(outcome.output.contains(#/killed-worker on db-host, webhooky 1\.0\.0: last heartbeat 2m [3-5]\ds ago \(stopped, or lost the database\); holds 2 deliveries it claimed: a live worker sends them again once their lease ends, in 1m [0-2]\ds/#), "\(outcome.output)")
        #expect(outcome.output.contains("gone-worker: no heartbeat row in webhooky.workers; holds 1 delivery it claimed: its lease has ended, and a live worker takes it back at its next reap"))
        #expect(outcome.output.contains("Besides: 1 being sent, 3 held by 2 workers that stopped (see workers)."))

        try database.connection.execute("DELETE FROM webhooky.workers WHERE id = 'live-worker'")
        let none = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(none.output, "workers")
                == "FAIL  workers       no worker alive: events are recorded but nothing is sent: start webhooky run; 4 claimed deliveries are held by 3 workers that stopped")
        #expect(none.output.contains(#/holds 2 deliveries it claimed: they go out once a worker runs and their lease has ended, in 1m [0-2]\ds/#), "\(none.output)")
    }

    @Test("doctor: a backlog older than 5 minutes is a WARN that names the webhooks waiting longest with their pace of the last 5 minutes (it said only to look with webhooky status, whose 24-hour timings hide an endpoint that became slow)")
    func backlog() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x")
        let paused = try database.addWebhook(url: "https://erp.example.com/y", enabled: false)
        for _ in 1...30 { _ = try database.addDelivery(webhook: webhook) }
        _ = try database.addDelivery(webhook: paused)
        try database.connection.execute("UPDATE webhooky.deliveries SET next_attempt_at = now() - interval '12 minutes 30 seconds'")
        try database.connection.query("""
            INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out, created_at)
            SELECT 'customer.credit_changed', '{}', ARRAY[$1::bigint], false, now() - interval '3 minutes' FROM generate_series(1, 5)
            """, [String(webhook)])
        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        // 12m 30s, or a few seconds more on a busy machine.
        #expect((StatusAndDoctorTests.finding(outcome.output, "backlog") ?? "").contains(
            #/^WARN  backlog       30 deliveries due and 5 events not yet fanned out; the oldest has been due for 12m [3-5]\ds: the workers are not keeping up \(or none runs\)$/#))
        #expect(outcome.output.contains("Besides: 1 held by disabled webhooks."))
        // Which webhooks wait, and at what pace (status's timings cover 24 hours and hide a slow endpoint).
        #expect(outcome.output.contains(try Regex(#"webhook \#(webhook) "test": 30 due, the oldest due for 12m [3-5]\ds; no attempt in the last 5m\n"#)), "\(outcome.output)")
        // It answers in 5 s: held to 8 requests in flight, 60 in 5 minutes.
        try database.connection.query("""
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, worker)
            SELECT (SELECT min(id) FROM webhooky.deliveries WHERE webhook_id = $1), $1, 1, now() - g * interval '4 seconds', 5000, 200, 'test'
              FROM generate_series(1, 60) g
            """, [String(webhook)])
        let slow = try database.run(["doctor"])
        #expect(slow.output.contains(try Regex(#"webhook \#(webhook) "test": 30 due, the oldest due for 12m [3-5]\ds; 60 attempts in the last 5m \(median 5\.0 s each\), about 2m 30s to send the rest at that pace, not counting new ones\n"#)),
                "\(slow.output)")
        #expect(slow.output.contains("make a slow endpoint answer sooner: one that takes over a quarter of --request-timeout gets 8 requests in flight per worker"))
        // Failed attempts send nothing: the time for the rest comes from those that succeeded.
        let failures = """
            INSERT INTO webhooky.attempts (delivery_id, webhook_id, attempt, started_at, duration_ms, status, worker)
            SELECT (SELECT min(id) FROM webhooky.deliveries WHERE webhook_id = $1), $1, 2, now() - g * interval '4 seconds', 3000, 500, 'test'
              FROM generate_series(1, 60) g
            """
        try database.connection.query(failures, [String(webhook)])
        let failing = try database.run(["doctor"])
        #expect(failing.output.contains("; 120 attempts in the last 5m (median 4.0 s each), about 2m 30s to send the rest at that pace, not counting new ones\n"), "\(failing.output)")
        try database.connection.query("DELETE FROM webhooky.attempts WHERE webhook_id = $1 AND status = 200", [String(webhook)])
        let none = try database.run(["doctor"])
        #expect(none.output.contains("; 60 attempts in the last 5m (median 3.0 s each), none of them succeeded\n"), "\(none.output)")

        try database.connection.execute("UPDATE webhooky.deliveries SET next_attempt_at = now() - interval '10 seconds'; UPDATE webhooky.events SET created_at = now()")
        let recent = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(recent.output, "backlog")?.hasPrefix("OK    backlog       30 deliveries due and 5 events not yet fanned out; the oldest has been due for 1") == true)
    }

    @Test("doctor: a webhook Webhooky disabled, a failing one, and dead deliveries are WARNs that say why and what to do")
    func disabledAndFailingWebhooks() throws {
        let database = try AdminDatabase()
        let gone = try database.addWebhook(url: "https://crm.example.com/x", name: "Old CRM")
        let failing = try database.addWebhook(url: "https://erp.example.com/x", name: "ERP")
        let paused = try database.addWebhook(url: "https://erp.example.com/y", name: "Paused")
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false, disabled_reason = 'the endpoint answered 410 Gone', disabled_at = now() - interval '3 hours' WHERE id = $1", [String(gone)])
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(paused)])
        try database.markFailing(failing, failures: 4, since: "2 hours")
        let dead = try database.addDelivery(webhook: failing, state: "dead", attempts: 12)
        try TailTests.recordAttempt(database.connection, delivery: dead, webhook: failing, number: 12, status: 503, error: "HTTP 503 (gave up after 12 attempts)")

        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        #expect(StatusAndDoctorTests.finding(outcome.output, "webhooks")
                == "WARN  webhooks      3 webhooks, 1 enabled, 1 failing, 1 disabled by Webhooky, 1 disabled by hand")
        // Since when, that the events meanwhile are lost to it (it said only that 0 deliveries wait), and for a 410 that the URL is what changed.
        #expect(outcome.output.contains(#"webhook \#(gone) "Old CRM" was disabled by Webhooky 3h ago: the endpoint answered 410 Gone; 0 deliveries wait, and its events since then are not recorded for it (its receiver never gets them). Once the endpoint works (410: the receiver removed that URL; give the webhook its new one: UPDATE webhooky.webhooks SET url = '...' WHERE id = \#(gone);): UPDATE webhooky.webhooks SET enabled = true WHERE id = \#(gone);\#n"#), "\(outcome.output)")
        #expect(outcome.output.contains(#"webhook \#(failing) "ERP": 4 failed attempts in a row for 2h; last: HTTP 503 (gave up after 12 attempts). Watch it with webhooky tail --webhook \#(failing)"#))
        #expect(outcome.output.contains(#"webhook \#(paused) "Paused" is disabled by hand"#))
        #expect(StatusAndDoctorTests.finding(outcome.output, "dead") == "WARN  dead          1 delivery gave up (dead) in the last 24 h")
        #expect(outcome.output.contains("Once the endpoint works, send them again: SELECT webhooky.redeliver_webhook(\(failing), '"))
        // The query it gives runs, and shows each dead delivery's error code too.
        let why = try #require(StatusAndDoctorTests.why(outcome.output))
        #expect(why == "SELECT id, webhook_id, last_status, last_error_code, last_error FROM webhooky.deliveries WHERE state = 'dead' AND completed_at > now() - interval '24 hours' AND NOT is_test AND last_error IS DISTINCT FROM 'webhook deleted' ORDER BY completed_at DESC LIMIT 20;")
        #expect(try database.connection.query(why).rowCount == 1)
    }

    /// The query after doctor's "Why: ".
    static func why(_ output: String) -> String? {
        output.components(separatedBy: "Why: ").dropFirst().first?.components(separatedBy: "\n").first
    }

    @Test("doctor: the 'Why:' query of the dead check lists the deliveries it counts, not those of a deleted webhook, of tests or of days ago; the redelivery names the webhook when only one has them")
    func deadWhyListsWhatItCounts() throws {
        let database = try AdminDatabase()
        let failing = try database.addWebhook(url: "https://erp.example.com/x", name: "ERP")
        let counted = try database.addDelivery(webhook: failing, state: "dead", attempts: 12)
        let old = try database.addDelivery(webhook: failing, state: "dead", attempts: 12)
        try database.connection.query("UPDATE webhooky.deliveries SET completed_at = now() - interval '3 days' WHERE id = $1", [String(old)])
        let test = try database.addDelivery(webhook: failing, state: "dead", attempts: 1)
        try database.connection.query("UPDATE webhooky.deliveries SET is_test = true WHERE id = $1", [String(test)])
        // A webhook deleted with its backlog: its deliveries end dead later than the one counted.
        let gone = try database.addWebhook(url: "https://erp.example.com/gone", name: "Gone")
        for _ in 0..<25 { _ = try database.addDelivery(webhook: gone, state: "pending") }
        try database.connection.query("DELETE FROM webhooky.webhooks WHERE id = $1", [String(gone)])

        let outcome = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(outcome.output, "dead")
                == "WARN  dead          1 delivery gave up (dead) in the last 24 h; 25 ended with their deleted webhooks; 1 test delivery not counted", "\(outcome.output)")
        let why = try #require(StatusAndDoctorTests.why(outcome.output), "\(outcome.output)")
        // Before: the 20 newest dead rows, all 'webhook deleted', and not the one the warning is about.
        #expect(try database.column(why) == [String(counted)], "\(why)")
        #expect(outcome.output.contains("Once the endpoint works, send them again: SELECT webhooky.redeliver_webhook(\(failing), '"), "\(outcome.output)")

        let other = try database.addWebhook(url: "https://crm.example.com/x", name: "CRM")
        let second = try database.addDelivery(webhook: other, state: "dead", attempts: 12)
        let both = try database.run(["doctor"])
        #expect(Set(try database.column(try #require(StatusAndDoctorTests.why(both.output)))) == [String(counted), String(second)])
        #expect(both.output.contains("Once the endpoint works, send them again: SELECT webhooky.redeliver_webhook(WEBHOOK_ID, '"), "\(both.output)")
    }

    @Test("doctor: a failing webhook's last error comes with its code, as in status and tail, and a long run of failures with a thousands separator; a connection error names the host and port it cannot reach, as status does (it showed libcurl's whole sentence cut off: \"... after 0 ms: Couldn'….\"); each says what its kind of failure needs (it said \"fix the endpoint or the webhook's URL\" to an endpoint slower than --request-timeout, which may have done the work and gets it again with each retry)")
    func failingWebhookShowsTheErrorCode() throws {
        let database = try AdminDatabase()
        let slow = try database.addWebhook(url: "https://erp.example.com/slow", name: "Slow")
        let down = try database.addWebhook(url: "https://hooks.example-shop-of-long-name.com/x", name: "Down")
        let dropped = try database.addWebhook(url: "https://firewalled.example.com/x", name: "Dropped")
        let unresolved = try database.addWebhook(url: "https://slow-dns.example.com/x", name: "Unresolved")
        for (webhook, failures, error, code) in [
            (slow, 3138, "Operation timed out after 2999 milliseconds with 0 bytes received", "timeout"),
            (down, 40, "Failed to connect to hooks.example-shop-of-long-name.com port 443 after 0 ms: Couldn't connect to server", "connect_failure"),
            (dropped, 7, "Connection timed out after 5001 milliseconds", "timeout"),
            (unresolved, 3, "Resolving timed out after 5000 milliseconds", "timeout"),
        ] {
            try database.markFailing(webhook, failures: failures, since: "2 hours")
            let delivery = try database.addDelivery(webhook: webhook, state: "pending", attempts: 1)
            _ = try TailTests.recordAttempt(database.connection, delivery: delivery, webhook: webhook, status: nil, error: error, errorCode: code)
        }
        let outcome = try database.run(["doctor"])
        // A name that did not resolve in time is not a host that dropped the connection.
        #expect(outcome.output.contains(#"webhook \#(unresolved) "Unresolved": 3 failed attempts in a row for 2h; last: [timeout] Resolving timed out after 5000 milliseconds. The host name did not resolve within the workers' --connect-timeout (5s by default): the workers' DNS server is slow or unreachable; watch it with webhooky tail --webhook \#(unresolved).\#n"#),
                "\(outcome.output)")
        // Before: "3138 failed attempts in a row for 2h; last: Operation timed out after ..." (no code).
        #expect(outcome.output.contains(#"webhook \#(slow) "Slow": 3,138 failed attempts in a row for 2h; last: [timeout] Operation timed out after 2999 milliseconds with 0 bytes received. The endpoint takes longer to answer than the workers wait (webhooky run --request-timeout, 15s by default): it may have done the work all the same, and each retry sends the request again. Make it answer 2xx at once and do the work afterwards, or start the workers with a longer --request-timeout; watch it with webhooky tail --webhook \#(slow).\#n"#),
                "\(outcome.output)")
        #expect(outcome.output.contains(#"webhook \#(down) "Down": 40 failed attempts in a row for 2h; last: [connect_failure] hooks.example-shop-of-long-name.com port 443. Nothing accepts connections there: the service is down, or the webhook's URL names the wrong host or port; watch it with webhooky tail --webhook \#(down).\#n"#),
                "\(outcome.output)")
        #expect(outcome.output.contains(#"webhook \#(dropped) "Dropped": 7 failed attempts in a row for 2h; last: [timeout] Connection timed out after 5001 milliseconds. No connection within the workers' --connect-timeout (5s by default): the host is down, or a firewall drops the packets; watch it with webhooky tail --webhook \#(dropped).\#n"#),
                "\(outcome.output)")
    }

    @Test("doctor: a webhook the endpoint answers 401 or 403 is told to check its credentials, and for a signed one the secret, naming a rotation whose overlap ended just before the failures began (it said: fix the endpoint or the webhook's URL)")
    func refusedCredentials() throws {
        let database = try AdminDatabase()
        let rotated = try database.addWebhook(url: "https://erp.example.com/x", secret: "whsec_" + String(repeating: "QUJD", count: 8), name: "Rotated")
        let keyed = try database.addWebhook(url: "https://crm.example.com/x?api_key=k", name: "Keyed")
        let broken = try database.addWebhook(url: "https://api.example.com/x", name: "Broken")
        // The overlap of a rotation ended 5 minutes before the failures began.
        try database.connection.query("""
            UPDATE webhooky.webhooks SET previous_secret = webhooky.new_secret(), previous_secret_expires_at = now() - interval '2 hours 5 minutes' WHERE id = $1
            """, [String(rotated)])
        for (webhook, status) in [(rotated, 401), (keyed, 403), (broken, 500)] {
            try database.markFailing(webhook, failures: 6, since: "2 hours")
            let delivery = try database.addDelivery(webhook: webhook, state: "pending", attempts: 6)
            try TailTests.recordAttempt(database.connection, delivery: delivery, webhook: webhook, number: 6, status: status, error: "HTTP \(status)")
        }
        let outcome = try database.run(["doctor"])
        #expect(outcome.output.contains(#"webhook \#(rotated) "Rotated": 6 failed attempts in a row for 2h; last: HTTP 401. The endpoint refuses the request (401): an API key or token in the webhook's URL or headers that is wrong or expired, or a receiver that checks another signing secret than the webhook's; webhooky preview \#(rotated) shows the request (keys masked). The failures began 5m after the overlap of its last webhooky.rotate_secret ended, when the previous secret stopped signing: the receiver probably still checks that one; give it the webhook's current secret.\#n"#),
                "\(outcome.output)")
        #expect(outcome.output.contains(#"webhook \#(keyed) "Keyed": 6 failed attempts in a row for 2h; last: HTTP 403. The endpoint refuses the request (403): an API key or token in the webhook's URL or headers that is wrong or expired; webhooky preview \#(keyed) shows the request (keys masked).\#n"#))
        #expect(outcome.output.contains(#"webhook \#(broken) "Broken": 6 failed attempts in a row for 2h; last: HTTP 500. Watch it with webhooky tail --webhook \#(broken); fix the endpoint or the webhook's URL.\#n"#))
        #expect(!outcome.output.contains("whsec_"))
    }

    @Test("doctor: a failing webhook names the enabled webhooks with pending deliveries on its endpoint (scheme://host:port), which wait behind it with no failure of their own; another host's, a templated host's and a disabled one's are not named")
    func failingWebhookNamesWhatWaitsOnItsEndpoint() throws {
        let database = try AdminDatabase()
        let slow = try database.addWebhook(url: "http://hooks.example.com:8080/slow/#customer.id#", name: "Slow")
        let good = try database.addWebhook(url: "http://HOOKS.example.com:8080/ok?id=#customer.id#", name: "Good")
        let elsewhere = try database.addWebhook(url: "http://hooks.example.com:8081/ok", name: "Other port")
        let templated = try database.addWebhook(url: "http://#account.eshopId#.example.com:8080/ok", name: "Templated")
        let paused = try database.addWebhook(url: "http://hooks.example.com:8080/paused", enabled: false, name: "Paused")
        // Keyed as the worker keys them: a variable in the host (or the user information) leaves no endpoint to share.
        let partly = try database.addWebhook(url: "http://hooks-#account.eshopId#.example.com:8080/ok", name: "Partly templated")
        let keyed = try database.addWebhook(url: "http://AKIAEXAMPLEKEY:#account.secret#@hooks.example.com:8080/ok", name: "Key in the URL")
        // Failing itself, it has its own line: the endpoint is down for both, not held by one.
        let failingToo = try database.addWebhook(url: "http://hooks.example.com:8080/too", name: "Failing too")
        try database.markFailing(failingToo, failures: 3, since: "5 minutes")
        try database.markFailing(slow, failures: 40, since: "10 minutes")
        for webhook in [slow, good, good, elsewhere, templated, paused, partly, keyed, failingToo] { _ = try database.addDelivery(webhook: webhook, state: "pending", attempts: 0) }
        let outcome = try database.run(["doctor"])
        #expect(outcome.output.contains(#" It shares its endpoint http://hooks.example.com:8080 with webhook \#(good) "Good" (2 pending): while it fails, the workers send that endpoint "#
            + #"one request at a time, so those deliveries wait too; pause or fix this one (UPDATE webhooky.webhooks SET enabled = false WHERE id = \#(slow);) and they catch up."#),
                "\(outcome.output)")
        #expect(!outcome.output.lowercased().contains("akiaexamplekey"), "\(outcome.output)")
        for other in ["Other port", "Templated", "Partly templated", "Key in the URL", "Paused", "Failing too"] {
            #expect(!outcome.output.contains("\"\(other)\" ("), "\(other): \(outcome.output)")
        }
        // Nothing waits on its endpoint: the line ends with its advice.
        try database.connection.query("DELETE FROM webhooky.deliveries WHERE webhook_id = $1", [String(good)])
        #expect(!(try database.run(["doctor"]).output.contains("It shares its endpoint")))
    }

    @Test("doctor: the redelivery it suggests for the deliveries that died in the last 24 h sends all of them, also those created more than 3 days ago")
    func deadRedeliverySuggestionSendsThemAll() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x", name: "ERP")
        // With the default retry schedule a delivery dies some 52 h after it was created: one that
        // died 22 h ago was created 74 h ago. Another was created after a long backlog, 5 days ago.
        let died = try database.addDelivery(webhook: webhook, state: "dead", attempts: 12)
        let late = try database.addDelivery(webhook: webhook, state: "dead", attempts: 12)
        try database.connection.query("""
            UPDATE webhooky.deliveries SET created_at = now() - CASE WHEN id = $1 THEN interval '74 hours' ELSE interval '5 days' END,
                                           completed_at = now() - interval '22 hours'
            """, [String(died)])
        let outcome = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(outcome.output, "dead") == "WARN  dead          2 deliveries gave up (dead) in the last 24 h")
        let prefix = "Once the endpoint works, send them again: "
        let line = try #require(outcome.output.split(separator: "\n").first { $0.contains(prefix) }, "\(outcome.output)")
        // Before: SELECT webhooky.redeliver_webhook(WEBHOOK_ID, now() - interval '3 days'); which sent neither.
        let statement = String(line[line.range(of: prefix)!.upperBound...]).replacing("WEBHOOK_ID", with: String(webhook))
        #expect(try database.value(statement) == "2", "\(statement)")
        #expect(try database.column("SELECT state FROM webhooky.deliveries WHERE id IN ($1, $2) ORDER BY id", [String(died), String(late)])
                == ["pending", "pending"])
    }

    @Test("doctor: dead test deliveries are counted apart, and the redelivery it suggests (which leaves tests out) starts at the first real one")
    func deadTestsCountedApart() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x", name: "ERP")
        let test = try database.addDelivery(webhook: webhook, state: "dead", attempts: 1)
        try database.connection.query("""
            UPDATE webhooky.deliveries SET is_test = true, created_at = now() - interval '6 days' WHERE id = $1;
            """, [String(test)])
        try database.connection.query("UPDATE webhooky.events SET is_test = true")
        let onlyTest = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(onlyTest.output, "dead") == "OK    dead          no delivery gave up in the last 24 h (1 test delivery not counted)",
                "\(onlyTest.output)")

        let real = try database.addDelivery(webhook: webhook, state: "dead", attempts: 12)
        try database.connection.query("UPDATE webhooky.deliveries SET created_at = now() - interval '3 days' WHERE id = $1", [String(real)])
        let both = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(both.output, "dead") == "WARN  dead          1 delivery gave up (dead) in the last 24 h; 1 test delivery not counted")
        #expect(both.output.contains("webhook \(webhook) \"ERP\": 1\n"), "\(both.output)")
        let expected = try #require(try database.value("""
            SELECT to_char(date_trunc('second', created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00') FROM webhooky.deliveries WHERE id = $1
            """, [String(real)]))
        #expect(both.output.contains("SELECT webhooky.redeliver_webhook(\(webhook), '\(expected)');"), "\(both.output)")
    }

    @Test("doctor: deliveries that ended dead with their deleted webhook are counted apart, without a redelivery hint")
    func deadWithDeletedWebhooks() throws {
        let database = try AdminDatabase()
        let gone = try database.addWebhook(url: "https://erp.example.com/gone")
        _ = try database.addDelivery(webhook: gone, state: "pending")
        try database.connection.query("SELECT webhooky.delete_webhook($1)", [String(gone)])
        let onlyDeleted = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(onlyDeleted.output, "dead") == "OK    dead          no delivery gave up in the last 24 h (1 ended with its deleted webhook)",
                "\(onlyDeleted.output)")
        #expect(!onlyDeleted.output.contains("redeliver_webhook"))

        let kept = try database.addWebhook(url: "https://erp.example.com/kept")
        _ = try database.addDelivery(webhook: kept, state: "dead", attempts: 12)
        let both = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(both.output, "dead") == "WARN  dead          1 delivery gave up (dead) in the last 24 h; 1 ended with its deleted webhook")
        #expect(both.output.contains("webhook \(kept) \"test\": 1"))
        #expect(!both.output.contains("(deleted)"))
    }

    @Test("doctor: an event type whose events stopped far beyond their usual pace is a WARN: has a trigger been dropped?")
    func oldLastEvent() throws {
        let database = try AdminDatabase()
        try database.addWebhook(url: "https://erp.example.com/x")
        try database.connection.execute("INSERT INTO webhooky.event_types (name) VALUES ('order.paid')")
        try database.addWebhook(event: "order.paid", url: "https://erp.example.com/orders")
        // 30 credit changes a minute apart, the last 3 hours ago; 30 orders a minute apart up to now.
        try database.connection.execute("""
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'customer.credit_changed', '{}', true, now() - interval '3 hours' - n * interval '1 minute' FROM generate_series(29, 0, -1) n;
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'order.paid', '{}', true, now() - n * interval '1 minute' FROM generate_series(29, 0, -1) n;
            ALTER TABLE ellity.customers DISABLE TRIGGER customer_credit_changed;
            """)
        try database.wantedForAMonth()
        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        #expect(StatusAndDoctorTests.finding(outcome.output, "events") == "WARN  events        1 event type has had no event for unusually long")
        #expect(outcome.output.contains("customer.credit_changed: none for 3h, though one came every 1m on average over its last 30 events: has a trigger been dropped?"))
        #expect(outcome.output.contains("Trigger customer_credit_changed on ellity.customers is DISABLED: ALTER TABLE ellity.customers ENABLE TRIGGER customer_credit_changed;"))
        #expect(!outcome.output.contains("order.paid: none"))

        try database.connection.execute("ALTER TABLE ellity.customers ENABLE TRIGGER customer_credit_changed; UPDATE webhooky.events SET event = 'order.paid' WHERE event = 'customer.credit_changed'")
        try database.connection.execute("UPDATE webhooky.webhooks SET event = 'order.paid'")
        try database.connection.execute("INSERT INTO webhooky.event_types (name) VALUES ('order.shipped'), ('order.refunded')")
        try database.addWebhook(event: "order.shipped", url: "https://erp.example.com/shipped")
        try database.addWebhook(event: "order.refunded", url: "https://erp.example.com/refunded")
        // Shipped every 5 minutes until 2 hours ago: overdue. Refunded hourly until 5 hours ago: not yet (10 times its pace).
        try database.connection.execute("""
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'order.shipped', '{}', true, now() - interval '2 hours' - n * interval '5 minutes' FROM generate_series(29, 0, -1) n;
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'order.refunded', '{}', true, now() - interval '5 hours' - n * interval '1 hour' FROM generate_series(29, 0, -1) n;
            """)
        try database.wantedForAMonth()
        let dropped = try database.run(["doctor"])
        #expect(dropped.output.contains("order.shipped: none for 2h, though one came every 5m on average over its last 30 events: has a trigger been dropped?"),
                "\(dropped.output)")
        #expect(dropped.output.contains("No trigger function calls webhooky.emit('order.shipped', ...): if one did, it was dropped or replaced."))
        #expect(!dropped.output.contains("order.refunded: none") && !dropped.output.contains("order.paid: none"))
        #expect(!dropped.output.contains("customer.credit_changed"), "no enabled webhook wants it any more")
    }

    @Test("doctor: an event type whose events webhooky.prune deleted is still judged by their pace (webhooky.event_pace): once retention had taken them it said \"too few events yet\", however long ago the trigger was dropped")
    func prunedEventsKeepTheirPace() throws {
        let database = try AdminDatabase()
        let webhook = try database.addWebhook(url: "https://erp.example.com/x")
        // 30 credit changes a minute apart 9 days ago, delivered then, and 3 tests a day later
        // (tests do not count: with them the last would be 8 days ago, and 33 events).
        try database.connection.execute("""
            WITH e AS (
                INSERT INTO webhooky.events (event, payload, webhook_ids, fanned_out, created_at, is_test)
                SELECT 'customer.credit_changed', '{}', ARRAY[\(webhook)::bigint], true, t, test
                  FROM (SELECT now() - interval '9 days' - n * interval '1 minute', false FROM generate_series(29, 0, -1) n
                        UNION ALL
                        SELECT now() - interval '8 days' - n * interval '1 minute', true FROM generate_series(2, 0, -1) n) x(t, test)
                 ORDER BY t
                RETURNING id, created_at)
            INSERT INTO webhooky.deliveries (event_id, webhook_id, state, attempts, created_at, completed_at)
            SELECT id, \(webhook), 'succeeded', 1, created_at, created_at FROM e ORDER BY id;
            ALTER TABLE ellity.customers DISABLE TRIGGER customer_credit_changed;
            """)
        for _ in 0..<5 where try database.value("SELECT deliveries + attempts + events FROM webhooky.prune()") != "0" {}
        #expect(try database.column("SELECT count(*) FROM webhooky.events") == ["0"])
        #expect(try database.column("""
            SELECT format('%s %s %s %s', event, events, longest_gap, last_at - first_at) FROM webhooky.event_pace
            """) == ["customer.credit_changed 30 00:01:00 00:29:00"])

        try database.wantedForAMonth()
        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        #expect(StatusAndDoctorTests.finding(outcome.output, "events") == "WARN  events        1 event type has had no event for unusually long",
                "\(outcome.output)")
        #expect(outcome.output.contains("customer.credit_changed: none for 9d, though one came every 1m on average over its last 30 events: has a trigger been dropped?"))
        #expect(outcome.output.contains("Trigger customer_credit_changed on ellity.customers is DISABLED"))

        // Ten events of its own since: their pace alone counts again (one a second, the last just now).
        try database.connection.execute("""
            ALTER TABLE ellity.customers ENABLE TRIGGER customer_credit_changed;
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'customer.credit_changed', '{}', true, now() - n * interval '1 second' FROM generate_series(9, 0, -1) n;
            """)
        let again = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(again.output, "events") == "OK    events        every event type with enabled webhooks had an event at its usual pace",
                "\(again.output)")
    }

    @Test("doctor: an event type wanted again after weeks without an enabled webhook is not overdue at once (no event was recorded meanwhile); its silence counts from when a webhook wanted it again")
    func wantedAgainAfterAPause() throws {
        let database = try AdminDatabase()
        let first = try database.addWebhook(url: "https://erp.example.com/x")
        try database.wantedForAMonth()
        // A change a minute for 30 minutes, 10 days ago; then the webhook was disabled.
        try database.connection.execute("""
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'customer.credit_changed', '{}', true, now() - interval '10 days' - n * interval '1 minute' FROM generate_series(29, 0, -1) n;
            """)
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(first)])
        #expect(try database.value("SELECT now() - max(wanted_since) > interval '29 days' FROM webhooky.event_wanted") == "t", "disabling changes nothing")
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(first)])
        #expect(try database.value("SELECT now() - max(wanted_since) < interval '1 minute' FROM webhooky.event_wanted") == "t", "wanted again now")
        let again = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(again.output, "events") == "OK    events        every event type with enabled webhooks had an event at its usual pace",
                "\(again.output)")

        // Wanted again 3 hours ago: overdue since then. A second webhook for the same event, or
        // the first one disabled while the second stays, does not make it wanted again.
        try database.connection.execute("UPDATE webhooky.event_wanted SET wanted_since = now() - interval '3 hours'")
        let second = try database.addWebhook(url: "https://erp.example.com/y")
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(first)])
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(first)])
        #expect(second > first)
        let late = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(late.output, "events") == "WARN  events        1 event type has had no event for unusually long")
        #expect(late.output.contains("customer.credit_changed: none for 3h, though one came every 1m on average over its last 30 events: has a trigger been dropped?"),
                "\(late.output)")
    }

    @Test("doctor: a webhook enabled in a transaction that commits after the type's only other webhook was disabled makes the type wanted again at its commit, so the pause between the two commits is not counted as silence")
    func wantedAgainAtTheCommitOfACrossingEnable() throws {
        let database = try AdminDatabase()
        let first = try database.addWebhook(url: "https://erp.example.com/x")
        let second = try database.addWebhook(url: "https://erp.example.com/y", enabled: false)
        try database.wantedForAMonth()
        // A change a minute for the last 30 minutes, while the first webhook was enabled.
        try database.connection.execute("""
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'customer.credit_changed', '{}', true, now() - n * interval '1 minute' FROM generate_series(29, 0, -1) n;
            """)
        // The second is enabled in a transaction that stays open while the first is disabled;
        // its statement still sees the first enabled.
        let enabling = try database.database.connect()
        try enabling.execute("BEGIN")
        try enabling.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(second)])
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(first)])
        // Three hours of that pause, in which no event could be recorded: everything so far
        // moves three hours into the past.
        try database.connection.execute("""
            UPDATE webhooky.events SET created_at = created_at - interval '3 hours';
            UPDATE webhooky.event_wanted SET wanted_since = wanted_since - interval '3 hours';
            """)
        try enabling.execute("COMMIT")
        #expect(try database.value("SELECT now() - max(wanted_since) < interval '1 minute' FROM webhooky.event_wanted") == "t",
                "the type was wanted again when the enabling transaction committed")
        #expect(try database.value("SELECT webhook_id FROM webhooky.event_wanted ORDER BY wanted_since DESC LIMIT 1") == String(second))
        let outcome = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(outcome.output, "events") == "OK    events        every event type with enabled webhooks had an event at its usual pace",
                "\(outcome.output)")

        // Crossing the other way (enabled and committed while the first was still enabled, which
        // was then disabled): the type was wanted all along, nothing is noted.
        try database.connection.execute("UPDATE webhooky.event_wanted SET wanted_since = now() - interval '30 days'")
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(first)])
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(second)])
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(second)])
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(first)])
        let notes = try database.column("SELECT webhook_id || ' ' || wanted_since FROM webhooky.event_wanted")
        #expect(try database.value("SELECT now() - max(wanted_since) > interval '29 days' FROM webhooky.event_wanted") == "t",
                "the type was wanted all along: \(notes)")
    }

    @Test("the note of a type wanted again is timed at the commit, and not written when the webhook no longer wants the event by then")
    func wantedSinceIsTimedAtTheCommit() throws {
        let database = try AdminDatabase()
        try database.wantedForAMonth()
        try database.connection.execute("BEGIN")
        let webhook = try database.addWebhook(url: "https://erp.example.com/x")
        try database.connection.execute("SELECT pg_sleep(0.2)")
        let beforeCommit = try #require(try database.value("SELECT clock_timestamp()::text"))
        try database.connection.execute("COMMIT")
        #expect(try database.value("SELECT wanted_since >= $2::timestamptz FROM webhooky.event_wanted WHERE webhook_id = $1",
                                   [String(webhook), beforeCommit]) == "t",
                "the commit's time, not the statement's or the transaction's start")

        // Inserted enabled, then disabled before the commit: the type was never wanted.
        try database.connection.execute("DELETE FROM webhooky.webhooks; DELETE FROM webhooky.event_wanted")
        try database.connection.execute("BEGIN")
        let brief = try database.addWebhook(url: "https://erp.example.com/y")
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(brief)])
        try database.connection.execute("COMMIT")
        #expect(try database.value("SELECT count(*) FROM webhooky.event_wanted") == "0")
    }

    @Test("two webhooks that make their type wanted again in one transaction (one of them inside a savepoint) note it at the commit, though at the commit each sees the other enabled")
    func twoWebhooksWantedAgainInOneTransaction() throws {
        let database = try AdminDatabase()
        let first = try database.addWebhook(url: "https://erp.example.com/x", enabled: false)
        let second = try database.addWebhook(url: "https://erp.example.com/y", enabled: false)
        try database.connection.execute("DELETE FROM webhooky.event_wanted")
        try database.connection.execute("BEGIN; SAVEPOINT one")
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(first)])
        try database.connection.execute("RELEASE SAVEPOINT one")
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(second)])
        let beforeCommit = try #require(try database.value("SELECT clock_timestamp()::text"))
        try database.connection.execute("COMMIT")
        #expect(try database.column("SELECT webhook_id::text FROM webhooky.event_wanted WHERE wanted_since >= $1::timestamptz ORDER BY webhook_id", [beforeCommit])
                == [String(first), String(second)], "each, at the commit: the other was made wanting by the same transaction")

        // One of two: a second webhook enabled while the first stays notes nothing.
        try database.connection.execute("UPDATE webhooky.event_wanted SET wanted_since = now() - interval '30 days'")
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(second)])
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(second)])
        #expect(try database.value("SELECT now() - max(wanted_since) > interval '29 days' FROM webhooky.event_wanted") == "t")
    }

    @Test("webhooks a single statement makes wanting their type again (a multi-row INSERT, an UPDATE of all, with the check at the commit or, after SET CONSTRAINTS ALL IMMEDIATE, at the statement) note it; the transactions' marks are removed afterwards")
    func webhooksWantedAgainByOneStatement() throws {
        let database = try AdminDatabase()
        try database.connection.execute("""
            INSERT INTO webhooky.webhooks (name, event, url) VALUES
                ('erp', 'customer.credit_changed', 'https://erp.example.com/x'), ('mail', 'customer.credit_changed', 'https://mail.example.com/x')
            """)
        #expect(try database.value("SELECT count(*) FROM webhooky.event_wanted WHERE now() - wanted_since < interval '1 minute'") == "2")

        for immediate in [false, true] {
            try database.connection.execute("""
                UPDATE webhooky.webhooks SET enabled = false;
                UPDATE webhooky.event_wanted SET wanted_since = now() - interval '30 days';
                """)
            try database.connection.execute("BEGIN")
            if immediate { try database.connection.execute("SET CONSTRAINTS ALL IMMEDIATE") }
            try database.connection.execute("UPDATE webhooky.webhooks SET enabled = true WHERE event = 'customer.credit_changed'")
            try database.connection.execute("COMMIT")
            #expect(try database.value("SELECT now() - max(wanted_since) < interval '1 minute' FROM webhooky.event_wanted") == "t",
                    "re-enabled by one UPDATE, \(immediate ? "immediate" : "deferred") check")
        }
        // One more change commits: the marks of the finished transactions are gone. (Marks are
        // removed once every running transaction of the cluster began after theirs ended; other
        // tests' transactions may hold that back for a moment, so the change is made again.)
        let deadline = ContinuousClock.now + .seconds(30)
        var marks: String?
        repeat {
            try database.addWebhook(event: "customer.tier_changed", url: "https://erp.example.com/tier")
            marks = try database.value("SELECT count(*) FROM webhooky.event_wanting")
            if marks != "1" { Thread.sleep(forTimeInterval: 0.1) }
        } while marks != "1" && ContinuousClock.now < deadline
        #expect(marks == "1", "only the last transaction's mark, removed by the next")
    }

    @Test("doctor: two webhooks enabled in a transaction that commits after the type's only other webhook was disabled note the type wanted again at the commit")
    func twoWebhooksWantedAgainAcrossACrossingDisable() throws {
        let database = try AdminDatabase()
        let first = try database.addWebhook(url: "https://erp.example.com/x")
        try database.connection.execute("UPDATE webhooky.event_wanted SET wanted_since = now() - interval '30 days'")
        let enabling = try database.database.connect()
        try enabling.execute("BEGIN")
        try enabling.execute("""
            INSERT INTO webhooky.webhooks (name, event, url) VALUES ('a', 'customer.credit_changed', 'https://a.example.com/');
            INSERT INTO webhooky.webhooks (name, event, url) VALUES ('b', 'customer.credit_changed', 'https://b.example.com/');
            """)
        try database.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(first)])
        let beforeCommit = try #require(try database.value("SELECT clock_timestamp()::text"))
        try enabling.execute("COMMIT")
        #expect(try database.value("SELECT count(*) FROM webhooky.event_wanted WHERE wanted_since >= $1::timestamptz", [beforeCommit]) == "2")
    }

    /// A database with the event types order.paid and order.shipped, each with a webhook.
    static func paidAndShipped() throws -> AdminDatabase {
        let database = try AdminDatabase()
        try database.connection.execute("INSERT INTO webhooky.event_types (name) VALUES ('order.paid'), ('order.shipped')")
        try database.addWebhook(event: "order.paid", url: "https://erp.example.com/paid")
        try database.addWebhook(event: "order.shipped", url: "https://erp.example.com/shipped")
        return database
    }

    @Test("doctor: events that stop every night are not overdue tonight, only when the silence is clearly longer than the longest one among them")
    func quietNights() throws {
        let database = try StatusAndDoctorTests.paidAndShipped()
        // Both: every 5 minutes through a 10-hour day, 14 hours of night, then another 8-hour
        // day. Paid's day ended 8 hours ago (a night like the last); shipped's 25 hours ago.
        try database.connection.execute("""
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'order.paid', '{}', true, now() - interval '8 hours' - d * interval '1 second'
              FROM (SELECT 22 * 3600 + n * 300 AS d FROM generate_series(0, 120) n
                    UNION ALL SELECT n * 300 FROM generate_series(0, 96) n) days ORDER BY d DESC;
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'order.shipped', '{}', true, created_at - interval '17 hours' FROM webhooky.events WHERE event = 'order.paid' ORDER BY id;
            """)
        try database.wantedForAMonth()
        let outcome = try database.run(["doctor"])
        #expect(!outcome.output.contains("order.paid: none"), "\(outcome.output)")
        #expect(outcome.output.contains("order.shipped: none for 1d 1h, though one came every 8m 50s on average over its last 218 events, longer than the longest silence among them (14h): has a trigger been dropped?"),
                "\(outcome.output)")
    }

    @Test("doctor: a nightly batch of more events than the pace reads (one transaction's, all of the same time) is judged by the night before it, not by its own pace of 0ms: not overdue 2 hours after, overdue once a night is skipped")
    func nightlyBatches() throws {
        let database = try StatusAndDoctorTests.paidAndShipped()
        // 1,500 events a night for 3 nights; paid's last batch came 2 hours ago, shipped's 2 days
        // and 2 hours ago (last night's and the night before's are missing).
        try database.connection.execute("""
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'order.paid', '{}', true, now() - interval '2 hours' - night * interval '1 day'
              FROM generate_series(2, 0, -1) night, generate_series(1, 1500) n;
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'order.shipped', '{}', true, created_at - interval '2 days' FROM webhooky.events WHERE event = 'order.paid' ORDER BY id;
            """)
        try database.wantedForAMonth()
        let outcome = try database.run(["doctor"])
        #expect(!outcome.output.contains("order.paid: none"), "\(outcome.output)")
        #expect(outcome.output.contains("order.shipped: none for 2d 2h, though one came every 0ms on average over its last 1,000 events, longer than the longest silence among them (1d): has a trigger been dropped?"),
                "\(outcome.output)")

        // A silence while no webhook wanted the type (nothing is recorded then) is no pattern:
        // refunded's one event of 40 days ago does not make 40 days its usual silence.
        try database.connection.execute("""
            INSERT INTO webhooky.event_types (name) VALUES ('order.refunded');
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at) VALUES ('order.refunded', '{}', true, now() - interval '40 days');
            """)
        try database.addWebhook(event: "order.refunded", url: "https://erp.example.com/refunded")
        try database.connection.execute("""
            UPDATE webhooky.event_wanted SET wanted_since = now() - interval '3 hours' WHERE event = 'order.refunded';
            INSERT INTO webhooky.events (event, payload, fanned_out, created_at)
            SELECT 'order.refunded', '{}', true, now() - interval '2 hours' FROM generate_series(1, 1500);
            """)
        let backfilled = try database.run(["doctor"])
        #expect(backfilled.output.contains("order.refunded: none for 2h, though one came every 0ms on average over its last 1,000 events: has a trigger been dropped?"),
                "\(backfilled.output)")
    }

    @Test("doctor: a trigger whose WHEN clause tests another event's bit is a FAIL that names it and says how to fix it")
    func triggerTestingAnotherEventsBit() throws {
        let database = try AdminDatabase()
        let wrong = try #require(try database.value("SELECT webhooky.wanted_condition('customer.tier_changed')"))
        try database.connection.execute("""
            DROP TRIGGER customer_credit_changed ON ellity.customers;
            CREATE TRIGGER customer_credit_changed AFTER UPDATE OF credit ON ellity.customers
                FOR EACH ROW WHEN (\(wrong)) EXECUTE FUNCTION ellity.customer_credit_changed();
            """)
        let outcome = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(outcome.output, "triggers") == "FAIL  triggers      1 trigger may skip its events", "\(outcome.output)")
        #expect(outcome.output.contains("Trigger customer_credit_changed on ellity.customers emits customer.credit_changed but its WHEN clause does not test that event's bit, so it skips customer.credit_changed events: re-create it with the condition that SELECT webhooky.wanted_condition('customer.credit_changed') returns."))
        #expect(!outcome.output.contains("customer_tier_changed on"), "the tier trigger tests its own bit")
    }

    @Test("doctor: a webhook for one account whose event a trigger emits without an account never fires, and doctor says so (it said all was well): a WARN naming the function, the webhooks and both fixes; has_webhooks without an account too, while no webhook for every account wants the event; OK once the account is passed")
    func accountWebhookOfAnAccountlessEvent() throws {
        let database = try AdminDatabase()
        let acme = try database.addWebhook(url: "https://erp.example.com/hook", name: "Acme ERP")
        // Customer 1 of e-shop 'acme', whose credit the test changes.
        let shop = "acme"
        try database.connection.execute("""
            INSERT INTO ellity.eshops VALUES ('acme', 'Acme');
            INSERT INTO ellity.customers (id, eshop_id, email, credit) VALUES (1, 'acme', 'a@acme.example', 10);
            """)
        _ = try database.connection.query("UPDATE webhooky.webhooks SET account_id = $1 WHERE id = \(acme)", [shop])
        // The reference triggers pass the e-shop: nothing to say.
        #expect(StatusAndDoctorTests.finding(try database.run(["doctor"]).output, "accounts")
                == "OK    accounts      the trigger functions pass an account with the events that webhooks for one account want")
        try database.connection.execute("""
            CREATE OR REPLACE FUNCTION ellity.customer_credit_changed() RETURNS trigger
            LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
                PERFORM webhooky.emit('customer.credit_changed', ellity.customer_event_payload(NEW, OLD));  -- no account
                RETURN NULL;
            END
            $$;
            """)
        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        #expect(StatusAndDoctorTests.finding(outcome.output, "accounts")
                == "WARN  accounts      1 webhook for one account never gets events a trigger emits without an account", "\(outcome.output)")
        #expect(outcome.output.contains("Function ellity.customer_credit_changed() (trigger customer_credit_changed on ellity.customers) emits customer.credit_changed "
            + "without an account (webhooky.emit with two arguments, or NULL for the third), which fires only the webhooks for every account: "
            + "webhook \(acme) \"Acme ERP\" (account '\(shop)') never gets customer.credit_changed events from it. "
            + "Pass the account, as the webhooks' account_id holds it: webhooky.emit('customer.credit_changed', payload, NEW.account_column::text); "
            + "or, when these webhooks are to get every account's events, UPDATE webhooky.webhooks SET account_id = NULL WHERE id IN (\(acme));"), "\(outcome.output)")
        // What doctor says is what happens: the change records nothing for the webhook.
        try database.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = 1")
        #expect(try database.value("SELECT count(*) FROM webhooky.events") == "0")
        // The account's own role is told too, with the fix that is the DBA's (it may not set account_id).
        let role = "tenant_\(database.database.name)"
        try database.connection.execute("""
            CREATE ROLE \(role) LOGIN IN ROLE webhooky_tenant;
            INSERT INTO webhooky.tenants (role_name, account_id) VALUES ('\(role)', 'acme');
            """)
        defer { _ = try? database.connection.execute("DROP OWNED BY \(role); DROP ROLE \(role)") }
        let asTenant = ["--database-url", database.url + " user=\(role)"]
        let tenant = try CommandProcess.run(["doctor"] + asTenant).output
        #expect(tenant.contains("(account 'acme') never gets customer.credit_changed events from it. "
            + "The DBA passes the account, as the webhooks' account_id holds it: webhooky.emit('customer.credit_changed', payload, NEW.account_column::text).\n"), "\(tenant)")
        #expect(!tenant.contains("SET account_id = NULL"), "\(tenant)")

        // One call with the account and one without: the webhook misses the events of the second.
        try database.connection.execute("""
            CREATE OR REPLACE FUNCTION ellity.customer_credit_changed() RETURNS trigger
            LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
                IF NEW.credit < 0 THEN
                    PERFORM webhooky.emit('customer.credit_changed', ellity.customer_event_payload(NEW, OLD));
                ELSE
                    PERFORM webhooky.emit('customer.credit_changed', ellity.customer_event_payload(NEW, OLD), NEW.eshop_id);
                END IF;
                RETURN NULL;
            END
            $$;
            """)
        #expect(try database.run(["doctor"]).output.contains(
            "emits customer.credit_changed without an account in some of its calls (webhooky.emit with two arguments, or NULL for the third), which fire only the webhooks for every account: "
            + "webhook \(acme) \"Acme ERP\" (account 'acme') never gets customer.credit_changed events from those calls."))

        // Asked first without an account, and emitted with one: nothing recorded while only the
        // account's webhook wants it; a webhook for every account makes has_webhooks true.
        try database.connection.execute("""
            CREATE OR REPLACE FUNCTION ellity.customer_credit_changed() RETURNS trigger
            LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
                IF webhooky.has_webhooks('customer.credit_changed') THEN
                    PERFORM webhooky.emit('customer.credit_changed', ellity.customer_event_payload(NEW, OLD), NEW.eshop_id);
                END IF;
                RETURN NULL;
            END
            $$;
            """)
        let asked = try database.run(["doctor"]).output
        #expect(asked.contains("Function ellity.customer_credit_changed() (trigger customer_credit_changed on ellity.customers) asks "
            + "webhooky.has_webhooks('customer.credit_changed') without an account, which is false while only webhooks for one account want it, "
            + "so it records nothing for them: webhook \(acme) \"Acme ERP\" (account '\(shop)') never gets customer.credit_changed events from it. "
            + "Pass the account, as the webhooks' account_id holds it: webhooky.has_webhooks('customer.credit_changed', NEW.account_column::text);"), "\(asked)")
        // The tenant's role does not see the webhooks for every account, so it does not judge this.
        #expect(StatusAndDoctorTests.finding(try CommandProcess.run(["doctor"] + asTenant).output, "accounts")?.hasPrefix("OK    accounts") == true)
        try database.addWebhook(url: "https://all.example.com/hook", name: "Every shop")
        #expect(StatusAndDoctorTests.finding(try database.run(["doctor"]).output, "accounts")?.hasPrefix("OK    accounts") == true)
        try database.connection.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = 1")
        #expect(try database.value("SELECT webhook_ids::text FROM webhooky.events") == "{\(acme),\(acme + 1)}")

        // No webhook for one account: nothing to check.
        try database.connection.execute("UPDATE webhooky.webhooks SET account_id = NULL")
        #expect(StatusAndDoctorTests.finding(try database.run(["doctor"]).output, "accounts") == "OK    accounts      no enabled webhook is for one account only")
    }

    @Test("doctor: a trigger function that names an event webhooky.event_types does not have (a misspelt name) is a FAIL naming the function, its trigger and the event it probably meant; behind has_webhooks nothing is recorded, silently; called by emit alone every change of the table fails (doctor said it recorded nothing)")
    func triggerNamingAnUnknownEvent() throws {
        let database = try AdminDatabase()
        try database.connection.execute("""
            CREATE FUNCTION ellity.typo_credit_changed() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
                IF webhooky.has_webhooks('customer.credit_chnaged', NEW.eshop_id) THEN
                    PERFORM webhooky.emit('customer.credit_chnaged', jsonb_build_object('id', NEW.id), NEW.eshop_id);
                END IF;
                RETURN NULL;
            END $$;
            CREATE TRIGGER typo_credit_changed AFTER UPDATE OF credit ON ellity.customers
                FOR EACH ROW EXECUTE FUNCTION ellity.typo_credit_changed();
            """)
        let outcome = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(outcome.output, "triggers") == "FAIL  triggers      1 trigger may skip its events", "\(outcome.output)")
        #expect(outcome.output.contains("Function ellity.typo_credit_changed() (trigger typo_credit_changed on ellity.customers) names event 'customer.credit_chnaged', "
            + "which webhooky.event_types does not have (did you mean 'customer.credit_changed'?): has_webhooks is false for it, so the trigger records nothing, silently. "
            + "Correct the name in the function, or register the event: INSERT INTO webhooky.event_types (name, description, sample) VALUES (...);"), "\(outcome.output)")
        // Without has_webhooks first, emit raises an error: the change fails, not the event alone.
        try database.connection.execute("""
            CREATE FUNCTION ellity.typo_tier_changed() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
                PERFORM webhooky.emit('customer.tier_chnaged', jsonb_build_object('id', NEW.id), NEW.eshop_id);
                RETURN NULL;
            END $$;
            CREATE TRIGGER typo_tier_changed AFTER UPDATE OF tier_id ON ellity.customers
                FOR EACH ROW EXECUTE FUNCTION ellity.typo_tier_changed();
            """)
        let both = try database.run(["doctor"]).output
        #expect(both.contains("Function ellity.typo_tier_changed() (trigger typo_tier_changed on ellity.customers) names event 'customer.tier_chnaged', "
            + "which webhooky.event_types does not have (did you mean 'customer.tier_changed'?): webhooky.emit refuses it, so each change whose trigger reaches that call fails "
            + "(\"webhooky.emit: unknown event 'customer.tier_chnaged'\") and is rolled back. Correct the name"))
        // The headline says so too, apart from the trigger that only records nothing.
        #expect(StatusAndDoctorTests.finding(both, "triggers")
            == "FAIL  triggers      1 trigger may skip its events; 1 trigger function fails the changes that reach its webhooky.emit", "\(both)")
        try database.connection.execute("DROP TRIGGER typo_tier_changed ON ellity.customers")
        // Registered, the name is no finding.
        try database.connection.execute("INSERT INTO webhooky.event_types (name, description, sample) VALUES ('customer.credit_chnaged', 'typo, registered', '{}')")
        #expect(StatusAndDoctorTests.finding(try database.run(["doctor"]).output, "triggers")?.hasPrefix("OK    triggers") == true)
    }

    @Test("doctor: a login role that may change a table whose trigger calls webhooky.emit, but was not granted webhooky_emitter, is a FAIL with the GRANT: each of its changes fails with 'permission denied for schema webhooky', and doctor said all was well")
    func writerWithoutTheEmitterGrant() throws {
        let database = try AdminDatabase()
        try database.addWebhook(url: "https://erp.example.com/credit")
        let role = "shop_app_\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try database.connection.execute("""
            CREATE ROLE \(role) LOGIN;
            GRANT USAGE ON SCHEMA ellity TO \(role);
            GRANT SELECT ON ALL TABLES IN SCHEMA ellity TO \(role);
            GRANT UPDATE ON ellity.customers TO \(role);
            INSERT INTO ellity.eshops (id, name) VALUES ('eshop-1', 'My shop');
            INSERT INTO ellity.customer_groups (id, eshop_id, name) VALUES (1, 'eshop-1', 'Retail');
            INSERT INTO ellity.vip_tiers (id, eshop_id, name, min_credit) VALUES (1, 'eshop-1', 'Silver', 0);
            INSERT INTO ellity.customers (id, eshop_id, email, credit, group_id, tier_id) VALUES (1001, 'eshop-1', 'jana@example.cz', 250.00, 1, 1);
            """)
        defer { _ = try? database.connection.execute("DROP OWNED BY \(role); DROP ROLE \(role)") }
        // What the application meets: its UPDATE fails.
        let application = try Connection(conninfo: database.url.replacingOccurrences(of: "user=postgres", with: "user=\(role)"))
        let refused = #expect(throws: PostgresError.self) { try application.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = 1001") }
        #expect(refused.map { "\($0)" }?.contains("permission denied for schema webhooky") == true, "\(String(describing: refused))")

        let outcome = try database.run(["doctor"])
        #expect(outcome.status == 1)
        #expect(StatusAndDoctorTests.finding(outcome.output, "triggers")
                == "FAIL  triggers      1 role fires a trigger that calls webhooky.emit but may not call it", "\(outcome.output)")
        #expect(outcome.output.contains("Role \(role) may UPDATE ellity.customers, whose trigger customer_credit_changed calls webhooky.emit, but may not call it: "
            + "each such change fails (\"permission denied for schema webhooky\" or \"for function emit\") and is rolled back. GRANT webhooky_emitter TO \(role);"),
                "\(outcome.output)")
        #expect(outcome.output.contains("Role \(role) may UPDATE ellity.customers, whose trigger customer_tier_changed calls"), "\(outcome.output)")

        try database.connection.execute("GRANT webhooky_emitter TO \(role)")
        try application.execute("UPDATE ellity.customers SET credit = credit + 1 WHERE id = 1001")
        #expect(StatusAndDoctorTests.finding(try database.run(["doctor"]).output, "triggers")?.hasPrefix("OK    triggers") == true)
    }

    @Test("doctor: the emitter grant is checked for a role granted UPDATE on some columns only, for the owner of a SECURITY DEFINER trigger function, once for a partitioned table, and not for a role that cannot reach the table's schema; a NOINHERIT member is told to inherit")
    func emitterGrantCornerCases() throws {
        let database = try AdminDatabase()
        try database.addWebhook(url: "https://erp.example.com/credit")
        let suffix = "\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        let (columns, owner, outsider, noinherit) = ("cols_\(suffix)", "owner_\(suffix)", "outsider_\(suffix)", "noinh_\(suffix)")
        try database.connection.execute("""
            CREATE SCHEMA shop_\(suffix);
            CREATE TABLE shop_\(suffix).orders (id bigint PRIMARY KEY, paid_at timestamptz);
            INSERT INTO shop_\(suffix).orders VALUES (1, NULL);
            CREATE FUNCTION shop_\(suffix).order_paid() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
                PERFORM webhooky.emit('customer.credit_changed', jsonb_build_object('id', NEW.id));
                RETURN NULL;
            END $$;
            CREATE TRIGGER order_paid AFTER UPDATE OF paid_at ON shop_\(suffix).orders FOR EACH ROW EXECUTE FUNCTION shop_\(suffix).order_paid();
            CREATE TABLE shop_\(suffix).payments (id bigint, region text) PARTITION BY LIST (region);
            CREATE TABLE shop_\(suffix).payments_eu PARTITION OF shop_\(suffix).payments FOR VALUES IN ('eu');
            CREATE TABLE shop_\(suffix).payments_us PARTITION OF shop_\(suffix).payments FOR VALUES IN ('us');
            CREATE TRIGGER payment_made AFTER INSERT ON shop_\(suffix).payments FOR EACH ROW EXECUTE FUNCTION shop_\(suffix).order_paid();
            CREATE ROLE \(columns) LOGIN;
            GRANT USAGE ON SCHEMA shop_\(suffix) TO \(columns);
            GRANT SELECT, UPDATE (paid_at) ON shop_\(suffix).orders TO \(columns);
            GRANT INSERT ON shop_\(suffix).payments, shop_\(suffix).payments_eu, shop_\(suffix).payments_us TO \(columns);
            CREATE ROLE \(outsider) LOGIN;
            GRANT UPDATE ON shop_\(suffix).orders TO \(outsider);
            CREATE ROLE \(noinherit) LOGIN NOINHERIT IN ROLE webhooky_emitter;
            GRANT USAGE ON SCHEMA shop_\(suffix) TO \(noinherit);
            GRANT UPDATE ON shop_\(suffix).orders TO \(noinherit);
            CREATE ROLE \(owner) NOLOGIN;
            CREATE FUNCTION shop_\(suffix).order_shipped() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
                PERFORM webhooky.emit('customer.credit_changed', jsonb_build_object('id', NEW.id));
                RETURN NULL;
            END $$;
            ALTER FUNCTION shop_\(suffix).order_shipped() OWNER TO \(owner);
            CREATE TRIGGER order_shipped AFTER DELETE ON shop_\(suffix).orders FOR EACH ROW EXECUTE FUNCTION shop_\(suffix).order_shipped();
            """)
        defer {
            _ = try? database.connection.execute("DROP SCHEMA shop_\(suffix) CASCADE")
            for role in [columns, owner, outsider, noinherit] { _ = try? database.connection.execute("DROP OWNED BY \(role); DROP ROLE \(role)") }
        }
        // What the role with a column grant meets.
        let application = try Connection(conninfo: database.url.replacingOccurrences(of: "user=postgres", with: "user=\(columns)"))
        let refused = #expect(throws: PostgresError.self) { try application.execute("UPDATE shop_\(suffix).orders SET paid_at = now() WHERE id = 1") }
        #expect(refused.map { "\($0)" }?.contains("permission denied for schema webhooky") == true, "\(String(describing: refused))")

        let output = try database.run(["doctor"]).output
        #expect(output.contains("Role \(columns) may UPDATE shop_\(suffix).orders, whose trigger order_paid calls webhooky.emit, but may not call it: "
            + "each such change fails (\"permission denied for schema webhooky\" or \"for function emit\") and is rolled back. GRANT webhooky_emitter TO \(columns);"), "\(output)")
        #expect(output.contains("Role \(columns) may INSERT shop_\(suffix).payments, whose trigger payment_made calls"), "\(output)")
        #expect(!output.contains("payments_eu") && !output.contains("payments_us"), "the partitions' cloned triggers: \(output)")
        #expect(output.contains("Function shop_\(suffix).order_shipped() runs as its owner \(owner) (SECURITY DEFINER), which may not call webhooky.emit: "
            + "each change that fires its trigger order_shipped on shop_\(suffix).orders fails (\"permission denied for schema webhooky\" or \"for function emit\") "
            + "and is rolled back. GRANT webhooky_emitter TO \(owner);"), "\(output)")
        #expect(output.contains("Role \(noinherit) may UPDATE shop_\(suffix).orders, whose trigger order_paid calls webhooky.emit, but may not call it: "
            + "each such change fails (\"permission denied for schema webhooky\" or \"for function emit\") and is rolled back. "
            + "ALTER ROLE \(noinherit) INHERIT; (it is a member of webhooky_emitter but does not inherit its rights)"), "\(output)")
        #expect(!output.contains("Role \(outsider)"), "no USAGE on the table's schema: its change fails before the trigger: \(output)")
        #expect(StatusAndDoctorTests.finding(output, "triggers") == "FAIL  triggers      3 roles fire a trigger that calls webhooky.emit but may not call it", "\(output)")
    }

    @Test("doctor: a trigger function that calls emit with the caller's search_path is a WARN while every role may create in public")
    func triggerFunctionWithTheCallersSearchPath() throws {
        let database = try AdminDatabase()
        try database.connection.execute("""
            CREATE FUNCTION ellity.loose_credit_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM webhooky.emit('customer.credit_changed', jsonb_build_object('customer', jsonb_build_object('id', NEW.id)), NEW.eshop_id);
                RETURN NULL;
            END $$;
            CREATE TRIGGER loose_credit_changed AFTER UPDATE OF credit ON ellity.customers
                FOR EACH ROW EXECUTE FUNCTION ellity.loose_credit_changed();
            """)
        // PostgreSQL 15's default: nobody but the owner creates in public, nothing to warn about.
        let closed = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(closed.output, "triggers")
                == "OK    triggers      every trigger that reads webhooky.wanted_events tests the events it emits", "\(closed.output)")
        // As in a database created before PostgreSQL 15.
        try database.connection.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        let open = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(open.output, "triggers")
                == "WARN  triggers      1 trigger function may run another role's code: every role may create objects in public", "\(open.output)")
        #expect(open.output.contains("Function ellity.loose_credit_changed() (trigger loose_credit_changed on ellity.customers) calls webhooky.emit with the caller's search_path: ALTER FUNCTION ellity.loose_credit_changed() SET search_path = pg_catalog, pg_temp;"),
                "\(open.output)")
        #expect(!open.output.contains("ellity.customer_credit_changed()"), "the reference triggers have their own search_path")
        try database.connection.execute("ALTER FUNCTION ellity.loose_credit_changed() SET search_path = pg_catalog, pg_temp")
        #expect(StatusAndDoctorTests.finding(try database.run(["doctor"]).output, "triggers")?.hasPrefix("OK    triggers") == true)
    }

    @Test("doctor: the search_path fix for a trigger function says to write the schema of the function's own names first: the ALTER alone makes a function that finds its helper through the caller's search_path fail, and every change of its table with it")
    func triggerSearchPathFixQualifiesOwnNamesFirst() throws {
        let database = try AdminDatabase()
        try database.connection.execute("""
            INSERT INTO ellity.eshops (id, name) VALUES ('eshop-1', 'My shop');
            INSERT INTO ellity.customers (id, eshop_id, email, credit) VALUES (1001, 'eshop-1', 'jana@example.cz', 250);
            CREATE FUNCTION public.loose_payload(c ellity.customers) RETURNS jsonb LANGUAGE sql
                AS $$ SELECT jsonb_build_object('customer', jsonb_build_object('id', c.id)) $$;
            CREATE FUNCTION ellity.loose_credit_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM webhooky.emit('customer.credit_changed', loose_payload(NEW), NEW.eshop_id);
                RETURN NULL;
            END $$;
            CREATE TRIGGER loose_credit_changed AFTER UPDATE OF credit ON ellity.customers
                FOR EACH ROW EXECUTE FUNCTION ellity.loose_credit_changed();
            GRANT CREATE ON SCHEMA public TO PUBLIC;
            """)
        let open = try database.run(["doctor"])
        #expect(StatusAndDoctorTests.finding(open.output, "triggers")?.hasPrefix("WARN  triggers") == true, "\(open.output)")
        #expect(open.output.contains("Before the ALTER, write the schema of every table and function of your own that the function uses (shop.order_payload(NEW), not order_payload(NEW)): with that search_path it finds only built-ins and what it names with a schema, and a name it no longer finds makes every change of its table fail."),
                "\(open.output)")
        // Why: the ALTER alone, and the business transaction fails.
        try database.connection.execute("ALTER FUNCTION ellity.loose_credit_changed() SET search_path = pg_catalog, pg_temp")
        do {
            try database.connection.execute("UPDATE ellity.customers SET credit = 300 WHERE id = 1001")
            Issue.record("the trigger found loose_payload without its schema")
        } catch {
            #expect(error.message.contains("function loose_payload(ellity.customers) does not exist"), "\(error.message)")
        }
        // As the finding says: the schema written out, then the ALTER.
        try database.connection.execute("""
            CREATE OR REPLACE FUNCTION ellity.loose_credit_changed() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
                PERFORM webhooky.emit('customer.credit_changed', public.loose_payload(NEW), NEW.eshop_id);
                RETURN NULL;
            END $$;
            UPDATE ellity.customers SET credit = 300 WHERE id = 1001;
            """)
        #expect(StatusAndDoctorTests.finding(try database.run(["doctor"]).output, "triggers")?.hasPrefix("OK    triggers") == true)
    }

    @Test("doctor: an unreachable database, a schema of another version, a role without privileges")
    func cannotCheck() throws {
        let unreachable = try CommandProcess.run(["doctor", "--database-url", "host=/nonexistent-socket-dir port=1 connect_timeout=2"])
        #expect(unreachable.status == 3)
        #expect(unreachable.output.hasPrefix("FAIL  connection    cannot connect to the database: "))

        let empty = try TestCluster.newEmptyDatabase()
        let missing = try CommandProcess.run(["doctor", "--database-url", empty.conninfo])
        #expect(missing.status == 1)
        #expect(StatusAndDoctorTests.finding(missing.output, "schema")
                == #"FAIL  schema        the webhooky schema is not installed in database \#(empty.name); run "webhooky migrate" first (or point --database-url at the right database)"#)
        #expect(StatusAndDoctorTests.finding(missing.output, "workers") == nil, "checks that need the schema are left out")

        let database = try AdminDatabase()
        let role = "nobody_\(getpid())_\(UInt16.random(in: 0...UInt16.max))"
        try database.connection.execute("CREATE ROLE \(role) LOGIN")
        let stranger = try CommandProcess.run(["doctor", "--database-url", database.url.replacingOccurrences(of: "user=postgres", with: "user=\(role)")])
        #expect(stranger.status == 1)
        #expect(StatusAndDoctorTests.finding(stranger.output, "schema")?.hasPrefix("FAIL  schema        role \(role) may not use the webhooky schema") == true, "\(stranger.output)")
        #expect(stranger.output.contains("GRANT webhooky_admin TO \(role);"))

        try database.connection.execute("GRANT webhooky_worker TO \(role)")
        let worker = try CommandProcess.run(["doctor", "--database-url", database.url.replacingOccurrences(of: "user=postgres", with: "user=\(role)")])
        #expect(StatusAndDoctorTests.finding(worker.output, "privileges")
                == "OK    privileges    role \(role) can run the worker (for admin work as well: GRANT webhooky_admin TO \(role);)")
        #expect(worker.output.contains("FAIL  workers       no worker alive"), "a worker's role may read what the doctor needs")
        #expect(StatusAndDoctorTests.finding(worker.output, "events") == "OK    events        no enabled webhooks, so no events are expected",
                "it reads webhooky.event_pace too (0042 left the worker's role out)")

        try database.connection.execute("REVOKE webhooky_worker FROM \(role); GRANT USAGE ON SCHEMA webhooky TO \(role); GRANT SELECT ON webhooky.migrations TO \(role)")
        let partial = try CommandProcess.run(["doctor", "--database-url", database.url.replacingOccurrences(of: "user=postgres", with: "user=\(role)")])
        #expect(StatusAndDoctorTests.finding(partial.output, "privileges")
                == "WARN  privileges    role \(role) can neither run the worker nor do admin work: a DBA runs GRANT webhooky_worker TO \(role); (or webhooky_admin)")
        #expect(partial.output.contains("missing for the worker: SELECT on webhooky.event_types, "))
        #expect(StatusAndDoctorTests.finding(partial.output, "workers")?.hasPrefix("WARN  workers       could not check: permission denied for table workers") == true)
    }
}
