import Foundation

/// Turns a JSON document into Avro binary for a schema, reporting every mismatch with its path.
///
/// Accepts what HTTP clients send: plain JSON for unions (the first branch that fits, `null` for the null
/// branch) as well as Avro's JSON encoding (`{"string": "x"}`, `{"com.example.Money": {...}}`); missing record
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

    public static func encode(_ value: JSONValue, schema: AvroSchema, limit: Int = 50) -> Result<[UInt8], Mismatch> {
        var writer = Writer(limit: limit)
        writer.write(value, schema, path: "$")
        return writer.violations.isEmpty ? .success(writer.bytes) : .failure(Mismatch(violations: writer.violations))
    }

    struct Writer {
        let limit: Int
        var bytes: [UInt8] = []
        var violations: [JSONSchemaViolation] = []

        init(limit: Int) {
            self.limit = limit
            bytes.reserveCapacity(256)
        }

        mutating func fail(_ path: String, _ keyword: String, _ reason: String) {
            if violations.count < limit { violations.append(JSONSchemaViolation(path: path, keyword: keyword, reason: reason)) }
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

        // MARK: JSON to Avro

        mutating func write(_ value: JSONValue, _ schema: AvroSchema, path: String) {
            switch schema.resolved {
            case .null:
                guard case .null = value else { return mismatch(value, "null", path) }
            case .boolean:
                guard case .bool(let bool) = value else { return mismatch(value, "boolean", path) }
                bytes.append(bool ? 1 : 0)
            case .int:
                guard let number = value.numberValue, let integer = number.int64, let int32 = Int32(exactly: integer) else {
                    return mismatch(value, "int", path)
                }
                writeLong(Int64(int32))
            case .long:
                guard let integer = value.numberValue?.int64 else { return mismatch(value, "long", path) }
                writeLong(integer)
            case .float:
                guard let number = value.numberValue else { return mismatch(value, "float", path) }
                withUnsafeBytes(of: Float(number.double).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            case .double:
                guard let number = value.numberValue else { return mismatch(value, "double", path) }
                withUnsafeBytes(of: number.double.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            case .bytes:
                guard let data = Self.codePointBytes(value) else { return mismatch(value, "bytes (a string of code points 0-255)", path) }
                writeBytes(data)
            case .string:
                guard case .string(let string) = value else { return mismatch(value, "string", path) }
                writeBytes(Array(string.utf8))
            case .enumeration(let enumeration):
                guard case .string(let symbol) = value else { return mismatch(value, "enum \(enumeration.name)", path) }
                guard let index = enumeration.symbols.firstIndex(of: symbol) else {
                    return fail(path, "enum", "'\(symbol)' is not a symbol of \(enumeration.name) (\(enumeration.symbols.joined(separator: ", ")))")
                }
                writeLong(Int64(index))
            case .fixed(let fixed):
                guard let data = Self.codePointBytes(value) else { return mismatch(value, "fixed \(fixed.name)", path) }
                guard data.count == fixed.size else { return fail(path, "fixed", "expected \(fixed.size) bytes for \(fixed.name), got \(data.count)") }
                bytes.append(contentsOf: data)
            case .array(let items):
                guard case .array(let elements) = value else { return mismatch(value, "array", path) }
                if !elements.isEmpty {
                    writeLong(Int64(elements.count))
                    for (index, element) in elements.enumerated() { write(element, items, path: "\(path)[\(index)]") }
                }
                writeLong(0)
            case .map(let values):
                guard case .object(let object) = value else { return mismatch(value, "map", path) }
                if object.count > 0 {
                    writeLong(Int64(object.count))
                    for (key, element) in object {
                        writeBytes(Array(key.utf8))
                        write(element, values, path: JSONSchemaValidator.Context.childPath(path, key))
                    }
                }
                writeLong(0)
            case .record(let record):
                guard case .object(let object) = value else { return mismatch(value, "record \(record.name)", path) }
                for field in record.fields {
                    let fieldPath = JSONSchemaValidator.Context.childPath(path, field.name)
                    if let fieldValue = object[field.name] {
                        write(fieldValue, field.type, path: fieldPath)
                    } else if let defaultValue = field.defaultValue {
                        writeDefault(defaultValue, field.type, path: fieldPath)
                    } else {
                        fail(fieldPath, "required", "required field '\(field.name)' of \(record.name) is missing (it has no default)")
                    }
                }
                for name in object.keys where !record.fields.contains(where: { $0.name == name }) {
                    fail(JSONSchemaValidator.Context.childPath(path, name), "unknown", "\(record.name) has no field '\(name)'")
                }
            case .union(let branches):
                writeUnion(value, branches, path: path)
            case .logical(let logical, let base):
                writeLogical(value, logical, base, path: path)
            case .reference(let name, _):
                fail(path, "schema", "the type \(name) is not defined")
            }
        }

        /// A default applies to the first branch of a union (Avro specification, "Complex Types").
        mutating func writeDefault(_ value: JSONValue, _ schema: AvroSchema, path: String) {
            if case .union(let branches) = schema.resolved, let first = branches.first {
                writeLong(0)
                write(value, first, path: path)
            } else {
                write(value, schema, path: path)
            }
        }

        mutating func writeUnion(_ value: JSONValue, _ branches: [AvroSchema], path: String) {
            // Avro's JSON encoding: null, or {"<branch name>": value}.
            if case .null = value, let index = branches.firstIndex(where: { if case .null = $0.resolved { true } else { false } }) {
                writeLong(Int64(index))
                return
            }
            if case .object(let object) = value, object.count == 1, let (name, inner) = object.members.first,
               let index = branches.firstIndex(where: { $0.branchName == name || $0.branchName.split(separator: ".").last.map(String.init) == name }) {
                var attempt = Writer(limit: limit)
                attempt.write(inner, branches[index], path: path)
                if attempt.violations.isEmpty {
                    writeLong(Int64(index))
                    bytes.append(contentsOf: attempt.bytes)
                    return
                }
            }
            // Plain JSON: the first branch that takes the value.
            var reasons: [String] = []
            for (index, branch) in branches.enumerated() {
                var attempt = Writer(limit: 1)
                attempt.write(value, branch, path: path)
                if attempt.violations.isEmpty {
                    writeLong(Int64(index))
                    bytes.append(contentsOf: attempt.bytes)
                    return
                }
                reasons.append(branch.branchName)
            }
            fail(path, "union", "\(Self.describe(value)) matches no branch of the union [\(reasons.joined(separator: ", "))]")
        }

        mutating func writeLogical(_ value: JSONValue, _ logical: AvroSchema.Logical, _ base: AvroSchema, path: String) {
            switch logical {
            case .uuid:
                guard case .string(let text) = value, UUID(uuidString: text) != nil else { return mismatch(value, "uuid", path) }
                writeBytes(Array(text.utf8))
            case .date:
                if case .string(let text) = value {
                    guard let days = Timestamps.days(fromISODate: text) else { return fail(path, "date", "'\(text)' is not a date (YYYY-MM-DD)") }
                    return writeLong(days)
                }
                write(value, base, path: path)
            case .timeMillis, .timeMicros:
                if case .string(let text) = value {
                    guard let micros = Timestamps.microseconds(fromISOTime: text) else {
                        return fail(path, "time", "'\(text)' is not a time of day (HH:MM:SS[.ffffff])")
                    }
                    return writeLong(logical == .timeMillis ? micros / 1000 : micros)
                }
                write(value, base, path: path)
            case .timestampMillis, .timestampMicros, .localTimestampMillis, .localTimestampMicros:
                if case .string(let text) = value {
                    let local = logical == .localTimestampMillis || logical == .localTimestampMicros
                    guard let micros = Timestamps.microseconds(fromISOTimestamp: text, requireZone: !local) else {
                        return fail(path, "timestamp", "'\(text)' is not an ISO-8601 timestamp\(local ? "" : " with a time zone (Z or ±HH:MM)")")
                    }
                    let millis = logical == .timestampMillis || logical == .localTimestampMillis
                    return writeLong(millis ? micros / 1000 : micros)
                }
                write(value, base, path: path)
            case .decimal(let precision, let scale):
                let text: String
                switch value {
                case .number(let number): text = number.text
                case .string(let string) where Double(string) != nil: text = string
                default:
                    // Avro's JSON encoding of a decimal is its bytes.
                    return write(value, base, path: path)
                }
                guard let unscaled = Decimals.unscaled(text, scale: scale) else {
                    return fail(path, "decimal", "\(text) does not fit decimal(\(precision), \(scale)) without rounding")
                }
                guard unscaled.digits <= precision else {
                    return fail(path, "decimal", "\(text) has more than \(precision) significant digits")
                }
                var twosComplement = unscaled.bigEndian
                if case .fixed(let fixed) = base.resolved {
                    guard twosComplement.count <= fixed.size else { return fail(path, "decimal", "\(text) does not fit in \(fixed.size) bytes") }
                    let pad: UInt8 = (twosComplement.first ?? 0) & 0x80 != 0 ? 0xFF : 0
                    twosComplement = Array(repeating: pad, count: fixed.size - twosComplement.count) + twosComplement
                    bytes.append(contentsOf: twosComplement)
                } else {
                    writeBytes(twosComplement)
                }
            }
        }

        mutating func mismatch(_ value: JSONValue, _ expected: String, _ path: String) {
            fail(path, "type", "expected \(expected), got \(Self.describe(value))")
        }

        static func describe(_ value: JSONValue) -> String {
            value.typeName + JSONSchemaValidator.Context.preview(value)
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

/// Decimal text to the unscaled two's-complement integer Avro stores.
enum Decimals {
    struct Unscaled {
        var bigEndian: [UInt8]
        var digits: Int
    }

    static func unscaled(_ text: String, scale: Int) -> Unscaled? {
        var text = text.lowercased()
        var exponent = 0
        if let e = text.firstIndex(of: "e") {
            guard let value = Int(text[text.index(after: e)...]) else { return nil }
            exponent = value
            text = String(text[..<e])
        }
        let negative = text.hasPrefix("-")
        if negative || text.hasPrefix("+") { text.removeFirst() }
        var digits = String(text.filter { $0 != "." })
        let fraction = text.firstIndex(of: ".").map { text.distance(from: text.index(after: $0), to: text.endIndex) } ?? 0
        let shift = scale - (fraction - exponent)
        if shift >= 0 {
            digits += String(repeating: "0", count: shift)
        } else {
            let dropped = digits.suffix(-shift)
            guard dropped.allSatisfy({ $0 == "0" }) else { return nil }  // would need rounding
            digits = String(digits.dropLast(-shift))
        }
        digits = String(digits.drop { $0 == "0" })
        guard digits.allSatisfy(\.isNumber) else { return nil }
        // Decimal digits to a big-endian magnitude.
        var magnitude: [UInt8] = []
        for digit in digits {
            var carry = Int(digit.asciiValue! - 48)
            for index in magnitude.indices.reversed() {
                let product = Int(magnitude[index]) * 10 + carry
                magnitude[index] = UInt8(product & 0xFF)
                carry = product >> 8
            }
            while carry > 0 {
                magnitude.insert(UInt8(carry & 0xFF), at: 0)
                carry >>= 8
            }
        }
        if magnitude.isEmpty { magnitude = [0] }
        if magnitude[0] & 0x80 != 0 { magnitude.insert(0, at: 0) }
        guard negative, magnitude.contains(where: { $0 != 0 }) else { return Unscaled(bigEndian: magnitude, digits: digits.count) }
        // Two's complement: invert and add one.
        var result = magnitude.map { ~$0 }
        for index in result.indices.reversed() {
            let (sum, overflow) = result[index].addingReportingOverflow(1)
            result[index] = sum
            if !overflow { break }
        }
        while result.count > 1, result[0] == 0xFF, result[1] & 0x80 != 0 { result.removeFirst() }
        return Unscaled(bigEndian: result, digits: digits.count)
    }
}

/// ISO-8601 dates, times and timestamps to Avro's numbers, without Foundation's formatters (exact micros).
enum Timestamps {
    /// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    static func days(year: Int, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int64(era * 146_097 + doe - 719_468)
    }

    static func days(fromISODate text: String) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              (1...12).contains(month), (1...31).contains(day) else { return nil }
        return days(year: year, month: month, day: day)
    }

    /// `HH:MM:SS[.ffffff]` to microseconds since midnight.
    static func microseconds(fromISOTime text: String) -> Int64? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 2, parts[1].count == 2, let hours = Int(parts[0]), let minutes = Int(parts[1]),
              hours < 24, minutes < 60 else { return nil }
        let secondsText = parts[2]
        let whole = secondsText.prefix { $0 != "." }
        guard whole.count == 2, let seconds = Int(whole), seconds < 61 else { return nil }
        var micros: Int64 = 0
        if let dot = secondsText.firstIndex(of: ".") {
            let fraction = secondsText[secondsText.index(after: dot)...]
            guard !fraction.isEmpty, fraction.allSatisfy(\.isNumber) else { return nil }
            let padded = String(fraction.prefix(6)).padding(toLength: 6, withPad: "0", startingAt: 0)
            micros = Int64(padded) ?? 0
        }
        return (Int64(hours) * 3600 + Int64(minutes) * 60 + Int64(seconds)) * 1_000_000 + micros
    }

    /// `YYYY-MM-DDTHH:MM:SS[.ffffff][Z|±HH:MM]` to microseconds since the epoch (UTC).
    static func microseconds(fromISOTimestamp text: String, requireZone: Bool) -> Int64? {
        guard let separator = text.firstIndex(where: { $0 == "T" || $0 == "t" || $0 == " " }),
              let days = days(fromISODate: String(text[..<separator])) else { return nil }
        var time = String(text[text.index(after: separator)...])
        var offsetSeconds: Int64 = 0
        var hasZone = false
        if time.hasSuffix("Z") || time.hasSuffix("z") {
            time.removeLast()
            hasZone = true
        } else if let sign = time.lastIndex(where: { $0 == "+" || $0 == "-" }) {
            let zone = time[time.index(after: sign)...].split(separator: ":")
            guard zone.count == 2, let hours = Int64(zone[0]), let minutes = Int64(zone[1]) else { return nil }
            offsetSeconds = (hours * 3600 + minutes * 60) * (time[sign] == "-" ? -1 : 1)
            time = String(time[..<sign])
            hasZone = true
        }
        guard hasZone || !requireZone, let micros = microseconds(fromISOTime: time) else { return nil }
        return days * 86_400_000_000 + micros - offsetSeconds * 1_000_000
    }
}
