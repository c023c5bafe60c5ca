import CLibPQ

/// The rows of one statement's result. Owns the libpq result and frees it exactly once.
///
/// Values are read in libpq's text format: a `numeric` or `jsonb` comes out exactly as
/// PostgreSQL prints it, which is what keeps money and ids exact.
public final class QueryResult {
    private let handle: OpaquePointer
    /// The connection's notice handler when the result was made: libpq keeps a pointer to it
    /// with the result and may call it (a notice of its own about the result), so it lives as
    /// long as the result does, after the connection or a later handler.
    private let noticeHandler: AnyObject?

    init(taking handle: OpaquePointer, keeping noticeHandler: AnyObject? = nil) {
        self.handle = handle
        self.noticeHandler = noticeHandler
        rowCount = Int(PQntuples(handle))
        columnCount = Int(PQnfields(handle))
    }

    deinit {
        PQclear(handle)
    }

    /// Number of rows returned (read once: every value read checks its place against it).
    public let rowCount: Int

    /// Number of columns returned.
    public let columnCount: Int

    /// Rows affected by an `INSERT`, `UPDATE`, `DELETE`... (0 when the command reports none).
    public var affectedRows: Int {
        guard let text = PQcmdTuples(handle) else { return 0 }
        return Int(String(cString: text)) ?? 0
    }

    /// The name of column `column` (empty outside the result).
    public func columnName(_ column: Int) -> String {
        guard column >= 0, column < columnCount, let name = PQfname(handle, Int32(column)) else { return "" }
        return String(cString: name)
    }

    /// The index of the column called `name`, or `nil`.
    public func columnIndex(_ name: String) -> Int? {
        let index = PQfnumber(handle, name)
        return index < 0 ? nil : Int(index)
    }

    /// Whether `row`, `column` is in the result. Asked before libpq is: libpq complains of a
    /// place outside it with a notice, which goes to the connection's notice handler (a
    /// "database notice" line of the worker's log), through a pointer that the connection
    /// frees when it goes.
    private func contains(row: Int, column: Int) -> Bool {
        row >= 0 && column >= 0 && row < rowCount && column < columnCount
    }

    /// The value at `row`, `column` as text; `nil` for SQL `NULL`, and outside the result.
    public subscript(row: Int, column: Int) -> String? {
        guard contains(row: row, column: column) else { return nil }
        let r = Int32(row)
        let c = Int32(column)
        guard PQgetisnull(handle, r, c) == 0, let value = PQgetvalue(handle, r, c) else { return nil }
        return String(cString: value)
    }

    /// The value at `row`, `column` as UTF-8 bytes without copying into a `String`; `nil` for
    /// `NULL`, and outside the result.
    public func withBytes<R>(row: Int, column: Int, _ body: (UnsafeBufferPointer<UInt8>?) throws -> R) rethrows -> R {
        guard contains(row: row, column: column) else { return try body(nil) }
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
