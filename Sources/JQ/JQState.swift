import CJQ

/// The output bounds of one run.
public struct JQLimits: Sendable, Equatable {
    /// Most values one run may produce (several values become one JSON array).
    public var maximumOutputs: Int
    /// Most bytes of the result (the one value, or the whole array with its brackets and commas).
    public var maximumOutputBytes: Int

    public init(maximumOutputs: Int = 10_000, maximumOutputBytes: Int = 16 << 20) {
        self.maximumOutputs = max(1, maximumOutputs)
        self.maximumOutputBytes = max(4, maximumOutputBytes)  // room for `null`
    }
}

/// One `jq_state` holding a compiled program. Not thread-safe: the pool hands it to one thread at a time (libjq 1.6
/// keeps its per-thread data only for the length of a call, so a state may move between threads between runs).
/// Every `jv` stays inside this type's methods: jv reference counts are not atomic.
final class JQState: @unchecked Sendable {
    private var jq: OpaquePointer?
    /// Receives jq's error callback; lives as long as the state (libjq keeps the pointer).
    private let messages: MessageSink

    /// Longest runtime error message kept (a program can raise `error` with any string).
    static let maximumMessageBytes = 2048

    /// Compiles `text` (≈17 ms with libjq 1.6: it recompiles its builtin library every time).
    init(compiling text: String) throws(JQCompileError) {
        guard let jq = jq_init() else {
            throw JQCompileError(reason: .outOfMemory, messages: ["jq: error: cannot allocate a jq state"])
        }
        let messages = MessageSink()
        jq_set_error_cb(jq, { opaque, message in
            guard let opaque else { jv_free(message); return }
            Unmanaged<MessageSink>.fromOpaque(opaque).takeUnretainedValue().append(message)
        }, Unmanaged.passUnretained(messages).toOpaque())
        // `debug` writes to stderr by default; discard its messages instead (the value passes through unchanged).
        jq_set_debug_cb(jq, { _, message in jv_free(message) }, nil)
        self.jq = jq
        self.messages = messages
        if jq_compile(jq, text) == 0 {
            var lines = messages.take()
            if lines.isEmpty { lines = ["jq: error: the program does not compile"] }
            throw JQCompileError(reason: .invalidProgram, messages: lines)
        }
        _ = messages.take()
    }

    deinit {
        jq_teardown(&jq)
    }

    /// Stops the running program at its next jq instruction: `jq_next` then returns as if the outputs had ended
    /// (the run's result is partial and must be dropped). Called from another thread than the one running the
    /// program, which libjq 1.6 allows in practice: `jq_next` reads the `halted` flag, a field of the state, at the
    /// top of every instruction, and `jq_halt` only sets it (with an exit code and a message, both invalid here,
    /// which own no memory). `jq_halt` asserts that the state is not halted yet, so call this at most once per run,
    /// and only between the run's `jq_start` and its last `jq_next`; the next `jq_start` clears the halt.
    /// Programs cannot halt themselves: `halt` and `halt_error` are refused at compile time.
    func halt() {
        jq_halt(jq, jv_invalid(), jv_invalid())
    }

    /// Frees the values a stopped run left on the state's stack (an interrupted `[range(1e18)]` holds its partial
    /// array) instead of keeping them until the state's next run: `jq_start` on `null` resets the state.
    func releaseValues() {
        jq_start(jq, jv_null(), 0)
    }

    /// Runs the program on one JSON value and returns the result as compact JSON bytes: one output is that value,
    /// none is `null`, several are an array of them.
    ///
    /// `started` is called once the program is set up (after `jq_start`, before its first instruction): from then
    /// on ``halt()`` stops it. When `started` returns false (nobody waits for the result any more) the program does
    /// not run at all.
    func run(_ input: UnsafeRawBufferPointer, limits: JQLimits, started: () -> Bool = { true }) -> Result<[UInt8], JQRunError> {
        guard let length = Int32(exactly: input.count) else {
            return .failure(JQRunError(reason: .inputTooLarge, message: "the input is \(input.count) bytes; libjq takes at most \(Int32.max)"))
        }
        let value: jv
        if let base = input.baseAddress {
            value = jv_parse_sized(base.assumingMemoryBound(to: CChar.self), length)
        } else {
            value = jv_parse_sized("", 0)
        }
        guard jv_is_valid(value) != 0 else {
            return .failure(JQRunError(reason: .invalidInput, message: "invalid JSON input: " + Self.parseMessage(of: value)))
        }
        _ = messages.take()
        jq_start(jq, value, 0)  // consumes `value`; clears a halt left by the previous run
        guard started() else {
            return .failure(JQRunError(reason: .cancelled, message: "the jq program did not run: nobody waits for its result"))
        }

        var output: [UInt8] = []
        var outputCount = 0
        var valueBytes = 0
        while true {
            let next = jq_next(jq)
            if jv_is_valid(next) == 0 {
                if jv_invalid_has_msg(jv_copy(next)) != 0 {
                    let message = jv_invalid_get_msg(next)  // consumes `next`
                    return .failure(JQRunError(reason: .runtimeError, message: "jq: error: " + Self.text(of: message)))
                }
                jv_free(next)
                break
            }
            outputCount += 1
            if outputCount > limits.maximumOutputs {
                jv_free(next)
                return .failure(
                    JQRunError(reason: .tooManyOutputs, message: "the jq program produced more than \(limits.maximumOutputs) values"))
            }
            let dumped = jv_dump_string(next, 0)  // consumes `next`; 0 = compact, keys in insertion order
            let byteCount = Int(jv_string_length_bytes(jv_copy(dumped)))
            valueBytes += byteCount  // both at most outputs × 2 GiB: no overflow on 64-bit
            // The result's final size: one value as is; several with `[`, `]` and a comma between each two.
            let resultBytes = outputCount >= 2 ? valueBytes + outputCount + 1 : valueBytes
            guard resultBytes <= limits.maximumOutputBytes else {
                jv_free(dumped)
                return .failure(
                    JQRunError(reason: .outputTooLarge, message: "the jq program's result is longer than \(limits.maximumOutputBytes) bytes"))
            }
            if outputCount == 2 {
                output.insert(UInt8(ascii: "["), at: 0)
            }
            if outputCount >= 2 {
                output.append(UInt8(ascii: ","))
            }
            if let characters = jv_string_value(dumped) {
                let bytes = UnsafeRawBufferPointer(start: characters, count: byteCount)
                if Self.containsDepthMarker(bytes) {
                    jv_free(dumped)
                    return .failure(
                        JQRunError(
                            reason: .outputTooDeep,
                            message: "the jq program's result is nested more than 256 levels deep, which libjq 1.6 cannot print"))
                }
                output.append(contentsOf: bytes)
            }
            jv_free(dumped)
        }
        switch outputCount {
        case 0: return .success(Array("null".utf8))
        case 1: return .success(output)
        default:
            output.append(UInt8(ascii: "]"))
            return .success(output)
        }
    }

    /// libjq 1.6 prints a value nested more than 256 levels deep as `<stripped: exceeds max depth>` in place of the
    /// deeper part: not JSON. Outside a string, valid JSON never contains `<`, so one `<` there marks it.
    static func containsDepthMarker(_ json: UnsafeRawBufferPointer) -> Bool {
        guard json.contains(UInt8(ascii: "<")) else { return false }  // the common case: one quick pass
        var inString = false
        var escaped = false
        for byte in json {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if byte == UInt8(ascii: "<") {
                return true
            }
        }
        return false
    }

    /// jv_parse_sized's message without its `(while parsing '<the whole input>')` echo. Consumes `invalid`.
    private static func parseMessage(of invalid: jv) -> String {
        let message = jv_invalid_get_msg(invalid)
        guard jv_get_kind(message) == JV_KIND_STRING else {
            jv_free(message)
            return "no JSON value"
        }
        let text = Array(text(of: message).utf8)
        let echo = Array(" (while parsing '".utf8)
        var end = text.count
        var start = 0
        while start + echo.count <= text.count {
            if text[start..<(start + echo.count)].elementsEqual(echo) {
                end = start
                break
            }
            start += 1
        }
        return String(decoding: text[..<end], as: UTF8.self)
    }

    /// A message jv as text (a string as is, anything else as JSON), at most `maximumMessageBytes`. Consumes `message`.
    static func text(of message: jv) -> String {
        let isString = jv_get_kind(message) == JV_KIND_STRING
        let string = isString ? message : jv_dump_string(message, 0)
        defer { jv_free(string) }
        let count = Int(jv_string_length_bytes(jv_copy(string)))
        guard let characters = jv_string_value(string) else { return "" }
        let text = String(decoding: UnsafeRawBufferPointer(start: characters, count: min(count, maximumMessageBytes)), as: UTF8.self)
        return (isString ? "" : "(not a string) ") + text + (count > maximumMessageBytes ? "…" : "")
    }
}

/// Collects the messages of jq's error callback. Touched only by the thread that holds its state.
private final class MessageSink {
    private var lines: [String] = []
    /// A program cannot make jq report unboundedly many messages at compile time, but keep a bound regardless.
    private static let maximumLines = 100

    func append(_ message: jv) {
        guard lines.count < Self.maximumLines else {
            jv_free(message)
            return
        }
        let text = JQState.text(of: message)
        // jq's compile messages name the line and then show it, padded with spaces: one entry per line, trimmed.
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            var trimmed = Substring(line)
            while trimmed.last == " " { trimmed.removeLast() }
            if !trimmed.isEmpty { lines.append(String(trimmed)) }
        }
    }

    func take() -> [String] {
        defer { lines = [] }
        return lines
    }
}
