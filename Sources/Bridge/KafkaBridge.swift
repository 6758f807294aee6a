import AsyncHTTPClient
import Kafka
import Logging
import SchemaRegistry
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import Workflow

/// kbridge assembled: one producer per distinct Kafka configuration, the route table, and the HTTP server.
///
/// Start it with ``start(configuration:logger:reloadSource:)``; run it in a `ServiceGroup` (its ``run()`` waits for
/// graceful shutdown), or stop it directly with ``shutdown()``. Shutdown is ordered: the server stops accepting and
/// finishes in-flight requests, then every producer flushes what was accepted (bounded by the configured
/// `shutdown_timeout`), then the event loops stop.
///
/// ``reload()`` applies a new configuration while serving: it is validated and built first (producers whose
/// settings did not change are kept), then the routes swap at once; requests already routed finish with the routes
/// they started with, and producers no route uses any more flush and close after them.
public final class KafkaBridge: Service, Sendable {
    /// The configuration in force (it changes when a reload is applied).
    public var configuration: BridgeConfiguration { resources.withLock { $0.configuration } }
    /// The port the server listens on (useful with `port: 0`).
    public let port: Int
    /// The port of the `server.admin` listener, when there is one.
    public let adminPort: Int?
    /// The routes requests are served by.
    private let live: LiveRoutes
    private let resources: Mutex<Resources>
    /// Where ``reload()`` reads the new configuration (the file, with the command line's overrides).
    private let reloadSource: (@Sendable () throws -> BridgeConfiguration)?
    /// Released once quiesced: NIO's quiescing helper must be freed while the event loops still run.
    private let server: Mutex<HTTPIngestServer?>
    /// `server.admin`: closed last, so that `/ready` answers 503 while the main listener drains and producers flush.
    private let adminServer: Mutex<HTTPIngestServer?>
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let stopped = Mutex<Task<ShutdownReport, Never>?>(nil)
    /// `server.tls`, whose files are re-read by ``reloadCertificates()`` and by every reload.
    private let ingressTLS: IngressTLS?
    /// The histograms and per-reason counters, shared by every generation.
    private let metrics: MetricsRegistry

    /// What the routes in force use, and what reloads and shutdown must know.
    private struct Resources {
        var configuration: BridgeConfiguration
        var generation: RouteGeneration
        /// By their settings, `largestMessage` included.
        var producers: [KafkaSettings: KafkaProducer]
        var registries: [SchemaRegistryConfiguration: SchemaRegistryClient]
        /// The HTTP clients, Redis clients and jq threads of workflows, made when a route first has one.
        var workflowServices: WorkflowServices?
        /// Earlier generations being retired (their producers flushed and closed), by number; each returns what it could not
        /// deliver, and leaves once done.
        var retiring: [Int: Task<Int, Never>] = [:]
        /// Generations replaced whose routed requests may not all be answered yet: a producer retired now may still be in
        /// use by any of them (it may have been kept across several reloads).
        var draining: [RouteGeneration] = []
        var reloading = false
        var shuttingDown = false
    }

    /// What shutting down achieved.
    public struct ShutdownReport: Sendable, Hashable {
        /// Whether every connection finished its request within the timeout.
        public var connectionsDrained: Bool
        /// Accepted messages that could not be delivered before the timeout (purged, logged, counted).
        public var undeliveredMessages: Int
    }

    private init(configuration: BridgeConfiguration, port: Int, assembly: RouteAssembly, live: LiveRoutes, server: HTTPIngestServer,
                 adminServer: HTTPIngestServer?, group: MultiThreadedEventLoopGroup, ingressTLS: IngressTLS?, metrics: MetricsRegistry,
                 reloadSource: (@Sendable () throws -> BridgeConfiguration)?, logger: Logger) {
        resources = Mutex(Resources(configuration: configuration, generation: assembly.generation, producers: assembly.producers,
                                    registries: assembly.registries, workflowServices: assembly.workflowServices))
        self.adminServer = Mutex(adminServer)
        adminPort = adminServer.map { $0.localAddress?.port ?? configuration.server.admin?.port ?? 0 }
        self.ingressTLS = ingressTLS
        self.live = live
        self.metrics = metrics
        self.reloadSource = reloadSource
        self.port = port
        self.server = Mutex(server)
        self.group = group
        self.logger = logger
    }

    /// Creates the producers, compiles the routes and binds the listener.
    ///
    /// - Parameter reloadSource: where ``reload()`` reads a new configuration (SIGHUP, `POST` on the admin listener's
    ///   reload path); without it, reloads are refused.
    /// - Throws: ``KafkaError`` if librdkafka refuses a producer configuration, or a socket error if the
    ///   address cannot be bound.
    public static func start(
        configuration: BridgeConfiguration, logger: Logger, reloadSource: (@Sendable () throws -> BridgeConfiguration)? = nil
    ) async throws -> KafkaBridge {
        let metrics = MetricsRegistry()
        let assembly = try await RouteAssembly.build(configuration: configuration, number: 1, replacing: nil, metrics: metrics, logger: logger)
        let live = LiveRoutes(assembly.generation)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.server.threads)
        let server: HTTPIngestServer
        var ingressTLS: IngressTLS?
        var adminServer: HTTPIngestServer?
        let reloadEndpoint = ConfigurationReloadEndpoint()
        do {
            ingressTLS = try configuration.server.tls.map { settings throws(IngressTLSError) in try IngressTLS(settings: settings) }
            var listener = configuration.server
            if let admin = configuration.server.admin {
                // The built-in paths move to the admin listener (plain HTTP, no routes).
                var adminListener = configuration.server
                (adminListener.host, adminListener.port, adminListener.tls) = (admin.host, admin.port, nil)
                let endpoints = HTTPIngestHandler.BuiltInEndpoints(
                    health: listener.healthPath, metrics: listener.metricsPath, ready: listener.readyPath, reload: admin.reloadPath,
                    servesRoutes: false)
                adminServer = try await HTTPIngestServer.bind(
                    configuration: adminListener, group: group, live: live, endpoints: endpoints, reloader: reloadEndpoint, logger: logger)
                (listener.healthPath, listener.readyPath, listener.metricsPath) = (nil, nil, nil)
            }
            server = try await HTTPIngestServer.bind(configuration: listener, group: group, live: live, tls: ingressTLS, logger: logger)
        } catch {
            _ = await adminServer?.quiesce(timeout: .zero)
            await assembly.discard()
            try? await group.shutdownGracefully()
            throw error
        }
        let port = server.localAddress?.port ?? configuration.server.port
        logger.info("kbridge listening", metadata: [
            "address": "\(configuration.server.host):\(port)", "routes": "\(configuration.routes.count)",
            "tls": "\(configuration.server.tls.map { "TLS \($0.minimumVersion.rawValue)+, client certificate \($0.clientCertificate.rawValue)" } ?? "off")",
            "producers": "\(assembly.producers.count)", "librdkafka": "\(KafkaProducer.librdkafkaVersion)",
        ])
        logRoutes(configuration, logger: logger)
        if let adminServer {
            logger.info("kbridge admin listener (health, readiness, metrics, reload)", metadata: [
                "address": "\(configuration.server.admin?.host ?? ""):\(adminServer.localAddress?.port ?? 0)",
            ])
        }
        let bridge = KafkaBridge(configuration: configuration, port: port, assembly: assembly, live: live, server: server,
                                 adminServer: adminServer, group: group, ingressTLS: ingressTLS, metrics: metrics,
                                 reloadSource: reloadSource, logger: logger)
        reloadEndpoint.setAction { [weak bridge] in
            guard let bridge else { return .failure(ReloadRefusal(reason: .shuttingDown, message: "kbridge is shutting down")) }
            return await bridge.reload()
        }
        return bridge
    }

    private static func logRoutes(_ configuration: BridgeConfiguration, logger: Logger) {
        for route in configuration.routes {
            logger.info("route", metadata: [
                "name": "\(route.name)", "path": "\(route.path)", "methods": "\(route.methods.joined(separator: ","))",
                "topic": "\(route.topic ?? "{topic}")", "mode": "\(route.kafka.async ? "async" : "sync")",
                "bootstrap_servers": "\(route.kafka.bootstrapServers.map(\.description).joined(separator: ","))",
                "security": "\(route.kafka.securityDescription)",
            ])
        }
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

    /// Reads the configuration again from the reload source (the file) and applies it (see ``reload(to:)``); the
    /// outcome is logged either way.
    @discardableResult
    public func reload() async -> Result<ReloadReport, ReloadRefusal> {
        guard let reloadSource else {
            let refusal = ReloadRefusal(reason: .noConfigurationFile, message: "kbridge runs without a configuration file; there is nothing to reload")
            logger.warning("configuration reload refused", metadata: ["reason": "\(refusal.reason.rawValue)", "error": "\(refusal.message)"])
            return .failure(refusal)
        }
        let configuration: BridgeConfiguration
        do {
            configuration = try reloadSource()
        } catch {
            let refusal = ReloadRefusal(reason: .invalidConfiguration, message: "\(error)")
            logger.error("configuration reload refused; the configuration in force keeps running", metadata: [
                "reason": "\(refusal.reason.rawValue)", "error": "\(refusal.message)",
            ])
            return .failure(refusal)
        }
        do {
            return .success(try await reload(to: configuration))
        } catch {
            return .failure(error)
        }
    }

    /// Applies `new` while serving. It is checked and built before anything changes: producers, schema registry
    /// clients and workflows of the new routes are made (producers whose settings did not change are kept, with what
    /// they queued), `server.tls`'s files are read again; then the routes swap at once. A request routed before keeps
    /// its route; producers no route uses any more flush and close once those requests are answered (within
    /// `shutdown_timeout`). Keys of `server` and the log settings need a restart: a change to one refuses the reload.
    /// On any failure nothing changes. Route counters carry on by route name; a route's rate-limit buckets and its
    /// workflow's memory caches start afresh.
    public func reload(to new: BridgeConfiguration) async throws(ReloadRefusal) -> ReloadReport {
        let admitted: Result<(BridgeConfiguration, RouteGeneration, RouteAssembly.Reusable), ReloadRefusal> = resources.withLock { resources in
            if resources.shuttingDown { return .failure(ReloadRefusal(reason: .shuttingDown, message: "kbridge is shutting down")) }
            if resources.reloading { return .failure(ReloadRefusal(reason: .reloadInProgress, message: "another reload is being applied; try again")) }
            resources.reloading = true
            return .success((resources.configuration, resources.generation,
                             RouteAssembly.Reusable(producers: resources.producers, registries: resources.registries,
                                               workflowServices: resources.workflowServices)))
        }
        let (old, oldGeneration, reusable) = try admitted.get()
        defer { resources.withLock { $0.reloading = false } }
        func refuse(_ reason: ReloadRefusal.Reason, _ message: String) -> ReloadRefusal {
            logger.error("configuration reload refused; the configuration in force keeps running", metadata: [
                "reason": "\(reason.rawValue)", "error": "\(message)",
            ])
            return ReloadRefusal(reason: reason, message: message)
        }
        let needingRestart = old.keysNeedingRestart(toApply: new)
        guard needingRestart.isEmpty else {
            throw refuse(.restartRequired, "\(needingRestart.joined(separator: ", ")) changed; "
                + "\(needingRestart.count == 1 ? "this key takes" : "these keys take") effect only when kbridge restarts")
        }
        var certificates: NIOSSLContext?
        if let ingressTLS {
            do {
                certificates = try IngressTLS.makeContext(ingressTLS.settings)
            } catch {
                throw refuse(.startFailed, "\(error)")
            }
        }
        let assembly: RouteAssembly
        do {
            assembly = try await RouteAssembly.build(configuration: new, number: oldGeneration.number + 1, replacing: (oldGeneration, reusable),
                                                metrics: metrics, logger: logger)
        } catch {
            throw refuse(.startFailed, "\(error)")
        }
        // Nothing can fail from here on.
        let retired = reusable.producers.filter { settings, _ in assembly.producers[settings] == nil }.map(\.value)
        let stopping = resources.withLock { resources -> Bool in
            if resources.shuttingDown { return true }
            if let certificates { ingressTLS?.replaceContext(certificates) }
            _ = live.replace(with: assembly.generation)
            resources.configuration = new
            resources.generation = assembly.generation
            resources.producers = assembly.producers
            resources.registries = assembly.registries
            resources.workflowServices = assembly.workflowServices
            let number = oldGeneration.number
            resources.draining.append(oldGeneration)
            let draining = resources.draining
            resources.retiring[number] = Task { [weak self, logger] in
                let undelivered = await Self.retire(retired, of: oldGeneration, after: draining, within: new.server.shutdownTimeout,
                                                    logger: logger)
                self?.resources.withLock { resources in
                    resources.retiring[number] = nil
                    resources.draining.removeAll { $0 === oldGeneration }
                }
                return undelivered
            }
            return false
        }
        if stopping {
            await assembly.discard(keeping: reusable)
            throw refuse(.shuttingDown, "kbridge is shutting down")
        }
        let report = ReloadReport(generation: assembly.generation.number, routes: new.routes.count,
                                  producersKept: assembly.producers.count - assembly.created.count,
                                  producersCreated: assembly.created.count, producersRetired: retired.count)
        logger.info("configuration reloaded", metadata: [
            "generation": "\(report.generation)", "routes": "\(report.routes)", "producers_kept": "\(report.producersKept)",
            "producers_created": "\(report.producersCreated)", "producers_retiring": "\(report.producersRetired)",
        ])
        Self.logRoutes(new, logger: logger)
        return report
    }

    /// Waits until the requests routed by `draining` (`generation` and the earlier generations not yet drained) are
    /// answered (or `timeout`), stops what `generation`'s routes run in the background, then flushes and closes
    /// `producers` within what is left of the timeout.
    private static func retire(
        _ producers: [KafkaProducer], of generation: RouteGeneration, after draining: [RouteGeneration], within timeout: Duration,
        logger: Logger
    ) async -> Int {
        let start = ContinuousClock.now
        while draining.contains(where: { $0.requestsInFlight > 0 }), ContinuousClock.now - start < timeout {
            try? await Task.sleep(for: .milliseconds(10))
        }
        generation.stop()
        guard !producers.isEmpty else { return 0 }
        let remaining = max(.zero, timeout - (ContinuousClock.now - start))
        var undelivered = 0
        for producer in producers { undelivered += await producer.close(flushTimeout: remaining) }
        if undelivered > 0 {
            logger.error("producers removed by a reload could not deliver every accepted message", metadata: ["undelivered": "\(undelivered)"])
        } else {
            logger.info("producers removed by a reload flushed and closed", metadata: ["producers": "\(producers.count)"])
        }
        return undelivered
    }

    /// Counters summed over every producer in use.
    public var statistics: KafkaProducerStatistics {
        resources.withLock { Array($0.producers.values) }.map(\.statistics).reduce(into: KafkaProducerStatistics()) {
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
        let generation = resources.withLock { resources in
            resources.shuttingDown = true
            return resources.generation
        }
        generation.observability.readiness.shutdownStarted()
        logger.info("kbridge shutting down: no new connections; finishing in-flight requests")
        let server = self.server.withLock { server in
            defer { server = nil }
            return server
        }
        let drained = await server?.quiesce(timeout: timeout) ?? true
        _ = consume server
        let remaining = max(.zero, timeout - (ContinuousClock.now - start))
        // A reload in progress sees `shuttingDown` before it could swap, and discards what it built.
        while resources.withLock({ $0.reloading }) { try? await Task.sleep(for: .milliseconds(10)) }
        let (producers, retiring, workflowServices, current) = resources.withLock {
            ($0.producers.values, $0.retiring.values, $0.workflowServices, $0.generation)
        }
        current.stop()
        var undelivered = 0
        await withTaskGroup(of: Int.self) { tasks in
            for producer in producers { tasks.addTask { await producer.close(flushTimeout: remaining) } }
            for retirement in retiring { tasks.addTask { await retirement.value } }
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
