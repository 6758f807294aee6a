import Foundation
import Kafka

/// Helpers shared by the test targets.

/// Reads a topic on a thread of its own: the reader blocks, and the cooperative pool must stay free.
public func readTopic(
    _ topic: String, bootstrapServers: String, minimumCount: Int = 0, timeout: Duration = .seconds(20)
) async throws -> [KafkaConsumedMessage] {
    try await readTopic(topic, properties: ["bootstrap.servers": bootstrapServers], minimumCount: minimumCount, timeout: timeout)
}

/// Reads a topic with any client properties (a secured cluster needs its `security.*`, `sasl.*`, `ssl.*`).
public func readTopic(
    _ topic: String, properties: [String: String], minimumCount: Int = 0, timeout: Duration = .seconds(20)
) async throws -> [KafkaConsumedMessage] {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            do {
                let reader = try KafkaTopicReader(properties: properties)
                continuation.resume(returning: try reader.read(topic: topic, minimumCount: minimumCount, timeout: timeout))
            } catch {
                continuation.resume(throwing: error)
            }
        }.start()
    }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
public func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return condition()
}

/// A topic name no other test uses.
public func uniqueTopic(_ prefix: String = "t") -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }

/// SplitMix64: a deterministic generator, so that property tests generate the same cases on every run.
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`.
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    public mutating func pick<T>(_ options: [T]) -> T { options[below(options.count)] }
}

/// A loopback port nothing listens on, chosen below Linux's ephemeral range (32768 and up): no outgoing connection and
/// no `port: 0` listener of another test can be given it between this check and its use. For servers a test starts,
/// or restarts, on a port it names (a port from the ephemeral range, once released, was taken that way in CI).
public func unusedLoopbackPort() throws -> Int {
    for _ in 0..<200 {
        let port = Int.random(in: 20_000..<32_000)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw PortError(description: "socket() failed: errno \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound == 0 { return port }
    }
    throw PortError(description: "no unused loopback port in 20000..<32000")
}

private struct PortError: Error, CustomStringConvertible {
    var description: String
}
