import JSON
import Foundation

/// Turns a JSON document into Avro binary for a schema, reporting every mismatch with its path.
///
/// Unions are read as ``UnionEncoding`` says: Avro's JSON encoding (`{"string": "x"}`, `{"com.example.Money":
/// {...}}`, `null` bare), plain JSON (the first branch that takes the value), or either; missing record
/// fields take their defaults; unknown fields are refused; `bytes` and `fixed` are strings of code points
/// 0-255 (Avro's JSON encoding); logical types take their numbers, or ISO-8601 strings for dates and times
/// and decimal strings or numbers for decimals.
///
/// Written in Swift rather than through libavro: avro-c has no JSON decoder and exposes neither defaults nor
/// logical types, so the schema must be modelled here anyway, and with that model the binary encoding is
/// short; it also avoids avro-c's process-global error buffer (Debian builds it without THREADSAFE).
/// The output is checked against fastavro, an independent implementation, in the tests.
public enum AvroEncoder {
    /// Every way the document does not fit the schema (up to a limit).
    public struct Mismatch: Error, Sendable {
        public var violations: [JSONSchemaViolation]
    }

    /// The deepest nesting of encoding steps (a value within a value, a union's branch, a logical type's base):
    /// documents nest at most 512 levels (``JSONParser/maximumDepth``), each taking up to 3 steps.
    public static let maximumDepth = 1600
    /// Encoding steps allowed per value of the document, beyond a fixed 20,000: unions try their branches, and
    /// nested unions of recursive types could otherwise take time exponential in the document's depth.
    public static let stepsPerValue = 64
    static let baseSteps = 20_000

    /// How a document writes the values of unions (Kong 3.16's `payload_encoding`).
    public enum UnionEncoding: String, Sendable, Hashable, CaseIterable {
        /// Avro's JSON encoding (`avro_json`, Kong's default): `null` bare, every other branch tagged with its name,
        /// `{"double": 1.5}`, `{"com.example.Money": {...}}` (a named type's short name is accepted too). A plain
        /// value for another branch is a violation.
        case avroJSON = "avro_json"
        /// Plain JSON (`simple_json`): the first branch that takes the value; an object is never read as a tag.
        case simpleJSON = "simple_json"
        /// Either (kbridge's default when the configuration does not say): a one-member object whose key names a
        /// branch and whose inner value fits that branch is read as tagged, anything else as plain JSON. So for a
        /// union of `string` and a map of strings, `{"string": "x"}` is the string `"x"`, not a map.
        case auto
    }

    /// - Parameter prefix: bytes the output starts with (the Confluent wire-format header), saving a copy.
    public static func encode(_ value: JSONValue, schema: AvroSchema, limit: Int = 50, unionEncoding: UnionEncoding = .auto,
                              prefix: [UInt8] = []) -> Result<[UInt8], Mismatch> {
        // First a pass that keeps no paths and stops at the first mismatch: what a valid document needs. Only when
        // it stops, a second pass finds every violation with its path (the same steps as far as the first went,
        // so within the same bounds; at most twice the work, for invalid documents only).
        var fast = Writer(limit: 1, stepBudget: baseSteps, uncountedDocument: value, tracksPaths: false)
        fast.unionEncoding = unionEncoding
        fast.trying = 1
        fast.bytes.append(contentsOf: prefix)
        fast.write(value, schema)
        if !fast.branchFailed, !fast.aborted { return .success(fast.bytes) }
        // The step budget grows with the document: counted only when the fixed part is used up (rarely).
        var writer = Writer(limit: max(limit, 1), stepBudget: baseSteps, uncountedDocument: value, tracksPaths: true)
        writer.unionEncoding = unionEncoding
        writer.write(value, schema)
        return writer.violations.isEmpty ? .success(prefix + writer.bytes) : .failure(Mismatch(violations: writer.violations))
    }

    /// The first problem with a field's default for its type, or nil when it fits.
    static func checkDefault(_ value: JSONValue, _ schema: AvroSchema) -> JSONSchemaViolation? {
        var writer = Writer(limit: 1, stepBudget: baseSteps, uncountedDocument: nil, tracksPaths: true)
        writer.writeDefault(value, schema)
        return writer.violations.first
    }

    /// One step of a violation's path: a member (record field, map key, union tag) or an array index.
    enum PathComponent {
        case member(String)
        case index(Int)
    }

    struct Writer {
        let limit: Int
        var bytes: [UInt8] = []
        var violations: [JSONSchemaViolation] = []
        /// Where the value being written is, rendered as `$.items[2].qty` only when a violation is reported; kept
        /// only by the pass that reports violations.
        var path: [PathComponent] = []
        let tracksPaths: Bool
        /// Nested `write` calls in progress.
        var depth = 0
        /// `write` calls so far, union attempts included, and how many are allowed.
        var steps = 0
        var stepBudget: Int
        /// The document whose size has not yet been added to ``stepBudget`` (``AvroEncoder/stepsPerValue`` per value).
        var uncountedDocument: JSONValue?
        /// Set when a bound was hit: everything stops, and the document is refused.
        var aborted = false
        /// Writing a field's default: Avro's JSON encoding applies (a decimal's string is its bytes).
        var inDefault = false
        /// How the document writes unions; defaults are read as ``UnionEncoding/auto`` whatever this says.
        var unionEncoding = UnionEncoding.auto
        /// Union branches being tried, within each other (and 1 for the whole first pass): their mismatches are not
        /// reported, the first one ends the try (``branchFailed``), and what the try wrote is taken back.
        var trying = 0
        var branchFailed = false

        init(limit: Int, stepBudget: Int, uncountedDocument: JSONValue?, tracksPaths: Bool) {
            self.limit = limit
            self.tracksPaths = tracksPaths
            self.stepBudget = stepBudget
            self.uncountedDocument = uncountedDocument
            bytes.reserveCapacity(512)
            if tracksPaths { path.reserveCapacity(16) }
        }

        /// The path as text: `$`, `$.items[2].qty`, `$["odd key"]`.
        func renderedPath() -> String {
            var text = "$"
            for component in path {
                switch component {
                case .member(let name): text = JSONSchemaValidator.Context.childPath(text, name)
                case .index(let index): text += "[\(index)]"
                }
            }
            return text
        }

        /// A mismatch at the current path; the reason is only built when it is reported.
        mutating func fail(_ keyword: String, _ reason: @autoclosure () -> String) {
            if trying > 0 {
                branchFailed = true
                return
            }
            if !aborted, violations.count < limit {
                violations.append(JSONSchemaViolation(path: renderedPath(), keyword: keyword, reason: reason()))
            }
        }

        /// A bound was hit: reported even while a union branch is tried, and even when the list is full.
        mutating func abort(_ keyword: String, _ reason: String) {
            aborted = true
            if violations.count >= limit { violations.removeLast() }
            violations.append(JSONSchemaViolation(path: renderedPath(), keyword: keyword, reason: reason))
        }

        /// Writes `value` as union branch `index` if it fits (true), else takes back what was written (false);
        /// false too when a bound was hit (``aborted``).
        mutating func tryBranch(_ value: JSONValue, _ branch: AvroSchema, index: Int) -> Bool {
            let mark = bytes.count
            let outerFailed = branchFailed
            branchFailed = false
            trying += 1
            writeLong(Int64(index))
            write(value, branch)
            trying -= 1
            let fits = !branchFailed && !aborted
            branchFailed = outerFailed
            if !fits { bytes.removeSubrange(mark...) }
            return fits
        }

        // MARK: Binary encoding (Avro specification 1.11, "Binary Encoding")

        mutating func writeLong(_ value: Int64) {
            var zigzag = UInt64(bitPattern: (value << 1) ^ (value >> 63))
            while zigzag >= 0x80 {
                bytes.append(UInt8(zigzag & 0x7F) | 0x80)
                zigzag >>= 7
            }
            bytes.append(UInt8(zigzag))
        }

        mutating func writeBytes(_ data: [UInt8]) {
            writeLong(Int64(data.count))
            bytes.append(contentsOf: data)
        }

        mutating func writeString(_ string: String) {
            writeLong(Int64(string.utf8.count))
            bytes.append(contentsOf: string.utf8)
        }

        // MARK: JSON to Avro

        mutating func write(_ value: JSONValue, _ schema: AvroSchema) {
            guard !aborted, !branchFailed else { return }
            steps += 1
            if steps > stepBudget, let document = uncountedDocument {
                uncountedDocument = nil
                let (perValue, overflow) = AvroEncoder.stepsPerValue.multipliedReportingOverflow(by: document.nodeCount)
                stepBudget = overflow ? .max : AvroEncoder.baseSteps.addingReportingOverflow(perValue).partialValue
            }
            guard steps <= stepBudget else {
                return abort("limit", "the document needs more than \(stepBudget) encoding steps for this schema (unions tried in depth)")
            }
            guard depth < AvroEncoder.maximumDepth else {
                return abort("depth", "the value nests deeper than \(AvroEncoder.maximumDepth) encoding steps")
            }
            depth += 1
            defer { depth -= 1 }
            // A small dispatcher: the recursion passes through here, so each kind has its own function and the
            // frames on the recursive path stay small (debug builds give every temporary its own slot).
            switch schema.resolved {
            case .null, .boolean, .int, .long, .float, .double, .bytes, .string, .enumeration, .fixed:
                writeLeaf(value, schema.resolved)
            case .array(let items): writeArray(value, items)
            case .map(let values): writeMap(value, values)
            case .record(let record): writeRecord(value, record)
            case .union(let branches): writeUnion(value, branches)
            case .logical(let logical, let base): writeLogical(value, logical, base)
            case .reference(let name, _): fail("schema", "the type \(name) is not defined")
            }
        }

        /// Types without subschemas.
        @inline(never)
        mutating func writeLeaf(_ value: JSONValue, _ schema: AvroSchema) {
            switch schema {
            case .null:
                guard case .null = value else { return mismatch(value, "null") }
            case .boolean:
                guard case .bool(let bool) = value else { return mismatch(value, "boolean") }
                bytes.append(bool ? 1 : 0)
            case .int:
                guard case .number(let number) = value, let integer = number.int64, let int32 = Int32(exactly: integer) else {
                    return mismatch(value, "int")
                }
                writeLong(Int64(int32))
            case .long:
                guard case .number(let number) = value, let integer = number.int64 else { return mismatch(value, "long") }
                writeLong(integer)
            case .float:
                guard case .number(let number) = value else { return mismatch(value, "float") }
                let float = Float(number.double)
                // JSON has no infinity: a number beyond the type's range is a mistake, not an infinite value.
                guard float.isFinite else { return fail("range", "\(Self.abbreviated(number.text)) is beyond the range of a float (±3.4e38)") }
                withUnsafeBytes(of: float.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            case .double:
                guard case .number(let number) = value else { return mismatch(value, "double") }
                guard number.double.isFinite else {
                    return fail("range", "\(Self.abbreviated(number.text)) is beyond the range of a double (±1.8e308)")
                }
                withUnsafeBytes(of: number.double.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            case .bytes:
                guard let data = Self.codePointBytes(value) else { return mismatch(value, "bytes (a string of code points 0-255)") }
                writeBytes(data)
            case .string:
                guard case .string(let string) = value else { return mismatch(value, "string") }
                writeString(string)
            case .enumeration(let enumeration):
                guard case .string(let symbol) = value else { return mismatch(value, "enum \(enumeration.name)") }
                guard let index = enumeration.positions[symbol] else {
                    return fail("enum", "\(Self.quoted(symbol)) is not a symbol of \(enumeration.name) (\(enumeration.symbols.prefix(20).joined(separator: ", "))\(enumeration.symbols.count > 20 ? ", …" : ""))")
                }
                writeLong(Int64(index))
            case .fixed(let fixed):
                guard let data = Self.codePointBytes(value) else { return mismatch(value, "fixed \(fixed.name)") }
                guard data.count == fixed.size else { return fail("fixed", "expected \(fixed.size) bytes for \(fixed.name), got \(data.count)") }
                bytes.append(contentsOf: data)
            default:
                fail("schema", "internal error: \(schema.branchName) is no leaf type")
            }
        }

        @inline(never)
        mutating func writeArray(_ value: JSONValue, _ items: AvroSchema) {
            guard case .array(let elements) = value else { return mismatch(value, "array") }
            if !elements.isEmpty {
                writeLong(Int64(elements.count))
                if tracksPaths { path.append(.index(0)) }
                for (index, element) in elements.enumerated() {
                    if tracksPaths { path[path.count - 1] = .index(index) }
                    write(element, items)
                }
                if tracksPaths { path.removeLast() }
            }
            writeLong(0)
        }

        @inline(never)
        mutating func writeMap(_ value: JSONValue, _ values: AvroSchema) {
            guard case .object(let object) = value else { return mismatch(value, "map") }
            if object.count > 0 {
                writeLong(Int64(object.count))
                for (key, element) in object {
                    writeString(key)
                    if tracksPaths { path.append(.member(key)) }
                    write(element, values)
                    if tracksPaths { path.removeLast() }
                }
            }
            writeLong(0)
        }

        @inline(never)
        mutating func writeRecord(_ value: JSONValue, _ record: AvroSchema.Record) {
            guard case .object(let object) = value else { return mismatch(value, "record \(record.name)") }
            var found = 0
            let members = object.members
            for (position, field) in record.fields.enumerated() {
                if tracksPaths { path.append(.member(field.name)) }
                // Clients mostly write the fields in the schema's order: the member at the field's position first.
                let fieldValue: JSONValue?
                if position < members.count, members[position].key == field.name {
                    fieldValue = members[position].value
                } else {
                    fieldValue = object[field.name]
                }
                if let fieldValue {
                    found += 1
                    write(fieldValue, field.type)
                } else if let defaultValue = field.defaultValue {
                    writeDefault(defaultValue, field.type)
                } else {
                    fail("required", "required field '\(field.name)' of \(record.name) is missing (it has no default)")
                }
                if tracksPaths { path.removeLast() }
            }
            // An object's keys are distinct: when every member was a field (of distinct names), none is unknown.
            guard found < object.count || !record.hasDistinctFieldNames else { return }
            for (name, _) in object where !record.fieldNames.contains(name) {
                if tracksPaths { path.append(.member(name)) }
                fail("unknown", "\(record.name) has no field '\(name)'")
                if tracksPaths { path.removeLast() }
            }
        }

        /// A default applies to the first branch of a union (Avro specification, "Complex Types"), and is read
        /// in Avro's JSON encoding.
        mutating func writeDefault(_ value: JSONValue, _ schema: AvroSchema) {
            let outer = inDefault
            inDefault = true
            defer { inDefault = outer }
            if case .union(let branches) = schema.resolved, let first = branches.first {
                writeLong(0)
                write(value, first)
            } else {
                write(value, schema)
            }
        }

        @inline(never)
        mutating func writeUnion(_ value: JSONValue, _ branches: [AvroSchema]) {
            // null is bare in every encoding.
            if case .null = value, let index = branches.firstIndex(where: { if case .null = $0.resolved { true } else { false } }) {
                writeLong(Int64(index))
                return
            }
            switch inDefault ? .auto : unionEncoding {
            case .avroJSON: writeTaggedUnion(value, branches)
            case .simpleJSON: writePlainUnion(value, branches)
            case .auto:
                // A one-member object naming a branch whose value fits it is tagged; anything else is plain JSON.
                if case .object(let object) = value, object.count == 1, let (name, inner) = object.members.first,
                   let index = Self.branchIndex(named: name, in: branches) {
                    if tryBranch(inner, branches[index], index: index) || aborted { return }
                }
                writePlainUnion(value, branches)
            }
        }

        /// The branch a tag names: its full name, else (for named types) its short name.
        static func branchIndex(named name: String, in branches: [AvroSchema]) -> Int? {
            if let index = branches.firstIndex(where: { $0.branchName == name }) { return index }
            return branches.firstIndex { branch in
                let full = branch.branchName
                guard let dot = full.lastIndex(of: ".") else { return false }
                return full[full.index(after: dot)...] == name
            }
        }

        /// Avro's JSON encoding: `{"<branch name>": value}` (null was handled by the caller).
        mutating func writeTaggedUnion(_ value: JSONValue, _ branches: [AvroSchema]) {
            if case .object(let object) = value, object.count == 1, let (name, inner) = object.members.first,
               let index = Self.branchIndex(named: name, in: branches) {
                writeLong(Int64(index))
                if tracksPaths { path.append(.member(name)) }
                write(inner, branches[index])
                if tracksPaths { path.removeLast() }
                return
            }
            if case .null = value { return fail("union", "null matches no branch of the union [\(branches.map(\.branchName).joined(separator: ", "))]") }
            guard trying == 0 else { return fail("union", "") }
            // An example from the branch plain JSON would choose (tried as simple_json: nested unions plain too).
            var example = branches.first { if case .null = $0.resolved { false } else { true } }?.branchName ?? "string"
            unionEncoding = .simpleJSON
            for (index, branch) in branches.enumerated() where tryBranch(value, branch, index: index) {
                example = branch.branchName
                break
            }
            unionEncoding = .avroJSON
            if aborted { return }
            var unnamed = ""
            if case .object(let object) = value, object.count == 1, let name = object.members.first?.key {
                unnamed = "\(Self.quoted(name)) names no branch of the union [\(branches.map(\.branchName).joined(separator: ", "))]; "
            }
            fail("union", "\(unnamed)a union value must be tagged in Avro's JSON encoding, e.g. {\"\(example)\": \(Self.sketch(value))}; "
                 + "payload_encoding: simple_json accepts plain JSON")
        }

        /// Plain JSON: the first branch that takes the value.
        mutating func writePlainUnion(_ value: JSONValue, _ branches: [AvroSchema]) {
            for (index, branch) in branches.enumerated() {
                if tryBranch(value, branch, index: index) || aborted { return }
            }
            fail("union", "\(Self.describe(value)) matches no branch of the union [\(branches.map(\.branchName).joined(separator: ", "))]")
        }

        @inline(never)
        mutating func writeLogical(_ value: JSONValue, _ logical: AvroSchema.Logical, _ base: AvroSchema) {
            switch logical {
            case .uuid:
                guard case .string(let text) = value, UUID(uuidString: text) != nil else { return mismatch(value, "uuid") }
                writeBytes(Array(text.utf8))
            case .date:
                if case .string(let text) = value {
                    guard let days = Timestamps.days(fromISODate: text) else {
                        return fail("date", "\(Self.quoted(text)) is not a date (YYYY-MM-DD, years 0001-9999)")
                    }
                    return writeLong(days)
                }
                write(value, base)
            case .timeMillis, .timeMicros:
                if case .string(let text) = value {
                    guard let micros = Timestamps.microseconds(fromISOTime: text) else {
                        return fail("time", "\(Self.quoted(text)) is not a time of day (HH:MM:SS[.fffffffff])")
                    }
                    return writeLong(logical == .timeMillis ? Timestamps.floorDivide(micros, 1000) : micros)
                }
                // A time of day is within the day: 0 <= t < 24 h in its unit.
                let day: Int64 = logical == .timeMillis ? 86_400_000 : 86_400_000_000
                if let number = value.numberValue?.int64, !(0..<day).contains(number) {
                    return fail("time", "\(number) is not a time of day (0 to \(day - 1) \(logical == .timeMillis ? "milliseconds" : "microseconds") after midnight)")
                }
                write(value, base)
            case .timestampMillis, .timestampMicros, .localTimestampMillis, .localTimestampMicros:
                if case .string(let text) = value {
                    let local = logical == .localTimestampMillis || logical == .localTimestampMicros
                    guard let micros = Timestamps.microseconds(fromISOTimestamp: text, requireZone: !local) else {
                        return fail("timestamp", "\(Self.quoted(text)) is not an ISO-8601 timestamp (YYYY-MM-DDTHH:MM:SS[.fffffffff]\(local ? "" : " with a time zone: Z or ±HH:MM"), years 0001-9999)")
                    }
                    let millis = logical == .timestampMillis || logical == .localTimestampMillis
                    // Floor division: 1969-12-31T23:59:59.9995Z is millisecond -1, not 0.
                    return writeLong(millis ? Timestamps.floorDivide(micros, 1000) : micros)
                }
                write(value, base)
            case .decimal(let precision, let scale):
                let parts: DecimalParts
                let text: String
                switch value {
                case .number(let number):
                    guard let numberParts = number.parts else { return mismatch(value, "decimal") }
                    parts = numberParts
                    text = number.text
                case .string where inDefault:
                    // A default is written in Avro's JSON encoding: a decimal's bytes, as code points.
                    return write(value, base)
                case .string(let string):
                    // A document's strings are decimal numbers only: Avro's byte strings would take "abc" as 6382179.
                    guard let stringParts = DecimalParts(string) else {
                        return fail("decimal", "\(Self.quoted(string)) is not a decimal number (an optional sign, digits, an optional fraction and exponent)")
                    }
                    parts = stringParts
                    text = string
                default:
                    return mismatch(value, "decimal (a number or a decimal string)")
                }
                let fixedSize: Int?
                if case .fixed(let fixed) = base.resolved { fixedSize = fixed.size } else { fixedSize = nil }
                // Up to 18 digits (prices, amounts): an Int64, written without building arrays.
                if let small = Decimals.smallUnscaled(parts, precision: precision, scale: scale) {
                    let count = Decimals.twosComplementByteCount(small)
                    if let fixedSize {
                        if count <= fixedSize {
                            bytes.append(contentsOf: repeatElement(small < 0 ? 0xFF : 0, count: fixedSize - count))
                            return writeBigEndian(small, byteCount: count)
                        }
                    } else {
                        writeLong(Int64(count))
                        return writeBigEndian(small, byteCount: count)
                    }
                }
                let twosComplement: [UInt8]
                switch Decimals.unscaled(parts, precision: precision, scale: scale) {
                case .success(let bytes): twosComplement = bytes
                case .failure(.needsRounding):
                    return fail("decimal", "\(Self.abbreviated(text)) does not fit decimal(\(precision), \(scale)) without rounding")
                case .failure(.tooManyDigits):
                    return fail("decimal", "\(Self.abbreviated(text)) has more than \(precision) significant digits")
                }
                if case .fixed(let fixed) = base.resolved {
                    guard twosComplement.count <= fixed.size else {
                        return fail("decimal", "\(Self.abbreviated(text)) does not fit in \(fixed.size) bytes")
                    }
                    let pad: UInt8 = (twosComplement.first ?? 0) & 0x80 != 0 ? 0xFF : 0
                    bytes.append(contentsOf: repeatElement(pad, count: fixed.size - twosComplement.count))
                    bytes.append(contentsOf: twosComplement)
                } else {
                    writeBytes(twosComplement)
                }
            }
        }

        /// The low `byteCount` bytes of `value`, most significant first.
        mutating func writeBigEndian(_ value: Int64, byteCount: Int) {
            for shift in stride(from: (byteCount - 1) * 8, through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: value >> shift))
            }
        }

        mutating func mismatch(_ value: JSONValue, _ expected: @autoclosure () -> String) {
            fail("type", "expected \(expected()), got \(Self.describe(value))")
        }

        static func describe(_ value: JSONValue) -> String {
            value.typeName + JSONSchemaValidator.Context.preview(value)
        }

        /// Text for a message: at most 40 characters.
        static func abbreviated(_ text: String) -> String {
            text.utf8.count > 40 ? String(text.prefix(40)) + "…" : text
        }

        static func quoted(_ text: String) -> String { "'\(abbreviated(text))'" }

        /// A value as short JSON for an example: scalars as written (strings abbreviated), `{…}` and `[…]` for the rest.
        static func sketch(_ value: JSONValue) -> String {
            switch value {
            case .object: "{…}"
            case .array: "[…]"
            default: JSONSchemaValidator.Context.preview(value, bare: true)
            }
        }

        /// Avro's JSON encoding of bytes: a string whose code points 0-255 are the bytes.
        static func codePointBytes(_ value: JSONValue) -> [UInt8]? {
            guard case .string(let string) = value else { return nil }
            var data: [UInt8] = []
            for scalar in string.unicodeScalars {
                guard scalar.value <= 0xFF else { return nil }
                data.append(UInt8(scalar.value))
            }
            return data
        }
    }
}

/// Decimal numbers to the unscaled two's-complement integer Avro stores.
enum Decimals {
    enum Failure: Error { case needsRounding, tooManyDigits }

    /// `value × 10^scale` when it is an integer of at most 18 digits (and at most `precision`), exactly; nil
    /// otherwise (``unscaled(_:precision:scale:)`` then decides).
    static func smallUnscaled(_ value: DecimalParts, precision: Int, scale: Int) -> Int64? {
        if value.isZero { return 0 }
        // |exponent| <= 2^59 + 2^48 and scale <= 1000: no overflow.
        let exponent = value.exponent + scale
        guard exponent >= 0, value.digits.count + exponent <= min(precision, 18) else { return nil }
        // At most 18 digits: below 10^18 < 2^63.
        var result: Int64 = 0
        for digit in value.digits { result = result * 10 + Int64(digit - 0x30) }
        for _ in 0..<exponent { result *= 10 }
        return value.negative ? -result : result
    }

    /// How many bytes the shortest big-endian two's complement of `value` has (1 to 8).
    static func twosComplementByteCount(_ value: Int64) -> Int {
        var count = 8
        // `count - 1` bytes suffice when every bit from that size's sign bit up equals the sign.
        while count > 1, (value >> ((count - 1) * 8 - 1)) == 0 || (value >> ((count - 1) * 8 - 1)) == -1 { count -= 1 }
        return count
    }

    /// The big-endian two's complement of `value × 10^scale`, refused before any conversion when it is not an
    /// integer or has more than `precision` digits. The conversion is quadratic in the digits, which
    /// `precision` bounds (``AvroSchema/maximumDecimalPrecision``).
    static func unscaled(_ value: DecimalParts, precision: Int, scale: Int) -> Result<[UInt8], Failure> {
        if value.isZero { return .success([0]) }
        // |exponent| <= 2^59 + 2^48 and scale <= 1000: no overflow.
        let exponent = value.exponent + scale
        guard exponent >= 0 else { return .failure(.needsRounding) }  // the digits end with a non-zero digit
        guard value.digits.count + exponent <= precision else { return .failure(.tooManyDigits) }
        // Decimal digits (and `exponent` zeros) to little-endian 32-bit limbs, nine digits at a time.
        var limbs: [UInt32] = []
        limbs.reserveCapacity((value.digits.count + exponent) / 9 + 1)
        func multiplyAdd(_ factor: UInt32, _ addend: UInt32) {
            var carry = UInt64(addend)
            for index in limbs.indices {
                let product = UInt64(limbs[index]) * UInt64(factor) + carry
                limbs[index] = UInt32(truncatingIfNeeded: product)
                carry = product >> 32
            }
            if carry > 0 { limbs.append(UInt32(carry)) }
        }
        var chunk: UInt32 = 0
        var chunkFactor: UInt32 = 1
        func push(_ digit: UInt32) {
            chunk = chunk * 10 + digit
            chunkFactor *= 10
            if chunkFactor == 1_000_000_000 {
                multiplyAdd(chunkFactor, chunk)
                chunk = 0
                chunkFactor = 1
            }
        }
        for digit in value.digits { push(UInt32(digit - 0x30)) }
        for _ in 0..<exponent { push(0) }
        if chunkFactor > 1 { multiplyAdd(chunkFactor, chunk) }
        // Big-endian magnitude with room for the sign bit.
        var magnitude: [UInt8] = [0]
        magnitude.reserveCapacity(limbs.count * 4 + 1)
        for limb in limbs.reversed() {
            magnitude.append(contentsOf: [UInt8(limb >> 24), UInt8(truncatingIfNeeded: limb >> 16), UInt8(truncatingIfNeeded: limb >> 8), UInt8(truncatingIfNeeded: limb)])
        }
        guard value.negative else {
            // Drop leading zero bytes that the sign bit does not need.
            var start = 0
            while start + 1 < magnitude.count, magnitude[start] == 0, magnitude[start + 1] & 0x80 == 0 { start += 1 }
            return .success(Array(magnitude[start...]))
        }
        // Two's complement: invert and add one, then drop leading 0xFF bytes that the sign bit does not need.
        var result = magnitude.map { ~$0 }
        for index in result.indices.reversed() {
            let (sum, overflow) = result[index].addingReportingOverflow(1)
            result[index] = sum
            if !overflow { break }
        }
        var start = 0
        while start + 1 < result.count, result[start] == 0xFF, result[start + 1] & 0x80 != 0 { start += 1 }
        return .success(Array(result[start...]))
    }
}

/// ISO-8601 dates, times and timestamps to Avro's numbers, without Foundation's formatters (exact micros).
/// Strict: exactly the digits the format has (ASCII), years 0001-9999, days within their month (leap years
/// included), hours 00-23, minutes and seconds 00-59, 1 to 9 fraction digits (beyond microseconds truncated),
/// offsets ±HH:MM up to ±23:59.
enum Timestamps {
    static func isLeapYear(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysInMonth(_ month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 for a valid proleptic Gregorian date (Howard Hinnant's days_from_civil).
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int64(era * 146_097 + doe - 719_468)
    }

    static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        return remainder < 0 ? quotient - 1 : quotient
    }

    /// Exactly `count` ASCII digits at `index`.
    private static func number(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int, digits count: Int) -> Int? {
        guard index >= 0, index + count <= bytes.count else { return nil }
        var value = 0
        for position in index..<(index + count) {
            let byte = bytes[position]
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    /// `YYYY-MM-DD` at `index` (10 bytes).
    private static func date(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int64? {
        guard index + 10 <= bytes.count, bytes[index + 4] == UInt8(ascii: "-"), bytes[index + 7] == UInt8(ascii: "-"),
              let year = number(bytes, at: index, digits: 4), let month = number(bytes, at: index + 5, digits: 2),
              let day = number(bytes, at: index + 8, digits: 2),
              (1...9999).contains(year), (1...12).contains(month), (1...daysInMonth(month, year: year)).contains(day) else { return nil }
        return days(year: year, month: month, day: day)
    }

    /// `HH:MM:SS[.f…]` at `index`: microseconds since midnight and the index after it.
    private static func time(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> (micros: Int64, end: Int)? {
        guard index + 8 <= bytes.count, bytes[index + 2] == UInt8(ascii: ":"), bytes[index + 5] == UInt8(ascii: ":"),
              let hours = number(bytes, at: index, digits: 2), let minutes = number(bytes, at: index + 3, digits: 2),
              let seconds = number(bytes, at: index + 6, digits: 2), hours <= 23, minutes <= 59, seconds <= 59 else { return nil }
        var end = index + 8
        var micros = 0
        if end < bytes.count, bytes[end] == UInt8(ascii: ".") {
            end += 1
            var digits = 0
            while end < bytes.count, bytes[end] >= 0x30, bytes[end] <= 0x39 {
                digits += 1
                guard digits <= 9 else { return nil }
                if digits <= 6 { micros = micros * 10 + Int(bytes[end] - 0x30) }
                end += 1
            }
            guard digits > 0 else { return nil }
            for _ in min(digits, 6)..<6 { micros *= 10 }
        }
        return ((Int64(hours) * 3600 + Int64(minutes) * 60 + Int64(seconds)) * 1_000_000 + Int64(micros), end)
    }

    static func days(fromISODate text: String) -> Int64? {
        var text = text
        return text.withUTF8 { bytes in bytes.count == 10 ? date(bytes, at: 0) : nil }
    }

    /// `HH:MM:SS[.fffffffff]` to microseconds since midnight.
    static func microseconds(fromISOTime text: String) -> Int64? {
        var text = text
        return text.withUTF8 { bytes in
            guard let (micros, end) = time(bytes, at: 0), end == bytes.count else { return nil }
            return micros
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fffffffff][Z|±HH:MM]` to microseconds since the epoch (UTC), with checked arithmetic.
    static func microseconds(fromISOTimestamp text: String, requireZone: Bool) -> Int64? {
        var text = text
        return text.withUTF8 { bytes in microseconds(fromISOTimestamp: bytes, requireZone: requireZone) }
    }

    /// The same, from the timestamp's UTF-8.
    static func microseconds(fromISOTimestamp bytes: UnsafeBufferPointer<UInt8>, requireZone: Bool) -> Int64? {
        guard bytes.count >= 19, let days = date(bytes, at: 0),
              bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t") || bytes[10] == UInt8(ascii: " "),
              let (micros, end) = time(bytes, at: 11) else { return nil }
        var offsetSeconds: Int64 = 0
        if end == bytes.count {
            guard !requireZone else { return nil }
        } else if bytes[end] == UInt8(ascii: "Z") || bytes[end] == UInt8(ascii: "z") {
            guard end + 1 == bytes.count else { return nil }
        } else if bytes[end] == UInt8(ascii: "+") || bytes[end] == UInt8(ascii: "-") {
            guard end + 6 == bytes.count, bytes[end + 3] == UInt8(ascii: ":"),
                  let hours = number(bytes, at: end + 1, digits: 2), let minutes = number(bytes, at: end + 4, digits: 2),
                  hours <= 23, minutes <= 59 else { return nil }
            offsetSeconds = Int64(hours * 3600 + minutes * 60) * (bytes[end] == UInt8(ascii: "-") ? -1 : 1)
        } else {
            return nil
        }
        let (dayMicros, overflow1) = days.multipliedReportingOverflow(by: 86_400_000_000)
        let (local, overflow2) = dayMicros.addingReportingOverflow(micros)
        let (utc, overflow3) = local.subtractingReportingOverflow(offsetSeconds * 1_000_000)
        guard !overflow1, !overflow2, !overflow3 else { return nil }
        return utc
    }
}
