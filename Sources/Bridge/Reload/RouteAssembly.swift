import AsyncHTTPClient
import Kafka
import Logging
import SchemaRegistry
import Workflow

/// A generation built from a configuration: its compiled routes and what they use. Producers, schema registry clients
/// and workflow services of the generation it replaces are reused where their settings did not change; only what is
/// new is made (and closed again by ``discard(keeping:)`` if the generation is never put in service).
struct RouteAssembly: Sendable {
    /// What the generation in force lends to the next one.
    struct Reusable: Sendable {
        var producers: [KafkaSettings: KafkaProducer]
        var registries: [SchemaRegistryConfiguration: SchemaRegistryClient]
        var workflowServices: WorkflowServices?
    }

    let generation: RouteGeneration
    /// Every producer the routes use, by its settings (`largestMessage` included).
    let producers: [KafkaSettings: KafkaProducer]
    /// The producers made for this generation (the others were reused).
    let created: [KafkaProducer]
    let registries: [SchemaRegistryConfiguration: SchemaRegistryClient]
    /// Kept once made, for the bridge's lifetime (requests of an earlier generation may still use them).
    let workflowServices: WorkflowServices?
    private let createdWorkflowServices: Bool

    /// Makes the routes of `configuration`.
    /// - Throws: a ``ConfigurationError`` for a workflow that does not compile, a ``KafkaError`` for a producer
    ///   librdkafka refuses, or what building a route's authentication failed with. What was made is closed first.
    static func build(
        configuration: BridgeConfiguration, number: Int, replacing previous: (generation: RouteGeneration, reusable: Reusable)?,
        metrics: MetricsRegistry, logger: Logger
    ) async throws -> RouteAssembly {
        let reusable = previous?.reusable ?? Reusable(producers: [:], registries: [:], workflowServices: nil)
        let needsWorkflows = configuration.routes.contains { $0.workflow != nil }
        let workflowServices = reusable.workflowServices ?? (needsWorkflows ? WorkflowServices(jqThreads: configuration.server.threads) : nil)
        let createdWorkflowServices = reusable.workflowServices == nil && workflowServices != nil
        var producers: [KafkaSettings: KafkaProducer] = [:]
        var created: [KafkaProducer] = []
        var registries: [SchemaRegistryConfiguration: SchemaRegistryClient] = [:]
        var ingestors: [RouteIngestor] = []
        // Counters carry on by route name, so that a reload does not reset what /metrics reports for a route.
        var countersByRoute: [String: ResponseCounters] = [:]
        for (name, counters) in previous?.generation.observability.routes ?? [] where countersByRoute[name] == nil {
            countersByRoute[name] = counters
        }
        // Each producer must carry the largest message of any route it serves.
        var largestMessage: [KafkaSettings: Int] = [:]
        for route in configuration.routes {
            largestMessage[route.kafka] = max(largestMessage[route.kafka] ?? 0, route.largestMessage)
        }
        do {
            for route in configuration.routes {
                var schemaEncoder: SchemaRecordEncoder?
                if let settings = route.schemaRegistry {
                    let client = try registries[settings.registry] ?? reusable.registries[settings.registry]
                        ?? SchemaRegistryClient(configuration: settings.registry, httpClient: .shared, logger: logger)
                    registries[settings.registry] = client
                    schemaEncoder = SchemaRecordEncoder(settings: settings, client: client)
                }
                var sized = route.kafka
                sized.largestMessage = largestMessage[route.kafka] ?? 0
                let producer: KafkaProducer
                if let existing = producers[sized] ?? reusable.producers[sized] {
                    producer = existing
                } else {
                    producer = try makeProducer(sized, metrics: metrics, logger: logger)
                    created.append(producer)
                }
                producers[sized] = producer
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
                                               schemaEncoder: schemaEncoder, workflow: workflow, access: try await RouteAccess.make(for: route, logger: logger),
                                               logger: logger, metrics: metrics, responses: countersByRoute[route.name]))
            }
        } catch {
            for ingestor in ingestors { ingestor.access?.stop() }
            for producer in created { await producer.close(flushTimeout: .zero) }
            if createdWorkflowServices { await workflowServices?.shutdown() }
            throw error
        }
        let observability = Observability(
            producers: named(producers),
            routes: ingestors.map { ($0.route.name, $0.responses) },
            registries: registries.map { ($0.key.url, $0.value) }.sorted { $0.0 < $1.0 },
            workflows: ingestors.compactMap { ingestor in ingestor.workflowMetrics.map { (ingestor.route.name, $0) } },
            access: ingestors.compactMap { ingestor in ingestor.access.map { (ingestor.route.name, $0) } }, metrics: metrics,
            carryingOn: previous?.generation.observability)
        return RouteAssembly(
            generation: RouteGeneration(number: number, routes: RouteTable(ingestors), observability: observability),
            producers: producers, created: created, registries: registries, workflowServices: workflowServices,
            createdWorkflowServices: createdWorkflowServices)
    }

    private static func makeProducer(_ settings: KafkaSettings, metrics: MetricsRegistry, logger: Logger) throws -> KafkaProducer {
        let stallTimeout = settings.effectiveStallTimeout
        return try KafkaProducer(
            properties: settings.librdkafkaProperties, delegationToken: settings.delegationTokenLogin,
            oauthBearer: settings.oauthBearerTokenProvider(httpClient: .shared),
            options: KafkaProducerOptions(
                stallTimeout: stallTimeout > 0 ? .milliseconds(stallTimeout) : nil, probeInterval: .milliseconds(settings.healthProbeInterval),
                recoveryProbes: settings.healthRecoveryThreshold),
            logger: logger,
            deliveryLatency: metrics.produceLatencyRecorder(
                bootstrapServers: settings.bootstrapServers.map(\.description).joined(separator: ","),
                mode: settings.async ? "async" : "sync"))
    }

    /// Producers are named by their brokers; two on the same brokers (sync and async, say) get "#2", "#3", in a stable
    /// order: by brokers, then by the rest of the settings (only compared, never shown).
    private static func named(_ producers: [KafkaSettings: KafkaProducer]) -> [Observability.Producer] {
        func order(_ settings: KafkaSettings) -> String {
            settings.bootstrapServers.description + "\u{0}" + settings.librdkafkaProperties.sorted { $0.key < $1.key }.description
        }
        var named: [Observability.Producer] = []
        for (settings, producer) in producers.sorted(by: { order($0.key) < order($1.key) }) {
            let brokers = settings.bootstrapServers.map(\.description).joined(separator: ",")
            let taken = named.filter { $0.name == brokers || $0.name.hasPrefix("\(brokers) #") }.count
            named.append(Observability.Producer(name: taken == 0 ? brokers : "\(brokers) #\(taken + 1)", producer: producer))
        }
        return named
    }

    /// Closes what was made for this generation, which will not be put in service (what `reusable` lent stays).
    func discard(keeping reusable: Reusable? = nil) async {
        generation.stop()
        for producer in created { await producer.close(flushTimeout: .zero) }
        if createdWorkflowServices, reusable?.workflowServices == nil { await workflowServices?.shutdown() }
    }
}
