import Kafka
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Workflow

/// What happens to a request once it is complete: an answer now, or one that waits for the broker.
enum IngestOutcome {
    case immediate(IngestResponse)
    case pending(EventLoopFuture<IngestResponse>)
}

/// Turns a route's requests into Kafka messages: picks the topics and the key, encodes the message,
/// produces it and decides when to answer (at once in async mode, after the broker's ack in sync mode).
final class RouteIngestor: Sendable {
    let route: RouteConfiguration
    let pattern: RoutePattern
    let producer: KafkaProducer
    /// `allowed_topics` plus the default topic; `nil` when any topic is allowed.
    private let allowedTopics: Set<String>?
    private let readsQuery: Bool
    /// Validates and serializes records with registered schemas, for `schema_registry` routes.
    let schemaEncoder: SchemaRecordEncoder?
    /// The route's answers by status class, for `/metrics`.
    let responses: ResponseCounters

    /// The route's compiled workflow (Datakit pre-stage), if it has one.
    let workflow: Workflow?
    /// The workflow's outcomes and per-node counts, for `/metrics`.
    let workflowMetrics: WorkflowMetrics?
    /// `client_authentication` and `rate_limit`, if the route has either.
    let access: RouteAccess?

    /// One message for one topic.
    struct OutgoingRecord: Sendable {
        var topic: String
        var value: ByteBuffer
        var key: [UInt8]?
        var headers: [KafkaRecordHeader] = []
    }

    /// Logs what a workflow run says went wrong.
    let logger: Logger
    /// When each answer code's hidden detail was last logged, and how many were not logged since (at most one line
    /// per code and ``detailLogInterval``: an outage refuses every request, and each would log the same reason).
    private let detailLog = Mutex<[String: (last: ContinuousClock.Instant, suppressed: Int)]>([:])
    static let detailLogInterval: Duration = .seconds(1)

    init(
        route: RouteConfiguration, pattern: RoutePattern, producer: KafkaProducer, schemaEncoder: SchemaRecordEncoder? = nil,
        workflow: Workflow? = nil, access: RouteAccess? = nil, logger: Logger = Logger(label: "kbridge"),
        metrics: MetricsRegistry = MetricsRegistry(), responses: ResponseCounters? = nil
    ) {
        self.route = route
        self.access = access
        self.responses = responses ?? ResponseCounters(route: route.name, metrics: metrics)
        self.logger = logger
        self.pattern = pattern
        self.producer = producer
        self.schemaEncoder = schemaEncoder
        self.workflow = workflow
        workflowMetrics = workflow.map { WorkflowMetrics(nodes: $0.nodeNames) }
        allowedTopics = route.allowedTopics.isEmpty ? nil : Set(route.allowedTopics + (route.topic.map { [$0] } ?? []))
        readsQuery = route.topicsQueryArgument != nil || route.keyQueryArgument != nil
    }

    /// The answer to a request, as the client sees it: with `error_handling.return_error_message` false, a client
    /// library's detail is replaced by a generic message here, and logged.
    func ingest(_ request: IngestRequest, match: RouteTable.Match, eventLoop: any EventLoop) -> IngestOutcome {
        guard let access else { return answerPresented(request, match: match, eventLoop: eventLoop) }
        switch access.admit(request, eventLoop: eventLoop) {
        case .immediate(let admission):
            return answer(admission, match: match, eventLoop: eventLoop)
        case .pending(let future):
            return .pending(future.flatMap { admission in
                switch self.answer(admission, match: match, eventLoop: eventLoop) {
                case .immediate(let response): eventLoop.makeSucceededFuture(response)
                case .pending(let answered): answered
                }
            })
        }
    }

    /// The answer to a request the route's gate admitted at its head (``RouteAccess/admit(_:eventLoop:)``, before the
    /// body was read), with the gate's answer headers.
    func ingest(admitted request: IngestRequest, headers: [(String, String)], match: RouteTable.Match, eventLoop: any EventLoop) -> IngestOutcome {
        answer(.admitted(request, headers: headers), match: match, eventLoop: eventLoop)
    }

    /// The answer to a request the route's gate has decided on; an admitted request's answer gets the gate's headers.
    private func answer(_ admission: RouteAccess.Admission, match: RouteTable.Match, eventLoop: any EventLoop) -> IngestOutcome {
        switch admission {
        case .refused(let response):
            return .immediate(response)
        case .admitted(let request, let headers):
            let outcome = answerPresented(request, match: match, eventLoop: eventLoop)
            guard !headers.isEmpty else { return outcome }
            switch outcome {
            case .immediate(var response):
                response.headers += headers
                return .immediate(response)
            case .pending(let future):
                return .pending(future.map { response in
                    var response = response
                    response.headers += headers
                    return response
                })
            }
        }
    }

    private func answerPresented(_ request: IngestRequest, match: RouteTable.Match, eventLoop: any EventLoop) -> IngestOutcome {
        switch answer(request, match: match, eventLoop: eventLoop) {
        case .immediate(let response): return .immediate(present(response))
        case .pending(let future): return .pending(future.map { self.present($0) })
        }
    }

    /// The record header naming the authenticated consumer, when the route asks for it.
    func consumerRecordHeaders(for request: IngestRequest) -> [KafkaRecordHeader] {
        access?.consumerRecordHeader(for: request).map { [$0] } ?? []
    }

    /// A refusal of the route's gate as the client sees it.
    func presented(_ response: IngestResponse) -> IngestResponse { present(response) }

    private func present(_ response: IngestResponse) -> IngestResponse {
        guard !route.returnErrorMessage, response.genericBody != nil else { return response }
        if let detail = response.detail {
            let code = response.code ?? "error"
            let now = ContinuousClock.now
            let suppressed = detailLog.withLock { entries -> Int? in
                if let entry = entries[code], now - entry.last < Self.detailLogInterval {
                    entries[code] = (entry.last, entry.suppressed + 1)
                    return nil
                }
                defer { entries[code] = (now, 0) }
                return entries[code]?.suppressed ?? 0
            }
            if let suppressed {
                logger.notice("request refused; the detail is not returned (error_handling.return_error_message is false)", metadata: [
                    "route": "\(route.name)", "status": "\(response.status.code)", "code": "\(code)", "detail": "\(detail)",
                    "not_logged_since": "\(suppressed)",
                ])
            }
        }
        return response.presented(returnErrorMessage: false)
    }

    private func answer(_ request: IngestRequest, match: RouteTable.Match, eventLoop: any EventLoop) -> IngestOutcome {
        if producer.isDown, case .down(let reason) = producer.health {
            return .immediate(.error(.serviceUnavailable, code: "kafka_unavailable", "\(IngestResponse.kafkaUnavailableMessage): \(reason)",
                                     generic: IngestResponse.kafkaUnavailableMessage, detail: reason, headers: [("retry-after", "1")]))
        }
        if let workflow { return ingest(request, match: match, workflow: workflow, eventLoop: eventLoop) }
        var query = FormArguments()
        if readsQuery, let text = request.query {
            do { query = try FormArguments.parse(text) } catch {
                return .immediate(.error(.badRequest, code: "invalid_query", "invalid query string: \(error.reason)"))
            }
        }
        let topics: [String]
        switch selectTopics(query: query, pathTopic: match.topic) {
        case .success(let selected): topics = selected
        case .failure(let error): return .immediate(error.response)
        }
        let key = match.key ?? route.keyQueryArgument.flatMap { query.first($0) }
        let headers = route.recordHeaders(for: request) + consumerRecordHeaders(for: request)

        if let schemaEncoder {
            let body = request.body
            // The usual case, every schema cached and compiled and a small body: validated and produced right here.
            if body.readableBytes <= SchemaRecordEncoder.inlineBodyLimit {
                var schemas: [SchemaRecordEncoder.TopicSchemas] = []
                for topic in topics {
                    guard let cached = schemaEncoder.cachedSchemas(topic: topic) else { break }
                    schemas.append(cached)
                }
                if schemas.count == topics.count {
                    switch schemaRecords(schemaEncoder, body: body, key: key, topics: topics, schemas: schemas, headers: headers) {
                    case .success(let records): return produce(records, eventLoop: eventLoop)
                    case .failure(let error): return .immediate(error.response)
                    }
                }
            }
            // Otherwise registry lookups are awaited (once per schema: then cached), and validation runs off the event loop.
            let promise = eventLoop.makePromise(of: IngestResponse.self)
            Task {
                var schemas: [SchemaRecordEncoder.TopicSchemas] = []
                for topic in topics {
                    switch await schemaEncoder.schemas(topic: topic) {
                    case .success(let prepared): schemas.append(prepared)
                    case .failure(let error):
                        promise.succeed(error.response)
                        return
                    }
                }
                switch self.schemaRecords(schemaEncoder, body: body, key: key, topics: topics, schemas: schemas, headers: headers) {
                case .success(let records):
                    switch self.produce(records, eventLoop: eventLoop) {
                    case .immediate(let response): promise.succeed(response)
                    case .pending(let future): promise.completeWith(future)
                    }
                case .failure(let error): promise.succeed(error.response)
                }
            }
            return .pending(promise.futureResult)
        }

        var message = ByteBufferAllocator().buffer(capacity: request.body.readableBytes * 2 + 256)
        do {
            try KongMessageEncoder.encode(request, fields: route.fields, into: &message)
        } catch {
            return .immediate(.error(.badRequest, code: "invalid_body", error.reason))
        }
        let keyBytes = key.map { Array($0.utf8) }
        return produce(topics.map { OutgoingRecord(topic: $0, value: message, key: keyBytes, headers: headers) }, eventLoop: eventLoop)
    }


    /// One record per topic, each with that topic's schemas, or the answer that refuses the request.
    private func schemaRecords(
        _ encoder: SchemaRecordEncoder, body: ByteBuffer, key: String?, topics: [String], schemas: [SchemaRecordEncoder.TopicSchemas],
        headers: [KafkaRecordHeader]
    ) -> Result<[OutgoingRecord], ResponseError> {
        var records: [OutgoingRecord] = []
        records.reserveCapacity(topics.count)
        for (topic, topicSchemas) in zip(topics, schemas) {
            switch encoder.encode(body: body, key: key, schemas: topicSchemas) {
            case .success(let record):
                records.append(OutgoingRecord(topic: topic, value: ByteBuffer(bytes: record.value), key: record.key, headers: headers))
            case .failure(let error): return .failure(error)
            }
        }
        return .success(records)
    }
    func produce(_ records: [OutgoingRecord], eventLoop: any EventLoop) -> IngestOutcome {
        route.kafka.async ? produceAsync(records) : produceSync(records, eventLoop: eventLoop)
    }

    private func produceAsync(_ records: [OutgoingRecord]) -> IngestOutcome {
        for (index, record) in records.enumerated() {
            do {
                try send(record, onDelivery: nil)
            } catch {
                guard index > 0 else { return .immediate(IngestResponse(kafkaError: error)) }
                return .immediate(.partiallyAccepted(accepted: records[..<index].map(\.topic), refused: records[index...].map(\.topic), error: error))
            }
        }
        return .immediate(.messageSent)
    }

    private func produceSync(_ records: [OutgoingRecord], eventLoop: any EventLoop) -> IngestOutcome {
        let promise = eventLoop.makePromise(of: IngestResponse.self)
        produceSync(records) { response, _ in promise.succeed(response) }
        return .pending(promise.futureResult)
    }

    /// Sends every record and calls `completion` once all delivery reports are in, with the answer and each
    /// record's report (`nil` for a record that failed).
    func produceSync(_ records: [OutgoingRecord], completion: @escaping @Sendable (IngestResponse, [KafkaDeliveryReport?]) -> Void) {
        let collector = DeliveryCollector(topics: records.map(\.topic), producer: producer, completion: completion)
        for (index, record) in records.enumerated() {
            do {
                try send(record) { collector.record(index, $0) }
            } catch {
                // The records already enqueued still report; the ones not sent count as failed now.
                for unsent in index..<records.count { collector.record(unsent, .failure(error)) }
                break
            }
        }
    }

    private func send(_ record: OutgoingRecord, onDelivery: KafkaDeliveryHandler?) throws(KafkaError) {
        let result = record.value.withUnsafeReadableBytes { value -> Result<Void, KafkaError> in
            guard let key = record.key else {
                return Result { () throws(KafkaError) in
                    try producer.send(topic: record.topic, key: nil, value: value, headers: record.headers, onDelivery: onDelivery)
                }
            }
            return key.withUnsafeBytes { keyBytes in
                Result { () throws(KafkaError) in
                    try producer.send(topic: record.topic, key: keyBytes, value: value, headers: record.headers, onDelivery: onDelivery)
                }
            }
        }
        try result.get()
    }

    /// `topics_query_arg` first, then the `{topic}` path segment, then the default `topic`.
    func selectTopics(query: FormArguments, pathTopic: String?) -> Result<[String], ResponseError> {
        var requested: [String] = []
        if let argument = route.topicsQueryArgument, let list = query.first(argument) {
            requested = list.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        }
        if requested.isEmpty, let pathTopic { requested = [pathTopic] }
        if requested.isEmpty {
            guard let topic = route.topic else {
                return .failure(ResponseError(.error(.badRequest, code: "no_topic", "the request names no topic")))
            }
            return .success([topic])
        }
        return checkTopics(requested)
    }

    /// Each topic once, each a valid name within `allowed_topics`.
    func checkTopics(_ requested: [String]) -> Result<[String], ResponseError> {
        var unique: [String] = []
        for topic in requested where !unique.contains(topic) {
            if let problem = TopicName.problem(with: topic) {
                return .failure(ResponseError(.error(.badRequest, code: "invalid_topic", problem)))
            }
            if let allowedTopics, !allowedTopics.contains(topic) {
                return .failure(ResponseError(.error(.forbidden, code: "topic_not_allowed", "topic '\(topic)' is not in this route's allowed_topics")))
            }
            unique.append(topic)
        }
        return .success(unique)
    }
}

/// An `IngestResponse` carried through a `Result`.
struct ResponseError: Error {
    var response: IngestResponse
    init(_ response: IngestResponse) { self.response = response }
}

/// Completes a sync request's promise once every topic's delivery report is in: `200` when every topic took the
/// message, the failure when none did, and `partially_accepted` (naming both sets) when some did, so that a client does
/// not retry into duplicates without knowing it.
private final class DeliveryCollector: Sendable {
    private let state: Mutex<(remaining: Int, failures: [Int: KafkaError], reports: [KafkaDeliveryReport?])>
    private let topics: [String]
    let producer: KafkaProducer
    private let completion: @Sendable (IngestResponse, [KafkaDeliveryReport?]) -> Void

    init(topics: [String], producer: KafkaProducer, completion: @escaping @Sendable (IngestResponse, [KafkaDeliveryReport?]) -> Void) {
        state = Mutex((topics.count, [:], Array(repeating: nil, count: topics.count)))
        self.topics = topics
        self.producer = producer
        self.completion = completion
    }

    /// The delivery report of the record for `topics[index]`.
    func record(_ index: Int, _ result: Result<KafkaDeliveryReport, KafkaError>) {
        let outcome = state.withLock { state -> (failures: [Int: KafkaError], reports: [KafkaDeliveryReport?])? in
            switch result {
            case .failure(let error): if state.failures[index] == nil { state.failures[index] = error }
            case .success(let report): state.reports[index] = report
            }
            state.remaining -= 1
            return state.remaining == 0 ? (state.failures, state.reports) : nil
        }
        guard let (failures, reports) = outcome else { return }
        let promise = Completion(completion, reports: reports)
        guard let firstFailed = failures.keys.min(), var failure = failures[firstFailed] else {
            let deliveries = topics.indices.compactMap { index in reports[index].map { (topics[index], $0.partition, $0.offset) } }
            promise.succeed(IngestResponse(status: .ok, body: JSONBody.messageSent(deliveries)))
            return
        }
        // "Message timed out" says little; when the cluster is known to be down, say why.
        if failure.isUnavailable, case .down(let reason) = producer.health {
            failure.message = "the Kafka cluster is unreachable: \(reason) (\(failure.message))"
        }
        guard failures.count < topics.count else {
            promise.succeed(IngestResponse(kafkaError: failure))
            return
        }
        let accepted = topics.indices.filter { failures[$0] == nil }.map { topics[$0] }
        let refused = topics.indices.filter { failures[$0] != nil }.map { topics[$0] }
        promise.succeed(.partiallyAccepted(accepted: accepted, refused: refused, error: failure))
    }

    /// The completion with the reports bound, read like the promise it replaces.
    private struct Completion {
        let call: @Sendable (IngestResponse, [KafkaDeliveryReport?]) -> Void
        let reports: [KafkaDeliveryReport?]
        init(_ call: @escaping @Sendable (IngestResponse, [KafkaDeliveryReport?]) -> Void, reports: [KafkaDeliveryReport?]) {
            self.call = call
            self.reports = reports
        }
        func succeed(_ response: IngestResponse) { call(response, reports) }
    }
}
