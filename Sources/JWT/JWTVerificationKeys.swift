import Foundation
import JSON
import JWTKit

/// What `jwt_verify` checks besides the signature (Kong's attribute names in the comments).
public struct JWTVerificationOptions: Sendable {
    /// `allowed_algorithms`: empty = every supported algorithm (`none` never is).
    public var allowedAlgorithms: [JWTSignatureAlgorithm] = []
    /// `issuers`: empty = any `iss`.
    public var issuers: [String] = []
    /// `audiences`: empty = any `aud`; else one of the token's audiences must be listed.
    public var audiences: [String] = []
    /// `required_claims`: claims that must be present (and not null).
    public var requiredClaims: [String] = []
    /// `leeway`: the clock skew allowed for `exp` and `nbf`, in seconds.
    public var leeway = 0
    /// `validate_exp`, `validate_nbf`.
    public var validateExpiry = true
    public var validateNotBefore = true
    /// The time of the check in seconds since 1970; `nil` = the system clock.
    public var now: Double?

    public init() {}
}

/// The keys a token may be verified with (Datakit's `jwt_verify` `key` input): a PEM public key or certificate, a
/// JWK, a JWKS, or an HMAC secret. Each key accepts only the algorithms of its type (and its JWK `alg`, if given).
public struct JWTVerificationKeys: Sendable {
    struct Entry: Sendable {
        var type: JWTKeyType
        var keyID: String?
        /// The JWK's `alg`: the only algorithm the key accepts.
        var pinnedAlgorithm: JWTSignatureAlgorithm?
        var signers: [JWTSignatureAlgorithm: any JWTAlgorithm]
    }

    let entries: [Entry]

    /// How many keys were read.
    public var count: Int { entries.count }

    /// Reads `keyText`: text starting with `-----BEGIN` is PEM, text starting with `{` a JWK or a JWKS (`keys`), anything
    /// else an HMAC secret. In a JWKS, keys for encryption (`use: enc`) and of unsupported types are left out.
    public init(parsing keyText: String) async throws(JWTError) {
        var entries: [Entry] = []
        for key in try Self.read(keyText) {
            entries.append(Entry(type: key.material.type, keyID: key.keyID, pinnedAlgorithm: key.pinnedAlgorithm,
                                 signers: await key.material.signers(restrictedTo: key.pinnedAlgorithm)))
        }
        self.entries = entries
    }

    /// Reads several key texts (each as ``init(parsing:)`` reads one) into one set.
    public init(parsingAll keyTexts: [String]) async throws(JWTError) {
        var entries: [Entry] = []
        for keyText in keyTexts {
            entries += try await JWTVerificationKeys(parsing: keyText).entries
        }
        self.entries = entries
    }

    /// The keys of several sets in one (keys read elsewhere, such as a JWKS fetched from a URL, beside fixed ones).
    public init(combining sets: [JWTVerificationKeys]) {
        entries = sets.flatMap(\.entries)
    }

    /// The longest key text ``init(parsing:)`` reads (a JWKS of a few dozen RSA keys fits easily).
    public static var maximumKeyTextBytes: Int { KeyMaterial.maximumKeyTextBytes }

    /// Whether a key of the set has the JWK `kid` `keyID`.
    public func containsKey(withID keyID: String) -> Bool {
        entries.contains { $0.keyID == keyID }
    }

    /// Checks `keyText` as ``init(parsing:)`` reads it, without making signers (for start-up checks).
    public static func validate(_ keyText: String) throws(JWTError) {
        _ = try read(keyText)
    }

    /// The type of each key `keyText` holds, as ``init(parsing:)`` reads it (for start-up checks of the algorithms
    /// a configuration allows).
    public static func keyTypes(of keyText: String) throws(JWTError) -> [JWTKeyType] {
        try read(keyText).map { $0.pinnedAlgorithm.map(\.keyType) ?? $0.material.type }
    }

    /// A key read, not yet bound to jwt-kit's signers.
    struct ReadKey {
        var material: KeyMaterial
        var keyID: String?
        var pinnedAlgorithm: JWTSignatureAlgorithm?
    }

    static func read(_ keyText: String) throws(JWTError) -> [ReadKey] {
        guard keyText.utf8.count <= KeyMaterial.maximumKeyTextBytes else {
            throw .invalidKey("the key text has \(keyText.utf8.count) bytes, more than \(KeyMaterial.maximumKeyTextBytes)")
        }
        let trimmed = keyText.drop { $0.isWhitespace }
        if KeyMaterial.isPEM(trimmed) { return [ReadKey(material: try KeyMaterial.fromPEM(keyText))] }
        guard trimmed.hasPrefix("{") else {
            guard !keyText.isEmpty else { throw .invalidKey("the key is empty") }
            guard keyText.utf8.count >= JWTSignatureAlgorithm.hs256.minimumSecretBytes else {
                throw .invalidKey("the HMAC secret has \(keyText.utf8.count) bytes; HS256 needs at least 32 (RFC 7518 §3.2)")
            }
            return [ReadKey(material: .hmac(Array(keyText.utf8)))]
        }
        let object: JSONObject
        do {
            guard case .object(let parsed) = try JSONParser.parse(keyText, duplicateKeys: .refuse) else { throw JWTError.invalidKey("") }
            object = parsed
        } catch {
            throw .invalidKey("the key starts with '{' but is not a JWK or JWKS JSON object")
        }
        guard let keys = object["keys"] else { return [try readJWK(object)] }
        guard case .array(let list) = keys else { throw .invalidKey("the JWKS member 'keys' must be a list") }
        guard list.count <= KeyMaterial.maximumKeysInSet else {
            throw .invalidKey("the JWKS has \(list.count) keys, more than \(KeyMaterial.maximumKeysInSet)")
        }
        var read: [ReadKey] = []
        var skipped: [String] = []
        for (position, element) in list.enumerated() {
            guard case .object(let jwk) = element else { throw .invalidKey("JWKS key #\(position) is not an object") }
            if case .string("enc")? = jwk["use"] { continue }
            do throws(JWTError) {
                read.append(try readJWK(jwk))
            } catch {
                skipped.append("#\(position): \(error.description)")
            }
        }
        guard !read.isEmpty else {
            throw .invalidKey("the JWKS has no usable signature key" + (skipped.isEmpty ? "" : " (\(skipped.prefix(3).joined(separator: "; ")))"))
        }
        return read
    }

    private static func readJWK(_ jwk: JSONObject) throws(JWTError) -> ReadKey {
        let material = try KeyMaterial.fromJWK(jwk)
        var pinned: JWTSignatureAlgorithm?
        if let written = jwk["alg"] {
            guard case .string(let name) = written, let algorithm = JWTSignatureAlgorithm(name: name) else {
                throw .invalidKey("unsupported JWK alg \(written.jsonText.quotedForError)")
            }
            guard algorithm.keyType == material.type else {
                throw .invalidKey("the JWK's alg '\(name)' does not fit \(material.type.withArticle)")
            }
            pinned = algorithm
        }
        let keyID: String? = if case .string(let kid)? = jwk["kid"] { kid } else { nil }
        return ReadKey(material: material, keyID: keyID, pinnedAlgorithm: pinned)
    }

    /// Verifies `token` (a `Bearer ` prefix is allowed): its algorithm, its signature with the fitting key(s), then
    /// `exp`, `nbf`, `iss`, `aud` and the required claims. Returns the header and the claims.
    public func verify(_ token: String, options: JWTVerificationOptions = JWTVerificationOptions()) throws(JWTError)
        -> (header: JSONValue, claims: JSONValue)
    {
        let parsed = try JWTToken.parse(token)
        guard case .string(let name)? = parsed.header["alg"] else { throw .malformedToken("the header has no string 'alg'") }
        guard name.lowercased() != "none" else { throw .algorithmNotAllowed("algorithm 'none' is never allowed: the token is unsigned") }
        guard let algorithm = JWTSignatureAlgorithm(name: name) else {
            throw .algorithmNotAllowed("unsupported algorithm \(name.quotedForError)")
        }
        if parsed.header["crit"] != nil { throw .malformedToken("the header lists critical extensions ('crit') kbridge does not support") }
        if !options.allowedAlgorithms.isEmpty, !options.allowedAlgorithms.contains(algorithm) {
            throw .algorithmNotAllowed("algorithm '\(name)' not allowed (allowed: \(options.allowedAlgorithms.map(\.rawValue).joined(separator: ", ")))")
        }
        // The keys the token may name: with a kid, the keys with that kid (and keys that have none).
        var candidates = entries
        if case .string(let kid)? = parsed.header["kid"] {
            let named = entries.filter { $0.keyID == kid }
            candidates = named.isEmpty ? entries.filter { $0.keyID == nil } : named
            guard !candidates.isEmpty else { throw .noMatchingKey("no key with kid \(kid.quotedForError)") }
        }
        let fitting = candidates.filter { $0.signers[algorithm] != nil && ($0.pinnedAlgorithm == nil || $0.pinnedAlgorithm == algorithm) }
        guard !fitting.isEmpty else {
            if candidates.count == 1, let only = candidates.first {
                if let pinned = only.pinnedAlgorithm, pinned != algorithm, only.type == algorithm.keyType {
                    throw .algorithmNotAllowed("algorithm '\(name)' not allowed: the key's JWK alg is '\(pinned.rawValue)'")
                }
                if only.type == .hmac, algorithm.keyType == .hmac {
                    throw .invalidKey("the HMAC secret is too short for \(name) (at least \(algorithm.minimumSecretBytes) bytes, RFC 7518 §3.2)")
                }
                throw .algorithmNotAllowed("algorithm '\(name)' not allowed for \(only.type.withArticle)")
            }
            throw .noMatchingKey("no key fits algorithm '\(name)' (keys: \(Set(candidates.map(\.type.rawValue)).sorted().joined(separator: ", ")))")
        }
        let verified = fitting.contains { entry in
            guard let signer = entry.signers[algorithm] else { return false }
            return (try? signer.verify(parsed.signature, signs: parsed.signingInput)) == true
        }
        guard verified else { throw .signatureInvalid }
        guard case .object(let claims) = parsed.payload else { throw .malformedToken("the payload is not a JSON object of claims") }
        try Self.check(claims, options)
        return (.object(parsed.header), parsed.payload)
    }

    static func check(_ claims: JSONObject, _ options: JWTVerificationOptions) throws(JWTError) {
        let now = options.now ?? Date().timeIntervalSince1970
        let leeway = Double(options.leeway)
        func seconds(_ name: String) throws(JWTError) -> Double? {
            guard let value = claims[name], value != .null else { return nil }
            guard case .number(let number) = value, number.double.isFinite else {
                throw .invalidClaim(name: name, reason: "expected a number of seconds since 1970, found \(value.typeName)")
            }
            return number.double
        }
        if options.validateExpiry, let expiry = try seconds("exp"), now >= expiry + leeway {
            throw .expired(at: expiry, now: now, leeway: options.leeway)
        }
        if options.validateNotBefore, let notBefore = try seconds("nbf"), notBefore > now + leeway {
            throw .notYetValid(until: notBefore, now: now, leeway: options.leeway)
        }
        if !options.issuers.isEmpty {
            guard let value = claims["iss"], value != .null else { throw .issuerNotAllowed("issuer missing: the token has no 'iss' claim") }
            guard case .string(let issuer) = value else { throw .invalidClaim(name: "iss", reason: "expected a string, found \(value.typeName)") }
            guard options.issuers.contains(issuer) else { throw .issuerNotAllowed("issuer \(issuer.quotedForError) not allowed") }
        }
        if !options.audiences.isEmpty {
            guard let value = claims["aud"], value != .null else { throw .audienceNotAllowed("audience missing: the token has no 'aud' claim") }
            let audiences: [String]
            switch value {
            case .string(let audience): audiences = [audience]
            case .array(let list):
                audiences = list.compactMap(\.stringValue)
                guard audiences.count == list.count else { throw .invalidClaim(name: "aud", reason: "expected a string or a list of strings") }
            default: throw .invalidClaim(name: "aud", reason: "expected a string or a list of strings, found \(value.typeName)")
            }
            guard audiences.contains(where: options.audiences.contains) else {
                throw .audienceNotAllowed("audience \(audiences.joined(separator: ", ").quotedForError) not allowed")
            }
        }
        for name in options.requiredClaims where claims[name] == nil || claims[name] == .null {
            throw .missingClaim(name)
        }
    }
}
