import NIOHTTP1
import W3CTraceContext

/// A request's W3C trace context (`traceparent`, `tracestate`), checked by swift-w3c-trace-context: a value that
/// is not a valid trace context is not passed on (a consumer would fail on it, or start a trace of garbage).
struct TraceContextHeaders {
    var traceParent: String
    var traceState: String?

    init?(_ headers: HTTPHeaders) {
        guard let parent = headers.first(name: "traceparent"), parent.utf8.count <= 256 else { return nil }
        let state = headers[canonicalForm: "tracestate"].map(String.init).joined(separator: ",")
        // The trace state is optional and advisory (W3C: a malformed one is dropped, the trace goes on).
        let validState = state.isEmpty || state.utf8.count > 512 ? nil : state
        guard let context = (try? TraceContext(traceParentHeaderValue: parent, traceStateHeaderValue: validState))
            ?? (try? TraceContext(traceParentHeaderValue: parent)) else { return nil }
        traceParent = context.traceParentHeaderValue
        traceState = context.traceStateHeaderValue.flatMap { $0.isEmpty ? nil : $0 }
    }
}
