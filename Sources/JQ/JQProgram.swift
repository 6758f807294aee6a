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
///   `stderr` are refused at compile time (the process environment holds Kafka passwords), and so are `halt_error`
///   (libjq 1.6 frees the program constant it is given: heap corruption on the next run; use `error`) and `halt`
///   (kbridge halts programs itself, see ``run(_:on:timeout:)``, and libjq's `jq_halt` asserts, aborting the
///   process, when the state is halted already). Names inside string literals (`"env"`), field access (`.env`) and
///   object keys (`{env: 1}`) stay allowed. `debug` is a no-op.
/// - libjq: Debian bookworm's 1.6 (`libjq-dev` to build, `libjq1` to run).
/// - Not bounded: the memory and time a program uses while it runs (libjq 1.6 has no limits). The `async` run
///   halts the program when its caller stops waiting (timeout or cancellation), except inside one long C builtin
///   (`"x" * 1e9`); a synchronous run is never interrupted. A program that builds a value nested about a million
///   levels deep can overflow the thread's stack when jq frees it.
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
        var interruptedRuns: Int
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
        /// Runs halted because their caller stopped waiting (cancellation or deadline) while the program ran; their
        /// states went back to the pool.
        public var interruptedRuns: Int
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
        self.pool = Mutex(StatePool(idle: [first], live: 1, compilations: 1, temporaryStates: 0, interruptedRuns: 0))
    }

    public var statistics: Statistics {
        pool.withLock { pool in
            Statistics(
                idleStates: pool.idle.count, liveStates: pool.live, compilations: pool.compilations,
                temporaryStates: pool.temporaryStates, interruptedRuns: pool.interruptedRuns)
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
    /// When the calling task is cancelled, or `timeout` passes, this returns at once with
    /// ``JQRunError/Reason-swift.enum/cancelled`` or ``JQRunError/Reason-swift.enum/timedOut`` and halts the program
    /// (`jq_halt`): it stops at its next jq instruction, so a program that never ends (`def f: f; f`,
    /// `[range(1e18)]`, `range(.n)` on a hostile `n`) frees its thread within milliseconds, and its jq state goes
    /// back to the pool (JQBenchmark: the pool's thread runs its next job a median 0.1 to 4 ms after this returns).
    /// A run whose caller stopped waiting before it started never starts.
    ///
    /// Not interruptible: the work inside one jq instruction, i.e. one C builtin. The one that matters is string
    /// repetition, linear in the count and not bounded by libjq 1.6: `"x" * 100000000` runs ≈9 s and allocates
    /// ≈140 MB, `"x" * 1e9` ≈70 s and ≈1.1 GB (Debian's jq 1.6 on a loaded 2-core machine), and a longer string
    /// multiplies the memory (`"0123456789" * .n` with a request's `n`). Such a run keeps its thread until that
    /// builtin returns, then stops. Other builtins work on a value the program built step by step, which the halt
    /// does interrupt, so their cost is bounded by what a program can build before its deadline, but can be a few
    /// times that: `[range(1e7)]` takes ≈4.7 s to build, then `sort` ≈15 s and `tojson` ≈3.4 s more, uninterrupted.
    /// Regular expressions stop at Oniguruma's retry limit.
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
                    let result = input.withUnsafeBytes { state.run($0, limits: limits, started: { ticket.started(state) }) }
                    let (waiting, halted) = ticket.ended()
                    if halted {
                        state.releaseValues()
                        pool.withLock { $0.interruptedRuns += 1 }
                    }
                    // Halted or not, the state is reusable: the next `jq_start` clears a halt. Checked in before
                    // resuming, so the caller's next run finds it idle.
                    if pooled { checkIn(state) }
                    waiting?.resume(returning: result)
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

    static func stoppedWaiting(_ why: String) -> String {
        "stopped waiting for the jq program: \(why); the program was halted"
    }
}

/// Hands one run's result to its waiting task exactly once: from the thread pool, from cancellation or from the
/// deadline, whichever comes first. Later results are dropped and tell the run that nobody waits.
///
/// It also halts the run's program when the caller stops waiting while it runs. The same lock guards both, so a
/// state is halted only between the run's `jq_start` (``started(_:)``) and the end of its last `jq_next`
/// (``ended()``): never a state that went back to the pool or that another run uses, and never twice in one run
/// (`jq_halt` asserts that).
private final class RunTicket: Sendable {
    private enum Phase {
        case initial
        case waiting(CheckedContinuation<Result<[UInt8], JQRunError>, Never>)
        /// Finished before the continuation arrived (cancelled before start): the result it gets at once.
        case finishedEarly(Result<[UInt8], JQRunError>)
        case finished
    }

    private struct Guarded {
        var phase = Phase.initial
        /// The state running this ticket's program, from its `jq_start` to the end of its last `jq_next`.
        var running: JQState?
        var halted = false
    }

    private let guarded = Mutex(Guarded())

    /// Stores the continuation; false (after resuming it) when the run was already finished, i.e. cancelled.
    func wait(_ continuation: CheckedContinuation<Result<[UInt8], JQRunError>, Never>) -> Bool {
        let early = guarded.withLock { guarded -> Result<[UInt8], JQRunError>? in
            switch guarded.phase {
            case .initial:
                guarded.phase = .waiting(continuation)
                return nil
            case .finishedEarly(let result):
                guarded.phase = .finished
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
        guarded.withLock { if case .waiting = $0.phase { true } else { false } }
    }

    /// The run's program is set up on `state` and about to execute: from now on, finishing halts it. False when
    /// nobody waits any more (then the program must not run).
    func started(_ state: JQState) -> Bool {
        guarded.withLock { guarded in
            guard case .waiting = guarded.phase else { return false }
            guarded.running = state
            return true
        }
    }

    /// The run's program returned: no more halting. Returns the waiting task's continuation, for the caller to
    /// resume, if nothing resumed it before, and whether the program was halted (its result is then partial).
    func ended() -> (waiting: CheckedContinuation<Result<[UInt8], JQRunError>, Never>?, halted: Bool) {
        guarded.withLock { guarded in
            guarded.running = nil
            guard case .waiting(let continuation) = guarded.phase else { return (nil, guarded.halted) }
            guarded.phase = .finished
            return (continuation, guarded.halted)
        }
    }

    /// Resumes the waiting task with `result` if nothing did before, and halts the program if it is running; true
    /// when this call resumed the task.
    @discardableResult
    func finish(_ result: Result<[UInt8], JQRunError>) -> Bool {
        let continuation = guarded.withLock { guarded -> CheckedContinuation<Result<[UInt8], JQRunError>, Never>? in
            switch guarded.phase {
            case .initial:
                guarded.phase = .finishedEarly(result)
                return nil
            case .waiting(let continuation):
                guarded.phase = .finished
                if let running = guarded.running, !guarded.halted {
                    running.halt()  // only sets a flag: cheap enough to do under the lock
                    guarded.halted = true
                }
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
