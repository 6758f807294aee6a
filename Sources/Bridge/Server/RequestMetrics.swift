import Prometheus

/// The histograms and the per-reason counters of `/metrics`, kept by swift-prometheus (which renders them in the
/// text format); the totals read from the producers at scrape time are written by ``Observability`` itself.
final class MetricsRegistry: Sendable {
    let registry = PrometheusCollectorRegistry()

    /// From 100 µs (an async answer) to 10 s (a sync answer waiting out a broker's timeout).
    static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2), .seconds(5), .seconds(10),
    ]
    /// From 64 bytes to 16 MiB, by factors of four.
    static let sizeBuckets: [Double] = [64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216]

    private static var requestDuration: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "kbridge", subsystem: "http", metricName: "request_duration", unitName: "seconds",
            helpText: "Time from a request's head to its answer, by route.")
    }
    private static var bodySize: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "kbridge", subsystem: "http", metricName: "request_body", unitName: "bytes",
            helpText: "Request body sizes, by route.")
    }
    private static var rejected: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "kbridge", subsystem: "http", metricName: "rejected", unitName: "total",
            helpText: "Requests answered with an error, by route and the answer's code.")
    }
    private static var produceLatency: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "kbridge", subsystem: "kafka", metricName: "produce_latency", unitName: "seconds",
            helpText: "Time from a message's enqueueing to its delivery report (acknowledged or failed), by producer.")
    }

    func requestDuration(route: String) -> DurationHistogram {
        registry.makeDurationHistogram(descriptor: Self.requestDuration, labels: [("route", route)], buckets: Self.durationBuckets)
    }

    func bodySize(route: String) -> ValueHistogram {
        registry.makeValueHistogram(descriptor: Self.bodySize, labels: [("route", route)], buckets: Self.sizeBuckets)
    }

    /// The counter of answers with `code` on `route` (created at the first one).
    func rejected(route: String, code: String) -> Counter {
        registry.makeCounter(descriptor: Self.rejected, labels: [("route", route), ("code", code)])
    }

    /// What a producer calls with each message's time from enqueueing to its delivery report.
    func produceLatencyRecorder(bootstrapServers: String, mode: String) -> @Sendable (Duration) -> Void {
        let histogram = registry.makeDurationHistogram(
            descriptor: Self.produceLatency, labels: [("bootstrap_servers", bootstrapServers), ("mode", mode)], buckets: Self.durationBuckets)
        return { histogram.record($0) }
    }

    /// Everything registered, in the Prometheus text format.
    func text() -> String { registry.emitToString() }
}
