import JSON

/// A subschema compiled once, when the validator is built: every keyword read, `$ref`s resolved, `required`
/// and `properties` gathered, patterns compiled, so validating a document only follows these fields.
///
/// Immutable after compilation. References point into ``JSONSchemaValidator``'s table of reference targets by
/// position (a reference may lead back to an enclosing schema, which an immutable tree cannot hold directly).
final class SchemaNode: Sendable {
    enum Kind: Sendable {
        /// `true`, `{}`-like schemas and values that are not schemas at all (no keyword applies).
        case anything
        /// `false`.
        case nothing
        /// A schema object: its keywords below.
        case keywords
    }

    enum Reference: Sendable {
        /// The position of the target in the validator's reference table.
        case resolved(Int)
        /// A reference that resolves nowhere: the keyword, and the reference as written.
        case unresolved(keyword: String, reference: String)
    }

    /// A `$dynamicRef`: its static target and, when that target declares the same dynamic anchor, the target each
    /// resource of the dynamic scope (by resource number) declaring it leads to.
    struct DynamicReference: Sendable {
        var target: Reference
        var targetsByResource: [Int: Int]
    }

    /// JSON types as bits, for `type`.
    struct TypeSet: OptionSet, Sendable {
        let rawValue: UInt8
        static let null = TypeSet(rawValue: 1)
        static let boolean = TypeSet(rawValue: 2)
        static let integer = TypeSet(rawValue: 4)
        static let number = TypeSet(rawValue: 8)
        static let string = TypeSet(rawValue: 16)
        static let array = TypeSet(rawValue: 32)
        static let object = TypeSet(rawValue: 64)

        init(rawValue: UInt8) { self.rawValue = rawValue }

        /// The type named as JSON Schema names it (`number` includes integers); empty for unknown names.
        init(name: String) {
            switch name {
            case "null": self = .null
            case "boolean": self = .boolean
            case "integer": self = .integer
            case "number": self = [.number, .integer]
            case "string": self = .string
            case "array": self = .array
            case "object": self = .object
            default: self = []
            }
        }

        init(of instance: JSONValue) {
            switch instance {
            case .null: self = .null
            case .bool: self = .boolean
            case .number(let number): self = number.isInteger ? .integer : .number
            case .string: self = .string
            case .array: self = .array
            case .object: self = .object
            }
        }
    }

    /// Immutable keywords kept behind one reference, so that validating reaches them without copying them.
    final class Shared<Value: Sendable>: Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    /// The names `properties` and `required` mention, looked up by name: a short list compared in order (faster
    /// than hashing for a few names), a dictionary for more. Each name has its `properties` schema, if any, and
    /// whether it is required.
    final class PropertyTable: Sendable {
        private static let dictionaryThreshold = 10
        private let names: [String]
        /// The names' UTF-8, for looking up a name as written in a text (``position(ofUTF8:from:)``).
        private let utf8Names: [[UInt8]]
        let nodes: [SchemaNode?]
        let isRequired: [Bool]
        /// How many different names `required` lists.
        let requiredCount: Int
        private let dictionary: [String: Int]?

        init(properties: [(String, SchemaNode)], required: [String]) {
            var names: [String] = []
            var nodes: [SchemaNode?] = []
            var isRequired: [Bool] = []
            var positions: [String: Int] = [:]
            for (name, node) in properties {
                if let position = positions[name] { nodes[position] = node; continue }
                positions[name] = names.count
                names.append(name)
                nodes.append(node)
                isRequired.append(false)
            }
            for name in required {
                if let position = positions[name] { isRequired[position] = true; continue }
                positions[name] = names.count
                names.append(name)
                nodes.append(nil)
                isRequired.append(true)
            }
            self.names = names
            utf8Names = names.map { Array($0.utf8) }
            self.nodes = nodes
            self.isRequired = isRequired
            requiredCount = isRequired.count { $0 }
            dictionary = names.count > Self.dictionaryThreshold ? positions : nil
        }

        var isEmpty: Bool { names.isEmpty }

        /// The position of the name whose UTF-8 is exactly `bytes`, looked for as ``position(of:from:)`` does, among
        /// the few names of a table without a dictionary; nil otherwise, and for a name written in other bytes that
        /// compare equal as strings (canonically equivalent): ``position(of:from:)`` decides those.
        func position(ofUTF8 bytes: UnsafeBufferPointer<UInt8>, from hint: Int) -> Int? {
            guard dictionary == nil else { return nil }
            func matches(_ position: Int) -> Bool {
                utf8Names[position].withUnsafeBufferPointer { name in
                    guard name.count == bytes.count else { return false }
                    for index in 0..<name.count where name[index] != bytes[index] { return false }
                    return true
                }
            }
            let start = hint < utf8Names.count ? hint : 0
            for position in start..<utf8Names.count where matches(position) { return position }
            for position in 0..<start where matches(position) { return position }
            return nil
        }

        /// The position of `name`, looked for from `hint` on (members usually come in the order the schema
        /// declares them, so the first comparison mostly matches), then from the start.
        func position(of name: String, from hint: Int = 0) -> Int? {
            if let dictionary { return dictionary[name] }
            let start = hint < names.count ? hint : 0
            for position in start..<names.count where names[position] == name { return position }
            for position in 0..<start where names[position] == name { return position }
            return nil
        }
    }

    struct NumericBounds: Sendable {
        var multipleOf: JSONNumber?
        var maximum: JSONNumber?
        var maximumIsExclusive = false  // draft 4's boolean `exclusiveMaximum`
        var minimum: JSONNumber?
        var minimumIsExclusive = false
        var exclusiveMaximum: JSONNumber?  // draft 6 and later
        var exclusiveMinimum: JSONNumber?
        var isEmpty: Bool { multipleOf == nil && maximum == nil && minimum == nil && exclusiveMaximum == nil && exclusiveMinimum == nil }
    }

    struct StringBounds: Sendable {
        var maxLength: Double?
        var minLength: Double?
        var pattern: RegularExpression?
        var isEmpty: Bool { maxLength == nil && minLength == nil && pattern == nil }
    }

    struct ArrayKeywords: Sendable {
        var maxItems: Double?
        var minItems: Double?
        var uniqueItems = false
        /// Positional schemas (`prefixItems`, or the array form of `items`) and the schema for the rest.
        var prefix: [SchemaNode] = []
        var rest: SchemaNode?
        var contains: SchemaNode?
        var minContains: Double = 1
        var maxContains: Double?
        /// Whether `contains` marks the items it matched as evaluated (2019-09 and later).
        var containsAnnotates = false
    }

    struct ObjectKeywords: Sendable {
        var maxProperties: Double?
        var minProperties: Double?
        /// `required` as written (violations are reported in its order).
        var required: [String] = []
        /// Whether `properties` is present.
        var hasProperties = false
        var table = PropertyTable(properties: [], required: [])
        var patternProperties: [(RegularExpression, SchemaNode)] = []
        var additionalProperties: SchemaNode?
        /// `additionalProperties: false`, reported as such rather than as a `false` schema.
        var additionalPropertiesIsFalse = false
        var propertyNames: SchemaNode?
        var dependentRequired: [(String, [String])] = []
        var dependentSchemas: [(String, SchemaNode)] = []
        /// Whether the members need a pass at all (any per-member keyword).
        var visitsMembers: Bool {
            hasProperties || !patternProperties.isEmpty || additionalProperties != nil || additionalPropertiesIsFalse || propertyNames != nil
        }
    }

    struct Applicators: Sendable {
        var allOf: [SchemaNode] = []
        var anyOf: [SchemaNode]?
        var oneOf: [SchemaNode]?
        var not: SchemaNode?
        var condition: SchemaNode?
        var then: SchemaNode?
        var otherwise: SchemaNode?
    }

    let kind: Kind
    /// The resource (by number) the schema belongs to, for the dynamic scope.
    let resource: Int
    let reference: Reference?
    /// Up to draft 7, `$ref` hides every other keyword of its schema.
    let referenceHidesSiblings: Bool
    let dynamicReference: DynamicReference?
    /// Draft 2019-09's `$recursiveRef`, followed as a `$ref`.
    let recursiveReference: Reference?
    let types: TypeSet?
    /// The names as written in `type`, for messages.
    let typeNames: [String]
    let enumValues: [JSONValue]?
    let constValue: JSONValue?
    let numeric: Shared<NumericBounds>?
    let string: Shared<StringBounds>?
    let array: Shared<ArrayKeywords>?
    let object: Shared<ObjectKeywords>?
    let applicators: Shared<Applicators>?
    let unevaluatedItems: SchemaNode?
    let unevaluatedProperties: SchemaNode?
    /// `pattern`, as written, for messages.
    let patternText: String
    /// The types, when `type` is the schema's only keyword that validates anything (a leaf such as
    /// `{"type": "string"}`), or every type when it has none: a matching value is valid without looking further.
    let onlyTypes: TypeSet?

    init(kind: Kind, resource: Int, reference: Reference? = nil, referenceHidesSiblings: Bool = false,
         dynamicReference: DynamicReference? = nil, recursiveReference: Reference? = nil, types: TypeSet? = nil, typeNames: [String] = [],
         enumValues: [JSONValue]? = nil, constValue: JSONValue? = nil, numeric: Shared<NumericBounds>? = nil,
         string: Shared<StringBounds>? = nil, patternText: String = "", array: Shared<ArrayKeywords>? = nil,
         object: Shared<ObjectKeywords>? = nil, applicators: Shared<Applicators>? = nil, unevaluatedItems: SchemaNode? = nil, unevaluatedProperties: SchemaNode? = nil) {
        self.kind = kind
        self.resource = resource
        self.reference = reference
        self.referenceHidesSiblings = referenceHidesSiblings
        self.dynamicReference = dynamicReference
        self.recursiveReference = recursiveReference
        self.types = types
        self.typeNames = typeNames
        self.enumValues = enumValues
        self.constValue = constValue
        self.numeric = numeric
        self.string = string
        self.patternText = patternText
        self.array = array
        self.object = object
        self.applicators = applicators
        self.unevaluatedItems = unevaluatedItems
        self.unevaluatedProperties = unevaluatedProperties
        onlyTypes = kind == .keywords && reference == nil && dynamicReference == nil && recursiveReference == nil && enumValues == nil
            && constValue == nil && numeric == nil && string == nil && array == nil && object == nil && applicators == nil
            && unevaluatedItems == nil && unevaluatedProperties == nil ? types ?? TypeSet(rawValue: 0x7F) : nil
    }
}

/// Turns indexed schema documents into ``SchemaNode``s: each subschema once (shared when reached again, by
/// its storage and the base URI and draft it is read under), references through a table filled from a work list.
struct SchemaCompiler {
    typealias Located = JSONSchemaValidator.Located
    typealias Draft = JSONSchemaValidator.Draft

    let index: Indexer
    let patterns: [String: RegularExpression]
    /// Reference targets, by position; `nil` until compiled.
    private(set) var targets: [SchemaNode?] = []
    private var targetPositions: [String: Int] = [:]
    private var pendingTargets: [(position: Int, located: Located)] = []
    private(set) var resourceNumbers: [String: Int] = [:]
    private var compiled: [NodeKey: SchemaNode] = [:]
    /// Whether any schema uses `unevaluatedProperties`/`unevaluatedItems` (annotations must then be collected).
    private(set) var usesUnevaluated = false
    /// Whether any schema uses `$dynamicRef` (the dynamic scope must then be tracked).
    private(set) var usesDynamicScope = false

    private struct NodeKey: Hashable {
        var storage: UInt
        var base: String
        var draft: Draft
    }

    init(index: Indexer, patterns: [String: RegularExpression]) {
        self.index = index
        self.patterns = patterns
    }

    mutating func resourceNumber(_ base: String) -> Int {
        if let number = resourceNumbers[base] { return number }
        let number = resourceNumbers.count
        resourceNumbers[base] = number
        return number
    }

    /// Compiles the root and everything it reaches; returns the root and the reference table.
    mutating func compileAll(root: Located) -> (SchemaNode, [SchemaNode]) {
        let rootNode = compile(root)
        while let pending = pendingTargets.popLast() {
            targets[pending.position] = compile(pending.located)
        }
        return (rootNode, targets.map { $0! })
    }

    private mutating func target(_ reference: String, base: String, keyword: String) -> SchemaNode.Reference {
        guard let resolved = index.resolve(reference, base: base) else { return .unresolved(keyword: keyword, reference: reference) }
        let located = resolved.located
        let fullKey = "\(resolved.key)|\(located.base)|\(located.draft.rawValue)"
        if let position = targetPositions[fullKey] { return .resolved(position) }
        let position = targets.count
        targets.append(nil)
        targetPositions[fullKey] = position
        pendingTargets.append((position, located))
        return .resolved(position)
    }

    /// A subschema applied from a schema read under `parent`: the parent's draft, its base unless it has its own `$id`.
    private mutating func child(_ value: JSONValue, of parent: Located) -> SchemaNode {
        var located = Located(schema: value, base: parent.base, draft: parent.draft)
        if case .object(let object) = value, let id = object[parent.draft == .draft4 ? "id" : "$id"]?.stringValue, !id.hasPrefix("#"),
           !(parent.draft <= .draft7 && object["$ref"] != nil) {
            located.base = URIReference.stripFragment(URIReference.resolve(id, against: parent.base))
        }
        return compile(located)
    }

    private func regex(_ pattern: String) -> RegularExpression? {
        patterns[pattern] ?? RegularExpression(pattern)
    }

    mutating func compile(_ located: Located) -> SchemaNode {
        let resource = resourceNumber(located.base)
        let schema: JSONObject
        switch located.schema {
        case .bool(false): return SchemaNode(kind: .nothing, resource: resource)
        case .object(let object): schema = object
        default: return SchemaNode(kind: .anything, resource: resource)
        }
        let key = NodeKey(storage: schema.members.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) },
                          base: located.base, draft: located.draft)
        if let node = compiled[key] { return node }
        let node = compileKeywords(schema, located, resource: resource)
        compiled[key] = node
        return node
    }

    private mutating func compileKeywords(_ schema: JSONObject, _ located: Located, resource: Int) -> SchemaNode {
        let draft = located.draft
        let reference = schema["$ref"]?.stringValue.map { target($0, base: located.base, keyword: "$ref") }
        if reference != nil, draft <= .draft7 {
            return SchemaNode(kind: .keywords, resource: resource, reference: reference, referenceHidesSiblings: true)
        }
        var dynamicReference: SchemaNode.DynamicReference?
        if draft >= .draft2020, let written = schema["$dynamicRef"]?.stringValue {
            dynamicReference = compileDynamicReference(written, base: located.base)
        }
        var recursiveReference: SchemaNode.Reference?
        if draft == .draft2019, let written = schema["$recursiveRef"]?.stringValue {
            recursiveReference = target(written, base: located.base, keyword: "$ref")  // followed as a plain `$ref`
        }

        // Any type.
        var types: SchemaNode.TypeSet?
        var typeNames: [String] = []
        if let type = schema["type"] {
            typeNames = type.arrayValue?.compactMap(\.stringValue) ?? type.stringValue.map { [$0] } ?? []
            types = typeNames.reduce(into: SchemaNode.TypeSet()) { $0.formUnion(SchemaNode.TypeSet(name: $1)) }
        }
        let enumValues = schema["enum"]?.arrayValue
        let constValue = draft >= .draft6 ? schema["const"] : nil

        // Numbers.
        var numeric = SchemaNode.NumericBounds()
        numeric.multipleOf = schema["multipleOf"]?.numberValue
        numeric.maximum = schema["maximum"]?.numberValue
        numeric.minimum = schema["minimum"]?.numberValue
        if draft == .draft4 {
            numeric.maximumIsExclusive = schema["exclusiveMaximum"]?.boolValue == true
            numeric.minimumIsExclusive = schema["exclusiveMinimum"]?.boolValue == true
        } else {
            numeric.exclusiveMaximum = schema["exclusiveMaximum"]?.numberValue
            numeric.exclusiveMinimum = schema["exclusiveMinimum"]?.numberValue
        }

        // Strings.
        var string = SchemaNode.StringBounds()
        string.maxLength = schema["maxLength"]?.numberValue?.double
        string.minLength = schema["minLength"]?.numberValue?.double
        let patternText = schema["pattern"]?.stringValue ?? ""
        if let pattern = schema["pattern"]?.stringValue { string.pattern = regex(pattern) }

        // Arrays.
        var array = SchemaNode.ArrayKeywords()
        array.maxItems = schema["maxItems"]?.numberValue?.double
        array.minItems = schema["minItems"]?.numberValue?.double
        array.uniqueItems = schema["uniqueItems"]?.boolValue == true
        if draft >= .draft2020 {
            array.prefix = (schema["prefixItems"]?.arrayValue ?? []).map { child($0, of: located) }
            array.rest = schema["items"].map { child($0, of: located) }
        } else if let tuple = schema["items"]?.arrayValue {
            array.prefix = tuple.map { child($0, of: located) }
            array.rest = schema["additionalItems"].map { child($0, of: located) }
        } else {
            array.rest = schema["items"].map { child($0, of: located) }
        }
        if draft >= .draft6, let contains = schema["contains"] {
            array.contains = child(contains, of: located)
            if draft >= .draft2019 {
                array.minContains = schema["minContains"]?.numberValue?.double ?? 1
                array.maxContains = schema["maxContains"]?.numberValue?.double
                array.containsAnnotates = true
            }
        }
        let hasArrayKeywords = array.maxItems != nil || array.minItems != nil || array.uniqueItems || !array.prefix.isEmpty
            || array.rest != nil || array.contains != nil

        // Objects.
        var object = SchemaNode.ObjectKeywords()
        object.maxProperties = schema["maxProperties"]?.numberValue?.double
        object.minProperties = schema["minProperties"]?.numberValue?.double
        object.required = schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let declared = schema["properties"]?.objectValue
        object.hasProperties = declared != nil
        object.table = SchemaNode.PropertyTable(properties: (declared ?? JSONObject()).map { ($0.key, child($0.value, of: located)) },
                                                required: object.required)
        for (pattern, value) in schema["patternProperties"]?.objectValue ?? JSONObject() {
            // A pattern the indexer did not see (in a location reached only by a JSON pointer) is compiled here.
            if let expression = regex(pattern) { object.patternProperties.append((expression, child(value, of: located))) }
        }
        if let additional = schema["additionalProperties"] {
            if case .bool(false) = additional { object.additionalPropertiesIsFalse = true } else { object.additionalProperties = child(additional, of: located) }
        }
        if draft >= .draft6, let names = schema["propertyNames"] { object.propertyNames = child(names, of: located) }
        if draft <= .draft7, let dependencies = schema["dependencies"]?.objectValue {
            for (name, value) in dependencies {
                if let names = value.arrayValue {
                    object.dependentRequired.append((name, names.compactMap(\.stringValue)))
                } else {
                    object.dependentSchemas.append((name, child(value, of: located)))
                }
            }
        }
        if draft >= .draft2019 {
            for (name, value) in schema["dependentRequired"]?.objectValue ?? JSONObject() {
                object.dependentRequired.append((name, value.arrayValue?.compactMap(\.stringValue) ?? []))
            }
            for (name, value) in schema["dependentSchemas"]?.objectValue ?? JSONObject() {
                object.dependentSchemas.append((name, child(value, of: located)))
            }
        }
        let hasObjectKeywords = object.maxProperties != nil || object.minProperties != nil || !object.required.isEmpty
            || object.visitsMembers || !object.dependentRequired.isEmpty || !object.dependentSchemas.isEmpty

        // Applicators.
        var applicators = SchemaNode.Applicators()
        applicators.allOf = (schema["allOf"]?.arrayValue ?? []).map { child($0, of: located) }
        applicators.anyOf = schema["anyOf"]?.arrayValue.map { $0.map { child($0, of: located) } }
        applicators.oneOf = schema["oneOf"]?.arrayValue.map { $0.map { child($0, of: located) } }
        applicators.not = schema["not"].map { child($0, of: located) }
        if draft >= .draft7, let condition = schema["if"] {
            applicators.condition = child(condition, of: located)
            applicators.then = schema["then"].map { child($0, of: located) }
            applicators.otherwise = schema["else"].map { child($0, of: located) }
        }
        let hasApplicators = !applicators.allOf.isEmpty || applicators.anyOf != nil || applicators.oneOf != nil
            || applicators.not != nil || applicators.condition != nil

        var unevaluatedItems: SchemaNode?
        var unevaluatedProperties: SchemaNode?
        if draft >= .draft2019 {
            unevaluatedItems = schema["unevaluatedItems"].map { child($0, of: located) }
            unevaluatedProperties = schema["unevaluatedProperties"].map { child($0, of: located) }
            if unevaluatedItems != nil || unevaluatedProperties != nil { usesUnevaluated = true }
        }
        if dynamicReference != nil { usesDynamicScope = true }

        return SchemaNode(
            kind: .keywords, resource: resource, reference: reference, dynamicReference: dynamicReference,
            recursiveReference: recursiveReference,
            types: types, typeNames: typeNames, enumValues: enumValues, constValue: constValue,
            numeric: numeric.isEmpty ? nil : SchemaNode.Shared(numeric), string: string.isEmpty ? nil : SchemaNode.Shared(string),
            patternText: patternText, array: hasArrayKeywords ? SchemaNode.Shared(array) : nil,
            object: hasObjectKeywords ? SchemaNode.Shared(object) : nil, applicators: hasApplicators ? SchemaNode.Shared(applicators) : nil,
            unevaluatedItems: unevaluatedItems, unevaluatedProperties: unevaluatedProperties)
    }

    private mutating func compileDynamicReference(_ written: String, base: String) -> SchemaNode.DynamicReference {
        let initial = target(written, base: base, keyword: "$dynamicRef")
        var byResource: [Int: Int] = [:]
        // If the initial target is a dynamic anchor, the outermost resource in scope that declares the same
        // dynamic anchor wins (chosen while validating, from the targets gathered here).
        let (_, fragment) = URIReference.split(URIReference.resolve(written, against: base))
        if case .resolved = initial, !fragment.isEmpty, !fragment.hasPrefix("/"),
           index.resolve(written, base: base)?.located.schema["$dynamicAnchor"]?.stringValue == fragment {
            for (resourceBase, names) in index.dynamicAnchors where names.contains(fragment) {
                let number = resourceNumber(resourceBase)
                if case .resolved(let position) = target("#\(fragment)", base: resourceBase, keyword: "$dynamicRef") {
                    byResource[number] = position
                } else if case .resolved(let position) = initial {
                    byResource[number] = position  // declared but unresolvable: the initial target stays
                }
            }
        }
        return SchemaNode.DynamicReference(target: initial, targetsByResource: byResource)
    }
}
