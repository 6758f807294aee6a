import Foundation
import Kafka
import SchemaRegistry
import NIOCore
import NIOHTTP1
import Prometheus
import Synchronization

/// Answers by status class, counted per route (and once for requests no route took), with the route's request
/// duration and body size histograms and its error answers by code.
final class ResponseCounters: Sendable {
    let route: String
    let metrics: MetricsRegistry
    let duration: DurationHistogram
    let bodySize: ValueHistogram

    init(route: String, metrics: MetricsRegistry) {
        self.route = route
        self.metrics = metrics
        duration = metrics.requestDuration(route: route)
        bodySize = metrics.bodySize(route: route)
    }

    private let informational = Atomic<Int>(0)
    private let success = Atomic<Int>(0)
    private let redirection = Atomic<Int>(0)
    private let clientError = Atomic<Int>(0)
    private let serverError = Atomic<Int>(0)

    /// Counts an answer; `elapsed` is the time since the request's head arrived, `code` an error answer's code.
    func record(_ status: HTTPResponseStatus, code: String?, elapsed: Duration) {
        duration.record(elapsed)
        if status.code >= 400 { metrics.rejected(route: route, code: code ?? "none").increment() }
        record(status)
    }

    func recordBody(bytes: Int) { bodySize.record(Double(bytes)) }

    func record(_ status: HTTPResponseStatus) {
        switch status.code {
        case 200..<300: success.add(1, ordering: .relaxed)
        case 400..<500: clientError.add(1, ordering: .relaxed)
        case 500...: serverError.add(1, ordering: .relaxed)
        case 300..<400: redirection.add(1, ordering: .relaxed)
        default: informational.add(1, ordering: .relaxed)
        }
    }

    /// (status class such as "2xx", count) for the classes seen.
    var snapshot: [(String, Int)] {
        let values = [
            ("1xx", informational.load(ordering: .relaxed)), ("2xx", success.load(ordering: .relaxed)),
            ("3xx", redirection.load(ordering: .relaxed)), ("4xx", clientError.load(ordering: .relaxed)),
            ("5xx", serverError.load(ordering: .relaxed)),
        ]
        return values.filter { $0.1 > 0 }
    }
}

/// The HTTP connections: how many are open, and how many kbridge closed or refused, by reason. Each close or
/// refusal may be logged, at most once per ``logInterval`` per reason (a flood of slowloris clients must not
/// become a flood of log lines); the line says how many were not logged since the last one.
final class ConnectionMetrics: Sendable {
    enum CloseReason: String, CaseIterable, Sendable {
        /// Nothing arrived within `idle_timeout` on a connection between requests.
        case idleTimeout = "idle_timeout"
        /// A request (head and body) did not arrive within `request_read_timeout` of its first byte.
        case requestTimeout = "request_timeout"
        /// Accepted over `max_connections`, then closed at once.
        case maxConnections = "max_connections"
        /// Not HTTP/1.1 the parser accepts (answered 400 `malformed_request`).
        case malformedRequest = "malformed_request"
        /// A request over a limit of the `server:` section (413, 414, 431) or refused at its head (400, 404, 405):
        /// its body is not read, so the connection cannot be used further.
        case refusedRequest = "refused_request"
        /// A TLS connection whose handshake did not complete within `server.tls.handshake_timeout`.
        case tlsHandshakeTimeout = "tls_handshake_timeout"
        /// A TLS handshake that failed (no common version, a client certificate missing or not trusted).
        case tlsHandshakeFailed = "tls_handshake_failed"
    }

    static let logInterval: Duration = .seconds(10)

    private let openCount = Atomic<Int>(0)
    private let accepted = Atomic<Int>(0)
    private let idleTimeouts = Atomic<Int>(0)
    private let requestTimeouts = Atomic<Int>(0)
    private let overLimit = Atomic<Int>(0)
    private let malformed = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)
    private let handshakeTimeouts = Atomic<Int>(0)
    private let handshakeFailures = Atomic<Int>(0)
    /// Per reason: when it was last logged, and how many were not logged since.
    private let logState = Mutex<[CloseReason: (last: ContinuousClock.Instant, suppressed: Int)]>([:])

    var openConnections: Int { openCount.load(ordering: .relaxed) }

    /// Counts a new connection; `false` (and nothing counted as open) when `maximum` are already open.
    func open(maximum: Int) -> Bool {
        accepted.add(1, ordering: .relaxed)
        if openCount.add(1, ordering: .relaxed).newValue > maximum {
            openCount.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func connectionClosed() {
        openCount.subtract(1, ordering: .relaxed)
    }

    func closed(_ reason: CloseReason) {
        switch reason {
        case .idleTimeout: idleTimeouts.add(1, ordering: .relaxed)
        case .requestTimeout: requestTimeouts.add(1, ordering: .relaxed)
        case .maxConnections: overLimit.add(1, ordering: .relaxed)
        case .malformedRequest: malformed.add(1, ordering: .relaxed)
        case .refusedRequest: refused.add(1, ordering: .relaxed)
        case .tlsHandshakeTimeout: handshakeTimeouts.add(1, ordering: .relaxed)
        case .tlsHandshakeFailed: handshakeFailures.add(1, ordering: .relaxed)
        }
    }

    func closedCount(_ reason: CloseReason) -> Int {
        switch reason {
        case .idleTimeout: idleTimeouts.load(ordering: .relaxed)
        case .requestTimeout: requestTimeouts.load(ordering: .relaxed)
        case .maxConnections: overLimit.load(ordering: .relaxed)
        case .malformedRequest: malformed.load(ordering: .relaxed)
        case .refusedRequest: refused.load(ordering: .relaxed)
        case .tlsHandshakeTimeout: handshakeTimeouts.load(ordering: .relaxed)
        case .tlsHandshakeFailed: handshakeFailures.load(ordering: .relaxed)
        }
    }

    var acceptedCount: Int { accepted.load(ordering: .relaxed) }

    private let acceptLogState = Mutex<(last: ContinuousClock.Instant?, suppressed: Int)>((nil, 0))

    /// Whether a failed `accept` should be logged now; if so, how many were not logged since the last line.
    func shouldLogAcceptFailure(now: ContinuousClock.Instant = .now) -> Int? {
        acceptLogState.withLock { state in
            if let last = state.last, now - last < Self.logInterval {
                state.suppressed += 1
                return nil
            }
            let suppressed = state.suppressed
            state = (now, 0)
            return suppressed
        }
    }

    /// Whether a close for `reason` should be logged now; if so, how many were not logged since the last line.
    func shouldLog(_ reason: CloseReason, now: ContinuousClock.Instant = .now) -> Int? {
        logState.withLock { state in
            if let entry = state[reason], now - entry.last < Self.logInterval {
                state[reason] = (entry.last, entry.suppressed + 1)
                return nil
            }
            let suppressed = state[reason]?.suppressed ?? 0
            state[reason] = (now, 0)
            return suppressed
        }
    }
}

/// `GET /health` and `GET /metrics`: every producer's cluster health and counters, read when asked
/// (nothing is added to the request path but one atomic increment per answer).
final class Observability: Sendable {
    struct Producer: Sendable {
        var name: String
        var producer: KafkaProducer
    }

    let producers: [Producer]
    let routes: [(name: String, counters: ResponseCounters)]
    /// Schema registries by URL.
    let registries: [(url: String, client: SchemaRegistryClient)]
    /// Requests no route took (404, 405) and built-in endpoints.
    let unrouted: ResponseCounters
    /// The histograms and per-reason counters.
    let metrics: MetricsRegistry
    let connections: ConnectionMetrics
    /// `GET /ready`: whether every cluster was reached, and whether kbridge is shutting down.
    let readiness: Readiness

    /// Routes with a workflow, by route name.
    let workflows: [(String, WorkflowMetrics)]
    /// Routes with `client_authentication` or `rate_limit`, by route name.
    let access: [(name: String, access: RouteAccess)]

    /// - Parameter previous: the observability of the configuration this one replaces (a reload): its connection
    ///   counts, readiness and unrouted answers carry on.
    init(
        producers: [Producer], routes: [(name: String, counters: ResponseCounters)], registries: [(url: String, client: SchemaRegistryClient)] = [],
        workflows: [(String, WorkflowMetrics)] = [], access: [(name: String, access: RouteAccess)] = [],
        metrics: MetricsRegistry = MetricsRegistry(), carryingOn previous: Observability? = nil
    ) {
        self.access = access
        self.metrics = previous?.metrics ?? metrics
        unrouted = previous?.unrouted ?? ResponseCounters(route: "(none)", metrics: metrics)
        connections = previous?.connections ?? ConnectionMetrics()
        readiness = previous?.readiness ?? Readiness()
        self.producers = producers
        self.routes = routes
        self.registries = registries
        self.workflows = workflows
    }

    /// Liveness: always 200; the body says each cluster's health, and `"status":"down"` while one is down.
    func healthResponse() -> IngestResponse {
        var body = ByteBuffer()
        var allUp = true
        body.writeStaticString("{\"clusters\":[")
        for (index, entry) in producers.enumerated() {
            if index > 0 { body.writeStaticString(",") }
            let statistics = entry.producer.statistics
            body.writeStaticString("{\"bootstrap_servers\":")
            body.writeJSONString(entry.name)
            body.writeStaticString(",\"health\":")
            switch entry.producer.health {
            case .up: body.writeStaticString("\"up\"")
            case .connecting: body.writeStaticString("\"connecting\"")
            case .down(let reason):
                allUp = false
                body.writeStaticString("\"down\",\"reason\":")
                body.writeJSONString(reason)
            }
            body.writeString(",\"enqueued\":\(statistics.enqueued),\"delivered\":\(statistics.delivered),\"failed\":\(statistics.failed),\"in_queue\":\(statistics.inQueue)}")
        }
        body.writeStaticString("],\"status\":")
        body.writeStaticString(allUp ? "\"up\"}" : "\"down\"}")
        // Liveness: 200 whenever kbridge answers. A cluster that is down is reported in the body, and requests to it get
        // 503 at once; restarting kbridge would not bring the cluster back (readiness is `/ready`).
        return IngestResponse(status: .ok, body: body)
    }

    /// The Prometheus text format (0.0.4). Totals are read from the producers' counters at scrape time,
    /// so they are written here directly rather than through swift-prometheus, whose counters only increment.
    func metricsResponse() -> IngestResponse {
        var text = ""
        text += "# HELP kbridge_http_responses_total HTTP answers by route and status class.\n# TYPE kbridge_http_responses_total counter\n"
        for (name, counters) in routes + [("(none)", unrouted)] {
            for (statusClass, count) in counters.snapshot {
                text += "kbridge_http_responses_total{route=\"\(Self.escape(name))\",status=\"\(statusClass)\"} \(count)\n"
            }
        }
        text += "# HELP kbridge_connections_open Open HTTP connections.\n# TYPE kbridge_connections_open gauge\n"
        text += "kbridge_connections_open \(connections.openConnections)\n"
        text += "# HELP kbridge_connections_accepted_total HTTP connections accepted (including those refused over max_connections).\n"
        text += "# TYPE kbridge_connections_accepted_total counter\nkbridge_connections_accepted_total \(connections.acceptedCount)\n"
        text += "# HELP kbridge_connections_closed_total HTTP connections kbridge closed or refused, by reason.\n"
        text += "# TYPE kbridge_connections_closed_total counter\n"
        for reason in ConnectionMetrics.CloseReason.allCases {
            text += "kbridge_connections_closed_total{reason=\"\(reason.rawValue)\"} \(connections.closedCount(reason))\n"
        }
        let rows: [(String, String, String, (KafkaProducer) -> Int)] = [
            ("kbridge_kafka_messages_enqueued_total", "counter", "Messages accepted into the producer's queue.", { $0.statistics.enqueued }),
            ("kbridge_kafka_messages_delivered_total", "counter", "Messages the broker acknowledged.", { $0.statistics.delivered }),
            ("kbridge_kafka_messages_failed_total", "counter", "Messages that failed for good (timed out, refused, purged at shutdown).", { $0.statistics.failed }),
            ("kbridge_kafka_queue_messages", "gauge", "Messages accepted and not yet delivered or failed.", { $0.statistics.inQueue }),
            ("kbridge_kafka_cluster_up", "gauge", "1 while the cluster is reachable, 0 while it is down.", { $0.isDown ? 0 : 1 }),
        ]
        for (metric, type, help, value) in rows {
            text += "# HELP \(metric) \(help)\n# TYPE \(metric) \(type)\n"
            for entry in producers {
                text += "\(metric){bootstrap_servers=\"\(Self.escape(entry.name))\"} \(value(entry.producer))\n"
            }
        }
        if !workflows.isEmpty { text += workflowMetricsText() }
        text += AccessMetrics.text(access, escape: Self.escape)
        text += metrics.text()
        if !registries.isEmpty {
            text += "# HELP kbridge_schema_registry_stale_served_total Cached schemas served because the registry was unavailable.\n"
            text += "# TYPE kbridge_schema_registry_stale_served_total counter\n"
            for (url, client) in registries {
                text += "kbridge_schema_registry_stale_served_total{url=\"\(Self.escape(url))\"} \(client.staleServed)\n"
            }
        }
        return IngestResponse(status: .ok, body: ByteBuffer(string: text), headers: [], contentType: "text/plain; version=0.0.4")
    }

    private func workflowMetricsText() -> String {
        var text = "# HELP kbridge_workflow_runs_total Workflow runs by route and outcome.\n# TYPE kbridge_workflow_runs_total counter\n"
        let snapshots = workflows.map { ($0.0, $0.1, $0.1.snapshot) }
        for (route, _, snapshot) in snapshots {
            for outcome in WorkflowMetrics.Outcome.allCases {
                text += "kbridge_workflow_runs_total{route=\"\(Self.escape(route))\",outcome=\"\(outcome.rawValue)\"} \(snapshot.outcomes[outcome] ?? 0)\n"
            }
        }
        text += "# HELP kbridge_workflow_node_runs_total Workflow node runs by route, node and how they ended.\n"
        text += "# TYPE kbridge_workflow_node_runs_total counter\n"
        for (route, metrics, snapshot) in snapshots {
            for node in metrics.nodeNames {
                let counters = snapshot.nodes[node.name] ?? WorkflowMetrics.NodeCounters()
                for (outcome, count) in counters.outcomes.sorted(by: { $0.key < $1.key }) {
                    text += "kbridge_workflow_node_runs_total{route=\"\(Self.escape(route))\",node=\"\(Self.escape(node.name))\",type=\"\(node.type)\",outcome=\"\(outcome)\"} \(count)\n"
                }
            }
        }
        text += "# HELP kbridge_workflow_node_seconds Time spent in workflow nodes that ran.\n# TYPE kbridge_workflow_node_seconds summary\n"
        for (route, metrics, snapshot) in snapshots {
            for node in metrics.nodeNames {
                let counters = snapshot.nodes[node.name] ?? WorkflowMetrics.NodeCounters()
                let labels = "route=\"\(Self.escape(route))\",node=\"\(Self.escape(node.name))\",type=\"\(node.type)\""
                text += "kbridge_workflow_node_seconds_sum{\(labels)} \(counters.seconds)\n"
                text += "kbridge_workflow_node_seconds_count{\(labels)} \(counters.timed)\n"
            }
        }
        return text
    }

    private static func escape(_ label: String) -> String {
        label.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
