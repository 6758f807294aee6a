import Foundation
import Synchronization
import TestSupport
import Testing

/// The real `kbridge` binary at a file-descriptor limit of 64, with 100 clients: `accept` fails with EMFILE.
/// Without a backoff the listening socket retried at once, forever: 100% CPU, and new clients hung.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct AcceptBackoffTests {
    /// CPU time (user + system) of a process so far, from /proc/PID/stat.
    static func cpuTime(pid: Int32) throws -> Duration {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command (which is in parentheses and may hold spaces): state is field 3, utime 14, stime 15.
        guard let afterCommand = stat.range(of: ")", options: .backwards)?.upperBound else { throw TestSetupError("bad stat: \(stat)") }
        let fields = stat[afterCommand...].split(separator: " ")
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { throw TestSetupError("bad stat: \(stat)") }
        let ticksPerSecond = sysconf(Int32(_SC_CLK_TCK))
        return .milliseconds((user + system) * 1000 / ticksPerSecond)
    }

    @Test func acceptAtTheDescriptorLimitBacksOffAndRecovers() async throws {
        let bridge = try await LimitedBridgeProcess(fileDescriptorLimit: 64, configuration: """
            server: {host: 127.0.0.1, port: 0, threads: 2}
            routes:
              - path: /in
                topic: \(uniqueTopic("fd-limit"))
                bootstrap_servers: [\(try TestBroker.bootstrapServers)]
            """)
        var clients: [RawConnection] = []
        for _ in 0..<100 { clients.append(try RawConnection(port: bridge.port, receiveTimeout: .seconds(5))) }
        try await Task.sleep(for: .milliseconds(500))
        let before = try Self.cpuTime(pid: bridge.pid)
        try await Task.sleep(for: .seconds(2))
        let used = try Self.cpuTime(pid: bridge.pid) - before
        // Spinning on EMFILE burns a whole core (2 s here); backing off uses next to nothing.
        #expect(used < .milliseconds(300), "kbridge used \(used) of CPU in 2 s at its descriptor limit")
        #expect(bridge.stderr.contains("accept failed"), "\(bridge.stderr.suffix(2000))")

        clients.removeAll()  // closes them
        let fresh = try RawConnection(port: bridge.port, receiveTimeout: .seconds(10))
        let start = ContinuousClock.now
        fresh.send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let answer = fresh.receiveToClose().text
        #expect(answer.hasPrefix("HTTP/1.1 "), "no answer after the clients left: \(answer.prefix(200))")
        #expect(ContinuousClock.now - start < .seconds(5))
        bridge.stop()
    }
}

/// A `kbridge` process started through `bash -c "ulimit -n N; exec kbridge FILE"`.
final class LimitedBridgeProcess: Sendable {
    let process: Process
    let port: Int
    let output = BridgeProcess.Output()
    var stderr: String { output.value }
    var pid: Int32 { process.processIdentifier }

    init(fileDescriptorLimit: Int, configuration: String) async throws {
        let binary = ProcessInfo.processInfo.environment["KBRIDGE_BINARY"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/kbridge").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestSetupError("no kbridge binary at \(binary): run `swift build` first (scripts/test does)")
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-\(UUID().uuidString).yaml")
        try configuration.write(to: file, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", "ulimit -n \(fileDescriptorLimit) && exec \"$0\" \"$1\"", binary, file.path]
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        let output = self.output
        pipe.fileHandleForReading.readabilityHandler = { handle in output.append(handle.availableData) }
        try process.run()
        self.process = process
        var port: Int?
        let deadline = ContinuousClock.now + .seconds(20)
        while port == nil, ContinuousClock.now < deadline, process.isRunning {
            let text = output.value
            port = text.range(of: #"address=127\.0\.0\.1:(\d+)"#, options: .regularExpression)
                .flatMap { Int(text[$0].split(separator: ":").last!) }
            if port == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        guard let port else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            throw TestSetupError("kbridge did not start: \(output.value)")
        }
        self.port = port
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    deinit { stop() }
}
