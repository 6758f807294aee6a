import Foundation
import Kafka
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import TestSupport
import Testing

@testable import Bridge

/// `server.request_id_header`, `server.access_log` and `trace_context_headers`, through the real broker.
@Suite struct RequestTrackingTests {
    static let traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    static func recordHeader(_ message: KafkaConsumedMessage, _ name: String) -> String? {
        message.headers.first { $0.name == name }.map { String(decoding: $0.value ?? [], as: UTF8.self) }
    }

    @Test func requestIDsAreKeptOrMadeReturnedAndForwarded() async throws {
        let topic = uniqueTopic("request-id")
        let yaml = """
        defaults: {bootstrap_servers: [BROKER]}
        routes:
          - {path: /events, topic: \(topic), producer_async: false, forward_headers: true,
             headers: {forward_http_headers_as_record_headers: true, include_headers: [x-request-id]}}
        """
        var made: String?
        try await withYAMLBridge(yaml) { base, _ in
            let kept = try await request("\(base)/events", body: "kept", headers: [("content-type", "text/plain"), ("X-Request-Id", "client-id-42")])
            #expect(kept.status == .ok)
            #expect(kept.headers["x-request-id"] == ["client-id-42"])
            let generated = try await request("\(base)/events", body: "made", headers: [("content-type", "text/plain")])
            made = generated.headers.first(name: "x-request-id")
            #expect(made?.wholeMatch(of: /[0-9a-f]{32}/) != nil, "\(String(describing: made))")
            // Not visible ASCII, or too long: replaced, never echoed.
            let refused = try await request("\(base)/events", body: "refused", headers: [("content-type", "text/plain"),
                                                                                          ("X-Request-Id", String(repeating: "x", count: 201))])
            #expect(refused.headers.first(name: "x-request-id")?.count == 32)
            // Answers kbridge gives itself carry one too.
            #expect(try await request("\(base)/nowhere", body: "x").headers.first(name: "x-request-id")?.count == 32)
        }
        let messages = try await readTopic(topic, minimumCount: 3)
        let byBody = Dictionary(messages.map { (($0.json["body"] as? String) ?? "", $0) }, uniquingKeysWith: { first, _ in first })
        #expect(Self.recordHeader(try #require(byBody["kept"]), "x-request-id") == "client-id-42")
        #expect(Self.recordHeader(try #require(byBody["made"]), "x-request-id") == made)
        #expect((byBody["made"]?.json["headers"] as? [String: Any])?["x-request-id"] as? String == made)
    }

    @Test func traceContextGoesOnTheRecord() async throws {
        let topic = uniqueTopic("trace")
        let off = uniqueTopic("trace-off")
        let yaml = """
        defaults: {bootstrap_servers: [BROKER], producer_async: false}
        routes:
          - {path: /traced, topic: \(topic)}
          - {path: /untraced, topic: \(off), trace_context_headers: false}
        """
        try await withYAMLBridge(yaml) { (base: String, _: KafkaBridge) async throws in
            let traced = [("content-type", "text/plain"), ("traceparent", Self.traceParent), ("tracestate", "congo=t61rcWkgMzE")]
            #expect(try await request("\(base)/traced", body: "valid", headers: traced).status == .ok)
            #expect(try await request("\(base)/traced", body: "invalid", headers: [("content-type", "text/plain"),
                                                                                   ("traceparent", "00-zz-00f067aa0ba902b7-01")]).status == .ok)
            #expect(try await request("\(base)/traced", body: "none", headers: [("content-type", "text/plain")]).status == .ok)
            #expect(try await request("\(base)/untraced", body: "off", headers: traced).status == .ok)
        }
        let messages = try await readTopic(topic, minimumCount: 3)
        let byBody = Dictionary(messages.map { (($0.json["body"] as? String) ?? "", $0) }, uniquingKeysWith: { first, _ in first })
        #expect(Self.recordHeader(try #require(byBody["valid"]), "traceparent") == Self.traceParent)
        #expect(Self.recordHeader(try #require(byBody["valid"]), "tracestate") == "congo=t61rcWkgMzE")
        #expect(byBody["invalid"]?.headers.isEmpty == true)
        #expect(byBody["none"]?.headers.isEmpty == true)
        let untraced = try await readTopic(off, minimumCount: 1)
        #expect(untraced.first?.headers.isEmpty == true)
    }

    @Test func theAccessLogHasALinePerRequest() async throws {
        let lines = Mutex<[String]>([])
        let output = JSONLogHandler.Output { line in lines.withLock { $0.append(String(buffer: line)) } }
        var logger = Logger(label: "kbridge") { JSONLogHandler(label: $0, output: output) }
        logger.logLevel = .info
        let yaml = "server: {access_log: true}\ndefaults: {bootstrap_servers: [BROKER]}\nroutes:\n  - {path: /events, topic: \(uniqueTopic("access")), name: events}\n"
        var configuration = try BridgeConfiguration.parse(yaml: yaml.replacingOccurrences(of: "BROKER", with: try TestBroker.bootstrapServers),
                                                          file: "test.yaml").configuration
        configuration.server.host = "127.0.0.1"
        configuration.server.port = 0
        let bridge = try await KafkaBridge.start(configuration: configuration, logger: logger)
        let base = "http://127.0.0.1:\(bridge.port)"
        let answer = try await request("\(base)/events?x=1", body: "12345", headers: [("content-type", "text/plain"), ("X-Request-Id", "r-1")])
        _ = try await request("\(base)/nowhere", body: "x")
        await bridge.shutdown()
        #expect(answer.status == .ok)
        let entries = lines.withLock { $0 }.compactMap { line -> [String: Any]? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], object["message"] as? String == "request"
            else { return nil }
            return object["metadata"] as? [String: Any]
        }
        #expect(entries.count == 2, "\(lines.withLock { $0 })")
        let first = try #require(entries.first)
        #expect(first["method"] as? String == "POST" && first["path"] as? String == "/events" && first["route"] as? String == "events")
        #expect(first["status"] as? String == "200" && first["bytes_in"] as? String == "5" && first["request_id"] as? String == "r-1")
        #expect(Double(first["duration_ms"] as? String ?? "") != nil && first["client"] as? String == "127.0.0.1")
        #expect(entries.last?["status"] as? String == "404" && entries.last?["code"] as? String == "route_not_found")
    }
}
