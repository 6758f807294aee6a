import Foundation
import Kafka
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The mock cluster's fault injection must not be able to end the process: librdkafka listens again on a downed
/// broker's port when it comes up, and aborts if another socket took the port meanwhile (it happened in a test run).
@Suite struct KafkaMockClusterTests {
    /// Whether a socket without `SO_REUSEADDR` can bind `port` on loopback now.
    static func canBind(_ port: UInt16) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    @Test func aDownedBrokersPortIsHeldUntilItComesUp() async throws {
        let cluster = try KafkaMockCluster()
        let port = try #require(cluster.bootstrapServers.split(separator: ":").last.flatMap { UInt16($0) })
        cluster.setBrokerDown(1)
        #expect(!Self.canBind(port), "the downed broker's port is free for any socket to take")
        cluster.setBrokerUp(1)
        let producer = try KafkaProducer(properties: ["bootstrap.servers": cluster.bootstrapServers, "linger.ms": "0"], logger: testLogger)
        let report = try await producer.sendAndAwait(topic: "after-up", key: nil, value: Array("v".utf8))
        #expect(report.offset >= 0)
        #expect(await producer.close(flushTimeout: .seconds(5)) == 0)
    }
}
