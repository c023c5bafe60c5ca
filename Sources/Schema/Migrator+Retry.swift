extension Migrator {
    /// A migration rolled back to be tried again, as ``Migrator/migrate(progress:retrying:)``
    /// tells it.
    public struct Retry: Sendable {
        /// Why a try was rolled back.
        public enum Cause: Sendable {
            /// A statement waited ``Migrator/lockTimeout`` for a lock.
            case lockTimeout
            /// PostgreSQL ended the migration's transaction to break a deadlock with another.
            case deadlock

            /// What happened to the try, after the migration's name: `waited 1s for a lock`.
            public func sentence(lockTimeout: Duration) -> String {
                switch self {
                case .lockTimeout: "waited \(Migrator.text(lockTimeout)) for a lock"
                case .deadlock: "was ended by a deadlock with another transaction"
                }
            }
        }

        /// The migration about to be tried again.
        public let migration: Migration
        /// The try about to be made, from 2.
        public let attempt: Int
        /// Why the last try was rolled back.
        public let cause: Cause
        /// The sessions that hold locks on the schema's tables (see ``Migrator/lockHolders()``).
        public let holders: [String]
    }
}
