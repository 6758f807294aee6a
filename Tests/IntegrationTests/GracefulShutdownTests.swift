import AsyncHTTPClient
import Foundation
import Kafka
import NIOCore
import NIOHTTP1
import Synchronization
import TestSupport
import Testing

/// The real `kbridge` binary, stopped with SIGTERM: every message it answered 200 for must be in the topic.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct GracefulShutdownTests {
    func configuration(topic: String) throws -> String {
        """
        server: {host: 127.0.0.1, port: 0, shutdown_timeout: 30000}
        log_level: info
        routes:
          - path: /burst
            topic: \(topic)
            bootstrap_servers: [\(try TestBroker.bootstrapServers)]
            producer_async: true
        """
    }

    /// Sends `count` requests, `concurrency` at a time; calls `progress` with the number answered so far.
    /// Stops starting new requests once `stop` returns true (the server is going away: AHC would otherwise
    /// keep retrying the connection until each request's deadline).
    func burst(
        port: Int, count: Int, concurrency: Int = 64, progress: @Sendable @escaping (Int) -> Void = { _ in },
        stop: @Sendable @escaping () -> Bool = { false }
    ) async -> [Int: HTTPResponseStatus] {
        let answered = Counter()
        return await withTaskGroup(of: (Int, HTTPResponseStatus?).self) { group in
            var results: [Int: HTTPResponseStatus] = [:]
            var next = 0
            func add() {
                let index = next
                next += 1
                group.addTask {
                    let status = try? await request("http://127.0.0.1:\(port)/burst", body: "m-\(index)",
                                                    headers: [("content-type", "text/plain")], timeout: .seconds(5)).status
                    progress(answered.increment())
                    return (index, status)
                }
            }
            for _ in 0..<min(concurrency, count) { add() }
            for await (index, status) in group {
                if let status { results[index] = status }
                if next < count, !stop() { add() }
            }
            return results
        }
    }

    @Test func sigtermRightAfterABurstLosesNoAcceptedMessage() async throws {
        let topic = uniqueTopic("sigterm")
        let bridge = try await BridgeProcess(configuration: try configuration(topic: topic))
        let results = await burst(port: bridge.port, count: 10_000)
        let accepted = Set(results.filter { $0.value == .ok }.map { "m-\($0.key)" })
        let status = try await bridge.terminate()
        #expect(status == 0, "\(bridge.stderr.suffix(2000))")
        #expect(accepted.count == 10_000)
        let bodies = try await readTopic(topic, minimumCount: accepted.count, timeout: .seconds(60)).compactMap { $0.json["body"] as? String }
        let lost = accepted.subtracting(bodies)
        #expect(lost.isEmpty, "lost \(lost.count) accepted messages, e.g. \(lost.prefix(5))")
        #expect(bodies.count == accepted.count, "\(bodies.count) messages in the topic for \(accepted.count) accepted")
        #expect(bridge.stderr.contains("undelivered_at_shutdown=0"), "\(bridge.stderr.suffix(2000))")
    }

    @Test func sigtermDuringABurstLosesNoAcceptedMessage() async throws {
        let topic = uniqueTopic("sigterm-mid")
        let bridge = try await BridgeProcess(configuration: try configuration(topic: topic))
        let signalled = Counter()
        let process = bridge.process
        let results = await burst(port: bridge.port, count: 6_000, progress: { answered in
            if answered >= 3_000, signalled.increment() == 1 { process.terminate() }
        }, stop: { !process.isRunning })
        let status = try await bridge.terminate()
        #expect(status == 0, "\(bridge.stderr.suffix(2000))")
        let accepted = Set(results.filter { $0.value == .ok }.map { "m-\($0.key)" })
        #expect(accepted.count >= 3_000)
        // Requests after SIGTERM are refused or answered 503; none of those reach the topic.
        #expect(results.values.allSatisfy { $0 == .ok || $0 == .serviceUnavailable })
        let bodies = try await readTopic(topic, minimumCount: accepted.count, timeout: .seconds(60)).compactMap { $0.json["body"] as? String }
        #expect(accepted.isSubset(of: Set(bodies)), "lost \(accepted.subtracting(bodies).count) accepted messages")
        #expect(bodies.count == Set(bodies).count, "duplicates in the topic")
    }
}

/// A running `kbridge` process and the port it reported.
final class BridgeProcess: Sendable {
    /// The process's standard error and output, written to a file (a pipe's reader can die on an interrupted read).
    final class Output: Sendable {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-stderr-\(UUID().uuidString).log").path
        var value: String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    let process: Process
    let port: Int
    /// The configuration file it was started with (a test may rewrite it, then reload).
    let configurationFile: String
    let output = Output()
    var stderr: String { output.value }

    var pid: Int32 { process.processIdentifier }

    /// - Parameter fileDescriptorLimit: run it under `ulimit -n` this low (through bash), to test what happens when
    ///   it runs out of file descriptors.
    init(configuration: String, fileDescriptorLimit: Int? = nil) async throws {
        let binary = try kbridgeBinary()
        let file = try temporaryFile(configuration)
        configurationFile = file
        let process = Process()
        if let fileDescriptorLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", "ulimit -n \(fileDescriptorLimit) && exec \"$0\" \"$1\"", binary, file]
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = [file]
        }
        let output = self.output
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        // Both streams to one file through one handle (one offset): SwiftNIO prints its warnings on standard output.
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: output.path))
        process.standardError = log
        process.standardOutput = log
        try launch(process)
        self.process = process
        // The listening port is in the start-up log line: "address=127.0.0.1:PORT".
        var port: Int?
        let deadline = ContinuousClock.now + .seconds(20)
        while port == nil, ContinuousClock.now < deadline, process.isRunning {
            let text = output.value
            port = text.range(of: #"address=127\.0\.0\.1:(\d+)"#, options: .regularExpression)
                .flatMap { Int(text[$0].split(separator: ":").last!) }
            if port == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        guard let port else {
            process.terminate()
            throw TestSetupError("kbridge did not start: \(output.value)")
        }
        self.port = port
    }

    /// Kills the process (SIGKILL), if it still runs.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    // A test that failed before stopping its bridge must not leave it running.
    deinit { stop() }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    func terminate(timeout: Duration = .seconds(60)) async throws -> Int32 {
        process.terminate()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        guard !process.isRunning else {
            kill(process.processIdentifier, SIGKILL)
            throw TestSetupError("kbridge did not exit within \(timeout) of SIGTERM")
        }
        return process.terminationStatus
    }
}

final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    /// Adds one and returns the new value.
    func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
}
