import Kafka
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import Bridge

/// The ingest step on its own, where a whole server cannot reach the case.
@Suite struct RouteIngestorTests {
    /// A request that reaches its producer after the producer began closing (the bridge is shutting down) gets
    /// 503 `shutting_down` with `Retry-After`, not a generic failure.
    @Test func aRequestAfterTheProducerClosedIsAnsweredShuttingDown() async throws {
        let cluster = try KafkaMockCluster()
        let producer = try KafkaProducer(properties: ["bootstrap.servers": cluster.bootstrapServers], logger: Logger(label: "test"))
        await producer.close(flushTimeout: .zero)
        let route = RouteConfiguration(path: "/in", topic: "t", kafka: KafkaSettings(bootstrapServers: []))
        let ingestor = RouteIngestor(route: route, pattern: try RoutePattern(parsing: "/in"), producer: producer)
        let request = IngestRequest(method: .POST, uri: "/in", headers: ["content-type": "text/plain"], body: ByteBuffer(string: "late"))
        let outcome = ingestor.ingest(request, match: RouteTable.Match(ingestor: ingestor), eventLoop: EmbeddedEventLoop())
        guard case .immediate(let response) = outcome else {
            Issue.record("expected an immediate answer")
            return
        }
        #expect(response.status == .serviceUnavailable)
        #expect(String(buffer: response.body).contains(#""code":"shutting_down""#))
        #expect(response.headers.contains { $0.0 == "retry-after" && $0.1 == "1" })
    }
}
