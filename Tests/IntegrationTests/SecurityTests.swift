import Bridge
import Foundation
import Kafka
import NIOHTTP1
import TestSupport
import Testing

/// SASL (PLAIN, SCRAM-SHA-256/512), TLS, mTLS and SASL_SSL through kbridge, each against the loopback broker
/// behind the matching front that `scripts/test` starts, with real handshakes.
@Suite(.timeLimit(.minutes(3)))
struct SecurityTests {
    enum Mode: String {
        case tls = "TLS", mtls = "MTLS", sasl = "SASL", saslSSL = "SASL_SSL"
    }

    static func broker(_ mode: Mode) throws -> BrokerAddress {
        let variable = "KBRIDGE_TEST_\(mode.rawValue)_BOOTSTRAP"
        guard let text = ProcessInfo.processInfo.environment[variable], let address = BrokerAddress.list(text).first else {
            throw TestSetupError("\(variable) is not set: run the tests with scripts/test, which starts the secured brokers")
        }
        return address
    }

    static func certificate(_ name: String) throws -> String {
        guard let directory = ProcessInfo.processInfo.environment["KBRIDGE_TEST_TLS_DIR"] else {
            throw TestSetupError("KBRIDGE_TEST_TLS_DIR is not set: run the tests with scripts/test")
        }
        return "\(directory)/\(name)"
    }

    static func tls(ca: String = "ca.crt", client: String? = nil) throws -> KafkaTLS {
        var tls = KafkaTLS()
        tls.caFile = try certificate(ca)
        if let client {
            tls.clientCertificateFile = try certificate("\(client).crt")
            tls.clientKeyFile = try certificate("\(client).key")
        }
        return tls
    }

    static func sasl(_ mechanism: KafkaAuthentication.Mechanism, _ user: String, _ password: String) -> KafkaAuthentication {
        KafkaAuthentication(mechanism: mechanism, user: Secret(user), password: Secret(password))
    }

    /// A sync route on a secured broker, quick to give up.
    func route(_ mode: Mode, topic: String, authentication: KafkaAuthentication? = nil, tls: KafkaTLS? = nil, async: Bool = false) throws -> RouteConfiguration {
        var route = try testRoute(path: "/in", topic: topic, async: async, broker: try Self.broker(mode))
        route.kafka.authentication = authentication
        route.kafka.tls = tls
        route.kafka.timeout = 3000
        return route
    }

    /// The client properties that reach the secured broker (to read a topic back).
    func readerProperties(_ route: RouteConfiguration) -> [String: String] {
        route.kafka.librdkafkaProperties.filter {
            $0.key == "bootstrap.servers" || $0.key.hasPrefix("security.") || $0.key.hasPrefix("sasl.") || $0.key.contains("ssl")
        }
    }

    /// Posts one message through kbridge; returns the response.
    func post(_ route: RouteConfiguration, body: String) async throws -> TestResponse {
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            try await request("\(base)/in", body: body, headers: [("content-type", "text/plain")])
        }
    }

    /// A right configuration produces and the message reads back through the same secured listener
    /// (with `reader`'s credentials when given: librdkafka cannot read with a delegation token).
    func expectDelivered(_ route: RouteConfiguration, reader: RouteConfiguration? = nil) async throws {
        let response = try await post(route, body: "secured")
        #expect(response.status == .ok, "\(response.body)")
        let bodies = try await readTopic(route.topic!, properties: readerProperties(reader ?? route), minimumCount: 1)
            .compactMap { $0.json["body"] as? String }
        #expect(bodies == ["secured"])
    }

    /// A wrong configuration is refused with a 503 within `timeout`, and nothing reaches the topic: after it,
    /// the right configuration produces one marker, and the marker is all the topic holds.
    func expectRefused(_ wrong: RouteConfiguration, right: RouteConfiguration, reason: String) async throws {
        // The answer's time, not the bridge's shutdown after it (which waits for the refused message to time out).
        var wrong = wrong
        wrong.returnErrorMessage = true  // the answer names the reason
        let (response, answeredAfter) = try await withBridge([wrong]) { (base: String, _: KafkaBridge) async throws in
            let clock = ContinuousClock()
            let start = clock.now
            let response = try await request("\(base)/in", body: "must-not-arrive", headers: [("content-type", "text/plain")])
            return (response, clock.now - start)
        }
        #expect(response.status == .serviceUnavailable, "\(response.body)")
        #expect(response.json["code"] as? String == "kafka_unavailable")
        #expect((response.json["message"] as? String)?.contains(reason) == true, "\(response.body)")
        #expect(answeredAfter < .milliseconds(wrong.kafka.timeout + 6000), "answered after \(answeredAfter)")
        #expect(try await post(right, body: "marker").status == .ok)
        let bodies = try await readTopic(right.topic!, properties: readerProperties(right), minimumCount: 1).compactMap { $0.json["body"] as? String }
        #expect(bodies == ["marker"])
    }

    @Test(arguments: [
        (KafkaAuthentication.Mechanism.plain, "carol", "carol-secret"),
        (.scramSHA256, "alice", "alice-secret"),
        (.scramSHA512, "bob", "bob-secret"),
    ])
    func saslRightCredentialsProduce(mechanism: KafkaAuthentication.Mechanism, user: String, password: String) async throws {
        try await expectDelivered(try route(.sasl, topic: uniqueTopic("sasl"), authentication: Self.sasl(mechanism, user, password)))
    }

    @Test(arguments: [
        (KafkaAuthentication.Mechanism.plain, "carol", "wrong"),
        (.scramSHA256, "alice", "wrong"),
        (.scramSHA512, "bob", "wrong"),
        (.scramSHA512, "alice", "alice-secret"),  // alice exists for SCRAM-SHA-256 only
        (.scramSHA256, "mallory", "anything"),
    ])
    func saslWrongCredentialsAreRefused(mechanism: KafkaAuthentication.Mechanism, user: String, password: String) async throws {
        let topic = uniqueTopic("sasl-wrong")
        try await expectRefused(
            try route(.sasl, topic: topic, authentication: Self.sasl(mechanism, user, password)),
            right: try route(.sasl, topic: topic, authentication: Self.sasl(.scramSHA512, "bob", "bob-secret")),
            reason: "Authentication failed")
    }

    @Test func asyncRouteStopsAcceptingOnceAuthenticationFails() async throws {
        var wrong = try route(.sasl, topic: uniqueTopic("sasl-async"), authentication: Self.sasl(.scramSHA256, "alice", "wrong"), async: true)
        wrong.kafka.asyncDeliveryTimeout = 3000  // async messages wait this long for the cluster (default 5 min)
        wrong.returnErrorMessage = true  // the answer names the login's reason
        try await withBridge([wrong]) { (base: String, bridge: KafkaBridge) async throws in
            var last = TestResponse(status: .ok, headers: [:], body: "")
            for _ in 0..<50 where last.status == .ok {
                last = try await request("\(base)/in", body: "x", headers: [("content-type", "text/plain")])
                if last.status == .ok { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(last.status == .serviceUnavailable)
            #expect((last.json["message"] as? String)?.contains("Authentication failed") == true, "\(last.body)")
            // What was accepted before the failure was known is reported as failed, not silently dropped.
            let accepted = bridge.statistics.enqueued
            #expect(try await eventually(timeout: .seconds(10)) { bridge.statistics.failed == accepted })
        }
    }

    @Test func tlsWithTheRightCAProducesAndTheWrongCAIsRefused() async throws {
        let topic = uniqueTopic("tls")
        let right = try route(.tls, topic: topic, tls: try Self.tls())
        try await expectDelivered(right)
        let wrong = try route(.tls, topic: topic, tls: try Self.tls(ca: "wrongca.crt"))
        let response = try await post(wrong, body: "must-not-arrive")
        #expect(response.status == .serviceUnavailable, "\(response.body)")
        #expect(try await readTopic(topic, properties: readerProperties(right), minimumCount: 1).count == 1)
    }

    @Test func tlsWithoutVerificationAcceptsAnUntrustedBroker() async throws {
        var tls = try Self.tls(ca: "wrongca.crt")
        tls.verify = false
        try await expectDelivered(try route(.tls, topic: uniqueTopic("noverify"), tls: tls))
    }

    @Test func mtlsNeedsAClientCertificateFromTheTrustedCA() async throws {
        let topic = uniqueTopic("mtls")
        let right = try route(.mtls, topic: topic, tls: try Self.tls(client: "client"))
        try await expectDelivered(right)
        for wrong in [try Self.tls(), try Self.tls(client: "rogue")] {
            let response = try await post(try route(.mtls, topic: topic, tls: wrong), body: "must-not-arrive")
            #expect(response.status == .serviceUnavailable, "\(response.body)")
        }
        #expect(try await readTopic(topic, properties: readerProperties(right), minimumCount: 1).count == 1)
    }

    @Test func saslOverTLSWithScram() async throws {
        let topic = uniqueTopic("sasl-ssl")
        try await expectRefused(
            try route(.saslSSL, topic: topic, authentication: Self.sasl(.scramSHA256, "alice", "wrong"), tls: try Self.tls()),
            right: try route(.saslSSL, topic: topic, authentication: Self.sasl(.scramSHA512, "bob", "bob-secret"), tls: try Self.tls()),
            reason: "Authentication failed")
    }

    @Test func secretsFromTheEnvironmentAndFilesLogIn() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "alice-secret\n".write(to: directory.appendingPathComponent("password"), atomically: true, encoding: .utf8)
        let topic = uniqueTopic("secrets")
        let yaml = """
            routes:
              - path: /in
                topic: \(topic)
                producer_async: false
                bootstrap_servers: [\(try Self.broker(.sasl))]
                authentication:
                  strategy: sasl
                  mechanism: SCRAM-SHA-256
                  user: {env: KAFKA_USER}
                  password: {file: password}
            """
        let loaded = try BridgeConfiguration.parse(yaml: yaml, file: directory.appendingPathComponent("kbridge.yaml").path,
                                                   environment: ["KAFKA_USER": "alice"])
        let route = try #require(loaded.configuration.routes.first)
        #expect(route.kafka.authentication?.password.description == "<secret from file \(directory.path)/password>")
        #expect(!"\(route)".contains("alice-secret"))
        try await expectDelivered(route)
    }

    // MARK: - Delegation tokens (kbridge performs the SCRAM tokenauth login; the broker front knows tok1:tok1-hmac)

    static func token(_ mechanism: KafkaAuthentication.Mechanism, _ id: String, _ hmac: Secret) -> KafkaAuthentication {
        var authentication = KafkaAuthentication(mechanism: mechanism, user: Secret(id), password: hmac)
        authentication.tokenAuthentication = true
        return authentication
    }

    @Test(arguments: [KafkaAuthentication.Mechanism.scramSHA256, .scramSHA512])
    func delegationTokenLogsIn(mechanism: KafkaAuthentication.Mechanism) async throws {
        let topic = uniqueTopic("token")
        let route = try route(.sasl, topic: topic, authentication: Self.token(mechanism, "tok1", Secret("tok1-hmac")))
        #expect(route.kafka.librdkafkaProperties["security.protocol"] == "PLAINTEXT")  // librdkafka talks to the relay
        try await expectDelivered(route, reader: try self.route(.sasl, topic: topic, authentication: Self.sasl(.scramSHA512, "bob", "bob-secret")))
    }

    @Test(arguments: [("tok1", "wrong-hmac"), ("alice", "alice-secret")])  // a wrong HMAC; a user is not a token
    func wrongDelegationTokensAreRefused(id: String, hmac: String) async throws {
        let topic = uniqueTopic("token-wrong")
        try await expectRefused(
            try route(.sasl, topic: topic, authentication: Self.token(.scramSHA256, id, Secret(hmac))),
            right: try route(.sasl, topic: topic, authentication: Self.sasl(.scramSHA512, "bob", "bob-secret")),
            reason: "delegation token authentication failed")
    }

    @Test func delegationTokenOverTLS() async throws {
        let topic = uniqueTopic("token-tls")
        try await expectDelivered(
            try route(.saslSSL, topic: topic, authentication: Self.token(.scramSHA512, "tok1", Secret("tok1-hmac")), tls: try Self.tls()),
            reader: try route(.saslSSL, topic: topic, authentication: Self.sasl(.scramSHA512, "bob", "bob-secret"), tls: try Self.tls()))
    }

    @Test func delegationTokenOverTLSVerifiesTheBroker() async throws {
        let response = try await post(
            try route(.saslSSL, topic: uniqueTopic("token-tls-wrong"), authentication: Self.token(.scramSHA512, "tok1", Secret("tok1-hmac")),
                      tls: try Self.tls(ca: "wrongca.crt")), body: "must-not-arrive")
        #expect(response.status == .serviceUnavailable, "\(response.body)")
    }

    @Test func aRotatedTokenIsReadAgainFromItsFile() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-hmac-\(UUID().uuidString)")
        try "stale-hmac\n".write(to: file, atomically: true, encoding: .utf8)
        let topic = uniqueTopic("token-rotate")
        var route = try route(.sasl, topic: topic, authentication: Self.token(.scramSHA256, "tok1", Secret("stale-hmac", source: "file", file: file.path)))
        route.kafka.timeout = 8000
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            let refused = try await request("\(base)/in", body: "stale", headers: [("content-type", "text/plain")])
            #expect(refused.status == .serviceUnavailable)
            try "tok1-hmac\n".write(to: file, atomically: true, encoding: .utf8)
            var status = HTTPResponseStatus.serviceUnavailable
            for _ in 0..<60 where status != .ok {
                status = try await request("\(base)/in", body: "rotated", headers: [("content-type", "text/plain")]).status
                if status != .ok { try await Task.sleep(for: .milliseconds(250)) }
            }
            #expect(status == .ok)
        }
        let reader = try self.route(.sasl, topic: topic, authentication: Self.sasl(.scramSHA512, "bob", "bob-secret"))
        #expect(try await readTopic(topic, properties: readerProperties(reader), minimumCount: 1).compactMap { $0.json["body"] as? String }.contains("rotated"))
    }
}
