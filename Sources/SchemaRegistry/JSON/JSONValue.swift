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
}

/// A JSON number: its text as written, and its value as a `Double` (and as `Int64` when it is one exactly).
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    public let double: Double
    /// The exact integer, when the number is an integer that fits in 64 bits.
    public let int64: Int64?

    public init(text: String) {
        self.text = text
        double = Double(text) ?? .nan
        if let exact = Int64(text) {
            int64 = exact
        } else if let value = Double(text), value.rounded() == value, abs(value) < 9.2e18 {
            int64 = Int64(value)
        } else {
            int64 = nil
        }
    }

    public init(_ value: Int64) { self.init(text: String(value)) }

    /// No fractional part (`1.0` is an integer, as JSON Schema draft 6 and later count it).
    public var isInteger: Bool { int64 != nil || (double.isFinite && double.rounded() == double) }

    /// The exact decimal value, for arithmetic that must not round (JSON Schema's `multipleOf`).
    public var decimal: Decimal? { Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) }

    func numericallyEquals(_ other: JSONNumber) -> Bool {
        if let a = int64, let b = other.int64 { return a == b }
        if let a = decimal, let b = other.decimal, !a.isNaN, !b.isNaN { return a == b }
        return double == other.double
    }

    public var description: String { text }
}

/// A JSON object: its members in document order, with lookup by name (the last duplicate wins, as in most parsers).
public struct JSONObject: Sendable, Hashable, Sequence {
    public private(set) var members: [(key: String, value: JSONValue)]
    /// Positions by key, kept only for larger objects (a linear scan is faster for a few members).
    private var index: [String: Int]?
    private static let indexThreshold = 12

    public init(_ members: [(String, JSONValue)] = []) {
        self.members = []
        index = nil
        for (key, value) in members { self[key] = value }
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
