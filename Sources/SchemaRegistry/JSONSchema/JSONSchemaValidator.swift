import JSON
import Foundation

/// One way in which a document does not match a JSON Schema.
public struct JSONSchemaViolation: Sendable, Hashable, CustomStringConvertible {
    /// Where in the document: `$`, `$.order.items[2].qty`, `$["odd key"]`.
    public var path: String
    /// The keyword that failed, e.g. `type`, `required`, `maximum`.
    public var keyword: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// A schema that cannot be used: a `$ref` that resolves nowhere, a pattern that is not a regular expression.
public struct JSONSchemaError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Validates JSON documents against a JSON Schema of draft 4, 6, 7 or 2020-12 (chosen by `$schema`; draft 7,
/// Confluent's default, when there is none).
///
/// Written here because no package in reach validates JSON Schema. `$ref` resolves within the schema, to
/// other documents given as `remotes` (the registry's schema references), by JSON pointer, `$id`, `$anchor`
/// and `$dynamicAnchor`. `format` is an annotation, as the drafts make it by default.
public struct JSONSchemaValidator: Sendable {
    public enum Draft: Int, Sendable, Comparable {
        case draft4 = 4, draft6 = 6, draft7 = 7, draft2019 = 2019, draft2020 = 2020

        public static func < (lhs: Draft, rhs: Draft) -> Bool { lhs.rawValue < rhs.rawValue }

        init?(metaSchema: String) {
            let uri = metaSchema.hasSuffix("#") ? String(metaSchema.dropLast()) : metaSchema
            switch uri.replacingOccurrences(of: "https://", with: "http://") {
            case "http://json-schema.org/draft-04/schema": self = .draft4
            case "http://json-schema.org/draft-06/schema": self = .draft6
            case "http://json-schema.org/draft-07/schema": self = .draft7
            case "http://json-schema.org/draft/2019-09/schema": self = .draft2019
            case "http://json-schema.org/draft/2020-12/schema": self = .draft2020
            default: return nil
            }
        }
    }

    /// A schema (or subschema) with the base URI and draft it is read under.
    struct Located: @unchecked Sendable {  // @unchecked: immutable values only
        var schema: JSONValue
        var base: String
        var draft: Draft
    }

    private let root: Located
    /// Subschemas by absolute URI: `base#json-pointer` and `base#anchor`.
    private let subschemas: [String: Located]
    /// Resource roots by absolute URI (no fragment).
    private let resources: [String: Located]
    /// `$dynamicAnchor` names declared by each resource.
    private let dynamicAnchors: [String: Set<String>]
    private let patterns: [String: RegularExpression]

    /// The draft the root schema is read under.
    public var draft: Draft { root.draft }

    /// - Parameters:
    ///   - schema: The schema document.
    ///   - baseURI: Its URI, against which relative `$id`s and `$ref`s resolve.
    ///   - remotes: Other schema documents by URI (for example the registry's references, by name).
    ///   - defaultDraft: The draft when the schema has no `$schema`.
    /// - Throws: ``JSONSchemaError`` when a `pattern` is not a supported ECMA-262 regular expression, or when subschemas
    ///   apply to the same instance in a cycle (`{"$ref": "#"}`: `circular $ref: # -> #`), which would never end.
    public init(schema: JSONValue, baseURI: String = "urn:kbridge:schema", remotes: [String: JSONValue] = [:],
                defaultDraft: Draft = .draft7) throws(JSONSchemaError) {
        var index = Indexer()
        let rootDraft = schema["$schema"]?.stringValue.flatMap(Draft.init(metaSchema:)) ?? defaultDraft
        let rootLocated = index.add(schema, base: URIReference.stripFragment(baseURI), draft: rootDraft)
        for (uri, document) in remotes {
            let draft = document["$schema"]?.stringValue.flatMap(Draft.init(metaSchema:)) ?? rootDraft
            index.add(document, base: URIReference.stripFragment(uri), draft: draft)
        }
        var compiled: [String: RegularExpression] = [:]
        for pattern in index.patterns where compiled[pattern] == nil {
            do {
                compiled[pattern] = try RegularExpression(validating: pattern)
            } catch {
                throw JSONSchemaError(message: "pattern '\(pattern)' is not a supported ECMA-262 regular expression: \(error)")
            }
        }
        if let cycle = index.inPlaceCycle(from: rootLocated) {
            throw JSONSchemaError(message: "circular $ref: \(cycle.joined(separator: " -> ")) (these subschemas apply to the same value in a loop that never ends)")
        }
        root = rootLocated
        subschemas = index.subschemas
        resources = index.resources
        dynamicAnchors = index.dynamicAnchors
        patterns = compiled
    }

    /// The deepest nesting of evaluations (a subschema within a subschema, through `$ref` too) before validation
    /// fails: deep documents under recursive schemas, and references that descend forever.
    public static let maximumEvaluationDepth = 512
    /// Evaluations allowed per value of the document, beyond a fixed 20,000: `anyOf`/`oneOf` of recursive
    /// schemas could otherwise take time exponential in the document's depth.
    public static let evaluationsPerValue = 64
    static let baseEvaluations = 20_000

    /// Every violation (up to `limit`), or none when the document matches. A document that hits an evaluation
    /// bound (``maximumEvaluationDepth``, ``evaluationsPerValue``) is invalid, with a violation saying so.
    public func validate(_ instance: JSONValue, limit: Int = 100) -> [JSONSchemaViolation] {
        var sink = ViolationSink(limit: max(limit, 1), evaluationBudget: Self.baseEvaluations + Self.evaluationsPerValue * instance.nodeCount)
        _ = evaluate(instance, root, path: "$", dynamicScope: [root.base], sink: &sink, collect: true, depth: 0)
        if let aborted = sink.aborted {
            // The bound's violation is reported even when the list is full; what was found before stays.
            if sink.violations.count >= sink.limit { sink.violations.removeLast() }
            sink.violations.append(aborted)
        }
        return sink.violations
    }

    // MARK: - Evaluation

    /// What a (valid) schema evaluated, for `unevaluatedProperties` / `unevaluatedItems`.
    struct Annotations {
        var properties = Set<String>()
        var items = Set<Int>()
        var allItems = false

        mutating func merge(_ other: Annotations) {
            properties.formUnion(other.properties)
            items.formUnion(other.items)
            allItems = allItems || other.allItems
        }
    }

    struct ViolationSink {
        let limit: Int
        var violations: [JSONSchemaViolation] = []
        /// Evaluations so far in this validation (quiet sinks included) and how many are allowed.
        var evaluations = 0
        let evaluationBudget: Int
        /// Set when a bound was hit: evaluation stops everywhere and the document is invalid.
        var aborted: JSONSchemaViolation?

        init(limit: Int, evaluationBudget: Int) {
            self.limit = limit
            self.evaluationBudget = evaluationBudget
        }

        var full: Bool { violations.count >= limit }
        mutating func add(_ path: String, _ keyword: String, _ reason: String) {
            if !full { violations.append(JSONSchemaViolation(path: path, keyword: keyword, reason: reason)) }
        }

        /// A sink that collects nothing (for anyOf, oneOf, not, if, contains, propertyNames), sharing the bounds.
        func quiet() -> ViolationSink {
            var quiet = ViolationSink(limit: 0, evaluationBudget: evaluationBudget)
            quiet.evaluations = evaluations
            quiet.aborted = aborted
            return quiet
        }

        /// Takes back what a quiet sink used of the bounds.
        mutating func absorb(_ quiet: ViolationSink) {
            evaluations = quiet.evaluations
            if aborted == nil { aborted = quiet.aborted }
        }
    }

    /// Evaluates `instance` against `located`; returns the annotations when it is valid, `nil` when not.
    /// Violations go to `sink` only when `collect` is true (branches of anyOf, oneOf, not, if are quiet).
    func evaluate(_ instance: JSONValue, _ located: Located, path: String, dynamicScope: [String],
                  sink: inout ViolationSink, collect: Bool, depth: Int) -> Annotations? {
        guard sink.aborted == nil else { return nil }
        sink.evaluations += 1
        guard sink.evaluations <= sink.evaluationBudget else {
            sink.aborted = JSONSchemaViolation(path: path, keyword: "limit",
                                               reason: "the document needs more than \(sink.evaluationBudget) schema evaluations (nested anyOf/oneOf of recursive schemas)")
            return nil
        }
        guard depth < Self.maximumEvaluationDepth else {
            sink.aborted = JSONSchemaViolation(path: path, keyword: "depth",
                                               reason: "validation nests deeper than \(Self.maximumEvaluationDepth) subschemas here")
            return nil
        }
        switch located.schema {
        case .bool(true): return Annotations()
        case .bool(false):
            if collect { sink.add(path, "false", "no value is allowed here") }
            return nil
        case .object(let schema):
            var context = Context(validator: self, instance: instance, schema: schema, located: located, path: path,
                                  dynamicScope: dynamicScope, collect: collect, depth: depth)
            return context.run(sink: &sink)
        default:
            return Annotations()  // not a schema: nothing to check
        }
    }

    /// Resolves a `$ref` (or `$dynamicRef`) value against `base`.
    func resolve(_ reference: String, base: String) -> Located? {
        let absolute = URIReference.resolve(reference, against: base)
        let (uri, fragment) = URIReference.split(absolute)
        if let found = subschemas["\(uri)#\(fragment)"] { return found }
        guard fragment.isEmpty || fragment.hasPrefix("/"), let resource = resources[uri] else { return nil }
        return Self.walk(pointer: fragment, from: resource)
    }

    /// Follows a JSON pointer from a resource, tracking `$id`s passed on the way.
    static func walk(pointer: String, from resource: Located) -> Located? {
        var current = resource
        for token in pointer.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            let key = (token.removingPercentEncoding ?? String(token)).replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            let next: JSONValue?
            switch current.schema {
            case .object(let object): next = object[key]
            case .array(let array): next = Int(key).flatMap { $0 >= 0 && $0 < array.count ? array[$0] : nil }
            default: next = nil
            }
            guard let next else { return nil }
            current.schema = next
            if let id = next[current.draft == .draft4 ? "id" : "$id"]?.stringValue, !id.hasPrefix("#") {
                current.base = URIReference.stripFragment(URIReference.resolve(id, against: current.base))
            }
        }
        return current
    }

    func hasDynamicAnchor(_ name: String, in resource: String) -> Bool { dynamicAnchors[resource]?.contains(name) == true }

    func regex(_ pattern: String) -> RegularExpression? { patterns[pattern] }
}
