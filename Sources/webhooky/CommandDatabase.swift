import Operations
import Postgres
import Schema

/// A command ended early with this exit status; the reason was already printed.
struct CommandExit: Error {
    /// The process exit status.
    var status: Int32
}

/// Connecting and reporting failures the same way in every command that reads the database.
enum CommandDatabase {
    /// What to check when a connection fails.
    static let connectionHint = "Check --database-url or DATABASE_URL (or libpq's PGHOST, PGDATABASE, PGUSER, PGPASSWORD), and that PostgreSQL accepts this role."

    /// Connects with the command's connection string and checks that the schema is the
    /// version of this binary. On failure prints why and throws the exit status: 3 when the
    /// database is unreachable, 4 when the schema is missing, older or newer, 1 when the
    /// schema cannot be read (a missing privilege).
    static func open(_ arguments: Arguments, applicationName: String) throws(CommandExit) -> Connection {
        let connection: Connection
        do {
            connection = try Connection(conninfo: Help.databaseURL(arguments), applicationName: applicationName)
        } catch {
            Help.fail("cannot connect to the database: \(error.message)\n\(connectionHint)")
            throw CommandExit(status: 3)
        }
        do {
            try Migrator(connection: connection).requireCurrent()
        } catch let error as SchemaError {
            Help.fail(error.message)
            throw CommandExit(status: 4)
        } catch let error as PostgresError {
            Help.fail("cannot read the schema version: \(describe(error))")
            throw CommandExit(status: error.isTransient ? 3 : 1)
        } catch {
            Help.fail("cannot read the schema version: \(error)")
            throw CommandExit(status: 4)
        }
        return connection
    }

    /// Prints `error` and returns the exit status for it: 1 for an ``OperationsError`` or a
    /// failed statement, 3 when the connection was lost.
    static func report(_ error: any Error) -> Int32 {
        switch error {
        case let error as OperationsError:
            Help.fail(error.description)
            return 1
        case let error as PostgresError:
            Help.fail(describe(error))
            return error.code == .connectionLost || error.code == .connectionFailed ? 3 : 1
        default:
            Help.fail("\(error)")
            return 1
        }
    }

    /// A database error in words, with what to do about a missing privilege.
    static func describe(_ error: PostgresError) -> String {
        var text = error.message
        if let detail = error.detail { text += "\n\(detail)" }
        if let hint = error.hint { text += "\n\(hint)" }
        if error.sqlState == "42501" {
            text += "\nThis role lacks a privilege. A DBA grants what the role is for (docs/dba.md, \"Roles\"): webhooky_admin for admin work "
                + "on every account; webhooky_tenant, with the role's row in webhooky.tenants, for one account's webhooks only."
        }
        return text
    }
}
