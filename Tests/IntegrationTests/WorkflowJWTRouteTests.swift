import Bridge
import Foundation
import JSON
import JWT
import Kafka
import NIOHTTP1
import TestSupport
import Testing

/// Kong's "JWT from one IdP re-signed for the upstream" through a real bridge and the real broker: `jwt_verify` checks
/// the client's token with the IdP's key, `jwt_sign` makes kbridge's own token with some of its claims, and the
/// message carries it in a record header; the token read back verifies with kbridge's public key.
@Suite(.timeLimit(.minutes(3)))
struct WorkflowJWTRouteTests {
    static let keys = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../JWTTests/keys").standardized

    static func key(_ name: String) -> String {
        (try? String(contentsOf: keys.appendingPathComponent(name), encoding: .utf8)) ?? "missing test key \(name)"
    }

    /// A YAML double-quoted scalar (JSON string syntax is valid YAML) for multi-line PEM text.
    static func quoted(_ text: String) -> String { JSONValue.string(text).jsonText }

    func withYAMLBridge<T>(_ yaml: String, _ body: (String, KafkaBridge) async throws -> T) async throws -> T {
        let text = yaml.replacingOccurrences(of: "BROKER", with: try TestBroker.bootstrapServers)
        return try await withBridge(configuration: try BridgeConfiguration.parse(yaml: text, file: "test.yaml").configuration, body)
    }

    @Test func aTokenFromTheIdPIsVerifiedResignedAndProducedInARecordHeader() async throws {
        let topic = uniqueTopic("wf-jwt")
        let yaml = """
        routes:
          - path: /orders
            topic: \(topic)
            bootstrap_servers: BROKER
            workflow:
              debug: true
              nodes:
                - name: KEYS
                  type: static
                  values:
                    idp: \(Self.quoted(Self.key("rsa.pub.pem")))
                    kbridge: \(Self.quoted(Self.key("ed25519.pem")))
                - {name: TOKEN, type: jq, input: request.headers, jq: '.Authorization // .authorization'}
                - name: VERIFY
                  type: jwt_verify
                  inputs: {token: TOKEN, key: KEYS.idp}
                  issuers: [https://idp.example]
                  audiences: [orders-api]
                  required_claims: [sub]
                  allowed_algorithms: [RS256]
                - {name: PICK, type: jq, input: VERIFY.claims, jq: '{sub, tenant}'}
                - name: SIGN
                  type: jwt_sign
                  algorithm: EdDSA
                  kid: kbridge-1
                  expires_in: 120
                  static_claims: {iss: kbridge, aud: orders-consumer}
                  inputs: {claims: PICK, key: KEYS.kbridge}
                - name: HEADERS
                  type: jq
                  input: SIGN.token
                  jq: '{"x-upstream-token": .}'
                  output: SET_HEADERS
                - {name: SET_HEADERS, type: property, property: kafka.headers}
        """
        let now = Int(Date().timeIntervalSince1970)
        let idp = try await JWTSigningKey(parsing: Self.key("rsa.pem"), algorithm: .rs256)
        let incoming = try idp.sign(claims: try JSONParser.parse(
            #"{"iss":"https://idp.example","aud":"orders-api","sub":"alice","tenant":"t-42","email":"alice@example.com","exp":\#(now + 300)}"#)).token
        let expired = try idp.sign(claims: try JSONParser.parse(
            #"{"iss":"https://idp.example","aud":"orders-api","sub":"mallory","exp":\#(now - 300)}"#)).token
        try await withYAMLBridge(yaml) { base, bridge in
            let answer = try await request("\(base)/orders", body: #"{"id":7}"#,
                                           headers: [("content-type", "application/json"), ("Authorization", "Bearer \(incoming)")])
            #expect(answer.status == .ok, "\(answer.body)")
            #expect(answer.json["message"] as? String == "message sent")
            // A refused token fails the node: Kong's node failure (500, the reason in debug), nothing produced.
            let refused = try await request("\(base)/orders", body: #"{"id":8}"#,
                                            headers: [("content-type", "application/json"), ("Authorization", "Bearer \(expired)")])
            #expect(refused.status == .internalServerError, "\(refused.body)")
            #expect(refused.json["code"] as? String == "workflow_node_failed")
            #expect((refused.json["error"] as? String)?.contains("token expired at") == true, "\(refused.body)")
            #expect((refused.json["node"] as? [String: Any])?["name"] as? String == "VERIFY")
            #expect(!refused.body.contains("PRIVATE KEY"))
            #expect(bridge.statistics.enqueued == 1)
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        #expect(message.json["body"] as? String == #"{"id":7}"#)
        let header = try #require(message.headers.first { $0.name == "x-upstream-token" }?.value)
        let token = String(decoding: header, as: UTF8.self)
        let kbridgeKeys = try await JWTVerificationKeys(parsing: Self.key("ed25519.pub.pem"))
        var options = JWTVerificationOptions()
        options.issuers = ["kbridge"]
        options.audiences = ["orders-consumer"]
        let verified = try kbridgeKeys.verify(token, options: options)
        #expect(verified.header["kid"] == .string("kbridge-1"))
        #expect(verified.header["alg"] == .string("EdDSA"))
        #expect(verified.claims["sub"] == .string("alice"))
        #expect(verified.claims["tenant"] == .string("t-42"))
        #expect(verified.claims["email"] == nil)
        let issuedAt = try #require(verified.claims["iat"]?.numberValue?.int64)
        #expect(verified.claims["exp"]?.numberValue?.int64 == issuedAt + 120)
        // The IdP's key does not verify kbridge's token.
        let idpKeys = try await JWTVerificationKeys(parsing: Self.key("rsa.pub.pem"))
        #expect(throws: JWTError.self) { try idpKeys.verify(token) }
    }
}
