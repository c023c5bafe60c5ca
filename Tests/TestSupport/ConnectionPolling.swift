import Foundation
public import Postgres

extension Connection {
    /// The first column of every row of `sql`.
    public func column(_ sql: String, _ parameters: [String?] = []) throws -> [String?] {
        try query(sql, parameters).rows.map { $0.first ?? nil }
    }

    /// Waits until `condition` holds for the single value of `sql`, polling every 20 ms; returns
    /// the last value read (the one that satisfied it, or the one at the deadline).
    public func waitFor(_ sql: String, timeout: Duration = .seconds(20), until condition: (String?) -> Bool) throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let value = try query(sql).scalar
            if condition(value) || ContinuousClock.now >= deadline { return value }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}
