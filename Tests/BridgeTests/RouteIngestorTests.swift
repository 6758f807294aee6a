import Kafka
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Synchronization
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

/// `error_handling.return_error_message` at the edge: the generic answer, and the detail in the log only.
@Suite struct ErrorMessageTests {
    /// Keeps every log line, for the assertions.
    struct CapturingLogHandler: LogHandler {
        final class Lines: Sendable {
            let lines = Mutex<[String]>([])
        }
        let captured: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            captured.lines.withLock { $0.append("\(event.message) \(fields)") }
        }
    }

    func answer(returnErrorMessage: Bool, requests: Int = 1) async throws -> (body: String, log: [String]) {
        let cluster = try KafkaMockCluster()
        let producer = try KafkaProducer(properties: ["bootstrap.servers": cluster.bootstrapServers], logger: Logger(label: "test"))
        await producer.close(flushTimeout: .zero)
        var route = RouteConfiguration(path: "/in", topic: "t", kafka: KafkaSettings(bootstrapServers: []))
        route.returnErrorMessage = returnErrorMessage
        let lines = CapturingLogHandler.Lines()
        let logger = Logger(label: "test") { _ in CapturingLogHandler(captured: lines) }
        let ingestor = RouteIngestor(route: route, pattern: try RoutePattern(parsing: "/in"), producer: producer, logger: logger)
        var body = ""
        for _ in 0..<requests {
            let request = IngestRequest(method: .POST, uri: "/in", headers: ["content-type": "text/plain"], body: ByteBuffer(string: "late"))
            guard case .immediate(let response) = ingestor.ingest(request, match: RouteTable.Match(ingestor: ingestor), eventLoop: EmbeddedEventLoop()) else {
                Issue.record("expected an immediate answer")
                break
            }
            #expect(response.status == .serviceUnavailable)
            body = String(buffer: response.body)
        }
        return (body, lines.lines.withLock { $0 })
    }

    @Test func byDefaultTheAnswerIsGenericAndTheDetailIsLogged() async throws {
        let (body, log) = try await answer(returnErrorMessage: false)
        #expect(body == #"{"message":"kbridge is shutting down","code":"shutting_down"}"#)
        #expect(log.count == 1)
        #expect(log.first?.contains("code=shutting_down") == true, "\(log)")
        #expect(log.first?.contains("detail=") == true, "\(log)")
    }

    @Test func withReturnErrorMessageTheAnswerCarriesTheDetailAndNothingIsLogged() async throws {
        let (body, log) = try await answer(returnErrorMessage: true)
        #expect(body.contains(#""code":"shutting_down""#))
        #expect(body != #"{"message":"kbridge is shutting down","code":"shutting_down"}"#, "\(body)")
        #expect(log.isEmpty, "\(log)")
    }

    /// An outage refuses every request: one log line per code and second, not one per request.
    @Test func theDetailIsLoggedOncePerCodeAndInterval() async throws {
        let (_, log) = try await answer(returnErrorMessage: false, requests: 1000)
        #expect(log.count <= 3, "\(log.count) lines")
    }
}
