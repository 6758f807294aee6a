import JSON
import NIOPosix
import Synchronization

/// A jq program (libjq 1.6), compiled once, that transforms one JSON value into one JSON value.
///
/// - Result: one output is that value, no output is `null`, several outputs are a JSON array of them (in order).
///   Output is compact JSON; object keys keep jq's order.
/// - Errors: invalid input JSON, jq runtime errors (`error("…")`, `string ("x") and number (1) cannot be added`)
///   and the output bounds (``JQLimits``) fail the run with a ``JQRunError`` carrying jq's message.
/// - Numbers: jq 1.6 holds every number as an IEEE double. Integers beyond ±2^53 lose precision
///   (`9007199254740993` comes out as `9007199254740992`) and number text is canonicalised (`1.10` → `1.1`),
///   even for values the program only passes through. This is libjq 1.6's behaviour and is not corrected here.
/// - Cost: compiling takes ≈17 ms (jq 1.6 recompiles its builtin library each time), so make programs once, when the
///   configuration is loaded, never per request. A run of a small filter on a small document costs microseconds.
/// - Concurrency: the program keeps a pool of compiled jq states, made lazily up to `maximumStates`; each run checks
///   one out, so a state (and every jq value) is used by one thread at a time. Runs beyond `maximumStates` at once
///   compile a temporary state (≈17 ms) and tear it down afterwards: size `maximumStates` to the number of threads
///   that run programs (e.g. the thread pool's size).
/// - Security: programs that name `env`, `$ENV`, `input`, `inputs`, `input_filename`, `input_line_number`,
///   `$__loc__`, `get_search_list`, `get_jq_origin`, `get_prog_origin`, `modulemeta`, `import`, `include` or
///   `stderr` are refused at compile time (the process environment holds Kafka passwords), and so is `halt_error`
///   (libjq 1.6 frees the program constant it is given: heap corruption on the next run; use `error`). Names inside
///   string literals (`"env"`), field access (`.env`) and object keys (`{env: 1}`) stay allowed. `debug` is a no-op.
/// - libjq: Debian bookworm's 1.6 (`libjq-dev` to build, `libjq1` to run).
/// - Not bounded: the memory and time a program uses while it runs (libjq 1.6 has neither limits nor an interrupt).
///   A program that never ends keeps its thread forever; the `async` run lets the caller stop waiting. A program
///   that builds a value nested about a million levels deep can overflow the thread's stack when jq frees it.
///   Input JSON is limited by jq's parser to 256 levels of nesting. Programs come from the operator's
///   configuration; input comes from requests.
public final class JQProgram: Sendable {
    /// Kong's bound on a jq program's length, in characters.
    public static let maximumProgramLength = 10_240

    /// The program text, as given.
    public let text: String
    /// Most compiled jq states kept for reuse (and for concurrent runs without compiling).
    public let maximumStates: Int
    public let limits: JQLimits

    private let pool: Mutex<StatePool>

    private struct StatePool {
        var idle: [JQState]
        /// Pooled states in existence: idle, or checked out by a run.
        var live: Int
        var compilations: Int
        var temporaryStates: Int
        var abandonedStates: Int
    }

    /// What the pool has done so far (for tests and metrics).
    public struct Statistics: Sendable, Equatable {
        /// States waiting in the pool.
        public var idleStates: Int
        /// Pooled states in existence (idle or running).
        public var liveStates: Int
        /// `jq_compile` calls, the first (validating) one included.
        public var compilations: Int
        /// Runs that found every pooled state busy and compiled a state of their own.
        public var temporaryStates: Int
        /// States dropped because their caller stopped waiting (cancellation or deadline) before the run ended.
        public var abandonedStates: Int
    }

    /// Compiles `text` once to validate it; the compiled state becomes the pool's first.
    /// - Parameters:
    ///   - maximumStates: most compiled states kept (at least 1).
    ///   - limits: bounds on each run's output.
    public init(_ text: String, maximumStates: Int = 8, limits: JQLimits = JQLimits()) throws(JQCompileError) {
        let length = text.count
        guard length <= Self.maximumProgramLength else {
            throw JQCompileError(
                reason: .programTooLong,
                messages: ["jq: error: the program is \(length) characters long; kbridge takes at most \(Self.maximumProgramLength)"])
        }
        guard !text.utf8.contains(0) else {
            throw JQCompileError(reason: .nulCharacter, messages: ["jq: error: the program contains a NUL character"])
        }
        if let refusal = JQProgramScreening.firstRefusal(in: text) {
            // Like jq's own messages: the reason with the line number, the line, the count.
            let line = text.split(separator: "\n", omittingEmptySubsequences: false).dropFirst(refusal.line - 1).first ?? ""
            throw JQCompileError(
                reason: .refusedBuiltin,
                messages: ["jq: error: \(refusal.reason) at <top-level>, line \(refusal.line):", String(line), "jq: 1 compile error"])
        }
        let first = try JQState(compiling: text)
        self.text = text
        self.maximumStates = max(1, maximumStates)
        self.limits = limits
        self.pool = Mutex(StatePool(idle: [first], live: 1, compilations: 1, temporaryStates: 0, abandonedStates: 0))
    }

    public var statistics: Statistics {
        pool.withLock { pool in
            Statistics(
                idleStates: pool.idle.count, liveStates: pool.live, compilations: pool.compilations,
                temporaryStates: pool.temporaryStates, abandonedStates: pool.abandonedStates)
        }
    }

    // MARK: - Synchronous runs

    /// Runs the program on one JSON value (`input`) and returns the result as compact JSON bytes.
    ///
    /// Blocks the calling thread for as long as the program runs, which is unbounded: never call it on an event
    /// loop; use ``run(_:on:timeout:)`` there.
    public func run(_ input: UnsafeRawBufferPointer) throws(JQRunError) -> [UInt8] {
        let (state, pooled) = try checkOut()
        let result = state.run(input, limits: limits)
        if pooled { checkIn(state) }
        return try result.get()
    }

    /// Runs the program on one JSON value (`input`) and returns the result as compact JSON bytes (see ``run(_:)-(UnsafeRawBufferPointer)``).
    public func run(_ input: [UInt8]) throws(JQRunError) -> [UInt8] {
        let result = input.withUnsafeBytes { (bytes) -> Result<[UInt8], JQRunError> in
            do throws(JQRunError) { return .success(try run(bytes)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Runs the program and parses its result into a ``JSONValue`` (one more parse of the output bytes).
    public func value(for input: [UInt8]) throws(JQRunError) -> JSONValue {
        let output = try run(input)
        do {
            return try JSONParser.parse(output)
        } catch {
            // jq's output is JSON, but a value nested deeper than the JSON module's bound does not parse back.
            throw JQRunError(reason: .unparsableOutput, message: "the jq program's result does not parse back: \(error)")
        }
    }

    // MARK: - Asynchronous runs

    /// Runs the program on a thread of `threadPool`, off the caller's event loop, and returns the result as compact
    /// JSON bytes.
    ///
    /// libjq 1.6 cannot interrupt a running program. When the calling task is cancelled, or `timeout` passes, this
    /// returns at once with ``JQRunError/Reason-swift.enum/cancelled`` or ``JQRunError/Reason-swift.enum/timedOut``;
    /// the program keeps its thread until it ends on its own (a program that never ends keeps it forever), and its
    /// jq state is then dropped, not returned to the pool. A run whose caller stopped waiting before it started
    /// never starts.
    public func run(_ input: [UInt8], on threadPool: NIOThreadPool, timeout: Duration? = nil) async throws(JQRunError) -> [UInt8] {
        let ticket = RunTicket()
        let deadline = timeout.map { timeout in
            Task {
                do { try await Task.sleep(for: timeout) } catch { return }  // cancelled: the run ended first
                ticket.finish(.failure(JQRunError(reason: .timedOut, message: Self.stoppedWaiting("its \(timeout) timeout passed"))))
            }
        }
        defer { deadline?.cancel() }
        let result: Result<[UInt8], JQRunError> = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<[UInt8], JQRunError>, Never>) in
                guard ticket.wait(continuation) else { return }
                threadPool.submit { [self] workState in
                    guard workState == .active else {
                        ticket.finish(.failure(JQRunError(reason: .threadPoolInactive, message: "the jq thread pool is not running")))
                        return
                    }
                    guard ticket.isWaiting else { return }
                    let state: JQState
                    let pooled: Bool
                    do throws(JQRunError) {
                        (state, pooled) = try checkOut()
                    } catch {
                        ticket.finish(.failure(error))
                        return
                    }
                    let result = input.withUnsafeBytes { state.run($0, limits: limits) }
                    if let waiting = ticket.take() {
                        if pooled { checkIn(state) }  // before resuming, so the caller's next run finds it idle
                        waiting.resume(returning: result)
                    } else if pooled {
                        abandon(state)
                    }
                }
            }
        } onCancel: {
            ticket.finish(.failure(JQRunError(reason: .cancelled, message: Self.stoppedWaiting("the task was cancelled"))))
        }
        return try result.get()
    }

    // MARK: - The pool

    private func checkOut() throws(JQRunError) -> (JQState, pooled: Bool) {
        enum Decision { case reuse(JQState), compilePooled, compileTemporary }
        let decision = pool.withLock { pool -> Decision in
            if let state = pool.idle.popLast() { return .reuse(state) }
            pool.compilations += 1
            if pool.live < maximumStates {
                pool.live += 1
                return .compilePooled
            }
            pool.temporaryStates += 1
            return .compileTemporary
        }
        switch decision {
        case .reuse(let state):
            return (state, true)
        case .compilePooled, .compileTemporary:
            var pooled = false
            if case .compilePooled = decision { pooled = true }
            do {
                return (try JQState(compiling: text), pooled)
            } catch {
                // It compiled in init, so only memory can fail here.
                if pooled { pool.withLock { $0.live -= 1 } }
                throw JQRunError(reason: .outOfMemory, message: "cannot make a jq state: \(error)")
            }
        }
    }

    private func checkIn(_ state: JQState) {
        pool.withLock { $0.idle.append(state) }
    }

    /// Forgets a pooled state whose caller stopped waiting; it is torn down when the last reference goes (outside the lock).
    private func abandon(_ state: JQState) {
        pool.withLock { pool in
            pool.live -= 1
            pool.abandonedStates += 1
        }
    }

    static func stoppedWaiting(_ why: String) -> String {
        "stopped waiting for the jq program: \(why) (libjq cannot interrupt it: it keeps its thread until it ends)"
    }
}

/// Hands one run's result to its waiting task exactly once: from the thread pool, from cancellation or from the
/// deadline, whichever comes first. Later results are dropped and tell the run that nobody waits.
private final class RunTicket: Sendable {
    private enum State {
        case initial
        case waiting(CheckedContinuation<Result<[UInt8], JQRunError>, Never>)
        /// Finished before the continuation arrived (cancelled before start): the result it gets at once.
        case finishedEarly(Result<[UInt8], JQRunError>)
        case finished
    }

    private let state = Mutex(State.initial)

    /// Stores the continuation; false (after resuming it) when the run was already finished, i.e. cancelled.
    func wait(_ continuation: CheckedContinuation<Result<[UInt8], JQRunError>, Never>) -> Bool {
        let early = state.withLock { state -> Result<[UInt8], JQRunError>? in
            switch state {
            case .initial:
                state = .waiting(continuation)
                return nil
            case .finishedEarly(let result):
                state = .finished
                return result
            case .waiting, .finished:
                preconditionFailure("RunTicket.wait called twice")
            }
        }
        guard let early else { return true }
        continuation.resume(returning: early)
        return false
    }

    var isWaiting: Bool {
        state.withLock { if case .waiting = $0 { true } else { false } }
    }

    /// The waiting task's continuation, for the caller to resume, if nothing resumed it before.
    func take() -> CheckedContinuation<Result<[UInt8], JQRunError>, Never>? {
        state.withLock { state in
            guard case .waiting(let continuation) = state else { return nil }
            state = .finished
            return continuation
        }
    }

    /// Resumes the waiting task with `result` if nothing did before; true when this call did.
    @discardableResult
    func finish(_ result: Result<[UInt8], JQRunError>) -> Bool {
        let continuation = state.withLock { state -> CheckedContinuation<Result<[UInt8], JQRunError>, Never>? in
            switch state {
            case .initial:
                state = .finishedEarly(result)
                return nil
            case .waiting(let continuation):
                state = .finished
                return continuation
            case .finishedEarly, .finished:
                return nil
            }
        }
        guard let continuation else { return false }
        continuation.resume(returning: result)
        return true
    }
}
