/// How to reach a Confluent Schema Registry (Kong's `schema_registry.confluent.*`).
public struct SchemaRegistryConfiguration: Sendable, Hashable {
    /// `url`: the registry's base URL. A path is kept: `http://host:8080/apis/ccompat/v7` (Apicurio) works.
    public var url: String
    /// `ttl`: how long a `latest` lookup is trusted before it is fetched again. Lookups by id or by version
    /// number never change in a registry, so they are kept without expiry. Default: 300 s.
    public var cacheTTL: Duration = .seconds(300)
    /// The deadline of one registry request, including connecting. Default: 5 s.
    public var requestTimeout: Duration = .seconds(5)
    /// `authentication`: none, basic, or OAuth2 client credentials. Default: none.
    public var authentication: Authentication = .none
    /// TLS settings for an `https` registry. Default: the system trust store, with verification.
    public var tls = TLS()

    public init(url: String) { self.url = url }

    public enum Authentication: Sendable, Hashable {
        case none
        case basic(username: String, password: String)
        case oauth2(OAuth2ClientCredentials)
    }

    /// OAuth2's client-credentials grant: a token from `tokenEndpoint`, refreshed before it expires.
    public struct OAuth2ClientCredentials: Sendable, Hashable {
        public var tokenEndpoint: String
        public var clientID: String
        public var clientSecret: String
        public var scopes: [String] = []
        public var audience: [String] = []

        public init(tokenEndpoint: String, clientID: String, clientSecret: String) {
            self.tokenEndpoint = tokenEndpoint
            self.clientID = clientID
            self.clientSecret = clientSecret
        }
    }

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
