import JSON

extension AvroEncoder {
    /// Why ``encode(json:schema:limit:unionEncoding:prefix:)`` refused a text.
    public enum JSONFailure: Error, Sendable {
        /// The text is not JSON (duplicate keys included), or exceeds the parser's limits.
        case invalidJSON(JSONParser.Failure)
        /// The document does not fit the schema.
        case mismatch(Mismatch)
    }

    /// Encodes a JSON text (a request body) for `schema`, refusing duplicate keys: the same result as parsing it with
    /// ``JSONParser/parse(_:duplicateKeys:)`` (`.refuse`) and encoding the tree with
    /// ``encode(_:schema:limit:unionEncoding:prefix:)``.
    ///
    /// The usual record (members in the schema's order, unions of `null` and one type, nesting within
    /// ``DirectWriter/maximumDepth``) is encoded straight from the text in one pass, without building the tree;
    /// anything else, and every document that does not fit, takes the tree path, which reports what is wrong.
    public static func encode(json bytes: UnsafeRawBufferPointer, schema: AvroSchema, limit: Int = 50, unionEncoding: UnionEncoding = .auto,
                              prefix: [UInt8] = []) -> Result<[UInt8], JSONFailure> {
        if let direct = DirectWriter.encode(bytes, schema: schema, unionEncoding: unionEncoding, prefix: prefix) { return .success(direct) }
        return encodeThroughTree(json: bytes, schema: schema, limit: limit, unionEncoding: unionEncoding, prefix: prefix)
    }

    /// The tree path alone (what ``encode(json:schema:limit:unionEncoding:prefix:)`` falls back to), for comparing
    /// the two in tests.
    static func encodeThroughTree(json bytes: UnsafeRawBufferPointer, schema: AvroSchema, limit: Int, unionEncoding: UnionEncoding,
                                  prefix: [UInt8]) -> Result<[UInt8], JSONFailure> {
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes, duplicateKeys: .refuse)
        } catch {
            return .failure(.invalidJSON(error))
        }
        return encode(document, schema: schema, limit: limit, unionEncoding: unionEncoding, prefix: prefix).mapError { .mismatch($0) }
    }

    /// Avro straight from JSON text, for documents whose encoding needs no look-ahead: a record's members come in
    /// the order of its fields (those left out at the end take their defaults), unions are of `null` and one other
    /// type (a tagged value in Avro's JSON encoding, a plain one otherwise; an object for such a union under
    /// ``UnionEncoding/auto`` takes the tree path), arrays hold any of these; maps take the tree path.
    ///
    /// Scalars are read as the parser reads them and written by the tree encoder's own ``Writer`` (in its first,
    /// quiet pass), so they are converted and checked exactly as there. Whatever this path does not handle, or finds
    /// wrong, ends it with no result: the caller then takes the tree path. It therefore only ever succeeds with the
    /// tree path's bytes: that is checked against generated documents in the tests.
    ///
    /// Bounded: at most ``maximumDepth`` arrays and records in each other (an array's count is written before its
    /// items once they are known, moving the items' bytes: at most once per enclosing array), the tree encoder's
    /// step budget (20,000 scalars), and the parser's limits for the values it reads.
    struct DirectWriter {
        static let maximumDepth = 32

        /// The reason to take the tree path (a document this path does not handle, or one that does not fit).
        struct FallBack: Error {}

        var reader: JSONReader
        var writer: Writer
        let unionEncoding: UnionEncoding

        static func encode(_ bytes: UnsafeRawBufferPointer, schema: AvroSchema, unionEncoding: UnionEncoding, prefix: [UInt8]) -> [UInt8]? {
            guard let reader = try? JSONReader(bytes) else { return nil }
            var writer = Writer(limit: 1, stepBudget: baseSteps, uncountedDocument: nil, tracksPaths: false)
            writer.unionEncoding = unionEncoding
            writer.trying = 1  // quiet: a mismatch only sets `branchFailed`
            writer.bytes.append(contentsOf: prefix)
            var direct = DirectWriter(reader: reader, writer: writer, unionEncoding: unionEncoding)
            do {
                try direct.write(schema, depth: 0)
            } catch {
                return nil
            }
            guard direct.reader.isAtEnd() else { return nil }
            return direct.writer.bytes
        }

        private mutating func checkWriter() throws(FallBack) {
            if writer.branchFailed || writer.aborted { throw FallBack() }
        }

        /// The value at the cursor as `schema`; `depth` counts the arrays and objects around it.
        mutating func write(_ schema: AvroSchema, depth: Int) throws(FallBack) {
            switch schema.resolved {
            case .record(let record): try writeRecord(record, depth: depth)
            case .array(let items): try writeArray(items, depth: depth)
            case .union(let branches): try writeUnion(branches, depth: depth)
            case .map, .reference: throw FallBack()
            case .string:
                // The common leaf: the text's bytes are the string's UTF-8 when it has no escapes.
                if let raw = try readRawString() {
                    writer.writeLong(Int64(raw.count))
                    writer.bytes.append(contentsOf: raw)
                    return
                }
                try writeScalar(schema, depth: depth)
            case .logical(.decimal(let precision, let scale), let base):
                // A decimal string in bytes (prices): converted from the text, as the tree encoder's `writeLogical`
                // converts it when the value fits an Int64; any other form or size goes through that code.
                guard case .bytes = base.resolved, let raw = try readRawString() else { return try writeScalar(schema, depth: depth) }
                guard let small = Self.plainSmallUnscaled(raw, precision: precision, scale: scale) else {
                    return try write(.string(String(decoding: raw, as: UTF8.self)), schema, depth: depth)
                }
                let count = Decimals.twosComplementByteCount(small)
                writer.writeLong(Int64(count))
                writer.writeBigEndian(small, byteCount: count)
            case .logical(let logical, _) where Self.isTimestamp(logical):
                // A timestamp written as text (as the tree encoder's `writeLogical` reads it, from the same bytes).
                if let raw = try readRawString() {
                    let local = logical == .localTimestampMillis || logical == .localTimestampMicros
                    guard let micros = Timestamps.microseconds(fromISOTimestamp: raw, requireZone: !local) else { throw FallBack() }
                    let millis = logical == .timestampMillis || logical == .localTimestampMillis
                    writer.writeLong(millis ? Timestamps.floorDivide(micros, 1000) : micros)
                    return
                }
                try writeScalar(schema, depth: depth)
            default:
                try writeScalar(schema, depth: depth)
            }
        }

        private mutating func readRawString() throws(FallBack) -> UnsafeBufferPointer<UInt8>? {
            do {
                return try reader.rawString()
            } catch {
                throw FallBack()
            }
        }

        static func isTimestamp(_ logical: AvroSchema.Logical) -> Bool {
            switch logical {
            case .timestampMillis, .timestampMicros, .localTimestampMillis, .localTimestampMicros: true
            default: false
            }
        }

        /// `text × 10^scale` for a decimal string of the plain form `-?digits(.digits)?` with at most 18 significant
        /// digits, when ``Decimals/smallUnscaled(_:precision:scale:)`` gives a value for it (the same value); nil
        /// otherwise.
        static func plainSmallUnscaled(_ text: UnsafeBufferPointer<UInt8>, precision: Int, scale: Int) -> Int64? {
            func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
            let negative = text.first == UInt8(ascii: "-")
            var index = negative ? 1 : 0
            // All the digits as one integer V (the value is V × 10^-fractionCount), leading zeros skipped.
            var value: Int64 = 0
            var length = 0  // V's digits from its first non-zero one
            var trailingZeros = 0
            var fractionCount = 0
            var digits = 0
            var inFraction = false
            while index < text.count {
                let byte = text[index]
                if byte == UInt8(ascii: "."), !inFraction, digits > 0 {
                    inFraction = true
                    index += 1
                    continue
                }
                guard isDigit(byte) else { return nil }
                digits += 1
                if inFraction { fractionCount += 1 }
                if value > 0 || byte != 0x30 {
                    length += 1
                    guard length <= 18 else { return nil }  // V < 10^18
                    value = value * 10 + Int64(byte - 0x30)
                    trailingZeros = byte == 0x30 ? trailingZeros + 1 : 0
                }
                index += 1
            }
            // Digits before the point, and after it when there is one.
            guard digits > 0, !inFraction || fractionCount > 0, text.last != UInt8(ascii: ".") else { return nil }
            if value == 0 { return 0 }
            let shift = scale - fractionCount
            let limit = min(precision, 18)
            if shift >= 0 {
                guard length + shift <= limit else { return nil }
                for _ in 0..<shift { value *= 10 }
            } else {
                guard trailingZeros >= -shift, length + shift <= limit else { return nil }
                for _ in 0 ..< -shift { value /= 10 }
            }
            return negative ? -value : value
        }

        /// A scalar (null, boolean, number or string) read as the parser reads it, written by the tree encoder.
        private mutating func writeScalar(_ schema: AvroSchema, depth: Int) throws(FallBack) {
            guard let next = reader.peek(), next != UInt8(ascii: "{"), next != UInt8(ascii: "[") else { throw FallBack() }
            let value: JSONValue
            do {
                value = try reader.value(depth: depth)
            } catch {
                throw FallBack()
            }
            try write(value, schema, depth: depth)
        }

        /// A scalar already read, written by the tree encoder.
        private mutating func write(_ value: JSONValue, _ schema: AvroSchema, depth: Int) throws(FallBack) {
            // The tree encoder's depth for this value is at most 3 per enclosing array or object (union, branch,
            // container): starting there keeps this path's depth check at least as strict as the tree's.
            writer.depth = 3 * (depth + 1)
            writer.write(value, schema)
            writer.depth = 0
            try checkWriter()
        }

        private mutating func expect(_ byte: UInt8) throws(FallBack) {
            guard reader.consume(byte) else { throw FallBack() }
        }

        private mutating func writeRecord(_ record: AvroSchema.Record, depth: Int) throws(FallBack) {
            guard record.hasDistinctFieldNames, depth < Self.maximumDepth else { throw FallBack() }
            try expect(UInt8(ascii: "{"))
            var next = 0
            if !reader.consume(UInt8(ascii: "}")) {
                repeat {
                    // The member must be the next field, its key written as the field's name, byte for byte.
                    guard next < record.fields.count, let key = try readRawString() else { throw FallBack() }
                    var name = record.fields[next].name
                    let matches = name.withUTF8 { name in
                        guard name.count == key.count else { return false }
                        for index in 0..<name.count where name[index] != key[index] { return false }
                        return true
                    }
                    guard matches else { throw FallBack() }
                    try expect(UInt8(ascii: ":"))
                    try write(record.fields[next].type, depth: depth + 1)
                    next += 1
                } while reader.consume(UInt8(ascii: ","))
                try expect(UInt8(ascii: "}"))
            }
            for field in record.fields[next...] {
                guard let defaultValue = field.defaultValue else { throw FallBack() }
                writer.depth = 3 * (depth + 2)  // as for a scalar, the member's depth
                writer.writeDefault(defaultValue, field.type)
                writer.depth = 0
                try checkWriter()
            }
        }

        private mutating func writeArray(_ items: AvroSchema, depth: Int) throws(FallBack) {
            guard depth < Self.maximumDepth else { throw FallBack() }
            try expect(UInt8(ascii: "["))
            if reader.consume(UInt8(ascii: "]")) {
                writer.writeLong(0)
                return
            }
            let start = writer.bytes.count
            var count: Int64 = 0
            repeat {
                try write(items, depth: depth + 1)
                count += 1
            } while reader.consume(UInt8(ascii: ","))
            try expect(UInt8(ascii: "]"))
            // The count goes before the items (a block of `count` items, then the empty block): its varint (as
            // `writeLong` writes it) is made room for, then written in place.
            var zigzag = UInt64(bitPattern: (count << 1) ^ (count >> 63))
            var length = 1
            while zigzag >> (7 * length) != 0 { length += 1 }
            writer.bytes.insert(contentsOf: repeatElement(0, count: length), at: start)
            for position in start..<(start + length) {
                writer.bytes[position] = UInt8(zigzag & 0x7F) | (position + 1 < start + length ? 0x80 : 0)
                zigzag >>= 7
            }
            writer.writeLong(0)
        }

        private mutating func writeUnion(_ branches: [AvroSchema], depth: Int) throws(FallBack) {
            let nullIndex = branches.firstIndex { if case .null = $0.resolved { true } else { false } }
            if reader.peek() == UInt8(ascii: "n") {
                // null is bare in every encoding (the tree encoder's first case).
                guard let nullIndex else { throw FallBack() }
                do {
                    guard case .null = try reader.value(depth: depth) else { throw FallBack() }
                } catch {
                    throw FallBack()
                }
                writer.writeLong(Int64(nullIndex))
                return
            }
            guard branches.count == 2, let nullIndex else { throw FallBack() }
            let other = 1 - nullIndex
            switch unionEncoding {
            case .simpleJSON, .auto:
                // Plain JSON: the null branch does not take a value that is not null, so the other one must. Under
                // `auto`, an object could be a tagged value: the tree path decides.
                if unionEncoding == .auto, reader.peek() == UInt8(ascii: "{") { throw FallBack() }
                writer.writeLong(Int64(other))
                try write(branches[other], depth: depth)
            case .avroJSON:
                // `{"<branch>": value}`, with exactly one member that names the other branch.
                guard depth < Self.maximumDepth else { throw FallBack() }
                try expect(UInt8(ascii: "{"))
                guard let key = try readRawString(),
                      Writer.branchIndex(named: String(decoding: key, as: UTF8.self), in: branches) == other else { throw FallBack() }
                try expect(UInt8(ascii: ":"))
                writer.writeLong(Int64(other))
                try write(branches[other], depth: depth + 1)
                try expect(UInt8(ascii: "}"))
            }
        }
    }
}
