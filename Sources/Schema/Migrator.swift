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
    /// advisory lock so that concurrent migrators wait for each other. When the schema is
    /// installed and the connection's role may act as the role that installed it (see
    /// ``installedBy()``; a superuser always may), the migrations run as that role
    /// (`SET ROLE`), so that every object keeps one owner.
    ///
    /// - Parameter progress: Told about each migration before it runs.
    /// - Returns: The migrations applied (empty when the schema was up to date).
    /// - Throws: ``SchemaError`` (`newer`, `migrationFailed`) or ``PostgresError``.
    @discardableResult
    public func migrate(progress: (Migration) -> Void = { _ in }) throws -> [Migration] {
        try connection.query("SELECT pg_advisory_lock(\(Migrator.lockKey))")
        defer { _ = try? connection.query("SELECT pg_advisory_unlock(\(Migrator.lockKey))") }
        let todo = try pending()
        // Objects a migration creates belong to the role that runs it. A schema installed by the
        // database owner and upgraded by a superuser (or the other way round) would belong to two
        // roles, and the owner's SECURITY DEFINER functions could not use the newer objects
        // (webhooky.prune calls first_id_since, grant_roles reads role_grants): so a role that
        // may act as the schema's owner migrates as that owner.
        var actsAsOwner = false
        let owner = todo.isEmpty ? nil : try installedBy()
        if let owner, owner.isMember, !owner.isCurrentUser {
            try connection.query("SET ROLE \(owner.quotedName)")
            actsAsOwner = true
        }
        defer { if actsAsOwner { _ = try? connection.query("RESET ROLE") } }
        for migration in todo {
            progress(migration)
            do {
                try connection.execute(migration.sql)
            } catch {
                _ = try? connection.execute("ROLLBACK")
                // A role that lacks a privilege is told which role to migrate as, not only
                // PostgreSQL's "permission denied for database shop".
                let advice = error.sqlState != "42501" ? ""
                    : owner == nil ? "\nInstall as a role that may create schemas in this database: its owner or a superuser (docs/dba.md, \"Install\")."
                    : "\nMigrate as the role that installed the schema (the owner of webhooky.migrations) or as a superuser."
                throw SchemaError(.migrationFailed, "migration \(migration.fileName) failed and was rolled back: \(error)" + advice)
            }
        }
        return todo
    }

    /// The role that installed the schema (the owner of `webhooky.migrations`), which owns
    /// every object of the schema; `nil` when Webhooky is not installed.
    ///
    /// - Returns: Its name quoted for SQL, whether it is the current user, and whether the
    ///   current user may `SET ROLE` to it (a superuser always may).
    public func installedBy() throws(PostgresError) -> (quotedName: String, isCurrentUser: Bool, isMember: Bool)? {
        let result = try connection.query("""
            SELECT quote_ident(r.rolname), r.rolname = current_user, pg_has_role(current_user, r.oid, 'MEMBER')
              FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
             WHERE c.oid = to_regclass('webhooky.migrations')
            """)
        guard result.rowCount == 1, let name = result[0, 0] else { return nil }
        return (name, result[0, 1] == "t", result[0, 2] == "t")
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
