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

    /// The compiled root schema.
    let root: SchemaNode
    /// The targets of `$ref`s (and `$dynamicRef`s), by the positions the compiled schemas refer to them by.
    let targets: [SchemaNode]
    /// Whether a schema uses `unevaluatedProperties`/`unevaluatedItems`: only then do evaluations collect what they evaluated.
    let tracksAnnotations: Bool
    /// Whether a schema uses `$dynamicRef`: only then is the dynamic scope tracked.
    let tracksDynamicScope: Bool

    /// The draft the root schema is read under.
    public let draft: Draft

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
        // Every keyword is read here, once: validating a document only follows the compiled schemas.
        var compiler = SchemaCompiler(index: index, patterns: compiled)
        _ = compiler.resourceNumber(rootLocated.base)
        (root, targets) = compiler.compileAll(root: rootLocated)
        tracksAnnotations = compiler.usesUnevaluated
        tracksDynamicScope = compiler.usesDynamicScope
        draft = rootLocated.draft
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
        // Most documents are valid: a first pass only decides that, without the paths and messages violations
        // need. It evaluates exactly what a full pass would on a valid document (the same bounds included).
        var quick = Evaluator(validator: self, document: instance, limit: max(limit, 1), tracksPath: false)
        var annotations = Annotations()
        if quick.evaluate(instance, root, collect: false, depth: 0, annotations: &annotations), !quick.isAborted { return [] }
        var evaluator = Evaluator(validator: self, document: instance, limit: max(limit, 1), tracksPath: true)
        annotations = Annotations()
        _ = evaluator.evaluate(instance, root, collect: true, depth: 0, annotations: &annotations)
        var violations = evaluator.violations
        if let aborted = evaluator.aborted {
            // The bound's violation is reported even when the list is full; what was found before stays.
            if violations.count >= evaluator.limit { violations.removeLast() }
            violations.append(aborted)
        }
        return violations
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
}
