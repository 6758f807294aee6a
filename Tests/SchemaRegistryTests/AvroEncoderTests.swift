import Foundation
import SchemaRegistry
import TestSupport
import Testing

func encode(_ json: String, _ schema: AvroSchema) throws -> Result<[UInt8], AvroEncoder.Mismatch> {
    AvroEncoder.encode(try JSONParser.parse(json), schema: schema)
}

@Suite struct AvroEncoderTests {
    static let orderSchema = #"""
        {"type": "record", "name": "Order", "namespace": "com.example",
         "fields": [
           {"name": "id", "type": "string"},
           {"name": "qty", "type": "int"},
           {"name": "total", "type": "long"},
           {"name": "ratio", "type": "float"},
           {"name": "score", "type": "double"},
           {"name": "paid", "type": "boolean"},
           {"name": "note", "type": ["null", "string"], "default": null},
           {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}},
           {"name": "tags", "type": {"type": "array", "items": "string"}},
           {"name": "attributes", "type": {"type": "map", "values": "long"}, "default": {}},
           {"name": "checksum", "type": {"type": "fixed", "name": "MD4", "size": 4}},
           {"name": "raw", "type": "bytes"},
           {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
           {"name": "reference", "type": {"type": "string", "logicalType": "uuid"}},
           {"name": "day", "type": {"type": "int", "logicalType": "date"}},
           {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
           {"name": "atMicros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
           {"name": "opens", "type": {"type": "int", "logicalType": "time-millis"}},
           {"name": "line", "type": ["null", {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}]}], "default": null},
           {"name": "channel", "type": "string", "default": "web"}
         ]}
        """#

    @Test func everyTypeEncodesAndFastavroReadsItBack() async throws {
        let schema = try AvroSchema.parse(Self.orderSchema)
        let json = #"""
            {"id": "o-1", "qty": 3, "total": 9007199254740993, "ratio": 0.5, "score": 1.25, "paid": true,
             "note": "gift", "status": "PAID", "tags": ["a", "b"], "attributes": {"w": -2},
             "checksum": "\u0000\u0001\u00fe\u00ff", "raw": "ab", "price": "-12.30",
             "reference": "2b9c1c2e-5f6a-4b8e-9d3c-1a2b3c4d5e6f", "day": "2024-02-29",
             "at": "2024-02-29T12:34:56.789+01:00", "atMicros": "1970-01-01T00:00:00.000001Z", "opens": "09:30:00",
             "line": {"Line": {"sku": "x"}}}
            """#
        let bytes = try encode(json, schema).get()
        let decoded = try await decodeWithFastavro(bytes, schema: Self.orderSchema)
        let expected = #"{"at": "2024-02-29T11:34:56.789000+00:00", "atMicros": "1970-01-01T00:00:00.000001+00:00", "attributes": {"w": -2}, "channel": "web", "checksum": [0, 1, 254, 255], "day": "2024-02-29", "id": "o-1", "line": {"sku": "x"}, "note": "gift", "opens": "09:30:00", "paid": true, "price": "-12.30", "qty": 3, "ratio": 0.5, "raw": [97, 98], "reference": "2b9c1c2e-5f6a-4b8e-9d3c-1a2b3c4d5e6f", "score": 1.25, "status": "PAID", "tags": ["a", "b"], "total": 9007199254740993}"#
        #expect(decoded == expected)
    }

    @Test func plainAndTaggedUnionsAndDefaults() async throws {
        let schema = try AvroSchema.parse(#"""
            {"type": "record", "name": "U", "fields": [
              {"name": "a", "type": ["null", "long", "string"]},
              {"name": "b", "type": ["null", "long", "string"]},
              {"name": "c", "type": ["null", "long", "string"], "default": null},
              {"name": "d", "type": ["string", "null"], "default": "dflt"}]}
            """#)
        let schemaText = #"{"type": "record", "name": "U", "fields": [{"name": "a", "type": ["null", "long", "string"]}, {"name": "b", "type": ["null", "long", "string"]}, {"name": "c", "type": ["null", "long", "string"], "default": null}, {"name": "d", "type": ["string", "null"], "default": "dflt"}]}"#
        let bytes = try encode(#"{"a": "text", "b": {"long": 7}}"#, schema).get()
        #expect(try await decodeWithFastavro(bytes, schema: schemaText) == #"{"a": "text", "b": 7, "c": null, "d": "dflt"}"#)
    }

    @Test func mismatchesAreAllReportedWithPaths() throws {
        let schema = try AvroSchema.parse(Self.orderSchema)
        let json = #"{"id": 1, "qty": 3000000000, "total": 1.5, "ratio": "x", "score": 1, "paid": true, "status": "LOST", "tags": ["a", 2], "attributes": {}, "checksum": "abc", "raw": "\u0100", "price": "1.234", "reference": "nope", "day": "2024-13-01", "at": "2024-01-01T00:00:00", "atMicros": 0, "opens": 0, "extra": true}"#
        guard case .failure(let mismatch) = try encode(json, schema) else { Issue.record("accepted"); return }
        #expect(mismatch.violations.map(\.description) == [
            "$.id: expected string, got integer (1)",
            "$.qty: expected int, got integer (3000000000)",
            "$.total: expected long, got number (1.5)",
            "$.ratio: expected float, got string (\"x\")",
            "$.status: 'LOST' is not a symbol of com.example.Status (NEW, PAID, SHIPPED)",
            "$.tags[1]: expected string, got integer (2)",
            "$.checksum: expected 4 bytes for com.example.MD4, got 3",
            "$.raw: expected bytes (a string of code points 0-255), got string (\"Ā\")",
            "$.price: 1.234 does not fit decimal(9, 2) without rounding",
            "$.reference: expected uuid, got string (\"nope\")",
            "$.day: '2024-13-01' is not a date (YYYY-MM-DD, years 0001-9999)",
            "$.at: '2024-01-01T00:00:00' is not an ISO-8601 timestamp (YYYY-MM-DDTHH:MM:SS[.fffffffff] with a time zone: Z or ±HH:MM, years 0001-9999)",
            "$.extra: com.example.Order has no field 'extra'",
        ])
        guard case .failure(let missing) = try encode(#"{"qty": 1}"#, schema) else { Issue.record("accepted"); return }
        #expect(missing.violations.first?.description == "$.id: required field 'id' of com.example.Order is missing (it has no default)")
    }

    @Test func referencedNamedTypesAndRecursion() async throws {
        let money = #"{"type": "record", "name": "Money", "namespace": "shop", "fields": [{"name": "cents", "type": "long"}]}"#
        let tree = #"{"type": "record", "name": "Node", "namespace": "shop", "fields": [{"name": "price", "type": "Money"}, {"name": "children", "type": {"type": "array", "items": "Node"}}]}"#
        let schema = try AvroSchema.parse(tree, references: [money])
        let bytes = try encode(#"{"price": {"cents": 5}, "children": [{"price": {"cents": 1}, "children": []}]}"#, schema).get()
        #expect(try await decodeWithFastavro(bytes, schema: tree, references: [money]) == #"{"children": [{"children": [], "price": {"cents": 1}}], "price": {"cents": 5}}"#)
        #expect(throws: AvroSchema.ParseError.self) { try AvroSchema.parse(#"{"type": "record", "name": "R", "fields": [{"name": "x", "type": "Missing"}]}"#) }
    }

    @Test func decimalsInBytesAndFixed() async throws {
        let schemaText = #"{"type": "record", "name": "D", "fields": [{"name": "a", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 3}}, {"name": "b", "type": {"type": "fixed", "name": "F", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 0}}]}"#
        let schema = try AvroSchema.parse(schemaText)
        let bytes = try encode(#"{"a": 123456789012.345, "b": "-1e3"}"#, schema).get()
        #expect(try await decodeWithFastavro(bytes, schema: schemaText) == #"{"a": "123456789012.345", "b": "-1000"}"#)
    }
    @Test func theEncoderWritesAfterAPrefixAndFindsUnknownFieldsWhateverTheFieldNames() throws {
        let schema = try AvroSchema.parse(#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}, {"name": "a", "type": "long"}]}"#)
        // The wire-format header first, then the record (zigzag 1 twice).
        #expect(try AvroEncoder.encode(try JSONParser.parse(#"{"a": 1}"#), schema: schema, prefix: ConfluentWireFormat.header(schemaID: 7)).get()
            == [0, 0, 0, 0, 7, 2, 2])
        // Two fields of one name match one member: the other member is still unknown.
        guard case .failure(let mismatch) = try encode(#"{"a": 1, "b": 2}"#, schema) else { Issue.record("accepted"); return }
        #expect(mismatch.violations.map(\.description) == ["$.b: R has no field 'b'"])
    }

    /// Invalid documents get every violation with its path although valid ones are encoded without keeping paths;
    /// members in any order, unions tried in place (what a failed branch wrote is taken back).
    @Test func pathsAndBytesDoNotDependOnMemberOrderOrFailedBranches() async throws {
        let text = #"{"type": "record", "name": "O", "fields": [{"name": "u", "type": ["null", {"type": "record", "name": "A", "fields": [{"name": "x", "type": "long"}, {"name": "y", "type": "string"}]}, {"type": "record", "name": "B", "fields": [{"name": "x", "type": "long"}, {"name": "z", "type": "string"}]}]}, {"name": "list", "type": {"type": "array", "items": "long"}}]}"#
        let schema = try AvroSchema.parse(text)
        let bytes = try encode(#"{"list": [1, 2], "u": {"z": "b", "x": 3}}"#, schema).get()
        #expect(try await decodeWithFastavro(bytes, schema: text) == #"{"list": [1, 2], "u": {"x": 3, "z": "b"}}"#)
        guard case .failure(let mismatch) = try encode(#"{"list": [1, "2", 3, "4"], "u": {"x": "3"}}"#, schema) else { Issue.record("accepted"); return }
        #expect(mismatch.violations.map(\.description) == [
            "$.u: object matches no branch of the union [null, A, B]",
            #"$.list[1]: expected long, got string ("2")"#,
            #"$.list[3]: expected long, got string ("4")"#,
        ])
    }
}
