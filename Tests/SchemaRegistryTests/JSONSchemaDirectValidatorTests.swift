import Foundation
import JSON
@testable import SchemaRegistry
import TestSupport
import Testing

/// `JSONSchemaValidator.validate(json:)` decides that usual documents match while reading the text, and takes the tree
/// path (parse, then validate the tree) otherwise: it must say "matches" only where the tree path does, give the tree
/// path's result on every text, and decide the usual documents itself.
@Suite struct JSONSchemaDirectValidatorTests {
    /// Both paths on one text: the combined result equals the tree path's, and the direct path never says
    /// "matches" where the tree path does not. Returns whether the direct path decided.
    @discardableResult
    static func check(_ bytes: [UInt8], _ validator: JSONSchemaValidator, _ context: @autoclosure () -> String) -> Bool {
        let (combined, tree, direct) = bytes.withUnsafeBytes { buffer in
            (validator.validate(json: buffer, limit: 50), validator.validateThroughTree(json: buffer, limit: 50),
             JSONSchemaValidator.DirectValidator.matches(buffer, validator))
        }
        #expect(combined == tree, "\(context())")
        if direct { #expect(tree == .success([]), "the direct path said it matches, the tree path did not: \(context())") }
        return direct
    }

    /// Every test of the JSON-Schema-Test-Suite (draft 7 and 2020-12), as compact text and as spaced-out text.
    @Test func agreesWithTheTreeOnTheWholeSuite() throws {
        var direct = 0
        var total = 0
        for (draft, version) in [("draft7", JSONSchemaValidator.Draft.draft7), ("draft2020-12", .draft2020)] {
            for file in JSONSchemaConformanceTests.files(draft) {
                let data = try Data(contentsOf: JSONSchemaConformanceTests.suite.appendingPathComponent("tests/\(file)"))
                for group in try #require(try JSONParser.parse([UInt8](data)).arrayValue) {
                    guard let validator = try? JSONSchemaValidator(schema: try #require(group["schema"]), remotes: JSONSchemaConformanceTests.remotes,
                                                                   defaultDraft: version) else { continue }
                    for test in group["tests"]?.arrayValue ?? [] {
                        let document = try #require(test["data"])
                        let compact = JSONWriter.bytes(document)
                        let spaced = Array(" \(JSONWriter.string(document).replacingOccurrences(of: ",", with: " ,\n "))\t".utf8)
                        for text in [compact, spaced] {
                            total += 1
                            if Self.check(text, validator, "\(file): \(group["description"]?.stringValue ?? "?"): \(String(decoding: text, as: UTF8.self))") {
                                direct += 1
                            }
                        }
                    }
                }
            }
        }
        #expect(direct > total / 10, "direct \(direct) of \(total)")
    }

    static let orderSchema = #"""
        {"type": "object", "required": ["id", "customer", "createdAt", "status", "items"], "additionalProperties": false,
         "properties": {
           "id": {"type": "string", "pattern": "^order-[0-9]{4}-[0-9]+$"},
           "customer": {"type": "object", "required": ["id", "name"], "properties": {"id": {"type": "integer"}, "name": {"type": "string", "minLength": 1}, "email": {"type": "string"}}},
           "createdAt": {"type": "string", "format": "date-time"},
           "status": {"enum": ["NEW", "PAID", "SHIPPED"]},
           "note": {"type": ["string", "null"]},
           "meta": {"maxProperties": 2, "additionalProperties": {"type": "integer"}},
           "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "object", "required": ["sku", "qty", "price"],
             "properties": {"sku": {"type": "string"}, "name": {"type": "string"}, "qty": {"type": "integer", "minimum": 1},
                            "price": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"}, "tags": {"type": "array", "items": {"type": "string"}}}}}}}
        """#

    /// The benchmark's order with variations: members in any order, missing or extra, wrong scalars, duplicate keys,
    /// escaped keys, and byte-level mistakes.
    @Test func agreesWithTheTreeOnGeneratedOrders() throws {
        let validator = try JSONSchemaValidator(schema: try JSONParser.parse(Self.orderSchema))
        var random = SeededGenerator(seed: 0x0_5C4E_3A)
        /// Mostly the first (fitting) option, sometimes another.
        func choose(_ options: [String]) -> String { random.below(10) < 8 ? options[0] : random.pick(options) }
        func item() -> String {
            var members = [("sku", choose(["\"S-1\"", "1", "\"\""])), ("name", choose(["\"a\"", "\"é\\n\"", "null"])),
                           ("qty", choose(["1", "0", "2.0", "1e2", "-1", "\"1\""])), ("price", choose(["\"1.99\"", "\"1.9\"", "1.99"])),
                           ("tags", choose(["[]", "[\"a\", \"b\"]", "[1]", "{}"]))]
            if random.below(4) == 0 { members.shuffle(using: &random) }
            if random.below(6) == 0 { members.remove(at: random.below(members.count)) }
            return "{" + members.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
        }
        var direct = 0
        let rounds = 3000
        for round in 0..<rounds {
            var members = [("id", choose(["\"order-2024-1\"", "\"order-24-1\"", "7"])),
                           ("customer", choose(["{\"id\": 42, \"name\": \"Ada\"}", "{\"id\": 4.5, \"name\": \"Ada\"}", "{\"name\": \"\"}",
                                                     "{\"id\": 1, \"name\": \"A\", \"email\": \"a@b\", \"x\": [1, {\"y\": null}]}"])),
                           ("createdAt", choose(["\"2024-05-01T10:00:00Z\"", "\"yesterday\""])),
                           ("status", choose(["\"PAID\"", "\"LOST\"", "\"P\\u0041ID\""])),
                           ("items", "[" + (0..<random.below(4)).map { _ in item() }.joined(separator: ",") + "]")]
            switch random.below(10) {
            case 0: members.append(("note", choose(["null", "\"n\"", "1"])))
            case 1: members.append(("meta", choose(["{}", "{\"a\": 1, \"b\": 2}", "{\"a\": 1, \"b\": 2, \"c\": 3}", "{\"a\": \"x\"}", "[]"])))
            case 2: members.append(("extra", "1"))
            case 3: members.append(members[0])
            case 4: members[0].0 = "\\u0069d"
            case 5: members.shuffle(using: &random)
            default: break
            }
            var bytes = Array(("{" + members.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}").utf8)
            if round % 7 == 6 {
                let alphabet = Array(#"{}[]":,.-e019 tfn"\u"#.utf8) + [0x0A, 0x00, 0xFF]
                bytes[random.below(bytes.count)] = random.pick(alphabet)
            }
            if Self.check(bytes, validator, String(decoding: bytes, as: UTF8.self)) { direct += 1 }
        }
        #expect(direct > rounds / 10, "direct \(direct) of \(rounds)")
    }

    @Test func duplicateKeysAreRefusedWhicheverPathReadsThem() throws {
        let validator = try JSONSchemaValidator(schema: try JSONParser.parse(#"{"type": "object", "properties": {"a": {"type": "integer"}}}"#))
        for text in [#"{"a": 1, "a": 2}"#, #"{"b": 1, "b": 2}"#, #"{"a": 1, "b": {"c": 1, "c": 2}}"#, #"{"a": 1, "\u0061": 2}"#] {
            let result = Array(text.utf8).withUnsafeBytes { validator.validate(json: $0) }
            guard case .failure(let failure) = result else { Issue.record("accepted \(text)"); continue }
            #expect(failure.reason.contains("duplicate key"), "\(text): \(failure)")
        }
    }
}
