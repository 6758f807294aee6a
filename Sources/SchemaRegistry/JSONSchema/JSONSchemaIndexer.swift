import JSON
import Foundation

/// Finds every subschema, resource (`$id`), anchor and pattern in schema documents, once, before validation.
struct Indexer {
    typealias Located = JSONSchemaValidator.Located

    var subschemas: [String: Located] = [:]
    var resources: [String: Located] = [:]
    var dynamicAnchors: [String: Set<String>] = [:]
    var patterns = Set<String>()

    /// Keywords whose value is a schema.
    static let schemaKeywords = [
        "additionalItems", "additionalProperties", "contains", "else", "if", "not", "propertyNames", "then",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema",
    ]
    /// Keywords whose value is an object of schemas.
    static let schemaMapKeywords = ["properties", "patternProperties", "definitions", "$defs", "dependentSchemas", "dependencies"]
    /// Keywords whose value is an array of schemas.
    static let schemaArrayKeywords = ["allOf", "anyOf", "oneOf", "prefixItems"]

    /// Indexes a document; returns it located at its own base URI (its `$id`, resolved against `base`).
    @discardableResult
    mutating func add(_ document: JSONValue, base: String, draft: JSONSchemaValidator.Draft) -> Located {
        resources[base] = Located(schema: document, base: base, draft: draft)  // also reachable by the URI it was given
        return visit(document, base: base, pointer: "", draft: draft, isResourceRoot: true)
    }

    @discardableResult
    private mutating func visit(_ schema: JSONValue, base: String, pointer: String, draft: JSONSchemaValidator.Draft, isResourceRoot: Bool) -> Located {
        var base = base
        var pointer = pointer
        var draft = draft
        guard case .object(let object) = schema else {
            subschemas["\(base)#\(pointer)"] = Located(schema: schema, base: base, draft: draft)
            return Located(schema: schema, base: base, draft: draft)
        }
        if let declared = object["$schema"]?.stringValue.flatMap(JSONSchemaValidator.Draft.init(metaSchema:)) { draft = declared }
        // In drafts up to 7, `$ref` hides its siblings, `$id` included.
        let refHidesSiblings = draft <= .draft7 && object["$ref"] != nil
        let idKey = draft == .draft4 ? "id" : "$id"
        if !refHidesSiblings, let id = object[idKey]?.stringValue {
            if id.hasPrefix("#") {
                // A plain-name fragment: draft 4-7's way of writing an anchor.
                subschemas["\(base)\(id)"] = Located(schema: schema, base: base, draft: draft)
            } else {
                let resolved = URIReference.resolve(id, against: base)
                let (uri, fragment) = URIReference.split(resolved)
                base = uri
                pointer = ""
                resources[base] = Located(schema: schema, base: base, draft: draft)
                if !fragment.isEmpty { subschemas["\(base)#\(fragment)"] = Located(schema: schema, base: base, draft: draft) }
            }
        }
        let located = Located(schema: schema, base: base, draft: draft)
        subschemas["\(base)#\(pointer)"] = located
        if draft >= .draft2019, let anchor = object["$anchor"]?.stringValue { subschemas["\(base)#\(anchor)"] = located }
        if draft >= .draft2020, let anchor = object["$dynamicAnchor"]?.stringValue {
            subschemas["\(base)#\(anchor)"] = located
            dynamicAnchors[base, default: []].insert(anchor)
        }
        if let pattern = object["pattern"]?.stringValue { patterns.insert(pattern) }
        if let patternProperties = object["patternProperties"]?.objectValue { patterns.formUnion(patternProperties.keys) }

        func child(_ value: JSONValue, _ tokens: String...) -> (JSONValue, String) {
            (value, pointer + tokens.map { "/" + Self.escape($0) }.joined())
        }
        var children: [(JSONValue, String)] = []
        for keyword in Self.schemaKeywords { if let value = object[keyword] { children.append(child(value, keyword)) } }
        for keyword in Self.schemaMapKeywords {
            guard let members = object[keyword]?.objectValue else { continue }
            for (name, value) in members where keyword != "dependencies" || value.arrayValue == nil {
                children.append(child(value, keyword, name))
            }
        }
        for keyword in Self.schemaArrayKeywords {
            guard let elements = object[keyword]?.arrayValue else { continue }
            for (position, value) in elements.enumerated() { children.append(child(value, keyword, String(position))) }
        }
        if let items = object["items"] {
            if let elements = items.arrayValue {
                for (position, value) in elements.enumerated() { children.append(child(value, "items", String(position))) }
            } else {
                children.append(child(items, "items"))
            }
        }
        for (value, childPointer) in children { visit(value, base: base, pointer: childPointer, draft: draft, isResourceRoot: false) }
        return located
    }

    static func escape(_ token: String) -> String {
        token.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}

extension Indexer {
    /// A subschema as evaluation meets it: an identifying key (`uri#pointer`, or a path below an anchor) and where it is.
    typealias Node = (key: String, located: Located)

    /// Resolves a `$ref` as the validator does (``JSONSchemaValidator/resolve(_:base:)``), with a key for the target.
    func resolve(_ reference: String, base: String) -> Node? {
        let (uri, fragment) = URIReference.split(URIReference.resolve(reference, against: base))
        let key = "\(uri)#\(fragment)"
        if let found = subschemas[key] { return (key, found) }
        guard fragment.isEmpty || fragment.hasPrefix("/"), let resource = resources[uri],
              let walked = JSONSchemaValidator.walk(pointer: fragment, from: resource) else { return nil }
        return (key, walked)
    }

    /// What a schema object applies to the same instance (`inPlace`: references, `allOf`, `anyOf`, `oneOf`, `not`,
    /// `if`/`then`/`else`, `dependentSchemas`) and to its parts (`descending`), as the validator's keywords do.
    func edges(of node: Node) -> (inPlace: [Node], descending: [Node]) {
        guard case .object(let object) = node.located.schema else { return ([], []) }
        let draft = node.located.draft
        var inPlace: [Node] = []
        var descending: [Node] = []
        func child(_ value: JSONValue, _ tokens: String...) -> Node {
            var located = Located(schema: value, base: node.located.base, draft: draft)
            if case .object(let childObject) = value, let id = childObject[draft == .draft4 ? "id" : "$id"]?.stringValue, !id.hasPrefix("#"),
               !(draft <= .draft7 && childObject["$ref"] != nil) {
                located.base = URIReference.stripFragment(URIReference.resolve(id, against: node.located.base))
                return ("\(located.base)#", located)
            }
            return (node.key + tokens.map { "/" + Self.escape($0) }.joined(), located)
        }
        if let reference = object["$ref"]?.stringValue, let target = resolve(reference, base: node.located.base) { inPlace.append(target) }
        if draft <= .draft7, object["$ref"] != nil { return (inPlace, []) }  // `$ref` hides its siblings
        if draft == .draft2019, let reference = object["$recursiveRef"]?.stringValue, let target = resolve(reference, base: node.located.base) {
            inPlace.append(target)
        }
        if draft >= .draft2020, let reference = object["$dynamicRef"]?.stringValue {
            if let target = resolve(reference, base: node.located.base) { inPlace.append(target) }
            // Dynamically, any resource declaring the same dynamic anchor may be the target.
            let (_, fragment) = URIReference.split(URIReference.resolve(reference, against: node.located.base))
            if !fragment.isEmpty, !fragment.hasPrefix("/") {
                for (resource, names) in dynamicAnchors.sorted(by: { $0.key < $1.key }) where names.contains(fragment) {
                    if let target = resolve("#\(fragment)", base: resource) { inPlace.append(target) }
                }
            }
        }
        for keyword in ["allOf", "anyOf", "oneOf"] {
            for (position, value) in (object[keyword]?.arrayValue ?? []).enumerated() { inPlace.append(child(value, keyword, String(position))) }
        }
        if let value = object["not"] { inPlace.append(child(value, "not")) }
        if draft >= .draft7 {
            for keyword in ["if", "then", "else"] { if let value = object[keyword] { inPlace.append(child(value, keyword)) } }
        }
        if draft >= .draft2019 {
            for (name, value) in object["dependentSchemas"]?.objectValue ?? JSONObject() { inPlace.append(child(value, "dependentSchemas", name)) }
        } else {
            for (name, value) in object["dependencies"]?.objectValue ?? JSONObject() where value.arrayValue == nil {
                inPlace.append(child(value, "dependencies", name))
            }
        }
        for keyword in ["additionalItems", "additionalProperties", "contains", "propertyNames", "unevaluatedItems", "unevaluatedProperties"] {
            if let value = object[keyword] { descending.append(child(value, keyword)) }
        }
        for keyword in ["properties", "patternProperties"] {
            for (name, value) in object[keyword]?.objectValue ?? JSONObject() { descending.append(child(value, keyword, name)) }
        }
        for (position, value) in (object["prefixItems"]?.arrayValue ?? []).enumerated() { descending.append(child(value, "prefixItems", String(position))) }
        if let items = object["items"] {
            if let elements = items.arrayValue {
                for (position, value) in elements.enumerated() { descending.append(child(value, "items", String(position))) }
            } else {
                descending.append(child(items, "items"))
            }
        }
        return (inPlace, descending)
    }

    /// A cycle of subschemas that apply to the same instance, reachable from `root` (keys, the first repeated
    /// last, shown relative to the root's resource), or nil. Such a cycle makes any evaluation endless.
    /// Iterative (no recursion on the schema), linear in the schema's subschemas and references.
    func inPlaceCycle(from root: Located) -> [String]? {
        let rootNode: Node = ("\(root.base)#", root)
        // Every subschema that evaluation can reach, by any keyword.
        var reachable: [Node] = [rootNode]
        var seen: Set<String> = [rootNode.key]
        var next = 0
        while next < reachable.count {
            let (inPlace, descending) = edges(of: reachable[next])
            next += 1
            for node in inPlace + descending where seen.insert(node.key).inserted { reachable.append(node) }
        }
        // Depth-first over in-place edges only, from each of them: a node met again while on the path is a cycle.
        enum State { case onPath, done }
        var state: [String: State] = [:]
        for start in reachable where state[start.key] == nil {
            var path: [(node: Node, pending: [Node])] = [(start, Array(edges(of: start).inPlace.reversed()))]
            state[start.key] = .onPath
            while !path.isEmpty {
                guard let target = path[path.count - 1].pending.popLast() else {
                    state[path.removeLast().node.key] = .done
                    continue
                }
                switch state[target.key] {
                case .onPath:
                    let first = path.firstIndex { $0.node.key == target.key } ?? 0
                    return (path[first...].map(\.node.key) + [target.key]).map { Self.display($0, root: root.base) }
                case .done: continue
                case nil:
                    state[target.key] = .onPath
                    path.append((target, Array(edges(of: target).inPlace.reversed())))
                }
            }
        }
        return nil
    }

    private static func display(_ key: String, root: String) -> String {
        key.hasPrefix(root + "#") ? String(key.dropFirst(root.count)) : key
    }
}

/// Just enough of RFC 3986 to resolve `$id` and `$ref` values: absolute URIs, fragments, and relative paths.
enum URIReference {
    /// `uri#fragment` to (`uri`, `fragment`), the fragment percent-decoded.
    static func split(_ reference: String) -> (String, String) {
        guard let hash = reference.firstIndex(of: "#") else { return (reference, "") }
        let fragment = String(reference[reference.index(after: hash)...])
        return (String(reference[..<hash]), fragment.removingPercentEncoding ?? fragment)
    }

    static func stripFragment(_ reference: String) -> String { split(reference).0 }

    static func hasScheme(_ reference: String) -> Bool {
        guard let colon = reference.firstIndex(of: ":") else { return false }
        let scheme = reference[..<colon]
        return !scheme.isEmpty && scheme.allSatisfy { $0.isLetter || $0.isNumber || "+-.".contains($0) } && scheme.first!.isLetter
    }

    static func resolve(_ reference: String, against base: String) -> String {
        if hasScheme(reference) { return reference }
        if reference.hasPrefix("#") { return stripFragment(base) + reference }
        let (basePath, _) = split(base)
        if reference.hasPrefix("//") {
            let scheme = basePath.prefix { $0 != ":" }
            return "\(scheme):\(reference)"
        }
        guard let schemeEnd = basePath.range(of: "://") else {
            // A base without an authority (urn:...): replace what follows the last '/' or ':'.
            let cut = basePath.lastIndex(where: { $0 == "/" || $0 == ":" }).map { basePath.index(after: $0) } ?? basePath.endIndex
            return String(basePath[..<cut]) + reference
        }
        let afterScheme = basePath[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(of: "/") ?? afterScheme.endIndex
        let origin = String(basePath[..<authorityEnd])
        let basePathPart = String(afterScheme[authorityEnd...])
        let joined: String
        if reference.hasPrefix("/") {
            joined = reference
        } else {
            let directory = basePathPart.lastIndex(of: "/").map { String(basePathPart[...$0]) } ?? "/"
            joined = directory + reference
        }
        return origin + normalize(joined)
    }

    /// Removes `.` and `..` segments from a path (keeping any query or fragment as is).
    static func normalize(_ path: String) -> String {
        let (pathPart, fragment) = path.firstIndex(of: "#").map { (String(path[..<$0]), String(path[$0...])) } ?? (path, "")
        var output: [Substring] = []
        let segments = pathPart.split(separator: "/", omittingEmptySubsequences: false)
        for (position, segment) in segments.enumerated() {
            switch segment {
            case ".": if position == segments.count - 1 { output.append("") }
            case "..":
                if output.count > 1 { output.removeLast() }
                if position == segments.count - 1 { output.append("") }
            default: output.append(segment)
            }
        }
        return output.joined(separator: "/") + fragment
    }
}

/// Resolves a schema reference against a base URI (RFC 3986, as `$ref` does).
public enum URIReferenceResolver {
    public static func resolve(_ reference: String, against base: String) -> String { URIReference.resolve(reference, against: base) }
}
