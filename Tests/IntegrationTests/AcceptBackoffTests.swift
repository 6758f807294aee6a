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
        let bridge = try await BridgeProcess(configuration: """
            server: {host: 127.0.0.1, port: 0, threads: 2}
            routes:
              - path: /in
                topic: \(uniqueTopic("fd-limit"))
                bootstrap_servers: [\(try TestBroker.bootstrapServers)]
            """, fileDescriptorLimit: 64)
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
