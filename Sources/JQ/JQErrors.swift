/// A jq program that cannot be used: jq's own compile messages, or kbridge's refusal in the same style.
public struct JQCompileError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// jq rejected the program (syntax error, unknown function, …); `messages` are jq's.
        case invalidProgram
        /// The program names a builtin kbridge refuses (`env`, `$ENV`, `input`, `import`, `halt`, `halt_error`, …).
        case refusedBuiltin
        /// The program is longer than ``JQProgram/maximumProgramLength`` characters.
        case programTooLong
        /// The program text contains a NUL character (jq would silently ignore what follows it).
        case nulCharacter
        /// libjq could not allocate a jq state.
        case outOfMemory
    }

    public let reason: Reason
    /// One line per message, as jq prints them, e.g.
    /// `jq: error: syntax error, unexpected $end (Unix shell quoting issues?) at <top-level>, line 1:` and `jq: 1 compile error`.
    public let messages: [String]

    public init(reason: Reason, messages: [String]) {
        self.reason = reason
        self.messages = messages
    }

    public var description: String { messages.joined(separator: "\n") }
}

/// A run that produced no result: invalid input, a jq runtime error, an output bound, or the caller stopped waiting.
public struct JQRunError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// The input is not one JSON value (jq's parser message, without the echo of the input).
        case invalidInput
        /// The input is larger than libjq can take (2 GiB).
        case inputTooLarge
        /// jq raised an error (`error("…")`, `string ("x") and number (1) cannot be added`).
        case runtimeError
        /// The program produced more than ``JQLimits/maximumOutputs`` values.
        case tooManyOutputs
        /// The result would be longer than ``JQLimits/maximumOutputBytes`` bytes.
        case outputTooLarge
        /// A result value is nested more than 256 levels deep: libjq 1.6 prints `<stripped: exceeds max depth>` there.
        case outputTooDeep
        /// ``JQProgram/value(for:)`` could not parse the result (nested deeper than the JSON module's bound).
        case unparsableOutput
        /// The awaiting task was cancelled; the program was halted (it stops at its next jq instruction).
        case cancelled
        /// The run's deadline passed; the program was halted (it stops at its next jq instruction).
        case timedOut
        /// The thread pool was not running, so the program never started.
        case threadPoolInactive
        /// libjq could not make a jq state for the run.
        case outOfMemory
    }

    public let reason: Reason
    /// Readable text, e.g. `jq: error: string ("x") and number (1) cannot be added`.
    public let message: String

    public init(reason: Reason, message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}
