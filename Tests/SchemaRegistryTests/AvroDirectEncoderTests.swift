import Foundation
import JSON
@testable import SchemaRegistry
import TestSupport
import Testing

/// `AvroEncoder.encode(json:)` encodes the usual record straight from the text, and takes the tree path (parse,
/// then encode the tree) for everything else: it must give exactly the tree path's result on every text, and take
/// the direct path for the documents it is meant for.
@Suite struct AvroDirectEncoderTests {
    static let schemas: [String] = [
        // The benchmark's order (Sources/SchemaBenchmark).
        #"""
        {"type": "record", "name": "Order", "fields": [
          {"name": "id", "type": "string"},
          {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}, {"name": "email", "type": ["null", "string"], "default": null}]}},
          {"name": "createdAt", "type": {"type": "long", "logicalType": "timestamp-millis"}},
          {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}},
          {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
            {"name": "sku", "type": "string"}, {"name": "name", "type": "string"}, {"name": "qty", "type": "int"},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "tags", "type": {"type": "array", "items": "string"}}]}}},
          {"name": "note", "type": ["null", "string"], "default": null}]}
        """#,
        // Null second, records in unions, a default in the middle, maps, arrays of arrays, three-branch unions.
        #"""
        {"type": "record", "name": "Event", "namespace": "com.example", "fields": [
          {"name": "kind", "type": ["string", "null"]},
          {"name": "line", "type": ["null", {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}, {"name": "n", "type": "int", "default": 1}]}], "default": null},
          {"name": "channel", "type": "string", "default": "web"},
          {"name": "grid", "type": {"type": "array", "items": {"type": "array", "items": "double"}}},
          {"name": "attributes", "type": {"type": "map", "values": "long"}, "default": {}},
          {"name": "either", "type": ["null", "long", "string"], "default": null},
          {"name": "flag", "type": "boolean", "default": false},
          {"name": "ratio", "type": "float", "default": 0.5},
          {"name": "raw", "type": "bytes", "default": ""},
          {"name": "day", "type": {"type": "int", "logicalType": "date"}, "default": 0}]}
        """#,
        // Scalars and unions at the top.
        #"["null", "string"]"#, #""long""#, #"{"type": "array", "items": ["null", "int"]}"#,
    ]

    /// A JSON text for `schema`, usually fitting it, with the variations clients write (members out of order or
    /// missing, tagged and plain unions, escapes, numbers written as 1.0 or 1e2) and mistakes.
    static func text(for schema: AvroSchema, _ random: inout SeededGenerator, depth: Int = 0) -> String {
        if random.below(40) == 0 { return random.pick(["null", "true", "1", "\"x\"", "[]", "{}", "1.5", "\"\\u00e9\""]) }
        switch schema.resolved {
        case .null: return "null"
        case .boolean: return random.pick(["true", "false"])
        case .int, .long:
            return random.pick(["0", "-0", "7", "-12", "2147483647", "2147483648", "9007199254740993", "1.0", "1e2", "12345678901234567890", "-9223372036854775808"])
        case .float, .double: return random.pick(["0.5", "1", "-2.25e3", "1e39", "3.4e38", "0.1", "1e400"])
        case .string, .bytes: return random.pick(["\"\"", "\"abc\"", "\"é\"", "\"a\\\"b\"", "\"\\u00e9\"", "\"x\\ny\"", "\"a string longer than fifteen bytes\"", "\"\u{1F600}\""])
        case .enumeration(let enumeration): return "\"\(random.pick(enumeration.symbols + ["OTHER"]))\""
        case .fixed(let fixed): return "\"" + String(repeating: "a", count: fixed.size) + "\""
        case .logical(let logical, let base):
            switch logical {
            case .decimal:
                return random.pick(["\"1.99\"", "12.5", "\"abc\"", "0", "\"-0.01\"", "123456789.123", "\"0.10\"", "\"00.50\"", "\"-12.30\"",
                                    "\"99999999.99\"", "\"100000000.00\"", "\"1.999\"", "\"1.990\"", "\"1.\"", "\"-\"", "\"+1.5\"", "\"1e2\"",
                                    "\"0.000\"", "\"-0\"", "\"12345678901234567890.00\"", "\"1234567890123456789\"", "\"7\"", "\".5\"", "\"1.2.3\""])
            case .timestampMillis, .timestampMicros, .localTimestampMillis, .localTimestampMicros:
                return random.pick(["\"2024-05-01T10:00:00.123Z\"", "\"2024-05-01T10:00:00+02:00\"", "\"2024-02-30T10:00:00Z\"", "1714557600123"])
            case .date: return random.pick(["\"2024-05-01\"", "\"2024-13-01\"", "19844"])
            default: return text(for: base, &random, depth: depth)
            }
        case .array(let items):
            let count = depth > 3 ? 0 : random.below(4)
            return "[" + (0..<count).map { _ in text(for: items, &random, depth: depth + 1) }.joined(separator: random.pick([",", " , ", ",\n"])) + "]"
        case .map(let values):
            let count = depth > 3 ? 0 : random.below(3)
            return "{" + (0..<count).map { index in "\"k\(index % 2)\": " + text(for: values, &random, depth: depth + 1) }.joined(separator: ",") + "}"
        case .record(let record):
            var members = record.fields.map { field in (field.name, text(for: field.type, &random, depth: depth + 1)) }
            switch random.below(12) {
            case 0: members.shuffle(using: &random)
            case 1 where !members.isEmpty: members.removeLast()
            case 2 where !members.isEmpty: members.remove(at: random.below(members.count))
            case 3: members.append(("unknown", "1"))
            case 4 where !members.isEmpty: members.append(members[0])
            case 5 where !members.isEmpty: members[0].0 = members[0].0.replacingOccurrences(of: "i", with: "\\u0069")
            default: break
            }
            return "{" + members.map { "\"\($0.0)\"" + random.pick([":", " : "]) + $0.1 }.joined(separator: random.pick([",", ", "])) + "}"
        case .union(let branches):
            if random.below(3) == 0 { return "null" }
            let branch = random.pick(branches)
            let value = text(for: branch, &random, depth: depth + 1)
            return random.below(2) == 0 ? "{\"\(branch.branchName)\": \(value)}" : value
        case .reference: return "null"
        }
    }

    /// Byte-level mistakes: a character removed, inserted or replaced.
    static func mutate(_ text: String, _ random: inout SeededGenerator) -> [UInt8] {
        var bytes = Array(text.utf8)
        let alphabet = Array(#"{}[]":,.-e019 tfn"\u"#.utf8) + [0x0A, 0x00, 0xFF]
        let position = random.below(bytes.count + 1)
        switch random.below(3) {
        case 0 where position < bytes.count: bytes.remove(at: position)
        case 1: bytes.insert(random.pick(alphabet), at: position)
        default: if position < bytes.count { bytes[position] = random.pick(alphabet) }
        }
        return bytes
    }

    static func sameResult(_ a: Result<[UInt8], AvroEncoder.JSONFailure>, _ b: Result<[UInt8], AvroEncoder.JSONFailure>) -> Bool {
        switch (a, b) {
        case (.success(let x), .success(let y)): x == y
        case (.failure(.invalidJSON(let x)), .failure(.invalidJSON(let y))): x == y
        case (.failure(.mismatch(let x)), .failure(.mismatch(let y))): x.violations == y.violations
        default: false
        }
    }

    /// CPU-bound for seconds: run on a thread of its own (the cooperative pool's two threads serve every test's timers);
    /// what disagrees is collected there and checked here.
    @Test func directAndTreePathsAgreeOnGeneratedTexts() async throws {
        let (disagreements, direct, total) = try await onOwnThread { () throws -> ([String], Int, Int) in
            var random = SeededGenerator(seed: 0xA7_0D1C)
            var disagreements: [String] = []
            var direct = 0
            var total = 0
            for source in Self.schemas {
                let schema = try AvroSchema.parse(source)
                for round in 0..<1500 {
                    let text = Self.text(for: schema, &random)
                    let bytes = round % 5 == 4 ? Self.mutate(text, &random) : Array(text.utf8)
                    for encoding in AvroEncoder.UnionEncoding.allCases {
                        let prefix: [UInt8] = [0, 0, 0, 0, 7]
                        let (combined, tree, took) = bytes.withUnsafeBytes { buffer in
                            (AvroEncoder.encode(json: buffer, schema: schema, unionEncoding: encoding, prefix: prefix),
                             AvroEncoder.encodeThroughTree(json: buffer, schema: schema, limit: 50, unionEncoding: encoding, prefix: prefix),
                             AvroEncoder.DirectWriter.encode(buffer, schema: schema, unionEncoding: encoding, prefix: prefix))
                        }
                        total += 1
                        if let took {
                            direct += 1
                            if !Self.sameResult(tree, .success(took)) {
                                disagreements.append("the direct path succeeded where the tree path did not: \(String(decoding: bytes, as: UTF8.self)) (\(encoding))")
                            }
                        }
                        if !Self.sameResult(combined, tree) { disagreements.append("\(String(decoding: bytes, as: UTF8.self)) (\(encoding))") }
                    }
                }
            }
            return (disagreements, direct, total)
        }
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements, e.g. \(disagreements.prefix(5))")
        // The direct path is the common case, not a rarity.
        #expect(direct > total / 5, "direct \(direct) of \(total)")
    }

    /// The direct path's decimal conversion gives `Decimals.smallUnscaled`'s value whenever it gives one (CPU-bound: on a
    /// thread of its own).
    @Test func plainDecimalStringsConvertAsTheTreeEncoderConvertsThem() async throws {
        let (mismatches, converted) = try await onOwnThread { () -> ([String], Int) in
            var random = SeededGenerator(seed: 0xDEC1)
            let alphabet = Array("0000123456789.-".utf8)
            var converted = 0
            var mismatches: [String] = []
            for _ in 0..<200_000 {
                let text = (0..<(1 + random.below(22))).map { _ in random.pick(alphabet) }
                let precision = random.pick([1, 3, 5, 10, 18, 19, 30])
                let scale = random.pick([0, 1, 2, 5, 12])
                guard let direct = text.withUnsafeBufferPointer({ AvroEncoder.DirectWriter.plainSmallUnscaled($0, precision: precision, scale: scale) })
                else { continue }
                converted += 1
                let parts = DecimalParts(String(decoding: text, as: UTF8.self))
                if parts.flatMap({ Decimals.smallUnscaled($0, precision: precision, scale: scale) }) != direct {
                    mismatches.append("\(String(decoding: text, as: UTF8.self)) decimal(\(precision), \(scale))")
                }
            }
            return (mismatches, converted)
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, e.g. \(mismatches.prefix(5))")
        #expect(converted > 10_000)
    }

    @Test func theBenchmarkOrderTakesTheDirectPath() throws {
        let schema = try AvroSchema.parse(Self.schemas[0])
        let body = #"{"id": "order-1", "customer": {"id": 42, "name": "Ada", "email": "ada@example.com"}, "createdAt": "2024-05-01T10:00:00.123Z", "status": "PAID", "items": [{"sku": "S-1", "name": "Item \"one\"", "qty": 2, "price": "3.99", "tags": ["a", "b"]}, {"sku": "S-2", "name": "Two", "qty": 1, "price": 10, "tags": []}], "note": null}"#
        let bytes = Array(body.utf8)
        let direct = bytes.withUnsafeBytes { AvroEncoder.DirectWriter.encode($0, schema: schema, unionEncoding: .auto, prefix: []) }
        let tree = AvroEncoder.encode(try JSONParser.parse(body), schema: schema)
        #expect(direct != nil)
        #expect((try? tree.get()) == direct)
    }

    @Test func documentsTheDirectPathDoesNotHandleStillEncode() throws {
        let schema = try AvroSchema.parse(Self.schemas[0])
        // Members out of order, a duplicate key (refused), a missing required field (reported with its path).
        let reordered = #"{"customer": {"name": "Ada", "id": 42}, "id": "o", "createdAt": 0, "status": "NEW", "items": []}"#
        let inOrder = #"{"id": "o", "customer": {"id": 42, "name": "Ada"}, "createdAt": 0, "status": "NEW", "items": []}"#
        let a = Array(reordered.utf8).withUnsafeBytes { AvroEncoder.encode(json: $0, schema: schema) }
        let b = Array(inOrder.utf8).withUnsafeBytes { AvroEncoder.encode(json: $0, schema: schema) }
        #expect(try a.get() == b.get())
        let duplicate = Array(#"{"id": "o", "id": "p"}"#.utf8).withUnsafeBytes { AvroEncoder.encode(json: $0, schema: schema) }
        guard case .failure(.invalidJSON(let failure)) = duplicate else { Issue.record("duplicate key accepted"); return }
        #expect(failure.reason.contains("duplicate key"))
        let missing = Array(#"{"id": "o", "createdAt": 0, "status": "NEW", "items": []}"#.utf8).withUnsafeBytes { AvroEncoder.encode(json: $0, schema: schema) }
        guard case .failure(.mismatch(let mismatch)) = missing else { Issue.record("missing field accepted"); return }
        #expect(mismatch.violations.map(\.path) == ["$.customer"])
    }
}
