import Callout
import JQ
import JSON
import Redis
import Secrets

/// A compiled workflow: the user's nodes checked, connected and ordered once at start-up (Datakit's own design),
/// then run for each request by a ``WorkflowExecution``.
public final class Workflow: Sendable {
    let nodes: [GraphNode]
    /// The work of each `call`, `jq`, JWT, request-callout and Redis `cache` node, which runs as a child task; other
    /// nodes run inline.
    let asynchronousWork: [Int: AsynchronousNodeWork]
    /// For some asynchronous nodes, a check that can answer at once without a child task (a request-callout whose
    /// response is in the memory cache); `nil` from it: run the asynchronous work.
    let immediateWork: [Int: ImmediateNodeWork]
    public let debug: Bool
    /// How long each phase of a run may take (before and after producing).
    public let timeout: Duration
    let vault: [(name: String, secret: Secret)]
    let vaultValues: Set<String>
    /// Whether anything runs after producing (a node fed by `service_response`, the `response` node's inputs, or a
    /// status set through a property); when not, the caller need not describe what Kafka answered.
    public let hasSecondPhase: Bool
    let readsServiceResponse: Bool
    /// The indices of the implicit nodes.
    let implicitIndex: [ImplicitNode: Int]
    /// The names of the `inputs` of handlebars nodes, in the order written (their context object).
    let namedInputs: [Int: [String]]
    /// The cache of `cache` nodes (`resources.cache`), shared by the workflow's requests.
    let cache: WorkflowCache?

    /// Compiles `definition`; `services` builds the nodes that need outside resources (jq programs, the HTTP client).
    ///
    /// - Parameter defaultTimeout: the deadline of each phase when the workflow sets no `timeout`.
    /// - Throws: ``WorkflowConfigurationError`` with every problem and its key path.
    public init(_ definition: WorkflowDefinition, services: WorkflowServices, defaultTimeout: Duration) throws(WorkflowConfigurationError) {
        let nodes = try GraphBuilder.build(definition)
        var work: [Int: AsynchronousNodeWork] = [:]
        var immediate: [Int: ImmediateNodeWork] = [:]
        var namedInputs: [Int: [String]] = [:]
        var issues: [WorkflowConfigurationError.Issue] = []
        var client: CalloutClient?
        var cache: WorkflowCache?
        switch definition.cacheResource {
        case .memory(let limits)?: cache = .memory(MemoryCache(limits: limits))
        case .redis(let settings)?:
            do throws(RedisError) {
                cache = .redis(try services.redisCache(settings, caCertificateFiles: definition.caCertificateFiles))
            } catch {
                issues.append(.init(path: "resources.cache.redis", reason: error.description))
            }
        case nil: break
        }
        if nodes.contains(where: { switch $0.settings { case .call?, .callout?: true; default: false } }) {
            do throws(CalloutError) {
                client = try services.calloutClient(caCertificateFiles: definition.caCertificateFiles)
            } catch {
                issues.append(.init(path: "ca_certificates", reason: error.description))
            }
        }
        for (index, node) in nodes.enumerated() {
            switch node.settings {
            case .call(let call)?:
                guard let client else { continue }
                work[index] = CallNode(settings: call, policy: definition.callDestinations, client: client).work
            case .callout(let callout)?:
                guard let client else { continue }
                let calloutNode = RequestCalloutNode(settings: callout, policy: definition.callDestinations, client: client, cache: cache)
                work[index] = calloutNode.work
                immediate[index] = calloutNode.cachedAnswer
            case .jq(let program)?:
                let named = definition.nodes.first { $0.index == node.index }?.inputs.map(\.port) ?? []
                work[index] = JQNode(program: program, namedInputs: named, services: services).work
            case .jwtDecode?: work[index] = JWTNodes.decode()
            case .jwtSign(let settings)?: work[index] = JWTNodes.sign(settings)
            case .jwtVerify(let settings)?: work[index] = JWTNodes.verify(settings)
            case .cache(let ttl, let bypassOnError)?:
                guard case .redis(let redis)? = cache else { continue }
                work[index] = RedisCacheNode(ttl: ttl, bypassOnError: bypassOnError, cache: redis).work
            case .handlebars?:
                namedInputs[index] = definition.nodes.first { $0.index == node.index }?.inputs.map(\.port) ?? []
            default: continue
            }
        }
        guard issues.isEmpty else { throw WorkflowConfigurationError(issues: issues) }
        self.nodes = nodes
        asynchronousWork = work
        immediateWork = immediate
        self.namedInputs = namedInputs
        self.cache = cache
        debug = definition.debug
        timeout = definition.timeout ?? defaultTimeout
        vault = definition.vault
        vaultValues = Set(definition.vault.map { $0.secret.value }.filter { !$0.isEmpty })
        var implicitIndex: [ImplicitNode: Int] = [:]
        for (index, node) in nodes.enumerated() { if let implicit = node.implicit { implicitIndex[implicit] = index } }
        self.implicitIndex = implicitIndex
        let serviceResponse = implicitIndex[.serviceResponse] ?? 0
        let response = implicitIndex[.response] ?? 0
        readsServiceResponse = nodes[serviceResponse].dependents.contains { nodes[$0].implicit == nil }
        hasSecondPhase = readsServiceResponse || !nodes[response].bindings.isEmpty
            || nodes.contains { $0.phase == 2 && $0.implicit == nil }
            || nodes.contains { if case .property(let settings)? = $0.settings { settings.property == .responseStatus } else { false } }
    }

    /// Starts a run for one request.
    public func execution(for request: WorkflowRequest) -> WorkflowExecution {
        WorkflowExecution(workflow: self, request: request)
    }

    /// The user nodes in configuration order: name and type, for metrics.
    public var nodeNames: [(name: String, type: String)] {
        nodes.filter { $0.implicit == nil }.map { ($0.name, $0.typeName) }
    }
}

/// What a `call` or `jq` node does with its inputs, off the caller's task.
typealias AsynchronousNodeWork = @Sendable (NodeInputs, ContinuousClock.Instant) async throws(WorkflowNodeError) -> NodeOutputs

/// An answer an asynchronous node can give at once, or `nil`.
typealias ImmediateNodeWork = @Sendable (NodeInputs, ContinuousClock.Instant) -> NodeOutputs?

/// The inputs a node received: its node-wise value and its named ports.
struct NodeInputs: Sendable {
    var whole: JSONValue?
    var ports: [String: JSONValue] = [:]

    /// The named ports as one object (jq's `inputs`), in `order`.
    func object(order: [String]) -> JSONValue {
        .object(JSONObject(order.map { ($0, ports[$0] ?? .null) }))
    }
}

/// The values a node produced: per named port, and its node-wise value.
struct NodeOutputs: Sendable {
    var whole: JSONValue?
    var ports: [String: JSONValue] = [:]

    /// Outputs of a node with named ports: the whole value is the object of them, in `order`.
    static func fields(_ ports: [String: JSONValue], order: [String]) -> NodeOutputs {
        NodeOutputs(whole: .object(JSONObject(order.compactMap { key in ports[key].map { (key, $0) } })), ports: ports)
    }
}

/// Why a node failed, in words the client or the trace may see.
public struct WorkflowNodeError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// Outputs known at the time of the failure (a call's status and headers), for the trace.
    var partialOutputs: NodeOutputs?
    /// The answer the failure gives the client instead of the workflow error (a request-callout's
    /// `error_response_code` and `error_response_msg`); the run ends as an `exit` node would end it.
    var response: WorkflowResponse?

    init(_ description: String, partialOutputs: NodeOutputs? = nil, response: WorkflowResponse? = nil) {
        self.description = description
        self.partialOutputs = partialOutputs
        self.response = response
    }
}
