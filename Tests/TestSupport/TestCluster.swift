import Glibc
public import LocalPostgres
public import Postgres
import Schema
import Synchronization

/// One private PostgreSQL cluster for the whole test run, started on first use and destroyed
/// when the test process exits. Each test gets its own database, copied from a template that
/// holds the Webhooky schema and the reference domain, so tests can run in parallel.
public enum TestCluster {
    private static let state = Mutex<(cluster: LocalCluster?, error: String?, databases: Int)>((nil, nil, 0))

    /// The shared cluster.
    public static func shared() throws -> LocalCluster {
        try state.withLock { state in
            if let cluster = state.cluster { return cluster }
            if let error = state.error { throw LocalPostgresError(error) }
            do {
                let cluster = try LocalCluster(name: "test")
                state.cluster = cluster
                atexit { TestCluster.destroy() }
                try createTemplate(in: cluster)
                return cluster
            } catch {
                state.error = "\(error)"
                throw error
            }
        }
    }

    /// A new, empty-of-data database with the Webhooky schema (and the reference domain).
    public static func newDatabase() throws -> TestDatabase {
        try newDatabase(prefix: "t", template: "webhooky_template")
    }

    /// A new database with nothing installed.
    public static func newEmptyDatabase() throws -> TestDatabase {
        try newDatabase(prefix: "e", template: "template0")
    }

    /// A new database with the schema as migration `version` left it, for a test of the upgrade
    /// from there; a connection to it.
    public static func newDatabase(atSchemaVersion version: Int) throws -> Connection {
        let connection = try newEmptyDatabase().connect()
        try Migrator(connection: connection, migrations: Array(Migrations.all.prefix { $0.version <= version })).migrate()
        return connection
    }

    private static func newDatabase(prefix: String, template: String) throws -> TestDatabase {
        let cluster = try shared()
        let name = state.withLock { state in
            state.databases += 1
            return "\(prefix)_\(getpid())_\(state.databases)"
        }
        let admin = try Connection(conninfo: cluster.conninfo())
        try admin.execute("CREATE DATABASE \(name) TEMPLATE \(template)")
        return TestDatabase(name: name, conninfo: cluster.conninfo(database: name), cluster: cluster)
    }

    private static func createTemplate(in cluster: LocalCluster) throws {
        let admin = try Connection(conninfo: cluster.conninfo())
        try admin.execute("CREATE DATABASE webhooky_template")
        let template = try Connection(conninfo: cluster.conninfo(database: "webhooky_template"))
        try Migrator(connection: template).migrate()
        try template.execute(Migrations.referenceDomain)
    }

    private static func destroy() {
        let cluster = state.withLock { state in
            defer { state.cluster = nil }
            return state.cluster
        }
        cluster?.destroy()
    }
}

/// A database of its own for one test.
public struct TestDatabase: Sendable {
    public let name: String
    /// A libpq connection string for it.
    public let conninfo: String
    public let cluster: LocalCluster

    public init(name: String, conninfo: String, cluster: LocalCluster) {
        self.name = name
        self.conninfo = conninfo
        self.cluster = cluster
    }

    /// A database `name` with the current schema and the reference domain, in a cluster of
    /// the test's own (for tests that stop or restart PostgreSQL).
    public static func create(in cluster: LocalCluster, name: String = "shop") throws -> TestDatabase {
        let admin = try Connection(conninfo: cluster.conninfo())
        try admin.execute("CREATE DATABASE \(name)")
        let connection = try Connection(conninfo: cluster.conninfo(database: name))
        try Migrator(connection: connection).migrate()
        try connection.execute(Migrations.referenceDomain)
        return TestDatabase(name: name, conninfo: cluster.conninfo(database: name), cluster: cluster)
    }

    /// A new connection to it.
    public func connect() throws -> Connection {
        try Connection(conninfo: conninfo)
    }
}
