import Callout
import Handlebars
import JQ
import JSON
import Secrets
import XML

/// A workflow as its user wrote it (Kong Datakit's `config`), read and checked field by field but not yet connected:
/// ``WorkflowCompiler`` turns it into a runnable graph.
public struct WorkflowDefinition: Sendable {
    public var nodes: [NodeDefinition] = []
    /// Kong's `debug`: node errors name the node, and the `X-DataKit-Debug-Trace` header returns the trace.
    public var debug = false
    /// `resources.vault`: secrets the workflow reads as `vault.<name>` (resolved by the caller).
    public var vault: [(name: String, secret: Secret)] = []
    /// How long a run may take (kbridge's `timeout`, in ms); `nil` = the caller's default.
    public var timeout: Duration?
    /// Where `call` nodes may go when their URL comes from request data (kbridge's `call_allowed_hosts`, and
    /// `call_allow_link_local` for link-local and cloud metadata addresses).
    public var callDestinations: CalloutDestinationPolicy?
    /// kbridge's `call_allowed_hosts` as written.
    public var callAllowedHosts: [String] = []
    /// PEM files trusted for `call` nodes' TLS, besides the system's roots (Kong 3.16 `ca_certificates`).
    public var caCertificateFiles: [String] = []
    /// `resources.cache`: the memory cache's bounds or the Redis server (`nil`: no cache configured).
    var cacheResource: CacheResource?

    public init() {}

    /// The most nodes a workflow may have (Kong's bound).
    public static let maximumNodes = 64
    public static let topLevelKeys = ["nodes", "debug", "resources", "timeout", "call_allowed_hosts", "call_allow_link_local",
                                      "ca_certificates"]

    /// Reads a workflow from its configuration tree. `vault` holds `resources.vault` already resolved (secrets are
    /// read by the caller, which knows where they live).
    ///
    /// - Throws: ``WorkflowConfigurationError`` with every problem found, each with its key path (`nodes[2].jq`).
    public static func parse(_ value: JSONValue, vault: [(name: String, secret: Secret)] = []) throws(WorkflowConfigurationError)
        -> WorkflowDefinition
    {
        var reader = DefinitionReader()
        var definition = reader.readWorkflow(value)
        definition.vault = vault
        guard reader.issues.isEmpty else { throw WorkflowConfigurationError(issues: reader.issues) }
        // The connections, ports, types and order are checked now too, so `kbridge check` reports them.
        _ = try GraphBuilder.build(definition)
        let keyIssues = definition.staticJWTKeyIssues()
        guard keyIssues.isEmpty else { throw WorkflowConfigurationError(issues: keyIssues) }
        return definition
    }
}

/// One user node: the fields every node has, and its type's own settings.
public struct NodeDefinition: Sendable {
    public var name: String
    /// Its 1-based position in `nodes` (Kong's `node.index`).
    public var index: Int
    public var input: String?
    public var inputs: [(port: String, label: String)] = []
    public var output: String?
    public var outputs: [(port: String, label: String)] = []
    public var settings: NodeSettings

    public var type: WorkflowNodeType { settings.type }
}

public enum WorkflowNodeType: String, Sendable, CaseIterable {
    case call, jq, exit, property, `static`, branch, cache
    case xmlToJSON = "xml_to_json", jsonToXML = "json_to_xml", handlebars
    case jwtDecode = "jwt_decode", jwtSign = "jwt_sign", jwtVerify = "jwt_verify"
    /// A request-callout callout and its `upstream` customizations (``RequestCallout``): not written in workflows.
    case callout, upstream

    /// The types a workflow's `nodes` may use.
    static var userTypes: [WorkflowNodeType] { allCases.filter { $0 != .callout && $0 != .upstream } }

    /// Datakit node types that kbridge does not run yet, so that a Kong configuration with one gets a clear refusal.
    static let notYetSupported: [String] = []
}

/// The settings of each node type (Kong 3.15/3.16 field names, defaults and ranges).
public enum NodeSettings: Sendable {
    case call(CallSettings)
    case jq(JQProgram)
    case exit(status: Int, warnHeadersSent: Bool)
    case property(PropertySettings)
    case `static`(values: JSONObject)
    case branch(then: [String], else: [String])
    /// `ttl` in seconds (the `ttl` input wins), and whether a cache failure lets the request through.
    case cache(ttl: Int?, bypassOnError: Bool)
    case xmlToJSON(XMLToJSONOptions)
    case jsonToXML(JSONToXMLOptions)
    /// The compiled template and the `content_type` of what it renders.
    case handlebars(HandlebarsTemplate, contentType: String)
    case callout(RequestCalloutSettings)
    case upstream(UpstreamSettings)
    /// The JWT nodes (Sources/Workflow/Nodes/JWTNodes.swift).
    case jwtDecode
    case jwtSign(JWTSignSettings)
    case jwtVerify(JWTVerifySettings)

    public var type: WorkflowNodeType {
        switch self {
        case .call: .call
        case .jq: .jq
        case .exit: .exit
        case .property: .property
        case .static: .static
        case .branch: .branch
        case .cache: .cache
        case .xmlToJSON: .xmlToJSON
        case .jsonToXML: .jsonToXML
        case .handlebars: .handlebars
        case .callout: .callout
        case .upstream: .upstream
        case .jwtDecode: .jwtDecode
        case .jwtSign: .jwtSign
        case .jwtVerify: .jwtVerify
        }
    }
}

public struct CallSettings: Sendable {
    public var method = "GET"
    /// The static URL; a connected `url` input replaces it per request.
    public var url: CalloutURL?
    /// Milliseconds; `nil` or 0 = until the workflow's deadline.
    public var timeout: Int?
    public var sslVerify = true
    public var sslServerName: String?
}

public struct PropertySettings: Sendable {
    public var property: WorkflowProperty
    /// The name as written (an alias such as `kong.client.ip` is shown as written).
    public var name: String
    public var contentType: String?
    public var nonNil = false
}

/// Configuration problems, each with its key path inside the workflow.
public struct WorkflowConfigurationError: Error, CustomStringConvertible {
    public struct Issue: Sendable, Hashable {
        /// The key path inside the workflow, e.g. `nodes[2].inputs.body`.
        public var path: String
        public var reason: String
    }

    public var issues: [Issue]
    public var description: String { issues.map { "\($0.path): \($0.reason)" }.joined(separator: "\n") }
}

/// Reads the configuration tree, collecting every problem rather than stopping at the first.
struct DefinitionReader {
    var issues: [WorkflowConfigurationError.Issue] = []

    mutating func issue(_ path: String, _ reason: String) {
        issues.append(.init(path: path, reason: reason))
    }

    mutating func readWorkflow(_ value: JSONValue) -> WorkflowDefinition {
        var definition = WorkflowDefinition()
        guard let object = mapping(value, "", allowed: WorkflowDefinition.topLevelKeys) else { return definition }
        if let debug = object["debug"] { definition.debug = bool(debug, "debug") ?? false }
        if let timeout = object["timeout"], let ms = int(timeout, "timeout", in: 1...3_600_000) { definition.timeout = .milliseconds(ms) }
        if let hosts = object["call_allowed_hosts"] {
            definition.callAllowedHosts = stringList(hosts, "call_allowed_hosts") ?? []
        }
        let allowLinkLocal = object["call_allow_link_local"].flatMap { bool($0, "call_allow_link_local") } ?? false
        do throws(CalloutError) {
            definition.callDestinations = try CalloutDestinationPolicy(allowedHosts: definition.callAllowedHosts, allowLinkLocal: allowLinkLocal)
        } catch {
            issue("call_allowed_hosts", error.description)
        }
        if let files = object["ca_certificates"] { definition.caCertificateFiles = stringList(files, "ca_certificates") ?? [] }
        if let resources = object["resources"], let entries = mapping(resources, "resources", allowed: ["vault", "cache"]) {
            if let cache = entries["cache"] { definition.cacheResource = readCacheResource(cache, nodes: object["nodes"]) }
            if let vault = entries["vault"], let map = vault.objectValue, map.count > 64 {
                issue("resources.vault", "at most 64 entries (Kong's limit), found \(map.count)")
            }
        }
        guard let nodesValue = object["nodes"] else {
            issue("nodes", "required key missing: a workflow needs at least one node")
            return definition
        }
        guard let nodes = nodesValue.arrayValue, !nodes.isEmpty else {
            issue("nodes", "expected a non-empty list of nodes")
            return definition
        }
        if nodes.count > WorkflowDefinition.maximumNodes {
            issue("nodes", "at most \(WorkflowDefinition.maximumNodes) nodes (Kong's limit), found \(nodes.count)")
            return definition
        }
        for (position, node) in nodes.enumerated() {
            if let parsed = readNode(node, "nodes[\(position)]", index: position + 1) { definition.nodes.append(parsed) }
        }
        if definition.cacheResource == nil, let position = definition.nodes.firstIndex(where: { $0.type == .cache }) {
            issue("nodes[\(position)].type", "a cache node needs resources.cache (strategy: memory or redis)")
        }
        return definition
    }

    /// `resources.cache`: Kong's `strategy`, `memory.dictionary_name` and `redis` record, and kbridge's bounds of the
    /// memory cache.
    mutating func readCacheResource(_ value: JSONValue, nodes: JSONValue?) -> CacheResource? {
        guard let cache = mapping(value, "resources.cache", allowed: ["strategy", "memory", "redis"]) else { return nil }
        guard let strategyValue = cache["strategy"], let strategy = string(strategyValue, "resources.cache.strategy") else {
            issue("resources.cache.strategy", "required: memory or redis")
            return nil
        }
        switch strategy {
        case "memory": break
        case "redis":
            return readRedisCacheRecord(cache["redis"], nodes: nodes).map(CacheResource.redis)
        default:
            issue("resources.cache.strategy", "unknown strategy '\(strategy)' (memory or redis)")
            return nil
        }
        var limits = MemoryCache.Limits()
        if let memoryValue = cache["memory"],
           let memory = mapping(memoryValue, "resources.cache.memory", allowed: ["dictionary_name", "max_entries", "max_bytes"]) {
            if let name = memory["dictionary_name"] { _ = string(name, "resources.cache.memory.dictionary_name") }
            if let entries = memory["max_entries"], let count = int(entries, "resources.cache.memory.max_entries", in: 1...10_000_000) {
                limits.maximumEntries = count
            }
            if let bytes = memory["max_bytes"], let size = int(bytes, "resources.cache.memory.max_bytes", in: 1024...(1 << 34)) {
                limits.maximumBytes = size
            }
        }
        return .memory(limits)
    }

    static let commonKeys = ["name", "type", "input", "inputs", "output", "outputs"]
    static let ownKeys: [WorkflowNodeType: [String]] = [
        .call: ["method", "url", "timeout", "ssl_verify", "ssl_server_name"],
        .jq: ["jq"],
        .exit: ["status", "warn_headers_sent"],
        .property: ["property", "content_type", "non_nil"],
        .static: ["values"],
        .branch: ["then", "else"],
        .cache: ["ttl", "bypass_on_error"],
        .xmlToJSON: ["attributes_block_name", "attributes_name_prefix", "text_block_name", "text_as_property", "recognize_type", "xpath"],
        .jsonToXML: ["root_element_name", "attributes_block_name", "attributes_name_prefix", "text_block_name"],
        .handlebars: ["template", "content_type"],
        .jwtDecode: [],
        .jwtSign: DefinitionReader.jwtSignKeys,
        .jwtVerify: DefinitionReader.jwtVerifyKeys,
    ]

    mutating func readNode(_ value: JSONValue, _ path: String, index: Int) -> NodeDefinition? {
        guard let object = value.objectValue else {
            issue(path, "expected a mapping with at least 'name' and 'type'")
            return nil
        }
        guard let typeValue = object["type"] else {
            issue("\(path).type", "required key missing (one of \(WorkflowNodeType.userTypes.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        guard let typeName = string(typeValue, "\(path).type") else { return nil }
        guard let type = WorkflowNodeType(rawValue: typeName), WorkflowNodeType.userTypes.contains(type) else {
            if WorkflowNodeType.notYetSupported.contains(typeName) {
                issue("\(path).type", "node type '\(typeName)' is not supported by this version of kbridge")
            } else {
                issue("\(path).type", "unknown node type '\(typeName)'"
                      + Suggestion.didYouMean(typeName, among: WorkflowNodeType.userTypes.map(\.rawValue) + WorkflowNodeType.notYetSupported))
            }
            return nil
        }
        let allowed = Self.commonKeys + (Self.ownKeys[type] ?? [])
        for key in object.keys where !allowed.contains(key) {
            issue("\(path).\(key)", "unknown field for a \(type.rawValue) node" + Suggestion.didYouMean(key, among: allowed))
        }
        let issuesBefore = issues.count
        guard let nameValue = object["name"] else {
            issue("\(path).name", "required key missing")
            return nil
        }
        guard let name = string(nameValue, "\(path).name") else { return nil }
        if name.isEmpty || name.utf8.count > 255 || !name.utf8.allSatisfy(Self.isNameByte) {
            issue("\(path).name", "'\(name)' is not a valid node name: 1 to 255 letters, digits, '_' or '-'")
        }
        var labelIssues = DefinitionReader()
        let input = object["input"].flatMap { labelIssues.labelString($0, "\(path).input") }
        let output = object["output"].flatMap { labelIssues.labelString($0, "\(path).output") }
        var inputs: [(port: String, label: String)] = []
        var outputs: [(port: String, label: String)] = []
        if let value = object["inputs"] { inputs = labelIssues.labelMap(value, "\(path).inputs") }
        if let value = object["outputs"] { outputs = labelIssues.labelMap(value, "\(path).outputs") }
        issues += labelIssues.issues
        if input != nil, !inputs.isEmpty { issue("\(path).inputs", "use either 'input' or 'inputs', not both") }
        if output != nil, !outputs.isEmpty { issue("\(path).outputs", "use either 'output' or 'outputs', not both") }

        let settings: NodeSettings
        switch type {
        case .call:
            var call = CallSettings()
            if let value = object["method"], let method = string(value, "\(path).method") {
                if method.isEmpty || method.utf8.count > 32 || !method.utf8.allSatisfy({ $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
                    issue("\(path).method", "'\(method)' is not a method: 1 to 32 upper-case letters, such as GET or POST")
                }
                call.method = method
            }
            if let value = object["url"], let url = string(value, "\(path).url") {
                do throws(CalloutError) {
                    call.url = try CalloutURL(parsing: url)
                } catch {
                    issue("\(path).url", error.description)
                }
            }
            if let value = object["timeout"] { call.timeout = int(value, "\(path).timeout", in: 0...2_147_483_646) }
            if let value = object["ssl_verify"] { call.sslVerify = bool(value, "\(path).ssl_verify") ?? true }
            if let value = object["ssl_server_name"] { call.sslServerName = string(value, "\(path).ssl_server_name") }
            settings = .call(call)
        case .jq:
            guard let value = object["jq"] else {
                issue("\(path).jq", "required key missing: the jq filter")
                return nil
            }
            guard let text = string(value, "\(path).jq") else { return nil }
            if !outputs.isEmpty { issue("\(path).outputs", "a jq node has one output: use 'output', not 'outputs'") }
            guard !text.isEmpty, text.count <= 10240 else {
                issue("\(path).jq", "the filter must have 1 to 10240 characters")
                return nil
            }
            do throws(JQCompileError) {
                settings = .jq(try JQProgram(text))
            } catch {
                issue("\(path).jq", error.description)
                return nil
            }
        case .exit:
            var status = 200
            if let value = object["status"], let parsed = int(value, "\(path).status", in: 200...599) { status = parsed }
            let warn = object["warn_headers_sent"].flatMap { bool($0, "\(path).warn_headers_sent") } ?? false
            if output != nil || !outputs.isEmpty { issue("\(path).output", "an exit node has no outputs") }
            settings = .exit(status: status, warnHeadersSent: warn)
        case .property:
            guard let value = object["property"] else {
                issue("\(path).property", "required key missing: the property to get or set")
                return nil
            }
            guard let propertyName = string(value, "\(path).property") else { return nil }
            guard let property = WorkflowProperty(name: propertyName) else {
                issue("\(path).property", "unknown property '\(propertyName)'"
                      + Suggestion.didYouMean(propertyName, among: WorkflowProperty.documentedNames))
                return nil
            }
            var propertySettings = PropertySettings(property: property, name: propertyName)
            if let value = object["content_type"], let type = string(value, "\(path).content_type") {
                let known = ["application/json", "application/octet-stream", "text/plain"]
                if !known.contains(type) { issue("\(path).content_type", "must be one of \(known.joined(separator: ", "))") }
                propertySettings.contentType = type
            }
            if let value = object["non_nil"] { propertySettings.nonNil = bool(value, "\(path).non_nil") ?? false }
            if !inputs.isEmpty { issue("\(path).inputs", "a property node has one input: use 'input'") }
            if !outputs.isEmpty { issue("\(path).outputs", "a property node has one output: use 'output'") }
            if input != nil, !property.isSettable {
                issue("\(path).input", "property '\(propertyName)' can be read but not set")
            }
            settings = .property(propertySettings)
        case .static:
            guard let value = object["values"] else {
                issue("\(path).values", "required key missing: an object of values")
                return nil
            }
            guard let values = value.objectValue else {
                issue("\(path).values", "expected an object with string keys and any values")
                return nil
            }
            if input != nil || !inputs.isEmpty { issue("\(path).input", "a static node has no inputs") }
            settings = .static(values: values)
        case .branch:
            let then = object["then"].flatMap { nodeList($0, "\(path).then") } ?? []
            let otherwise = object["else"].flatMap { nodeList($0, "\(path).else") } ?? []
            if then.isEmpty, otherwise.isEmpty { issue(path, "a branch node needs 'then', 'else' or both") }
            if !inputs.isEmpty { issue("\(path).inputs", "a branch node has one input: use 'input'") }
            settings = .branch(then: then, else: otherwise)
        case .cache:
            let ttl = object["ttl"].flatMap { int($0, "\(path).ttl", in: 0...31_536_000) }
            let bypass = object["bypass_on_error"].flatMap { bool($0, "\(path).bypass_on_error") } ?? false
            settings = .cache(ttl: ttl, bypassOnError: bypass)
        case .xmlToJSON, .jsonToXML:
            guard let converter = readXMLSettings(type, object, path) else { return nil }
            if !inputs.isEmpty { issue("\(path).inputs", "an \(type.rawValue) node has one input: use 'input'") }
            if !outputs.isEmpty { issue("\(path).outputs", "an \(type.rawValue) node has one output: use 'output'") }
            settings = converter
        case .callout, .upstream:
            return nil  // refused above
        case .handlebars:
            guard let value = object["template"] else {
                issue("\(path).template", "required key missing: the Handlebars template")
                return nil
            }
            guard let source = string(value, "\(path).template") else { return nil }
            let contentType = object["content_type"].flatMap { string($0, "\(path).content_type") } ?? "text/plain"
            if !outputs.isEmpty { issue("\(path).outputs", "a handlebars node has one output: use 'output'") }
            do throws(HandlebarsError) {
                settings = .handlebars(try HandlebarsTemplate(source: source), contentType: contentType)
            } catch {
                issue("\(path).template", error.description)
                return nil
            }
        case .jwtDecode, .jwtSign, .jwtVerify:
            guard let jwt = readJWTSettings(type, object, path) else { return nil }
            if type == .jwtDecode, !inputs.isEmpty { issue("\(path).inputs", "a jwt_decode node has one input, the token: use 'input'") }
            settings = jwt
        }
        guard issues.count == issuesBefore else { return nil }
        return NodeDefinition(name: name, index: index, input: input, inputs: inputs, output: output, outputs: outputs, settings: settings)
    }

    /// The fields of `xml_to_json` and `json_to_xml` (Kong 3.13+), checked by the XML module.
    mutating func readXMLSettings(_ type: WorkflowNodeType, _ object: JSONObject, _ path: String) -> NodeSettings? {
        func text(_ key: String) -> String? { object[key].flatMap { string($0, "\(path).\(key)") } }
        let blockName = text("attributes_block_name")
        let prefix = text("attributes_name_prefix")
        let textBlock = text("text_block_name") ?? "#text"
        do throws(XMLConversionError) {
            let attributes = try XMLAttributeNaming.kong(blockName: blockName, namePrefix: prefix)
            if type == .jsonToXML {
                let options = JSONToXMLOptions(rootElementName: text("root_element_name"), attributes: attributes, textBlockName: textBlock)
                try options.validate()
                return .jsonToXML(options)
            }
            let xpath = try text("xpath").map { expression throws(XMLConversionError) in try XPathExpression(expression) }
            let options = XMLToJSONOptions(
                attributes: attributes, textBlockName: textBlock,
                textAsProperty: object["text_as_property"].flatMap { bool($0, "\(path).text_as_property") } ?? false,
                recognizeType: object["recognize_type"].flatMap { bool($0, "\(path).recognize_type") } ?? true, xpath: xpath)
            try options.validate()
            return .xmlToJSON(options)
        } catch {
            let key = if case .invalidXPath = error { "xpath" } else { "attributes_name_prefix" }
            issue("\(path).\(key)", error.description)
            return nil
        }
    }

    static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: "-"): true
        default: false
        }
    }

    // MARK: - Typed readers

    mutating func mapping(_ value: JSONValue, _ path: String, allowed: [String]) -> JSONObject? {
        guard let object = value.objectValue else {
            issue(path.isEmpty ? "workflow" : path, "expected a mapping of keys to values")
            return nil
        }
        for key in object.keys where !allowed.contains(key) {
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            issue(keyPath, "unknown key" + Suggestion.didYouMean(key, among: allowed))
        }
        return object
    }

    mutating func string(_ value: JSONValue, _ path: String) -> String? {
        guard case .string(let text) = value else {
            issue(path, "expected a string, found \(value.datakitTypeName)")
            return nil
        }
        return text
    }

    mutating func bool(_ value: JSONValue, _ path: String) -> Bool? {
        guard case .bool(let flag) = value else {
            issue(path, "expected true or false, found \(value.datakitTypeName)")
            return nil
        }
        return flag
    }

    mutating func int(_ value: JSONValue, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard case .number(let number) = value, let exact = number.int64, let int = Int(exactly: exact) else {
            issue(path, "expected an integer from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        guard range.contains(int) else {
            issue(path, "\(int) is out of range: \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return int
    }

    mutating func stringList(_ value: JSONValue, _ path: String) -> [String]? {
        guard let array = value.arrayValue else {
            issue(path, "expected a list of strings")
            return nil
        }
        var strings: [String] = []
        for (position, element) in array.enumerated() {
            if let text = string(element, "\(path)[\(position)]") { strings.append(text) }
        }
        return strings
    }

    mutating func labelString(_ value: JSONValue, _ path: String) -> String? {
        guard let text = string(value, path) else { return nil }
        guard !text.isEmpty, text.utf8.count <= 255 else {
            issue(path, "a connection label has 1 to 255 characters: NODE or NODE.port")
            return nil
        }
        return text
    }

    mutating func labelMap(_ value: JSONValue, _ path: String) -> [(port: String, label: String)] {
        guard let object = value.objectValue else {
            issue(path, "expected a mapping of port names to NODE or NODE.port labels")
            return []
        }
        return object.compactMap { port, label in labelString(label, "\(path).\(port)").map { (port, $0) } }
    }

    mutating func nodeList(_ value: JSONValue, _ path: String) -> [String]? {
        guard let names = stringList(value, path) else { return nil }
        if names.count > 64 { issue(path, "at most 64 nodes, found \(names.count)") }
        return names
    }
}

/// "did you mean" for misspelt names: the closest candidate within a small edit distance.
enum Suggestion {
    static func didYouMean(_ word: String, among candidates: [String]) -> String {
        let word = Array(word.lowercased().utf8.prefix(64))
        var best: (name: String, distance: Int)?
        for candidate in candidates {
            let distance = editDistance(word, Array(candidate.lowercased().utf8.prefix(64)))
            if distance <= max(1, min(3, candidate.count / 3)), distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        return best.map { " (did you mean '\($0.name)'?)" } ?? ""
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        var current = Array(repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
