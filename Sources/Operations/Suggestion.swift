/// "Did you mean ...?" for a name that is not one of the known ones: a mistyped option, a
/// misspelt template variable.
public enum Suggestion {
    /// The name among `candidates` closest to `name`, when it is close enough to be what was
    /// meant: at most 2 edits away (a letter added, dropped, changed, or two neighbours swapped:
    /// `emial` → `email`, `dryrun` → `dry-run`) and fewer than half of `name`'s letters; `nil`
    /// otherwise. Of equally close ones, the first in sorted order.
    public static func closest(to name: String, among candidates: some Sequence<String>) -> String? {
        let typed = Array(name.unicodeScalars)
        let limit = min(2, (typed.count - 1) / 2)
        guard limit > 0 else { return nil }
        var best: (name: String, distance: Int)? = nil
        for candidate in candidates.sorted() where candidate != name {
            let distance = editDistance(typed, Array(candidate.unicodeScalars), limit: limit)
            if distance <= limit, distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        return best?.name
    }

    /// The optimal string alignment distance of `a` and `b` (insertions, deletions,
    /// substitutions and swaps of neighbours); any value above `limit` means "too far".
    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar], limit: Int) -> Int {
        guard abs(a.count - b.count) <= limit else { return limit + 1 }
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var beforeLast = [Int](repeating: 0, count: b.count + 1)
        var last = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(last[j] + 1, current[j - 1] + 1, last[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], beforeLast[j - 2] + 1)
                }
            }
            (beforeLast, last, current) = (last, current, beforeLast)
        }
        return last[b.count]
    }
}
