import Foundation
import JSON
import JWTKit

/// A key read from PEM, a JWK or an HMAC secret, before it is bound to algorithms. The key type comes from the key,
/// never from a token.
enum KeyMaterial: Sendable {
    case rsaPrivate(JWTKit.Insecure.RSA.PrivateKey), rsaPublic(JWTKit.Insecure.RSA.PublicKey)
    case es256Private(ES256PrivateKey), es256Public(ES256PublicKey)
    case es384Private(ES384PrivateKey), es384Public(ES384PublicKey)
    case es512Private(ES512PrivateKey), es512Public(ES512PublicKey)
    case ed25519Private(EdDSA.PrivateKey), ed25519Public(EdDSA.PublicKey)
    case hmac([UInt8])

    var type: JWTKeyType {
        switch self {
        case .rsaPrivate, .rsaPublic: .rsa
        case .es256Private, .es256Public: .ecP256
        case .es384Private, .es384Public: .ecP384
        case .es512Private, .es512Public: .ecP521
        case .ed25519Private, .ed25519Public: .ed25519
        case .hmac: .hmac
        }
    }

    /// Whether the key can sign (a private key or a secret).
    var isPrivate: Bool {
        switch self {
        case .rsaPrivate, .es256Private, .es384Private, .es512Private, .ed25519Private, .hmac: true
        default: false
        }
    }

    /// The longest key text read (a JWKS of a few dozen RSA keys fits easily).
    static let maximumKeyTextBytes = 256 * 1024
    /// The most keys in a JWKS.
    static let maximumKeysInSet = 100

    /// jwt-kit's signer for each algorithm this key may be used with (HMAC: only those whose minimum secret length
    /// the secret reaches, RFC 7518 §3.2).
    func signers(restrictedTo only: JWTSignatureAlgorithm? = nil) async -> [JWTSignatureAlgorithm: any JWTAlgorithm] {
        let collection = JWTKeyCollection()
        var signers: [JWTSignatureAlgorithm: any JWTAlgorithm] = [:]
        for algorithm in type.algorithms where only == nil || only == algorithm {
            switch (self, algorithm) {
            case (.rsaPrivate(let key), .rs256), (.rsaPrivate(let key), .rs384), (.rsaPrivate(let key), .rs512):
                await collection.add(rsa: key, digestAlgorithm: Self.digest(algorithm))
            case (.rsaPublic(let key), .rs256), (.rsaPublic(let key), .rs384), (.rsaPublic(let key), .rs512):
                await collection.add(rsa: key, digestAlgorithm: Self.digest(algorithm))
            case (.rsaPrivate(let key), _):
                await collection.add(pss: key, digestAlgorithm: Self.digest(algorithm))
            case (.rsaPublic(let key), _):
                await collection.add(pss: key, digestAlgorithm: Self.digest(algorithm))
            case (.es256Private(let key), _): await collection.add(ecdsa: key)
            case (.es256Public(let key), _): await collection.add(ecdsa: key)
            case (.es384Private(let key), _): await collection.add(ecdsa: key)
            case (.es384Public(let key), _): await collection.add(ecdsa: key)
            case (.es512Private(let key), _): await collection.add(ecdsa: key)
            case (.es512Public(let key), _): await collection.add(ecdsa: key)
            case (.ed25519Private(let key), _): await collection.add(eddsa: key)
            case (.ed25519Public(let key), _): await collection.add(eddsa: key)
            case (.hmac(let secret), _):
                // jwt-kit asserts on a secret shorter than the hash: such a key is never handed to it.
                guard secret.count >= algorithm.minimumSecretBytes else { continue }
                await collection.add(hmac: HMACKey(from: secret), digestAlgorithm: Self.digest(algorithm))
            }
            // Each `add` without a kid replaces the collection's default key: the default is the one just added.
            if let signer = try? await collection.getKey() { signers[algorithm] = signer }
        }
        return signers
    }

    private static func digest(_ algorithm: JWTSignatureAlgorithm) -> DigestAlgorithm {
        switch algorithm {
        case .rs384, .ps384, .hs384, .es384: .sha384
        case .rs512, .ps512, .hs512, .es512: .sha512
        default: .sha256
        }
    }

    // MARK: - PEM

    /// Whether `text` (trimmed) is PEM.
    static func isPEM(_ text: Substring) -> Bool { text.hasPrefix("-----BEGIN ") }

    /// A key from PEM: a private key (PKCS#8, PKCS#1 RSA, SEC1 EC), a public key (SPKI) or an X.509 certificate.
    static func fromPEM(_ text: String) throws(JWTError) -> KeyMaterial {
        let label = pemLabel(text)
        if label == "CERTIFICATE" {
            if let key = try? JWTKit.Insecure.RSA.PublicKey(certificatePEM: text) { return .rsaPublic(key) }
            if let key = try? ES256PublicKey(certificate: text) { return .es256Public(key) }
            if let key = try? ES384PublicKey(certificate: text) { return .es384Public(key) }
            if let key = try? ES512PublicKey(certificate: text) { return .es512Public(key) }
            throw .invalidKey("the PEM certificate holds no RSA or EC (P-256, P-384, P-521) public key kbridge can use")
        }
        if label.hasSuffix("PRIVATE KEY") {
            if label != "EC PRIVATE KEY", let key = try? JWTKit.Insecure.RSA.PrivateKey(pem: text) { return .rsaPrivate(key) }
            if let key = try? ES256PrivateKey(pem: text) { return .es256Private(key) }
            if let key = try? ES384PrivateKey(pem: text) { return .es384Private(key) }
            if let key = try? ES512PrivateKey(pem: text) { return .es512Private(key) }
            if label == "PRIVATE KEY", let key = try? EdDSA.PrivateKey(pem: text) { return .ed25519Private(key) }
            throw .invalidKey("the PEM private key is not an RSA (2048 bits or more), EC (P-256, P-384, P-521) or Ed25519 key")
        }
        if label.hasSuffix("PUBLIC KEY") {
            if let key = try? JWTKit.Insecure.RSA.PublicKey(pem: text) { return .rsaPublic(key) }
            if let key = try? ES256PublicKey(pem: text) { return .es256Public(key) }
            if let key = try? ES384PublicKey(pem: text) { return .es384Public(key) }
            if let key = try? ES512PublicKey(pem: text) { return .es512Public(key) }
            if label == "PUBLIC KEY", let key = try? EdDSA.PublicKey(pem: text) { return .ed25519Public(key) }
            throw .invalidKey("the PEM public key is not an RSA (2048 bits or more), EC (P-256, P-384, P-521) or Ed25519 key")
        }
        throw .invalidKey("unsupported PEM block '\(label.prefix(40))' (expected a PRIVATE KEY, PUBLIC KEY or CERTIFICATE)")
    }

    /// The label of the first PEM block (`PUBLIC KEY`, `RSA PRIVATE KEY`...).
    private static func pemLabel(_ text: String) -> String {
        let trimmed = text.drop { $0.isWhitespace }
        guard trimmed.hasPrefix("-----BEGIN ") else { return "" }
        let rest = trimmed.dropFirst("-----BEGIN ".count).prefix(64)
        guard let end = rest.range(of: "-----") else { return "" }
        return String(rest[..<end.lowerBound])
    }

    // MARK: - JWK

    /// A key from one JWK (RFC 7517/7518/8037): kty RSA, EC (P-256, P-384, P-521), OKP (Ed25519) or oct.
    static func fromJWK(_ jwk: JSONObject) throws(JWTError) -> KeyMaterial {
        guard case .string(let kty)? = jwk["kty"] else { throw .invalidKey("a JWK needs a string member 'kty'") }
        do {
            return try build(kty: kty, jwk)
        } catch let error as JWTError {
            throw error
        } catch {
            // jwt-kit's and swift-crypto's errors do not print key material; they are kept short all the same.
            throw .invalidKey("the JWK of kty '\(kty.prefix(40))' is not a valid key (\(String(describing: error).prefix(200)))")
        }
    }

    /// The key of a JWK (jwt-kit's and swift-crypto's errors pass through; ours are ``JWTError``s).
    private static func build(kty: String, _ jwk: JSONObject) throws -> KeyMaterial {
        func member(_ name: String) throws -> String? {
            guard let value = jwk[name] else { return nil }
            guard case .string(let text) = value, !text.isEmpty else { throw JWTError.invalidKey("JWK member '\(name)' must be a non-empty string") }
            return text
        }
        func required(_ name: String) throws -> String {
            guard let text = try member(name) else { throw JWTError.invalidKey("JWK of kty '\(kty.prefix(40))' lacks member '\(name)'") }
            return text
        }
        switch kty {
        case "RSA":
            let n = try required("n"), e = try required("e")
            guard let d = try member("d") else { return .rsaPublic(try JWTKit.Insecure.RSA.PublicKey(modulus: n, exponent: e)) }
            if let p = try member("p"), let q = try member("q") {
                return .rsaPrivate(try JWTKit.Insecure.RSA.PrivateKey(modulus: n, exponent: e, privateExponent: d, prime1: p, prime2: q))
            }
            return .rsaPrivate(try JWTKit.Insecure.RSA.PrivateKey(modulus: n, exponent: e, privateExponent: d))
        case "EC":
            let curve = try required("crv"), x = try required("x"), y = try required("y")
            let d = try member("d")
            switch curve {
            case "P-256": return try d.map { .es256Private(try ES256PrivateKey(key: $0)) } ?? .es256Public(try ES256PublicKey(parameters: (x, y)))
            case "P-384": return try d.map { .es384Private(try ES384PrivateKey(key: $0)) } ?? .es384Public(try ES384PublicKey(parameters: (x, y)))
            case "P-521": return try d.map { .es512Private(try ES512PrivateKey(key: $0)) } ?? .es512Public(try ES512PublicKey(parameters: (x, y)))
            default: throw JWTError.invalidKey("unsupported EC curve '\(curve.prefix(40))' (P-256, P-384 or P-521)")
            }
        case "OKP":
            let curve = try required("crv"), x = try required("x")
            guard curve == "Ed25519" else { throw JWTError.invalidKey("unsupported OKP curve '\(curve.prefix(40))' (Ed25519)") }
            if let d = try member("d") { return .ed25519Private(try EdDSA.PrivateKey(d: d, curve: .ed25519)) }
            return .ed25519Public(try EdDSA.PublicKey(x: x, curve: .ed25519))
        case "oct":
            guard let secret = Base64URL.decode(try required("k")), !secret.isEmpty else {
                throw JWTError.invalidKey("JWK member 'k' is not base64url")
            }
            return .hmac(secret)
        default:
            throw JWTError.invalidKey("unsupported JWK kty '\(kty.prefix(40))' (RSA, EC, OKP or oct)")
        }
    }
}
