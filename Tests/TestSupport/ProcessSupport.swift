import Foundation
import Synchronization

/// Starts `process`, one launch at a time in this test process: Foundation's `Process.run()` on Linux is not safe to
/// call from several threads at once (a crash in its argument copying was seen with parallel suites). Every test
/// that starts a child process goes through here.
public func launch(_ process: Process) throws {
    try processLaunches.withLock { _ in try process.run() }
}

private let processLaunches = Mutex(())

/// Runs `work` on a thread of its own and awaits its result.
///
/// Blocking work (a child process, a blocking read, a busy loop) must never run on one of Swift concurrency's
/// cooperative threads: there are as many as cores (2 on CI), every test of the process shares them, and two blocked
/// ones stall every timer and every `await` in the run (a jq timeout fired 33 s late that way).
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.name = "kbridge-test-blocking"
        thread.start()
    }
}

/// What a child process left: its exit status and everything it wrote.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: Data

    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs `executable` (a path, or a name looked up on `PATH`) to completion on a thread of its own, with `input` on its
/// standard input, and returns its status and output. Standard input and output go through files, not pipes, so a
/// child that writes a lot before it reads everything (or the other way round) cannot block on a full pipe.
/// A child still running after `timeout` is killed and ``ProcessTimedOut`` thrown. `environment` is added to this
/// process's environment for the child.
public func runProcess(
    _ executable: String, _ arguments: [String], input: Data = Data(), directory: String? = nil, environment: [String: String] = [:],
    timeout: Duration = .seconds(300)
) async throws -> ProcessOutput {
    try await onOwnThread {
        try runProcessBlocking(executable, arguments, input: input, directory: directory, environment: environment, timeout: timeout)
    }
}

/// ``runProcess`` on the calling thread, which it blocks: only for code already on a thread of its own.
public func runProcessBlocking(
    _ executable: String, _ arguments: [String], input: Data = Data(), directory: String? = nil, environment: [String: String] = [:],
    timeout: Duration = .seconds(300)
) throws -> ProcessOutput {
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-process-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let (inputFile, outputFile, errorFile) =
        (scratch.appendingPathComponent("stdin"), scratch.appendingPathComponent("stdout"), scratch.appendingPathComponent("stderr"))
    try input.write(to: inputFile)
    try Data().write(to: outputFile)
    try Data().write(to: errorFile)

    let process = Process()
    if executable.contains("/"), environment.isEmpty {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
    } else {
        // env(1) finds the executable on PATH and sets `environment`: `Process.environment` is left alone (Foundation's
        // copying of a whole environment crashed once in CI, in `Process.run()`).
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + [executable] + arguments
    }
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let standardInput = try FileHandle(forReadingFrom: inputFile)
    let standardOutput = try FileHandle(forWritingTo: outputFile)
    let standardError = try FileHandle(forWritingTo: errorFile)
    defer { for handle in [standardInput, standardOutput, standardError] { try? handle.close() } }
    process.standardInput = standardInput
    process.standardOutput = standardOutput
    process.standardError = standardError
    try launch(process)
    // On a thread of its own: waiting here holds no cooperative thread.
    let deadline = ContinuousClock.now + timeout
    while process.isRunning, ContinuousClock.now < deadline { usleep(10_000) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw ProcessTimedOut(command: ([executable] + arguments).joined(separator: " "), timeout: timeout)
    }
    return ProcessOutput(status: process.terminationStatus, stdout: try Data(contentsOf: outputFile), stderr: try Data(contentsOf: errorFile))
}

/// A child process that did not finish in time (and was killed).
public struct ProcessTimedOut: Error, CustomStringConvertible {
    public var command: String
    public var timeout: Duration
    public var description: String { "\(command) did not finish within \(timeout)" }
}
