import Bridge
import Crypto
import Foundation
import JSON
import JWT
import Kafka
import NIOHTTP1
import TestSupport
import Testing

/// `client_authentication` and `rate_limit` through a real bridge and the real broker: each method with the right, a
/// wrong and no credential (and an expired token), what reaches the topic, the consumer in a record header and in a
/// workflow, 401/403/429 answers with their headers, and the counters in `/metrics`.
@Suite(.timeLimit(.minutes(3)))
struct ClientAuthenticationRouteTests {
    static let keys = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../JWTTests/keys").standardized
    static func keyFile(_ name: String) -> String { keys.appendingPathComponent(name).path }
    static func key(_ name: String) -> String { (try? String(contentsOfFile: keyFile(name), encoding: .utf8)) ?? "missing test key \(name)" }

    /// Made once with Python's `bcrypt` 5.0.0: `bcrypt.hashpw(b'correct horse battery', bcrypt.gensalt(rounds=10))`, and
    /// with `gensalt(rounds=4, prefix=b'2a')` (an independent implementation: libxcrypt must verify what it made).
    static let bcryptHash = "$2b$10$zt4f9h2YLZPslwAvplZOs.H3yVIu7XWXwuWAmw/aTgcruHs1wNnl."
    static let bcryptHash2a = "$2a$04$1WxVfQwhRYkK66DUwigwiOyrykziMaRw2Yfj29ILNgJ6kt4.ztKZe"
    static let password = "correct horse battery"
    static let hmacSecret = "an HMAC secret of at least thirty-two bytes"

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func basic(_ user: String, _ password: String) -> (String, String) {
        ("Authorization", "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
    }

    static func metric(_ text: String, _ line: String) -> Int? {
        text.split(separator: "\n").first { $0.hasPrefix(line + " ") }.flatMap { Int($0.split(separator: " ").last ?? "") }
    }

    static func recordHeader(_ message: KafkaConsumedMessage, _ name: String) -> String? {
        message.headers.first { $0.name == name }.map { String(decoding: $0.value ?? [], as: UTF8.self) }
    }

    @Test func apiKeysInHeaderOrQueryHiddenFromTheMessageWithTheConsumerInARecordHeader() async throws {
        let topic = uniqueTopic("auth-key")
        let yaml = """
        routes:
          - path: /keyed
            name: keyed
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async_flush_timeout: 5
            forward_headers: true
            forward_uri: true
            client_authentication:
              hide_credentials: true
              consumer_record_header: x-consumer
              api_key:
                key_names: [apikey, x-api-key]
                keys:
                  - {consumer: alice, key: {env: ALICE_KEY}}
                  - {consumer: bob, key: bob-key-0123456789abcdef}
        """
        try await withYAMLBridge(yaml, environment: ["ALICE_KEY": "alice-key-0123456789abcdef"]) { base, _ in
            let missing = try await request("\(base)/keyed", body: "missing")
            #expect(missing.status == .unauthorized)
            #expect(missing.json["code"] as? String == "authentication_required")
            #expect(missing.headers["www-authenticate"] == ["Key realm=\"kbridge\""])
            let wrong = try await request("\(base)/keyed", body: "wrong", headers: [("apikey", "alice-key-0123456789abcdeX")])
            #expect(wrong.status == .unauthorized)
            #expect(wrong.json["code"] as? String == "invalid_credentials")
            #expect(!wrong.body.contains("alice-key"), "the answer must not echo the credential")
            let byHeader = try await request("\(base)/keyed", body: "by header", headers: [("X-Api-Key", "alice-key-0123456789abcdef")])
            #expect(byHeader.status == .ok, "\(byHeader.body)")
            let byQuery = try await request("\(base)/keyed?a=1&apikey=bob-key-0123456789abcdef&b=2", body: "by query")
            #expect(byQuery.status == .ok, "\(byQuery.body)")
            let metrics = try await request("\(base)/metrics", method: .GET)
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_failures_total{route="keyed",reason="missing_credentials"}"#) == 1)
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_failures_total{route="keyed",reason="invalid_api_key"}"#) == 1)
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_successes_total{route="keyed",method="api_key"}"#) == 2)
        }
        let messages = try await readTopic(topic, minimumCount: 2)
        #expect(messages.count == 2)
        // Several partitions: the order across them is not kept.
        #expect(messages.compactMap { Self.recordHeader($0, "x-consumer") }.sorted() == ["alice", "bob"])
        let envelopes = messages.map { String(decoding: $0.value, as: UTF8.self) }
        #expect(envelopes.allSatisfy { !$0.contains("key-0123456789abcdef") }, "hide_credentials: \(envelopes)")
        let byQuery = try #require(envelopes.first { $0.contains("/keyed?") }, "\(envelopes)")
        #expect(byQuery.contains("/keyed?a=1&b=2") && byQuery.contains(#""a":"1""#) && byQuery.contains(#""b":"2""#)
                && !byQuery.contains("apikey"), "\(byQuery)")
        #expect(envelopes.allSatisfy { !$0.contains("missing") && !$0.contains("wrong") }, "only authenticated requests are produced")
    }

    /// Credentials are checked at the request's head: a refused request's large body is never read (no `100 Continue`
    /// either), a small one is dropped with the connection kept, and nothing is produced.
    @Test func aRefusedRequestIsAnsweredAtItsHeadBeforeItsBody() async throws {
        let topic = uniqueTopic("auth-head")
        let yaml = """
        routes:
          - path: /keyed
            topic: \(topic)
            bootstrap_servers: BROKER
            max_body_size: 10000000
            client_authentication:
              api_key:
                keys: [{consumer: alice, key: alice-key-0123456789abcdef}]
        """
        try await withYAMLBridge(yaml) { base, bridge in
            for expect in ["", "Expect: 100-continue\r\n"] {
                let connection = try RawConnection(port: bridge.port)
                connection.send("POST /keyed HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\(expect)Content-Length: 5000000\r\n\r\n")
                let answer = try await onOwnThread { [connection = UncheckedBox(connection)] in connection.value.receiveToClose() }
                #expect(answer.text.hasPrefix("HTTP/1.1 401"), "\(answer.text)")
                #expect(answer.text.lowercased().contains("connection: close"), "\(answer.text)")
                #expect(answer.closed)
            }
            // A small body is read and dropped; the connection serves the next request.
            let connection = try RawConnection(port: bridge.port)
            connection.send("POST /keyed HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnope"
                + "POST /keyed HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\napikey: alice-key-0123456789abcdef\r\nContent-Length: 3\r\n\r\nyes")
            let answers = try await onOwnThread { [connection = UncheckedBox(connection)] in connection.value.receive(until: "message sent") }
            #expect(answers.hasPrefix("HTTP/1.1 401"), "\(answers)")
            #expect(answers.contains("HTTP/1.1 200"), "\(answers)")
            let messages = try await readTopic(topic, minimumCount: 1)
            #expect(messages.compactMap { $0.json["body"] as? String } == ["yes"])
            _ = base
        }
    }

    @Test func basicAuthenticationVerifiesBcryptHashesMadeByAnotherImplementation() async throws {
        let topic = uniqueTopic("auth-basic")
        let yaml = """
        routes:
          - path: /basic
            name: basic
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async_flush_timeout: 5
            forward_headers: true
            client_authentication:
              realm: orders
              consumer_record_header: x-consumer
              allowed_consumers: [alice-consumer, carol]
              basic:
                users:
                  - {username: alice, password_hash: "\(Self.bcryptHash)", consumer: alice-consumer}
                  - {username: carol, password_hash: "\(Self.bcryptHash2a)"}
                  - {username: dave, password_hash: "\(Self.bcryptHash2a)"}
                  - {username: erin, password_hash: "\(PasswordHashAuthTestsData.argon2id)"}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let missing = try await request("\(base)/basic", body: "missing")
            #expect(missing.status == .unauthorized)
            #expect(missing.headers["www-authenticate"] == ["Basic realm=\"orders\", charset=\"UTF-8\""])
            let wrong = try await request("\(base)/basic", body: "wrong", headers: [Self.basic("alice", "Correct horse battery")])
            #expect(wrong.status == .unauthorized)
            #expect(wrong.json["code"] as? String == "invalid_credentials")
            #expect(wrong.headers["www-authenticate"] == ["Basic realm=\"orders\", charset=\"UTF-8\""])
            let unknown = try await request("\(base)/basic", body: "unknown", headers: [Self.basic("mallory", Self.password)])
            #expect(unknown.status == .unauthorized)
            let garbage = try await request("\(base)/basic", body: "garbage", headers: [("Authorization", "Basic !!!")])
            #expect(garbage.status == .unauthorized)
            for body in ["first", "cached"] {
                let right = try await request("\(base)/basic", body: body, headers: [Self.basic("alice", Self.password)])
                #expect(right.status == .ok, "\(right.body)")
            }
            let twoA = try await request("\(base)/basic", body: "2a", headers: [Self.basic("carol", Self.password)])
            #expect(twoA.status == .ok, "\(twoA.body)")
            // argon2id, made by Python's argon2-cffi: refused with a wrong password, accepted with the right one (then
            // forbidden: erin is not an allowed consumer, which shows she was authenticated).
            let argon2Wrong = try await request("\(base)/basic", body: "argon2", headers: [Self.basic("erin", "correct horse batterY")])
            #expect(argon2Wrong.status == .unauthorized)
            let argon2Right = try await request("\(base)/basic", body: "argon2", headers: [Self.basic("erin", Self.password)])
            #expect(argon2Right.status == .forbidden && argon2Right.json["code"] as? String == "consumer_not_allowed", "\(argon2Right.body)")
            let forbidden = try await request("\(base)/basic", body: "forbidden", headers: [Self.basic("dave", Self.password)])
            #expect(forbidden.status == .forbidden)
            #expect(forbidden.json["code"] as? String == "consumer_not_allowed")
            let metrics = try await request("\(base)/metrics", method: .GET)
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_failures_total{route="basic",reason="invalid_basic_credentials"}"#) == 4)
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_failures_total{route="basic",reason="consumer_not_allowed"}"#) == 2)
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_successes_total{route="basic",method="basic"}"#) == 3)
            // Wrong password, unknown user (hashed too), alice once (then the cache), carol, erin twice, dave: 7 hashes for
            // 8 attempts.
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_password_verifications_total{route="basic"}"#) == 7)
        }
        let messages = try await readTopic(topic, minimumCount: 3)
        #expect(messages.count == 3)
        #expect(messages.compactMap { Self.recordHeader($0, "x-consumer") }.sorted() == ["alice-consumer", "alice-consumer", "carol"])
        // Without hide_credentials the header is forwarded, as Kong forwards it.
        #expect(messages.allSatisfy { String(decoding: $0.value, as: UTF8.self).lowercased().contains("authorization") })
    }

    @Test func jwtBearerTokensWithTheAlgorithmBoundToTheKeyType() async throws {
        let topic = uniqueTopic("auth-jwt")
        let yaml = """
        routes:
          - path: /jwt
            name: jwt
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async_flush_timeout: 5
            client_authentication:
              consumer_record_header: x-consumer
              hide_credentials: true
              jwt:
                keys:
                  - {file: \(Self.keyFile("rsa.pub.pem"))}
                  - {secret: {env: HS_SECRET}}
                issuers: [https://idp.example]
                audiences: [orders]
                leeway: 120
                consumer_claim: client_id
        """
        let now = Int(Date().timeIntervalSince1970)
        let rsa = try await JWTSigningKey(parsing: Self.key("rsa.pem"), algorithm: .rs256)
        let otherRSA = try await JWTSigningKey(parsing: Self.key("rsa2.pem"), algorithm: .rs256)
        let hmac = try await JWTSigningKey(parsing: Self.hmacSecret, algorithm: .hs256)
        func claims(_ extra: String = "", exp: Int = 300) throws -> JSONValue {
            try JSONParser.parse(#"{"iss":"https://idp.example","aud":"orders","client_id":"svc-a","sub":"x","exp":\#(now + exp)\#(extra)}"#)
        }
        let good = try rsa.sign(claims: try claims()).token
        let goodHS = try hmac.sign(claims: try JSONParser.parse(
            #"{"iss":"https://idp.example","aud":["other","orders"],"client_id":"svc-b","exp":\#(now + 300)}"#)).token
        // Far from the leeway on both sides: a loaded machine may take many seconds between signing and asking.
        let expired = try rsa.sign(claims: try claims(exp: -3600)).token
        let withinLeeway = try rsa.sign(claims: try claims(exp: -1)).token
        let wrongKey = try otherRSA.sign(claims: try claims()).token
        let wrongIssuer = try rsa.sign(claims: try JSONParser.parse(#"{"iss":"https://evil.example","aud":"orders","client_id":"svc-a","exp":\#(now + 300)}"#)).token
        let noConsumer = try rsa.sign(claims: try JSONParser.parse(#"{"iss":"https://idp.example","aud":"orders","exp":\#(now + 300)}"#)).token
        let payload = Self.base64URL(Data(#"{"iss":"https://idp.example","aud":"orders","client_id":"svc-a","exp":\#(now + 300)}"#.utf8))
        // The classic confusion: HS256 with the RSA public key's PEM text (which the route has) as the HMAC secret.
        let confusedInput = Self.base64URL(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8)) + "." + payload
        let confusedMAC = HMAC<SHA256>.authenticationCode(for: Data(confusedInput.utf8), using: SymmetricKey(data: Data(Self.key("rsa.pub.pem").utf8)))
        let confusedToken = confusedInput + "." + Self.base64URL(Data(confusedMAC))
        let unsigned = Self.base64URL(Data(#"{"alg":"none","typ":"JWT"}"#.utf8)) + "." + payload + "."
        try await withYAMLBridge(yaml, environment: ["HS_SECRET": Self.hmacSecret]) { base, _ in
            let missing = try await request("\(base)/jwt", body: "missing")
            #expect(missing.status == .unauthorized)
            #expect(missing.headers["www-authenticate"] == ["Bearer realm=\"kbridge\""])
            let expiredAnswer = try await request("\(base)/jwt", body: "expired", headers: [("Authorization", "Bearer \(expired)")])
            #expect(expiredAnswer.status == .unauthorized)
            #expect(expiredAnswer.json["code"] as? String == "token_expired")
            #expect(expiredAnswer.headers["www-authenticate"].first?.contains("error=\"invalid_token\"") == true)
            for (name, token) in [("wrong key", wrongKey), ("wrong issuer", wrongIssuer), ("no consumer", noConsumer),
                                  ("RS public key as HMAC secret", confusedToken), ("alg none", unsigned), ("garbage", "a.b.c")] {
                let answer = try await request("\(base)/jwt", body: name, headers: [("Authorization", "Bearer \(token)")])
                #expect(answer.status == .unauthorized, "\(name): \(answer.body)")
                #expect(answer.json["code"] as? String == "invalid_token", "\(name): \(answer.body)")
            }
            for (body, token) in [("rs256", good), ("hs256", goodHS), ("leeway", withinLeeway)] {
                let answer = try await request("\(base)/jwt", body: body, headers: [("Authorization", "Bearer \(token)")])
                #expect(answer.status == .ok, "\(body): \(answer.body)")
            }
            let metrics = try await request("\(base)/metrics", method: .GET)
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_failures_total{route="jwt",reason="expired_token"}"#) == 1)
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_failures_total{route="jwt",reason="invalid_token"}"#) == 6)
            #expect(Self.metric(metrics.body, #"kbridge_client_auth_successes_total{route="jwt",method="jwt"}"#) == 3)
        }
        let messages = try await readTopic(topic, minimumCount: 3)
        #expect(messages.count == 3)
        #expect(messages.compactMap { Self.recordHeader($0, "x-consumer") }.sorted() == ["svc-a", "svc-a", "svc-b"])
    }

    @Test func aWorkflowReadsTheConsumerAsClientConsumer() async throws {
        let topic = uniqueTopic("auth-wf")
        let yaml = """
        routes:
          - path: /wf
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async_flush_timeout: 5
            client_authentication:
              api_key:
                keys: [{consumer: tenant-7, key: tenant-7-key-0123456789}]
            workflow:
              nodes:
                - {name: WHO, type: property, property: client.consumer}
                - {name: KEY, type: jq, input: WHO, jq: '"by-" + .', output: SET_KEY}
                - {name: SET_KEY, type: property, property: kafka.key}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let refused = try await request("\(base)/wf", body: "x", headers: [("apikey", "nope")])
            #expect(refused.status == .unauthorized)
            let answer = try await request("\(base)/wf", body: "x", headers: [("apikey", "tenant-7-key-0123456789")])
            #expect(answer.status == .ok, "\(answer.body)")
        }
        let messages = try await readTopic(topic, minimumCount: 1)
        #expect(messages.map(\.keyString) == ["by-tenant-7"])
    }
}

/// `rate_limit`: 429 with `Retry-After` and `RateLimit-*`, recovery once the bucket refills, per-consumer buckets.
@Suite(.timeLimit(.minutes(3)))
struct RateLimitRouteTests {
    @Test func theRouteBucketAnswers429WithHeadersThenRecovers() async throws {
        let topic = uniqueTopic("ratelimit")
        let yaml = """
        routes:
          - path: /limited
            name: limited
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async_flush_timeout: 5
            rate_limit:
              route: {rate: 2, per: second, burst: 2}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let first = try await request("\(base)/limited", body: "1")
            #expect(first.status == .ok)
            #expect(first.headers["ratelimit-limit"] == ["2"])
            _ = try await request("\(base)/limited", body: "2")
            // Two tokens, refilled at 2 a second: on a loaded machine a third request may find a refilled token, so the
            // test sends until one is refused (at most a few).
            var limited: TestResponse?
            for index in 0..<20 {
                let answer = try await request("\(base)/limited", body: "more \(index)")
                if answer.status == .tooManyRequests { limited = answer; break }
            }
            let refused = try #require(limited, "no 429 after 22 requests at a limit of 2 a second")
            #expect(refused.json["code"] as? String == "rate_limited")
            #expect(refused.headers["retry-after"] == ["1"])
            #expect(refused.headers["ratelimit-limit"] == ["2"])
            #expect(refused.headers["ratelimit-remaining"] == ["0"])
            #expect(refused.headers["ratelimit-reset"].first.flatMap { Int($0) }.map { (1...2).contains($0) } == true)
            try await Task.sleep(for: .milliseconds(1100))
            let recovered = try await request("\(base)/limited", body: "recovered")
            #expect(recovered.status == .ok, "\(recovered.body)")
            let metrics = try await request("\(base)/metrics", method: .GET)
            #expect((ClientAuthenticationRouteTests.metric(metrics.body, #"kbridge_rate_limited_total{route="limited",scope="route"}"#) ?? 0) >= 1)
        }
    }

    @Test func eachConsumerHasItsOwnBucket() async throws {
        let yaml = """
        routes:
          - path: /per-consumer
            topic: \(uniqueTopic("ratelimit-consumer"))
            bootstrap_servers: BROKER
            producer_async_flush_timeout: 5
            client_authentication:
              api_key:
                keys:
                  - {consumer: alice, key: alice-key-0123456789abcdef}
                  - {consumer: bob, key: bob-key-0123456789abcdef}
            rate_limit:
              consumer: {rate: 1, per: minute}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let alice = try await request("\(base)/per-consumer", body: "a", headers: [("apikey", "alice-key-0123456789abcdef")])
            #expect(alice.status == .ok)
            let aliceAgain = try await request("\(base)/per-consumer", body: "a2", headers: [("apikey", "alice-key-0123456789abcdef")])
            #expect(aliceAgain.status == .tooManyRequests)
            #expect(aliceAgain.headers["retry-after"].first.flatMap { Int($0) }.map { (50...60).contains($0) } == true, "\(aliceAgain.headers)")
            let bob = try await request("\(base)/per-consumer", body: "b", headers: [("apikey", "bob-key-0123456789abcdef")])
            #expect(bob.status == .ok)
            // A refused credential does not take a token.
            let stranger = try await request("\(base)/per-consumer", body: "s", headers: [("apikey", "stranger-key-0123456789")])
            #expect(stranger.status == .unauthorized)
        }
    }
}

/// An argon2id hash of `ClientAuthenticationRouteTests.password`, made by Python's argon2-cffi 25.1.0 (m=1024, t=2, p=2).
enum PasswordHashAuthTestsData {
    static let argon2id = "$argon2id$v=19$m=1024,t=2,p=2$lV8NFXPv2rRsguIVXLRKNg$lekIxmTcDqtwt5OmH+yTFSFycIy3b6dbDrs8fVn7M6I"
}
