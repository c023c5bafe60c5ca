import Glibc
public import Postgres

/// Installs and upgrades the `webhooky` schema, and checks that a database matches the binary.
public struct Migrator {
    /// Arbitrary constant for `pg_advisory_lock`: one migrator at a time per database.
    static let lockKey = "7216487283"

    private let connection: Connection
    private let migrations: [Migration]

    /// How long a migration's statement waits for each lock before the migration is rolled
    /// back (`lock_timeout`); zero waits without a bound. Default 1 s. An upgrade that waited
    /// without a bound for a lock an application's open transaction holds (`webhooky.emit`
    /// reads `webhooky.webhooks` and writes `webhooky.events`) would make every later emit, and
    /// so every change of a table with a Webhooky trigger, wait behind it until that
    /// transaction ended.
    public var lockTimeout: Duration = .seconds(1)
    /// A try that ran longer than this before it began the wait that ran out of ``lockTimeout``
    /// (a migration that builds an index on a large table before it takes its lock) is not
    /// tried again: its work would be done again each time. Default 10 s.
    public var longestRetriedTry: Duration = .seconds(10)
    /// How many times a migration that waited ``lockTimeout`` for a lock is tried in all, each
    /// try ``lockRetryPause`` after the last, before `migrate()` gives up. Default 5.
    public var lockTries = 5
    /// The pause between two tries of a migration that could not take a lock. Default 2 s.
    public var lockRetryPause: Duration = .seconds(2)

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
    /// A migration's statement waits at most ``lockTimeout`` for each lock; then the migration
    /// is rolled back and tried again after ``lockRetryPause``, ``lockTries`` times in all (a
    /// try that ran longer than ``longestRetriedTry`` is not tried again). A migration ended
    /// by a deadlock is tried again alike.
    ///
    /// - Parameters:
    ///   - progress: Told about each migration before it runs.
    ///   - retrying: Told when a migration could not take a lock (or was ended by a deadlock)
    ///     and is tried again (see ``Retry``).
    /// - Returns: The migrations applied (empty when the schema was up to date).
    /// - Throws: ``SchemaError`` (`newer`, `migrationFailed`) or ``PostgresError``.
    @discardableResult
    public func migrate(progress: (Migration) -> Void = { _ in },
                        retrying: (Retry) -> Void = { _ in }) throws -> [Migration] {
        try connection.query("SELECT pg_advisory_lock(\(Migrator.lockKey))")
        defer { _ = try? connection.query("SELECT pg_advisory_unlock(\(Migrator.lockKey))") }
        // The session's own setting comes back afterwards (a caller's SET, not only its default).
        let sessionLockTimeout = try connection.query("SELECT current_setting('lock_timeout')").scalar ?? "0"
        try connection.query("SELECT set_config('lock_timeout', $1, false)", [lockTimeout <= .zero ? "0" : Migrator.text(max(lockTimeout, .milliseconds(1)))])
        defer { _ = try? connection.query("SELECT set_config('lock_timeout', $1, false)", [sessionLockTimeout]) }
        // How long a deadlocked statement waited before PostgreSQL ended it (not the try's work);
        // a migration that sets its own deadlock_timeout is counted with the session's.
        let deadlockWait = Duration.milliseconds(Int(try connection.query(
            "SELECT (extract(epoch FROM current_setting('deadlock_timeout')::interval) * 1000)::bigint").scalar.flatMap { $0 }.flatMap { Int($0) } ?? 1000))
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
            var attempt = 1
            while let cause = try apply(migration, attempt: attempt, owner: owner, deadlockWait: deadlockWait) {
                attempt += 1
                retrying(Retry(migration: migration, attempt: attempt, cause: cause, holders: (try? lockHolders()) ?? []))
                let pause = lockRetryPause.components
                usleep(UInt32(clamping: pause.seconds * 1_000_000 + pause.attoseconds / 1_000_000_000_000))
            }
        }
        return todo
    }

    /// Runs `migration` (its try number `attempt`); returns nil when it was applied, or why it
    /// was rolled back to be tried again: a statement waited ``lockTimeout`` for a lock or was
    /// ended by a deadlock, tries are left, and the try was short enough to make again
    /// (``longestRetriedTry``).
    private func apply(_ migration: Migration, attempt: Int, owner: (quotedName: String, isCurrentUser: Bool, isMember: Bool)?,
                       deadlockWait: Duration) throws -> Retry.Cause? {
        let started = ContinuousClock.now
        do {
            try connection.execute(migration.sql)
            return nil
        } catch {
            _ = try? connection.execute("ROLLBACK")
            // lock_not_available: lock_timeout ran out; deadlock_detected: PostgreSQL ended this
            // transaction to let another one, which waited for a lock it held, go on.
            let deadlock = error.sqlState == "40P01"
            if error.sqlState == "55P03" || deadlock {
                // The try's own work, not the wait that ended it (a deadlock is found after
                // deadlock_timeout of waiting).
                let worked = ContinuousClock.now - started - (deadlock ? deadlockWait : lockTimeout)
                let long = worked > longestRetriedTry
                let cause: Retry.Cause = deadlock ? .deadlock : .lockTimeout
                if attempt < lockTries && !long { return cause }
                let holders = (try? lockHolders()) ?? []
                let waited = cause.sentence(lockTimeout: lockTimeout)
                let what = long
                    ? "migration \(migration.fileName) ran \(Migrator.text(.seconds(max(0, worked.components.seconds)))) "
                        + "and then \(waited); it was rolled back (nothing of it was applied) and not tried again, since its work would be done again"
                    : "migration \(migration.fileName) \(waited) \(attempt == 1 ? "once" : "\(attempt) times") and was rolled back (nothing of it was applied)"
                let sessions = holders.isEmpty ? "" : "\nSessions holding locks on the webhooky schema's tables: " + holders.joined(separator: "; ")
                if deadlock {
                    // lock_timeout plays no part: a deadlock is found after deadlock_timeout whatever it is.
                    throw SchemaError(.migrationFailed, what + ": it and another transaction each waited for a lock the other held" + sessions
                        + "\nRun webhooky migrate again; if it keeps happening, a job of your application takes the same tables' locks in the other order: "
                        + "migrate at a moment when it does not run.")
                }
                throw SchemaError(.migrationFailed, what + ": another transaction holds a table it changes, and every emit would have waited behind it" + sessions
                    + "\nLet that transaction end (or end it: SELECT pg_terminate_backend(pid);), then run webhooky migrate again; "
                    + "or, at a quiet moment, webhooky migrate --lock-timeout 0 waits for it (your application's changes queue behind the upgrade meanwhile).")
            }
            // A role that lacks a privilege is told which role to migrate as, not only
            // PostgreSQL's "permission denied for database shop".
            let advice = error.sqlState != "42501" ? ""
                : owner == nil ? "\nInstall as a role that may create schemas in this database: its owner or a superuser (docs/dba.md, \"Install\")."
                : "\nMigrate as the role that installed the schema (the owner of webhooky.migrations) or as a superuser."
            throw SchemaError(.migrationFailed, "migration \(migration.fileName) failed and was rolled back: \(error)" + advice)
        }
    }

    /// `1s`, `250ms`.
    public static func text(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds)ms"
    }

    /// The other sessions that hold a lock on a table of the `webhooky` schema, oldest
    /// transaction first (at most 5): `pid 4121 (role shop_app, psql, idle in transaction,
    /// transaction open 17s)`. Another role's state and times show only to a superuser or a
    /// member of `pg_read_all_stats`.
    public func lockHolders() throws(PostgresError) -> [String] {
        try connection.query("""
            SELECT format('pid %s (role %s%s%s%s)', a.pid, coalesce(a.usename, '?'),
                          ', ' || nullif(a.application_name, ''), ', ' || a.state,
                          ', transaction open ' || extract(epoch FROM now() - a.xact_start)::bigint || 's')
              FROM pg_stat_activity a
             WHERE a.pid <> pg_backend_pid()
               AND a.pid IN (SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                              WHERE l.granted AND c.relnamespace = to_regnamespace('webhooky'))
             ORDER BY a.xact_start NULLS LAST, a.pid
             LIMIT 5
            """).rows.compactMap { $0[0] }
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
