import SchemaRegistry
import Testing

@Suite struct JSONSchemaValidatorTests {
    static let order = try! JSONParser.parse(#"""
        {"type": "object", "required": ["order"], "additionalProperties": false,
         "properties": {"order": {"type": "object", "required": ["id", "items"],
           "properties": {"id": {"type": "string", "pattern": "^o-[0-9]+$"},
                          "items": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/item"}}}}},
         "definitions": {"item": {"type": "object", "required": ["sku", "qty"],
           "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}}}
        """#)

    @Test func everyViolationNamesItsPath() throws {
        let validator = try JSONSchemaValidator(schema: Self.order)
        let document = try JSONParser.parse(#"""
            {"order": {"id": "x-1", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}, {"sku": "c", "qty": "2"}, {"qty": 1}]},
             "extra": true, "odd key": 1}
            """#)
        #expect(validator.validate(document).map(\.description) == [
            "$.order.id: does not match the pattern ^o-[0-9]+$",
            "$.order.items[1].qty: 0 is less than 1",
            "$.order.items[2].qty: expected integer, got string (\"2\")",
            "$.order.items[3]: required property 'sku' is missing",
            "$.extra: property 'extra' is not allowed",
            "$[\"odd key\"]: property 'odd key' is not allowed",
        ])
        #expect(validator.validate(document, limit: 2).count == 2)
        #expect(validator.validate(try JSONParser.parse(#"{"order": {"id": "o-1", "items": [{"sku": "a", "qty": 3}]}}"#)).isEmpty)
    }

    @Test func theDraftComesFromSchemaAndDefaultsToDraft7() throws {
        let draft4 = try JSONSchemaValidator(schema: try JSONParser.parse(#"{"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 5, "exclusiveMaximum": true}"#))
        #expect(draft4.draft == .draft4)
        #expect(!draft4.validate(.number(JSONNumber(text: "5"))).isEmpty)
        let draft6 = try JSONSchemaValidator(schema: try JSONParser.parse(#"{"$schema": "http://json-schema.org/draft-06/schema#", "exclusiveMaximum": 5}"#))
        #expect(draft6.draft == .draft6 && !draft6.validate(.number(JSONNumber(text: "5"))).isEmpty)
        #expect(try JSONSchemaValidator(schema: .object(JSONObject())).draft == .draft7)
        let draft2020 = try JSONSchemaValidator(schema: try JSONParser.parse(#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "prefixItems": [{"type": "string"}], "items": false}"#))
        #expect(draft2020.validate(try JSONParser.parse(#"["a", 1]"#)).map(\.path) == ["$[1]"])
    }

    @Test func referencesResolveToRegistryDocuments() throws {
        let validator = try JSONSchemaValidator(
            schema: try JSONParser.parse(#"{"type": "object", "properties": {"price": {"$ref": "money.json"}}}"#),
            baseURI: "http://registry.local/subjects/order", remotes: ["http://registry.local/subjects/money.json": try JSONParser.parse(#"{"type": "number", "minimum": 0}"#)])
        #expect(validator.validate(try JSONParser.parse(#"{"price": -1}"#)).map(\.description) == ["$.price: -1 is less than 0"])
    }

    @Test func keywordsApplyInSubschemasReachedOnlyByAJSONPointer() throws {
        // Before: `pattern` was looked up among the patterns found while indexing, which does not descend into
        // unknown keywords, so a pattern reached only through such a `$ref` was silently skipped.
        let validator = try JSONSchemaValidator(schema: try JSONParser.parse(
            ##"{"properties": {"code": {"$ref": "#/x-shared/code"}}, "x-shared": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}}"##))
        #expect(validator.validate(try JSONParser.parse(#"{"code": "EUR"}"#)).isEmpty)
        #expect(validator.validate(try JSONParser.parse(#"{"code": "euro"}"#)).map(\.description) == ["$.code: does not match the pattern ^[A-Z]{3}$"])
    }

    @Test func aValidDocumentAndAnInvalidOneAlternateWithTheSameAnswers() throws {
        // Valid documents are decided by a quiet first pass; invalid ones are evaluated again for their violations.
        let validator = try JSONSchemaValidator(schema: Self.order)
        let valid = try JSONParser.parse(#"{"order": {"id": "o-1", "items": [{"sku": "a", "qty": 3}]}}"#)
        let invalid = try JSONParser.parse(#"{"order": {"id": "o-1", "items": [{"sku": "a", "qty": 3}, {"qty": 0}]}}"#)
        for _ in 0..<3 {
            #expect(validator.validate(valid).isEmpty)
            #expect(validator.validate(invalid).map(\.description) == [
                "$.order.items[1]: required property 'sku' is missing", "$.order.items[1].qty: 0 is less than 1",
            ])
        }
    }

    @Test func anInvalidPatternIsASchemaError() {
        #expect(throws: JSONSchemaError.self) { try JSONSchemaValidator(schema: try JSONParser.parse(#"{"pattern": "("}"#)) }
    }
}

@Suite struct JSONParserTests {
    @Test func valuesNumbersAndEscapes() throws {
        let value = try JSONParser.parse(#"{"a": [1, -2.50, 1e3, 12345678901234567890], "s": "\u00e9\ud83d\ude00\n", "n": null, "t": true}"#)
        let array = value["a"]?.arrayValue ?? []
        let numbers = array.compactMap(\.numberValue)
        try #require(numbers.count == 4)
        #expect(numbers.map(\.text) == ["1", "-2.50", "1e3", "12345678901234567890"])
        #expect(numbers[0].int64 == 1 && numbers[2].isInteger && numbers[3].int64 == nil)
        #expect(value["s"]?.stringValue == "é😀\n")
        #expect(value["n"] == .null && value["t"] == .bool(true))
        #expect(value.objectValue?.keys == ["a", "s", "n", "t"])
    }

    @Test(arguments: [("{", "expected a string key"), ("[1,]", "expected a value"), (#""\ud800""#, "unpaired surrogate"), ("01", "unexpected data"), ("", "expected a value")])
    func errorsSayWhereAndWhy(text: String, reason: String) {
        let error = #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
        #expect(error?.reason.contains(reason) == true, "\(error.map { "\($0)" } ?? "accepted")")
    }
}
