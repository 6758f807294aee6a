import Foundation
import JSON
import JWT
import Secrets
import Testing
@testable import Workflow

/// The `jwt_decode`, `jwt_sign` and `jwt_verify` nodes in workflows: wiring, defaults, failures, masking.
/// Keys: the test-only keys of Tests/JWTTests/keys.
@Suite(.timeLimit(.minutes(2)))
struct WorkflowJWTTests {
    static let services = WorkflowServices()
    static let keys = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../JWTTests/keys").standardized

    static func key(_ name: String) -> String {
        (try? String(contentsOf: keys.appendingPathComponent(name), encoding: .utf8)) ?? "missing test key \(name)"
    }

    /// A string as a JSON string literal (PEM has newlines).
    static func literal(_ text: String) -> String { JSONValue.string(text).jsonText }

    static let secret = "workflow-test-hmac-secret-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEF"

    func workflow(_ json: String, vault: [(name: String, secret: Secret)] = []) throws -> Workflow {
        let value = try JSONParser.parse(json)
        return try Workflow(try WorkflowDefinition.parse(value, vault: vault), services: Self.services, defaultTimeout: .seconds(60))  // far from any run's time: see WorkflowExecutionTests
    }

    func request(authorization: String?) -> WorkflowRequest {
        WorkflowRequest(method: "POST", path: "/in", query: JSONObject(), headers: authorization.map { [("Authorization", $0)] } ?? [],
                        body: Array(#"{"order":1}"#.utf8), contentType: "application/json", port: 8080, clientIP: "127.0.0.1",
                        clientPort: 5555, routeName: "test", requestID: "req-1", defaultTopic: "default-topic")
    }

    func idpToken(_ claims: String, algorithm: JWTSignatureAlgorithm = .rs256, key: String = "rsa.pem") async throws -> String {
        try await JWTSigningKey(parsing: Self.key(key), algorithm: algorithm).sign(claims: try JSONParser.parse(claims), keyID: "idp-1").token
    }

    /// Verify the IdP's token, re-sign some of its claims with kbridge's key, decode the result; the exit answers all.
    var resignFlow: String {
        """
        {"debug": true, "nodes": [
          {"name": "KEYS", "type": "static", "values": {"idp": \(Self.literal(Self.key("rsa.pub.pem")))}},
          {"name": "TOKEN", "type": "jq", "input": "request.headers", "jq": ".Authorization // .authorization"},
          {"name": "VERIFY", "type": "jwt_verify", "inputs": {"token": "TOKEN", "key": "KEYS.idp"},
           "issuers": ["https://idp.example"], "audiences": ["kbridge"], "required_claims": ["sub"], "allowed_algorithms": ["RS256", "PS256"]},
          {"name": "PICK", "type": "jq", "input": "VERIFY.claims", "jq": "{sub, scope}"},
          {"name": "SIGN", "type": "jwt_sign", "algorithm": "ES256", "inputs": {"claims": "PICK", "key": "vault.signing_key"},
           "static_claims": {"iss": "kbridge", "sub": "overridden", "aud": "upstream"}, "kid": "kb-1", "expires_in": 60},
          {"name": "DECODE", "type": "jwt_decode", "input": "SIGN.token"},
          {"name": "ANSWER", "type": "jq", "inputs": {"token": "SIGN.token", "header": "SIGN.header", "claims": "SIGN.claims",
           "decoded": "DECODE.payload", "verified_header": "VERIFY.header", "signature": "DECODE.signature"}, "jq": "."},
          {"name": "EXIT", "type": "exit", "inputs": {"body": "ANSWER"}}]}
        """
    }

    var signingVault: [(name: String, secret: Secret)] { [("signing_key", Secret(Self.key("ec256.pem"), source: "test"))] }

    @Test func verifyResignAndDecodeInOneWorkflow() async throws {
        let flow = try workflow(resignFlow, vault: signingVault)
        let token = try await idpToken(#"{"iss":"https://idp.example","aud":["kbridge","other"],"sub":"alice","scope":"orders:write","email":"a@x"}"#)
        let before = Int(Date().timeIntervalSince1970)
        let execution = flow.execution(for: request(authorization: "Bearer \(token)"))
        let decision = try await execution.runUntilProduce()
        guard case .exit(let response) = decision else { Issue.record("expected the exit's answer, got \(decision)"); return }
        let answer = try JSONParser.parse(response.body)
        // inputs.claims override static_claims; iat, nbf, exp are the node's.
        let claims = try #require(answer["claims"]?.objectValue)
        #expect(claims["sub"] == .string("alice"))
        #expect(claims["scope"] == .string("orders:write"))
        #expect(claims["iss"] == .string("kbridge"))
        #expect(claims["aud"] == .string("upstream"))
        #expect(claims["email"] == nil)
        let issuedAt = try #require(claims["iat"]?.numberValue?.int64)
        #expect(issuedAt >= Int64(before) && issuedAt <= Int64(before) + 60)
        #expect(claims["exp"]?.numberValue?.int64 == issuedAt + 60)
        #expect(claims["nbf"]?.numberValue?.int64 == issuedAt)
        #expect(answer["header"] == .object(JSONObject([("alg", .string("ES256")), ("typ", .string("JWT")), ("kid", .string("kb-1"))])))
        #expect(answer["decoded"] == .object(claims))
        #expect(answer["verified_header"]?["kid"] == .string("idp-1"))
        // The token verifies with kbridge's public key, and its signature is the decoded one.
        let signed = try #require(answer["token"]?.stringValue)
        #expect(signed.hasSuffix("." + (answer["signature"]?.stringValue ?? "-")))
        let keys = try await JWTVerificationKeys(parsing: Self.key("ec256.pub.pem"))
        #expect(try keys.verify(signed).claims == .object(claims))
        // The trace masks the signing key (a vault value) and the key inputs (here a static PEM public key).
        let traceBytes = await execution.traceJSON()
        let trace = String(decoding: traceBytes, as: UTF8.self)
        #expect(!trace.contains("PRIVATE KEY"), "\(trace)")
        let events = try #require(try JSONParser.parse(traceBytes)["events"]?.arrayValue)
        for node in ["VERIFY", "SIGN"] {
            let run = try #require(events.first { $0["name"] == .string(node) && $0["action"] == .string("run") })
            let key = try #require(run["values"]?.arrayValue?.first { $0["key"] == .string("key") })
            #expect(key["value"] == .string("********"), "\(node): \(key.jsonText)")
        }
    }

    @Test(arguments: [
        ("expired", "token expired at"),
        ("wrong-issuer", "issuer 'https://evil.example' not allowed"),
        ("wrong-audience", "audience 'someone-else' not allowed"),
        ("no-subject", "missing claim 'sub'"),
        ("other-key", "signature invalid"),
        ("hs256-with-public-key", "algorithm 'HS256' not allowed"),
        ("es256", "algorithm 'ES256' not allowed (allowed: RS256, PS256)"),
        ("garbage", "malformed token"),
        ("missing", "no token"),
    ])
    func aVerificationFailureFailsTheNodeWithItsReason(_ scenario: String, _ reason: String) async throws {
        let flow = try workflow(resignFlow, vault: signingVault)
        let now = Int(Date().timeIntervalSince1970)
        let good = #""iss":"https://idp.example","aud":"kbridge""#
        let token: String? = switch scenario {
        case "expired": try await idpToken(#"{\#(good),"sub":"a","exp":\#(now - 120)}"#)
        case "wrong-issuer": try await idpToken(#"{"iss":"https://evil.example","aud":"kbridge","sub":"a"}"#)
        case "wrong-audience": try await idpToken(#"{"iss":"https://idp.example","aud":"someone-else","sub":"a"}"#)
        case "no-subject": try await idpToken(#"{\#(good)}"#)
        case "other-key": try await idpToken(#"{\#(good),"sub":"a"}"#, key: "rsa2.pem")
        case "hs256-with-public-key":
            // jwt_sign refuses a PEM as an HMAC secret, so the forged token is built by hand.
            "Bearer " + forgedHS256()
        case "es256": try await idpToken(#"{\#(good),"sub":"a"}"#, algorithm: .es256, key: "ec256.pem")
        case "garbage": "Bearer not.a-token"
        default: nil
        }
        let execution = flow.execution(for: request(authorization: token.map { $0.hasPrefix("Bearer ") ? $0 : "Bearer \($0)" }))
        do {
            let decision = try await execution.runUntilProduce()
            Issue.record("\(scenario): expected the node to fail, got \(decision)")
        } catch {
            guard case .nodeFailed(let node, let message) = error else { Issue.record("\(error)"); return }
            #expect(node.name == "VERIFY")
            #expect(message.contains(reason), "\(scenario): \(message)")
            #expect(!message.contains("BEGIN"), "\(message)")
        }
        let trace = String(decoding: await execution.traceJSON(), as: UTF8.self)
        #expect(trace.contains("NODE_ERROR"))
        #expect(!trace.contains("PRIVATE KEY"))
    }

    /// An HS256 token as an attacker who takes the IdP's public key for an HMAC secret would send it.
    func forgedHS256() -> String {
        let header = base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = base64URL(Array(#"{"iss":"https://idp.example","aud":"kbridge","sub":"admin"}"#.utf8))
        // The signature does not matter: the algorithm is refused before any signature check.
        return header + "." + payload + "." + base64URL(Array(repeating: 7, count: 32))
    }

    func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    @Test func anHMACKeyFromTheVaultSignsAndVerifiesAndNeverShows() async throws {
        let flow = try workflow("""
        {"debug": true, "nodes": [
          {"name": "SIGN", "type": "jwt_sign", "algorithm": "HS512", "inputs": {"claims": "request.body", "key": "vault.hmac"}, "typ": "at+jwt",
           "not_before": -30, "expires_in": 0},
          {"name": "VERIFY", "type": "jwt_verify", "inputs": {"token": "SIGN.token", "key": "vault.hmac"}, "leeway": 600},
          {"name": "EXIT", "type": "exit", "inputs": {"body": "VERIFY"}}]}
        """, vault: [("hmac", Secret(Self.secret, source: "test"))])
        let execution = flow.execution(for: request(authorization: nil))
        guard case .exit(let response) = try await execution.runUntilProduce() else { Issue.record("expected an exit"); return }
        let answer = try JSONParser.parse(response.body)
        #expect(answer["claims"]?["order"] == .integer(1))
        #expect(answer["header"]?["typ"] == .string("at+jwt"))
        let claims = try #require(answer["claims"]?.objectValue)
        #expect(claims["exp"] == claims["iat"])  // expires_in 0: valid only within the leeway
        #expect(claims["nbf"]?.numberValue?.int64 == (claims["iat"]?.numberValue?.int64).map { $0 - 30 })
        #expect(!String(decoding: await execution.traceJSON(), as: UTF8.self).contains(Self.secret))
    }

    @Test func aPrivateKeyInAStaticNodeNeverShowsInTheTrace() async throws {
        let flow = try workflow("""
        {"debug": true, "nodes": [
          {"name": "KEYS", "type": "static", "values": {"private": \(Self.literal(Self.key("ed25519.pem")))}},
          {"name": "SIGN", "type": "jwt_sign", "algorithm": "EdDSA", "inputs": {"claims": "request.body", "key": "KEYS.private"}},
          {"name": "EXIT", "type": "exit", "inputs": {"body": "SIGN.token"}}]}
        """)
        let execution = flow.execution(for: request(authorization: nil))
        guard case .exit(let response) = try await execution.runUntilProduce() else { Issue.record("expected an exit"); return }
        let token = String(decoding: response.body, as: UTF8.self)
        #expect(try await JWTVerificationKeys(parsing: Self.key("ed25519.pub.pem")).verify(token).claims["order"] == .integer(1))
        let trace = String(decoding: await execution.traceJSON(), as: UTF8.self)
        #expect(trace.contains("KEYS") && !trace.contains("PRIVATE KEY") && !trace.contains("MC4CAQAwBQYDK2Vw"), "\(trace)")
    }

    @Test func eachNodeParsesAKeyTextOnce() async throws {
        // The nodes' work with caches the test can see: 20 runs with one key text parse it once (one entry, every
        // later run a hit); a second text adds an entry; the tokens verify.
        let signCache = JWTKeyCache<JWTSigningKey>(capacity: 8)
        let verifyCache = JWTKeyCache<JWTVerificationKeys>(capacity: 8)
        let sign = JWTNodes.sign(JWTSignSettings(algorithm: .rs256), cache: signCache)
        let verify = JWTNodes.verify(JWTVerifySettings(), cache: verifyCache)
        let deadline = ContinuousClock.now + .seconds(60)
        for round in 0..<20 {
            let signed = try await sign(NodeInputs(ports: ["claims": try JSONParser.parse(#"{"round":\#(round)}"#), "key": .string(Self.key("rsa.pem"))]), deadline)
            let token = try #require(signed.ports["token"])
            let verified = try await verify(NodeInputs(ports: ["token": token, "key": .string(Self.key("rsa.pub.pem"))]), deadline)
            #expect(verified.ports["claims"]?["round"] == .integer(round))
        }
        #expect(signCache.count == 1 && verifyCache.count == 1)
        let other = try await sign(NodeInputs(ports: ["claims": .object(JSONObject()), "key": .string(Self.key("rsa2.pem"))]), deadline)
        #expect(signCache.count == 2)
        // A JWKS given as an object (a call's JSON body) is a key too.
        let jwks = try JSONParser.parse(#"{"keys":[\#(Self.key("rsa2.pub.jwk.json")),\#(Self.key("rsa.pub.jwk.json"))]}"#)
        let verified = try await verify(NodeInputs(ports: ["token": try #require(other.ports["token"]), "key": jwks]), deadline)
        #expect(verified.ports["claims"]?["exp"] != nil)
        #expect(verifyCache.count == 2)
    }

    @Test func jwtAttributesAreCheckedWithKongsNamesAndDefaults() throws {
        func problems(_ node: String) -> [WorkflowConfigurationError.Issue] {
            do {
                _ = try WorkflowDefinition.parse(try JSONParser.parse(#"{"nodes":[\#(node)]}"#))
                return []
            } catch let error as WorkflowConfigurationError {
                return error.issues
            } catch {
                return [.init(path: "json", reason: "\(error)")]
            }
        }
        func expect(_ node: String, at path: String, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let found = problems(node)
            #expect(found.contains { $0.path == path && $0.reason.contains(text) }, "expected \(path): \(text), got \(found)",
                    sourceLocation: sourceLocation)
        }
        expect(#"{"name":"S","type":"jwt_sign"}"#, at: "nodes[0].algorithm", "required key missing")
        expect(#"{"name":"S","type":"jwt_sign","algorithm":"RS257"}"#, at: "nodes[0].algorithm", "unknown algorithm 'RS257'")
        expect(#"{"name":"S","type":"jwt_sign","algorithm":"none"}"#, at: "nodes[0].algorithm", "unknown algorithm 'none'")
        expect(#"{"name":"S","type":"jwt_sign","algorithm":"HS256","expires_in":"300"}"#, at: "nodes[0].expires_in", "expected an integer")
        expect(#"{"name":"S","type":"jwt_sign","algorithm":"HS256","static_claims":[1]}"#, at: "nodes[0].static_claims", "expected an object")
        expect(#"{"name":"S","type":"jwt_sign","algorithm":"HS256","leeway":1}"#, at: "nodes[0].leeway", "unknown field for a jwt_sign node")
        expect(#"{"name":"V","type":"jwt_verify","allowed_algorithms":["RS256","none"]}"#, at: "nodes[0].allowed_algorithms[1]",
               "'none' is never allowed")
        expect(#"{"name":"V","type":"jwt_verify","leeway":-1}"#, at: "nodes[0].leeway", "out of range")
        expect(#"{"name":"V","type":"jwt_verify","validate_exp":"yes"}"#, at: "nodes[0].validate_exp", "expected true or false")
        expect(#"{"name":"V","type":"jwt_verify","inputs":{"tokn":"request.body"}}"#, at: "nodes[0].inputs.tokn", "invalid input port name")
        expect(#"{"name":"D","type":"jwt_decode","algorithm":"RS256"}"#, at: "nodes[0].algorithm", "unknown field for a jwt_decode node")
        expect(#"{"name":"D","type":"jwt_decode","outputs":{"claims":"response.body"}}"#, at: "nodes[0].outputs.claims", "invalid output port name")
        // A key from a static node is checked at start-up (and never quoted).
        let publicPEM = Self.literal(Self.key("rsa.pub.pem"))
        expect(#"{"name":"K","type":"static","values":{"k":\#(publicPEM),"short":"abc","jwks":{"keys":[]}}},"#
               + #"{"name":"S","type":"jwt_sign","algorithm":"RS256","inputs":{"key":"K.k"}}"#, at: "nodes[1].inputs.key",
               "the key from K.k is not usable: invalid key: a RSA public key cannot sign")
        expect(#"{"name":"K","type":"static","values":{"k":\#(publicPEM)}},{"name":"S","type":"jwt_sign","algorithm":"HS256","inputs":{"key":"K.k"}}"#,
               at: "nodes[1].inputs.key", "algorithm 'HS256' not allowed for an RSA key")
        expect(#"{"name":"K","type":"static","values":{"short":"abc"}},{"name":"V","type":"jwt_verify","inputs":{"key":"K.short"}}"#,
               at: "nodes[1].inputs.key", "the HMAC secret has 3 bytes")
        expect(#"{"name":"K","type":"static","values":{"jwks":{"keys":[]}}},{"name":"V","type":"jwt_verify","inputs":{"key":"K.jwks"}}"#,
               at: "nodes[1].inputs.key", "the JWKS has no usable signature key")
        #expect(problems(#"{"name":"K","type":"static","values":{"k":\#(publicPEM)}},{"name":"V","type":"jwt_verify","inputs":{"key":"K.k"}}"#).isEmpty)
        #expect(!problems(#"{"name":"K","type":"static","values":{"k":\#(publicPEM)}},{"name":"S","type":"jwt_sign","algorithm":"RS256","inputs":{"key":"K.k"}}"#)
            .contains { $0.reason.contains("BEGIN") })
        // Defaults (Kong's).
        let definition = try WorkflowDefinition.parse(try JSONParser.parse(
            #"{"nodes":[{"name":"S","type":"jwt_sign","algorithm":"EdDSA"},{"name":"V","type":"jwt_verify"},{"name":"D","type":"jwt_decode"}]}"#))
        guard case .jwtSign(let sign) = definition.nodes[0].settings, case .jwtVerify(let verify) = definition.nodes[1].settings else {
            Issue.record("unexpected settings")
            return
        }
        #expect(sign.algorithm == .edDSA && sign.expiresIn == 300 && sign.notBefore == 0 && sign.keyID == nil && sign.type == "JWT")
        #expect(sign.staticClaims.count == 0)
        let options = verify.options
        #expect(options.allowedAlgorithms.isEmpty && options.issuers.isEmpty && options.audiences.isEmpty && options.requiredClaims.isEmpty)
        #expect(options.leeway == 0 && options.validateExpiry && options.validateNotBefore)
    }
}
