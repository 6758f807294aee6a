import JWT
import PasswordHash
import Secrets

/// A route's `client_authentication:` (Kong's key-auth, basic-auth and jwt plugins as route options): who may send.
/// Any of the methods may be enabled; a request authenticates with the first credential it presents (an API key, then
/// the `Authorization` header's `Basic` or `Bearer`). The key is not `authentication`, which is the route's Kafka SASL login.
public struct ClientAuthenticationSettings: Sendable, Hashable {
    /// `realm`: the realm of the `WWW-Authenticate` challenges. Default: `kbridge`.
    public var realm = "kbridge"
    /// `hide_credentials`: remove the credential (the API key's header or query argument, the `Authorization` header)
    /// from what the route forwards (message, record headers, workflow). Default: false (Kong's).
    public var hideCredentials = false
    /// `consumer_record_header`: the name of a Kafka record header carrying the consumer. Default: none (off).
    public var consumerRecordHeader: String?
    /// `allowed_consumers`: consumers that may send; another authenticated consumer gets 403. Default: empty (any).
    public var allowedConsumers: [String] = []
    /// `api_key`: Kong's key-auth.
    public var apiKey: APIKeySettings?
    /// `basic`: Kong's basic-auth, with password hashes only.
    public var basic: BasicAuthenticationSettings?
    /// `jwt`: Kong's jwt plugin: bearer tokens verified with configured keys.
    public var jwt: JWTAuthenticationSettings?

    public init() {}
}

/// `client_authentication.api_key`.
public struct APIKeySettings: Sendable, Hashable {
    public struct Key: Sendable, Hashable {
        public var consumer: String
        public var key: Secret
        public init(consumer: String, key: Secret) {
            self.consumer = consumer
            self.key = key
        }
    }

    /// `key_names`: the header and query argument names looked at, in order. Default: `[apikey]` (Kong's).
    public var keyNames = ["apikey"]
    /// `key_in_header`: look in the headers. Default: true.
    public var keyInHeader = true
    /// `key_in_query`: look in the query string. Default: true.
    public var keyInQuery = true
    /// `keys`: `{consumer, key}` with `key` a secret (inline, `{env: NAME}` or `{file: PATH}`). Required.
    public var keys: [Key] = []

    public init() {}
}

/// `client_authentication.basic`.
public struct BasicAuthenticationSettings: Sendable, Hashable {
    public struct User: Sendable, Hashable {
        public var username: String
        /// `consumer`. Default: the username.
        public var consumer: String
        public var passwordHash: PasswordHash
        public init(username: String, consumer: String? = nil, passwordHash: PasswordHash) {
            self.username = username
            self.consumer = consumer ?? username
            self.passwordHash = passwordHash
        }
    }

    /// `users`: `{username, password_hash, consumer}`. Required.
    public var users: [User] = []
    /// `cache_ttl` (ms): how long a successful verification is remembered (keyed by a SHA-256 of the credential),
    /// so that a client sending the same credential is not hashed again. 0: no cache. Default: 60000.
    public var cacheTTL: Duration = .seconds(60)
    /// `cache_size`: remembered verifications at most. Default: 10000.
    public var cacheSize = 10_000
    /// `max_pending_verifications`: password hashes being verified (on the thread pool) at once; more get 503
    /// `authentication_busy`. Default: 64.
    public var maxPendingVerifications = 64

    public init() {}
}

/// `client_authentication.jwt`.
public struct JWTAuthenticationSettings: Sendable, Hashable {
    /// A verification key: text of a PEM public key or certificate, a JWK or a JWKS (`file:`), or an HMAC secret (`secret:`).
    public struct Key: Sendable, Hashable {
        public var text: Secret
        public var types: [JWTKeyType]
        public init(text: Secret, types: [JWTKeyType]) {
            self.text = text
            self.types = types
        }
    }

    /// A key set fetched from a URL (`{jwks_url: URL}`): at start-up, then every `refreshInterval` in the background,
    /// and early (at most once every ``JWKSKeySource/minimumEarlyRefreshSpacing``) when a token names an unknown `kid`.
    public struct KeySetURL: Sendable, Hashable {
        /// `jwks_url`: an `https` URL (`http` only to a loopback host), canonical (as ``CalloutURL`` writes it).
        public var url: String
        /// `jwks_refresh_interval` (ms): how often the set is fetched again. Default: 300000 (5 minutes).
        public var refreshInterval: Duration = .seconds(300)
        /// `jwks_timeout` (ms): the deadline of one fetch, connecting included. Default: 5000.
        public var timeout: Duration = .seconds(5)
        /// `jwks_ssl_verify`: verify the server's certificate. Default: true.
        public var sslVerify = true
        /// `jwks_ca_file`: a PEM file of the CAs to trust instead of the system's. Default: none.
        public var caFile: String?
        /// Where the key is configured, for the start-up error when the first fetch fails.
        public var origin: ConfigurationOrigin

        public init(url: String, origin: ConfigurationOrigin) {
            self.url = url
            self.origin = origin
        }
    }

    /// `keys`: required. Files and secrets here; `{jwks_url: URL}` entries in ``keySetURLs``.
    public var keys: [Key] = []
    /// The `keys` entries that are `{jwks_url: URL, ...}`.
    public var keySetURLs: [KeySetURL] = []
    /// `algorithms`: the algorithms accepted. Default: every algorithm of the configured keys' types.
    public var algorithms: [JWTSignatureAlgorithm] = []
    /// `issuers`: accepted `iss` values. Default: empty (any, and `iss` may be absent).
    public var issuers: [String] = []
    /// `audiences`: accepted `aud` values. Default: empty (any).
    public var audiences: [String] = []
    /// `required_claims`: claims that must be present. Default: `[exp]`.
    public var requiredClaims = ["exp"]
    /// `leeway` (s): clock skew allowed for `exp` and `nbf`. Default: 0.
    public var leeway = 0
    /// `consumer_claim`: the claim naming the consumer (a string). Default: `sub`.
    public var consumerClaim = "sub"

    public init() {}
}

/// Where a value was configured (`file:line:column` and key path), for a problem found only once kbridge starts.
public struct ConfigurationOrigin: Sendable, Hashable {
    public var file: String
    public var line: Int?
    public var column: Int?
    public var key: String

    public init(file: String, line: Int? = nil, column: Int? = nil, key: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
    }

    /// The issue `reason` at this place.
    public func issue(_ reason: String) -> ConfigurationIssue {
        ConfigurationIssue(file: file, line: line, column: column, key: key, reason: reason)
    }
}

/// A route's `rate_limit:`: token buckets in memory, for the route and for each consumer.
public struct RateLimitSettings: Sendable, Hashable {
    public struct Limit: Sendable, Hashable {
        /// `rate`: tokens added per `per`.
        public var rate: Int
        /// `per`: `second`, `minute` or `hour`.
        public var period: Duration
        /// `burst`: the bucket's size (requests that may come at once). Default: `rate`.
        public var burst: Int
        public init(rate: Int, period: Duration = .seconds(1), burst: Int? = nil) {
            self.rate = rate
            self.period = period
            self.burst = burst ?? rate
        }
    }

    /// `route`: one bucket for the whole route (per kbridge instance). Default: none.
    public var route: Limit?
    /// `consumer`: one bucket per authenticated consumer (needs `client_authentication`). Default: none.
    public var consumer: Limit?
    /// `max_consumers`: consumer buckets kept at most; beyond it idle (full) buckets, then the least recently used, are
    /// dropped. Default: 10000.
    public var maxConsumers = 10_000

    public init() {}
}
