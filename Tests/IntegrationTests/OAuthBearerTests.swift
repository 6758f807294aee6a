import Bridge
import Foundation
import JSON
import JWT
import Kafka
import NIOHTTP1
import Synchronization
import TestSupport
import Testing

/// SASL OAUTHBEARER through kbridge against the loopback broker's SASL front (scripts/testing/sasl-proxy.py), which
/// accepts HS256 JWTs signed with the key `scripts/test` exports, records every OAUTHBEARER login, and asks clients to
/// re-authenticate when their token expires (KIP-368). The tokens come from a client-credentials endpoint run here.
@Suite(.timeLimit(.minutes(3)))
struct OAuthBearerTests {
    static func environment(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw TestSetupError("\(name) is not set: run the tests with scripts/test, which starts the SASL front with OAUTHBEARER")
        }
        return value
    }

    /// A client-credentials token endpoint: checks the client id and secret, issues HS256 JWTs signed with the SASL
    /// front's key (`sub` = `subject`, `exp` = now + `lifetime`), or refuses every client with 401 when `refuse`.
    final class TokenEndpoint: Sendable {
        struct TokenRequest: Sendable {
            var at: Date
            var form: [String: String]
            /// The `exp` of the token issued, when one was.
            var expires: Date?
        }

        final class Log: Sendable { let entries = Mutex<[TokenRequest]>([]) }
        /// While true, every client is refused (401 invalid_client).
        final class Refusal: Sendable { let on: Atomic<Bool>; init(_ on: Bool) { self.on = Atomic(on) } }

        let server: TestHTTPServer
        private let issued: Log
        let refusal: Refusal
        static let clientID = "kbridge-client"
        static let clientSecret = "kbridge-client-secret"
        var url: String { "\(server.url)/oauth2/token" }
        var requests: [TokenRequest] { issued.entries.withLock { $0 } }

        init(subject: String, lifetime: Int, refuse: Bool = false) async throws {
            let signer = try await JWTSigningKey(parsing: try OAuthBearerTests.environment("KBRIDGE_TEST_SASL_OAUTH_KEY"), algorithm: .hs256)
            let issued = Log()
            self.issued = issued
            let refusal = Refusal(refuse)
            self.refusal = refusal
            server = try await TestHTTPServer { request in
                let form = Self.parseForm(request.bodyText)
                let now = Date()
                guard !refusal.on.load(ordering: .relaxed), request.method == "POST", form["grant_type"] == "client_credentials",
                      form["client_id"] == Self.clientID, form["client_secret"] == Self.clientSecret else {
                    issued.entries.withLock { $0.append(TokenRequest(at: now, form: form, expires: nil)) }
                    return .json(#"{"error":"invalid_client","error_description":"client authentication failed"}"#, status: 401)
                }
                // Rounded up: the front never sees the token expire before kbridge expects it to.
                let expires = (now.timeIntervalSince1970 + Double(lifetime)).rounded(.up)
                let claims = #"{"sub":"\#(subject)","iat":\#(Int(now.timeIntervalSince1970)),"exp":\#(Int(expires))}"#
                guard let token = try? signer.sign(claims: try JSONParser.parse(claims)).token else {
                    return .json(#"{"error":"server_error"}"#, status: 500)
                }
                issued.entries.withLock { $0.append(TokenRequest(at: now, form: form, expires: Date(timeIntervalSince1970: expires))) }
                return .json(#"{"access_token":"\#(token)","token_type":"Bearer","expires_in":\#(lifetime)}"#)
            }
        }

        static func parseForm(_ body: String) -> [String: String] {
            var form: [String: String] = [:]
            for pair in body.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map {
                    $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
                }
                form[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            return form
        }
    }

    /// One OAUTHBEARER login as the SASL front recorded it.
    struct FrontLogin {
        var ok: Bool
        var reauthentication: Bool
        var subject: String?
        var expires: Double?
        var extensions: [String: String]
        var reason: String?
    }

    /// The front's logins for `subject` (or the failed ones, which have no subject, when `subject` is nil).
    static func frontLogins(subject: String?) throws -> [FrontLogin] {
        let path = try environment("KBRIDGE_TEST_SASL_OAUTH_RECORD")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let record = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else { return nil }
            let login = FrontLogin(ok: record["ok"] as? Bool ?? false, reauthentication: record["reauth"] as? Bool ?? false,
                                   subject: record["sub"] as? String, expires: record["exp"] as? Double ?? (record["exp"] as? Int).map(Double.init),
                                   extensions: record["extensions"] as? [String: String] ?? [:], reason: record["reason"] as? String)
            return login.subject == subject ? login : nil
        }
    }

    static func oauthBearer(_ endpoint: String, scopes: [String] = [], extensions: [String: String] = [:]) -> KafkaAuthentication {
        var settings = KafkaOAuthBearerSettings(tokenEndpoint: endpoint, clientID: Secret(TokenEndpoint.clientID),
                                                clientSecret: Secret(TokenEndpoint.clientSecret))
        settings.scopes = scopes
        settings.extensions = extensions
        return KafkaAuthentication(oauthBearer: settings)
    }

    /// A sync route on the SASL broker, quick to give up, that names the failure in its answers.
    func route(topic: String, authentication: KafkaAuthentication) throws -> RouteConfiguration {
        var route = try testRoute(path: "/in", topic: topic, async: false, broker: try SecurityTests.broker(.sasl))
        route.kafka.authentication = authentication
        route.kafka.timeout = 3000
        route.returnErrorMessage = true
        return route
    }

    /// Reads `topic` back through the SASL front with SCRAM (librdkafka's reader has no token source).
    func readBack(_ topic: String, count: Int) async throws -> [String] {
        let reader = try route(topic: topic, authentication: SecurityTests.sasl(.scramSHA512, "bob", "bob-secret"))
        let properties = reader.kafka.librdkafkaProperties.filter {
            $0.key == "bootstrap.servers" || $0.key.hasPrefix("security.") || $0.key.hasPrefix("sasl.")
        }
        return try await readTopic(topic, properties: properties, minimumCount: count).compactMap { $0.json["body"] as? String }
    }

    func post(_ base: String, _ body: String) async throws -> TestResponse {
        try await request("\(base)/in", body: body, headers: [("content-type", "text/plain")])
    }

    @Test func producesWithATokenFromTheEndpointWithScopesAndExtensions() async throws {
        let subject = "svc-\(UUID().uuidString.prefix(8))"
        let endpoint = try await TokenEndpoint(subject: subject, lifetime: 300)
        defer { Task { await endpoint.server.shutdown() } }
        let topic = uniqueTopic("oauth")
        let extensions = ["logicalCluster": "lkc-\(subject.suffix(8))", "identityPoolId": "pool-Xy9"]
        let route = try route(topic: topic, authentication: Self.oauthBearer(endpoint.url, scopes: ["kafka.write", "kafka.read"],
                                                                           extensions: extensions))
        let response = try await withBridge([route]) { base, _ in try await post(base, "through-oauthbearer") }
        #expect(response.status == .ok, "\(response.body)")
        #expect(try await readBack(topic, count: 1) == ["through-oauthbearer"])
        let request = try #require(endpoint.requests.first)
        #expect(request.form["grant_type"] == "client_credentials")
        #expect(request.form["client_id"] == TokenEndpoint.clientID)
        #expect(request.form["scope"] == "kafka.write kafka.read")
        // The front verified the JWT (signature, exp, sub) and saw the extensions, with the JWT's sub as principal.
        let logins = try Self.frontLogins(subject: subject)
        #expect(!logins.isEmpty)
        #expect(logins.allSatisfy { $0.ok && $0.extensions == extensions }, "\(logins)")
    }

    @Test func aClientTheEndpointRefusesMarksTheClusterDownWithTheReason() async throws {
        let endpoint = try await TokenEndpoint(subject: "unused", lifetime: 300, refuse: true)
        defer { Task { await endpoint.server.shutdown() } }
        let route = try route(topic: uniqueTopic("oauth-refused"), authentication: Self.oauthBearer(endpoint.url))
        let (first, later) = try await withBridge([route]) { base, _ in
            let first = try await post(base, "must-not-arrive")
            // Once down, every request is answered at once with the reason.
            let later = try await post(base, "must-not-arrive-either")
            return (first, later)
        }
        for response in [first, later] {
            #expect(response.status == .serviceUnavailable, "\(response.body)")
            #expect(response.json["code"] as? String == "kafka_unavailable", "\(response.body)")
            let message = response.json["message"] as? String ?? ""
            #expect(message.contains("OAUTHBEARER") && message.contains("HTTP 401") && message.contains("invalid_client")
                    && message.contains("client authentication failed") && message.contains(endpoint.url), "\(message)")
            #expect(!message.contains(TokenEndpoint.clientSecret))
        }
        #expect(endpoint.requests.count >= 1)
    }

    @Test func theClusterIsUpAgainOnceTheEndpointAcceptsTheClient() async throws {
        let subject = "recovered-\(UUID().uuidString.prefix(8))"
        let endpoint = try await TokenEndpoint(subject: subject, lifetime: 300, refuse: true)
        defer { Task { await endpoint.server.shutdown() } }
        let topic = uniqueTopic("oauth-recovered")
        let route = try route(topic: topic, authentication: Self.oauthBearer(endpoint.url))
        let (refused, recovered) = try await withBridge([route]) { base, _ in
            let refused = try await post(base, "must-not-arrive")
            endpoint.refusal.on.store(false, ordering: .relaxed)
            // librdkafka asks again 10 s after a failure; until then the route keeps answering 503 at once.
            var recovered = try await post(base, "recovered")
            let deadline = ContinuousClock.now + .seconds(60)
            while recovered.status != .ok, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(500))
                recovered = try await post(base, "recovered")
            }
            return (refused, recovered)
        }
        #expect(refused.status == .serviceUnavailable, "\(refused.body)")
        #expect(recovered.status == .ok, "\(recovered.body)")
        let bodies = try await readBack(topic, count: 1)
        #expect(bodies.contains("recovered") && !bodies.contains("must-not-arrive"), "\(bodies)")
    }

    @Test func anUnreachableTokenEndpointMarksTheClusterDownWithTheReason() async throws {
        // A port that was just free: nothing listens there.
        let closed = try await TestHTTPServer { _ in .init() }
        let url = "\(closed.url)/oauth2/token"
        await closed.shutdown()
        var route = try route(topic: uniqueTopic("oauth-down"), authentication: Self.oauthBearer(url))
        // The token request's failure must come first: a loaded machine once let the message's 10 s run out before it.
        route.kafka.additionalProperties["message.timeout.ms"] = "40000"
        let response = try await withBridge([route]) { base, _ in try await post(base, "must-not-arrive") }
        #expect(response.status == .serviceUnavailable, "\(response.body)")
        #expect(response.json["code"] as? String == "kafka_unavailable", "\(response.body)")
        let message = response.json["message"] as? String ?? ""
        #expect(message.contains("OAUTHBEARER") && message.contains("token endpoint \(url) is unreachable"), "\(message)")
    }

    /// Tokens live 20 s. librdkafka asks for the next one at 80 % of the lifetime, checked on a 1 s timer (16-17 s),
    /// before the first expires (an 8 s token was renewed 0.3-1 s before its expiry, too close on a loaded machine);
    /// the front asks for re-authentication at expiry (KIP-368) and closes connections that do not, so producing
    /// after the first token's expiry needs the second token.
    @Test func tokensAreRefreshedBeforeTheyExpireAndProducingGoesOn() async throws {
        let subject = "refresh-\(UUID().uuidString.prefix(8))"
        let lifetime = 20
        let endpoint = try await TokenEndpoint(subject: subject, lifetime: lifetime)
        defer { Task { await endpoint.server.shutdown() } }
        let topic = uniqueTopic("oauth-refresh")
        let route = try route(topic: topic, authentication: Self.oauthBearer(endpoint.url))
        let (before, after) = try await withBridge([route]) { base, _ in
            let before = try await post(base, "first-token")
            // The second token request, then the first token's expiry (and a little more) passed.
            _ = try await eventually(timeout: .seconds(60)) { endpoint.requests.count >= 2 }
            if let firstExpiry = endpoint.requests.first?.expires {
                let wait = firstExpiry.timeIntervalSinceNow + 1.5
                if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000))) }
            }
            let after = try await post(base, "after-first-expiry")
            return (before, after)
        }
        #expect(before.status == .ok, "\(before.body)")
        #expect(after.status == .ok, "\(after.body)")
        let requests = endpoint.requests
        try #require(requests.count >= 2, "only \(requests.count) token requests")
        let firstExpiry = try #require(requests[0].expires)
        let secondAsked = requests[1].at
        let issuedToAsked = secondAsked.timeIntervalSince(requests[0].at)
        // Before the expiry kbridge was told (`expires_in` after the answer), which is no later than the JWT's `exp`.
        let beforeExpiry = Double(lifetime) - issuedToAsked
        let askedText = String(format: "%.2f", issuedToAsked), leftText = String(format: "%.2f", beforeExpiry)
        print("OAUTHBEARER refresh: expires_in \(lifetime) s; librdkafka asked for the second token \(askedText) s after the first "
              + "was issued (\(String(format: "%.0f", issuedToAsked / Double(lifetime) * 100)) % of its life), \(leftText) s before it expired")
        #expect(beforeExpiry > 0, "the second token was asked for \(-beforeExpiry) s after the first expired")
        // The front saw a later token in use (a re-authentication or a new connection) and no failed login for it.
        let logins = try Self.frontLogins(subject: subject)
        #expect(logins.contains { $0.ok && ($0.expires ?? 0) > firstExpiry.timeIntervalSince1970 }, "\(logins)")
        #expect(logins.allSatisfy { $0.ok }, "\(logins)")
        #expect(try await readBack(topic, count: 2).sorted() == ["after-first-expiry", "first-token"])
    }
}
