import Kafka
import NIOCore
import NIOHTTP1
import Synchronization

/// `GET /ready` (`server.ready_path`), for a load balancer or an orchestrator's readiness probe, beside the liveness
/// of `/health`: 200 once the configuration is loaded (the server answers only then) and every cluster was reached at
/// least once; 503 before that, and from the moment shutdown starts (so traffic is sent elsewhere while kbridge drains).
///
/// A reload carries this object on, and with it the clusters reached so far: a producer that a reload makes anew for a
/// cluster an earlier producer reached does not take kbridge out of rotation while it connects.
final class Readiness: Sendable {
    private let stopping = Atomic<Bool>(false)
    /// Clusters (by their `bootstrap_servers`) some producer of this or an earlier configuration reached.
    private let reachedClusters = Mutex<Set<String>>([])

    /// The clusters of `producers` never reached, by this configuration's producers or an earlier one's.
    func unreachedClusters(of producers: [Observability.Producer]) -> [String] {
        reachedClusters.withLock { reached in
            var unreached: [String] = []
            for entry in producers where !reached.contains(entry.name) {
                if entry.producer.hasReachedCluster {
                    reached.insert(entry.name)
                } else if !unreached.contains(entry.name) {
                    unreached.append(entry.name)
                }
            }
            return unreached.filter { !reached.contains($0) }
        }
    }

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
        let unreached = readiness.unreachedClusters(of: producers)
        guard unreached.isEmpty else {
            body.writeStaticString("{\"status\":\"not_ready\",\"unreached_clusters\":[")
            for (index, name) in unreached.enumerated() {
                if index > 0 { body.writeStaticString(",") }
                body.writeJSONString(name)
            }
            body.writeStaticString("]}")
            return IngestResponse(status: .serviceUnavailable, body: body)
        }
        body.writeStaticString("{\"status\":\"ready\"}")
        return IngestResponse(status: .ok, body: body)
    }
}
