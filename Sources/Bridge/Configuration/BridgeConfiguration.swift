import Logging
import NIOCore

/// Everything kbridge runs with: the listener and the routes. Built from a YAML file by
/// ``BridgeConfiguration/load(file:)`` (see the README for every key) or in code.
public struct BridgeConfiguration: Sendable {
    public var server = ServerConfiguration()
    /// `log_level`: `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`. Default: `info`.
    public var logLevel: Logger.Level = .info
    /// `log_format`: `text` or `json` (one JSON object per line). Default: `text`.
    public var logFormat: LogFormat = .text
    public var routes: [RouteConfiguration] = []

    public init(server: ServerConfiguration = ServerConfiguration(), logLevel: Logger.Level = .info, routes: [RouteConfiguration] = []) {
        self.server = server
        self.logLevel = logLevel
        self.routes = routes
    }
}

/// The HTTP listener (`server:` in the file).
public struct ServerConfiguration: Sendable, Hashable {
    /// `host`: the address to listen on. Default: `0.0.0.0`.
    public var host = "0.0.0.0"
    /// `port`: the TCP port; 0 picks a free one. Default: `8080`.
    public var port = 8080
    /// `threads`: event-loop threads serving HTTP. Default: the number of CPU cores.
    public var threads = System.coreCount
    /// `shutdown_timeout` (ms): on SIGTERM/SIGINT, how long in-flight requests and the flush of accepted
    /// messages may take before what is left is purged (and counted as lost). Default: 10000.
    public var shutdownTimeout: Duration = .seconds(10)
    /// `health_path`: `GET` answers each cluster's health as JSON (200 up, 503 down); `""` turns it off.
    /// Default: `/health`.
    public var healthPath: String? = "/health"
    /// `metrics_path`: `GET` answers Prometheus metrics; `""` turns it off. Default: `/metrics`.
    public var metricsPath: String? = "/metrics"
    /// `ready_path`: `GET` answers readiness (200 once every cluster was reached, 503 before and while shutting
    /// down); `""` turns it off. Default: `/ready`.
    public var readyPath: String? = "/ready"
    /// `request_id_header`: the request's id, kept from this header when the client sent a valid one, else made
    /// (32 hex digits); returned in the answer, added to the request's headers (so that `forward_headers` and the
    /// record header rules see it) and logged. `""` turns it off. Default: `x-request-id`.
    public var requestIDHeader: String? = "x-request-id"
    /// `access_log`: one `info` log line per request (method, path, route, status, bytes in and out, duration,
    /// request id, client address). Default: false.
    public var accessLog = false
    /// `tls`: HTTPS and client certificates (see ``ServerTLSSettings``). Default: none (plain HTTP).
    public var tls: ServerTLSSettings?
    /// `admin`: a separate plain-HTTP listener for the health, readiness and metrics paths (which the main listener
    /// then no longer serves); it closes last at shutdown. Default: none.
    public var admin: AdminListener?
    /// `request_read_timeout` (ms): a request's head and body must arrive within this time of its first byte,
    /// else 408 and the connection is closed (slowloris, trickled bodies). Default: 30000.
    public var requestReadTimeout: Duration = .seconds(30)
    /// `idle_timeout` (ms): a connection with no request in progress is closed after this time. Default: 60000.
    public var idleTimeout: Duration = .seconds(60)
    /// `max_connections`: open HTTP connections; a connection over it is accepted, answered 503 and closed.
    /// Default: 10000.
    public var maxConnections = 10_000
    /// `max_header_size` (bytes): header names and values of a request, together; more gets 431. Default: 32768.
    public var maxHeaderSize = 32_768
    /// `max_headers`: header fields of a request; more gets 431. Default: 100.
    public var maxHeaders = 100
    /// `max_uri_length` (bytes): the request target (path and query); longer gets 414. Default: 8192.
    public var maxURILength = 8_192
    /// `max_form_fields`: arguments of a query string or of an `application/x-www-form-urlencoded` body; more gets 400.
    /// Default: 1000.
    public var maxFormFields = 1_000
    /// `max_multipart_parts`: parts of a `multipart/form-data` body; more gets 400. Default: 1000.
    public var maxMultipartParts = 1_000

    public init() {}
}

/// A route: which requests it takes, how it turns them into messages, and where it produces them.
public struct RouteConfiguration: Sendable, Hashable {
    /// `name`: used in logs. Default: `METHOD path`.
    public var name: String
    /// `path`: literal segments and at most one each of `{topic}` and `{key}`, e.g. `/events/{topic}`.
    public var path: String
    /// `methods`: the HTTP methods accepted. Default: `[POST]`.
    public var methods: [String] = ["POST"]
    /// `max_body_size` (bytes): larger bodies get 413. Default: 1048576 (Kong reads up to 1 MB).
    public var maxBodySize = 1_048_576
    /// `topic`: the default topic. Required unless the path has `{topic}`.
    public var topic: String?
    /// `topics_query_arg`: a query argument holding a comma-separated list of topics to produce to.
    public var topicsQueryArgument: String?
    /// `allowed_topics`: the topics a request may choose (by `{topic}` or `topics_query_arg`);
    /// `topic` is always allowed. Empty: any valid topic name. Default: empty.
    public var allowedTopics: [String] = []
    /// `key_query_arg`: a query argument holding the message key.
    public var keyQueryArgument: String?
    /// `forward_method`, `forward_uri`, `forward_headers`, `forward_body`.
    public var fields = MessageFields()
    /// The producer settings (Kong's names; see ``KafkaSettings``).
    public var kafka: KafkaSettings
    /// `schema_registry.confluent`: validate and serialize the body (and key) with registered schemas.
    public var schemaRegistry: SchemaRegistrySettings?
    /// `workflow`: a Kong Datakit configuration run before the message is built.
    public var workflow: RouteWorkflow?
    /// `headers`: HTTP request headers forwarded as Kafka record headers (Kong 3.15). Default: none.
    public var recordHeaders = RecordHeaderSettings()
    /// `client_certificate_header`: a record header carrying the subject of the client's verified TLS certificate
    /// (needs `server.tls.client_certificate`). Default: none.
    public var clientCertificateHeader: String?
    /// `trace_context_headers`: a valid W3C `traceparent` (and its `tracestate`) of the request is put on the record
    /// as headers of the same names, so consumers continue the trace. Default: true.
    public var traceContextHeaders = true
    /// `error_handling.return_error_message`: whether error answers carry the Kafka client's (and the schema
    /// registry's) own text; when false they carry kbridge's stable `code` and a generic message, and the detail
    /// goes to the log only. Default: false (Kong's).
    public var returnErrorMessage = false
    /// `client_authentication`: API keys, HTTP Basic, JWT bearer tokens (see ``ClientAuthenticationSettings``). Default: none.
    public var clientAuthentication: ClientAuthenticationSettings?
    /// `rate_limit`: token buckets for the route and per consumer (see ``RateLimitSettings``). Default: none.
    public var rateLimit: RateLimitSettings?

    public init(path: String, topic: String?, kafka: KafkaSettings, name: String? = nil) {
        self.path = path
        self.topic = topic
        self.kafka = kafka
        self.name = name ?? "POST \(path)"
    }
}

/// A broker address from `bootstrap_servers`.
public struct BrokerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses one `host:port` (IPv6 hosts in brackets), or `nil` when it is not one.
    public init?(_ text: some StringProtocol) {
        let entry = text.trimmingSpaces()
        guard let colon = entry.lastIndex(of: ":"), let port = Int(entry[entry.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        var host = String(entry[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    /// Parses a comma-separated `host:port` list such as librdkafka's `bootstrap.servers`, skipping bad entries.
    public static func list(_ text: String) -> [BrokerAddress] {
        text.split(separator: ",").compactMap { BrokerAddress($0) }
    }
}

/// Kong kafka-upstream's producer settings, with Kong's defaults, and their librdkafka equivalents.
public struct KafkaSettings: Sendable, Hashable {
    /// `bootstrap_servers`: `host:port` strings or `{host, port}` records. Required.
    public var bootstrapServers: [BrokerAddress]
    /// `timeout` (ms) → `socket.timeout.ms`, and `message.timeout.ms` on sync routes: a sync request is answered within it.
    public var timeout = 10_000
    /// `async_delivery_timeout` (ms) → `message.timeout.ms` on async routes: how long an accepted message may
    /// wait for the cluster (riding out a broker restart) before it is counted and logged as failed. Default: 300000.
    public var asyncDeliveryTimeout = 300_000
    /// `idempotent` → `enable.idempotence`: no duplicates and no reordering from retries. Takes effect only
    /// with `acks` -1 and retries > 0 (librdkafka's conditions); see ``idempotenceEnabled``. Default: true.
    public var idempotent = true
    /// `stall_timeout` (ms): with messages in flight and no delivery progress for this long the cluster is
    /// reported down (routes answer 503) until deliveries resume. 0: off. Default (`nil`): see ``effectiveStallTimeout``.
    public var stallTimeout: Int?
    /// `stall_timeout`, or by default 5000 ms, or more when a batch may wait longer than that for its first
    /// answer (`linger.ms` + `request.timeout.ms`); 0: off.
    public var effectiveStallTimeout: Int {
        stallTimeout ?? max(5000, (async ? asyncFlushTimeout : 0) + requestTimeout + 1000)
    }
    /// The largest message this producer must carry (from the `max_body_size` of the routes sharing it);
    /// sizes `message.max.bytes` unless `kafka_properties` sets it. 0: librdkafka's default. Set by kbridge.
    public var largestMessage = 0
    /// `keepalive` (ms) → `connections.max.idle.ms`: idle broker connections are closed after it.
    public var keepalive = 60_000
    /// `keepalive_enabled` → `socket.keepalive.enable`. Default: false.
    public var keepaliveEnabled = false
    /// `producer_request_acks` → `acks`: 0, 1 or -1 (all in-sync replicas). Default: 1.
    public var acks = 1
    /// `producer_request_timeout` (ms) → `request.timeout.ms`. Default: 2000.
    public var requestTimeout = 2000
    /// `producer_request_limits_messages_per_request` → `batch.num.messages`. Default: 200.
    public var messagesPerRequest = 200
    /// `producer_request_limits_bytes_per_request` → `batch.size`. Default: 1048576.
    public var bytesPerRequest = 1_048_576
    /// `producer_request_retries_max_attempts` → `message.send.max.retries`. Default: 10.
    public var retriesMaxAttempts = 10
    /// `producer_request_retries_backoff_timeout` (ms) → `retry.backoff.ms`. Default: 100.
    public var retriesBackoff = 100
    /// `producer_async`: answer once queued (true) or once acknowledged (false). Default: true.
    public var async = true
    /// `producer_async_flush_timeout` (ms) → `linger.ms` in async mode. Default: 1000.
    public var asyncFlushTimeout = 1000
    /// `producer_async_buffering_limits_messages_in_memory` → `queue.buffering.max.messages`. Default: 50000.
    public var asyncBufferedMessages = 50_000
    /// `compression_type` → `compression.codec`: none, gzip, snappy, lz4 or zstd. Default: none.
    public var compression = "none"
    /// `authentication`: SASL. Default: none.
    public var authentication: KafkaAuthentication?
    /// `security`: TLS, when `ssl` is true. Default: none (plaintext).
    public var tls: KafkaTLS?
    /// `producer_async_health_probe_interval` (ms, Kong 3.16): while the cluster is down, how often kbridge probes it
    /// (a metadata request). Default: 1000 (Kong's is 5000, for its opt-in gating; kbridge always gates).
    public var healthProbeInterval = 1000
    /// `producer_async_health_recovery_threshold` (Kong 3.16): consecutive successful probes before a cluster that is
    /// down is up again (routes accept again). A delivered message reports it up at once. Default: 1.
    public var healthRecoveryThreshold = 1
    /// `kafka_properties`: extra librdkafka properties, set last (they win). Default: none.
    public var additionalProperties: [String: String] = [:]

    /// `linger.ms` for sync routes, where a client waits for every message. Measured with the benchmark
    /// (64 connections, loopback broker): 0 ms sends so many small requests that p99 rises to ~9 ms; 0.5 ms
    /// batches them and gives p99 < 3 ms at twice the throughput; 1 ms and more only add latency.
    public static let syncLingerMilliseconds = "0.5"

    /// `reconnect.backoff.ms` and `reconnect.backoff.max.ms`: librdkafka doubles the wait after each failed
    /// connection from the first value up to the second (kbridge states librdkafka's defaults). A failed
    /// login does not grow it (the connection itself succeeded): the producer holds connections back itself.
    public static let reconnectBackoffMilliseconds = (initial: 100, maximum: 10_000)

    public init(bootstrapServers: [BrokerAddress]) { self.bootstrapServers = bootstrapServers }

    /// Whether the producer is idempotent: `idempotent`, and what librdkafka needs for it (`acks` -1, retries).
    public var idempotenceEnabled: Bool { idempotent && acks == -1 && retriesMaxAttempts > 0 }

    /// The librdkafka producer properties these settings stand for.
    public var librdkafkaProperties: [String: String] {
        var properties: [String: String] = [
            "bootstrap.servers": bootstrapServers.map(\.description).joined(separator: ","),
            "client.id": "kbridge",
            "socket.timeout.ms": String(timeout),
            "message.timeout.ms": String(async ? asyncDeliveryTimeout : timeout),
            "enable.idempotence": String(idempotenceEnabled),
            "reconnect.backoff.ms": String(Self.reconnectBackoffMilliseconds.initial),
            "reconnect.backoff.max.ms": String(Self.reconnectBackoffMilliseconds.maximum),
            "connections.max.idle.ms": String(keepalive),
            "socket.keepalive.enable": String(keepaliveEnabled),
            "acks": String(acks),
            "request.timeout.ms": String(requestTimeout),
            "batch.num.messages": String(messagesPerRequest),
            "batch.size": String(bytesPerRequest),
            "message.send.max.retries": String(retriesMaxAttempts),
            "retry.backoff.ms": String(retriesBackoff),
            "linger.ms": async ? String(asyncFlushTimeout) : Self.syncLingerMilliseconds,
            "queue.buffering.max.messages": String(asyncBufferedMessages),
            "compression.codec": compression,
            "log_level": "6",
        ]
        if largestMessage > 0 {
            properties["message.max.bytes"] = String(min(max(largestMessage, 1_000_000), 1_000_000_000))
        }
        properties.merge(securityProperties) { _, security in security }
        properties.merge(additionalProperties) { _, extra in extra }
        return properties
    }
}
