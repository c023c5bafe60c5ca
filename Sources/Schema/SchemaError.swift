/// Why the database's Webhooky schema cannot be used or upgraded.
public struct SchemaError: Error, Sendable, CustomStringConvertible {
    /// The kind of problem; new codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The `webhooky` schema is not installed.
        public static let notInstalled = Code(rawValue: "not_installed")
        /// The schema is older than this binary: run `webhooky migrate`.
        public static let older = Code(rawValue: "older")
        /// The schema is newer than this binary knows: upgrade the binary.
        public static let newer = Code(rawValue: "newer")
        /// A migration failed and was rolled back.
        public static let migrationFailed = Code(rawValue: "migration_failed")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
