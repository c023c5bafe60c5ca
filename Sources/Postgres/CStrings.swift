/// Calls `body` with a C array of pointers to copies of `strings`, followed by a null pointer
/// (the shape libpq's `keywords`/`values` arrays need). The copies live only during `body`.
func withCStringArray<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    withOptionalCStringArray(strings.map(Optional.some) + [nil], body)
}

/// Calls `body` with C strings for `strings`, `nil` staying a null pointer (SQL `NULL` for
/// `PQexecParams`). The copies live only during `body`, side by side in one buffer (one
/// allocation for all of them, not one each).
func withOptionalCStringArray<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    var size = 0
    for string in strings { if let string { size += string.utf8.count + 1 } }
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: max(size, 1)) { buffer in
        var written = 0
        let pointers = strings.map { string -> UnsafePointer<CChar>? in
            guard let string else { return nil }
            let start = buffer.baseAddress! + written
            let count = string.utf8.count
            // A native string's bytes end with a NUL already: one copy of count + 1 bytes.
            string.withCString { start.update(from: $0, count: count + 1) }
            written += count + 1
            return UnsafePointer(start)
        }
        return body(pointers)
    }
}
