import JSON

/// The implicit nodes every workflow has (Datakit's reserved names).
enum ImplicitNode: String, CaseIterable {
    case request, serviceRequest = "service_request", serviceResponse = "service_response", response, vault
}

/// A node's ports: named inputs and outputs with their types, and whether it takes and gives a whole value (`$self`).
struct PortSchema {
    var inputs: [String: WorkflowDataType] = [:]
    var outputs: [String: WorkflowDataType] = [:]
    /// The type of the node-wise input, for nodes that take one value (jq, property, branch).
    var wholeInput: WorkflowDataType?
    /// The type of the node-wise output (an `object` of the named outputs for nodes that have fields).
    var wholeOutput: WorkflowDataType?
    /// jq's `inputs` accept any port name.
    var anyInputName = false
    /// The order in which inputs and outputs are listed (the trace and errors list them in this order).
    var outputOrder: [String] = []

    static func of(_ settings: NodeSettings) -> PortSchema {
        switch settings {
        case .call:
            return PortSchema(
                inputs: ["body": .any, "headers": .map, "query": .map, "url": .string, "http_proxy": .string, "https_proxy": .string,
                         "proxy_auth_username": .string, "proxy_auth_password": .string],
                outputs: ["body": .any, "headers": .map, "status": .number, "raw_body": .string],
                wholeOutput: .object, outputOrder: ["body", "headers", "status", "raw_body"])
        case .jq: return PortSchema(wholeInput: .any, wholeOutput: .any, anyInputName: true)
        case .exit: return PortSchema(inputs: ["body": .any, "headers": .map])
        case .property: return PortSchema(wholeInput: .any, wholeOutput: .any)
        case .static(let values):
            var outputs: [String: WorkflowDataType] = [:]
            for (key, value) in values { outputs[key] = WorkflowDataType(staticValue: value) }
            return PortSchema(outputs: outputs, wholeOutput: .object, outputOrder: values.keys)
        case .branch: return PortSchema(outputs: ["then": .any, "else": .any], wholeInput: .any, wholeOutput: .any, outputOrder: ["then", "else"])
        case .handlebars: return PortSchema(wholeInput: .any, wholeOutput: .any, anyInputName: true)
        case .xmlToJSON: return PortSchema(wholeInput: .any, wholeOutput: .any)
        case .jsonToXML: return PortSchema(wholeInput: .any, wholeOutput: .string)
        case .callout:
            return PortSchema(outputs: ["request": .object, "response": .object], wholeOutput: .object, anyInputName: true,
                              outputOrder: ["request", "response"])
        case .upstream:
            return PortSchema(outputs: ["body": .any, "headers": .map, "query": .map], wholeOutput: .object, anyInputName: true,
                              outputOrder: ["body", "headers", "query"])
        case .jwtDecode, .jwtSign, .jwtVerify: return .jwt(settings)
        case .cache:
            return PortSchema(inputs: ["key": .string, "ttl": .number, "data": .any],
                              outputs: ["hit": .any, "miss": .any, "stored": .any, "data": .any], wholeOutput: .object,
                              outputOrder: ["hit", "miss", "stored", "data"])
        }
    }

    static func of(_ implicit: ImplicitNode, vault: [String]) -> PortSchema {
        switch implicit {
        case .request:
            let order = ["body", "headers", "query", "path", "raw_path", "method", "scheme", "version", "port"]
            return PortSchema(outputs: ["body": .any, "headers": .map, "query": .map, "path": .string, "raw_path": .string, "method": .string,
                                        "scheme": .string, "version": .string, "port": .number],
                              wholeOutput: .object, outputOrder: order)
        case .serviceRequest: return PortSchema(inputs: ["body": .any, "headers": .map, "query": .map])
        case .serviceResponse:
            return PortSchema(outputs: ["status": .number, "headers": .map, "body": .any, "raw_body": .string], wholeOutput: .object,
                              outputOrder: ["status", "headers", "body", "raw_body"])
        case .response: return PortSchema(inputs: ["body": .any, "headers": .map])
        case .vault:
            return PortSchema(outputs: Dictionary(vault.map { ($0, .string) }, uniquingKeysWith: { first, _ in first }), wholeOutput: .object,
                              outputOrder: vault)
        }
    }
}

/// Where a connection delivers its value in the target node.
enum BindingTarget: Hashable {
    /// The node-wise input (jq, property, branch).
    case whole
    case port(String)
    /// A node-wise connection into a node with named inputs, from a value whose members fill them (checked at run time).
    case spread
}

/// One resolved connection: which output feeds which input, and the type the input expects.
struct Binding {
    var source: Int
    /// `nil`: the source's whole output.
    var sourcePort: String?
    var target: BindingTarget
    var type: WorkflowDataType
}

/// A node of the compiled graph (user nodes first, in configuration order, then the implicit ones).
struct GraphNode {
    var name: String
    /// Kong's type name (`call`, `request`...).
    var typeName: String
    /// The 1-based position in `nodes` for user nodes; `nil` for implicit ones.
    var index: Int?
    var settings: NodeSettings?
    var implicit: ImplicitNode?
    var schema: PortSchema
    var bindings: [Binding] = []
    /// Nodes that wait for this one (data or `then`/`else`), without repeats.
    var dependents: [Int] = []
    var dependencyCount = 0
    /// 1: runs before the message is produced; 2: after (it depends on `service_response`).
    var phase = 1
    /// The configuration path of the node, for errors.
    var path: String

    var label: String { index.map { "node #\($0) (\(name))" } ?? "node \(name)" }
}

/// Builds the graph from a definition: resolves labels, checks connections, ports and types, orders the nodes.
struct GraphBuilder {
    private(set) var nodes: [GraphNode] = []
    private var byName: [String: Int] = [:]
    private var issues: [WorkflowConfigurationError.Issue] = []

    static func build(_ definition: WorkflowDefinition) throws(WorkflowConfigurationError) -> [GraphNode] {
        var builder = GraphBuilder()
        builder.addNodes(definition)
        builder.connect(definition)
        builder.addBranchDependencies(definition)
        builder.order()
        guard builder.issues.isEmpty else { throw WorkflowConfigurationError(issues: builder.issues) }
        return builder.nodes
    }

    private mutating func issue(_ path: String, _ reason: String) { issues.append(.init(path: path, reason: reason)) }

    private mutating func addNodes(_ definition: WorkflowDefinition) {
        for (position, node) in definition.nodes.enumerated() {
            let path = "nodes[\(position)]"
            if ImplicitNode(rawValue: node.name) != nil {
                issue("\(path).name", "in node `\(node.name)` of type `\(node.type.rawValue)`: cannot use reserved node name")
                continue
            }
            if byName[node.name] != nil {
                issue("\(path).name", "multiple definitions of node `\(node.name)`")
                continue
            }
            byName[node.name] = nodes.count
            nodes.append(GraphNode(name: node.name, typeName: node.type.rawValue, index: node.index, settings: node.settings,
                                   schema: .of(node.settings), path: path))
        }
        let vaultNames = definition.vault.map(\.name)
        for implicit in ImplicitNode.allCases {
            byName[implicit.rawValue] = nodes.count
            nodes.append(GraphNode(name: implicit.rawValue, typeName: implicit.rawValue, implicit: implicit,
                                   schema: .of(implicit, vault: vaultNames), path: implicit.rawValue))
        }
    }

    /// A label split into its node and port (`NODE` or `NODE.port`; the port may hold dots, as `vault.my.key` does not:
    /// the first dot separates).
    private func split(_ label: String) -> (node: String, port: String?) {
        guard let dot = label.firstIndex(of: ".") else { return (label, nil) }
        return (String(label[..<dot]), String(label[label.index(after: dot)...]))
    }

    private struct Connection {
        var source: Int
        var sourcePort: String?
        var target: Int
        var targetPort: String?
        var path: String
    }

    private mutating func connect(_ definition: WorkflowDefinition) {
        var connections: [Connection] = []
        for (position, node) in definition.nodes.enumerated() {
            guard let own = byName[node.name], nodes[own].index == node.index else { continue }
            let path = "nodes[\(position)]"
            func resolve(_ label: String, at keyPath: String) -> (Int, String?)? {
                let (name, port) = split(label)
                guard let other = byName[name] else {
                    issue(keyPath, "unknown node in link: \(name)"
                          + Suggestion.didYouMean(name, among: Array(byName.keys)))
                    return nil
                }
                if other == own {
                    issue(keyPath, "node cannot connect to itself")
                    return nil
                }
                return (other, port)
            }
            // Each label as written: its key path, this node's port, and whether this node is the receiving end.
            var ends: [(label: String, keyPath: String, ownPort: String?, ownIsTarget: Bool)] = []
            if let label = node.input { ends.append((label, "\(path).input", nil, true)) }
            ends += node.inputs.map { ($0.label, "\(path).inputs.\($0.port)", $0.port, true) }
            if let label = node.output { ends.append((label, "\(path).output", nil, false)) }
            ends += node.outputs.map { ($0.label, "\(path).outputs.\($0.port)", $0.port, false) }
            for end in ends {
                guard let (other, otherPort) = resolve(end.label, at: end.keyPath) else { continue }
                connections.append(end.ownIsTarget
                    ? Connection(source: other, sourcePort: otherPort, target: own, targetPort: end.ownPort, path: end.keyPath)
                    : Connection(source: own, sourcePort: end.ownPort, target: other, targetPort: otherPort, path: end.keyPath))
            }
        }
        // Who feeds each input, to refuse a second connection into one input.
        var fedBy: [Int: [BindingTarget: (source: Int, sourcePort: String?)]] = [:]
        for connection in connections {
            for binding in resolve(connection) {
                let target = connection.target
                let existing = fedBy[target] ?? [:]
                if let previous = existing[binding.target] {
                    if previous.source == binding.source, previous.sourcePort == binding.sourcePort { continue }  // the same edge, written twice
                    conflict(connection, binding, with: previous)
                    continue
                }
                if binding.target == .spread, let other = existing.first(where: { if case .port = $0.key { true } else { false } }) {
                    conflict(connection, binding, with: other.value)
                    continue
                }
                if case .port = binding.target, let spread = existing[.spread] {
                    conflict(connection, binding, with: spread)
                    continue
                }
                fedBy[target, default: [:]][binding.target] = (binding.source, binding.sourcePort)
                nodes[target].bindings.append(binding)
                addDependency(from: binding.source, to: target)
            }
        }
    }

    private func describe(_ node: Int, _ port: String?) -> String {
        port.map { "\(nodes[node].name).\($0)" } ?? nodes[node].name
    }

    private func describe(_ node: Int, _ target: BindingTarget) -> String {
        if case .port(let port) = target { return "\(nodes[node].name).\(port)" }
        return nodes[node].name
    }

    private mutating func conflict(_ connection: Connection, _ binding: Binding, with previous: (source: Int, sourcePort: String?)) {
        issue(connection.path, "invalid connection (\"\(describe(binding.source, binding.sourcePort))\" -> \"\(describe(connection.target, binding.target))\"): "
              + "conflicts with existing connection (\"\(describe(previous.source, previous.sourcePort))\" -> \"\(describe(connection.target, binding.target))\")")
    }

    /// The bindings one written connection stands for (several when two nodes with fields connect node-wise).
    private mutating func resolve(_ connection: Connection) -> [Binding] {
        let source = nodes[connection.source]
        let target = nodes[connection.target]
        let edge = "(\"\(describe(connection.source, connection.sourcePort))\" -> \"\(describe(connection.target, connection.targetPort))\")"
        // The source side.
        var sourceType: WorkflowDataType
        if let port = connection.sourcePort {
            guard let type = source.schema.outputs[port] else {
                issue(connection.path, "invalid output port name \(source.name).\(port)"
                      + Suggestion.didYouMean(port, among: Array(source.schema.outputs.keys)))
                return []
            }
            sourceType = type
        } else {
            guard let type = source.schema.wholeOutput else {
                issue(connection.path, "invalid connection \(edge): node \(source.name) of type \(source.typeName) has no outputs")
                return []
            }
            sourceType = type
        }
        // The target side.
        if let port = connection.targetPort {
            guard let type = target.schema.inputs[port] ?? (target.schema.anyInputName ? .any : nil) else {
                issue(connection.path, "invalid input port name \(target.name).\(port)"
                      + Suggestion.didYouMean(port, among: Array(target.schema.inputs.keys)))
                return []
            }
            return typeChecked(Binding(source: connection.source, sourcePort: connection.sourcePort, target: .port(port), type: type),
                               from: sourceType, edge: edge, path: connection.path)
        }
        if let type = target.schema.wholeInput {
            return typeChecked(Binding(source: connection.source, sourcePort: connection.sourcePort, target: .whole, type: type),
                               from: sourceType, edge: edge, path: connection.path)
        }
        guard !target.schema.inputs.isEmpty else {
            issue(connection.path, "invalid connection \(edge): node \(target.name) of type \(target.typeName) has no inputs")
            return []
        }
        // Node-wise into a node with named inputs: field by field from a node with named outputs, else spread.
        if connection.sourcePort == nil, sourceType == .object {
            let common = source.schema.outputs.keys.filter { target.schema.inputs[$0] != nil }.sorted()
            guard !common.isEmpty else {
                issue(connection.path, "invalid connection \(edge): the nodes have no fields in common")
                return []
            }
            return common.flatMap { port in
                typeChecked(Binding(source: connection.source, sourcePort: port, target: .port(port), type: target.schema.inputs[port] ?? .any),
                            from: source.schema.outputs[port] ?? .any, edge: edge, path: connection.path)
            }
        }
        guard sourceType == .any || sourceType == .object || sourceType == .map else {
            issue(connection.path, "invalid connection \(edge): type mismatch: \(sourceType.rawValue) -> object")
            return []
        }
        return [Binding(source: connection.source, sourcePort: connection.sourcePort, target: .spread, type: .object)]
    }

    private mutating func typeChecked(_ binding: Binding, from sourceType: WorkflowDataType, edge: String, path: String) -> [Binding] {
        guard sourceType.connects(to: binding.type) else {
            issue(path, "invalid connection \(edge): type mismatch: \(sourceType.rawValue) -> \(binding.type.rawValue)")
            return []
        }
        return [binding]
    }

    private mutating func addDependency(from source: Int, to target: Int) {
        guard !nodes[source].dependents.contains(target) else { return }
        nodes[source].dependents.append(target)
        nodes[target].dependencyCount += 1
    }

    private mutating func addBranchDependencies(_ definition: WorkflowDefinition) {
        for (position, node) in definition.nodes.enumerated() {
            guard case .branch(let then, let otherwise) = node.settings, let own = byName[node.name] else { continue }
            for (key, names) in [("then", then), ("else", otherwise)] {
                for (offset, name) in names.enumerated() {
                    let path = "nodes[\(position)].\(key)[\(offset)]"
                    guard let other = byName[name], nodes[other].implicit == nil else {
                        issue(path, "unknown node '\(name)' in a branch" + Suggestion.didYouMean(name, among: definition.nodes.map(\.name)))
                        continue
                    }
                    guard other != own else {
                        issue(path, "a branch cannot list itself")
                        continue
                    }
                    addDependency(from: own, to: other)
                }
            }
        }
    }

    /// Checks that the nodes can be ordered (no cycle) and splits them into the phases around producing.
    private mutating func order() {
        guard let serviceRequest = byName[ImplicitNode.serviceRequest.rawValue],
              let serviceResponse = byName[ImplicitNode.serviceResponse.rawValue],
              let response = byName[ImplicitNode.response.rawValue] else { return }
        // Producing happens between the two: what follows service_response cannot feed service_request.
        addDependency(from: serviceRequest, to: serviceResponse)
        if let cycle = findCycle() {
            let names = cycle.map { nodes[$0].label }
            let first = cycle[0]
            issue(nodes[first].implicit == nil ? "\(nodes[first].path).name" : "nodes",
                  "invalid dependency (\(names[0]) -> \(names[1])): circular dependency (\(cycle.map { nodes[$0].name }.joined(separator: " -> ")))")
            return
        }
        // Phase 2: everything reachable from service_response.
        var stack = [serviceResponse]
        var seen = Set<Int>()
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            nodes[next].phase = 2
            stack.append(contentsOf: nodes[next].dependents)
        }
        nodes[serviceRequest].phase = 1
        nodes[response].phase = 2
    }

    /// A cycle as a list of nodes ending where it starts, or `nil`.
    private func findCycle() -> [Int]? {
        var state = Array(repeating: 0, count: nodes.count)  // 0 new, 1 on the path, 2 done
        var parent = Array(repeating: -1, count: nodes.count)
        for start in nodes.indices where state[start] == 0 {
            var stack: [(node: Int, next: Int)] = [(start, 0)]
            state[start] = 1
            while var top = stack.popLast() {
                let dependents = nodes[top.node].dependents
                if top.next < dependents.count {
                    let child = dependents[top.next]
                    top.next += 1
                    stack.append(top)
                    if state[child] == 1 {
                        var cycle = [child]
                        var walk = top.node
                        while walk != child, walk >= 0 {
                            cycle.append(walk)
                            walk = parent[walk]
                        }
                        cycle.append(child)
                        return Array(cycle.reversed())
                    }
                    if state[child] == 0 {
                        state[child] = 1
                        parent[child] = top.node
                        stack.append((child, 0))
                    }
                } else {
                    state[top.node] = 2
                }
            }
        }
        return nil
    }
}
