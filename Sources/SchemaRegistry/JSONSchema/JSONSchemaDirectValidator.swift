import JSON

extension JSONSchemaValidator {
    /// Validates a JSON text (a request body), refusing duplicate keys: the same result as parsing it with
    /// ``JSONParser/parse(_:duplicateKeys:)`` (`.refuse`) and validating the tree with ``validate(_:limit:)``.
    ///
    /// A document that matches a schema of the usual keywords is validated straight from the text, in one pass,
    /// without building the tree (``DirectValidator``); any other, and every document that does not match, takes the
    /// tree path, which finds every violation with its path.
    public func validate(json bytes: UnsafeRawBufferPointer, limit: Int = 100) -> Result<[JSONSchemaViolation], JSONParser.Failure> {
        if DirectValidator.matches(bytes, self) { return .success([]) }
        return validateThroughTree(json: bytes, limit: limit)
    }

    /// The tree path alone (what ``validate(json:limit:)`` falls back to), for comparing the two in tests.
    func validateThroughTree(json bytes: UnsafeRawBufferPointer, limit: Int) -> Result<[JSONSchemaViolation], JSONParser.Failure> {
        do {
            return .success(validate(try JSONParser.parse(bytes, duplicateKeys: .refuse), limit: limit))
        } catch {
            return .failure(error)
        }
    }

    /// Decides that a text matches the schema while reading it, for the usual schemas: objects and arrays are read
    /// member by member against `properties`, `required`, `additionalProperties`, `minProperties`/`maxProperties`,
    /// `items`/`prefixItems`, `minItems`/`maxItems`; every scalar (string, number, boolean, null) is built as the
    /// parser builds it and evaluated by the tree validator's own ``Evaluator`` against its whole subschema, so every
    /// keyword applies to scalars exactly as there. A container under a subschema with any other keyword (`$ref`,
    /// `allOf`/`anyOf`/`oneOf`/`not`/`if`, `enum`/`const`, `patternProperties`, `propertyNames`, dependencies,
    /// `uniqueItems`, `contains`), schemas that need annotations or the dynamic scope, nesting beyond
    /// ``maximumDepth``, and anything that does not match end this path with no verdict: the tree path then decides.
    /// So it only ever says "matches" where the tree path does: that is checked on the JSON-Schema-Test-Suite and on
    /// generated documents in the tests.
    ///
    /// Bounded as the tree path is: the parser's limits for what it reads, the evaluator's budget (20,000
    /// evaluations, from which it does not grow here) and depth.
    struct DirectValidator {
        static let maximumDepth = 32
        /// The table of an object schema without object keywords (immutable).
        static let noProperties = SchemaNode.PropertyTable(properties: [], required: [])
        /// Members outside `properties` an object may have here (their names are compared with each other, to
        /// refuse duplicates); more take the tree path.
        static let maximumOtherMembers = 16

        /// The reason to take the tree path.
        struct FallBack: Error {}

        var reader: JSONReader
        var evaluator: Evaluator

        static func matches(_ bytes: UnsafeRawBufferPointer, _ validator: JSONSchemaValidator) -> Bool {
            guard !validator.tracksAnnotations, !validator.tracksDynamicScope, let reader = try? JSONReader(bytes) else { return false }
            // The document is not known here: the evaluation budget stays at its fixed part (a document needing more
            // takes the tree path, where it grows with the document).
            var direct = DirectValidator(reader: reader,
                                         evaluator: Evaluator(validator: validator, document: .null, limit: 1, tracksPath: false))
            do {
                try direct.validate(validator.root, depth: 0)
            } catch {
                return false
            }
            return direct.reader.isAtEnd()
        }

        /// The value at the cursor against `node`; `depth` counts the arrays and objects around it (the depth at
        /// which the tree validator evaluates it too).
        mutating func validate(_ node: SchemaNode, depth: Int) throws(FallBack) {
            guard let next = reader.peek() else { throw FallBack() }
            if next == UInt8(ascii: "{") || next == UInt8(ascii: "[") {
                guard depth < Self.maximumDepth else { throw FallBack() }
                switch node.kind {
                case .nothing: throw FallBack()
                case .anything: return try skip(depth: depth)
                case .keywords: break
                }
                let type: SchemaNode.TypeSet = next == UInt8(ascii: "{") ? .object : .array
                // A matching type-only schema: valid whatever the value holds.
                if let only = node.onlyTypes, !only.isDisjoint(with: type) { return try skip(depth: depth) }
                guard node.reference == nil, node.dynamicReference == nil, node.recursiveReference == nil, node.applicators == nil,
                      node.unevaluatedItems == nil, node.unevaluatedProperties == nil, node.enumValues == nil, node.constValue == nil
                else { throw FallBack() }
                if let types = node.types, types.isDisjoint(with: type) { throw FallBack() }
                if type == .object { try validateObject(node.object?.value, depth: depth) } else { try validateArray(node.array?.value, depth: depth) }
                return
            }
            // A string under a matching type-only schema (`{"type": "string"}`): nothing to build.
            if next == UInt8(ascii: "\""), let only = node.onlyTypes, only.contains(.string), node.kind == .keywords {
                do {
                    if try reader.rawString() != nil { return }
                } catch {
                    throw FallBack()
                }
            }
            let value: JSONValue
            do {
                value = try reader.value(depth: depth)
            } catch {
                throw FallBack()
            }
            var discarded = Annotations()
            guard evaluator.evaluate(value, node, collect: false, depth: depth, annotations: &discarded), !evaluator.isAborted else { throw FallBack() }
        }

        /// A value no keyword looks into, read (and checked) as the parser reads it.
        private mutating func skip(depth: Int) throws(FallBack) {
            do {
                _ = try reader.value(depth: depth)
            } catch {
                throw FallBack()
            }
        }

        private mutating func expect(_ byte: UInt8) throws(FallBack) {
            guard reader.consume(byte) else { throw FallBack() }
        }

        /// The key at the cursor: its position in `table` when its bytes are a name's, else the key itself.
        private mutating func key(in table: SchemaNode.PropertyTable, hint: Int) throws(FallBack) -> (position: Int?, name: String?) {
            do {
                if let raw = try reader.rawString() {
                    if let position = table.position(ofUTF8: raw, from: hint) { return (position, nil) }
                    return (nil, String(decoding: raw, as: UTF8.self))
                }
                guard reader.peek() == UInt8(ascii: "\""), case .string(let key) = try reader.value(depth: 0) else { throw FallBack() }
                return (nil, key)
            } catch {
                throw FallBack()
            }
        }

        private mutating func validateObject(_ keywords: SchemaNode.ObjectKeywords?, depth: Int) throws(FallBack) {
            if let keywords {
                guard keywords.patternProperties.isEmpty, keywords.propertyNames == nil, keywords.dependentRequired.isEmpty,
                      keywords.dependentSchemas.isEmpty else { throw FallBack() }
            }
            let table = keywords?.table ?? Self.noProperties
            guard table.nodes.count <= 64 else { throw FallBack() }
            try expect(UInt8(ascii: "{"))
            var seen: UInt64 = 0  // the table's names met (a name met twice is a duplicate key)
            var others: [String] = []  // other names met, for the same check
            var requiredPresent = 0
            var count = 0
            var hint = 0
            if !reader.consume(UInt8(ascii: "}")) {
                repeat {
                    let (found, name) = try key(in: table, hint: hint)
                    try expect(UInt8(ascii: ":"))
                    count += 1
                    var property: SchemaNode?
                    if let position = found ?? name.flatMap({ table.position(of: $0, from: hint) }) {
                        hint = position + 1
                        guard seen & (1 << position) == 0 else { throw FallBack() }
                        seen |= 1 << position
                        if table.isRequired[position] { requiredPresent += 1 }
                        property = table.nodes[position]
                    } else if let name {
                        guard others.count < Self.maximumOtherMembers, !others.contains(name) else { throw FallBack() }
                        others.append(name)
                    }
                    if property == nil, let keywords {
                        if keywords.additionalPropertiesIsFalse { throw FallBack() }
                        property = keywords.additionalProperties
                    }
                    if let property { try validate(property, depth: depth + 1) } else { try skip(depth: depth + 1) }
                } while reader.consume(UInt8(ascii: ","))
                try expect(UInt8(ascii: "}"))
            }
            guard let keywords else { return }
            guard requiredPresent == table.requiredCount else { throw FallBack() }
            if let maximum = keywords.maxProperties, Double(count) > maximum { throw FallBack() }
            if let minimum = keywords.minProperties, Double(count) < minimum { throw FallBack() }
        }

        private mutating func validateArray(_ keywords: SchemaNode.ArrayKeywords?, depth: Int) throws(FallBack) {
            if let keywords { guard !keywords.uniqueItems, keywords.contains == nil else { throw FallBack() } }
            try expect(UInt8(ascii: "["))
            var count = 0
            if !reader.consume(UInt8(ascii: "]")) {
                repeat {
                    let item: SchemaNode?
                    if let keywords { item = count < keywords.prefix.count ? keywords.prefix[count] : keywords.rest } else { item = nil }
                    if let item { try validate(item, depth: depth + 1) } else { try skip(depth: depth + 1) }
                    count += 1
                } while reader.consume(UInt8(ascii: ","))
                try expect(UInt8(ascii: "]"))
            }
            guard let keywords else { return }
            if let maximum = keywords.maxItems, Double(count) > maximum { throw FallBack() }
            if let minimum = keywords.minItems, Double(count) < minimum { throw FallBack() }
        }
    }
}
