import Foundation

/// A JSON document as a tree, with numbers kept as written (so integers stay exact and `1.50` keeps its text).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var objectValue: JSONObject? { if case .object(let object) = self { object } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let array) = self { array } else { nil } }
    public var stringValue: String? { if case .string(let string) = self { string } else { nil } }
    public var numberValue: JSONNumber? { if case .number(let number) = self { number } else { nil } }
    public var boolValue: Bool? { if case .bool(let bool) = self { bool } else { nil } }

    /// The JSON type name as JSON Schema uses it (`integer` for numbers with no fraction).
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number(let number): number.isInteger ? "integer" : "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// JSON equality: numbers by value (`1 == 1.0`), objects regardless of key order.
    public func jsonEquals(_ other: JSONValue) -> Bool {
        switch (self, other) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a.numericallyEquals(b)
        case (.string(let a), .string(let b)): a.unicodeScalars.elementsEqual(b.unicodeScalars)  // no Unicode normalisation
        case (.array(let a), .array(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.jsonEquals($1) }
        case (.object(let a), .object(let b)):
            a.count == b.count && a.allSatisfy { key, value in b[key].map { value.jsonEquals($0) } ?? false }
        default: false
        }
    }

    /// A hash consistent with ``jsonEquals(_:)`` (numbers by value, objects regardless of key order, strings by
    /// scalars), for finding equal values in linear expected time.
    public var jsonHash: Int {
        var hasher = Hasher()
        hashJSON(into: &hasher)
        return hasher.finalize()
    }

    func hashJSON(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0 as UInt8)
        case .bool(let bool):
            hasher.combine(1 as UInt8)
            hasher.combine(bool)
        case .number(let number):
            hasher.combine(2 as UInt8)
            number.hashNumericValue(into: &hasher)
        case .string(let string):
            hasher.combine(3 as UInt8)
            var text = string
            text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }  // equal scalars, equal UTF-8
            hasher.combine(text.utf8.count)
        case .array(let array):
            hasher.combine(4 as UInt8)
            hasher.combine(array.count)
            for element in array { element.hashJSON(into: &hasher) }
        case .object(let object):
            hasher.combine(5 as UInt8)
            hasher.combine(object.count)
            // Order-independent: the sum of the members' hashes. Keys hash as `String` does, consistent with the
            // object's key lookup that `jsonEquals` uses.
            var sum = 0
            for (key, value) in object {
                var member = Hasher()
                member.combine(key)
                value.hashJSON(into: &member)
                sum &+= member.finalize()
            }
            hasher.combine(sum)
        }
    }

    /// How many values the document holds (itself, its elements and members, recursively), without recursion.
    public var nodeCount: Int {
        var count = 0
        var pending: [JSONValue] = [self]
        while let value = pending.popLast() {
            count += 1
            switch value {
            case .array(let array): pending.append(contentsOf: array)
            case .object(let object): for (_, member) in object { pending.append(member) }
            default: break
            }
        }
        return count
    }
}

/// A JSON number: its text as written, and its value as a `Double` (and as `Int64` when it is one exactly).
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    public let double: Double
    /// The exact integer, when the number is an integer that fits in 64 bits (`1.0` and `1e2` are; `1e300`, `1.5`
    /// and `1e-400` are not). Computed from the text, never through `Double`.
    public let int64: Int64?

    public init(text: String) {
        self.text = text
        double = Double(text) ?? .nan
        if let exact = Int64(text) {
            int64 = exact
        } else {
            int64 = DecimalParts(text)?.int64
        }
    }

    public init(_ value: Int64) { self.init(text: String(value)) }

    /// For the parser, which computed the values from the text (exactly as ``init(text:)`` would).
    init(text: String, double: Double, int64: Int64?) {
        self.text = text
        self.double = double
        self.int64 = int64
    }

    /// The exact value taken apart (sign, significant digits, power of ten), or nil when the text is not a number.
    public var parts: DecimalParts? { DecimalParts(text) }

    /// No fractional part, exactly (`1.0` is an integer, as JSON Schema draft 6 and later count it; so is `1e300`).
    public var isInteger: Bool {
        if int64 != nil { return true }
        if let parts { return parts.isInteger }
        return double.isFinite && double.rounded() == double
    }

    /// Equal values, exactly (`1 == 1.0 == 1e0`, `-0 == 0`), in time linear in the texts.
    public func numericallyEquals(_ other: JSONNumber) -> Bool { Self.compare(self, other) == 0 }

    /// -1, 0 or 1 as `a` is less than, equal to or greater than `b`, exactly.
    public static func compare(_ a: JSONNumber, _ b: JSONNumber) -> Int {
        if let x = a.int64, let y = b.int64 { return x < y ? -1 : x > y ? 1 : 0 }
        // Rounding to Double is monotonic: different doubles mean different values in the same order.
        if a.double != b.double, !a.double.isNaN, !b.double.isNaN {
            return a.double < b.double ? -1 : 1
        }
        guard let x = a.parts, let y = b.parts else { return a.double < b.double ? -1 : a.double > b.double ? 1 : 0 }
        return DecimalParts.compare(x, y)
    }

    /// Whether `self` is an integer multiple of `divisor` (JSON Schema's `multipleOf`), computed exactly when the
    /// divisor has at most 19 significant digits (every practical schema), in time linear in the number's text;
    /// otherwise through `Double`, as most validators do.
    public func isMultiple(of divisor: JSONNumber) -> Bool {
        if let value = int64, let step = divisor.int64, step != 0 {
            let (remainder, overflow) = value.remainderReportingOverflow(dividingBy: step)
            return overflow || remainder == 0  // overflow: Int64.min by -1, a multiple
        }
        if let value = parts, let step = divisor.parts, !step.isZero, let multiple = value.isMultiple(of: step) { return multiple }
        let quotient = double / divisor.double
        return quotient.isFinite && quotient.rounded() == quotient
    }

    /// Hashes the value consistently with ``numericallyEquals(_:)``.
    func hashNumericValue(into hasher: inout Hasher) {
        if let int64 {
            hasher.combine(0 as UInt8)
            hasher.combine(int64)
        } else if let parts {
            hasher.combine(1 as UInt8)
            hasher.combine(parts)
        } else {
            hasher.combine(2 as UInt8)
            hasher.combine(double == 0 ? 0 : double)
        }
    }

    public var description: String { text }
}

/// A decimal number's text taken apart exactly, without converting it: its sign, its significant digits (no
/// leading or trailing zeros) and the power of ten that scales them. Linear in the text's length.
///
/// Grammar (strict): an optional sign, digits, an optional `.` and digits, an optional `e`/`E`, sign and digits.
/// Exponents beyond ±2^59 are saturated: such numbers compare as equally huge (or tiny), as they do as doubles.
public struct DecimalParts: Sendable, Hashable {
    public var negative: Bool
    /// ASCII digits, neither starting nor ending with `0`; empty for zero.
    public var digits: [UInt8]
    /// The value is `digits × 10^exponent`.
    public var exponent: Int

    static let exponentSaturation = 1 << 59

    public var isZero: Bool { digits.isEmpty }
    public var isInteger: Bool { isZero || exponent >= 0 }
    /// How many digits the integer part has (zero or negative for values below 1): the order of magnitude.
    var magnitudeOrder: Int { digits.count + exponent }

    public init?(_ text: String) {
        var text = text
        guard let parts = text.withUTF8({ Self.parse($0) }) else { return nil }
        self = parts
    }

    init(negative: Bool, digits: [UInt8], exponent: Int) {
        self.negative = negative && !digits.isEmpty  // -0 is 0
        self.digits = digits
        self.exponent = digits.isEmpty ? 0 : exponent
    }

    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> DecimalParts? {
        var index = 0
        let count = bytes.count
        var negative = false
        if index < count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        let integerStart = index
        while index < count, isDigit(bytes[index]) { index += 1 }
        let integerEnd = index
        guard integerEnd > integerStart else { return nil }
        var fractionStart = index
        var fractionEnd = index
        if index < count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            fractionStart = index
            while index < count, isDigit(bytes[index]) { index += 1 }
            fractionEnd = index
            guard fractionEnd > fractionStart else { return nil }
        }
        var writtenExponent = 0
        if index < count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            var exponentNegative = false
            if index < count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            let exponentStart = index
            while index < count, isDigit(bytes[index]) {
                // Saturates: below 2^59, times 10 plus 9 still fits in Int64.
                if writtenExponent < exponentSaturation {
                    writtenExponent = min(writtenExponent * 10 + Int(bytes[index] - 0x30), exponentSaturation)
                }
                index += 1
            }
            guard index > exponentStart else { return nil }
            if exponentNegative { writtenExponent = -writtenExponent }
        }
        guard index == count else { return nil }
        // Significant digits: the integer and fraction digits without leading and trailing zeros, copied as (at
        // most two) runs of bytes.
        let fractionCount = fractionEnd - fractionStart
        func isZero(_ position: Int) -> Bool { bytes[position] == 0x30 }
        var first = integerStart
        while first < integerEnd, isZero(first) { first += 1 }
        if first == integerEnd {
            first = fractionStart
            while first < fractionEnd, isZero(first) { first += 1 }
            if first == fractionEnd { return DecimalParts(negative: false, digits: [], exponent: 0) }
        }
        // The last non-zero digit exists (the first one does).
        var last = fractionEnd - 1
        var trailingZeros = 0
        while last >= fractionStart, isZero(last) { last -= 1; trailingZeros += 1 }
        if last < fractionStart {
            last = integerEnd - 1
            while isZero(last) { last -= 1; trailingZeros += 1 }
        }
        var digits: [UInt8] = []
        if first < integerEnd {
            digits.reserveCapacity(last - first + 1)
            digits.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[first..<min(last + 1, integerEnd)]))
            if last >= fractionStart { digits.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[fractionStart...last])) }
        } else {
            digits.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[first...last]))
        }
        // |writtenExponent| <= 2^59 and the counts are below 2^48: no overflow.
        return DecimalParts(negative: negative, digits: digits, exponent: writtenExponent - fractionCount + trailingZeros)
    }

    /// The exact value as an `Int64`, when it is an integer in range.
    public var int64: Int64? {
        if isZero { return 0 }
        guard exponent >= 0, digits.count + exponent <= 19 else { return nil }
        var value: Int64 = 0
        for digit in digits {
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = negative ? shifted.subtractingReportingOverflow(Int64(digit - 0x30))
                                             : shifted.addingReportingOverflow(Int64(digit - 0x30))
            guard !overflow1, !overflow2 else { return nil }
            value = next
        }
        for _ in 0..<exponent {
            let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = shifted
        }
        return value
    }

    /// -1, 0 or 1, exactly.
    static func compare(_ a: DecimalParts, _ b: DecimalParts) -> Int {
        let signA = a.isZero ? 0 : a.negative ? -1 : 1
        let signB = b.isZero ? 0 : b.negative ? -1 : 1
        if signA != signB { return signA < signB ? -1 : 1 }
        if signA == 0 { return 0 }
        let magnitude = compareMagnitudes(a, b)
        return signA < 0 ? -magnitude : magnitude
    }

    private static func compareMagnitudes(_ a: DecimalParts, _ b: DecimalParts) -> Int {
        if a.magnitudeOrder != b.magnitudeOrder { return a.magnitudeOrder < b.magnitudeOrder ? -1 : 1 }
        // Same order of magnitude: digit by digit (the shorter one continues with zeros).
        for position in 0..<max(a.digits.count, b.digits.count) {
            let x = position < a.digits.count ? a.digits[position] : 0x30
            let y = position < b.digits.count ? b.digits[position] : 0x30
            if x != y { return x < y ? -1 : 1 }
        }
        return 0
    }

    /// `self / divisor` is an integer, exactly; nil when the divisor has more than 19 significant digits.
    ///
    /// With `self = A·10^a` and `divisor = B·10^b`, `B = 2^p·5^q·B'` (B' coprime to 10) and `e = a - b`, the
    /// quotient is an integer when B' divides A, and A has at least `p - e` factors 2 and `q - e` factors 5.
    func isMultiple(of divisor: DecimalParts) -> Bool? {
        guard !divisor.isZero, divisor.digits.count <= 19 else { return divisor.isZero ? false : nil }
        if isZero { return true }
        var coprime = divisor.digits.reduce(UInt64(0)) { $0 * 10 + UInt64($1 - 0x30) }  // < 10^19 < 2^64
        var twos = 0
        var fives = 0
        while coprime % 2 == 0 { coprime /= 2; twos += 1 }
        while coprime % 5 == 0 { coprime /= 5; fives += 1 }
        let shift = exponent - divisor.exponent  // both within ±(2^59 + 2^48): no overflow
        guard Self.remainder(digits, dividingBy: coprime) == 0 else { return false }
        return Self.hasFactors(digits, prime: 2, atLeast: twos - shift) && Self.hasFactors(digits, prime: 5, atLeast: fives - shift)
    }

    /// The remainder of the decimal digits (an integer) by `divisor`, in one pass.
    static func remainder(_ digits: [UInt8], dividingBy divisor: UInt64) -> UInt64 {
        if divisor == 1 { return 0 }
        var remainder: UInt64 = 0
        for digit in digits {
            // remainder * 10 + digit < 10 * divisor + 10: the quotient fits, the remainder is below divisor.
            let product = remainder.multipliedFullWidth(by: 10)
            let (low, carry) = product.low.addingReportingOverflow(UInt64(digit - 0x30))
            remainder = divisor.dividingFullWidth((product.high + (carry ? 1 : 0), low)).remainder
        }
        return remainder
    }

    /// Whether the integer written by `digits` (not zero) is divisible by `prime`^`count` (prime 2 or 5).
    static func hasFactors(_ digits: [UInt8], prime: UInt64, atLeast count: Int) -> Bool {
        if count <= 0 { return true }
        // A number below 10^n has fewer than 3.33·n factors 2 (and fewer factors 5).
        guard count <= 4 * digits.count else { return false }
        // Divide by prime^chunk at a time: at most ~n/8 passes over the digits.
        let chunk = prime == 2 ? 32 : 13
        let power: UInt64 = prime == 2 ? 1 << 32 : 1_220_703_125  // 5^13
        var value = digits
        var found = 0
        while true {
            let low = Self.remainder(value, dividingBy: power)
            if low != 0 {
                var rest = low
                while rest % prime == 0 { rest /= prime; found += 1 }
                return found >= count
            }
            found += chunk
            if found >= count { return true }
            // value /= power (long division in decimal; carry * 10 + digit < 10 * power fits in UInt64).
            var quotient: [UInt8] = []
            quotient.reserveCapacity(value.count)
            var carry: UInt64 = 0
            for digit in value {
                let current = carry * 10 + UInt64(digit - 0x30)
                let next = current / power
                if !(quotient.isEmpty && next == 0) { quotient.append(UInt8(next) + 0x30) }
                carry = current % power
            }
            value = quotient
        }
    }
}

/// A JSON object: its members in document order, with lookup by name (the last duplicate wins, as in most parsers).
public struct JSONObject: Sendable, Hashable, Sequence {
    public private(set) var members: [(key: String, value: JSONValue)]
    /// Positions by key, kept only for larger objects (a linear scan is faster for a few members).
    private var index: [String: Int]?
    static let indexThreshold = 12

    public init(_ members: [(String, JSONValue)] = []) {
        self.members = []
        index = nil
        for (key, value) in members { self[key] = value }
    }

    /// Members whose keys are all different, with their positions by key when the parser built them (only
    /// for objects above ``indexThreshold`` members).
    init(uniqueMembers: [(key: String, value: JSONValue)], index: [String: Int]?) {
        members = uniqueMembers
        self.index = nil
        if let index, uniqueMembers.count > Self.indexThreshold { self.index = index } else { rebuildIndex() }
    }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        return members.firstIndex { $0.key == key }
    }

    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { members[$0].value } }
        set {
            if let position = position(of: key) {
                if let newValue { members[position].value = newValue } else {
                    members.remove(at: position)
                    rebuildIndex()
                }
            } else if let newValue {
                members.append((key, newValue))
                if index != nil { index![key] = members.count - 1 } else if members.count > Self.indexThreshold { rebuildIndex() }
            }
        }
    }

    private mutating func rebuildIndex() {
        index = members.count > Self.indexThreshold
            ? Dictionary(members.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { _, last in last }) : nil
    }

    public var count: Int { members.count }
    public var keys: [String] { members.map(\.key) }
    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> { members.makeIterator() }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.elementsEqual(rhs.members) { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for (key, value) in members {
            hasher.combine(key)
            hasher.combine(value)
        }
    }
}

extension JSONNumber {
    /// A number from text that is a JSON number (surrounding spaces allowed), else `nil`: `"12"`, `" 1.5e3 "`; not
    /// `"0x10"`, `"NaN"` or `"1,5"`. Bounded as the parser is (``JSONParser/maximumNumberLength``).
    public static func parse(_ text: String) -> JSONNumber? {
        let trimmed = text.utf8.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed()
        guard !trimmed.isEmpty, trimmed.count <= JSONParser.maximumNumberLength else { return nil }
        guard case .number(let number)? = try? JSONParser.parse(Array(trimmed)) else { return nil }
        return number
    }
}
