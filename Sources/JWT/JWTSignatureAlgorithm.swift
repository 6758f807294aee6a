/// The JWS algorithms kbridge signs and verifies (Kong's `jwt_sign.algorithm` enum). `none` is not one of them.
public enum JWTSignatureAlgorithm: String, Sendable, CaseIterable, Hashable {
    case es256 = "ES256", es384 = "ES384", es512 = "ES512"
    case edDSA = "EdDSA"
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"

    /// The one kind of key that may sign or verify this algorithm: the algorithm is bound to the key type, so a
    /// public key is never used as an HMAC secret (CVE-2026-14916 and the classic RS256 → HS256 confusion).
    public var keyType: JWTKeyType {
        switch self {
        case .es256: .ecP256
        case .es384: .ecP384
        case .es512: .ecP521
        case .edDSA: .ed25519
        case .hs256, .hs384, .hs512: .hmac
        case .ps256, .ps384, .ps512, .rs256, .rs384, .rs512: .rsa
        }
    }

    /// For HMAC: the shortest secret RFC 7518 §3.2 allows (the hash's output size), in bytes.
    var minimumSecretBytes: Int {
        switch self {
        case .hs384: 48
        case .hs512: 64
        default: 32
        }
    }

    /// The algorithm named `name` (case-sensitive, as RFC 7515 says), else `nil`.
    public init?(name: String) { self.init(rawValue: name) }
}

/// The type of a key, which decides the algorithms it may be used with.
public enum JWTKeyType: String, Sendable, Hashable {
    case rsa = "RSA"
    case ecP256 = "EC P-256"
    case ecP384 = "EC P-384"
    case ecP521 = "EC P-521"
    case ed25519 = "Ed25519"
    case hmac = "HMAC secret"

    /// The algorithms this key type may be used with.
    public var algorithms: [JWTSignatureAlgorithm] { JWTSignatureAlgorithm.allCases.filter { $0.keyType == self } }

    /// "an RSA key", "an HMAC secret"...
    var withArticle: String {
        switch self {
        case .rsa, .ecP256, .ecP384, .ecP521, .ed25519: "an \(rawValue) key"
        case .hmac: "an HMAC secret"
        }
    }
}
