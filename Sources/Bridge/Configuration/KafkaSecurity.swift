import AsyncHTTPClient
import Foundation
import Kafka
import OAuth2
// `Secret` lives in the leaf module `Secrets` (the registry client uses it too); re-exported for Bridge's users.
@_exported import Secrets

/// SASL authentication (`authentication:`, Kong's field names).
public struct KafkaAuthentication: Sendable, Hashable {
    public enum Mechanism: String, Sendable, Hashable, CaseIterable {
        case plain = "PLAIN"
        case scramSHA256 = "SCRAM-SHA-256"
        case scramSHA512 = "SCRAM-SHA-512"
        case oauthBearer = "OAUTHBEARER"
    }

    /// `mechanism`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`. Required.
    public var mechanism: Mechanism
    /// `user`: the SASL user name, or the delegation token's id with `tokenauth`. Required; may be a secret reference.
    /// With OAUTHBEARER: the OAuth2 client id (`oauthbearer.client_id`).
    public var user: Secret
    /// `password`: the SASL password, or the delegation token's HMAC with `tokenauth`. Required; may be a secret reference.
    /// With OAUTHBEARER: the OAuth2 client secret (`oauthbearer.client_secret`).
    public var password: Secret
    /// `tokenauth`: log in with a Kafka delegation token (SCRAM with the `tokenauth=true` extension). Default: false.
    public var tokenAuthentication = false
    /// `oauthbearer`: the OAuth2 client-credentials settings; set exactly when `mechanism` is OAUTHBEARER.
    public private(set) var oauthBearer: KafkaOAuthBearerSettings?

    public init(mechanism: Mechanism, user: Secret, password: Secret) {
        self.mechanism = mechanism
        self.user = user
        self.password = password
    }

    /// SASL OAUTHBEARER with tokens from an OAuth2 token endpoint.
    public init(oauthBearer: KafkaOAuthBearerSettings) {
        self.init(mechanism: .oauthBearer, user: oauthBearer.clientID, password: oauthBearer.clientSecret)
        self.oauthBearer = oauthBearer
    }
}

/// `authentication.oauthbearer` (Kong 3.15): the OAuth2 client-credentials grant whose access tokens log in to
/// the brokers with SASL OAUTHBEARER. Part of the producer's identity: routes share a producer only when these agree.
public struct KafkaOAuthBearerSettings: Sendable, Hashable {
    /// `token_endpoint_url`: the token endpoint (`http` or `https`). Required; may be a secret reference.
    public var tokenEndpoint: String
    /// `client_id`. Required; may be a secret reference. Also the principal when the token is not a JWT.
    public var clientID: Secret
    /// `client_secret`. Required; may be a secret reference.
    public var clientSecret: Secret
    /// `scopes`: requested as one space-separated `scope`. Default: none.
    public var scopes: [String] = []
    /// `extensions`: SASL extensions sent with the token (`logicalCluster`, `identityPoolId`, ...). Default: none.
    public var extensions: [String: String] = [:]
    /// `token_endpoint_tls_verify`: verify an `https` token endpoint's certificate. Default: true.
    public var tokenEndpointTLSVerify = true

    public init(tokenEndpoint: String, clientID: Secret, clientSecret: Secret) {
        self.tokenEndpoint = tokenEndpoint
        self.clientID = clientID
        self.clientSecret = clientSecret
    }
}

/// TLS to the brokers (`security:` with `ssl: true`).
public struct KafkaTLS: Sendable, Hashable {
    /// `ssl_verify`: verify the broker's certificate chain and host name. Default: true.
    public var verify = true
    /// `ca_file`: PEM file of the CAs to trust. Default: the system trust store.
    public var caFile: String?
    /// `client_certificate_file`: PEM client certificate (chain) for mTLS; needs `client_key_file`.
    public var clientCertificateFile: String?
    /// `client_key_file`: PEM private key of the client certificate, possibly encrypted.
    public var clientKeyFile: String?
    /// `client_key_password`: the passphrase of an encrypted `client_key_file`; may be a secret reference.
    public var clientKeyPassword: Secret?

    public init() {}
}

extension KafkaSettings {
    /// librdkafka's `security.protocol` for these settings.
    public var securityProtocol: String {
        switch (authentication != nil, tls != nil) {
        case (false, false): "PLAINTEXT"
        case (false, true): "SSL"
        case (true, false): "SASL_PLAINTEXT"
        case (true, true): "SASL_SSL"
        }
    }

    /// What the logs say of the security settings: the protocol and mechanism, never a secret.
    public var securityDescription: String {
        guard let authentication else { return securityProtocol }
        let token = authentication.tokenAuthentication ? " delegation token" : ""
        return "\(securityProtocol) \(authentication.mechanism.rawValue)\(token)"
    }

    /// The security properties: `security.protocol`, `sasl.*` and `ssl.*`.
    ///
    /// With a delegation token, librdkafka speaks plaintext to kbridge's own relay, which does TLS and the
    /// token login towards the brokers (see ``delegationTokenLogin``).
    var securityProperties: [String: String] {
        if authentication?.tokenAuthentication == true { return ["security.protocol": "PLAINTEXT"] }
        var properties = ["security.protocol": securityProtocol]
        if let authentication {
            properties["sasl.mechanism"] = authentication.mechanism.rawValue
        }
        // OAUTHBEARER tokens come from kbridge's token client (see ``oauthBearerTokenProvider(httpClient:)``).
        if let authentication, authentication.mechanism != .oauthBearer {
            properties["sasl.username"] = authentication.user.value
            properties["sasl.password"] = authentication.password.value
        }
        if let tls {
            properties["ssl.ca.location"] = tls.caFile ?? "probe"  // "probe": the system's usual CA locations
            properties["enable.ssl.certificate.verification"] = String(tls.verify)
            properties["ssl.endpoint.identification.algorithm"] = tls.verify ? "https" : "none"
            if let certificate = tls.clientCertificateFile { properties["ssl.certificate.location"] = certificate }
            if let key = tls.clientKeyFile { properties["ssl.key.location"] = key }
            if let password = tls.clientKeyPassword { properties["ssl.key.password"] = password.value }
        }
        return properties
    }
}

extension KafkaSettings {
    /// The delegation-token login for `tokenauth: true` (the token id as user, its HMAC as password), with the
    /// TLS settings it needs towards the brokers; `nil` otherwise.
    public var delegationTokenLogin: DelegationTokenLogin? {
        guard let authentication, authentication.tokenAuthentication else { return nil }
        let algorithm: DelegationTokenLogin.Algorithm = authentication.mechanism == .scramSHA512 ? .scramSHA512 : .scramSHA256
        var loginTLS: DelegationTokenLogin.TLS?
        if let tls {
            var settings = DelegationTokenLogin.TLS()
            settings.caFile = tls.caFile
            settings.verify = tls.verify
            settings.certificateFile = tls.clientCertificateFile
            settings.keyFile = tls.clientKeyFile
            settings.keyPassword = tls.clientKeyPassword?.value
            loginTLS = settings
        }
        let hmac = authentication.password
        return DelegationTokenLogin(algorithm: algorithm, tokenID: authentication.user.value, tls: loginTLS) { hmac.current() }
    }
}

extension KafkaSettings {
    /// With OAUTHBEARER, where the producer's tokens come from: a new token from the token endpoint each time
    /// librdkafka asks (at start and at 80 % of each token's lifetime), with the JWT's `sub` as the principal
    /// (the client id for an opaque token) and the configured extensions. `nil` for other mechanisms.
    public func oauthBearerTokenProvider(httpClient: HTTPClient) -> KafkaOAuthBearerTokenProvider? {
        guard let settings = authentication?.oauthBearer else { return nil }
        var credentials = OAuth2ClientCredentials(tokenEndpoint: settings.tokenEndpoint, clientID: settings.clientID,
                                                  clientSecret: settings.clientSecret)
        credentials.scopes = settings.scopes
        let source = OAuth2TokenSource(credentials: credentials, httpClient: httpClient,
                                       tls: OAuth2TokenSource.tlsConfiguration(verify: settings.tokenEndpointTLSVerify),
                                       timeout: .milliseconds(timeout))
        let clientID = settings.clientID
        let extensions = settings.extensions
        return {
            let token = try await source.fetch()
            return KafkaOAuthBearerToken(value: token.value, expires: token.expires, principal: token.jwtSubject ?? clientID.current(),
                                         extensions: extensions)
        }
    }
}
