import Foundation
import SchemaRegistry
import TestSupport
import Testing

/// Regression tests for hostile or malformed input to the Avro encoder and schema parser (issue 8): each case
/// trapped, hung or produced a wrong value before.
@Suite struct AvroHardeningTests {
    static let routeSchemaText = #"""
        {"type": "record", "name": "Route", "fields": [
          {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
          {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
          {"name": "day", "type": {"type": "int", "logicalType": "date"}},
          {"name": "opens", "type": {"type": "int", "logicalType": "time-millis"}, "default": 0},
          {"name": "count", "type": "long", "default": 0},
          {"name": "ratio", "type": "float", "default": 0},
          {"name": "score", "type": "double", "default": 0}]}
        """#
    static let routeSchema = try! AvroSchema.parse(routeSchemaText)

    /// The route document with `field` replaced by `json`.
    static func document(_ field: String, _ json: String) throws -> JSONValue {
        var object = try #require(try JSONParser.parse(#"{"amount": "1.00", "ts": 0, "day": 0}"#).objectValue)
        object[field] = try JSONParser.parse(json)
        return .object(object)
    }

    /// The violations of the route document with `field` set to `json` (none when it encodes).
    static func violations(_ field: String, _ json: String) throws -> [JSONSchemaViolation] {
        switch AvroEncoder.encode(try document(field, json), schema: routeSchema) {
        case .success: return []
        case .failure(let mismatch): return mismatch.violations
        }
    }

    static func decoded(_ field: String, _ json: String) async throws -> String {
        let bytes = try AvroEncoder.encode(try document(field, json), schema: routeSchema).get()
        return try await decodeWithFastavro(bytes, schema: routeSchemaText)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    @Test(arguments: ["1e-9223372036854775808", "1e9223372036854775807", "-1e9223372036854775807", "1e-9223372036854775807",
                      "1e900000000", "1E+999999999999999999999999", "123e-900000000"])
    func hostileExponentsInDecimalsAreViolationsNotTraps(number: String) throws {
        let clock = ContinuousClock()
        let start = clock.now
        let violations = try Self.violations("amount", number)
        // Far from the milliseconds it takes and from the old failure (a trap, or a loop over the exponent).
        #expect(Self.seconds(clock.now - start) < 20)
        #expect(violations.count == 1)
        #expect(violations.first?.path == "$.amount" && violations.first?.keyword == "decimal", "\(violations)")
        // As a string too.
        #expect(try Self.violations("amount", "\"\(number)\"").map(\.path) == ["$.amount"])
    }

    @Test func millionDigitDecimalStringsAreRefusedInLinearTime() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let digits = String(repeating: "7", count: 1_000_000)
        let tooMany = try Self.violations("amount", "\"\(digits)\"")
        let needsRounding = try Self.violations("amount", "\"0.\(String(repeating: "0", count: 1_000_000))1\"")
        let hugeExponent = try Self.violations("amount", "\"1e\(String(repeating: "9", count: 1_000_000))\"")
        // Generous bounds for debug builds on a busy machine: the old code was quadratic, hours for these.
        let elapsed = Self.seconds(clock.now - start)
        #expect(elapsed < 60, "took \(elapsed) s")
        #expect(tooMany.first?.reason.contains("more than 10 significant digits") == true, "\(tooMany)")
        #expect(needsRounding.first?.reason.contains("without rounding") == true, "\(needsRounding)")
        #expect(hugeExponent.first?.keyword == "decimal")
        // The reason quotes at most 40 characters of the value.
        #expect((tooMany.first?.reason.count ?? .max) < 120)
        // Leading zeros and trailing fraction zeros are no significant digits: this one fits.
        let padded = String(repeating: "0", count: 1_000_000) + "12.5" + String(repeating: "0", count: 1_000_000)
        #expect(try Self.violations("amount", "\"\(padded)\"").isEmpty)
        #expect(Self.seconds(clock.now - start) < 90)
    }

    @Test(arguments: ["abc", "1,5", "", "-", " 12", "12 ", "12.3.4", "1e", "1e+", ".5", "5.", "0x10", "NaN", "Infinity", "1_000", "１２", "+-1"])
    func decimalStringsMustBeDecimalNumbers(text: String) throws {
        // Before: taken as Avro's byte string ("abc" was stored as 63821.79).
        let violations = try Self.violations("amount", try Self.jsonString(text))
        #expect(violations.map(\.path) == ["$.amount"])
        #expect(violations.first?.reason.contains("is not a decimal number") == true, "\(violations)")
    }

    static func jsonString(_ text: String) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed]).dropFirst().dropLast(), as: UTF8.self)
    }

    @Test func decimalStringsAndNumbersEncodeExactly() async throws {
        let cases: [(String, String)] = [
            (#""12.30""#, "12.30"), (#""-0.5""#, "-0.50"), (#""+7""#, "7.00"), (#""1.5e1""#, "15.00"), (#""1200e-2""#, "12.00"),
            ("-0", "0.00"), ("99999999.99", "99999999.99"), ("-99999999.99", "-99999999.99"), ("1E2", "100.00"), ("0.10e1", "1.00"),
            ("-1.28", "-1.28"), ("1.28", "1.28"), ("-1.29", "-1.29"), ("2.55", "2.55"), ("-2.56", "-2.56"), ("-327.68", "-327.68"),
        ]
        for (json, expected) in cases {
            let decoded = try await Self.decoded("amount", json)
            #expect(decoded.contains("\"amount\": \"\(expected)\""), "\(json): \(decoded)")
        }
        #expect(try Self.violations("amount", "123456789.01").first?.reason == "123456789.01 has more than 10 significant digits")
        #expect(try Self.violations("amount", "0.001").first?.reason == "0.001 does not fit decimal(10, 2) without rounding")
    }

    @Test func wideDecimalsInBytesAndFixedMatchFastavro() async throws {
        let schemaText = #"{"type": "record", "name": "W", "fields": [{"name": "a", "type": {"type": "bytes", "logicalType": "decimal", "precision": 60, "scale": 7}}, {"name": "b", "type": {"type": "fixed", "name": "F16", "size": 16, "logicalType": "decimal", "precision": 38, "scale": 4}}]}"#
        let schema = try AvroSchema.parse(schemaText)
        let values: [(String, String, String, String)] = [
            ("-12345678901234567890123456789012345678901234567890.1234567", "-1234567890123456789012345678901234.5678",
             "-12345678901234567890123456789012345678901234567890.1234567", "-1234567890123456789012345678901234.5678"),
            ("0.0000001", "-0.0001", "1E-7", "-0.0001"),
            ("4294967296", "18446744073709551616", "4294967296.0000000", "18446744073709551616.0000"),
        ]
        for (a, b, expectedA, expectedB) in values {
            let bytes = try AvroEncoder.encode(try JSONParser.parse(#"{"a": "\#(a)", "b": \#(b)}"#), schema: schema).get()
            #expect(try await decodeWithFastavro(bytes, schema: schemaText) == #"{"a": "\#(expectedA)", "b": "\#(expectedB)"}"#)
        }
    }

    @Test(arguments: ["2024-01-01T00:00:00+2600000000:00", "2024-01-01T00:00:00-9223372036854775807:00", "2024-01-01T00:00:00+24:00",
                      "2024-01-01T00:00:00+01:60", "2024-01-01T00:00:00+1:00", "2024-01-01T00:00:00+01:0", "2024-01-01T00:00:00+-1:00",
                      "2024-01-01T00:00:00+01", "2024-01-01T00:00:00Z+01:00", "2024-01-01T00:00:00ZZ", "2024-01-01T-1:-1:-1Z",
                      "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z", "2024-01-01T00:00:60Z", "2024-01-01T00:00:00.Z",
                      "2024-01-01T00:00:00.1234567890Z", "2024-1-01T00:00:00Z", "+2024-01-01T00:00:00Z", "2024-01-01"])
    func malformedTimestampsAreViolations(text: String) throws {
        let violations = try Self.violations("ts", "\"\(text)\"")
        #expect(violations.map(\.path) == ["$.ts"], "\(text) was accepted")
        #expect(violations.first?.keyword == "timestamp")
    }

    @Test(arguments: ["-1:-1:-1", "+1:+1:+1", "1:02:03", "01:02:3", "24:00:00", "23:60:00", "23:59:60", "12:00", "12:00:00Z", "12:00:00.", " 12:00:00", "١٢:00:00"])
    func malformedTimesAreViolations(text: String) throws {
        let violations = try Self.violations("opens", "\"\(text)\"")
        #expect(violations.map(\.path) == ["$.opens"], "\(text) was accepted")
    }

    @Test func timesOfDayAsNumbersStayWithinTheDay() async throws {
        #expect(try Self.violations("opens", "-1").map(\.keyword) == ["time"])
        #expect(try Self.violations("opens", "86400000").map(\.keyword) == ["time"])
        #expect(try await Self.decoded("opens", "86399999").contains(#""opens": "23:59:59.999000""#))
    }

    @Test(arguments: ["2024-02-30", "2023-02-29", "2024-04-31", "1900-02-29", "2024-06-31", "2024-00-10", "2024-13-01", "2024-01-00",
                      "0000-01-01", "-001-01-01", "10000-01-01", "2024-1-1", "2024/01/01", "2024-01-+1"])
    func impossibleDatesAreRefused(text: String) throws {
        // Before: 2024-02-30 rolled over to 2024-03-01.
        #expect(try Self.violations("day", "\"\(text)\"").map(\.path) == ["$.day"], "\(text) was accepted")
        #expect(try Self.violations("ts", "\"\(text)T00:00:00Z\"").map(\.path) == ["$.ts"], "\(text)T00:00:00Z was accepted")
    }

    @Test func validDatesAndTimestampsAtTheEdgesMatchFastavro() async throws {
        #expect(try await Self.decoded("day", #""2024-02-29""#).contains(#""day": "2024-02-29""#))
        #expect(try await Self.decoded("day", #""2000-02-29""#).contains(#""day": "2000-02-29""#))
        #expect(try await Self.decoded("day", #""0001-01-01""#).contains(#""day": "0001-01-01""#))
        #expect(try await Self.decoded("day", #""9999-12-31""#).contains(#""day": "9999-12-31""#))
        #expect(try await Self.decoded("ts", #""9999-12-31T23:59:59.999Z""#).contains(#""ts": "9999-12-31T23:59:59.999000+00:00""#))
        #expect(try await Self.decoded("ts", #""2024-03-01T00:30:00+23:59""#).contains(#""ts": "2024-02-29T00:31:00+00:00""#))
        #expect(try await Self.decoded("ts", #""2024-02-29 12:00:00.123456789-01:30""#).contains(#""ts": "2024-02-29T13:30:00.123000+00:00""#))
        #expect(try await Self.decoded("opens", #""23:59:59.999""#).contains(#""opens": "23:59:59.999000""#))
    }

    @Test func timestampMillisBeforeTheEpochRoundDown() async throws {
        // Before: micros / 1000 truncated toward zero, moving pre-1970 instants forward.
        #expect(try await Self.decoded("ts", #""1969-12-31T23:59:59.9995Z""#).contains(#""ts": "1969-12-31T23:59:59.999000+00:00""#))
    }

    @Test func numbersForLongsMustBeExactIntegers() async throws {
        for refused in ["1e300", "1.5", "1e-400", "9223372036854775808", "-9223372036854775809", "1.0000000000000001", "1e19"] {
            #expect(try Self.violations("count", refused).map(\.path) == ["$.count"], "\(refused) was accepted")
            #expect(try Self.violations("ts", refused).map(\.path) == ["$.ts"], "\(refused) was accepted as a timestamp")
        }
        #expect(try Self.violations("day", "2147483648").map(\.path) == ["$.day"])
        // Before: 9007199254740993.0 went through Double and became ...992.
        #expect(try await Self.decoded("count", "9007199254740993.0").contains(#""count": 9007199254740993"#))
        #expect(try await Self.decoded("count", "-0").contains(#""count": 0"#))
        #expect(try await Self.decoded("count", "1e2").contains(#""count": 100"#))
        #expect(try await Self.decoded("count", "-9223372036854775808").contains(#""count": -9223372036854775808"#))
    }

    @Test func floatsAndDoublesBeyondTheirRangeAreRefused() throws {
        #expect(try Self.violations("score", "1e400").map(\.keyword) == ["range"])
        #expect(try Self.violations("score", "-1e309").map(\.keyword) == ["range"])
        #expect(try Self.violations("ratio", "1e39").map(\.keyword) == ["range"])
        #expect(try Self.violations("ratio", "3e38").isEmpty)
        #expect(try Self.violations("score", "1.7976931348623157e308").isEmpty)
    }

    @Test func schemaBoundsAreEnforcedAtParse() throws {
        func refusal(_ text: String) -> String? {
            do { _ = try AvroSchema.parse(text); return nil } catch { return error.message }
        }
        func decimal(_ extra: String) -> String { #"{"type": "bytes", "logicalType": "decimal", \#(extra)}"# }
        #expect(refusal(decimal(#""precision": 1001"#))?.contains("more than the 1000 accepted") == true)
        #expect(refusal(decimal(#""precision": 1000, "scale": 3"#)) == nil)
        #expect(refusal(decimal(#""precision": 5, "scale": 6"#))?.contains("scale") == true)
        #expect(refusal(decimal(#""precision": 5, "scale": -1"#))?.contains("scale") == true)
        #expect(refusal(decimal(#""precision": 1e300"#)) != nil)
        #expect(refusal(#"{"type": "fixed", "name": "F", "size": 1000000000000000}"#)?.contains("size") == true)
        #expect(refusal(#"{"type": "fixed", "name": "F", "size": -1}"#)?.contains("size") == true)
        let deep = String(repeating: #"{"type": "array", "items": "#, count: 200) + #""long""# + String(repeating: "}", count: 200)
        #expect(refusal(deep)?.contains("deeper than 128") == true)
        let fine = String(repeating: #"{"type": "array", "items": "#, count: 100) + #""long""# + String(repeating: "}", count: 100)
        #expect(refusal(fine) == nil)
    }

    @Test func recordsThatRequireThemselvesAreRefused() throws {
        func refusal(_ text: String) -> String? {
            do { _ = try AvroSchema.parse(text); return nil } catch { return error.message }
        }
        #expect(refusal(#"{"type": "record", "name": "A", "fields": [{"name": "a", "type": "A"}]}"#)?
            .contains("record A can have no finite value: its field 'a' always needs a A") == true)
        let mutual = #"{"type": "record", "name": "A", "fields": [{"name": "b", "type": {"type": "record", "name": "B", "fields": [{"name": "a", "type": ["A"]}]}}]}"#
        #expect(refusal(mutual)?.contains("can have no finite value") == true)
        // Recursion through a union with another branch, an array or a map has finite values.
        #expect(refusal(#"{"type": "record", "name": "A", "fields": [{"name": "a", "type": ["null", "A"]}]}"#) == nil)
        #expect(refusal(#"{"type": "record", "name": "A", "fields": [{"name": "a", "type": {"type": "array", "items": "A"}}]}"#) == nil)
        #expect(refusal(#"{"type": "record", "name": "A", "fields": [{"name": "a", "type": {"type": "map", "values": "A"}}]}"#) == nil)
        let chain = #"{"type": "record", "name": "A", "fields": [{"name": "b", "type": {"type": "record", "name": "B", "fields": [{"name": "a", "type": ["A", "null"]}]}}]}"#
        #expect(refusal(chain) == nil)
    }

    @Test func defaultsMustFitAndEndAtParse() async throws {
        func refusal(_ text: String) -> String? {
            do { _ = try AvroSchema.parse(text); return nil } catch { return error.message }
        }
        // Before: encoding {} recursed through the default forever (a crash).
        let endless = #"{"type": "record", "name": "A", "fields": [{"name": "a", "type": ["A", "null"], "default": {}}]}"#
        #expect(refusal(endless)?.contains("field 'a': the default does not fit") == true, "\(refusal(endless) ?? "accepted")")
        #expect(refusal(#"{"type": "record", "name": "R", "fields": [{"name": "n", "type": "int", "default": "x"}]}"#)?.contains("field 'n'") == true)
        #expect(refusal(#"{"type": "record", "name": "R", "fields": [{"name": "n", "type": ["null", "int"], "default": 1}]}"#) != nil)
        // A decimal's default is Avro's JSON encoding of its bytes: "\u0001\u0000" is 256 unscaled.
        let schemaText = #"{"type": "record", "name": "R", "fields": [{"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}, "default": "\u0001\u0000"}]}"#
        let bytes = try AvroEncoder.encode(.object(JSONObject()), schema: try AvroSchema.parse(schemaText)).get()
        #expect(try await decodeWithFastavro(bytes, schema: schemaText) == #"{"d": "2.56"}"#)
    }

    @Test func deepRecursiveDocumentsEncodeAndDeeperOnesAreRefusedByTheParser() throws {
        let schemaText = #"{"type": "record", "name": "Node", "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}"#
        let schema = try AvroSchema.parse(schemaText)
        let depth = 500
        let json = String(repeating: #"{"v": 1, "next": "#, count: depth) + "null" + String(repeating: "}", count: depth)
        let bytes = try AvroEncoder.encode(try JSONParser.parse(json), schema: schema).get()
        #expect(bytes.count == depth * 2)
        let tagged = String(repeating: #"{"v": 1, "next": {"Node": "#, count: 249) + #"{"v": 1, "next": null}"# + String(repeating: "}}", count: 249)
        #expect(try AvroEncoder.encode(try JSONParser.parse(tagged), schema: schema).get().count == 500)
    }

    @Test func unionsOfRecursiveRecordsCannotTakeExponentialTime() throws {
        // Each level offers two record branches that both recurse to the bottom before failing: 2^depth attempts.
        let schema = try AvroSchema.parse(#"""
            {"type": "record", "name": "A", "fields": [{"name": "c", "type": ["null", "A", {"type": "record", "name": "B",
              "fields": [{"name": "c", "type": ["null", "A", "B"]}, {"name": "x", "type": "int"}]}]}, {"name": "x", "type": "int"}]}
            """#)
        let depth = 40
        let json = String(repeating: #"{"x": 1, "c": "#, count: depth) + #"{"x": "bad", "c": null}"# + String(repeating: "}", count: depth)
        let clock = ContinuousClock()
        let start = clock.now
        let result = AvroEncoder.encode(try JSONParser.parse(json), schema: schema)
        let elapsed = Self.seconds(clock.now - start)
        #expect(elapsed < 10, "took \(elapsed) s")  // before: 2^40 attempts
        guard case .failure(let mismatch) = result else { Issue.record("accepted"); return }
        #expect(mismatch.violations.last?.keyword == "limit", "\(mismatch.violations)")
        // A legitimate document of the same shape encodes.
        let valid = String(repeating: #"{"x": 1, "c": "#, count: depth) + #"{"x": 2, "c": null}"# + String(repeating: "}", count: depth)
        #expect(throws: Never.self) { try AvroEncoder.encode(try JSONParser.parse(valid), schema: schema).get() }
    }

    @Test func unknownFieldsAndEnumsAreCheckedInConstantTimeEach() throws {
        let symbols = (0..<20_000).map { "S\($0)" }
        let schemaText = #"{"type": "record", "name": "R", "fields": [{"name": "e", "type": {"type": "array", "items": {"type": "enum", "name": "E", "symbols": [\#(symbols.map { "\"\($0)\"" }.joined(separator: ","))]}}}]}"#
        let schema = try AvroSchema.parse(schemaText)
        let values = (0..<20_000).map { "\"S\(19_999 - $0)\"" }.joined(separator: ",")
        let clock = ContinuousClock()
        let start = clock.now
        let bytes = try AvroEncoder.encode(try JSONParser.parse(#"{"e": [\#(values)]}"#), schema: schema).get()
        #expect(Self.seconds(clock.now - start) < 10)  // before: 2·10^8 comparisons
        #expect(bytes.count > 20_000)
    }
}
