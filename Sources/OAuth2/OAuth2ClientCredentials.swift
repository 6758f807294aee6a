import Foundation
// Client ids and secrets are `Secret`s; re-exported for the module's users.
@_exported import Secrets

/// OAuth2's client-credentials grant (RFC 6749 §4.4): where to ask, as whom, and for what.
public struct OAuth2ClientCredentials: Sendable, Hashable {
    /// The token endpoint's URL (`http` or `https`).
    public var tokenEndpoint: String
    public var clientID: Secret
    public var clientSecret: Secret
    /// Sent as one space-separated `scope` parameter when not empty.
    public var scopes: [String] = []
    /// Each sent as an `audience` parameter.
    public var audience: [String] = []

    public init(tokenEndpoint: String, clientID: Secret, clientSecret: Secret) {
        self.tokenEndpoint = tokenEndpoint
        self.clientID = clientID
        self.clientSecret = clientSecret
    }
}

/// An access token from the token endpoint.
public struct OAuth2Token: Sendable, Hashable {
    /// The `access_token` as received.
    public var value: String
    /// `expires_in` (or ``OAuth2TokenSource/defaultLifetime`` when the endpoint did not say).
    public var lifetime: Duration
    /// When the answer arrived, on the wall clock (for consumers that need an absolute expiry, such as librdkafka).
    public var received: Date

    public init(value: String, lifetime: Duration, received: Date) {
        self.value = value
        self.lifetime = lifetime
        self.received = received
    }

    /// When the token stops being valid, on the wall clock.
    public var expires: Date {
        received.addingTimeInterval(Double(lifetime.components.seconds) + Double(lifetime.components.attoseconds) / 1e18)
    }

    /// The `sub` claim when the token is a JWT (three base64url parts, a JSON payload with a string `sub`); `nil`
    /// for an opaque token. Only decodes: the token's signature is the broker's business.
    public var jwtSubject: String? {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        // A JWT's payload is small; a "JWT" larger than the answer limit cannot arrive here anyway.
        guard parts.count == 3, parts[1].utf8.count <= 64 << 10 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        guard let payload = Data(base64Encoded: base64),
              let claims = try? JSONSerialization.jsonObject(with: payload) as? [String: Any],
              let subject = claims["sub"] as? String, !subject.isEmpty else { return nil }
        return subject
    }
}

/// A token request that failed, with what is needed to act on it: the endpoint, the HTTP status, and the
/// endpoint's OAuth `error` and `error_description` (RFC 6749 §5.2) when it sent them. Never holds a secret.
public struct OAuth2Error: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// No answer: refused connection, timeout, TLS failure.
        case unreachable
        /// The endpoint answered with an error status (401 for a wrong client, for example).
        case refused
        /// HTTP 200 without a usable `access_token`.
        case invalidAnswer
    }

    public var kind: Kind
    public var endpoint: String
    /// The HTTP status, when the endpoint answered.
    public var status: Int?
    /// The OAuth `error` code (`invalid_client`, ...), when the endpoint sent one.
    public var oauthError: String?
    /// The OAuth `error_description`, when the endpoint sent one.
    public var errorDescription: String?
    /// The underlying failure for `.unreachable` / `.invalidAnswer`.
    public var detail: String?

    public init(kind: Kind, endpoint: String, status: Int? = nil, oauthError: String? = nil, errorDescription: String? = nil,
                detail: String? = nil) {
        self.kind = kind
        self.endpoint = endpoint
        self.status = status
        self.oauthError = oauthError
        self.errorDescription = errorDescription
        self.detail = detail
    }

    public var description: String {
        switch kind {
        case .unreachable:
            return "the token endpoint \(endpoint) is unreachable: \(detail ?? "no answer")"
        case .refused:
            var text = "the token endpoint \(endpoint) refused the token request: HTTP \(status ?? 0)"
            if let oauthError { text += " \(oauthError)" }
            if let errorDescription { text += " (\(errorDescription))" }
            return text
        case .invalidAnswer:
            return "the token endpoint \(endpoint) answered HTTP \(status ?? 0) without a usable access_token"
                + (detail.map { ": \($0)" } ?? "")
        }
    }
}
