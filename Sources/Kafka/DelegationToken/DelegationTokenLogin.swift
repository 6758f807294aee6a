/// A Kafka delegation-token login (KIP-48): SCRAM with the token id as user, the token's HMAC as password,
/// and the extension `tokenauth=true`. librdkafka cannot send SCRAM extensions, so kbridge performs this login
/// itself for every broker connection librdkafka opens (see ``KafkaProducer/init(properties:delegationToken:logger:)``).
public struct DelegationTokenLogin: Sendable {
    public enum Algorithm: String, Sendable, Hashable {
        case scramSHA256 = "SCRAM-SHA-256"
        case scramSHA512 = "SCRAM-SHA-512"
    }

    /// TLS towards the brokers (the connection librdkafka sees is local and plaintext).
    public struct TLS: Sendable, Hashable {
        /// PEM CA file; `nil`: the system trust store.
        public var caFile: String?
        /// Verify the broker's certificate chain and host name (or IP address).
        public var verify = true
        /// PEM client certificate and key, for mTLS.
        public var certificateFile: String?
        public var keyFile: String?
        public var keyPassword: String?

        public init() {}
    }

    public var algorithm: Algorithm
    public var tokenID: String
    /// Returns the token's current HMAC; called for each new broker connection, so a rotated token is picked up.
    public var hmac: @Sendable () -> String
    public var tls: TLS?

    public init(algorithm: Algorithm, tokenID: String, tls: TLS? = nil, hmac: @escaping @Sendable () -> String) {
        self.algorithm = algorithm
        self.tokenID = tokenID
        self.tls = tls
        self.hmac = hmac
    }
}
