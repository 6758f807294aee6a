import Foundation
import JSON
import Secrets
import Workflow
import Yams

/// A route's `workflow:` (Kong Datakit's `config`) or `request_callout:` (Kong request-callout's `config`, compiled
/// onto the same engine), with the YAML it was read from for equality.
public struct RouteWorkflow: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case workflow
        case requestCallout = "request_callout"
    }

    public var definition: WorkflowDefinition
    public var kind: Kind
    /// The configuration as written, minus `resources.vault` (compared instead by its secrets).
    let source: JSONValue

    public init(definition: WorkflowDefinition, source: JSONValue, kind: Kind = .workflow) {
        self.definition = definition
        self.source = source
        self.kind = kind
    }

    public static func == (lhs: RouteWorkflow, rhs: RouteWorkflow) -> Bool {
        lhs.source == rhs.source && lhs.definition.vault.map(\.name) == rhs.definition.vault.map(\.name)
            && lhs.definition.vault.map(\.secret) == rhs.definition.vault.map(\.secret)
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(source) }

    /// How many nodes the user wrote.
    public var nodeCount: Int { definition.nodes.count }

    /// What `kbridge check` says of it: "workflow of 4 nodes", "request-callout of 2 callouts".
    public var summary: String {
        switch kind {
        case .workflow: return "workflow of \(nodeCount) node\(nodeCount == 1 ? "" : "s")"
        case .requestCallout:
            let callouts = definition.nodes.filter { $0.type == .callout }.count
            return "request-callout of \(callouts) callout\(callouts == 1 ? "" : "s")"
        }
    }
}

extension ConfigurationReader {
    /// Reads `workflow:`: the tree goes to the `Workflow` module, which checks it; its problems come back with a key
    /// path inside the workflow, placed here at the line and column of that key.
    func readWorkflow(_ node: Node, _ path: String) -> RouteWorkflow? {
        var vault: [(name: String, secret: Secret)] = []
        if let resources = node.mapping?["resources"], let vaultNode = resources.mapping?["vault"] {
            guard let entries = vaultNode.mapping else {
                issue(vaultNode, "\(path).resources.vault", "expected a mapping of names to secrets")
                return nil
            }
            for (keyNode, valueNode) in entries {
                guard let name = keyNode.scalar?.string, !name.isEmpty else {
                    issue(keyNode, "\(path).resources.vault", "vault entry names must be non-empty strings")
                    continue
                }
                if let secret = readSecret(valueNode, "\(path).resources.vault.\(name)") { vault.append((name, secret)) }
            }
        }
        let source = jsonValue(of: node, depth: 0, skippingVault: true)
        do {
            var definition = try WorkflowDefinition.parse(source, vault: vault)
            // CA files are read at start-up: check now that they are there, relative to this file.
            if let files = node.mapping?["ca_certificates"]?.sequence {
                definition.caCertificateFiles = files.enumerated().compactMap { readFile($1, "\(path).ca_certificates[\($0)]") }
            }
            return RouteWorkflow(definition: definition, source: source)
        } catch {
            for problem in error.issues {
                issue(Self.locate(problem.path, in: node) ?? node, "\(path).\(problem.path)", problem.reason)
            }
            return nil
        }
    }

    /// Reads `request_callout:` (Kong request-callout's `config`): the `Workflow` module compiles it onto the
    /// workflow engine. `{vault://env/NAME}` references anywhere in it (Kong marks `url` and the proxy credentials
    /// referenceable) are resolved here and masked in errors and traces.
    func readRequestCallout(_ node: Node, _ path: String) -> RouteWorkflow? {
        var vault: [(name: String, secret: Secret)] = []
        let written = jsonValue(of: node, depth: 0)
        let source = resolvingVaultReferences(written, in: node, path, into: &vault)
        do {
            var definition = try RequestCallout.definition(from: source, vault: vault)
            if let files = node.mapping?["ca_certificates"]?.sequence {
                definition.caCertificateFiles = files.enumerated().compactMap { readFile($1, "\(path).ca_certificates[\($0)]") }
            }
            return RouteWorkflow(definition: definition, source: written, kind: .requestCallout)
        } catch {
            for problem in error.issues {
                issue(Self.locate(problem.path, in: node) ?? node, "\(path).\(problem.path)", problem.reason)
            }
            return nil
        }
    }

    /// `value` with each string that is a whole `{vault://env/NAME}` reference replaced by the secret's value, which is
    /// added to `vault` (so that it is masked).
    private func resolvingVaultReferences(_ value: JSONValue, in node: Node, _ path: String, into vault: inout [(name: String, secret: Secret)])
        -> JSONValue
    {
        switch value {
        case .string(let text) where text.hasPrefix("{vault://") && text.hasSuffix("}"):
            guard let secret = readSecret(.scalar(.init(text)), path) else { return value }
            vault.append(("request_callout_\(vault.count + 1)", secret))
            return .string(secret.value)
        case .array(let elements):
            return .array(elements.map { resolvingVaultReferences($0, in: node, path, into: &vault) })
        case .object(let object):
            var resolved = JSONObject()
            for (key, member) in object { resolved[key] = resolvingVaultReferences(member, in: node, "\(path).\(key)", into: &vault) }
            return .object(resolved)
        default:
            return value
        }
    }

    /// The YAML tree as JSON: scalars typed by YAML's core schema (plain `200` a number, `true` a boolean, `null` and
    /// `~` null; quoted scalars strings). Nesting deeper than 64 levels is refused.
    func jsonValue(of node: Node, depth: Int, skippingVault: Bool = false) -> JSONValue {
        guard depth < 64 else {
            issue(node, "workflow", "nested deeper than 64 levels")
            return .null
        }
        switch node {
        case .scalar(let scalar):
            if scalar.style != .plain { return .string(scalar.string) }
            if node.null != nil { return .null }
            if let flag = node.bool { return .bool(flag) }
            if node.int != nil || node.float != nil, let number = JSONNumber.parse(scalar.string) { return .number(number) }
            return .string(scalar.string)
        case .mapping(let mapping):
            var object = JSONObject()
            for (key, value) in mapping {
                let name = key.scalar?.string ?? ""
                if skippingVault, name == "resources", var resources = value.mapping {
                    resources["vault"] = nil
                    if resources.isEmpty { continue }
                    object[name] = jsonValue(of: .mapping(resources), depth: depth + 1)
                    continue
                }
                object[name] = jsonValue(of: value, depth: depth + 1)
            }
            return .object(object)
        case .sequence(let sequence):
            return .array(sequence.map { jsonValue(of: $0, depth: depth + 1) })
        case .alias:
            return .null
        }
    }

    /// The YAML node at a workflow key path such as `nodes[2].inputs.body`, or the deepest one found on the way.
    static func locate(_ path: String, in root: Node) -> Node? {
        var node = root
        for component in path.split(separator: ".") {
            var name = Substring(component)
            var indices: [Int] = []
            while let open = name.lastIndex(of: "["), name.hasSuffix("]") {
                guard let index = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]) else { break }
                indices.insert(index, at: 0)
                name = name[..<open]
            }
            if !name.isEmpty {
                // Errors point at the value of the key (or at the deepest node that exists on the path).
                guard let mapping = node.mapping, let value = mapping[String(name)] else { return node }
                node = value
            }
            for index in indices {
                guard let sequence = node.sequence, index < sequence.count else { return node }
                node = sequence[index]
            }
        }
        return node
    }
}
