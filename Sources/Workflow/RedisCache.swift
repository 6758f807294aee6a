import Foundation
import JSON
import Logging
import NIOPosix
import Redis
import Secrets
import Synchronization

/// `resources.cache`: where `cache` nodes keep their entries.
enum CacheResource: Sendable {
    case memory(MemoryCache.Limits)
    case redis(RedisCacheSettings)
}

/// `resources.cache.redis`, checked: how to reach the server and the prefix of this workflow's keys.
struct RedisCacheSettings: Sendable, Hashable {
    var configuration: RedisConfiguration
    /// Every key the workflow's cache nodes use is `keyPrefix + key`.
    var keyPrefix: String
}

/// The cache of a workflow's `cache` nodes: in this process (inline, O(1)) or in a Redis server shared with other
/// kbridge processes (asynchronous).
enum WorkflowCache: Sendable {
    case memory(MemoryCache)
    case redis(RedisCache)
}

/// A workflow's keys in Redis. Values are stored as JSON text (``JSONValue/jsonText``) and read back with
/// ``JSONParser``; keys are `keyPrefix + key`, so two workflows share entries only when they have the same prefix:
/// the same `key_prefix`, or (by default) the same nodes, as the same workflow in two kbridge processes has.
final class RedisCache: Sendable {
    let client: RedisClient
    let keyPrefix: String

    init(client: RedisClient, keyPrefix: String) {
        self.client = client
        self.keyPrefix = keyPrefix
    }

    /// The value under `key`, or `nil` when there is none.
    func value(for key: String) async throws(RedisError) -> JSONValue? {
        guard let bytes = try await client.get(keyPrefix + key) else { return nil }
        do {
            return try JSONParser.parse(bytes)
        } catch {
            throw RedisError(.protocolViolation, "redis \(client.endpoint): the value under '\(keyPrefix + key)' is not JSON text: \(error)")
        }
    }

    func store(_ value: JSONValue, for key: String, seconds: Int) async throws(RedisError) {
        try await client.set(keyPrefix + key, value: JSONWriter.bytes(value), expiresInSeconds: seconds)
    }
}

/// A `cache` node on Redis: GET or SET as a child task (the node never waits on a thread). When Redis fails, with
/// `bypass_on_error` the node reports a miss (GET) or `stored: false` (SET) and the run goes on; without, the node
/// fails with Redis's reason.
struct RedisCacheNode {
    let work: AsynchronousNodeWork

    init(ttl: Int?, bypassOnError: Bool, cache: RedisCache) {
        work = { inputs, _ async throws(WorkflowNodeError) -> NodeOutputs in
            let order = ["hit", "miss", "stored", "data"]
            guard case .string(let key)? = inputs.ports["key"], !key.isEmpty else { throw WorkflowNodeError("the cache key is missing") }
            if let data = inputs.ports["data"], data != .null {
                let seconds = inputs.ports["ttl"]?.numberValue?.int64.flatMap { Int(exactly: $0) } ?? ttl ?? 60
                var stored = false
                if seconds > 0 {
                    do throws(RedisError) {
                        try await cache.store(data, for: key, seconds: min(seconds, 315_360_000))
                        stored = true
                    } catch {
                        if !bypassOnError { throw WorkflowNodeError("cache: \(error.message)") }
                    }
                }
                return .fields(["hit": .bool(false), "miss": .bool(false), "stored": .bool(stored), "data": data], order: order)
            }
            let found: JSONValue?
            do throws(RedisError) {
                found = try await cache.value(for: key)
            } catch {
                if !bypassOnError { throw WorkflowNodeError("cache: \(error.message)") }
                found = nil
            }
            if let found {
                return .fields(["hit": .bool(true), "miss": .bool(false), "stored": .bool(false), "data": found], order: order)
            }
            return .fields(["hit": .bool(false), "miss": .bool(true), "stored": .bool(false)], order: order)
        }
    }
}

extension DefinitionReader {
    /// Kong's redis record fields that kbridge cannot honour (a cluster, Sentinel, cloud IAM authentication): refused
    /// when set (a `null`, as Kong's exports write them, is fine).
    static let unsupportedRedisKeys = ["cluster_nodes", "cluster_max_redirections", "sentinel_master", "sentinel_role", "sentinel_nodes",
                                       "sentinel_username", "sentinel_password", "cloud_authentication"]
    static let redisKeys = ["host", "port", "database", "username", "password", "ssl", "ssl_verify", "server_name", "timeout",
                            "connect_timeout", "send_timeout", "read_timeout", "keepalive_pool_size", "keepalive_backlog",
                            "connection_is_proxied", "key_prefix"] + unsupportedRedisKeys

    /// `resources.cache.redis`: Kong's standard redis record (single server), and kbridge's `key_prefix`.
    /// `nodes` is the workflow's `nodes` as written: the default key prefix is derived from it.
    mutating func readRedisCacheRecord(_ value: JSONValue?, nodes: JSONValue?) -> RedisCacheSettings? {
        let path = "resources.cache.redis"
        guard let value else {
            issue(path, "required with strategy redis: at least 'host'")
            return nil
        }
        guard let record = mapping(value, path, allowed: Self.redisKeys) else { return nil }
        // Kong's exports write every field, unset ones as null.
        func field(_ key: String) -> JSONValue? {
            guard let value = record[key], value != .null else { return nil }
            return value
        }
        for key in Self.unsupportedRedisKeys where field(key) != nil {
            if key == "cluster_max_redirections" { continue }  // meaningful only with cluster_nodes
            issue("\(path).\(key)", "kbridge's redis cache talks to one server: Redis Cluster, Sentinel and cloud authentication are not supported")
        }
        guard let hostValue = field("host"), let host = string(hostValue, "\(path).host") else {
            if field("host") == nil { issue("\(path).host", "required: the Redis server's host name or address") }
            return nil
        }
        if host.isEmpty || host.utf8.count > 255 { issue("\(path).host", "a host name has 1 to 255 characters") }
        var configuration = RedisConfiguration(host: host)
        if let port = field("port").flatMap({ int($0, "\(path).port", in: 1...65535) }) { configuration.port = port }
        if let database = field("database").flatMap({ int($0, "\(path).database", in: 0...1_000_000) }) { configuration.database = database }
        configuration.username = field("username").flatMap { string($0, "\(path).username") }
        if let passwordValue = field("password"), let text = string(passwordValue, "\(path).password") {
            configuration.password = resolveVaultReference(text, "\(path).password")?.value
        }
        configuration.tls = field("ssl").flatMap { bool($0, "\(path).ssl") } ?? false
        configuration.tlsVerify = field("ssl_verify").flatMap { bool($0, "\(path).ssl_verify") } ?? false
        configuration.serverName = field("server_name").flatMap { string($0, "\(path).server_name") }
        // Kong's deprecated `timeout` sets the three that are not given.
        let timeout = field("timeout").flatMap { int($0, "\(path).timeout", in: 1...2_147_483_646) }
        func milliseconds(_ key: String) -> Duration {
            .milliseconds(field(key).flatMap { int($0, "\(path).\(key)", in: 1...2_147_483_646) } ?? timeout ?? 2000)
        }
        configuration.connectTimeout = milliseconds("connect_timeout")
        configuration.sendTimeout = milliseconds("send_timeout")
        configuration.readTimeout = milliseconds("read_timeout")
        if let size = field("keepalive_pool_size").flatMap({ int($0, "\(path).keepalive_pool_size", in: 1...RedisConfiguration.maximumPoolSize) }) {
            configuration.poolSize = size
        }
        // Accepted for Kong compatibility; kbridge's pool has no backlog (a command waits up to connect_timeout).
        _ = field("keepalive_backlog").flatMap { int($0, "\(path).keepalive_backlog", in: 0...2_147_483_646) }
        _ = field("connection_is_proxied").flatMap { bool($0, "\(path).connection_is_proxied") }
        var prefix: String
        if let custom = field("key_prefix").flatMap({ string($0, "\(path).key_prefix") }) {
            if custom.isEmpty || custom.utf8.count > 255 { issue("\(path).key_prefix", "1 to 255 characters") }
            prefix = custom
        } else {
            prefix = "kbridge:workflow:" + Self.fingerprint(nodes?.jsonText ?? "")
        }
        prefix += ":"
        return RedisCacheSettings(configuration: configuration, keyPrefix: prefix)
    }

    /// A secret written inline or as Kong's `{vault://env/NAME}` (the environment variable NAME, dashes as
    /// underscores, upper-cased — as the bridge resolves `resources.vault`).
    mutating func resolveVaultReference(_ text: String, _ path: String) -> Secret? {
        guard text.hasPrefix("{vault://"), text.hasSuffix("}") else { return Secret(text) }
        let reference = text.dropFirst("{vault://".count).dropLast()
        guard reference.hasPrefix("env/") else {
            issue(path, "only Kong's env vault is supported here ({vault://env/NAME})")
            return nil
        }
        let name = reference.dropFirst("env/".count).replacingOccurrences(of: "-", with: "_").uppercased()
        guard let value = ProcessInfo.processInfo.environment[name] else {
            issue(path, "environment variable \(name) is not set")
            return nil
        }
        return Secret(value, source: "env \(name)")
    }

    /// FNV-1a 64 of `text`, in hex: a stable name for a workflow's nodes across processes.
    static func fingerprint(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

extension WorkflowServices {
    /// The shared Redis client for `settings` (one per distinct server configuration; created on first use, closed by
    /// ``shutdown()``).
    func redisCache(_ settings: RedisCacheSettings, caCertificateFiles: [String]) throws(RedisError) -> RedisCache {
        var configuration = settings.configuration
        configuration.caCertificateFiles = caCertificateFiles.sorted()
        let result: Result<RedisClient, RedisError> = redisClients.withLock { clients in
            if let existing = clients[configuration] { return .success(existing) }
            do throws(RedisError) {
                let client = try RedisClient(configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                                             logger: Logger(label: "kbridge.workflow.redis"))
                clients[configuration] = client
                return .success(client)
            } catch {
                return .failure(error)
            }
        }
        return RedisCache(client: try result.get(), keyPrefix: settings.keyPrefix)
    }
}
