import Foundation
import LoopbackReceiver
import Postgres

/// The demo's narration on stdout, with a little colour on a terminal.
struct DemoOutput {
    private let colour = isatty(1) == 1 && getenv("NO_COLOR") == nil

    private func paint(_ text: String, _ code: String) -> String {
        colour ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

    func title(_ text: String) {
        emit("\n" + paint(text, "1") + "\n" + String(repeating: "=", count: text.count))
    }

    func step(_ text: String) {
        emit("\n" + paint("▶ " + text, "1;36"))
    }

    func line(_ text: String) {
        emit(text)
    }

    func detail(_ text: String) {
        emit("  " + paint(text, "2"))
    }

    func sql(_ text: String) {
        emit(text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + paint("sql> ", "2") + paint(String($0), "33") }.joined(separator: "\n"))
    }

    func log(_ text: String) {
        emit("  " + paint("worker │ " + text, "2"))
    }

    func request(_ request: ReceivedRequest, port: Int) {
        var lines = [paint("  ┌─ the receiver got:", "1;32")]
        lines.append("  │ " + paint("\(request.method) \(request.target) HTTP/1.1", "1"))
        for header in request.headers { lines.append("  │ \(header.name): \(header.value)") }
        if request.body.isEmpty {
            lines.append("  │ " + paint("(no body)", "2"))
        } else {
            lines.append("  │")
            for bodyLine in request.bodyText.split(separator: "\n", omittingEmptySubsequences: false) { lines.append("  │ " + bodyLine) }
        }
        lines.append("  └─")
        emit(lines.joined(separator: "\n"))
    }

    func table(_ result: QueryResult) {
        let columns = (0..<result.columnCount).map { result.columnName($0) }
        let rows = result.rows.map { $0.map { $0 ?? "" } }
        let widths = columns.indices.map { column in max(columns[column].count, rows.map { $0[column].count }.max() ?? 0) }
        func format(_ cells: [String]) -> String {
            "  " + cells.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: " │ ")
        }
        var lines = [format(columns), "  " + widths.map { String(repeating: "─", count: $0) }.joined(separator: "─┼─")]
        lines += rows.map(format)
        emit(lines.joined(separator: "\n"))
    }

    private func emit(_ text: String) {
        print(text)
        fflush(nil)
    }
}
