import Glibc

/// Colours for text meant for a terminal, or none at all.
///
/// Colour is used only when standard output is a terminal and `NO_COLOR` is not set
/// (https://no-color.org); otherwise every function returns its text unchanged, so output
/// piped to a file or another program holds no escape codes.
public struct TerminalStyle: Sendable, Hashable {
    /// Whether escape codes are written.
    public var colored: Bool

    /// A style that colours (`true`) or not (`false`).
    public init(colored: Bool) {
        self.colored = colored
    }

    /// Plain text, no colour.
    public static let plain = TerminalStyle(colored: false)

    /// Coloured when standard output is a terminal and `NO_COLOR` is unset.
    public static func forStandardOutput() -> TerminalStyle {
        TerminalStyle(colored: isatty(1) == 1 && getenv("NO_COLOR") == nil)
    }

    /// Green: all is well.
    public func good(_ text: String) -> String { paint(text, "32") }
    /// Yellow: needs a look.
    public func warning(_ text: String) -> String { paint(text, "33") }
    /// Red: broken.
    public func bad(_ text: String) -> String { paint(text, "31") }
    /// Bold.
    public func strong(_ text: String) -> String { paint(text, "1") }
    /// Faint: context that matters less.
    public func faint(_ text: String) -> String { paint(text, "2") }

    private func paint(_ text: String, _ code: String) -> String {
        colored && !text.isEmpty ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }
}
