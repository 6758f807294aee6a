import AsyncHTTPClient
import Kafka
import Logging
import SchemaRegistry
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import Workflow

/// kbridge assembled: one producer per distinct Kafka configuration, the route table, and the HTTP server.
///
/// Start it with ``start(configuration:logger:)``; run it in a `ServiceGroup` (its ``run()`` waits for graceful
/// shutdown), or stop it directly with ``shutdown()``. Shutdown is ordered: the server stops accepting and
/// finishes in-flight requests, then every producer flushes what was accepted (bounded by the configured
/// `shutdown_timeout`), then the event loops stop.
public final class KafkaBridge: Service, Sendable {
    public let configuration: BridgeConfiguration
    /// The port the server listens on (useful with `port: 0`).
    public let port: Int
    /// The port of the `server.admin` listener, when there is one.
    public let adminPort: Int?
    private let producers: [KafkaProducer]
    /// Released once quiesced: NIO's quiescing helper must be freed while the event loops still run.
    private let server: Mutex<HTTPIngestServer?>
    /// `server.admin`: closed last, so that `/ready` answers 503 while the main listener drains and producers flush.
    private let adminServer: Mutex<HTTPIngestServer?>
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let stopped = Mutex<Task<ShutdownReport, Never>?>(nil)
    /// The HTTP clients and jq threads of the routes' workflows, when a route has one.
    private let workflowServices: WorkflowServices?
    /// `server.tls`, reloaded by ``reloadCertificates()``.
    private let ingressTLS: IngressTLS?
    /// Told when shutdown starts (`/ready` answers 503 from then on).
    private let readiness: Readiness

    /// What shutting down achieved.
    public struct ShutdownReport: Sendable, Hashable {
        /// Whether every connection finished its request within the timeout.
        public var connectionsDrained: Bool
        /// Accepted messages that could not be delivered before the timeout (purged, logged, counted).
        public var undeliveredMessages: Int
    }

    private init(configuration: BridgeConfiguration, port: Int, producers: [KafkaProducer], server: HTTPIngestServer,
                 adminServer: HTTPIngestServer?, group: MultiThreadedEventLoopGroup, workflowServices: WorkflowServices?,
                 ingressTLS: IngressTLS?, readiness: Readiness, logger: Logger) {
        self.configuration = configuration
        self.adminServer = Mutex(adminServer)
        adminPort = adminServer.map { $0.localAddress?.port ?? configuration.server.admin?.port ?? 0 }
        self.ingressTLS = ingressTLS
        self.readiness = readiness
        self.workflowServices = workflowServices
        self.port = port
        self.producers = producers
        self.server = Mutex(server)
        self.group = group
        self.logger = logger
    }

    /// Creates the producers, compiles the routes and binds the listener.
    ///
    /// - Throws: ``KafkaError`` if librdkafka refuses a producer configuration, or a socket error if the
    ///   address cannot be bound.
    public static func start(configuration: BridgeConfiguration, logger: Logger) async throws -> KafkaBridge {
        var producersBySettings: [KafkaSettings: KafkaProducer] = [:]
        var registries: [SchemaRegistryConfiguration: SchemaRegistryClient] = [:]
        var ingestors: [RouteIngestor] = []
        let metrics = MetricsRegistry()
        let workflowServices = configuration.routes.contains { $0.workflow != nil } ? WorkflowServices(jqThreads: configuration.server.threads) : nil
        // Each producer must carry the largest message of any route it serves.
        var largestMessage: [KafkaSettings: Int] = [:]
        for route in configuration.routes {
            largestMessage[route.kafka] = max(largestMessage[route.kafka] ?? 0, route.largestMessage)
        }
        do {
            for route in configuration.routes {
                var schemaEncoder: SchemaRecordEncoder?
                if let settings = route.schemaRegistry {
                    let client = try registries[settings.registry]
                        ?? SchemaRegistryClient(configuration: settings.registry, httpClient: .shared, logger: logger)
                    registries[settings.registry] = client
                    schemaEncoder = SchemaRecordEncoder(settings: settings, client: client)
                }
                var sized = route.kafka
                sized.largestMessage = largestMessage[route.kafka] ?? 0
                let stallTimeout = route.kafka.effectiveStallTimeout
                let producer = try producersBySettings[route.kafka] ?? KafkaProducer(
                    properties: sized.librdkafkaProperties, delegationToken: route.kafka.delegationTokenLogin,
                    oauthBearer: route.kafka.oauthBearerTokenProvider(httpClient: .shared),
                    options: KafkaProducerOptions(
                        stallTimeout: stallTimeout > 0 ? .milliseconds(stallTimeout) : nil, probeInterval: .milliseconds(route.kafka.healthProbeInterval),
                        recoveryProbes: route.kafka.healthRecoveryThreshold),
                    logger: logger,
                    deliveryLatency: metrics.produceLatencyRecorder(
                        bootstrapServers: route.kafka.bootstrapServers.map(\.description).joined(separator: ","),
                        mode: route.kafka.async ? "async" : "sync"))
                producersBySettings[route.kafka] = producer
                var workflow: Workflow?
                if let definition = route.workflow?.definition, let workflowServices {
                    do {
                        workflow = try Workflow(definition, services: workflowServices, defaultTimeout: .milliseconds(route.kafka.timeout))
                    } catch {
                        throw ConfigurationError(issues: error.issues.map {
                            ConfigurationIssue(file: "", key: "\(route.name).\(route.workflow?.kind.rawValue ?? "workflow").\($0.path)", reason: $0.reason)
                        })
                    }
                }
                ingestors.append(RouteIngestor(route: route, pattern: try RoutePattern(parsing: route.path), producer: producer,
                                               schemaEncoder: schemaEncoder, workflow: workflow, access: try await RouteAccess.make(for: route),
                                               logger: logger, metrics: metrics))
            }
        } catch {
            for producer in producersBySettings.values { await producer.close(flushTimeout: .zero) }
            await workflowServices?.shutdown()
            throw error
        }
        let producers = Array(producersBySettings.values)
        // Producers are named by their brokers; two on the same brokers (sync and async, say) get "#2", "#3".
        var named: [Observability.Producer] = []
        // A stable order: by brokers, then by the rest of the settings (only compared, never shown).
        func order(_ settings: KafkaSettings) -> String {
            settings.bootstrapServers.description + "\u{0}" + settings.librdkafkaProperties.sorted { $0.key < $1.key }.description
        }
        for (settings, producer) in producersBySettings.sorted(by: { order($0.key) < order($1.key) }) {
            let brokers = settings.bootstrapServers.map(\.description).joined(separator: ",")
            let taken = named.filter { $0.name == brokers || $0.name.hasPrefix("\(brokers) #") }.count
            named.append(Observability.Producer(name: taken == 0 ? brokers : "\(brokers) #\(taken + 1)", producer: producer))
        }
        let observability = Observability(
            producers: named,
            routes: ingestors.map { ($0.route.name, $0.responses) },
            registries: registries.map { ($0.key.url, $0.value) }.sorted { $0.0 < $1.0 },
            workflows: ingestors.compactMap { ingestor in ingestor.workflowMetrics.map { (ingestor.route.name, $0) } },
            access: ingestors.compactMap { ingestor in ingestor.access.map { (ingestor.route.name, $0) } }, metrics: metrics)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.server.threads)
        let server: HTTPIngestServer
        var ingressTLS: IngressTLS?
        var adminServer: HTTPIngestServer?
        do {
            ingressTLS = try configuration.server.tls.map { settings throws(IngressTLSError) in try IngressTLS(settings: settings) }
            var listener = configuration.server
            if let admin = configuration.server.admin {
                // The built-in paths move to the admin listener (plain HTTP, no routes).
                var adminListener = configuration.server
                (adminListener.host, adminListener.port, adminListener.tls) = (admin.host, admin.port, nil)
                adminServer = try await HTTPIngestServer.bind(
                    configuration: adminListener, group: group, routes: RouteTable([]), observability: observability, logger: logger)
                (listener.healthPath, listener.readyPath, listener.metricsPath) = (nil, nil, nil)
            }
            server = try await HTTPIngestServer.bind(
                configuration: listener, group: group, routes: RouteTable(ingestors), observability: observability,
                tls: ingressTLS, logger: logger)
        } catch {
            _ = await adminServer?.quiesce(timeout: .zero)
            for producer in producers { await producer.close(flushTimeout: .zero) }
            await workflowServices?.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
        let port = server.localAddress?.port ?? configuration.server.port
        logger.info("kbridge listening", metadata: [
            "address": "\(configuration.server.host):\(port)", "routes": "\(configuration.routes.count)",
            "tls": "\(configuration.server.tls.map { "TLS \($0.minimumVersion.rawValue)+, client certificate \($0.clientCertificate.rawValue)" } ?? "off")",
            "producers": "\(producers.count)", "librdkafka": "\(KafkaProducer.librdkafkaVersion)",
        ])
        for route in configuration.routes {
            logger.info("route", metadata: [
                "name": "\(route.name)", "path": "\(route.path)", "methods": "\(route.methods.joined(separator: ","))",
                "topic": "\(route.topic ?? "{topic}")", "mode": "\(route.kafka.async ? "async" : "sync")",
                "bootstrap_servers": "\(route.kafka.bootstrapServers.map(\.description).joined(separator: ","))",
                "security": "\(route.kafka.securityDescription)",
            ])
        }
        if let adminServer {
            logger.info("kbridge admin listener (health, readiness, metrics)", metadata: [
                "address": "\(configuration.server.admin?.host ?? ""):\(adminServer.localAddress?.port ?? 0)",
            ])
        }
        return KafkaBridge(configuration: configuration, port: port, producers: producers, server: server, adminServer: adminServer,
                           group: group, workflowServices: workflowServices, ingressTLS: ingressTLS, readiness: observability.readiness,
                           logger: logger)
    }

    /// Re-reads `server.tls`'s certificate, key and CA files (on SIGHUP); new connections use them, open ones keep
    /// theirs. On failure the certificates in use stay, and the error says which file is at fault.
    /// - Returns: `false` when there is no `server.tls`.
    @discardableResult
    public func reloadCertificates() throws -> Bool {
        guard let ingressTLS else { return false }
        try ingressTLS.reload()
        logger.info("server.tls certificates reloaded", metadata: ["certificate_file": "\(ingressTLS.settings.certificateFile)"])
        return true
    }

    /// Counters summed over every producer.
    public var statistics: KafkaProducerStatistics {
        producers.map(\.statistics).reduce(into: KafkaProducerStatistics()) {
            $0.enqueued += $1.enqueued
            $0.delivered += $1.delivered
            $0.failed += $1.failed
            $0.inQueue += $1.inQueue
        }
    }

    /// Waits for graceful shutdown (SIGTERM/SIGINT through the `ServiceGroup`), then shuts down in order.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops accepting, finishes in-flight requests, flushes accepted messages, stops. Safe to call twice.
    @discardableResult
    public func shutdown() async -> ShutdownReport {
        let task = stopped.withLock { task -> Task<ShutdownReport, Never> in
            if let task { return task }
            let newTask = Task { await self.performShutdown() }
            task = newTask
            return newTask
        }
        return await task.value
    }

    private func performShutdown() async -> ShutdownReport {
        let timeout = configuration.server.shutdownTimeout
        let start = ContinuousClock.now
        readiness.shutdownStarted()
        logger.info("kbridge shutting down: no new connections; finishing in-flight requests")
        let server = self.server.withLock { server in
            defer { server = nil }
            return server
        }
        let drained = await server?.quiesce(timeout: timeout) ?? true
        _ = consume server
        let remaining = max(.zero, timeout - (ContinuousClock.now - start))
        var undelivered = 0
        await withTaskGroup(of: Int.self) { tasks in
            for producer in producers { tasks.addTask { await producer.close(flushTimeout: remaining) } }
            for await lost in tasks { undelivered += lost }
        }
        let admin = adminServer.withLock { admin in
            defer { admin = nil }
            return admin
        }
        _ = await admin?.quiesce(timeout: .seconds(1))
        _ = consume admin
        await workflowServices?.shutdown()
        try? await group.shutdownGracefully()
        let statistics = producers.map(\.statistics)
        logger.info("kbridge stopped", metadata: [
            "delivered": "\(statistics.map(\.delivered).reduce(0, +))", "failed": "\(statistics.map(\.failed).reduce(0, +))",
            "undelivered_at_shutdown": "\(undelivered)", "connections_drained": "\(drained)",
        ])
        return ShutdownReport(connectionsDrained: drained, undeliveredMessages: undelivered)
    }
}

extension RouteConfiguration {
    /// The most bytes nginx (and so SwiftNIO's HTTP parser here) accepts in a request line and its headers.
    static let largestRequestHead = 80 * 1024

    /// The largest Kafka message (value and key) a request within `max_body_size` can become: the Kong
    /// envelope in the worst case, where every body byte is a control character that JSON escapes as `\u00XX`
    /// (6 bytes), once in `body` and once more in `body_args` (form and multipart fields); a binary body as
    /// base64 is smaller (4/3). Forwarded method, URI and headers are bounded by the request head, escaped
    /// the same way. A schema route's record: Avro's largest growth is 4x (a 2-byte JSON number such as `0,`
    /// becomes an 8-byte double), doubled for defaults the body leaves out; a JSON Schema record is the body
    /// plus the 5-byte frame.
    /// Saturates instead of overflowing.
    var largestMessage: Int {
        let escaped = 6
        func times(_ a: Int, _ b: Int) -> Int {
            let (product, overflow) = a.multipliedReportingOverflow(by: b)
            return overflow ? .max : product
        }
        func plus(_ a: Int, _ b: Int) -> Int {
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? .max : sum
        }
        let key = Self.largestRequestHead  // from the path or the query
        if schemaRegistry != nil { return plus(plus(times(maxBodySize, 4 * 2), 5), key) }
        var size = 1024  // the envelope's keys and punctuation
        if fields.body { size = plus(size, times(maxBodySize, 2 * escaped)) }
        // method, uri, uri_args and headers all come from the request head; uri and uri_args repeat the query.
        if fields.method || fields.uri || fields.headers { size = plus(size, times(Self.largestRequestHead, 2 * escaped)) }
        return plus(size, key)
    }
}
