import Foundation
// The OAuth2 client-credentials type is the `OAuth2` module's; re-exported likewise.
@_exported import OAuth2
// Credentials are `Secret`s; re-exported for the module's users.
@_exported import Secrets
// Documents are `JSONValue`s from the leaf module `JSON`; re-exported likewise.
@_exported import JSON

/// How to reach a Confluent Schema Registry (Kong's `schema_registry.confluent.*`).
public struct SchemaRegistryConfiguration: Sendable, Hashable {
    /// `url`: the registry's base URL, without credentials (see ``init(url:)``). A path is kept:
    /// `http://host:8080/apis/ccompat/v7` (Apicurio) works. Safe to print, log and use as a metrics label.
    public private(set) var url: String
    /// `ttl`: how long a `latest` lookup is trusted before it is fetched again. Lookups by id or by version
    /// number never change in a registry, so they are kept without expiry. Default: 300 s.
    public var cacheTTL: Duration = .seconds(300)
    /// The deadline of one registry request, including connecting. Default: 5 s.
    public var requestTimeout: Duration = .seconds(5)
    /// After a failure to reach the registry, how long the client fails fast (serving cached schemas, stale or
    /// not, at once) before it tries again; doubled after each further failure up to ``maximumRetryBackoff``.
    public var retryBackoff: Duration = .milliseconds(500)
    public var maximumRetryBackoff: Duration = .seconds(30)
    /// `authentication`: none, basic, or OAuth2 client credentials. Default: none.
    public var authentication: Authentication = .none
    /// TLS settings for an `https` registry. Default: the system trust store, with verification.
    public var tls = TLS()
    /// `authentication.identity_pool_id` (Confluent Cloud): sent as `Confluent-Identity-Pool-Id` on every registry
    /// request. Default: none.
    public var identityPoolID: String?
    /// `authentication.logical_cluster_id` (Confluent Cloud): the registry's cluster id, sent as `target-sr-cluster`
    /// on every registry request. Default: none.
    public var logicalClusterID: String?

    /// - Parameter url: the registry's base URL. Credentials in it (`https://user:pass@host`) are taken out of the URL
    ///   and become basic authentication (as Confluent's `basic.auth.credentials.source=URL`), so that they are never
    ///   echoed in answers, logs or metrics.
    public init(url: String) {
        let (cleaned, userInfo) = Self.splitUserInfo(url)
        self.url = cleaned
        if let userInfo {
            authentication = .basic(username: Secret(userInfo.user, source: "url"), password: Secret(userInfo.password, source: "url"))
        }
    }

    /// Whether `url` carried credentials (which ``init(url:)`` turned into basic authentication).
    public static func hasUserInfo(_ url: String) -> Bool { splitUserInfo(url).userInfo != nil }

    /// `scheme://user:pass@host/path` to (`scheme://host/path`, (user, pass)), percent-decoded.
    static func splitUserInfo(_ url: String) -> (url: String, userInfo: (user: String, password: String)?) {
        guard let schemeEnd = url.range(of: "://") else { return (url, nil) }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        guard let at = authority.lastIndex(of: "@") else { return (url, nil) }
        let userInfo = authority[..<at]
        let (user, password) = userInfo.firstIndex(of: ":").map { (userInfo[..<$0], userInfo[userInfo.index(after: $0)...]) }
            ?? (userInfo, Substring(""))
        let decode = { (text: Substring) in text.removingPercentEncoding ?? String(text) }
        let cleaned = String(url[..<schemeEnd.upperBound]) + authority[authority.index(after: at)...] + rest[authorityEnd...]
        return (cleaned, (decode(user), decode(password)))
    }

    public enum Authentication: Sendable, Hashable {
        case none
        case basic(username: Secret, password: Secret)
        case oauth2(OAuth2ClientCredentials)
    }

    /// OAuth2's client-credentials grant: a token from `tokenEndpoint`, refreshed before it expires (the `OAuth2`
    /// module's type, shared with the Kafka OAUTHBEARER login).
    public typealias OAuth2ClientCredentials = OAuth2.OAuth2ClientCredentials

    public struct TLS: Sendable, Hashable {
        /// `ssl_verify`: verify the registry's certificate. Default: true.
        public var verify = true
        /// A PEM CA file; `nil`: the system trust store.
        public var caFile: String?
        /// A PEM client certificate and key, for mTLS.
        public var certificateFile: String?
        public var keyFile: String?

        public init() {}
    }
}
