/// A table of text in aligned columns, for a terminal: a header row, then one row per item.
public struct TextTable: Sendable {
    /// One column: its title and whether its values are right-aligned (numbers).
    public struct Column: Sendable {
        /// The title in the header row.
        public var title: String
        /// Right-align the values (for numbers). Default `false`.
        public var rightAligned: Bool

        /// A column titled `title`.
        public init(_ title: String, rightAligned: Bool = false) {
            self.title = title
            self.rightAligned = rightAligned
        }
    }

    /// The columns, in order.
    public var columns: [Column]
    /// The rows; each holds one plain-text cell per column (missing cells are empty).
    public var rows: [[String]] = []

    /// An empty table with `columns`.
    public init(columns: [Column]) {
        self.columns = columns
    }

    /// The table as lines of text, columns separated by two spaces, trailing spaces removed.
    /// `paint` may colour a cell (given its row and column index) after it has been padded,
    /// so that escape codes do not upset the alignment.
    public func render(paint: (_ row: Int, _ column: Int, _ padded: String) -> String = { _, _, text in text }) -> String {
        var widths = columns.map { TextFormatting.width($0.title) }
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], TextFormatting.width(cell))
            }
        }
        func line(_ cells: [String], row: Int?) -> String {
            var parts: [String] = []
            for index in columns.indices {
                let cell = index < cells.count ? cells[index] : ""
                let padded = TextFormatting.padded(cell, to: widths[index], right: columns[index].rightAligned)
                parts.append(row.map { paint($0, index, padded) } ?? padded)
            }
            var text = parts.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        var lines = [line(columns.map(\.title), row: nil)]
        for (index, row) in rows.enumerated() { lines.append(line(row, row: index)) }
        return lines.joined(separator: "\n")
    }
}
