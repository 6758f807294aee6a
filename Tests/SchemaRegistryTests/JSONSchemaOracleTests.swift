import Foundation
import SchemaRegistry
import TestSupport
import Testing

/// Python's `jsonschema` (an independent implementation, `scripts/testing/jsonschema-oracle.py`) as a second
/// oracle next to the official suite: realistic schemas, hundreds of generated documents and mutations each
/// (seeded, so a failure reproduces), and the same verdict required for every one.
///
/// No `format` (an annotation) and no `pattern` (its engine is being replaced) in these schemas.
@Suite struct JSONSchemaOracleTests {
    static let schemas: [(name: String, schema: String, seeds: [String])] = [
        ("order (draft 7)", #"""
            {"type": "object", "required": ["id", "qty", "items"], "additionalProperties": false,
             "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 5}, "qty": {"type": "integer", "minimum": 1, "maximum": 10},
                            "note": {"type": ["string", "null"]}, "items": {"type": "array", "minItems": 1, "maxItems": 3,
                            "items": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}, "n": {"type": "number"}}}}},
             "minProperties": 3, "maxProperties": 4}
            """#, [#"{"id": "a", "qty": 2, "items": [{"sku": "x", "n": 1.5}]}"#, #"{"id": "abc", "qty": 10, "note": null, "items": [{"sku": ""}]}"#]),
        ("tags (draft 7)", #"""
            {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 10}, "uniqueItems": true, "minItems": 1, "maxItems": 4,
             "contains": {"const": 3}}
            """#, ["[3]", "[1, 3, 5]", "[0, 10, 3]"]),
        ("amounts (draft 7)", #"""
            {"type": "number", "minimum": 0, "exclusiveMaximum": 100, "multipleOf": 0.5}
            """#, ["0", "99.5", "2.5", "50"]),
        ("enums and const (2020-12)", #"""
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
             "properties": {"kind": {"enum": ["a", "b", 1, null, [1, 2], {"k": 1}]}, "version": {"const": 2}, "flags": {"const": {"x": [true, 1.5]}}}}
            """#, [#"{"kind": "a", "version": 2}"#, #"{"kind": [1, 2], "flags": {"x": [true, 1.5]}}"#, #"{"kind": {"k": 1.0}, "version": 2.0}"#]),
        ("payment (draft 7)", #"""
            {"oneOf": [{"type": "object", "required": ["card"], "properties": {"card": {"type": "string", "minLength": 4}}},
                       {"type": "object", "required": ["iban"], "properties": {"iban": {"type": "string"}}}],
             "anyOf": [{"required": ["amount"]}, {"required": ["free"]}],
             "allOf": [{"properties": {"amount": {"type": "number", "minimum": 0}}}, {"not": {"required": ["both"]}}]}
            """#, [#"{"card": "1234", "amount": 5}"#, #"{"iban": "x", "free": true}"#, #"{"card": "12345", "amount": 0.5}"#]),
        ("shipping (draft 7 if/then/else)", #"""
            {"type": "object", "properties": {"country": {"enum": ["FR", "US", "DE"]}, "zip": {"type": "string"}, "state": {"type": "string"}},
             "if": {"properties": {"country": {"const": "US"}}, "required": ["country"]},
             "then": {"required": ["state", "zip"], "properties": {"zip": {"minLength": 5, "maxLength": 5}}},
             "else": {"not": {"required": ["state"]}}}
            """#, [#"{"country": "US", "state": "CA", "zip": "12345"}"#, #"{"country": "FR", "zip": "75001"}"#, #"{}"#]),
        ("tree ($defs/$ref, 2020-12)", #"""
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#/$defs/node",
             "$defs": {"node": {"type": "object", "required": ["value"], "properties": {"value": {"type": "integer", "minimum": 0},
                       "children": {"type": "array", "maxItems": 3, "items": {"$ref": "#/$defs/node"}}}, "additionalProperties": false}}}
            """#, [#"{"value": 1, "children": [{"value": 2}, {"value": 3, "children": []}]}"#, #"{"value": 0}"#]),
        ("tuple (2020-12 prefixItems, unevaluated)", #"""
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
             "properties": {"point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "items": false},
                            "pair": {"prefixItems": [{"type": "string"}], "unevaluatedItems": {"type": "integer"}}},
             "allOf": [{"properties": {"extra": {"type": "boolean"}}}], "unevaluatedProperties": false}
            """#, [#"{"point": [1, 2.5], "pair": ["a", 1, 2]}"#, #"{"extra": true}"#, #"{"point": [0]}"#]),
        ("profile (draft 7 dependencies, propertyNames)", #"""
            {"type": "object", "propertyNames": {"maxLength": 6}, "dependencies": {"card": ["billing"], "vip": {"required": ["since"]}},
             "properties": {"since": {"type": "integer", "exclusiveMinimum": 1999}, "billing": {"type": "string"}},
             "additionalProperties": {"type": ["string", "integer", "boolean"]}}
            """#, [#"{"card": "x", "billing": "y"}"#, #"{"vip": true, "since": 2000}"#, #"{"name": "ab"}"#]),
        ("inventory (2020-12 dependentRequired, contains)", #"""
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
             "dependentRequired": {"price": ["currency"]}, "dependentSchemas": {"discount": {"properties": {"price": {"minimum": 1}}}},
             "properties": {"price": {"type": "number"}, "currency": {"enum": ["EUR", "USD"]},
                            "stock": {"type": "array", "contains": {"type": "integer", "minimum": 5}, "minContains": 1, "maxContains": 2}}}
            """#, [#"{"price": 2, "currency": "EUR", "stock": [5, 1]}"#, #"{"discount": 1, "price": 1, "currency": "USD"}"#, #"{"stock": [7, 9, 0]}"#]),
    ]

    static let numbers = ["0", "1", "-1", "2", "3", "5", "7", "10", "11", "0.5", "1.5", "2.5", "99.5", "100", "99.9", "1.0", "2.0", "1e1",
                          "5e-1", "-0", "2000", "1999", "0.25", "3.0"]
    static let strings = ["", "a", "x", "abc", "12345", "1234", "US", "FR", "EUR", "USD", "toolong", "é"]

    /// Member names worth trying: those the schema mentions, and a few others.
    static func names(in schema: JSONValue) -> [String] {
        var names: Set<String> = ["other", "x"]
        var pending = [schema]
        while let value = pending.popLast() {
            switch value {
            case .object(let object):
                for (key, member) in object {
                    if !key.hasPrefix("$") { names.insert(key) }
                    pending.append(member)
                }
            case .array(let array): pending.append(contentsOf: array)
            case .string(let string) where string.count < 10 && !string.hasPrefix("#") && !string.contains(":"): names.insert(string)
            default: break
            }
        }
        return names.sorted()
    }

    static func randomValue(_ random: inout SeededGenerator, names: [String], depth: Int) -> String {
        switch random.below(depth > 2 ? 4 : 7) {
        case 0: return random.pick(numbers)
        case 1: return "\"\(random.pick(strings))\""
        case 2: return random.pick(["true", "false", "null"])
        case 3: return random.pick(numbers)
        case 4:
            return "[" + (0..<random.below(5)).map { _ in randomValue(&random, names: names, depth: depth + 1) }.joined(separator: ", ") + "]"
        default:
            var keys = Set<String>()
            for _ in 0..<random.below(5) { keys.insert(random.pick(names)) }
            return "{" + keys.sorted().map { "\"\($0)\": \(randomValue(&random, names: names, depth: depth + 1))" }.joined(separator: ", ") + "}"
        }
    }

    /// A seed document changed in one place: a member replaced, removed or added, an element replaced, removed or added.
    static func mutate(_ value: JSONValue, _ random: inout SeededGenerator, names: [String], depth: Int = 0) -> String {
        switch value {
        case .object(let object) where random.below(4) != 0 || depth == 0:
            var members = object.members.map { ($0.key, render($0.value)) }
            switch random.below(4) {
            case 0 where !members.isEmpty: members.remove(at: random.below(members.count))
            case 1:
                let key = random.pick(names)
                members.removeAll { $0.0 == key }
                members.append((key, randomValue(&random, names: names, depth: depth + 1)))
            case 2 where !members.isEmpty:
                let position = random.below(members.count)
                members[position].1 = mutate(object.members[position].value, &random, names: names, depth: depth + 1)
            default:
                if !members.isEmpty {
                    let position = random.below(members.count)
                    members[position].1 = randomValue(&random, names: names, depth: depth + 1)
                }
            }
            return "{" + members.map { "\(try! jsonString($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
        case .array(let array) where random.below(4) != 0 || depth == 0:
            var elements = array.map(render)
            switch random.below(4) {
            case 0 where !elements.isEmpty: elements.remove(at: random.below(elements.count))
            case 1: elements.insert(randomValue(&random, names: names, depth: depth + 1), at: random.below(elements.count + 1))
            case 2 where !elements.isEmpty:
                let position = random.below(elements.count)
                elements[position] = mutate(array[position], &random, names: names, depth: depth + 1)
            default:
                if !elements.isEmpty { elements.append(elements[random.below(elements.count)]) }  // a duplicate
            }
            return "[" + elements.joined(separator: ", ") + "]"
        default:
            return randomValue(&random, names: names, depth: depth + 1)
        }
    }

    static func jsonString(_ text: String) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: [text]).dropFirst().dropLast(), as: UTF8.self)
    }

    static func render(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let bool): String(bool)
        case .number(let number): number.text
        case .string(let string): try! jsonString(string)
        case .array(let array): "[" + array.map(render).joined(separator: ", ") + "]"
        case .object(let object): "{" + object.members.map { "\(try! jsonString($0.key)): \(render($0.value))" }.joined(separator: ", ") + "}"
        }
    }

    /// Runs the oracle on `{schema, instance}` lines; one verdict per line.
    static func oracle(_ lines: [String]) async throws -> [String] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../scripts/testing/jsonschema-oracle.py").standardized.path
        let result = try await runProcess("python3", [script], input: Data((lines.joined(separator: "\n") + "\n").utf8))
        try #require(result.status == 0, "the oracle failed: \(result.stderrText)")
        return result.stdoutText.split(separator: "\n").map(String.init)
    }

    @Test func verdictsMatchPythonJsonschema() async throws {
        var lines: [String] = []
        var cases: [(schema: String, validator: JSONSchemaValidator, instance: String)] = []
        for (index, entry) in Self.schemas.enumerated() {
            let schema = try JSONParser.parse(entry.schema)
            let validator = try JSONSchemaValidator(schema: schema)
            let names = Self.names(in: schema)
            var random = SeededGenerator(seed: 0x5EED_0000 + UInt64(index))
            var instances = entry.seeds
            let seeds = try entry.seeds.map { try JSONParser.parse($0) }
            for round in 0..<400 {
                if round % 4 == 0 {
                    instances.append(Self.randomValue(&random, names: names, depth: 0))
                } else {
                    var document = random.pick(seeds)
                    // One to three mutations in a row.
                    for _ in 0...random.below(3) { document = try JSONParser.parse(Self.mutate(document, &random, names: names)) }
                    instances.append(Self.render(document))
                }
            }
            let compactSchema = Self.render(schema)
            for instance in instances {
                lines.append(#"{"schema": \#(compactSchema), "instance": \#(instance)}"#)
                cases.append((entry.name, validator, instance))
            }
        }
        let verdicts = try await Self.oracle(lines)
        try #require(verdicts.count == cases.count, "the oracle answered \(verdicts.count) of \(cases.count): \(verdicts.suffix(3))")
        var valid = [String: Int]()
        var invalid = [String: Int]()
        var disagreements: [String] = []
        for (position, entry) in cases.enumerated() {
            let ours = entry.validator.validate(try JSONParser.parse(entry.instance))
            let theirs = verdicts[position]
            if ours.isEmpty { valid[entry.schema, default: 0] += 1 } else { invalid[entry.schema, default: 0] += 1 }
            if (ours.isEmpty ? "valid" : "invalid") != theirs {
                disagreements.append("\(entry.schema): \(entry.instance): kbridge \(ours.isEmpty ? "valid" : "invalid (\(ours[0]))"), jsonschema \(theirs)")
            }
        }
        print("jsonschema oracle: \(cases.count) documents over \(Self.schemas.count) schemas, \(disagreements.count) disagreements; valid per schema: \(valid.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        #expect(disagreements.isEmpty, "\(disagreements.prefix(20).joined(separator: "\n"))")
        // Both verdicts occur for every schema, or the generator tests little.
        for entry in Self.schemas {
            #expect((valid[entry.name] ?? 0) >= 10 && (invalid[entry.name] ?? 0) >= 10, "\(entry.name): \(valid[entry.name] ?? 0) valid, \(invalid[entry.name] ?? 0) invalid")
        }
    }
}
