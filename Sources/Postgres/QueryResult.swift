import CLibPQ

/// The rows of one statement's result. Owns the libpq result and frees it exactly once.
///
/// Values are read in libpq's text format: a `numeric` or `jsonb` comes out exactly as
/// PostgreSQL prints it, which is what keeps money and ids exact.
public final class QueryResult {
    private let handle: OpaquePointer

    init(taking handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        PQclear(handle)
    }

    /// Number of rows returned.
    public var rowCount: Int { Int(PQntuples(handle)) }

    /// Number of columns returned.
    public var columnCount: Int { Int(PQnfields(handle)) }

    /// Rows affected by an `INSERT`, `UPDATE`, `DELETE`... (0 when the command reports none).
    public var affectedRows: Int {
        guard let text = PQcmdTuples(handle) else { return 0 }
        return Int(String(cString: text)) ?? 0
    }

    /// The name of column `column`.
    public func columnName(_ column: Int) -> String {
        String(cString: PQfname(handle, Int32(column)))
    }

    /// The index of the column called `name`, or `nil`.
    public func columnIndex(_ name: String) -> Int? {
        let index = PQfnumber(handle, name)
        return index < 0 ? nil : Int(index)
    }

    /// The value at `row`, `column` as text; `nil` for SQL `NULL`.
    public subscript(row: Int, column: Int) -> String? {
        let r = Int32(row)
        let c = Int32(column)
        guard PQgetisnull(handle, r, c) == 0, let value = PQgetvalue(handle, r, c) else { return nil }
        return String(cString: value)
    }

    /// The value at `row`, `column` as UTF-8 bytes without copying into a `String`; `nil` for `NULL`.
    public func withBytes<R>(row: Int, column: Int, _ body: (UnsafeBufferPointer<UInt8>?) throws -> R) rethrows -> R {
        let r = Int32(row)
        let c = Int32(column)
        guard PQgetisnull(handle, r, c) == 0, let value = PQgetvalue(handle, r, c) else { return try body(nil) }
        let length = Int(PQgetlength(handle, r, c))
        return try value.withMemoryRebound(to: UInt8.self, capacity: length) { try body(UnsafeBufferPointer(start: $0, count: length)) }
    }

    /// All rows, each as an array of optional strings (convenient for small results and tests).
    public var rows: [[String?]] {
        (0..<rowCount).map { row in (0..<columnCount).map { self[row, $0] } }
    }

    /// The value of the first column of the first row, or `nil` when there is none or it is `NULL`.
    public var scalar: String? {
        rowCount > 0 && columnCount > 0 ? self[0, 0] : nil
    }
}
