public import Postgres

/// Installs and upgrades the `webhooky` schema, and checks that a database matches the binary.
public struct Migrator {
    /// Arbitrary constant for `pg_advisory_lock`: one migrator at a time per database.
    static let lockKey = "7216487283"

    private let connection: Connection
    private let migrations: [Migration]

    /// - Parameters:
    ///   - connection: A connection with rights to create the schema (a DBA's).
    ///   - migrations: The migrations to apply; default, all the binary knows.
    public init(connection: Connection, migrations: [Migration] = Migrations.all) {
        self.connection = connection
        self.migrations = migrations
    }

    /// The versions applied to the database, ascending; empty when Webhooky is not installed.
    public func appliedVersions() throws(PostgresError) -> [Int] {
        let installed = try connection.query("SELECT to_regclass('webhooky.migrations') IS NOT NULL").scalar == "t"
        guard installed else { return [] }
        return try connection.query("SELECT version FROM webhooky.migrations ORDER BY version").rows.compactMap { $0[0].flatMap { Int($0) } }
    }

    /// The migrations `migrate()` would apply, in order.
    ///
    /// - Throws: ``SchemaError/Code/newer`` when the database has a version this binary does
    ///   not know.
    public func pending() throws -> [Migration] {
        let applied = try appliedVersions()
        if let newest = applied.last, newest > (migrations.last?.version ?? 0) {
            throw SchemaError(.newer, "the database's Webhooky schema is version \(newest), newer than this webhooky binary knows (\(migrations.last?.version ?? 0)); upgrade webhooky instead of migrating")
        }
        let appliedSet = Set(applied)
        return migrations.filter { !appliedSet.contains($0.version) }
    }

    /// Applies every missing migration in order, each in its own transaction, holding an
    /// advisory lock so that concurrent migrators wait for each other.
    ///
    /// - Parameter progress: Told about each migration before it runs.
    /// - Returns: The migrations applied (empty when the schema was up to date).
    /// - Throws: ``SchemaError`` (`newer`, `migrationFailed`) or ``PostgresError``.
    @discardableResult
    public func migrate(progress: (Migration) -> Void = { _ in }) throws -> [Migration] {
        try connection.query("SELECT pg_advisory_lock(\(Migrator.lockKey))")
        defer { _ = try? connection.query("SELECT pg_advisory_unlock(\(Migrator.lockKey))") }
        let todo = try pending()
        for migration in todo {
            progress(migration)
            do {
                try connection.execute(migration.sql)
            } catch {
                _ = try? connection.execute("ROLLBACK")
                throw SchemaError(.migrationFailed, "migration \(migration.fileName) failed and was rolled back: \(error)")
            }
        }
        return todo
    }

    /// Checks that the database's schema is exactly the version this binary works with.
    ///
    /// - Throws: ``SchemaError`` saying what to do: install, migrate, or upgrade the binary.
    public func requireCurrent() throws {
        let applied = try appliedVersions()
        let expected = migrations.last?.version ?? 0
        guard let current = applied.last else {
            // Named: with only PG* variables set, the database may not be the one meant.
            let database = (try? connection.query("SELECT quote_ident(current_database())").scalar).flatMap { $0 } ?? "this database"
            throw SchemaError(.notInstalled, "the webhooky schema is not installed in database \(database); run \"webhooky migrate\" first (or point --database-url at the right database)")
        }
        if current < expected {
            throw SchemaError(.older, "the database's Webhooky schema is version \(current), older than this webhooky binary (\(expected)); run \"webhooky migrate\"")
        }
        if current > expected {
            throw SchemaError(.newer, "the database's Webhooky schema is version \(current), newer than this webhooky binary (\(expected)); upgrade webhooky")
        }
    }
}
