import AsyncHTTPClient
import Bridge
import Foundation
import Kafka
import NIOCore
import NIOHTTP1
import NIOSSL
import TestSupport
import Testing

/// HTTP/2 over TLS (`server.tls.alpn: [h2, http/1.1]`): the same routes, limits and answers as HTTP/1.1, many requests
/// on one connection, each message read back from the broker.
@Suite(.timeLimit(.minutes(3)))
struct HTTP2Tests {
    static func yaml(topic: String, readTimeout: Int = 30000) -> String {
        """
        server:
          request_read_timeout: \(readTimeout)
          tls:
            certificate_file: \(IngressTLSTests.pki)/server.crt
            key_file: \(IngressTLSTests.pki)/server.key
            alpn: [h2, http/1.1]
        routes:
          - path: /events
            topic: \(topic)
            bootstrap_servers: BROKER
            max_body_size: 1000
          - path: /sync
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async: false
            client_authentication:
              api_key:
                keys: [{consumer: alice, key: alice-key-0123456789abcdef}]
        """
    }

    /// An HTTPS client trusting the test CA that speaks HTTP/2 (`.automatic`) or only HTTP/1.1.
    static func withClient(http1Only: Bool = false, _ body: (HTTPClient) async throws -> Void) async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile("\(IngressTLSTests.pki)/ca.crt"))
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.httpVersion = http1Only ? .http1Only : .automatic
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            try await body(client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    static func send(
        _ client: HTTPClient, _ url: String, method: HTTPMethod = .POST, body: String? = nil, headers: [(String, String)] = []
    ) async throws -> (response: TestResponse, version: HTTPVersion) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "content-type", value: "text/plain")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (TestResponse(status: response.status, headers: response.headers, body: String(buffer: bytes)), response.version)
    }

    @Test func routesAnswerOverHTTP2WithTheSameLimitsAndAnswers() async throws {
        let topic = uniqueTopic("h2")
        try await withYAMLBridge(Self.yaml(topic: topic)) { base, bridge in
            let url = IngressTLSTests.https(base)
            try await Self.withClient { client in
                let first = try await Self.send(client, url + "/events", body: "h2-first")
                #expect(first.version == .http2)
                #expect(first.response.status == .ok, "\(first.response.body)")
                #expect(first.response.body == #"{"message":"message sent"}"#)
                #expect(first.response.headers["x-request-id"].count == 1)

                // Many streams at once on the connection.
                let statuses = try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                    for index in 0..<200 {
                        group.addTask { try await Self.send(client, url + "/events", body: "h2-\(index)").response.status }
                    }
                    return try await group.reduce(into: [HTTPResponseStatus]()) { $0.append($1) }
                }
                #expect(statuses.count == 200 && statuses.allSatisfy { $0 == .ok }, "\(statuses.filter { $0 != .ok })")

                let tooLarge = try await Self.send(client, url + "/events", body: String(repeating: "x", count: 5000))
                #expect(tooLarge.response.status == .payloadTooLarge)
                #expect(tooLarge.response.json["code"] as? String == "payload_too_large", "\(tooLarge.response.body)")
                let unknown = try await Self.send(client, url + "/nowhere", body: "x")
                #expect(unknown.response.status == .notFound)
                let wrongMethod = try await Self.send(client, url + "/events", method: .GET)
                #expect(wrongMethod.response.status == .methodNotAllowed)
                let refused = try await Self.send(client, url + "/sync", body: "no key")
                #expect(refused.response.status == .unauthorized)
                let synced = try await Self.send(client, url + "/sync", body: "h2-sync", headers: [("apikey", "alice-key-0123456789abcdef")])
                #expect(synced.response.status == .ok, "\(synced.response.body)")
                #expect(synced.response.json["offset"] != nil, "\(synced.response.body)")
                let health = try await Self.send(client, url + "/health", method: .GET)
                #expect(health.response.status == .ok && health.version == .http2)

                // The connection survived the refusals: all of it went over one connection.
                let metrics = try await Self.send(client, url + "/metrics", method: .GET).response.body
                #expect(metrics.contains("kbridge_connections_accepted_total 1\n"), "\(metrics)")
            }
            // An HTTP/1.1-only client on the same listener.
            try await Self.withClient(http1Only: true) { client in
                let answer = try await Self.send(client, url + "/events", body: "h1")
                #expect(answer.version == .http1_1 && answer.response.status == .ok)
            }
            let bodies = try await readTopic(topic, minimumCount: 204).compactMap { $0.json["body"] as? String }
            #expect(Set(bodies) == Set(["h2-first", "h2-sync", "h1"] + (0..<200).map { "h2-\($0)" }))
            _ = bridge
        }
    }

    /// A stream whose body stops arriving gets 408 after `request_read_timeout`; the connection goes on.
    @Test func aStalledStreamIsAnswered408() async throws {
        let topic = uniqueTopic("h2-stall")
        try await withYAMLBridge(Self.yaml(topic: topic, readTimeout: 1000)) { base, _ in
            let url = IngressTLSTests.https(base)
            try await Self.withClient { client in
                var request = HTTPClientRequest(url: url + "/events")
                request.method = .POST
                request.headers.add(name: "content-type", value: "text/plain")
                let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
                continuation.yield(ByteBuffer(string: "part"))
                request.body = .stream(stream, length: .known(Int64(100)))
                let started = ContinuousClock.now
                let response = try await client.execute(request, timeout: .seconds(30))
                continuation.finish()
                #expect(response.status == .requestTimeout)
                #expect(ContinuousClock.now - started < .seconds(20))
                _ = try? await response.body.collect(upTo: 1 << 16)
                let after = try await Self.send(client, url + "/events", body: "after")
                #expect(after.response.status == .ok && after.version == .http2)
            }
        }
    }
}
