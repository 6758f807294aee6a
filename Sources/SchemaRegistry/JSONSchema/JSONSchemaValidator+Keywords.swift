import JSON
import Foundation

extension JSONSchemaValidator {
    /// The evaluation of one schema object against one instance: each keyword in turn, then the `unevaluated*`
    /// keywords over what the others (and valid in-place subschemas) evaluated.
    struct Context {
        let validator: JSONSchemaValidator
        let instance: JSONValue
        let schema: JSONObject
        let located: Located
        let path: String
        let dynamicScope: [String]
        let collect: Bool
        /// How many evaluations enclose this one.
        let depth: Int
        private(set) var valid = true
        private(set) var annotations = Annotations()

        init(validator: JSONSchemaValidator, instance: JSONValue, schema: JSONObject, located: Located, path: String,
             dynamicScope: [String], collect: Bool, depth: Int) {
            self.validator = validator
            self.instance = instance
            self.schema = schema
            self.located = located
            self.path = path
            // Entering a new resource extends the dynamic scope.
            self.dynamicScope = dynamicScope.last == located.base ? dynamicScope : dynamicScope + [located.base]
            self.collect = collect
            self.depth = depth
        }

        var draft: Draft { located.draft }

        private mutating func fail(_ sink: inout ViolationSink, _ keyword: String, _ reason: String, at path: String? = nil) {
            valid = false
            if collect { sink.add(path ?? self.path, keyword, reason) }
        }

        private func subschema(_ value: JSONValue) -> Located { Located(schema: value, base: located.base, draft: draft) }

        /// Evaluates `value` as a subschema in place (same instance) or for a child instance.
        private func apply(_ value: JSONValue, to instance: JSONValue, at path: String, sink: inout ViolationSink, collect: Bool) -> Annotations? {
            var located = subschema(value)
            if case .object(let object) = value, let id = object[draft == .draft4 ? "id" : "$id"]?.stringValue, !id.hasPrefix("#"),
               !(draft <= .draft7 && object["$ref"] != nil) {
                located.base = URIReference.stripFragment(URIReference.resolve(id, against: self.located.base))
            }
            return validator.evaluate(instance, located, path: path, dynamicScope: dynamicScope, sink: &sink, collect: collect, depth: depth + 1)
        }

        mutating func run(sink: inout ViolationSink) -> Annotations? {
            if let target = schema["$ref"]?.stringValue {
                reference(target, sink: &sink)
                // Up to draft 7, `$ref` hides every other keyword of its schema.
                if draft <= .draft7 { return valid ? annotations : nil }
            }
            if draft >= .draft2020, let reference = schema["$dynamicRef"]?.stringValue { dynamicReference(reference, sink: &sink) }
            if draft == .draft2019, let reference = schema["$recursiveRef"]?.stringValue { self.reference(reference, sink: &sink) }
            generic(sink: &sink)
            switch instance {
            case .number(let number): numeric(number, sink: &sink)
            case .string(let string): text(string, sink: &sink)
            case .array(let array): items(array, sink: &sink)
            case .object(let object): properties(object, sink: &sink)
            default: break
            }
            applicators(sink: &sink)
            if draft >= .draft2019 {
                if case .array(let array) = instance { unevaluatedItems(array, sink: &sink) }
                if case .object(let object) = instance { unevaluatedProperties(object, sink: &sink) }
            }
            return valid ? annotations : nil
        }

        // MARK: References

        private mutating func reference(_ reference: String, sink: inout ViolationSink) {
            guard let target = validator.resolve(reference, base: located.base) else {
                fail(&sink, "$ref", "the schema's $ref '\(reference)' resolves to nothing")
                return
            }
            follow(target, keyword: "$ref", sink: &sink)
        }

        private mutating func dynamicReference(_ reference: String, sink: inout ViolationSink) {
            guard var target = validator.resolve(reference, base: located.base) else {
                fail(&sink, "$dynamicRef", "the schema's $dynamicRef '\(reference)' resolves to nothing")
                return
            }
            // If the initial target is a dynamic anchor, the outermost resource in scope that declares the same
            // dynamic anchor wins.
            let (_, fragment) = URIReference.split(URIReference.resolve(reference, against: located.base))
            if !fragment.isEmpty, !fragment.hasPrefix("/"), target.schema["$dynamicAnchor"]?.stringValue == fragment {
                for resource in dynamicScope where validator.hasDynamicAnchor(fragment, in: resource) {
                    if let outer = validator.resolve("#\(fragment)", base: resource) { target = outer }
                    break
                }
            }
            follow(target, keyword: "$dynamicRef", sink: &sink)
        }

        private mutating func follow(_ target: Located, keyword: String, sink: inout ViolationSink) {
            if let result = validator.evaluate(instance, target, path: path, dynamicScope: dynamicScope, sink: &sink, collect: collect, depth: depth + 1) {
                annotations.merge(result)
            } else {
                valid = false
            }
        }

        // MARK: Any type

        private mutating func generic(sink: inout ViolationSink) {
            if let type = schema["type"] {
                let allowed = type.arrayValue?.compactMap(\.stringValue) ?? type.stringValue.map { [$0] } ?? []
                let actual = instance.typeName
                let matches = allowed.contains { expected in expected == actual || (expected == "number" && actual == "integer") }
                if !matches {
                    fail(&sink, "type", "expected \(allowed.joined(separator: " or ")), got \(actual)\(Self.preview(instance))")
                }
            }
            if let options = schema["enum"]?.arrayValue, !options.contains(where: { $0.jsonEquals(instance) }) {
                fail(&sink, "enum", "\(Self.preview(instance, bare: true)) is not one of \(options.prefix(10).map { Self.preview($0, bare: true) }.joined(separator: ", "))")
            }
            if draft >= .draft6, let constant = schema["const"], !constant.jsonEquals(instance) {
                fail(&sink, "const", "must be \(Self.preview(constant, bare: true))")
            }
        }

        // MARK: Numbers

        /// Exact comparisons (no rounding through `Double`), linear in the numbers' texts, which the parser bounds.
        private mutating func numeric(_ number: JSONNumber, sink: inout ViolationSink) {
            let shown = Self.abbreviated(number.text)
            if let divisor = schema["multipleOf"]?.numberValue, !number.isMultiple(of: divisor) {
                fail(&sink, "multipleOf", "\(shown) is not a multiple of \(Self.abbreviated(divisor.text))")
            }
            if let maximum = schema["maximum"]?.numberValue {
                let exclusive = draft == .draft4 && schema["exclusiveMaximum"]?.boolValue == true
                let order = JSONNumber.compare(number, maximum)
                if exclusive ? order >= 0 : order > 0 {
                    fail(&sink, "maximum", "\(shown) is greater than \(exclusive ? "or equal to " : "")\(Self.format(maximum))")
                }
            }
            if let minimum = schema["minimum"]?.numberValue {
                let exclusive = draft == .draft4 && schema["exclusiveMinimum"]?.boolValue == true
                let order = JSONNumber.compare(number, minimum)
                if exclusive ? order <= 0 : order < 0 {
                    fail(&sink, "minimum", "\(shown) is less than \(exclusive ? "or equal to " : "")\(Self.format(minimum))")
                }
            }
            if draft >= .draft6 {
                if let maximum = schema["exclusiveMaximum"]?.numberValue, JSONNumber.compare(number, maximum) >= 0 {
                    fail(&sink, "exclusiveMaximum", "\(shown) is not less than \(Self.format(maximum))")
                }
                if let minimum = schema["exclusiveMinimum"]?.numberValue, JSONNumber.compare(number, minimum) <= 0 {
                    fail(&sink, "exclusiveMinimum", "\(shown) is not greater than \(Self.format(minimum))")
                }
            }
        }

        static func format(_ number: JSONNumber) -> String {
            if let integer = number.int64 { return String(integer) }
            return abbreviated(number.text)
        }

        static func abbreviated(_ text: String) -> String {
            text.utf8.count > 40 ? String(text.prefix(40)) + "…" : text
        }

        // MARK: Strings

        private mutating func text(_ string: String, sink: inout ViolationSink) {
            let length = string.unicodeScalars.count
            if let maximum = schema["maxLength"]?.numberValue?.double, Double(length) > maximum {
                fail(&sink, "maxLength", "is \(length) characters long, more than \(Self.format(maximum))")
            }
            if let minimum = schema["minLength"]?.numberValue?.double, Double(length) < minimum {
                fail(&sink, "minLength", "is \(length) characters long, fewer than \(Self.format(minimum))")
            }
            if let pattern = schema["pattern"]?.stringValue, let regex = validator.regex(pattern), !regex.matches(string) {
                fail(&sink, "pattern", "does not match the pattern \(pattern)")
            }
        }

        // MARK: Arrays

        private mutating func items(_ array: [JSONValue], sink: inout ViolationSink) {
            if let maximum = schema["maxItems"]?.numberValue?.double, Double(array.count) > maximum {
                fail(&sink, "maxItems", "has \(array.count) items, more than \(Self.format(maximum))")
            }
            if let minimum = schema["minItems"]?.numberValue?.double, Double(array.count) < minimum {
                fail(&sink, "minItems", "has \(array.count) items, fewer than \(Self.format(minimum))")
            }
            if schema["uniqueItems"]?.boolValue == true, let (first, second) = Self.firstRepeat(in: array) {
                fail(&sink, "uniqueItems", "items \(first) and \(second) are equal")
            }
            // Positional items: `prefixItems` (2020-12) or the array form of `items` (earlier drafts).
            let prefix: [JSONValue]
            let rest: JSONValue?
            if draft >= .draft2020 {
                prefix = schema["prefixItems"]?.arrayValue ?? []
                rest = schema["items"]
            } else if let tuple = schema["items"]?.arrayValue {
                prefix = tuple
                rest = schema["additionalItems"]
            } else {
                prefix = []
                rest = schema["items"]
            }
            for (position, item) in array.enumerated() {
                let itemPath = "\(path)[\(position)]"
                if position < prefix.count {
                    if apply(prefix[position], to: item, at: itemPath, sink: &sink, collect: collect) == nil { valid = false }
                    annotations.items.insert(position)
                } else if let rest {
                    if apply(rest, to: item, at: itemPath, sink: &sink, collect: collect) == nil { valid = false }
                    annotations.allItems = true
                }
                if !collect && !valid { return }
            }
            if draft >= .draft6, let contains = schema["contains"] {
                var matches = 0
                for (position, item) in array.enumerated() {
                    var quiet = sink.quiet()
                    let matched = apply(contains, to: item, at: "\(path)[\(position)]", sink: &quiet, collect: false) != nil
                    sink.absorb(quiet)
                    if matched {
                        matches += 1
                        if draft >= .draft2019 { annotations.items.insert(position) }
                    }
                }
                let minimum = draft >= .draft2019 ? schema["minContains"]?.numberValue?.double ?? 1 : 1
                if Double(matches) < minimum {
                    fail(&sink, "contains", matches == 0 ? "no item matches the 'contains' schema"
                        : "\(matches) items match the 'contains' schema, fewer than \(Self.format(minimum))")
                }
                if draft >= .draft2019, let maximum = schema["maxContains"]?.numberValue?.double, Double(matches) > maximum {
                    fail(&sink, "maxContains", "\(matches) items match the 'contains' schema, more than \(Self.format(maximum))")
                }
            }
        }

        private mutating func unevaluatedItems(_ array: [JSONValue], sink: inout ViolationSink) {
            guard let unevaluated = schema["unevaluatedItems"], !annotations.allItems else { return }
            for (position, item) in array.enumerated() where !annotations.items.contains(position) {
                if case .bool(false) = unevaluated {
                    fail(&sink, "unevaluatedItems", "no item is allowed here", at: "\(path)[\(position)]")
                } else if apply(unevaluated, to: item, at: "\(path)[\(position)]", sink: &sink, collect: collect) == nil {
                    valid = false
                }
            }
            annotations.allItems = true
        }

        // MARK: Objects

        private mutating func properties(_ object: JSONObject, sink: inout ViolationSink) {
            if let maximum = schema["maxProperties"]?.numberValue?.double, Double(object.count) > maximum {
                fail(&sink, "maxProperties", "has \(object.count) properties, more than \(Self.format(maximum))")
            }
            if let minimum = schema["minProperties"]?.numberValue?.double, Double(object.count) < minimum {
                fail(&sink, "minProperties", "has \(object.count) properties, fewer than \(Self.format(minimum))")
            }
            for name in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where object[name] == nil {
                fail(&sink, "required", "required property '\(name)' is missing")
            }
            let declared = schema["properties"]?.objectValue
            let patterned = schema["patternProperties"]?.objectValue
            for (name, value) in object {
                let childPath = Self.childPath(path, name)
                var matched = false
                if let property = declared?[name] {
                    matched = true
                    if apply(property, to: value, at: childPath, sink: &sink, collect: collect) == nil { valid = false }
                }
                for (pattern, property) in patterned ?? JSONObject() where validator.regex(pattern)?.matches(name) == true {
                    matched = true
                    if apply(property, to: value, at: childPath, sink: &sink, collect: collect) == nil { valid = false }
                }
                if matched {
                    annotations.properties.insert(name)
                } else if let additional = schema["additionalProperties"] {
                    annotations.properties.insert(name)
                    if case .bool(false) = additional {
                        fail(&sink, "additionalProperties", "property '\(name)' is not allowed", at: childPath)
                    } else if apply(additional, to: value, at: childPath, sink: &sink, collect: collect) == nil {
                        valid = false
                    }
                }
                if let names = schema["propertyNames"], draft >= .draft6 {
                    var quiet = sink.quiet()
                    let matched = apply(names, to: .string(name), at: childPath, sink: &quiet, collect: false) != nil
                    sink.absorb(quiet)
                    if !matched {
                        fail(&sink, "propertyNames", "the property name '\(name)' does not match 'propertyNames'", at: childPath)
                    }
                }
                if !collect && !valid { return }
            }
            // dependencies (drafts 4-7), dependentRequired and dependentSchemas (2019-09 and later).
            var required: [(String, [String])] = []
            var dependent: [(String, JSONValue)] = []
            if draft <= .draft7, let dependencies = schema["dependencies"]?.objectValue {
                for (name, value) in dependencies {
                    if let names = value.arrayValue { required.append((name, names.compactMap(\.stringValue))) } else { dependent.append((name, value)) }
                }
            }
            if draft >= .draft2019 {
                for (name, value) in schema["dependentRequired"]?.objectValue ?? JSONObject() {
                    required.append((name, value.arrayValue?.compactMap(\.stringValue) ?? []))
                }
                for (name, value) in schema["dependentSchemas"]?.objectValue ?? JSONObject() { dependent.append((name, value)) }
            }
            for (name, names) in required where object[name] != nil {
                for missing in names where object[missing] == nil {
                    fail(&sink, "dependentRequired", "property '\(missing)' is required when '\(name)' is present")
                }
            }
            for (name, dependentSchema) in dependent where object[name] != nil {
                if let result = apply(dependentSchema, to: instance, at: path, sink: &sink, collect: collect) {
                    annotations.merge(result)
                } else {
                    valid = false
                }
            }
        }

        private mutating func unevaluatedProperties(_ object: JSONObject, sink: inout ViolationSink) {
            guard let unevaluated = schema["unevaluatedProperties"] else { return }
            for (name, value) in object where !annotations.properties.contains(name) {
                let childPath = Self.childPath(path, name)
                if case .bool(false) = unevaluated {
                    fail(&sink, "unevaluatedProperties", "property '\(name)' is not allowed", at: childPath)
                } else if apply(unevaluated, to: value, at: childPath, sink: &sink, collect: collect) == nil {
                    valid = false
                }
                annotations.properties.insert(name)
            }
        }

        // MARK: Applicators

        private mutating func applicators(sink: inout ViolationSink) {
            for member in schema["allOf"]?.arrayValue ?? [] {
                if let result = apply(member, to: instance, at: path, sink: &sink, collect: collect) { annotations.merge(result) } else { valid = false }
            }
            if let members = schema["anyOf"]?.arrayValue {
                var any = false
                for member in members {
                    var quiet = sink.quiet()
                    let result = apply(member, to: instance, at: path, sink: &quiet, collect: false)
                    sink.absorb(quiet)
                    if let result {
                        any = true
                        annotations.merge(result)
                    }
                }
                if !any { fail(&sink, "anyOf", "matches none of the \(members.count) schemas of 'anyOf'\(Self.preview(instance))") }
            }
            if let members = schema["oneOf"]?.arrayValue {
                var matching: [Int] = []
                for (position, member) in members.enumerated() {
                    var quiet = sink.quiet()
                    let result = apply(member, to: instance, at: path, sink: &quiet, collect: false)
                    sink.absorb(quiet)
                    if let result {
                        matching.append(position)
                        annotations.merge(result)
                    }
                }
                if matching.count != 1 {
                    fail(&sink, "oneOf", matching.isEmpty ? "matches none of the \(members.count) schemas of 'oneOf'"
                        : "matches \(matching.count) schemas of 'oneOf' (\(matching.map(String.init).joined(separator: ", "))), not exactly one")
                }
            }
            if let negated = schema["not"] {
                var quiet = sink.quiet()
                let matched = apply(negated, to: instance, at: path, sink: &quiet, collect: false) != nil
                sink.absorb(quiet)
                // An aborted evaluation is no match, but the document is refused anyway (the sink says why).
                if matched {
                    fail(&sink, "not", "matches the schema of 'not'")
                }
            }
            if draft >= .draft7, let condition = schema["if"] {
                var quiet = sink.quiet()
                let branch: (String, JSONValue?)
                let conditionResult = apply(condition, to: instance, at: path, sink: &quiet, collect: false)
                sink.absorb(quiet)
                if let result = conditionResult {
                    annotations.merge(result)
                    branch = ("then", schema["then"])
                } else {
                    branch = ("else", schema["else"])
                }
                if let consequence = branch.1 {
                    if let result = apply(consequence, to: instance, at: path, sink: &sink, collect: collect) {
                        annotations.merge(result)
                    } else {
                        valid = false
                    }
                }
            }
        }

        /// The first item equal to an earlier one, and that earlier one: linear expected time, by a hash
        /// consistent with `jsonEquals` (equal hashes are confirmed with it).
        static func firstRepeat(in array: [JSONValue]) -> (Int, Int)? {
            var first: [Int: Int] = [:]  // hash → the first item with it
            var others: [Int: [Int]] = [:]  // hash → later, different items with the same hash (rare)
            first.reserveCapacity(array.count)
            for (position, item) in array.enumerated() {
                let hash = item.jsonHash
                guard let earliest = first[hash] else {
                    first[hash] = position
                    continue
                }
                if array[earliest].jsonEquals(item) { return (earliest, position) }
                if let earlier = others[hash]?.first(where: { array[$0].jsonEquals(item) }) { return (earlier, position) }
                others[hash, default: []].append(position)
            }
            return nil
        }

        // MARK: Messages

        static func childPath(_ path: String, _ name: String) -> String {
            // ASCII letters, digits and '_', not starting with a digit: written as `.name`, anything else as `["name"]`.
            let isIdentifier = !name.isEmpty && name.utf8.allSatisfy { byte in
                (byte >= 97 && byte <= 122) || (byte >= 65 && byte <= 90) || (byte >= 48 && byte <= 57) || byte == 95
            } && !(name.utf8.first! >= 48 && name.utf8.first! <= 57)
            if isIdentifier { return "\(path).\(name)" }
            var escaped = ByteBufferWriter()
            escaped.string(name)
            return "\(path)[\(escaped.text)]"
        }

        static func format(_ value: Double) -> String {
            value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        }

        /// ` ("abc")` for scalars, for messages such as `expected integer, got string ("12,5")`.
        static func preview(_ value: JSONValue, bare: Bool = false) -> String {
            let text: String
            switch value {
            case .null: text = "null"
            case .bool(let bool): text = String(bool)
            case .number(let number): text = number.text
            case .string(let string):
                var writer = ByteBufferWriter()
                writer.string(string.count > 40 ? String(string.prefix(40)) + "…" : string)
                text = writer.text
            case .array: text = "an array"
            case .object: text = "an object"
            }
            if bare { return text }
            if case .array = value { return "" }
            if case .object = value { return "" }
            return " (\(text))"
        }
    }
}

/// A JSON string literal for messages.
struct ByteBufferWriter {
    private(set) var text = ""
    mutating func string(_ value: String) {
        text += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            default:
                if scalar.value < 0x20 { text += String(format: "\\u%04x", scalar.value) } else { text.unicodeScalars.append(scalar) }
            }
        }
        text += "\""
    }
}
