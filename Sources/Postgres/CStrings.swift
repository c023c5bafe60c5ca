import Glibc

/// Calls `body` with a C array of pointers to copies of `strings`, followed by a null pointer
/// (the shape libpq's `keywords`/`values` arrays need). The copies live only during `body`.
func withCStringArray<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    withOptionalCStringArray(strings.map(Optional.some) + [nil], body)
}

/// Calls `body` with C strings for `strings`, `nil` staying a null pointer (SQL `NULL` for
/// `PQexecParams`). The copies live only during `body`.
func withOptionalCStringArray<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { string in string.flatMap { strdup($0) } }
    defer { copies.forEach { free($0) } }
    return body(copies.map { UnsafePointer($0) })
}
