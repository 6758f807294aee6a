import Handlebars
import JSON
import Secrets
import XML

/// One request's run of a ``Workflow``, in two phases around producing: ``runUntilProduce()`` runs every node that
/// does not depend on `service_response` and says whether to produce (and what) or to answer now;
/// ``finish(with:)`` runs the nodes that follow producing and assembles the answer.
///
/// Independent nodes run concurrently (`call` and `jq` as child tasks), each once, when all its inputs are ready;
/// the first failure cancels the nodes still running; each phase has the workflow's deadline.
public actor WorkflowExecution {
    private let workflow: Workflow
    private let request: WorkflowRequest
    private var outputs: [NodeOutputs?]
    private var status: [NodeStatus]
    private var waitingFor: [Int]
    private var properties: PropertyStore
    private var assignedProperties = Set<WorkflowProperty>()
    private var exitResponse: WorkflowResponse?
    private(set) var trace: WorkflowTrace
    /// Per node: when it started, for its duration.
    private var startedAt: [ContinuousClock.Instant?]

    init(workflow: Workflow, request: WorkflowRequest) {
        self.workflow = workflow
        self.request = request
        outputs = Array(repeating: nil, count: workflow.nodes.count)
        status = Array(repeating: .pending, count: workflow.nodes.count)
        waitingFor = workflow.nodes.map(\.dependencyCount)
        properties = PropertyStore(context: request)
        trace = WorkflowTrace(masked: workflow.vaultValues)
        startedAt = Array(repeating: nil, count: workflow.nodes.count)
    }

    /// What a node is doing (Datakit's trace statuses).
    enum NodeStatus: String {
        case pending = "NODE_PENDING", running = "NODE_RUNNING", complete = "NODE_COMPLETE", error = "NODE_ERROR"
        case canceled = "NODE_CANCELED", skipped = "NODE_SKIPPED"
    }

    /// What to do after the first phase.
    public enum Decision: Sendable {
        /// Produce the message built from this (each part `nil` where the request's own stays).
        case produce(WorkflowServiceRequest)
        /// An `exit` node answered: produce nothing.
        case exit(WorkflowResponse)
    }

    // MARK: - Phases

    /// Runs the nodes before producing.
    public func runUntilProduce() async throws(WorkflowFailure) -> Decision {
        complete(implicit: .request, with: requestOutputs())
        complete(implicit: .vault, with: vaultOutputs())
        try await runPhase(1)
        if let exitResponse { return .exit(exitResponse) }
        return .produce(try serviceRequest())
    }

    /// Runs the nodes that follow producing, with what Kafka answered, and returns the answer the workflow gives the
    /// client (`nil` parts: the usual ones).
    public func finish(with serviceResponse: WorkflowServiceResponse) async throws(WorkflowFailure) -> WorkflowAnswer {
        guard workflow.hasSecondPhase else { return WorkflowAnswer() }
        var ports: [String: JSONValue] = ["status": .integer(serviceResponse.status), "headers": .object(HeaderMap.object(from: serviceResponse.headers)),
                                          "body": serviceResponse.body]
        ports["raw_body"] = .string(serviceResponse.body.jsonText)
        complete(implicit: .serviceResponse, with: .fields(ports, order: ["status", "headers", "body", "raw_body"]))
        try await runPhase(2)
        if let exitResponse {
            return WorkflowAnswer(status: exitResponse.status, headers: exitResponse.headers, body: (exitResponse.body, exitResponse.contentType))
        }
        return try answer()
    }

    /// The trace as Kong 3.11+ renders it (debug mode with `X-DataKit-Debug-Trace`).
    public func traceJSON() -> [UInt8] {
        trace.json(nodes: workflow.nodes.enumerated().filter { $0.element.implicit != .vault || !workflow.vault.isEmpty }
            .map { (index, node) in (node.name, node.typeName, status[index].rawValue, trace.errors[index]) })
    }

    /// Per user node, how it ended and how long it ran, for metrics.
    public func nodeReports() -> [WorkflowNodeReport] {
        workflow.nodes.indices.compactMap { index in
            let node = workflow.nodes[index]
            guard node.implicit == nil else { return nil }
            return WorkflowNodeReport(name: node.name, type: node.typeName, outcome: status[index].rawValue, duration: trace.durations[index])
        }
    }

    // MARK: - Scheduling

    private func isReady(_ index: Int, phase: Int) -> Bool {
        status[index] == .pending && waitingFor[index] == 0 && workflow.nodes[index].phase == phase
            && workflow.nodes[index].implicit != .serviceResponse
    }

    private enum ChildResult: Sendable {
        case finished(Int, Result<NodeOutputs, WorkflowNodeError>)
        case deadline
    }

    private func runPhase(_ phase: Int) async throws(WorkflowFailure) {
        let deadline = ContinuousClock.now + workflow.timeout
        let failure: WorkflowFailure? = await withTaskGroup(of: ChildResult.self) { group in
            var running = 0
            var timerStarted = false
            // Inline nodes may make others ready: keep going until nothing is ready.
            func startReady() -> WorkflowFailure? {
                var progress = true
                while progress {
                    progress = false
                    for index in workflow.nodes.indices where isReady(index, phase: phase) {
                        progress = true
                        let inputs: NodeInputs
                        switch gatherInputs(index) {
                        case .success(let gathered): inputs = gathered
                        case .failure(let error): return fail(index, error)
                        }
                        status[index] = .running
                        startedAt[index] = .now
                        trace.record(node: workflow.nodes[index], index: index, action: "run", values: inputValues(inputs, of: index))
                        if let answer = workflow.immediateWork[index]?(inputs, deadline) {
                            // Answered without waiting (a cache hit): no child task, no timer.
                            finish(index, answer)
                        } else if let work = workflow.asynchronousWork[index] {
                            running += 1
                            if !timerStarted {
                                timerStarted = true
                                group.addTask {
                                    try? await Task.sleep(until: deadline)
                                    return .deadline
                                }
                            }
                            group.addTask {
                                do throws(WorkflowNodeError) {
                                    return .finished(index, .success(try await work(inputs, deadline)))
                                } catch {
                                    return .finished(index, .failure(error))
                                }
                            }
                        } else {
                            switch runInline(index, inputs) {
                            case .success(let produced): finish(index, produced)
                            case .failure(let error): return fail(index, error)
                            }
                            if exitResponse != nil { return nil }
                        }
                    }
                }
                return nil
            }
            if let failure = startReady() { group.cancelAll(); cancelRunning(); return failure }
            if exitResponse != nil { group.cancelAll(); cancelRunning(); return nil }
            while running > 0, let result = await group.next() {
                switch result {
                case .deadline:
                    guard running > 0 else { continue }
                    group.cancelAll()
                    let pending = pendingNodes(phase: phase)
                    cancelRunning()
                    return .timedOut(pending: pending, after: workflow.timeout)
                case .finished(let index, let outcome):
                    running -= 1
                    switch outcome {
                    case .success(let produced): finish(index, produced)
                    case .failure(let error):
                        // A call or jq run that gave up because the deadline came is the deadline, not a node failure.
                        if ContinuousClock.now >= deadline {
                            group.cancelAll()
                            let pending = pendingNodes(phase: phase)
                            cancelRunning()
                            return .timedOut(pending: pending, after: workflow.timeout)
                        }
                        let failure = fail(index, error)
                        group.cancelAll()
                        cancelRunning()
                        if let response = error.response {
                            // The node says how the client is answered (a request-callout's error policy).
                            exitResponse = response
                            return nil
                        }
                        return failure
                    }
                    if let failure = startReady() { group.cancelAll(); cancelRunning(); return failure }
                    if exitResponse != nil { group.cancelAll(); cancelRunning(); return nil }
                }
            }
            group.cancelAll()
            return nil
        }
        if let failure { throw failure }
    }

    /// The nodes of `phase` that have not finished, for the deadline's message.
    private func pendingNodes(phase: Int) -> [String] {
        workflow.nodes.indices.filter { (status[$0] == .pending || status[$0] == .running) && workflow.nodes[$0].phase == phase
            && workflow.nodes[$0].implicit == nil }.map { workflow.nodes[$0].name }
    }

    private func cancelRunning() {
        for index in workflow.nodes.indices where status[index] == .running {
            status[index] = .canceled
            trace.record(node: workflow.nodes[index], index: index, action: "cancel", duration: startedAt[index].map { .now - $0 })
        }
    }

    private func finish(_ index: Int, _ produced: NodeOutputs) {
        outputs[index] = produced
        status[index] = .complete
        let duration = startedAt[index].map { ContinuousClock.now - $0 }
        trace.durations[index] = duration
        trace.record(node: workflow.nodes[index], index: index, action: "complete", values: outputValues(index, produced), duration: duration)
        release(index)
    }

    /// Marks the dependents of a finished (or skipped) node as one input closer to ready.
    private func release(_ index: Int) {
        for dependent in workflow.nodes[index].dependents { waitingFor[dependent] -= 1 }
    }

    private func fail(_ index: Int, _ error: WorkflowNodeError) -> WorkflowFailure {
        status[index] = .error
        let duration = startedAt[index].map { ContinuousClock.now - $0 }
        trace.durations[index] = duration
        // The message goes to the client (debug), the log and the trace: a vault value in it (jq quotes values in its
        // errors) is masked.
        let message = trace.redact(error.description)
        trace.errors[index] = message
        var values = [WorkflowTrace.Value(key: nil, type: "error", value: .string(message))]
        if let partial = error.partialOutputs { values += outputValues(index, partial) }
        trace.record(node: workflow.nodes[index], index: index, action: "fail", values: values, duration: duration)
        let node = workflow.nodes[index]
        return .nodeFailed(WorkflowNodeReference(index: node.index, name: node.name, type: node.typeName), message: message)
    }

    /// Marks a node skipped by a branch, and the fact that its dependents need not wait for it.
    private func skip(_ index: Int) {
        guard status[index] == .pending else { return }
        status[index] = .skipped
        trace.record(node: workflow.nodes[index], index: index, action: "skip")
        release(index)
    }

    private func complete(implicit: ImplicitNode, with produced: NodeOutputs) {
        guard let index = workflow.implicitIndex[implicit] else { return }
        status[index] = .running
        startedAt[index] = .now
        trace.record(node: workflow.nodes[index], index: index, action: "run", values: [])
        finish(index, produced)
    }

    // MARK: - Values

    private func requestOutputs() -> NodeOutputs {
        var ports: [String: JSONValue] = [
            "headers": .object(HeaderMap.object(from: request.headers)), "query": .object(request.query), "path": .string(request.path),
            "raw_path": .string(request.rawPath), "method": .string(request.method), "scheme": .string(request.scheme),
            "version": .string(request.version), "port": .integer(request.port),
        ]
        ports["body"] = request.bodyValue
        return .fields(ports, order: ["body", "headers", "query", "path", "raw_path", "method", "scheme", "version", "port"])
    }

    private func vaultOutputs() -> NodeOutputs {
        var ports: [String: JSONValue] = [:]
        for (name, secret) in workflow.vault { ports[name] = .string(secret.current()) }
        return .fields(ports, order: workflow.vault.map(\.name))
    }

    /// The value a binding reads from its source (`nil` when the source was skipped or produced nothing there).
    private func value(of binding: Binding) -> JSONValue? {
        guard let produced = outputs[binding.source] else { return nil }
        guard let port = binding.sourcePort else { return produced.whole }
        return produced.ports[port]
    }

    private func gatherInputs(_ index: Int) -> Result<NodeInputs, WorkflowNodeError> {
        var inputs = NodeInputs()
        let node = workflow.nodes[index]
        for binding in node.bindings {
            let raw = value(of: binding)
            let from = binding.sourcePort.map { "\(workflow.nodes[binding.source].name).\($0)" } ?? workflow.nodes[binding.source].name
            switch binding.target {
            case .whole:
                switch binding.type.accept(raw) {
                case .success(let accepted): inputs.whole = accepted
                case .failure(let error): return .failure(WorkflowNodeError("invalid input from \(from): \(error)"))
                }
            case .port(let port):
                switch binding.type.accept(raw) {
                case .success(let accepted): inputs.ports[port] = accepted
                case .failure(let error): return .failure(WorkflowNodeError("invalid value for input '\(port)' from \(from): \(error)"))
                }
            case .spread:
                guard let raw else { continue }
                guard let object = raw.objectValue else {
                    return .failure(WorkflowNodeError("invalid input from \(from): expected an object with \(node.schema.inputs.keys.sorted().joined(separator: ", ")), got \(raw.datakitTypeName)"))
                }
                for (key, member) in object {
                    guard let type = node.schema.inputs[key] else { continue }
                    switch type.accept(member) {
                    case .success(let accepted): inputs.ports[key] = accepted
                    case .failure(let error): return .failure(WorkflowNodeError("invalid value for input '\(key)' from \(from): \(error)"))
                    }
                }
            }
        }
        return .success(inputs)
    }

    // MARK: - Inline nodes

    private func runInline(_ index: Int, _ inputs: NodeInputs) -> Result<NodeOutputs, WorkflowNodeError> {
        let node = workflow.nodes[index]
        if node.implicit != nil {
            // service_request and response only gather their inputs; they are read when the phase ends.
            return .success(NodeOutputs(whole: nil, ports: inputs.ports))
        }
        switch node.settings {
        case .static(let values)?:
            var ports: [String: JSONValue] = [:]
            for (key, value) in values { ports[key] = value }
            return .success(NodeOutputs(whole: .object(values), ports: ports))
        case .exit(let statusCode, _)?:
            return response(status: statusCode, inputs: inputs).map { response in
                exitResponse = response
                return NodeOutputs()
            }
        case .branch(let then, let otherwise)?:
            guard case .bool(let condition)? = inputs.whole else {
                return .failure(WorkflowNodeError("branch input must be a boolean, got \(inputs.whole?.datakitTypeName ?? "nil")"))
            }
            let skipped = condition ? otherwise : then
            let taken = Set(condition ? then : otherwise)
            for name in skipped where !taken.contains(name) {
                if let other = workflow.nodes.firstIndex(where: { $0.name == name && $0.implicit == nil }) { skip(other) }
            }
            return .success(NodeOutputs(whole: .bool(condition), ports: [condition ? "then" : "else": .bool(condition)]))
        case .property(let settings)?:
            return property(settings, inputs: inputs, connected: !node.bindings.isEmpty)
        case .cache(let ttl, _)?:
            return cache(ttl: ttl, inputs: inputs)
        case .handlebars(let template, let contentType)?:
            let names = workflow.namedInputs[index] ?? []
            let context = names.isEmpty ? (inputs.whole ?? .null) : inputs.object(order: names)
            let text: String
            do throws(HandlebarsRenderError) {
                text = try template.render(context)
            } catch {
                return .failure(WorkflowNodeError(error.description))
            }
            guard BodyCodec.isJSON(contentType) else { return .success(NodeOutputs(whole: .string(text))) }
            var copy = text
            guard let value = copy.withUTF8({ try? JSONParser.parse(UnsafeRawBufferPointer($0)) }) else {
                return .failure(WorkflowNodeError("the template rendered invalid JSON for content_type \(contentType)"))
            }
            return .success(NodeOutputs(whole: value))
        case .xmlToJSON(let options)?:
            guard case .string(let text)? = inputs.whole else {
                return .failure(WorkflowNodeError("xml_to_json expects an XML document as a string, got \(inputs.whole?.datakitTypeName ?? "nil")"))
            }
            do throws(XMLConversionError) {
                return .success(NodeOutputs(whole: try XMLConversion.json(fromXML: Array(text.utf8), options: options)))
            } catch {
                return .failure(WorkflowNodeError(error.description))
            }
        case .upstream(let settings)?:
            return .success(RequestCalloutNode.upstream(settings, inputs: inputs))
        case .jsonToXML(let options)?:
            guard let value = inputs.whole else { return .failure(WorkflowNodeError("json_to_xml has no input value")) }
            do throws(XMLConversionError) {
                return .success(NodeOutputs(whole: .string(String(decoding: try XMLConversion.xml(from: value, options: options), as: UTF8.self))))
            } catch {
                return .failure(WorkflowNodeError(error.description))
            }
        default:
            return .failure(WorkflowNodeError("node type \(node.typeName) has no inline behaviour"))
        }
    }

    private func property(_ settings: PropertySettings, inputs: NodeInputs, connected: Bool) -> Result<NodeOutputs, WorkflowNodeError> {
        let json = settings.contentType == "application/json"
        if connected {
            guard var value = inputs.whole, value != .null else {
                if settings.nonNil { return .failure(WorkflowNodeError("property \(settings.name): the value to set is nil")) }
                properties[settings.property] = nil
                assignedProperties.insert(settings.property)
                return .success(NodeOutputs())
            }
            if json { value = .string(value.jsonText) }
            switch settings.property.validate(value) {
            case .success(let valid):
                properties[settings.property] = valid
                assignedProperties.insert(settings.property)
                return .success(NodeOutputs(whole: valid))
            case .failure(let error): return .failure(WorkflowNodeError("property \(settings.name): \(error)"))
            }
        }
        var value = properties[settings.property]
        if json, case .string(let text)? = value {
            var copy = text
            value = copy.withUTF8 { try? JSONParser.parse(UnsafeRawBufferPointer($0)) } ?? value
        }
        if settings.nonNil, value == nil || value == .null {
            return .failure(WorkflowNodeError("property \(settings.name) has no value"))
        }
        return .success(NodeOutputs(whole: value))
    }

    /// A `cache` node: SET when `data` is not null (for the `ttl` input, else the node's `ttl`, else 60 s), else GET.
    private func cache(ttl: Int?, inputs: NodeInputs) -> Result<NodeOutputs, WorkflowNodeError> {
        guard case .memory(let cache)? = workflow.cache else { return .failure(WorkflowNodeError("no memory cache is configured (resources.cache)")) }
        guard case .string(let key)? = inputs.ports["key"], !key.isEmpty else {
            return .failure(WorkflowNodeError("the cache key is missing"))
        }
        let order = ["hit", "miss", "stored", "data"]
        if let data = inputs.ports["data"], data != .null {
            let seconds = inputs.ports["ttl"]?.numberValue?.int64.flatMap { Int(exactly: $0) } ?? ttl ?? 60
            let stored = seconds > 0 && cache.store(data, for: key, ttl: .seconds(seconds))
            return .success(.fields(["hit": .bool(false), "miss": .bool(false), "stored": .bool(stored), "data": data], order: order))
        }
        if let value = cache.value(for: key) {
            return .success(.fields(["hit": .bool(true), "miss": .bool(false), "stored": .bool(false), "data": value], order: order))
        }
        return .success(.fields(["hit": .bool(false), "miss": .bool(true), "stored": .bool(false)], order: order))
    }

    /// The response an exit node (or the response node) describes.
    private func response(status: Int, inputs: NodeInputs) -> Result<WorkflowResponse, WorkflowNodeError> {
        var headers: [(name: String, value: String)] = []
        if let map = inputs.ports["headers"]?.objectValue {
            switch HeaderMap.pairs(from: map) {
            case .success(let pairs): headers = pairs
            case .failure(let error): return .failure(error)
            }
        }
        var body: [UInt8] = []
        var contentType: String?
        if let value = inputs.ports["body"] {
            let encoded = BodyCodec.encode(value)
            body = encoded.bytes
            contentType = encoded.contentType
        }
        if let named = headers.first(where: { $0.name.lowercased() == "content-type" }) { contentType = named.value }
        headers.removeAll { $0.name.lowercased() == "content-type" || $0.name.lowercased() == "content-length" }
        return .success(WorkflowResponse(status: status, headers: headers, body: body, contentType: contentType))
    }

    // MARK: - Results of the phases

    private func serviceRequest() throws(WorkflowFailure) -> WorkflowServiceRequest {
        var result = WorkflowServiceRequest()
        if let index = workflow.implicitIndex[.serviceRequest], let gathered = outputs[index] {
            let ports = gathered.ports
            var headers: [(name: String, value: String)]?
            if let map = ports["headers"]?.objectValue {
                switch HeaderMap.merge(request.headers, with: map) {
                case .success(let pairs): headers = pairs
                case .failure(let error): throw .invalidServiceRequest("service_request.headers: \(error)")
                }
            }
            if let body = ports["body"] {
                let form = (headers ?? request.headers).contains {
                    $0.name.lowercased() == "content-type" && $0.value.lowercased().hasPrefix("application/x-www-form-urlencoded")
                }
                let encoded = BodyCodec.encode(body, formURLEncoded: form)
                result.body = (encoded.bytes, encoded.contentType)
            }
            result.headers = headers
            if let query = ports["query"]?.objectValue {
                var pairs: [(name: String, value: String?)] = []
                for (name, value) in query {
                    for element in value.arrayValue ?? [value] {
                        switch element {
                        case .null, .bool(true): pairs.append((name, nil))  // a name without a value, as nginx writes `true`
                        case .bool(false): continue
                        case .string(let text): pairs.append((name, text))
                        case .number(let number): pairs.append((name, number.text))
                        default: pairs.append((name, element.jsonText))
                        }
                    }
                }
                result.query = pairs
            }
        }
        if assignedProperties.contains(.kafkaTopic), let topic = properties[.kafkaTopic] {
            result.topics = topic.arrayValue?.compactMap(\.stringValue) ?? topic.stringValue.map { [$0] }
        }
        if assignedProperties.contains(.kafkaKey), case .string(let key)? = properties[.kafkaKey] { result.key = key }
        if assignedProperties.contains(.kafkaHeaders), let map = properties[.kafkaHeaders]?.objectValue {
            switch HeaderMap.pairs(from: map) {
            case .success(let pairs): result.recordHeaders = pairs
            case .failure(let error): throw .invalidServiceRequest("kafka.headers: \(error)")
            }
        }
        return result
    }

    private func answer() throws(WorkflowFailure) -> WorkflowAnswer {
        var answer = WorkflowAnswer()
        if assignedProperties.contains(.responseStatus), let status = properties[.responseStatus]?.numberValue?.int64 {
            answer.status = Int(status)
        }
        guard let index = workflow.implicitIndex[.response], let gathered = outputs[index] else { return answer }
        let inputs = NodeInputs(whole: nil, ports: gathered.ports)
        guard inputs.ports["body"] != nil || inputs.ports["headers"] != nil else { return answer }
        switch response(status: answer.status ?? 200, inputs: inputs) {
        case .success(let response):
            if inputs.ports["headers"] != nil { answer.headers = response.headers }
            if inputs.ports["body"] != nil { answer.body = (response.body, response.contentType) }
        case .failure(let error): throw .invalidServiceRequest("response: \(error)")
        }
        return answer
    }

    // MARK: - Trace values

    private func inputValues(_ inputs: NodeInputs, of index: Int) -> [WorkflowTrace.Value] {
        var values: [WorkflowTrace.Value] = []
        if let whole = inputs.whole { values.append(.init(key: nil, type: whole.datakitTypeName, value: whole)) }
        // The key of jwt_sign and jwt_verify is a secret (a private key, an HMAC secret) wherever it comes from.
        let maskedKey: String? = switch workflow.nodes[index].settings { case .jwtSign?, .jwtVerify?: "key"; default: nil }
        for (key, value) in inputs.ports.sorted(by: { $0.key < $1.key }) {
            values.append(.init(key: key, type: value.datakitTypeName, value: key == maskedKey ? .string(WorkflowTrace.mask) : value))
        }
        return values
    }

    private func outputValues(_ index: Int, _ produced: NodeOutputs) -> [WorkflowTrace.Value] {
        let node = workflow.nodes[index]
        let masked = node.implicit == .vault
        if node.schema.outputs.isEmpty || produced.ports.isEmpty {
            guard let whole = produced.whole else { return [] }
            return [.init(key: nil, type: whole.datakitTypeName, value: masked ? .string(WorkflowTrace.mask) : whole)]
        }
        let order = node.schema.outputOrder.isEmpty ? produced.ports.keys.sorted() : node.schema.outputOrder
        return order.compactMap { key in
            guard let value = produced.ports[key] else { return nil }
            return .init(key: key, type: node.schema.outputs[key]?.rawValue ?? value.datakitTypeName, value: masked ? .string(WorkflowTrace.mask) : value)
        }
    }
}

/// How a run failed.
public enum WorkflowFailure: Error, Sendable, CustomStringConvertible {
    /// A node failed; the others were cancelled.
    case nodeFailed(WorkflowNodeReference, message: String)
    /// The phase's deadline passed with these nodes unfinished.
    case timedOut(pending: [String], after: Duration)
    /// What the nodes gave `service_request` or `response` cannot make a message or an answer.
    case invalidServiceRequest(String)

    public var description: String {
        switch self {
        case .nodeFailed(let node, let message): "node #\(node.index.map(String.init) ?? "-") (\(node.name)) failed with error: \"\(message)\""
        case .timedOut(let pending, let after):
            "the workflow did not finish within \(after.milliseconds) ms; pending: \(pending.isEmpty ? "none" : pending.joined(separator: ", "))"
        case .invalidServiceRequest(let reason): reason
        }
    }
}

/// A node as Kong's error body names it.
public struct WorkflowNodeReference: Sendable, Hashable {
    /// 1-based position in `nodes`.
    public var index: Int?
    public var name: String
    public var type: String
}

/// What the workflow says of the answer to the client; `nil` parts keep the usual ones.
public struct WorkflowAnswer: Sendable {
    public var status: Int?
    public var headers: [(name: String, value: String)]?
    public var body: (bytes: [UInt8], contentType: String?)?

    public init(status: Int? = nil, headers: [(name: String, value: String)]? = nil, body: (bytes: [UInt8], contentType: String?)? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// How one node of one run ended, for metrics.
public struct WorkflowNodeReport: Sendable {
    public var name: String
    public var type: String
    /// `NODE_COMPLETE`, `NODE_ERROR`, `NODE_CANCELED`, `NODE_SKIPPED` or `NODE_PENDING`.
    public var outcome: String
    public var duration: Duration?
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
    var secondsDouble: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
