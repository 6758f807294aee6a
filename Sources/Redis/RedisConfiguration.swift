/// Where and how to reach one Redis server (Kong's standard `redis` record, the fields that apply to a single
/// server: no cluster, sentinel or cloud authentication).
public struct RedisConfiguration: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public var host: String
    public var port = 6379
    /// `SELECT`ed on every new connection when not 0.
    public var database = 0
    /// For Redis 6 ACLs: `AUTH username password`; without it, `AUTH password`.
    public var username: String?
    public var password: String?
    public var tls = false
    /// Whether the server's certificate must chain to a trusted root and name the host (Kong's `ssl_verify`).
    public var tlsVerify = false
    /// SNI and the name the certificate must carry (Kong's `server_name`); default: `host`.
    public var serverName: String?
    /// PEM files of CA certificates trusted besides the system's roots.
    public var caCertificateFiles: [String] = []
    public var connectTimeout: Duration = .milliseconds(2000)
    /// How long writing one command may take.
    public var sendTimeout: Duration = .milliseconds(2000)
    /// How long the reply to one command may take once it is sent.
    public var readTimeout: Duration = .milliseconds(2000)
    /// The most connections open at once; a command waits (up to `connectTimeout`) when all are busy.
    public var poolSize = 256
    public var limits = RESPLimits()

    public init(host: String, port: Int = 6379) {
        self.host = host
        self.port = port
    }

    /// The configuration for logs: the password never appears.
    public var debugDescription: String { description }

    public var description: String {
        "redis \(host):\(port) database \(database)\(username.map { " user '\($0)'" } ?? "")\(password == nil ? "" : " with a password")"
            + (tls ? " over TLS\(tlsVerify ? " (verified)" : "")" : "") + ", pool \(poolSize)"
    }

    /// The largest pool a configuration may ask for.
    public static let maximumPoolSize = 4096
    /// The longest key the client sends.
    public static let maximumKeyLength = 64 * 1024
}

/// A failed Redis operation: what kind, and the words saying what happened (never a password).
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The TCP connection (or the TLS handshake) could not be made.
        case connect
        case timeout
        case tls
        /// `AUTH` was refused.
        case authentication
        /// The server answered with an error reply.
        case server
        /// The server's bytes are not a reply kbridge accepts.
        case protocolViolation
        /// The connection closed before the reply came.
        case connectionClosed
        /// Every pooled connection stayed busy for the whole wait.
        case poolExhausted
        /// The caller gave something the client refuses (a key too long, a bad configuration).
        case invalidArgument
        case shutdown
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
