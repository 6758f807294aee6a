import JSON
import JWTKit

/// A private key (or HMAC secret) bound to one algorithm, that signs tokens (Datakit's `jwt_sign`).
public struct JWTSigningKey: Sendable {
    public let algorithm: JWTSignatureAlgorithm
    /// The JWK's `kid`, when the key was a JWK that has one.
    public let keyID: String?
    private let signer: any JWTAlgorithm

    /// Reads `keyText` as a PEM private key, a JWK with its private part, or (HS* only) an HMAC secret, and checks
    /// that it fits `algorithm`: an RSA key signs RS*/PS*, an EC key the ES* of its curve, an Ed25519 key EdDSA, a
    /// secret HS* (at least as long as the hash, RFC 7518 §3.2). A PEM or JWK text is never taken as an HMAC secret.
    public init(parsing keyText: String, algorithm: JWTSignatureAlgorithm) async throws(JWTError) {
        let (material, keyID) = try Self.read(keyText, algorithm: algorithm)
        guard let signer = await material.signers(restrictedTo: algorithm)[algorithm] else {
            throw .invalidKey("jwt-kit has no \(algorithm.rawValue) signer for this key")
        }
        self.algorithm = algorithm
        self.keyID = keyID
        self.signer = signer
    }

    /// Checks `keyText` for `algorithm` as ``init(parsing:algorithm:)`` reads it, without making a signer (for
    /// start-up checks).
    public static func validate(_ keyText: String, algorithm: JWTSignatureAlgorithm) throws(JWTError) {
        _ = try read(keyText, algorithm: algorithm)
    }

    /// The key read from `keyText` and checked against `algorithm`, and the JWK's `kid`.
    static func read(_ keyText: String, algorithm: JWTSignatureAlgorithm) throws(JWTError) -> (KeyMaterial, String?) {
        guard keyText.utf8.count <= KeyMaterial.maximumKeyTextBytes else {
            throw .invalidKey("the key text has \(keyText.utf8.count) bytes, more than \(KeyMaterial.maximumKeyTextBytes)")
        }
        let trimmed = keyText.drop { $0.isWhitespace }
        let material: KeyMaterial
        var keyID: String?
        if KeyMaterial.isPEM(trimmed) {
            material = try KeyMaterial.fromPEM(keyText)
        } else if trimmed.hasPrefix("{") {
            let jwk: JSONObject
            do {
                guard case .object(let object) = try JSONParser.parse(keyText, duplicateKeys: .refuse) else { throw JWTError.invalidKey("") }
                jwk = object
            } catch {
                throw .invalidKey("the key starts with '{' but is not a JWK JSON object")
            }
            if jwk["keys"] != nil { throw .invalidKey("a JWKS cannot sign: give one JWK with its private part") }
            material = try KeyMaterial.fromJWK(jwk)
            if case .string(let written)? = jwk["alg"], written != algorithm.rawValue {
                throw .algorithmNotAllowed("algorithm '\(algorithm.rawValue)' not allowed: the JWK's alg is \(written.quotedForError)")
            }
            if case .string(let kid)? = jwk["kid"] { keyID = kid }
        } else {
            guard algorithm.keyType == .hmac else {
                throw .invalidKey("algorithm \(algorithm.rawValue) needs a PEM or JWK private key, not a secret")
            }
            material = .hmac(Array(keyText.utf8))
        }
        guard material.type == algorithm.keyType else {
            throw .algorithmNotAllowed("algorithm '\(algorithm.rawValue)' not allowed for \(material.type.withArticle)")
        }
        guard material.isPrivate else { throw .invalidKey("a \(material.type.rawValue) public key cannot sign: give the private key") }
        if case .hmac(let secret) = material, secret.count < algorithm.minimumSecretBytes {
            throw .invalidKey("the HMAC secret has \(secret.count) bytes; \(algorithm.rawValue) needs at least \(algorithm.minimumSecretBytes) (RFC 7518 §3.2)")
        }
        return (material, keyID)
    }

    /// A signed token over `claims` (any JSON, written as kbridge's JSON writer writes it: numbers keep their text),
    /// with the header `{"alg", "typ", "kid"}` (`typ` and `kid` when given; `kid` defaults to the JWK's).
    public func sign(claims: JSONValue, keyID: String? = nil, type: String? = "JWT") throws(JWTError) -> (token: String, header: JSONValue) {
        var header = JSONObject([("alg", .string(algorithm.rawValue))])
        if let type { header["typ"] = .string(type) }
        if let kid = keyID ?? self.keyID { header["kid"] = .string(kid) }
        let signingInput = Base64URL.encode(JSONWriter.bytes(.object(header))) + "." + Base64URL.encode(JSONWriter.bytes(claims))
        let signature: [UInt8]
        do {
            signature = try signer.sign(Array(signingInput.utf8))
        } catch {
            throw .signingFailed(String(describing: error).prefix(200).description)
        }
        return (signingInput + "." + Base64URL.encode(signature), .object(header))
    }
}
