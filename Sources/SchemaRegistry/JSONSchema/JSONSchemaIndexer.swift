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
