import Kafka
import NIOCore
import NIOHTTP1
import Synchronization

/// `GET /ready` (`server.ready_path`), for a load balancer or an orchestrator's readiness probe, beside the liveness
/// of `/health`: 200 once the configuration is loaded (the server answers only then) and every cluster was reached at
/// least once; 503 before that, and from the moment shutdown starts (so traffic is sent elsewhere while kbridge drains).
final class Readiness: Sendable {
    private let stopping = Atomic<Bool>(false)

    /// Shutdown started: `/ready` answers 503 from now on.
    func shutdownStarted() {
        stopping.store(true, ordering: .relaxed)
    }

    var isShuttingDown: Bool { stopping.load(ordering: .relaxed) }
}

extension Observability {
    /// 200 `{"status":"ready"}`, or 503 with why not: `shutting_down`, or the clusters never reached.
    func readyResponse() -> IngestResponse {
        var body = ByteBuffer()
        if readiness.isShuttingDown {
            body.writeStaticString("{\"status\":\"shutting_down\"}")
            return IngestResponse(status: .serviceUnavailable, body: body)
        }
        let unreached = producers.filter { !$0.producer.hasReachedCluster }
        guard unreached.isEmpty else {
            body.writeStaticString("{\"status\":\"not_ready\",\"unreached_clusters\":[")
            for (index, entry) in unreached.enumerated() {
                if index > 0 { body.writeStaticString(",") }
                body.writeJSONString(entry.name)
            }
            body.writeStaticString("]}")
            return IngestResponse(status: .serviceUnavailable, body: body)
        }
        body.writeStaticString("{\"status\":\"ready\"}")
        return IngestResponse(status: .ok, body: body)
    }
}
