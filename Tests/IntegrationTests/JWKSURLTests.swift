import Foundation
import JSON
import JWT
import Kafka
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import TestSupport
import Testing

@testable import Bridge

/// `client_authentication.jwt.keys: [{jwks_url: URL}]` against a real local HTTP server serving a JWK Set: a token
/// signed with a served key is accepted (through the bridge and the broker), a rotated key is fetched early when a
/// token names its kid (and a flood of unknown kids cannot become a flood of fetches), the last good keys stay when
/// the server fails or is gone, and start-up refuses, naming the key, the route and the URL, when the first fetch fails.
@Suite(.timeLimit(.minutes(3)))
struct JWKSURLTests {
    static let keys = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../JWTTests/keys").standardized
    static func key(_ name: String) -> String { (try? String(contentsOfFile: keys.appendingPathComponent(name).path, encoding: .utf8)) ?? "missing test key \(name)" }

    /// A JWK Set of the test keys' public JWKs (`rsa` has kid `rsa-key`, `rsa2` has `rsa2-key`).
    static func jwks(_ names: [String]) -> String {
        #"{"keys":["# + names.map { key("\($0).pub.jwk.json").trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ",") + "]}"
    }

    /// What the test server answers on `/jwks`, changed by the test.
    final class Served: Sendable {
        let response = Mutex(TestHTTPServer.Response.json(JWKSURLTests.jwks(["rsa"])))
        func set(_ response: TestHTTPServer.Response) { self.response.withLock { $0 = response } }
    }

    static func startServer(_ served: Served) async throws -> TestHTTPServer {
        try await TestHTTPServer { request in
            request.uri == "/jwks" ? served.response.withLock { $0 } : TestHTTPServer.Response(status: 404)
        }
    }

    static func signer(_ name: String) async throws -> JWTSigningKey {
        try await JWTSigningKey(parsing: key("\(name).pem"), algorithm: .rs256)
    }

    static func token(_ signer: JWTSigningKey, kid: String, subject: String = "svc-a") throws -> String {
        let expiry = Int(Date().timeIntervalSince1970) + 600
        return try signer.sign(claims: try JSONParser.parse(#"{"sub":"\#(subject)","exp":\#(expiry)}"#), keyID: kid).token
    }

    static func settings(url: String, refreshInterval: Duration = .seconds(300), timeout: Duration = .seconds(5)) -> ClientAuthenticationSettings {
        var keySet = JWTAuthenticationSettings.KeySetURL(url: url, origin: ConfigurationOrigin(file: "test.yaml", line: 9, column: 25,
                                                                                                key: "routes[0].client_authentication.jwt.keys[0].jwks_url"))
        keySet.refreshInterval = refreshInterval
        keySet.timeout = timeout
        var jwt = JWTAuthenticationSettings()
        jwt.keySetURLs = [keySet]
        jwt.algorithms = [.rs256]
        var settings = ClientAuthenticationSettings()
        settings.jwt = jwt
        return settings
    }

    /// The authenticator's verdict on `Bearer token`, waiting for it when it waits for a JWKS refresh.
    static func verdict(_ authenticator: ClientAuthenticator, _ token: String) async throws -> ClientAuthenticator.Verdict {
        var request = IngestRequest(method: .POST, uri: "/in", headers: ["authorization": "Bearer \(token)"], body: ByteBuffer())
        switch authenticator.authenticate(&request, eventLoop: MultiThreadedEventLoopGroup.singleton.next()) {
        case .done(let verdict): return verdict
        case .pending(let future): return try await future.get()
        }
    }

    static func consumer(_ verdict: ClientAuthenticator.Verdict) -> String? {
        if case .authenticated(let consumer, _) = verdict { return consumer }
        return nil
    }

    static func refusal(_ verdict: ClientAuthenticator.Verdict) -> String? {
        if case .refused(let response, _) = verdict { return String(buffer: response.body) }
        return nil
    }

    static func fetches(_ server: TestHTTPServer) -> Int { server.requests.filter { $0.uri == "/jwks" }.count }

    /// Polls `condition` every 50 ms until it holds or `limit` passes.
    static func eventually(within limit: Duration = .seconds(30), _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    /// Keeps every log line with its metadata, for the assertions.
    struct CapturingLogHandler: LogHandler {
        final class Lines: Sendable {
            let lines = Mutex<[String]>([])
            var all: [String] { lines.withLock { $0 } }
        }
        let captured: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            captured.lines.withLock { $0.append("\(event.level) \(event.message) \(fields)") }
        }
    }

    // MARK: - Through the bridge and the broker

    @Test func aTokenSignedWithAServedKeyIsAcceptedThroughTheBridge() async throws {
        let served = Served()
        let server = try await Self.startServer(served)
        let topic = uniqueTopic("auth-jwks")
        let url = "\(server.url)/jwks"
        let yaml = """
        routes:
          - path: /jwks
            name: jwks
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async_flush_timeout: 5
            client_authentication:
              consumer_record_header: x-consumer
              jwt:
                keys: [{jwks_url: "\(url)", jwks_timeout: 10000, jwks_refresh_interval: 1000}]
        """
        let good = try Self.token(try await Self.signer("rsa"), kid: "rsa-key")
        let wrongKey = try Self.token(try await Self.signer("rsa2"), kid: "rsa-key")
        try await withYAMLBridge(yaml) { base, _ in
            #expect(Self.fetches(server) >= 1)
            let accepted = try await request("\(base)/jwks", body: "signed", headers: [("Authorization", "Bearer \(good)")])
            #expect(accepted.status == .ok, "\(accepted.body)")
            let refused = try await request("\(base)/jwks", body: "forged", headers: [("Authorization", "Bearer \(wrongKey)")])
            #expect(refused.status == .unauthorized)
            #expect(refused.json["code"] as? String == "invalid_token")
            let metrics = try await request("\(base)/metrics", method: .GET)
            #expect(metrics.body.contains(#"kbridge_client_auth_jwks_refresh_failures_total{route="jwks",url="\#(url)"} 0"#), "\(metrics.body)")
            // Refreshed in the background.
            #expect(try await Self.eventually { Self.fetches(server) >= 2 }, "\(Self.fetches(server)) fetches")
        }
        // The bridge gone, its background refresh is too: no fetch in several intervals.
        // (A fetch the loop started just before may still finish: settled after one interval and far more.)
        try await Task.sleep(for: .seconds(3))
        let afterShutdown = Self.fetches(server)
        try await Task.sleep(for: .seconds(3))
        #expect(Self.fetches(server) == afterShutdown)
        await server.shutdown()
        let messages = try await readTopic(topic, minimumCount: 1)
        #expect(messages.count == 1)
        #expect(messages.first?.headers.first { $0.name == "x-consumer" }.map { String(decoding: $0.value ?? [], as: UTF8.self) } == "svc-a")
    }

    /// A reload that removes the route stops its background refresh once the old routes serve no request.
    @Test func aReloadStopsTheRefreshOfTheRoutesItReplaced() async throws {
        let served = Served()
        let server = try await Self.startServer(served)
        let topic = uniqueTopic("auth-jwks-reload")
        let yaml = """
        server: {host: 127.0.0.1, port: 0}
        routes:
          - path: /jwks
            topic: \(topic)
            bootstrap_servers: [BROKER]
            client_authentication:
              jwt:
                keys: [{jwks_url: "\(server.url)/jwks", jwks_refresh_interval: 1000}]
        """
        try await ConfigurationReloadTests.withReloadableBridge(yaml) { live in
            #expect(try await Self.eventually { Self.fetches(server) >= 2 }, "\(Self.fetches(server)) fetches")
            try live.write("""
                server: {host: 127.0.0.1, port: 0}
                routes: [{path: /open, topic: \(topic), bootstrap_servers: [BROKER]}]
                """)
            _ = try await live.bridge.reload().get()
            try await Task.sleep(for: .seconds(3))
            let afterReload = Self.fetches(server)
            try await Task.sleep(for: .seconds(3))
            #expect(Self.fetches(server) == afterReload, "the replaced route's JWKS is still fetched")
        }
        await server.shutdown()
    }

    /// A route `jwks` with these `client_authentication.jwt.keys` entries (the first on line 9 of the file).
    static func routeYAML(keys: [String]) -> String {
        """
        routes:
          - path: /jwks
            name: jwks
            topic: t
            bootstrap_servers: BROKER
            client_authentication:
              jwt:
                keys:

        """ + keys.map { "          - \($0)\n" }.joined()
    }

    @Test func startUpRefusesWhenTheFirstFetchFailsNamingTheKeyTheRouteAndTheURL() async throws {
        // A port nothing listens on (outside the range other tests' listeners are given).
        let port = try unusedLoopbackPort()
        let url = "http://127.0.0.1:\(port)/jwks"
        let yaml = Self.routeYAML(keys: ["{file: \(Self.keys.appendingPathComponent("rsa.pub.pem").path)}",
                                         "{jwks_url: \"\(url)\", jwks_timeout: 2000}"])
        let started = ContinuousClock.now
        do {
            _ = try await withYAMLBridge(yaml) { _, _ in Issue.record("the bridge started without its keys") }
        } catch let error as ConfigurationError {
            let text = error.description
            #expect(text.hasPrefix("test.yaml:10:"), "\(text)")
            // The refusal named as such (not as the deadline), after trying again until jwks_timeout.
            #expect(text.contains("routes[0].client_authentication.jwt.keys[1].jwks_url: route 'jwks': cannot fetch the JWKS from \(url) at start-up: "
                                  + "connection refused by 127.0.0.1:\(port) (tried for "), "\(text)")
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed > .seconds(1) && elapsed < .seconds(30), "\(elapsed)")
    }

    /// A key server that comes up while kbridge starts (an identity provider started beside it): the start-up fetch
    /// tries the connection again within jwks_timeout, and kbridge starts with the keys.
    @Test func startUpWaitsForAKeyServerThatComesUpWithinTheTimeout() async throws {
        let port = try unusedLoopbackPort()
        let jwks = Self.jwks(["rsa"])
        let late = Task {
            try await Task.sleep(for: .seconds(1))
            return try await TestHTTPServer(port: port) { _ in .json(jwks) }
        }
        let yaml = Self.routeYAML(keys: ["{jwks_url: \"http://127.0.0.1:\(port)/jwks\", jwks_timeout: 30000}"])
        try await withYAMLBridge(yaml) { _, _ in }
        let server = try await late.value
        #expect(server.requests.count >= 1)
        await server.shutdown()
    }

    // MARK: - The key source on its own

    @Test func aRotatedKeyIsFetchedWhenATokenNamesItsKid() async throws {
        let served = Served()
        let server = try await Self.startServer(served)
        let lines = CapturingLogHandler.Lines()
        let authenticator = try await ClientAuthenticator(
            settings: Self.settings(url: "\(server.url)/jwks"), route: "r", jwksEarlyRefreshSpacing: .milliseconds(200),
            logger: Logger(label: "test") { _ in CapturingLogHandler(captured: lines) })
        let old = try Self.token(try await Self.signer("rsa"), kid: "rsa-key")
        let new = try Self.token(try await Self.signer("rsa2"), kid: "rsa2-key", subject: "svc-b")
        #expect(Self.consumer(try await Self.verdict(authenticator, old)) == "svc-a")
        #expect(Self.fetches(server) == 1)
        // The identity provider rotates: the new key only.
        served.set(.json(Self.jwks(["rsa2"])))
        try await Task.sleep(for: .milliseconds(400))
        let verdict = try await Self.verdict(authenticator, new)
        #expect(Self.consumer(verdict) == "svc-b", "\(Self.refusal(verdict) ?? "")")
        #expect(Self.fetches(server) == 2)
        // The old key went with the rotation.
        #expect(Self.refusal(try await Self.verdict(authenticator, old))?.contains("invalid_token") == true)
        #expect(lines.all.contains { $0.contains("JWKS changed") && $0.contains("jwks_url=\(server.url)/jwks") && $0.contains("trigger=unknown kid") },
                "\(lines.all)")
        authenticator.jwtKeys?.stop()
        await server.shutdown()
    }

    @Test func aFloodOfUnknownKidsFetchesAtMostOnceAWindow() async throws {
        let served = Served()
        let server = try await Self.startServer(served)
        // The default spacing (10 s): far from both the window measured and the time a loaded machine may take.
        let authenticator = try await ClientAuthenticator(settings: Self.settings(url: "\(server.url)/jwks"), route: "r", logger: Logger(label: "test"))
        let signer = try await Self.signer("rsa")
        let started = ContinuousClock.now
        let verdicts = try await withThrowingTaskGroup(of: ClientAuthenticator.Verdict.self) { group in
            for index in 0..<200 {
                let token = try Self.token(signer, kid: "made-up-\(index)")
                group.addTask { try await Self.verdict(authenticator, token) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let window = ContinuousClock.now - started
        #expect(verdicts.count == 200)
        #expect(verdicts.allSatisfy { Self.consumer($0) == nil })
        // The start-up fetch, and at most one early refresh per started 10 s of the window.
        let allowed = 1 + Int(window.components.seconds / 10) + 1
        #expect(Self.fetches(server) <= allowed, "\(Self.fetches(server)) fetches in \(window)")
        #expect(Self.fetches(server) <= 3)
        authenticator.jwtKeys?.stop()
        await server.shutdown()
    }

    @Test func theLastGoodKeysStayWhenTheServerFailsOrIsGone() async throws {
        let served = Served()
        let server = try await Self.startServer(served)
        let lines = CapturingLogHandler.Lines()
        let authenticator = try await ClientAuthenticator(
            settings: Self.settings(url: "\(server.url)/jwks", refreshInterval: .milliseconds(200), timeout: .seconds(1)), route: "r",
            jwksEarlyRefreshSpacing: .milliseconds(100), logger: Logger(label: "test") { _ in CapturingLogHandler(captured: lines) })
        let source = try #require(authenticator.jwtKeys?.sources.first)
        let good = try Self.token(try await Self.signer("rsa"), kid: "rsa-key")
        #expect(Self.consumer(try await Self.verdict(authenticator, good)) == "svc-a")

        // The background refresh keeps fetching.
        #expect(try await Self.eventually { Self.fetches(server) >= 3 }, "\(Self.fetches(server)) fetches")
        // An error answer, then no answer that is a key set, then an answer without a usable key.
        for failing in [TestHTTPServer.Response(status: 503, body: "down for maintenance"), .json("<html>not json</html>"),
                        .json(#"{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}"#)] {
            let before = source.refreshFailures.load(ordering: .relaxed)
            served.set(failing)
            #expect(try await Self.eventually { source.refreshFailures.load(ordering: .relaxed) > before })
            #expect(Self.consumer(try await Self.verdict(authenticator, good)) == "svc-a")
        }
        #expect(lines.all.contains { $0.contains("warning cannot refresh the JWKS") && $0.contains("jwks_url=\(server.url)/jwks")
                && $0.contains("reason=the server answered 503") }, "\(lines.all)")
        #expect(lines.all.contains { $0.contains("reason=the answer is not a JWK Set") }, "\(lines.all)")
        #expect(lines.all.contains { $0.contains("reason=the set holds a symmetric key") }, "\(lines.all)")

        // The server gone: refreshes fail, early ones too, and the keys stay.
        await server.shutdown()
        let before = source.refreshFailures.load(ordering: .relaxed)
        #expect(try await Self.eventually { source.refreshFailures.load(ordering: .relaxed) > before })
        #expect(Self.consumer(try await Self.verdict(authenticator, good)) == "svc-a")
        let unknown = try Self.token(try await Self.signer("rsa2"), kid: "rsa2-key")
        #expect(Self.refusal(try await Self.verdict(authenticator, unknown))?.contains("invalid_token") == true)
        #expect(Self.consumer(try await Self.verdict(authenticator, good)) == "svc-a")
        #expect(try await Self.eventually { lines.all.contains { $0.contains("reason=connection refused by 127.0.0.1:\(server.port)") } }, "\(lines.all)")
        // Never a key in the logs.
        let modulus = "qKunSLmaXBTwuSoql5o6CPdVuQmHS3xe3C33WT9NmyyHW"
        #expect(!lines.all.contains { $0.contains(modulus) })

        let access = RouteAccess(authenticator: authenticator, rateLimiter: nil)
        let metrics = AccessMetrics.text([(name: "r", access: access)], escape: { $0 })
        #expect(metrics.contains(#"kbridge_client_auth_jwks_refresh_failures_total{route="r",url="\#(server.url)/jwks"} \#(source.refreshFailures.load(ordering: .relaxed))"#),
                "\(metrics)")
        access.stop()
        // Stopped: no more fetches, no more failures.
        let stoppedAt = source.refreshFailures.load(ordering: .relaxed)
        try await Task.sleep(for: .seconds(1))
        #expect(source.refreshFailures.load(ordering: .relaxed) == stoppedAt)
    }

    @Test func aFirstFetchThatFailsRefusesWithTheReason() async throws {
        let served = Served()
        let server = try await Self.startServer(served)
        // A timeout far above what an answer takes on a loaded machine, except for the case about the timeout.
        let cases: [(TestHTTPServer.Response, String, Duration)] = [
            (TestHTTPServer.Response(status: 404, body: "no such page"), "the server answered 404", .seconds(10)),
            (.json("<!doctype html><p>sign in</p>"), "the answer is not a JWK Set", .seconds(10)),
            (.json(#"{"keys":[]}"#), "invalid key: the JWKS has no usable signature key", .seconds(10)),
            (.json(String(repeating: " ", count: JWKSKeySource.maximumDocumentBytes) + "{}"),
             "the answer is larger than \(JWKSKeySource.maximumDocumentBytes) bytes", .seconds(10)),
            (.json(Self.jwks(["rsa"]), delay: .seconds(40)), "no answer within 300 ms", .milliseconds(300)),
        ]
        for (response, reason, timeout) in cases {
            served.set(response)
            let started = ContinuousClock.now
            do {
                let authenticator = try await ClientAuthenticator(settings: Self.settings(url: "\(server.url)/jwks", timeout: timeout),
                                                                  route: "orders", logger: Logger(label: "test"))
                authenticator.jwtKeys?.stop()
                Issue.record("started with \(reason)")
            } catch let error as ConfigurationError {
                #expect(error.description.contains("test.yaml:9:25: routes[0].client_authentication.jwt.keys[0].jwks_url: route 'orders': cannot fetch the JWKS from \(server.url)/jwks at start-up: \(reason)"),
                        "\(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(30), "\(reason)")
        }
        await server.shutdown()
    }

    @Test func anHTTPSKeyServerIsVerifiedWithTheSystemsOrTheGivenCAs() async throws {
        // Every request answered with the test JWKS, over TLS, with a certificate no system CA knows.
        let server = try await TestHTTPServer(selfSignedTLS: true) { _ in
            TestHTTPServer.Response(headers: [("Content-Type", "application/json"), ("Connection", "close")], body: JWKSURLTests.jwks(["rsa"]))
        }
        let certificateFile = try #require(server.certificateFile)
        let url = "\(server.url)/jwks"
        let token = try Self.token(try await Self.signer("rsa"), kid: "rsa-key")

        // The system's CAs do not know this certificate: start-up is refused at once, saying so (the failed handshake is
        // not retried until jwks_timeout and reported as the deadline).
        let started = ContinuousClock.now
        do {
            let authenticator = try await ClientAuthenticator(settings: Self.settings(url: url, timeout: .seconds(60)), route: "r", logger: Logger(label: "test"))
            authenticator.jwtKeys?.stop()
            Issue.record("a certificate no trusted CA issued was accepted")
        } catch let error as ConfigurationError {
            #expect(error.description.contains("cannot fetch the JWKS from \(url) at start-up: TLS handshake with 127.0.0.1:\(server.port) failed: "
                                               + "the server's certificate is not trusted"), "\(error)")
            #expect(error.description.contains("(CERTIFICATE_VERIFY_FAILED; jwks_ca_file names the CAs to trust)"), "\(error)")
            #expect(!error.description.contains(".cc:"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(30))
        // jwks_ca_file, then jwks_ssl_verify: false.
        for trust in ["ca_file", "no verification"] {
            var settings = Self.settings(url: url)
            if trust == "ca_file" { settings.jwt?.keySetURLs[0].caFile = certificateFile } else { settings.jwt?.keySetURLs[0].sslVerify = false }
            let authenticator = try await ClientAuthenticator(settings: settings, route: "r", logger: Logger(label: "test"))
            #expect(Self.consumer(try await Self.verdict(authenticator, token)) == "svc-a", "\(trust)")
            authenticator.jwtKeys?.stop()
        }
        await server.shutdown()
    }

    @Test func aRedirectIsFollowedUnlessItLeadsToPlainHTTPElsewhere() async throws {
        let served = Served()
        let server = try await TestHTTPServer { request in
            request.uri == "/moved" ? TestHTTPServer.Response(status: 302, headers: [("Location", "/jwks")]) : served.response.withLock { $0 }
        }
        let authenticator = try await ClientAuthenticator(settings: Self.settings(url: "\(server.url)/moved"), route: "r", logger: Logger(label: "test"))
        #expect(Self.consumer(try await Self.verdict(authenticator, try Self.token(try await Self.signer("rsa"), kid: "rsa-key"))) == "svc-a")
        #expect(server.requests.map(\.uri) == ["/moved", "/jwks"])
        authenticator.jwtKeys?.stop()
        await server.shutdown()
        // The hops AsyncHTTPClient reports, judged as jwks_url is.
        #expect(throws: Never.self) { try JWKSKeySource.checkRedirects(["https://idp.example/jwks", "http://127.0.0.1:8080/jwks", "http://localhost/jwks"]) }
        #expect { try JWKSKeySource.checkRedirects(["https://idp.example/jwks", "http://cdn.example/jwks"]) } throws: { error in
            "\(error)".contains("redirected to plain http:// on cdn.example:80")
        }
    }
}
