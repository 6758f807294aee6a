import Crypto
import Synchronization
import Foundation
import JSON
import Testing
@testable import JWT

/// The JWT module: every algorithm both ways, tokens from and for PyJWT, claim checks, algorithm confusion, hostile
/// tokens. Keys are the test-only keys under keys/.
@Suite(.timeLimit(.minutes(5)))
struct JWTTests {
    /// Claims that exercise kbridge's JSON: a fraction, an integer beyond 64 bits, nesting, Unicode, null.
    static let richClaims = JSONValue.parsing(#"""
    {"sub":"user-1","ratio":1.5,"big":123456789012345678901234567890,"neg":-42,"nested":{"list":[1,"two",{"three":3}],"empty":{}},
     "unicode":"grüße ✓ \u0000 \"quoted\"","flag":true,"nothing":null}
    """#)

    static let fixedNow = 1_800_000_000.0

    func options(_ configure: (inout JWTVerificationOptions) -> Void = { _ in }) -> JWTVerificationOptions {
        var options = JWTVerificationOptions()
        options.now = Self.fixedNow
        configure(&options)
        return options
    }

    func sign(_ claims: JSONValue, _ algorithm: JWTSignatureAlgorithm = .rs256, keyID: String? = nil) async throws -> String {
        try await JWTSigningKey(parsing: TestKeys.privateKey(for: algorithm), algorithm: algorithm).sign(claims: claims, keyID: keyID).token
    }

    func expectFailure(_ token: String, keys: JWTVerificationKeys, options: JWTVerificationOptions? = nil, containing text: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let verified = try keys.verify(token, options: options ?? self.options())
            Issue.record("expected a failure containing '\(text)', verified \(verified.claims.jsonText)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.description.contains(text), "expected '\(text)' in: \(error.description)", sourceLocation: sourceLocation)
        }
    }

    // MARK: - Round trips

    @Test(arguments: JWTSignatureAlgorithm.allCases)
    func everyAlgorithmSignsAndVerifiesWithPEMKeys(_ algorithm: JWTSignatureAlgorithm) async throws {
        let token = try await sign(Self.richClaims, algorithm, keyID: "k1")
        let keys = try await JWTVerificationKeys(parsing: TestKeys.publicKey(for: algorithm))
        let verified = try keys.verify(token, options: options())
        #expect(verified.claims == Self.richClaims)
        #expect(verified.header == .parsing(#"{"alg":"\#(algorithm.rawValue)","typ":"JWT","kid":"k1"}"#))
        // The claims are written by kbridge's writer: the number texts are as given.
        let payload = try JWTToken.decode(token).payload
        #expect(payload["big"]?.numberValue?.text == "123456789012345678901234567890")
        #expect(payload["ratio"]?.numberValue?.text == "1.5")
        // A flipped signature byte fails.
        var parts = token.split(separator: ".").map(String.init)
        var signature = Base64URL.decode(parts[2]) ?? []
        signature[signature.count / 2] ^= 0x01
        parts[2] = Base64URL.encode(signature)
        expectFailure(parts.joined(separator: "."), keys: keys, containing: "signature invalid")
        // A changed payload fails.
        parts = token.split(separator: ".").map(String.init)
        parts[1] = Base64URL.encode(#"{"sub":"admin"}"#)
        expectFailure(parts.joined(separator: "."), keys: keys, containing: "signature invalid")
    }

    @Test func jwkKeysSignAndCertificatesAndJWKsVerify() async throws {
        for (name, algorithm) in [("rsa", JWTSignatureAlgorithm.ps384), ("ec256", .es256), ("ec384", .es384), ("ec521", .es512), ("ed25519", .edDSA)] {
            let signer = try await JWTSigningKey(parsing: TestKeys.text("\(name).jwk.json"), algorithm: algorithm)
            #expect(signer.keyID == "\(name)-key")
            let signed = try signer.sign(claims: Self.richClaims)
            #expect(try JWTToken.decode(signed.token).header["kid"] == .string("\(name)-key"))
            let keys = try await JWTVerificationKeys(parsing: TestKeys.text("\(name).pub.jwk.json"))
            #expect(try keys.verify(signed.token, options: options()).claims == Self.richClaims)
        }
        let certificate = try await JWTVerificationKeys(parsing: TestKeys.text("rsa.cert.pem"))
        #expect(try certificate.verify(try await sign(Self.richClaims, .rs512), options: options()).claims == Self.richClaims)
        let ecCertificate = try await JWTVerificationKeys(parsing: TestKeys.text("ec256.cert.pem"))
        #expect(try ecCertificate.verify(try await sign(Self.richClaims, .es256), options: options()).claims == Self.richClaims)
        // An HMAC JWK (kty oct).
        let octJWK = #"{"kty":"oct","kid":"hmac-1","alg":"HS384","k":"\#(Base64URL.encode(TestKeys.secret))"}"#
        let hmacToken = try await JWTSigningKey(parsing: octJWK, algorithm: .hs384).sign(claims: Self.richClaims).token
        #expect(try await JWTVerificationKeys(parsing: TestKeys.secret).verify(hmacToken, options: options()).claims == Self.richClaims)
        #expect(try await JWTVerificationKeys(parsing: octJWK).verify(hmacToken, options: options()).claims == Self.richClaims)
    }

    @Test func aJWKSPicksTheKeyByKidOrTriesEachFittingKey() async throws {
        let jwks = #"{"keys":[\#(TestKeys.text("rsa.pub.jwk.json")),\#(TestKeys.text("rsa2.pub.jwk.json")),\#(TestKeys.text("ec256.pub.jwk.json")),"#
            + #"{"kty":"RSA","use":"enc","kid":"encryption","n":"AQAB","e":"AQAB"}]}"#
        let keys = try await JWTVerificationKeys(parsing: jwks)
        #expect(keys.count == 3)
        let second = try await JWTSigningKey(parsing: TestKeys.text("rsa2.jwk.json"), algorithm: .rs256)
        // By kid.
        let withKid = try second.sign(claims: .parsing(#"{"sub":"a"}"#)).token
        #expect(try keys.verify(withKid, options: options()).claims == .parsing(#"{"sub":"a"}"#))
        // Without a kid: each RSA key is tried.
        let withoutKid = try await JWTSigningKey(parsing: TestKeys.text("rsa2.pem"), algorithm: .rs256).sign(claims: .parsing(#"{"sub":"b"}"#)).token
        #expect(try keys.verify(withoutKid, options: options()).claims == .parsing(#"{"sub":"b"}"#))
        // A kid the set does not have.
        expectFailure(try second.sign(claims: .object(JSONObject()), keyID: "rotated-away").token, keys: keys, containing: "no key with kid 'rotated-away'")
        // The right kid, a key of the other type.
        expectFailure(try second.sign(claims: .object(JSONObject()), keyID: "ec256-key").token, keys: keys,
                      containing: "algorithm 'RS256' not allowed for an EC P-256 key")
        // The kid of the other RSA key: its signature does not match.
        expectFailure(try second.sign(claims: .object(JSONObject()), keyID: "rsa-key").token, keys: keys, containing: "signature invalid")
        // A JWK's alg pins the algorithm.
        let pinned = try await JWTVerificationKeys(parsing: #"{"keys":[\#(TestKeys.text("rsa.pub.jwk.json").dropLast()),"alg":"RS256"}]}"#)
        let ps256 = try await JWTSigningKey(parsing: TestKeys.text("rsa.pem"), algorithm: .ps256).sign(claims: .object(JSONObject())).token
        expectFailure(ps256, keys: pinned, containing: "algorithm 'PS256' not allowed: the key's JWK alg is 'RS256'")
    }

    // MARK: - PyJWT, both ways

    @Test func pyJWTAndKBridgeVerifyEachOthersTokensForEveryAlgorithm() async throws {
        let claims = Self.richClaims
        var kbridgeTokens: [(JWTSignatureAlgorithm, String)] = []
        var signCases: [JSONValue] = []
        var verifyCases: [JSONValue] = []
        for algorithm in JWTSignatureAlgorithm.allCases {
            let token = try await sign(claims, algorithm, keyID: "kb")
            kbridgeTokens.append((algorithm, token))
            let keyMember: (String, JSONValue) = TestKeys.name(for: algorithm).map { ("key_file", .string(TestKeys.path("\($0).pub.pem"))) }
                ?? ("key", .string(TestKeys.secret))
            verifyCases.append(.object(JSONObject([("id", .string(algorithm.rawValue)), ("alg", .string(algorithm.rawValue)), keyMember,
                                                   ("token", .string(token))])))
            let privateMember: (String, JSONValue) = TestKeys.name(for: algorithm).map { ("key_file", .string(TestKeys.path("\($0).pem"))) }
                ?? ("key", .string(TestKeys.secret))
            signCases.append(.object(JSONObject([("id", .string(algorithm.rawValue)), ("alg", .string(algorithm.rawValue)), privateMember,
                                                 ("claims", claims), ("headers", .parsing(#"{"kid":"py"}"#))])))
        }
        // PyJWT also checks that it refuses kbridge's token when given the wrong key.
        verifyCases.append(.parsing(#"{"id":"wrong-key","alg":"RS256","key_file":"\#(TestKeys.path("rsa2.pub.pem"))","token":"\#(kbridgeTokens[0].1)"}"#))
        let answers = try await PyJWT.run(sign: signCases, verify: verifyCases)
        for (algorithm, _) in kbridgeTokens {
            let answer = answers.verified[algorithm.rawValue]
            #expect(answer?["ok"] == .bool(true), "PyJWT refused kbridge's \(algorithm.rawValue) token: \(answer?.jsonText ?? "no answer")")
            #expect(answer?["claims"] == claims, "\(algorithm.rawValue): PyJWT read \(answer?["claims"]?.jsonText ?? "nothing")")
            #expect(answer?["header"]?["kid"] == .string("kb"))
            guard case .string(let pyToken)? = answers.signed[algorithm.rawValue] else {
                Issue.record("PyJWT signed no \(algorithm.rawValue) token")
                continue
            }
            let keys = try await JWTVerificationKeys(parsing: TestKeys.publicKey(for: algorithm))
            let verified = try keys.verify(pyToken, options: options())
            #expect(verified.claims == claims, "\(algorithm.rawValue): kbridge read \(verified.claims.jsonText)")
            #expect(verified.header["kid"] == .string("py"))
            #expect(verified.header["alg"] == .string(algorithm.rawValue))
        }
        #expect(answers.verified["wrong-key"]?["ok"] == .bool(false))
    }

    // MARK: - Claims

    @Test func expiryAndNotBeforeWithAndWithoutLeeway() async throws {
        let keys = try await JWTVerificationKeys(parsing: TestKeys.publicKey(for: .es256))
        let now = Self.fixedNow
        let expired = try await sign(.parsing(#"{"exp":\#(Int(now) - 10)}"#), .es256)
        expectFailure(expired, keys: keys, containing: "token expired at 2027-01-15T07:59:50Z")
        #expect(throws: JWTError.expired(at: now - 10, now: now, leeway: 0)) { try keys.verify(expired, options: options()) }
        _ = try keys.verify(expired, options: options { $0.leeway = 30 })
        _ = try keys.verify(expired, options: options { $0.validateExpiry = false })
        // exp == now is expired (the time must be before exp).
        expectFailure(try await sign(.parsing(#"{"exp":\#(Int(now))}"#), .es256), keys: keys, containing: "expired")
        let early = try await sign(.parsing(#"{"nbf":\#(Int(now) + 60),"exp":\#(Int(now) + 600)}"#), .es256)
        expectFailure(early, keys: keys, containing: "token not yet valid until 2027-01-15T08:01:00Z")
        expectFailure(early, keys: keys, options: options { $0.leeway = 59 }, containing: "not yet valid")
        _ = try keys.verify(early, options: options { $0.leeway = 60 })
        _ = try keys.verify(early, options: options { $0.validateNotBefore = false })
        // Fractional times and a wrong type.
        _ = try keys.verify(try await sign(.parsing(#"{"exp":\#(Int(now)).5}"#), .es256), options: options())
        expectFailure(try await sign(.parsing(#"{"exp":"tomorrow"}"#), .es256), keys: keys, containing: "invalid claim 'exp': expected a number")
    }

    @Test func issuerAudienceAndRequiredClaims() async throws {
        let keys = try await JWTVerificationKeys(parsing: TestKeys.secret)
        let token = try await sign(.parsing(#"{"iss":"https://idp.example","aud":["api","billing"],"sub":"u1"}"#), .hs256)
        let strict = options {
            $0.issuers = ["https://idp.example"]
            $0.audiences = ["billing"]
            $0.requiredClaims = ["sub"]
        }
        #expect(try keys.verify(token, options: strict).claims["sub"] == .string("u1"))
        expectFailure(token, keys: keys, options: options { $0.issuers = ["https://other.example"] },
                      containing: "issuer 'https://idp.example' not allowed")
        expectFailure(token, keys: keys, options: options { $0.audiences = ["shop"] }, containing: "audience 'api, billing' not allowed")
        expectFailure(token, keys: keys, options: options { $0.requiredClaims = ["sub", "email"] }, containing: "missing claim 'email'")
        let single = try await sign(.parsing(#"{"aud":"api"}"#), .hs256)
        _ = try keys.verify(single, options: options { $0.audiences = ["api"] })
        expectFailure(single, keys: keys, options: options { $0.issuers = ["x"] }, containing: "issuer missing")
        expectFailure(try await sign(.parsing(#"{"aud":7}"#), .hs256), keys: keys, options: options { $0.audiences = ["api"] },
                      containing: "invalid claim 'aud'")
        expectFailure(token, keys: keys, options: options { $0.allowedAlgorithms = [.hs512, .rs256] },
                      containing: "algorithm 'HS256' not allowed (allowed: HS512, RS256)")
    }

    // MARK: - Algorithm confusion

    /// A token signed with HMAC over `secret`, whatever its header says (what an attacker builds).
    func hmacToken(header: String, payload: String = #"{"sub":"admin"}"#, secret: String) -> String {
        let input = Base64URL.encode(header) + "." + Base64URL.encode(payload)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: SymmetricKey(data: Array(secret.utf8)))
        return input + "." + Base64URL.encode(Array(mac))
    }

    @Test func theAlgorithmIsBoundToTheKeyType() async throws {
        let rsaPublicPEM = TestKeys.text("rsa.pub.pem")
        let rsaKeys = try await JWTVerificationKeys(parsing: rsaPublicPEM)
        // The classic: HS256 "signed" with the RSA public key's PEM text as the secret.
        expectFailure(hmacToken(header: #"{"alg":"HS256","typ":"JWT"}"#, secret: rsaPublicPEM), keys: rsaKeys,
                      containing: "algorithm 'HS256' not allowed for an RSA key")
        for name in ["rsa.cert.pem", "rsa.pub.jwk.json", "ec256.pub.pem", "ed25519.pub.pem"] {
            let keys = try await JWTVerificationKeys(parsing: TestKeys.text(name))
            expectFailure(hmacToken(header: #"{"alg":"HS256"}"#, secret: TestKeys.text(name)), keys: keys, containing: "not allowed for an")
        }
        // alg none, in any case, with or without a signature.
        for alg in ["none", "None", "NONE"] {
            let unsigned = Base64URL.encode(#"{"alg":"\#(alg)"}"#) + "." + Base64URL.encode(#"{"sub":"admin"}"#) + "."
            expectFailure(unsigned, keys: rsaKeys, containing: "algorithm 'none' is never allowed")
            expectFailure(unsigned, keys: try await JWTVerificationKeys(parsing: TestKeys.secret), containing: "never allowed")
        }
        // An ES256 token against an RSA key, an RS256 token against an EC key, ES384 against a P-256 key, HS256 against a secret
        // (fine) and RS256 against a secret (refused).
        expectFailure(try await sign(.object(JSONObject()), .es256), keys: rsaKeys, containing: "algorithm 'ES256' not allowed for an RSA key")
        let ecKeys = try await JWTVerificationKeys(parsing: TestKeys.text("ec256.pub.pem"))
        expectFailure(try await sign(.object(JSONObject()), .rs256), keys: ecKeys, containing: "algorithm 'RS256' not allowed for an EC P-256 key")
        expectFailure(try await sign(.object(JSONObject()), .es384), keys: ecKeys, containing: "algorithm 'ES384' not allowed for an EC P-256 key")
        expectFailure(try await sign(.object(JSONObject()), .rs256), keys: try await JWTVerificationKeys(parsing: TestKeys.secret),
                      containing: "algorithm 'RS256' not allowed for an HMAC secret")
        // Signing: a PEM or JWK is never an HMAC secret, and a key signs only its own algorithms.
        await #expect(throws: JWTError.self) { try await JWTSigningKey(parsing: rsaPublicPEM, algorithm: .hs256) }
        await #expect(throws: JWTError.algorithmNotAllowed("algorithm 'ES256' not allowed for an RSA key")) {
            try await JWTSigningKey(parsing: TestKeys.text("rsa.pem"), algorithm: .es256)
        }
        await #expect(throws: JWTError.invalidKey("a RSA public key cannot sign: give the private key")) {
            try await JWTSigningKey(parsing: rsaPublicPEM, algorithm: .rs256)
        }
        await #expect(throws: JWTError.invalidKey("algorithm RS256 needs a PEM or JWK private key, not a secret")) {
            try await JWTSigningKey(parsing: TestKeys.secret, algorithm: .rs256)
        }
        // Unknown algorithms and critical extensions.
        expectFailure(hmacToken(header: #"{"alg":"HS257"}"#, secret: TestKeys.secret), keys: rsaKeys, containing: "unsupported algorithm 'HS257'")
        expectFailure(hmacToken(header: #"{"alg":"HS256","crit":["exp"]}"#, secret: TestKeys.secret),
                      keys: try await JWTVerificationKeys(parsing: TestKeys.secret), containing: "critical extensions")
    }

    @Test func hmacSecretsShorterThanTheHashAreRefused() async throws {
        await #expect(throws: JWTError.self) { try await JWTVerificationKeys(parsing: "short") }
        await #expect(throws: JWTError.self) { try await JWTSigningKey(parsing: String(repeating: "s", count: 40), algorithm: .hs384) }
        let keys = try await JWTVerificationKeys(parsing: String(repeating: "s", count: 40))
        let token = hmacToken(header: #"{"alg":"HS256"}"#, payload: "{}", secret: String(repeating: "s", count: 40))
        #expect(try keys.verify(token, options: options()).claims == .object(JSONObject()))
        expectFailure(try await JWTSigningKey(parsing: TestKeys.secret, algorithm: .hs512).sign(claims: .object(JSONObject())).token,
                      keys: keys, containing: "too short for HS512")
    }

    // MARK: - Decoding and hostile input

    @Test func decodeAcceptsABearerPrefixInAnyCase() async throws {
        let token = try await sign(.parsing(#"{"sub":"u"}"#), .hs256)
        let keys = try await JWTVerificationKeys(parsing: TestKeys.secret)
        for prefixed in ["Bearer \(token)", "bearer  \(token)", "BEARER \(token) ", " \(token)"] {
            #expect(try JWTToken.decode(prefixed).payload == .parsing(#"{"sub":"u"}"#))
            #expect(try keys.verify(prefixed, options: options()).claims == .parsing(#"{"sub":"u"}"#))
        }
        let decoded = try JWTToken.decode(token)
        #expect(decoded.header == .parsing(#"{"alg":"HS256","typ":"JWT"}"#))
        #expect(decoded.signature == String(token.split(separator: ".")[2]))
        // A payload need not be an object to be decoded (it must be to be verified).
        let odd = Base64URL.encode(#"{"alg":"HS256"}"#) + "." + Base64URL.encode("[1,2]") + ".c2ln"
        #expect(try JWTToken.decode(odd).payload == .parsing("[1,2]"))
    }

    @Test func hostileTokensFailClearlyAndQuickly() async throws {
        let keys = try await JWTVerificationKeys(parsing: TestKeys.secret)
        let header = Base64URL.encode(#"{"alg":"HS256"}"#)
        let deep = Base64URL.encode(String(repeating: "[", count: 40_000))
        let cases: [(String, String)] = [
            (String(repeating: "a", count: 2_000_000), "more than the 65536 allowed"),
            (header + "." + String(repeating: "A", count: 70_000) + ".sig", "more than the 65536 allowed"),
            ("", "the token is empty"),
            ("Bearer ", "the token is empty"),
            ("abc", "expected 3 base64url segments"),
            ("a.b.c.d", "expected 3 base64url segments"),
            ("a.b.c.d.e", "encrypted tokens (JWE, 5 segments) are not supported"),
            ("....", "encrypted tokens"),
            (String(repeating: ".", count: 10_000), "expected 3 base64url segments"),
            ("!!!.e30.sig", "the header is not base64url"),
            (header + ".e30.s!g", "the signature is not base64url"),
            (header + ".A.sig", "the payload is not base64url"),
            (Base64URL.encode("not json") + ".e30.c2ln", "the header is not JSON"),
            (Base64URL.encode("[1]") + ".e30.c2ln", "the header is not a JSON object"),
            (Base64URL.encode(#"{"alg":"HS256","alg":"none"}"#) + ".e30.c2ln", "duplicate key"),
            (deep + ".e30.c2ln", "the header is not JSON"),
            (header + "." + deep + ".c2ln", "the payload is not JSON"),
            (header + "." + Base64URL.encode([0xFF, 0xFE, 0x7B]) + ".c2ln", "the payload is not JSON"),
        ]
        let start = ContinuousClock.now
        for (token, reason) in cases {
            #expect(throws: JWTError.self) { try JWTToken.decode(token) }
            expectFailure(token, keys: keys, containing: reason)
        }
        expectFailure(Base64URL.encode(#"{"typ":"JWT"}"#) + ".e30.c2ln", keys: keys, containing: "the header has no string 'alg'")
        // Generous: each case costs microseconds; a quadratic scan of 2 MB would take minutes.
        #expect(ContinuousClock.now - start < .seconds(20))
        // Malformed keys: clear errors, never a secret in them.
        for (text, reason) in [("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "the PEM public key is not"),
                               ("-----BEGIN FOO-----", "unsupported PEM block 'FOO'"),
                               (#"{"kty":"RSA","n":"AQAB"}"#, "lacks member 'e'"),
                               (#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#, "not a valid key"),
                               (#"{"keys":[{"kty":"XYZ"}]}"#, "the JWKS has no usable signature key"),
                               ("{not json", "not a JWK or JWKS"), ("", "the key is empty")] {
            do {
                _ = try await JWTVerificationKeys(parsing: text)
                Issue.record("key \(text) was accepted")
            } catch {
                #expect(error.description.contains(reason), "\(error.description)")
            }
        }
    }

    @Test func corruptedTokensNeverVerifyAndNeverTrap() async throws {
        // Every byte of a valid token changed in turn to every other base64url-ish byte (and a few others), then
        // truncations: each copy is refused with a JWTError (a trap would end the test process).
        let keys = try await JWTVerificationKeys(parsing: TestKeys.publicKey(for: .es256))
        let token = try await sign(.parsing(#"{"sub":"u","n":1}"#), .es256)
        let bytes = Array(token.utf8)
        let replacements = Array("AZaz09-_.=+/ \u{0}".utf8) + [0xC3, 0xFF]
        var refused = 0
        for position in bytes.indices {
            for replacement in replacements where replacement != bytes[position] {
                var copy = bytes
                copy[position] = replacement
                let text = String(decoding: copy, as: UTF8.self)
                // Flipping a base64url character's unused low bits can leave the decoded bytes unchanged.
                if let verified = try? keys.verify(text, options: options()) {
                    #expect(verified.claims == .parsing(#"{"sub":"u","n":1}"#), "\(text)")
                } else {
                    refused += 1
                }
            }
        }
        for length in 0..<bytes.count {
            #expect(throws: JWTError.self) { try keys.verify(String(decoding: bytes[..<length], as: UTF8.self), options: options()) }
        }
        #expect(refused > bytes.count * (replacements.count - 4))
    }

    @Test func theKeyCacheParsesEachKeyTextOnce() async throws {
        let cache = JWTKeyCache<JWTVerificationKeys>(capacity: 2)
        let parses = Counter()
        for text in [TestKeys.secret, TestKeys.secret, TestKeys.text("rsa.pub.pem"), TestKeys.secret, TestKeys.text("ec256.pub.pem"),
                     TestKeys.text("rsa.pub.pem"), TestKeys.text("ec256.pub.pem")] {
            _ = try await cache.value(for: text) { () async throws(JWTError) in
                parses.increment()
                return try await JWTVerificationKeys(parsing: text)
            }
        }
        // secret, rsa, (secret hit), ec256 evicts the secret, rsa hit, ec256 hit.
        #expect(parses.value == 3)
        #expect(cache.count == 2)
        // A key that fails to parse is not kept.
        for _ in 0..<2 {
            _ = try? await cache.value(for: "bad") { () async throws(JWTError) in
                parses.increment()
                return try await JWTVerificationKeys(parsing: "-----BEGIN FOO-----")
            }
        }
        #expect(parses.value == 5)
    }

}

/// A counter the cache test's closures share.
final class Counter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
