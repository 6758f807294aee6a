import Foundation
import SchemaRegistry
import TestSupport
import Testing

/// Kong 3.16's `payload_encoding`: unions in Avro's JSON encoding (`avro_json`), as plain JSON (`simple_json`),
/// or either (`auto`, kbridge's default when the configuration does not say). Field defaults are read the same
/// way in every mode.
@Suite struct AvroPayloadEncodingTests {
    static let schemaText = #"""
        {"type": "record", "name": "P", "namespace": "shop", "fields": [
          {"name": "amount", "type": ["null", "double"]},
          {"name": "label", "type": ["null", "string"], "default": null},
          {"name": "money", "type": ["null", {"type": "record", "name": "Money", "fields": [
            {"name": "cents", "type": "long"}, {"name": "note", "type": ["null", "string"], "default": null}]}], "default": null},
          {"name": "either", "type": ["string", {"type": "map", "values": "string"}], "default": "d"},
          {"name": "list", "type": {"type": "array", "items": ["null", "long"]}, "default": []},
          {"name": "color", "type": ["null", {"type": "enum", "name": "Color", "symbols": ["RED", "BLUE"]}], "default": null}]}
        """#
    static let schema = try! AvroSchema.parse(schemaText)

    static func encode(_ json: String, _ encoding: AvroEncoder.UnionEncoding) throws -> Result<[UInt8], AvroEncoder.Mismatch> {
        AvroEncoder.encode(try JSONParser.parse(json), schema: schema, unionEncoding: encoding)
    }

    static func decoded(_ json: String, _ encoding: AvroEncoder.UnionEncoding) async throws -> String {
        try await decodeWithFastavro(try encode(json, encoding).get(), schema: schemaText)
    }

    static func violations(_ json: String, _ encoding: AvroEncoder.UnionEncoding) throws -> [String] {
        switch try encode(json, encoding) {
        case .success: return []
        case .failure(let mismatch): return mismatch.violations.map(\.description)
        }
    }

    static let tagged = #"""
        {"amount": {"double": 1.5}, "label": null, "money": {"shop.Money": {"cents": 5, "note": {"string": "n"}}},
         "either": {"map": {"k": "v"}}, "list": [null, {"long": 3}], "color": {"Color": "BLUE"}}
        """#
    static let plain = #"""
        {"amount": 1.5, "label": null, "money": {"cents": 5, "note": "n"}, "either": {"k": "v"}, "list": [null, 3], "color": "BLUE"}
        """#
    static let expected = #"{"amount": 1.5, "color": "BLUE", "either": {"k": "v"}, "label": null, "list": [null, 3], "money": {"cents": 5, "note": "n"}}"#

    @Test func avroJSONTakesTaggedUnionsWithFullOrShortNamesAndBareNull() async throws {
        #expect(try await Self.decoded(Self.tagged, .avroJSON) == Self.expected)
        // A named type's short name, and {"null": null}, name their branches too.
        let short = Self.tagged.replacingOccurrences(of: "shop.Money", with: "Money").replacingOccurrences(of: #""label": null"#, with: #""label": {"null": null}"#)
        #expect(try await Self.decoded(short, .avroJSON) == Self.expected)
    }

    @Test func avroJSONRefusesPlainValuesWithThePathAndAnExample() throws {
        #expect(try Self.violations(#"{"amount": 1.5}"#, .avroJSON) == [
            #"$.amount: a union value must be tagged in Avro's JSON encoding, e.g. {"double": 1.5}; payload_encoding: simple_json accepts plain JSON"#,
        ])
        // Nested unions: within a tagged record, within an array; the path follows the document (tags included).
        #expect(try Self.violations(#"{"amount": null, "money": {"Money": {"cents": 5, "note": "n"}}, "list": [null, 3]}"#, .avroJSON) == [
            #"$.money.Money.note: a union value must be tagged in Avro's JSON encoding, e.g. {"string": "n"}; payload_encoding: simple_json accepts plain JSON"#,
            #"$.list[1]: a union value must be tagged in Avro's JSON encoding, e.g. {"long": 3}; payload_encoding: simple_json accepts plain JSON"#,
        ])
        // A plain record: the example is the record's branch, tagged.
        #expect(try Self.violations(#"{"amount": null, "money": {"cents": 5, "note": null}}"#, .avroJSON) == [
            #"$.money: a union value must be tagged in Avro's JSON encoding, e.g. {"shop.Money": {…}}; payload_encoding: simple_json accepts plain JSON"#,
        ])
        // A tag that names no branch, and a tagged value that does not fit its branch.
        #expect(try Self.violations(#"{"amount": {"float": 1.5}}"#, .avroJSON) == [
            #"$.amount: 'float' names no branch of the union [null, double]; a union value must be tagged in Avro's JSON encoding, e.g. {"double": {…}}; payload_encoding: simple_json accepts plain JSON"#,
        ])
        #expect(try Self.violations(#"{"amount": {"double": "x"}}"#, .avroJSON) == [#"$.amount.double: expected double, got string ("x")"#])
        // The map branch of a union needs its tag too: {"k": "v"} is no tag.
        #expect(try Self.violations(#"{"amount": null, "either": {"k": "v"}}"#, .avroJSON).first?.hasPrefix(
            #"$.either: 'k' names no branch of the union [string, map]; a union value must be tagged"#) == true)
    }

    @Test func simpleJSONTakesPlainValuesAndNeverReadsAnObjectAsATag() async throws {
        #expect(try await Self.decoded(Self.plain, .simpleJSON) == Self.expected)
        // {"string": "x"} is a map here.
        #expect(try await Self.decoded(#"{"amount": null, "either": {"string": "x"}}"#, .simpleJSON).contains(#""either": {"string": "x"}"#))
        #expect(try Self.violations(#"{"amount": {"double": 1.5}}"#, .simpleJSON) == [
            "$.amount: object matches no branch of the union [null, double]",
        ])
        #expect(try Self.violations(#"{"amount": null, "money": {"Money": {"cents": 5}}}"#, .simpleJSON) == [
            "$.money: object matches no branch of the union [null, shop.Money]",
        ])
    }

    @Test func autoTakesBothAndReadsAOneMemberObjectNamingAFittingBranchAsATag() async throws {
        #expect(try await Self.decoded(Self.tagged, .auto) == Self.expected)
        #expect(try await Self.decoded(Self.plain, .auto) == Self.expected)
        // The ambiguity rule: {"string": "x"} names the string branch and "x" fits it, so it is the tagged string;
        // {"string": 1} does not fit the string branch and is tried as plain JSON (a map of strings: 1 is no string).
        #expect(try await Self.decoded(#"{"amount": null, "either": {"string": "x"}}"#, .auto).contains(#""either": "x""#))
        #expect(try await Self.decoded(#"{"amount": null, "either": {"strings": "x"}}"#, .auto).contains(#""either": {"strings": "x"}"#))
        #expect(try Self.violations(#"{"amount": null, "either": {"string": 1}}"#, .auto) == [
            "$.either: object matches no branch of the union [string, map]",
        ])
    }

    @Test(arguments: AvroEncoder.UnionEncoding.allCases)
    func fieldDefaultsAreReadAsAvroSaysInEveryMode(encoding: AvroEncoder.UnionEncoding) async throws {
        // label, money, either ("d", the first branch), list and color take their defaults.
        let amount = encoding == .simpleJSON ? "2.5" : #"{"double": 2.5}"#
        #expect(try await Self.decoded(#"{"amount": \#(amount)}"#, encoding)
            == #"{"amount": 2.5, "color": null, "either": "d", "label": null, "list": [], "money": null}"#)
        #expect(try await Self.decoded(#"{"amount": null}"#, encoding).hasPrefix(#"{"amount": null,"#))
    }

    /// A union default that is a record holding a union: read as before (plain or tagged), whatever the mode.
    @Test(arguments: AvroEncoder.UnionEncoding.allCases)
    func nestedUnionsInsideDefaultsDoNotDependOnTheMode(encoding: AvroEncoder.UnionEncoding) async throws {
        let text = #"""
            {"type": "record", "name": "D", "fields": [{"name": "box", "type": [{"type": "record", "name": "Box", "fields": [
              {"name": "v", "type": ["null", "long"]}]}, "null"], "default": {"v": 7}}]}
            """#
        let bytes = try AvroEncoder.encode(.object(JSONObject()), schema: try AvroSchema.parse(text), unionEncoding: encoding).get()
        #expect(try await decodeWithFastavro(bytes, schema: text) == #"{"box": {"v": 7}}"#)
    }
}
