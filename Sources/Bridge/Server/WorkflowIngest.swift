import Foundation
import JSON
import Kafka
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Workflow

/// The ingest path of a route with a workflow:
/// request → workflow (first phase) → record building (Kong envelope, or schema validation) → produce →
/// workflow (second phase, with `service_response`) → answer. Topics, key and record headers are chosen after the
/// first phase; the workflow's failures become HTTP answers only here.
extension RouteIngestor {
    func ingest(_ request: IngestRequest, match: RouteTable.Match, workflow: Workflow, eventLoop: any EventLoop) -> IngestOutcome {
        var query = FormArguments()
        if let text = request.query {
            do { query = try FormArguments.parse(text, maximumCount: request.limits.maximumFormFields) } catch {
                return .immediate(.error(.badRequest, code: "invalid_query", "invalid query string: \(error.reason)"))
            }
        }
        let requestID = request.requestID ?? RequestID.make()
        let wantsTrace = workflow.debug && DebugTraceHeader.isEnabled(in: request.headers)
        var workflowRequest = WorkflowRequest(
            method: request.method.rawValue, path: String(request.path), query: query.jsonObject,
            headers: request.headers.map { ($0.name, $0.value) }, body: Array(buffer: request.body), contentType: request.contentType,
            scheme: request.connection.isTLS ? "https" : "http", version: "\(request.connection.version.major).\(request.connection.version.minor)",
            port: request.connection.localPort ?? 0, clientIP: request.connection.clientIP, clientPort: request.connection.clientPort,
            routeName: route.name, requestID: requestID, defaultTopic: match.topic ?? route.topic, consumer: request.consumer)
        if let identity = request.clientCertificate {
            workflowRequest.clientCertificate = (identity.subject, identity.subjectAlternativeNames)
        }
        let promise = eventLoop.makePromise(of: IngestResponse.self)
        Task {
            let execution = workflow.execution(for: workflowRequest)
            let start = ContinuousClock.now
            var (response, outcome) = await self.run(execution, request: request, query: query, match: match, workflow: workflow,
                                                     requestID: requestID, eventLoop: eventLoop)
            if wantsTrace {
                response.body = ByteBuffer(bytes: await execution.traceJSON())
                response.contentType = "application/json"
            }
            self.workflowMetrics?.record(outcome: outcome, nodes: await execution.nodeReports(), duration: .now - start)
            promise.succeed(response)
        }
        return .pending(promise.futureResult)
    }

    private func run(
        _ execution: WorkflowExecution, request: IngestRequest, query: FormArguments, match: RouteTable.Match, workflow: Workflow,
        requestID: String, eventLoop: any EventLoop
    ) async -> (IngestResponse, WorkflowMetrics.Outcome) {
        let decision: WorkflowExecution.Decision
        do {
            decision = try await execution.runUntilProduce()
        } catch {
            return (failureResponse(error, workflow: workflow, requestID: requestID), .init(error))
        }
        let serviceRequest: WorkflowServiceRequest
        switch decision {
        case .exit(let exit):
            return (IngestResponse(workflow: exit), .exit)
        case .produce(let produce):
            serviceRequest = produce
        }
        // The message is built from the request as the workflow left it.
        let rebuilt = request.applying(serviceRequest)
        let topics: [String]
        let chosen = serviceRequest.topics.map { checkTopics($0) } ?? selectTopics(query: query, pathTopic: match.topic)
        switch chosen {
        case .success(let selected): topics = selected
        case .failure(let error): return (error.response, .refused)
        }
        let key = serviceRequest.key ?? match.key ?? route.keyQueryArgument.flatMap { query.first($0) }
        // The route's record headers (from the request as the workflow left it), then the workflow's `kafka.headers`.
        let headers = route.recordHeaders(for: rebuilt)
            + (serviceRequest.recordHeaders ?? []).map { KafkaRecordHeader(name: $0.name, value: Array($0.value.utf8)) }
            + consumerRecordHeaders(for: request)
        var records: [OutgoingRecord] = []
        if let schemaEncoder {
            for topic in topics {
                switch await schemaEncoder.encode(body: rebuilt.body, key: key, topic: topic) {
                case .success(let record):
                    records.append(OutgoingRecord(topic: topic, value: ByteBuffer(bytes: record.value), key: record.key, headers: headers))
                case .failure(let error):
                    return (error.response, .refused)
                }
            }
        } else {
            var message = ByteBufferAllocator().buffer(capacity: rebuilt.body.readableBytes * 2 + 256)
            do {
                try KongMessageEncoder.encode(rebuilt, fields: route.fields, into: &message)
            } catch {
                return (.error(.badRequest, code: "invalid_body", error.reason), .refused)
            }
            let keyBytes = key.map { Array($0.utf8) }
            records = topics.map { OutgoingRecord(topic: $0, value: message, key: keyBytes, headers: headers) }
        }

        let (produced, reports) = await produceAndWait(records, eventLoop: eventLoop)
        guard produced.status == .ok else { return (produced, .refused) }
        guard workflow.hasSecondPhase else { return (produced, .produced) }
        let deliveries: [JSONValue] = records.indices.map { index in
            var entry = JSONObject([("topic", .string(records[index].topic))])
            if let report = reports[index] {
                entry["partition"] = .integer(Int(report.partition))
                entry["offset"] = .number(JSONNumber(report.offset))
            } else {
                entry["queued"] = .bool(true)
            }
            return .object(entry)
        }
        let serviceResponse = WorkflowServiceResponse(
            status: Int(produced.status.code), headers: [("Content-Type", produced.contentType)],
            body: .object(JSONObject([("message", .string("message sent")), ("deliveries", .array(deliveries))])))
        let answer: WorkflowAnswer
        do {
            answer = try await execution.finish(with: serviceResponse)
        } catch {
            // The message is in Kafka: say so, so that the client does not send it again.
            var response = failureResponse(error, workflow: workflow, requestID: requestID)
            response.status = .badGateway
            response.body = JSONBody.error(
                message: "the message was produced, but the workflow failed after producing: \(workflow.debug ? "\(error)" : "see the log")",
                code: "workflow_failed_after_produce")
            return (response, .init(error))
        }
        return (produced.applying(answer), .produced)
    }

    /// Produces the records (sync: waits for the broker's acknowledgements; async: once enqueued) and returns the answer
    /// with each record's delivery report (`nil` in async mode, or for a record that failed).
    private func produceAndWait(_ records: [OutgoingRecord], eventLoop: any EventLoop) async -> (IngestResponse, [KafkaDeliveryReport?]) {
        if route.kafka.async {
            switch produce(records, eventLoop: eventLoop) {
            case .immediate(let response): return (response, Array(repeating: nil, count: records.count))
            case .pending(let future): return ((try? await future.get()) ?? .messageSent, Array(repeating: nil, count: records.count))
            }
        }
        return await withCheckedContinuation { continuation in
            produceSync(records) { response, reports in continuation.resume(returning: (response, reports)) }
        }
    }

    private func failureResponse(_ failure: WorkflowFailure, workflow: Workflow, requestID: String) -> IngestResponse {
        switch failure {
        case .nodeFailed(let node, let message):
            logger.warning("workflow node failed", metadata: [
                "route": "\(route.name)", "request_id": "\(requestID)", "node": "#\(node.index ?? 0) (\(node.name))", "error": "\(message)",
            ])
            var body = JSONObject([("message", .string(workflow.debug ? "node execution error" : "An unexpected error occurred")),
                                   ("request_id", .string(requestID))])
            if workflow.debug {
                body["error"] = .string(message)
                body["node"] = .object(JSONObject([("index", node.index.map { .integer($0) } ?? .null), ("name", .string(node.name)),
                                                   ("type", .string(node.type))]))
            }
            body["code"] = .string("workflow_node_failed")
            return IngestResponse(status: .internalServerError, body: ByteBuffer(bytes: JSONWriter.bytes(.object(body))))
        case .timedOut(let pending, _):
            logger.warning("workflow timed out", metadata: ["route": "\(route.name)", "request_id": "\(requestID)", "pending": "\(pending)"])
            let body = JSONObject([("message", .string(failure.description)), ("request_id", .string(requestID)),
                                   ("pending", .array(pending.map { .string($0) })), ("code", .string("workflow_timeout"))])
            return IngestResponse(status: .gatewayTimeout, body: ByteBuffer(bytes: JSONWriter.bytes(.object(body))))
        case .invalidServiceRequest(let reason):
            logger.warning("workflow output unusable", metadata: ["route": "\(route.name)", "request_id": "\(requestID)", "error": "\(reason)"])
            let body = JSONObject([("message", .string(workflow.debug ? reason : "An unexpected error occurred")),
                                   ("request_id", .string(requestID)), ("code", .string("workflow_invalid_output"))])
            return IngestResponse(status: .internalServerError, body: ByteBuffer(bytes: JSONWriter.bytes(.object(body))))
        }
    }
}

extension IngestResponse {
    /// An `exit` node's answer.
    init(workflow response: WorkflowResponse) {
        self.init(status: HTTPResponseStatus(statusCode: response.status), body: ByteBuffer(bytes: response.body),
                  headers: response.headers.map { ($0.name, $0.value) }, contentType: response.contentType ?? "text/plain")
    }

    /// This answer with what the workflow's `response` node and `kafka.response.status` changed.
    func applying(_ answer: WorkflowAnswer) -> IngestResponse {
        var response = self
        if let status = answer.status { response.status = HTTPResponseStatus(statusCode: status) }
        if let headers = answer.headers { response.headers = headers.map { ($0.name, $0.value) } }
        if let body = answer.body {
            response.body = ByteBuffer(bytes: body.bytes)
            response.contentType = body.contentType ?? "text/plain"
        }
        return response
    }
}

extension IngestRequest {
    /// The request as the workflow's `service_request` left it: body, headers and query replaced where it set them.
    func applying(_ change: WorkflowServiceRequest) -> IngestRequest {
        var request = self
        if let headers = change.headers {
            var replaced = HTTPHeaders()
            for (name, value) in headers { replaced.add(name: name, value: value) }
            request.headers = replaced
            request.contentType = replaced.first(name: "content-type")
        }
        if let body = change.body {
            request.body = ByteBuffer(bytes: body.bytes)
            if let type = body.contentType, request.headers.first(name: "content-type") == nil || change.headers == nil {
                request.headers.replaceOrAdd(name: "content-type", value: type)
                request.contentType = type
            }
        }
        if let query = change.encodedQuery {
            request.uri = query.isEmpty ? String(path) : "\(path)?\(query)"
        }
        return request
    }
}

/// `X-DataKit-Debug-Trace`: `true`, `yes`, `on`, `1` or `enabled` asks for the trace (with `debug: true`).
enum DebugTraceHeader {
    static func isEnabled(in headers: HTTPHeaders) -> Bool {
        guard let value = headers.first(name: "x-datakit-debug-trace") else { return false }
        return ["true", "yes", "on", "1", "enabled"].contains(value.trimmingCharacters(in: .whitespaces).lowercased())
    }
}

/// Request ids as Kong writes them: 32 hex digits.
enum RequestID {
    /// A client's id, if it is one to keep: 1 to 200 visible ASCII characters (it is logged and sent back).
    static func accepting(_ value: String) -> String? {
        guard !value.isEmpty, value.utf8.count <= 200, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return value
    }

    /// Ids for one connection's requests: a random 64-bit prefix drawn once (one `getrandom` per connection, not
    /// per request) and a counter, 32 hex digits like ``make()``'s.
    struct Sequence {
        private let prefix: UInt64
        private var counter: UInt64 = 0

        init() {
            var generator = SystemRandomNumberGenerator()
            prefix = generator.next() as UInt64 | (1 << 63)
        }

        /// 32 lower-case hex digits, written straight into the string's storage (a request id is made for every
        /// request, and `String(_:radix:)` plus padding cost half a microsecond).
        mutating func next() -> String {
            counter &+= 1
            let (prefix, counter) = (prefix, counter)
            return String(unsafeUninitializedCapacity: 32) { bytes in
                RequestID.writeHex(prefix, to: bytes, at: 0)
                RequestID.writeHex(counter, to: bytes, at: 16)
                return 32
            }
        }
    }

    /// `value` as 16 hex digits, zero-padded, at `bytes[offset..<offset + 16]`.
    private static func writeHex(_ value: UInt64, to bytes: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        let digits: StaticString = "0123456789abcdef"
        digits.withUTF8Buffer { digits in
            for index in 0..<16 {
                bytes[offset + index] = digits[Int(truncatingIfNeeded: (value >> UInt64(60 - 4 * index)) & 0xF)]
            }
        }
    }

    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        let text = String(high, radix: 16) + String(low, radix: 16)
        return String(repeating: "0", count: max(0, 32 - text.count)) + text
    }
}

/// Per route with a workflow: runs by outcome, and per node how runs ended and how long they took.
final class WorkflowMetrics: Sendable {
    enum Outcome: String, CaseIterable, Sendable {
        /// `refused`: the workflow ran, but the message could not be built or produced (topic, schema, Kafka).
        case produced, exit, refused, nodeFailed = "node_failed", timeout, invalidOutput = "invalid_output"

        init(_ failure: WorkflowFailure) {
            switch failure {
            case .nodeFailed: self = .nodeFailed
            case .timedOut: self = .timeout
            case .invalidServiceRequest: self = .invalidOutput
            }
        }
    }

    struct NodeCounters: Sendable {
        var outcomes: [String: Int] = [:]
        var seconds: Double = 0
        var timed = 0
    }

    let nodeNames: [(name: String, type: String)]
    private let state: Mutex<(outcomes: [Outcome: Int], nodes: [String: NodeCounters], seconds: Double)>

    init(nodes: [(name: String, type: String)]) {
        nodeNames = nodes
        state = Mutex(([:], [:], 0))
    }

    func record(outcome: Outcome, nodes: [WorkflowNodeReport], duration: Duration) {
        state.withLock { state in
            state.outcomes[outcome, default: 0] += 1
            state.seconds += Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            for node in nodes {
                var counters = state.nodes[node.name] ?? NodeCounters()
                counters.outcomes[Self.outcomeLabel(node.outcome), default: 0] += 1
                if let duration = node.duration {
                    counters.seconds += Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
                    counters.timed += 1
                }
                state.nodes[node.name] = counters
            }
        }
    }

    /// `NODE_COMPLETE` → `complete`.
    static func outcomeLabel(_ status: String) -> String {
        status.hasPrefix("NODE_") ? String(status.dropFirst(5)).lowercased() : status.lowercased()
    }

    var snapshot: (outcomes: [Outcome: Int], nodes: [String: NodeCounters], seconds: Double) { state.withLock { $0 } }
}
