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

    // posix_spawn, not Foundation's Process: `Process.run()` on Linux (Swift 6.3.1) over-reads a `dirent` while it lists
    // /proc/self/fd and crashes now and then (swift-corelibs-foundation PR #5472); it did in CI. env(1) finds the
    // executable on PATH, sets `environment` and changes to `directory`.
    var argv = [executable] + arguments
    if !executable.contains("/") || !environment.isEmpty || directory != nil {
        argv = ["/usr/bin/env"] + (directory.map { ["-C", $0] } ?? [])
            + environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + argv
    }
    let pid = try spawn(argv, standardInput: inputFile.path, standardOutput: outputFile.path, standardError: errorFile.path)
    // On a thread of its own: waiting here holds no cooperative thread.
    let deadline = ContinuousClock.now + timeout
    var status: Int32 = 0
    while true {
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid { break }
        if reaped < 0, errno != EINTR { throw ProcessSpawnFailed(description: "waitpid(\(pid)) failed: errno \(errno)") }
        if ContinuousClock.now >= deadline {
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
            throw ProcessTimedOut(command: ([executable] + arguments).joined(separator: " "), timeout: timeout)
        }
        usleep(10_000)
    }
    // As Foundation's `terminationStatus`: the exit code, or the number of the signal that ended the child.
    let exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
    return ProcessOutput(status: exitStatus, stdout: try Data(contentsOf: outputFile), stderr: try Data(contentsOf: errorFile))
}

/// Starts `argv[0]` (an absolute path) with its standard streams opened on the given files; returns its pid.
private func spawn(_ argv: [String], standardInput: String, standardOutput: String, standardError: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, standardInput, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, standardOutput, O_WRONLY | O_TRUNC, 0)
    posix_spawn_file_actions_addopen(&actions, 2, standardError, O_WRONLY | O_TRUNC, 0)
    let arguments = argv.map { strdup($0) }
    defer { arguments.forEach { free($0) } }
    var argumentPointers = arguments + [nil]
    var pid: pid_t = 0
    let result = argumentPointers.withUnsafeMutableBufferPointer { argumentBuffer in
        posix_spawn(&pid, argv[0], &actions, nil, argumentBuffer.baseAddress!, environ)
    }
    guard result == 0 else { throw ProcessSpawnFailed(description: "cannot start \(argv.joined(separator: " ")): posix_spawn error \(result)") }
    return pid
}

/// A child process that could not be started or waited for.
public struct ProcessSpawnFailed: Error, CustomStringConvertible {
    public var description: String
}

/// A child process that did not finish in time (and was killed).
public struct ProcessTimedOut: Error, CustomStringConvertible {
    public var command: String
    public var timeout: Duration
    public var description: String { "\(command) did not finish within \(timeout)" }
}
