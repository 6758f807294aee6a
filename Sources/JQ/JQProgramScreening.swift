/// Refuses, before jq sees it, a program that names a builtin that reaches outside the value it is given.
///
/// The bridge's process environment holds Kafka and registry passwords, so `env` and `$ENV` must never run; the
/// others read files or inputs the bridge never gives (`input`, `import`, `modulemeta`), reveal installation paths
/// (`get_search_list`, `$__loc__`, …), write to the process's standard error (`stderr`), corrupt libjq 1.6's
/// memory (`halt_error`), or set the state's halt flag, which only kbridge may set (`halt`).
///
/// The scan is a small jq lexer (jq 1.6's token rules): it skips string literals (but scans the code inside their
/// `\(…)` interpolations), comments, numbers and field names (`.env` is field access and stays allowed), and looks
/// at identifiers and `$` variables. An identifier used as an object key (`{env: 1}`, `{env}`) is allowed too:
/// it is a string there, never a call. Everything else spelled like a refused name is refused, even where jq would
/// reject it anyway, so that no parse the scan gets wrong can reach one.
struct JQProgramScreening {
    /// Names of functions (and keywords) a program may not use, with the reason shown to the operator.
    static let refusedIdentifiers: [String: String] = [
        "env": "env and $ENV are not available in kbridge (the process environment holds secrets)",
        "input": "input and inputs are not available in kbridge (a jq node transforms exactly one value)",
        "inputs": "input and inputs are not available in kbridge (a jq node transforms exactly one value)",
        "input_filename": "input_filename is not available in kbridge",
        "input_line_number": "input_line_number is not available in kbridge",
        "get_search_list": "get_search_list is not available in kbridge",
        "get_jq_origin": "get_jq_origin is not available in kbridge",
        "get_prog_origin": "get_prog_origin is not available in kbridge",
        "modulemeta": "modulemeta is not available in kbridge (modules are not available)",
        "import": "import and include are not available in kbridge (modules are not available)",
        "include": "import and include are not available in kbridge (modules are not available)",
        "stderr": "stderr is not available in kbridge (a program must not write to the bridge's log)",
        // libjq 1.6 bug (seen with valgrind): halt_error on a string or object constant of the program frees that
        // constant while the compiled program still holds it; the next run or the teardown then corrupts the heap.
        "halt_error": "halt_error is not available in kbridge (libjq 1.6 corrupts memory with it); use error(message)",
        // kbridge halts a run whose caller stopped waiting, and libjq 1.6's jq_halt asserts the state is not halted
        // yet: a program that halted itself as its deadline passed would abort the process.
        "halt": "halt is not available in kbridge (kbridge itself halts programs that run too long); use first(f) or limit(n; f) to stop early",
    ]
    /// Names of `$` variables a program may not use.
    static let refusedVariables: [String: String] = [
        "ENV": "env and $ENV are not available in kbridge (the process environment holds secrets)",
        "__loc__": "$__loc__ is not available in kbridge",
        "__prog_args": "$__prog_args is not available in kbridge",
    ]

    struct Refusal: Equatable {
        var reason: String
        var line: Int
    }

    /// The first refused name in `program`, or nil. Linear in the program's length (which the caller bounds).
    static func firstRefusal(in program: String) -> Refusal? {
        var scanner = Scanner(Array(program.utf8))
        return scanner.run()
    }

    private enum Token: Equatable {
        case identifier(String)
        case dollar
        case colon
        case comma
        case open(UInt8)
        case close(UInt8)
        case other
    }

    private struct Scanner {
        let bytes: [UInt8]
        var index = 0
        var line = 1
        /// Open brackets of the code being scanned; an interpolation `\(` pushes `(` and marks where it ends.
        var brackets: [UInt8] = []
        /// For each string whose interpolation is open: the bracket depth at which that interpolation closes.
        var interpolations: [Int] = []
        var previous: Token = .other

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        mutating func run() -> Refusal? {
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\n"):
                    line += 1
                    index += 1
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                    index += 1
                case UInt8(ascii: "#"):
                    while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
                case UInt8(ascii: "\""):
                    index += 1
                    skipStringBody()
                    previous = .other
                case UInt8(ascii: "$"):
                    index += 1  // jq 1.6 reads `$ name` (even with a space) as a variable; `$__loc__` is one too
                    previous = .dollar
                case UInt8(ascii: "."):
                    index += 1
                    if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                        index += 1  // `..` (recurse); an identifier right after it is a call
                    } else if index < bytes.count, Self.isIdentifierStart(bytes[index]) {
                        _ = readIdentifier()  // `.name`: field access
                    } else if index < bytes.count, Self.isDigit(bytes[index]) {
                        skipNumberRest()
                    }
                    previous = .other
                case UInt8(ascii: "("), UInt8(ascii: "["), UInt8(ascii: "{"):
                    brackets.append(byte)
                    index += 1
                    previous = .open(byte)
                case UInt8(ascii: ")"), UInt8(ascii: "]"), UInt8(ascii: "}"):
                    index += 1
                    if !brackets.isEmpty { brackets.removeLast() }
                    if let closesAt = interpolations.last, byte == UInt8(ascii: ")"), brackets.count == closesAt {
                        interpolations.removeLast()
                        skipStringBody()  // back inside the string the interpolation was in
                    }
                    previous = .close(byte)
                case UInt8(ascii: ","):
                    index += 1
                    previous = .comma
                case UInt8(ascii: ":"):
                    index += 1
                    previous = .colon
                default:
                    if Self.isDigit(byte) {
                        skipNumberRest()
                        previous = .other
                    } else if Self.isIdentifierStart(byte) {
                        let identifierLine = line
                        let parts = readIdentifier()
                        if previous == .dollar {
                            for part in parts {
                                if let reason = JQProgramScreening.refusedVariables[part] { return Refusal(reason: reason, line: identifierLine) }
                            }
                        } else if !isObjectKey() {
                            for part in parts {
                                if let reason = JQProgramScreening.refusedIdentifiers[part] { return Refusal(reason: reason, line: identifierLine) }
                            }
                        }
                        previous = .identifier(parts.joined(separator: "::"))
                    } else {
                        index += 1
                        previous = .other
                    }
                }
            }
            return nil
        }

        /// True when the identifier just read is an object key: directly inside `{`, after `{` or `,`, and followed
        /// by `:`, `,` or `}` (`{env: 1}`, `{env}` — the shorthand for `{env: .env}`). jq 1.6 object values are
        /// `ExpD` (no top-level commas), so a `,` directly inside `{` always separates keys.
        private func isObjectKey() -> Bool {
            guard brackets.last == UInt8(ascii: "{"), previous == .open(UInt8(ascii: "{")) || previous == .comma else { return false }
            var next = index
            while next < bytes.count {
                switch bytes[next] {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"):
                    next += 1
                case UInt8(ascii: "#"):
                    while next < bytes.count, bytes[next] != UInt8(ascii: "\n") { next += 1 }
                case UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "}"):
                    return true
                default:
                    return false
                }
            }
            return false
        }

        /// Skips a string's characters up to and including its closing quote, or up to an interpolation's `\(`
        /// (then the code inside is scanned like any other and the string resumes at its closing `)`).
        private mutating func skipStringBody() {
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return
                case UInt8(ascii: "\n"):
                    line += 1
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return }
                    if bytes[index] == UInt8(ascii: "(") {
                        index += 1
                        brackets.append(UInt8(ascii: "("))
                        interpolations.append(brackets.count - 1)
                        previous = .open(UInt8(ascii: "("))
                        return
                    }
                    if bytes[index] == UInt8(ascii: "\n") { line += 1 }
                    index += 1
                default:
                    break
                }
            }
        }

        /// Reads `name` or `module::name` (jq 1.6 joins `::` into one token); returns the parts.
        private mutating func readIdentifier() -> [String] {
            var parts: [String] = []
            while true {
                let start = index
                while index < bytes.count, Self.isIdentifierStart(bytes[index]) || Self.isDigit(bytes[index]) { index += 1 }
                parts.append(String(decoding: bytes[start..<index], as: UTF8.self))
                if index + 2 < bytes.count, bytes[index] == UInt8(ascii: ":"), bytes[index + 1] == UInt8(ascii: ":"),
                    Self.isIdentifierStart(bytes[index + 2])
                {
                    index += 2
                } else {
                    return parts
                }
            }
        }

        /// Skips the rest of a number (`12`, `1.5`, `.5`, `1e-3`); an identifier glued after it is a separate token.
        private mutating func skipNumberRest() {
            while index < bytes.count, Self.isDigit(bytes[index]) || bytes[index] == UInt8(ascii: ".") { index += 1 }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                var next = index + 1
                if next < bytes.count, bytes[next] == UInt8(ascii: "+") || bytes[next] == UInt8(ascii: "-") { next += 1 }
                if next < bytes.count, Self.isDigit(bytes[next]) {
                    index = next
                    while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
                }
            }
        }

        static func isIdentifierStart(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || byte == UInt8(ascii: "_")
        }

        static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
    }
}
