/// Why an admin command cannot do what it was asked: the thing it names does not exist, the
/// input is unusable, or a webhook cannot be rendered. The message says what is wrong and the
/// hint what to do; neither ever holds a secret.
public struct OperationsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem; new codes may be added.
    public struct Code: RawRepresentable, Sendable, Hashable {
        /// The code's name, e.g. `not_found`.
        public var rawValue: String
        /// A code with this name.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A webhook, event or event sample that was asked for does not exist.
        public static let notFound = Code(rawValue: "not_found")
        /// Input given on the command line is unusable (for example a payload that is not a
        /// JSON object).
        public static let invalidInput = Code(rawValue: "invalid_input")
        /// The webhook's templates cannot produce a request for this payload.
        public static let cannotRender = Code(rawValue: "cannot_render")
    }

    /// What kind of problem this is.
    public var code: Code
    /// What is wrong, in one sentence.
    public var message: String
    /// What to do about it, if there is something to say.
    public var hint: String?

    /// An error of kind `code`.
    public init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    /// The message, then the hint on its own line.
    public var description: String {
        hint.map { "\(message)\n\($0)" } ?? message
    }
}
