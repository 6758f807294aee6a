import Foundation

/// Why a token could not be decoded, signed or verified, in words safe to show: no error ever carries key material.
public enum JWTError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The token is not a well-formed JWS compact serialization (or is too large).
    case malformedToken(String)
    /// The key text is not a usable key (PEM, JWK, JWKS or HMAC secret) for what it is used for.
    case invalidKey(String)
    /// `alg: none`, an algorithm kbridge does not know, or one the key or the configuration does not allow.
    case algorithmNotAllowed(String)
    /// No key of the set matches the token's `kid` and algorithm.
    case noMatchingKey(String)
    case signatureInvalid
    /// `exp` passed: the expiry (seconds since 1970), the time of the check and the leeway.
    case expired(at: Double, now: Double, leeway: Int)
    /// `nbf` not reached yet.
    case notYetValid(until: Double, now: Double, leeway: Int)
    case issuerNotAllowed(String)
    case audienceNotAllowed(String)
    case missingClaim(String)
    /// A claim has the wrong type (`exp` not a number, `aud` not a string or a list of strings...).
    case invalidClaim(name: String, reason: String)
    /// The crypto library refused to sign (never expected with a key that parsed).
    case signingFailed(String)

    public var description: String {
        switch self {
        case .malformedToken(let reason): "malformed token: \(reason)"
        case .invalidKey(let reason): "invalid key: \(reason)"
        case .algorithmNotAllowed(let reason): reason
        case .noMatchingKey(let reason): reason
        case .signatureInvalid: "signature invalid"
        case .expired(let at, let now, let leeway):
            "token expired at \(Self.time(at)) (now \(Self.time(now))\(leeway > 0 ? ", leeway \(leeway) s" : ""))"
        case .notYetValid(let until, let now, let leeway):
            "token not yet valid until \(Self.time(until)) (now \(Self.time(now))\(leeway > 0 ? ", leeway \(leeway) s" : ""))"
        case .issuerNotAllowed(let reason): reason
        case .audienceNotAllowed(let reason): reason
        case .missingClaim(let name): "missing claim '\(name)'"
        case .invalidClaim(let name, let reason): "invalid claim '\(name)': \(reason)"
        case .signingFailed(let reason): "signing failed: \(reason)"
        }
    }

    /// Seconds since 1970 as an ISO 8601 UTC time (the number itself when it is out of the calendar's range).
    static func time(_ seconds: Double) -> String {
        guard seconds.isFinite, abs(seconds) < 253_402_300_800 else { return "\(seconds)" }
        return Date(timeIntervalSince1970: seconds).formatted(.iso8601)
    }
}
