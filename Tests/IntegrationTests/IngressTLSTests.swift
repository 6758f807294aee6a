import AsyncHTTPClient
import Bridge
import Foundation
import Kafka
import NIOCore
import NIOHTTP1
import NIOSSL
import TestSupport
import Testing

/// `server.tls`: HTTPS on the listener, client certificates (mTLS) and what routes and workflows learn of them, the
/// handshake timeout and certificate reloading; real handshakes against a real bridge and the test broker.
@Suite(.timeLimit(.minutes(3)))
struct IngressTLSTests {
    /// Test-only certificates (Tests/BridgeTests/TestPKI/README.md, `ingress/`).
    static let pki = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("BridgeTests/TestPKI/ingress").path

    /// `server.tls` (its keys indented under `tls:`) with the test server certificate.
    static func tlsSection(_ extra: String = "") -> String {
        """
        server:
          tls:
            certificate_file: \(pki)/server.crt
            key_file: \(pki)/server.key
        \(extra.split(separator: "\n").map { "    \($0)" }.joined(separator: "\n"))
        """
    }

    /// An HTTPS client trusting the test CA, presenting `clientCertificate` (a name in the PKI) when given.
    static func client(certificate: String? = nil, maximumVersion: TLSVersion? = nil) throws -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile("\(pki)/ca.crt"))
        if let maximumVersion { tls.maximumTLSVersion = maximumVersion }
        if let certificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile("\(pki)/\(certificate).crt").map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: "\(pki)/\(certificate).key", format: .pem))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.connectionPool = .init(idleTimeout: .seconds(1), concurrentHTTP1ConnectionsPerHostSoftLimit: 1)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Runs `body` with an HTTPS client, shutting the client down afterwards.
    @discardableResult
    static func withClient<T>(certificate: String? = nil, _ body: (HTTPClient) async throws -> T) async throws -> T {
        let client = try client(certificate: certificate)
        do {
            let result = try await body(client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    static func post(_ client: HTTPClient, _ url: String, body: String, headers: [(String, String)] = []) async throws -> TestResponse {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return TestResponse(status: response.status, headers: response.headers, body: String(buffer: bytes))
    }

    static func get(_ client: HTTPClient, _ url: String) async throws -> TestResponse {
        let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return TestResponse(status: response.status, headers: response.headers, body: String(buffer: bytes))
    }

    /// The base URL as HTTPS (`withYAMLBridge` gives `http://127.0.0.1:port`).
    static func https(_ base: String) -> String { base.replacingOccurrences(of: "http://", with: "https://") }

    /// `openssl s_client` against the bridge (nothing sent; it connects, handshakes and leaves); its exit status and output.
    static func openssl(port: Int, _ arguments: [String]) async throws -> ProcessOutput {
        try await runProcess("openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost",
                                         "-CAfile", "\(pki)/ca.crt", "-verify_return_error"] + arguments, timeout: .seconds(60))
    }

    static func headerValues(_ message: KafkaConsumedMessage, _ name: String) -> [String] {
        message.headers.filter { $0.name == name }.map { String(decoding: $0.value ?? [], as: UTF8.self) }
    }

    @Test func tlsProduceAndConsume() async throws {
        let topic = uniqueTopic("tls")
        let yaml = Self.tlsSection() + """

        routes:
          - path: /events
            topic: \(topic)
            producer_async: false
            bootstrap_servers: BROKER
        """
        try await withYAMLBridge(yaml) { base, bridge in
            try await Self.withClient { client in
                let answer = try await Self.post(client, "\(Self.https(base))/events", body: #"{"over":"tls"}"#,
                                                 headers: [("content-type", "application/json")])
                #expect(answer.status == .ok, "\(answer.body)")
            }
            // Plain HTTP on the TLS port gets no HTTP answer.
            await #expect(throws: (any Error).self) { try await request("\(base)/events", body: "plain") }
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        #expect((message.json["body_args"] as? [String: Any])?["over"] as? String == "tls")
    }

    @Test func tls13MinimumRefusesATLS12Client() async throws {
        let yaml = Self.tlsSection("minimum_version: \"1.3\"") + """

        routes: [{path: /events, topic: \(uniqueTopic("tls13")), bootstrap_servers: BROKER}]
        """
        try await withYAMLBridge(yaml) { base, bridge in
            let old = try await Self.openssl(port: bridge.port, ["-tls1_2"])
            #expect(old.status != 0, "\(old.stdoutText)")
            #expect(old.stderrText.contains("protocol version") || old.stdoutText.contains("protocol version"), "\(old.stderrText)")
            let current = try await Self.openssl(port: bridge.port, ["-tls1_3"])
            #expect(current.status == 0, "\(current.stderrText)")
            #expect(current.stdoutText.contains("TLSv1.3"), "\(current.stdoutText)")
            // The same through an HTTPS client limited to TLS 1.2.
            let client = try Self.client(maximumVersion: .tlsv12)
            await #expect(throws: (any Error).self) { try await Self.get(client, "\(Self.https(base))/health") }
            try await client.shutdown()
        }
        // And a TLS 1.2 client is served when the minimum is the default.
        try await withYAMLBridge(Self.tlsSection() + "\nroutes: [{path: /e, topic: t, bootstrap_servers: BROKER}]") { _, bridge in
            let old = try await Self.openssl(port: bridge.port, ["-tls1_2"])
            #expect(old.status == 0, "\(old.stderrText)")
        }
    }

    @Test func requiredClientCertificatesIdentifyTheClient() async throws {
        let topic = uniqueTopic("mtls")
        let yaml = Self.tlsSection("client_certificate: required\nclient_ca_file: \(Self.pki)/ca.crt") + """

        routes:
          - path: /events
            topic: \(topic)
            producer_async: false
            bootstrap_servers: BROKER
            client_certificate_header: x-client-subject
        """
        try await withYAMLBridge(yaml) { base, bridge in
            let url = "\(Self.https(base))/events"
            try await Self.withClient(certificate: "client") { client in
                let answer = try await Self.post(client, url, body: "with a certificate", headers: [("content-type", "text/plain")])
                #expect(answer.status == .ok, "\(answer.body)")
            }
            for refused in [nil, "other-client", "expired-client"] {
                try await Self.withClient(certificate: refused) { client in
                    await #expect(throws: (any Error).self, "client certificate \(refused ?? "none")") {
                        try await Self.post(client, url, body: "refused")
                    }
                }
            }
            // openssl without a certificate: the server refuses the handshake (TLS 1.3 says so after it, on the first read).
            let anonymous = try await Self.openssl(port: bridge.port, ["-tls1_2"])
            #expect(anonymous.status != 0, "\(anonymous.stdoutText)")
            try await Self.withClient(certificate: "client") { client in
                let metrics = try await Self.get(client, "\(Self.https(base))/metrics")
                let line = metrics.body.split(separator: "\n").first { $0.hasPrefix("kbridge_connections_closed_total{reason=\"tls_handshake_failed\"}") }
                let failed = line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
                #expect(failed >= 3, "\(line ?? "no tls_handshake_failed line")")
            }
        }
        let messages = try await readTopic(topic, minimumCount: 1)
        #expect(messages.count == 1)
        let message = try #require(messages.first)
        #expect(Self.headerValues(message, "x-client-subject") == ["CN=ingest-client,OU=Ingest,O=Example Corp,C=DE"])
        #expect(String(decoding: message.value, as: UTF8.self).contains("with a certificate"))
    }

    @Test func optionalClientCertificatesServeAnonymousClients() async throws {
        let topic = uniqueTopic("mtls-optional")
        let yaml = Self.tlsSection("client_certificate: optional\nclient_ca_file: \(Self.pki)/ca.crt") + """

        routes:
          - path: /events
            topic: \(topic)
            producer_async: false
            bootstrap_servers: BROKER
            client_certificate_header: x-client-subject
        """
        try await withYAMLBridge(yaml) { base, _ in
            let url = "\(Self.https(base))/events"
            try await Self.withClient { client in
                let answer = try await Self.post(client, url, body: "anonymous", headers: [("content-type", "text/plain")])
                #expect(answer.status == .ok, "\(answer.body)")
            }
            try await Self.withClient(certificate: "client") { client in
                let answer = try await Self.post(client, url, body: "identified", headers: [("content-type", "text/plain")])
                #expect(answer.status == .ok, "\(answer.body)")
            }
            // A certificate that the CA did not issue is refused even though certificates are optional.
            try await Self.withClient(certificate: "other-client") { client in
                await #expect(throws: (any Error).self) { try await Self.post(client, url, body: "intruder") }
            }
        }
        let messages = try await readTopic(topic, minimumCount: 2)
        let byBody = Dictionary(messages.map { (String(decoding: $0.value, as: UTF8.self).contains("anonymous") ? "anonymous" : "identified", $0) },
                                uniquingKeysWith: { first, _ in first })
        #expect(messages.count == 2)
        #expect(Self.headerValues(try #require(byBody["anonymous"]), "x-client-subject") == [])
        #expect(Self.headerValues(try #require(byBody["identified"]), "x-client-subject") == ["CN=ingest-client,OU=Ingest,O=Example Corp,C=DE"])
    }

    @Test func aWorkflowReadsTheClientCertificate() async throws {
        let topic = uniqueTopic("mtls-workflow")
        let yaml = Self.tlsSection("client_certificate: required\nclient_ca_file: \(Self.pki)/ca.crt") + """

        routes:
          - path: /events
            topic: \(topic)
            producer_async: false
            bootstrap_servers: BROKER
            workflow:
              nodes:
                - {name: SUBJECT, type: property, property: client.certificate.subject}
                - {name: SANS, type: property, property: client.certificate.sans}
                - name: HEADERS
                  type: jq
                  inputs: {subject: SUBJECT, sans: SANS, scheme: request.scheme}
                  jq: '{"x-subject": .subject, "x-sans": .sans, "x-scheme": .scheme}'
                  output: SET_HEADERS
                - {name: SET_HEADERS, type: property, property: kafka.headers}
        """
        try await withYAMLBridge(yaml) { base, _ in
            try await Self.withClient(certificate: "client") { client in
                let answer = try await Self.post(client, "\(Self.https(base))/events", body: "x")
                #expect(answer.status == .ok, "\(answer.body)")
            }
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        #expect(Self.headerValues(message, "x-subject") == ["CN=ingest-client,OU=Ingest,O=Example Corp,C=DE"])
        #expect(Self.headerValues(message, "x-sans") == [
            "DNS:client.example.com", "IP:10.0.0.7", "email:ops@example.com", "URI:spiffe://example.com/ingest",
        ])
        #expect(Self.headerValues(message, "x-scheme") == ["https"])
    }

    @Test func aSilentClientIsClosedAtTheHandshakeTimeout() async throws {
        let yaml = Self.tlsSection("handshake_timeout: 500") + "\nroutes: [{path: /e, topic: t, bootstrap_servers: BROKER}]"
        try await withYAMLBridge(yaml) { _, bridge in
            let port = bridge.port
            let (closed, waited) = try await onOwnThread { () -> (Bool, Duration) in
                let connection = try RawConnection(port: port, receiveTimeout: .seconds(30))
                let start = ContinuousClock.now
                let result = connection.receiveToClose()
                return (result.closed, .now - start)
            }
            #expect(closed)
            // idle_timeout (60 s) would close it too, much later.
            #expect(waited < .seconds(20), "\(waited)")
        }
    }

    @Test func certificatesAreReloadedForNewConnections() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-reload-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func install(_ name: String) throws {
            for suffix in ["crt", "key"] {
                let target = "\(directory)/server.\(suffix)"
                try? FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: "\(Self.pki)/\(name).\(suffix)", toPath: target)
            }
        }
        try install("server")
        let yaml = """
        server:
          tls: {certificate_file: \(directory)/server.crt, key_file: \(directory)/server.key}
        routes: [{path: /e, topic: t, bootstrap_servers: BROKER}]
        """
        try await withYAMLBridge(yaml) { _, bridge in
            func serverSubject() async throws -> String {
                let output = try await Self.openssl(port: bridge.port, [])
                return output.stdoutText.split(separator: "\n").first { $0.hasPrefix("subject=") }.map(String.init) ?? output.stderrText
            }
            #expect(try await serverSubject() == "subject=CN = localhost")
            try install("server2")
            #expect(try await serverSubject() == "subject=CN = localhost", "nothing changes before the reload")
            #expect(try bridge.reloadCertificates())
            #expect(try await serverSubject() == "subject=CN = localhost, O = Reloaded")
            // A broken key: the reload fails, saying why, and the certificates in use stay.
            try "broken".write(toFile: "\(directory)/server.key", atomically: true, encoding: .utf8)
            #expect { try bridge.reloadCertificates() } throws: { "\($0)".contains("server.tls.key_file: \(directory)/server.key is not an unencrypted PEM private key") }
            #expect(try await serverSubject() == "subject=CN = localhost, O = Reloaded")
        }
    }

    @Test func sighupReloadsTheCertificatesOfTheRunningBinary() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-sighup-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func install(_ name: String) throws {
            for suffix in ["crt", "key"] {
                let target = "\(directory)/server.\(suffix)"
                try? FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: "\(Self.pki)/\(name).\(suffix)", toPath: target)
            }
        }
        try install("server")
        let bridge = try await BridgeProcess(configuration: """
        server:
          host: 127.0.0.1
          port: 0
          tls: {certificate_file: \(directory)/server.crt, key_file: \(directory)/server.key}
        routes: [{path: /e, topic: t, bootstrap_servers: \(try TestBroker.bootstrapServers)}]
        """)
        defer { bridge.stop() }
        func serverSubject() async throws -> String {
            let output = try await Self.openssl(port: bridge.port, [])
            return output.stdoutText.split(separator: "\n").first { $0.hasPrefix("subject=") }.map(String.init) ?? output.stderrText
        }
        #expect(try await serverSubject() == "subject=CN = localhost")
        try install("server2")
        kill(bridge.pid, SIGHUP)
        var subject = try await serverSubject()
        let deadline = ContinuousClock.now + .seconds(20)
        while subject != "subject=CN = localhost, O = Reloaded", ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            subject = try await serverSubject()
        }
        #expect(subject == "subject=CN = localhost, O = Reloaded", "\(bridge.stderr)")
        #expect(bridge.stderr.contains("configuration reloaded"))
        // A broken key: logged, the process keeps running with the certificates it has.
        try "broken".write(toFile: "\(directory)/server.key", atomically: true, encoding: .utf8)
        kill(bridge.pid, SIGHUP)
        let logged = try await eventually(timeout: .seconds(20)) { bridge.stderr.contains("configuration reload refused") }
        #expect(logged, "\(bridge.stderr)")
        #expect(bridge.stderr.contains("server.tls.key_file: \(directory)/server.key is not an unencrypted PEM private key"))
        #expect(try await serverSubject() == "subject=CN = localhost, O = Reloaded")
        #expect(try await bridge.terminate() == 0)
    }
}
