import Foundation
import Glibc
import Postgres
import TestSupport
import Testing

/// The commands a tenant's login role runs: its own account's webhooks only, and errors that do
/// not tell it to become an admin.
@Suite(.timeLimit(.minutes(10))) struct TenantCommandTests {
    @Test("a tenant's role runs status and preview for its account; others' webhooks do not exist for it")
    func tenantRunsCommands() throws {
        let database = try AdminDatabase()
        let role = "tenant_\(database.database.name)"
        try database.connection.execute("""
            CREATE ROLE \(role) LOGIN IN ROLE webhooky_tenant;
            INSERT INTO webhooky.tenants (role_name, account_id) VALUES ('\(role)', 'shop-42');
            """)
        defer { _ = try? database.connection.execute("DROP OWNED BY \(role); DROP ROLE \(role)") }
        let own = try database.value("""
            INSERT INTO webhooky.webhooks (name, event, url, account_id) VALUES ('own', 'customer.credit_changed', 'https://erp.example/own', 'shop-42') RETURNING id
            """)
        let theirs = try database.value("""
            INSERT INTO webhooky.webhooks (name, event, url, account_id) VALUES ('theirs', 'customer.credit_changed', 'https://erp.example/theirs', 'shop-7') RETURNING id
            """)
        let asTenant = ["--database-url", database.url + " user=\(role)"]

        let status = try CommandProcess.run(["status"] + asTenant)
        #expect(status.status == 0, "\(status.errors)")
        #expect(status.output.contains("own"))
        #expect(!status.output.contains("theirs"))
        // Whether workers run is not a tenant's to see (it may not read webhooky.workers).
        #expect(!status.output.contains("No worker alive"), "\(status.output)")

        let preview = try CommandProcess.run(["preview", try #require(own)] + asTenant)
        #expect(preview.status == 0, "\(preview.errors)")
        #expect(preview.output.hasPrefix("GET https://erp.example/own\n"))

        let other = try CommandProcess.run(["preview", try #require(theirs)] + asTenant)
        #expect(other.status == 1)
        #expect(other.errors.contains("there is no webhook \(theirs ?? "")"))

        // tail: its own attempts, none of another account's.
        let ownDelivery = try database.addDelivery(webhook: Int64(try #require(own))!, state: "succeeded", attempts: 1)
        let theirDelivery = try database.addDelivery(webhook: Int64(try #require(theirs))!, state: "succeeded", attempts: 1)
        try TailTests.recordAttempt(database.connection, delivery: theirDelivery, webhook: Int64(theirs!)!)
        try TailTests.recordAttempt(database.connection, delivery: ownDelivery, webhook: Int64(own!)!)
        let tail = try CommandProcess(["tail"] + asTenant)
        let shown = tail.waitForOutput { TailTests.lines($0, delivery: ownDelivery).count == 1 }
        tail.send(SIGINT)
        #expect(tail.wait(timeout: .seconds(10)).status == 0)
        #expect(TailTests.lines(shown, delivery: ownDelivery).count == 1, "\(shown)\(tail.errors)")
        #expect(TailTests.lines(shown, delivery: theirDelivery).isEmpty)

        // The doctor: the tenant's role is what it should be; what it may not see needs no attention.
        let doctor = try CommandProcess.run(["doctor"] + asTenant)
        #expect(doctor.status == 0, "\(doctor.output)\(doctor.errors)")
        #expect(doctor.output.contains("OK    privileges    role \(role) is a tenant's (webhooky_tenant): it sees and changes its own account's webhooks only\n"))
        #expect(doctor.output.contains("OK    workers       not visible to a tenant's role (permission denied for table workers)\n"))
        // Its backlog is its own deliveries: visible, though which workers stopped is not.
        #expect(doctor.output.contains("OK    backlog       nothing waiting to be sent\n"), "\(doctor.output)")
        // Its own events are its pace (webhooky.event_pace, every account's, is not for it).
        #expect(doctor.output.contains("OK    events        too few events yet to know their usual pace\n"), "\(doctor.output)")
        #expect(!doctor.output.contains("GRANT webhooky_"))
        // The reference triggers pass the e-shop with every event.
        #expect(doctor.output.contains("OK    accounts      the trigger functions pass an account with the events that webhooks for one account want\n"), "\(doctor.output)")

        // A tenant's role that an admin forgot to give an account sees nothing: a FAIL, not OKs.
        let orphan = "orphan_\(database.database.name)"
        try database.connection.execute("CREATE ROLE \(orphan) LOGIN IN ROLE webhooky_tenant")
        defer { _ = try? database.connection.execute("DROP ROLE \(orphan)") }
        let orphaned = try CommandProcess.run(["doctor", "--database-url", database.url + " user=\(orphan)"])
        #expect(orphaned.status == 1)
        #expect(orphaned.output.contains("FAIL  privileges    role \(orphan) is a member of webhooky_tenant but has no account in webhooky.tenants\n"), "\(orphaned.output)")
        #expect(orphaned.output.contains("INSERT INTO webhooky.tenants (role_name, account_id) VALUES ('\(orphan)', '...');"))
    }
}
