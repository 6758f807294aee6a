import AsyncHTTPClient
import Bridge
import Foundation
import Kafka
import Logging
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

/// The loopback broker that `scripts/test` starts. Without it the tests fail: they never skip.
enum TestBroker {
    static var bootstrapServers: String {
        get throws {
            guard let value = ProcessInfo.processInfo.environment["KBRIDGE_TEST_BOOTSTRAP"], !value.isEmpty else {
                throw TestSetupError("KBRIDGE_TEST_BOOTSTRAP is not set: run the tests with scripts/test, which starts the test broker")
            }
            return value
        }
    }

    static var address: BrokerAddress {
        get throws {
            guard let address = BrokerAddress.list(try bootstrapServers).first else {
                throw TestSetupError("KBRIDGE_TEST_BOOTSTRAP is not host:port")
            }
            return address
        }
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

let testLogger: Logger = {
    var logger = Logger(label: "kbridge-test")
    logger.logLevel = .warning
    return logger
}()

/// A route on the test broker with Kong's defaults, quick to give up when the broker is unreachable.
func testRoute(path: String, topic: String?, async: Bool, broker: BrokerAddress? = nil) throws -> RouteConfiguration {
    var route = RouteConfiguration(path: path, topic: topic, kafka: KafkaSettings(bootstrapServers: [try broker ?? TestBroker.address]))
    route.kafka.async = async
    route.kafka.asyncFlushTimeout = 5
    return route
}

/// Starts a real bridge on a free loopback port, runs `body` with its base URL, then shuts it down.
func withBridge<T>(_ routes: [RouteConfiguration], _ body: (String, KafkaBridge) async throws -> T) async throws -> T {
    try await withBridge(configuration: BridgeConfiguration(routes: routes), body)
}

/// Starts a real bridge with `configuration` on a free loopback port, runs `body` with its base URL, then shuts it down.
/// Starts a bridge from YAML text (`BROKER` filled in with the test broker), as `kbridge` reads its file.
func withYAMLBridge<T>(_ yaml: String, environment: [String: String] = [:], _ body: (String, KafkaBridge) async throws -> T) async throws -> T {
    let text = yaml.replacingOccurrences(of: "BROKER", with: try TestBroker.bootstrapServers)
    let configuration = try BridgeConfiguration.parse(yaml: text, file: "test.yaml", environment: environment).configuration
    return try await withBridge(configuration: configuration, body)
}

func withBridge<T>(configuration: BridgeConfiguration, _ body: (String, KafkaBridge) async throws -> T) async throws -> T {
    var configuration = configuration
    configuration.server.host = "127.0.0.1"
    configuration.server.port = 0
    configuration.server.threads = 2
    configuration.server.shutdownTimeout = .seconds(10)
    let bridge = try await KafkaBridge.start(configuration: configuration, logger: testLogger)
    do {
        let result = try await body("http://127.0.0.1:\(bridge.port)", bridge)
        await bridge.shutdown()
        return result
    } catch {
        await bridge.shutdown()
        throw error
    }
}

struct TestResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: String
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
}

func request(
    _ url: String, method: HTTPMethod = .POST, body: String? = nil, headers: [(String, String)] = [],
    timeout: Duration = .seconds(30)
) async throws -> TestResponse {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body { request.body = .bytes(ByteBuffer(string: body)) }
    let response = try await HTTPClient.shared.execute(request, timeout: .init(timeout))
    let bytes = try await response.body.collect(upTo: 1 << 20)
    return TestResponse(status: response.status, headers: response.headers, body: String(buffer: bytes))
}

/// Reads a topic on a thread of its own: the reader blocks, and the cooperative pool must stay free.
func readTopic(_ topic: String, minimumCount: Int = 0, timeout: Duration = .seconds(20)) async throws -> [KafkaConsumedMessage] {
    let bootstrapServers = try TestBroker.bootstrapServers
    return try await readTopic(topic, bootstrapServers: bootstrapServers, minimumCount: minimumCount, timeout: timeout)
}

extension KafkaConsumedMessage {
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(value))) as? [String: Any] ?? [:] }
    var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }
}

/// The `kbridge` binary the tests run: `KBRIDGE_BINARY` (set by scripts/test), else the debug build.
func kbridgeBinary() throws -> String {
    let binary = ProcessInfo.processInfo.environment["KBRIDGE_BINARY"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/kbridge").path
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw TestSetupError("no kbridge binary at \(binary): run `swift build` first (scripts/test does)")
    }
    return binary
}

/// Writes `text` to a new file in the temporary directory; returns its path.
func temporaryFile(_ text: String) throws -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-\(UUID().uuidString).yaml")
    try text.write(to: file, atomically: true, encoding: .utf8)
    return file.path
}

/// Runs the `kbridge` binary to completion with `arguments` (on a thread of its own: see ``runProcess``).
func runKBridge(
    _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(60)
) async throws -> (status: Int32, stdout: String, stderr: String) {
    let result = try await runProcess(try kbridgeBinary(), arguments, environment: environment, timeout: timeout)
    return (result.status, result.stdoutText, result.stderrText)
}
