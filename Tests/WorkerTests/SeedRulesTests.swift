import Foundation
import Glibc
import HTTPClient
import LocalPostgres
import LoopbackReceiver
import Postgres
import Schema
import StandardWebhooks
import TestSupport
import Testing
import Worker

/// The seed's promises (S1-S8), end to end: a committed change in PostgreSQL, the worker, and
/// the exact request a real receiver on 127.0.0.1 gets.
@Suite(.timeLimit(.minutes(10))) struct SeedRulesTests {
    static let seedBody = """
        {
          "eshop":"#account.eshopId#",
          "email":"#customer.email#",
          "credit":"#customer.credit#",
          "custom": {
           "field":"vlastni_pole"
          }
        }
        """

    @Test("S3, S4: no body is a GET with variables in the query, percent-encoded")
    func getWithVariablesInQuery() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/path?id=#customer.id#&email=#customer.email#")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("250.50")

        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.method == "GET")
        #expect(request.target == "/path?id=9007199254740993&email=jan%2Bvip%40example.cz")
        #expect(request.body.isEmpty)
        #expect(request.header("content-type") == nil)
        #expect(try shop.waitFor("SELECT state FROM webhooky.deliveries") { $0 == "succeeded" } == "succeeded")
        #expect(try shop.deliveryStates() == [["succeeded", "1", "200"]])
        #expect(try shop.connection.query("SELECT attempt, status, error, response_body FROM webhooky.attempts").rows == [["1", "200", nil, "ok"]])
    }

    @Test("S3: variables in the path")
    func variableInPath() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/path/#customer.id#")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("1")
        #expect(receiver.waitForRequests(1).first?.target == "/path/9007199254740993")
    }

    @Test("S4, S7: a body is a POST with the seed's JSON, values exact")
    func postWithSeedBody() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/credit", body: Self.seedBody)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("12345678901234.56")

        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.method == "POST")
        #expect(request.target == "/credit")
        #expect(request.header("content-type") == "application/json")
        #expect(request.bodyText == """
            {
              "eshop":"shop-42",
              "email":"jan+vip@example.cz",
              "credit":"12345678901234.56",
              "custom": {
               "field":"vlastni_pole"
              }
            }
            """)
    }

    @Test("S7: every seed variable reaches the wire, numbers character for character")
    func everySeedVariable() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/all", body: """
            {"id": #customer.id#, "email": "#customer.email#", "credit": #customer.credit#,
             "group": [#customer.group.id#, "#customer.group.name#"], "tier": [#customer.tier.id#, "#customer.tier.name#"],
             "change": #creditChange.value#, "eshop": "#account.eshopId#"}
            """)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("12345678901234.56")

        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.bodyText == """
            {"id": 9007199254740993, "email": "jan+vip@example.cz", "credit": 12345678901234.56,
             "group": [3, "Wholesale"], "tier": [1, "Silver"],
             "change": 12345678901134.56, "eshop": "shop-42"}
            """)
    }

    @Test("S2, S5: a tier change fires customer.tier_changed; the tricky tier name is escaped; unknown variables are empty")
    func tierChangeWithTrickyName() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(event: "customer.tier_changed", url: receiver.baseURL + "/tier?x=#no.such.variable#",
                            body: ##"{"tier": "#customer.tier.name#", "from": "#previousTier.name#", "missing": #nope#, "alsoMissing": "#nope#"}"##)
        try shop.addWebhook(event: "customer.credit_changed", url: receiver.baseURL + "/credit-only")
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setTier(2)

        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.target == "/tier?x=")
        #expect(request.bodyText == #"{"tier": "Gold \"Plus\" \\ tier\nnew line 🎉", "from": "Silver", "missing": "", "alsoMissing": ""}"#)
        let decoded = try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: String]
        #expect(decoded?["tier"] == Shop.trickyTierName)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(receiver.requests.count == 1, "the credit webhook must not fire on a tier change")
    }

    @Test("S5: a customer without a group: the trigger sends group null, and its variables are empty in the URL and the body")
    func customerWithoutAGroup() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/g?id=#customer.group.id#&name=#customer.group.name#&tier=#customer.tier.name#",
                            body: ##"{"id": #customer.group.id#, "name": "#customer.group.name#", "group": #customer.group#, "credit": #customer.credit#}"##)
        try shop.connection.query("UPDATE ellity.customers SET group_id = NULL WHERE id = $1", [Shop.customerID])
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("100.5")

        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.method == "POST")
        #expect(request.target == "/g?id=&name=&tier=Silver")
        #expect(request.bodyText == #"{"id": "", "name": "", "group": "", "credit": 100.50}"#)
    }

    @Test("S7: Czech text reaches the wire exactly from a database in WIN1250, as many Czech shops' databases are")
    func czechTextFromAWindows1250Database() throws {
        let cluster = try TestCluster.shared()
        let name = "win1250_\(getpid())"
        try Connection(conninfo: cluster.conninfo()).execute("CREATE DATABASE \(name) TEMPLATE template0 ENCODING 'WIN1250' LC_COLLATE 'C' LC_CTYPE 'C'")
        let database = TestDatabase(name: name, conninfo: cluster.conninfo(database: name), cluster: cluster)
        let setup = try database.connect()
        try Migrator(connection: setup).migrate()
        try setup.execute(Migrations.referenceDomain)
        // The shop's own application speaks UTF-8 and says so, as any careful client does.
        let shop = try database.connect()
        try shop.execute("SET client_encoding = 'UTF8'")
        try shop.execute("""
            INSERT INTO ellity.eshops VALUES ('obchod-č', 'Obchod');
            INSERT INTO ellity.customer_groups VALUES (3, 'obchod-č', 'Velkoobchod – Plzeň');
            INSERT INTO ellity.vip_tiers VALUES (1, 'obchod-č', 'Zlatý „VIP“', 0);
            INSERT INTO ellity.customers VALUES (5, 'obchod-č', 'jiří.šťastný@example.cz', 0, 3, 1);
            """)
        let receiver = try LoopbackReceiver()
        try shop.query(
            "INSERT INTO webhooky.webhooks (event, url, body) VALUES ('customer.credit_changed', $1, $2)",
            [receiver.baseURL + "/skupina/#customer.group.name#?e=#customer.email#",
             ##"{"skupina": "#customer.group.name#", "úroveň": #customer.tier.name#, "e": "#customer.email#", "obchod": "#account.eshopId#", "pole": "vlastní"}"##]
        )
        var configuration = WorkerConfiguration(databaseURL: database.conninfo, workerID: "test-worker")
        configuration.http.addressPolicy = .allowingLoopback
        configuration.pollInterval = .milliseconds(200)
        configuration.logger = LogCapture().logger()
        let worker = RunningWorker(configuration)
        defer { worker.stop() }

        try shop.execute("UPDATE ellity.customers SET credit = 100.00 WHERE id = 5")

        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.target == "/skupina/Velkoobchod%20%E2%80%93%20Plze%C5%88?e=ji%C5%99%C3%AD.%C5%A1%C5%A5astn%C3%BD%40example.cz")
        #expect(request.bodyText == ##"{"skupina": "Velkoobchod – Plzeň", "úroveň": "Zlatý „VIP“", "e": "jiří.šťastný@example.cz", "obchod": "obchod-č", "pole": "vlastní"}"##)
    }

    @Test("S1: a disabled webhook sends nothing; enabling it again resumes its pending deliveries")
    func disabledWebhookSendsNothing() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        let disabled = try shop.addWebhook(url: receiver.baseURL + "/disabled", enabled: false)
        let paused = try shop.addWebhook(url: receiver.baseURL + "/paused")
        try shop.addWebhook(url: receiver.baseURL + "/enabled")
        // Pause one webhook that already has a pending delivery.
        try shop.setCredit("1")
        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = false WHERE id = $1", [String(paused)])
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }

        try shop.setCredit("2")
        receiver.waitForRequests(2)
        Thread.sleep(forTimeInterval: 0.5)
        #expect(receiver.requests.map(\.target) == ["/enabled", "/enabled"])
        #expect(try shop.column("SELECT count(*) FROM webhooky.deliveries WHERE webhook_id = $1", [String(disabled)]) == ["0"])
        #expect(try shop.column("SELECT state FROM webhooky.deliveries WHERE webhook_id = $1", [String(paused)]) == ["pending"])

        try shop.connection.query("UPDATE webhooky.webhooks SET enabled = true WHERE id = $1", [String(paused)])
        receiver.waitForRequests(3)
        #expect(receiver.requests.map(\.target).sorted() == ["/enabled", "/enabled", "/paused"])
    }

    @Test("S6: a body that is not valid JSON is refused when saved, saying why and where")
    func invalidBodyRefused() throws {
        let shop = try Shop()
        do {
            try shop.addWebhook(url: "https://erp.example/x", body: "{\"credit\": #customer.credit# \"email\": 1}", name: "ERP")
            Issue.record("an invalid body was accepted")
        } catch let error as PostgresError {
            #expect(error.sqlState == "23514")
            #expect(error.message == #"the new webhook "ERP": body is not valid JSON at line 1, character 36: expected "," or "}", found a string"#, "\(error.message)")
            #expect(error.detail == nil)
            #expect(error.hint?.contains("placeholder") == true)
        }
        #expect(try shop.column("SELECT count(*) FROM webhooky.webhooks") == ["0"])
    }

    @Test("S8: an API key in the URL and custom headers such as Authorization")
    func apiKeyAndAuthorizationHeader() throws {
        let shop = try Shop()
        let receiver = try LoopbackReceiver()
        try shop.addWebhook(url: receiver.baseURL + "/hook?apikey=k3y&shop=#account.eshopId#",
                            headers: ##"{"Authorization": "Bearer token-#account.eshopId#", "X-Customer": "#customer.email#"}"##)
        let worker = RunningWorker(shop.workerConfiguration())
        defer { worker.stop() }
        try shop.setCredit("3")
        let request = try #require(receiver.waitForRequests(1).first)
        #expect(request.target == "/hook?apikey=k3y&shop=shop-42")
        #expect(request.header("authorization") == "Bearer token-shop-42")
        #expect(request.header("x-customer") == "jan+vip@example.cz")
    }
    @Test("S7: an admin lists every variable an event offers (Insert variable), from the sample and real events")
    func insertVariable() throws {
        let shop = try Shop()
        let fromSample = try shop.connection.query("SELECT variable, placeholder, type, example FROM webhooky.variables('customer.credit_changed') WHERE type <> 'object'").rows
        let seedVariables = ["customer.id", "customer.email", "customer.credit", "customer.group.id", "customer.group.name",
                             "customer.tier.id", "customer.tier.name", "creditChange.value", "account.eshopId"]
        for variable in seedVariables {
            #expect(fromSample.contains { $0[0] == variable && $0[1] == "#\(variable)#" }, "\(variable) missing")
        }
        #expect(fromSample.contains { $0 == ["customer.credit", "#customer.credit#", "number", "1250.50"] })

        // A real event's values are preferred as examples, numbers exact.
        try shop.addWebhook(url: "http://127.0.0.1:9/x")
        try shop.setCredit("12345678901234.56")
        let fromEvents = try shop.connection.query("SELECT example, source FROM webhooky.variables('customer.credit_changed') WHERE variable IN ('customer.id', 'customer.credit') ORDER BY variable").rows
        #expect(fromEvents == [["12345678901234.56", "event 1"], ["9007199254740993", "event 1"]])
        #expect(try shop.column("SELECT count(*) FROM webhooky.variables('customer.tier_changed') WHERE variable = 'previousTier.name'") == ["1"])
        // A misspelt event is named, as emit and the webhook checks name it.
        do {
            try shop.connection.query("SELECT * FROM webhooky.variables('customer.credit_change')")
            Issue.record("variables() of an unknown event returned rows")
        } catch {
            #expect(error.message == "webhooky.variables: unknown event 'customer.credit_change'")
            #expect(error.hint?.hasPrefix("Known events: customer.credit_changed, customer.tier_changed") == true, "\(error.hint ?? "")")
        }
    }
}
