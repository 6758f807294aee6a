import JSON
/// An Avro schema (specification 1.11), parsed from its JSON form, with named types resolved (including those
/// of referenced schemas), field defaults and logical types kept: what turning JSON into Avro needs.
public indirect enum AvroSchema: Sendable {
    case null, boolean, int, long, float, double, bytes, string
    case record(Record)
    case enumeration(Enumeration)
    case array(AvroSchema)
    case map(AvroSchema)
    case union([AvroSchema])
    case fixed(Fixed)
    /// A primitive or fixed type with a `logicalType` (decimal, uuid, date, time-*, timestamp-*).
    case logical(Logical, AvroSchema)
    /// A named type used before its definition ended (recursive types); resolved through the registry.
    case reference(String, NamedTypes)

    public struct Record: Sendable {
        public var name: String
        public var fields: [Field] {
            didSet {
                fieldNames = Set(fields.map(\.name))
                hasDistinctFieldNames = fieldNames.count == fields.count
            }
        }
        /// The fields' names, for refusing unknown members in constant time per member.
        private(set) var fieldNames: Set<String>
        /// No two fields share a name (when they do, the schema is unusual, and unknown members are looked for
        /// one by one).
        private(set) var hasDistinctFieldNames: Bool

        public init(name: String, fields: [Field]) {
            self.name = name
            self.fields = fields
            fieldNames = Set(fields.map(\.name))
            hasDistinctFieldNames = fieldNames.count == fields.count
        }
    }

    public struct Field: Sendable {
        public var name: String
        public var type: AvroSchema
        public var defaultValue: JSONValue?
    }

    public struct Enumeration: Sendable {
        public var name: String
        public var symbols: [String] { didSet { positions = Self.positions(of: symbols) } }
        public var defaultSymbol: String?
        /// Each symbol's position (the first, should one be repeated).
        private(set) var positions: [String: Int]

        public init(name: String, symbols: [String], defaultSymbol: String?) {
            self.name = name
            self.symbols = symbols
            self.defaultSymbol = defaultSymbol
            positions = Self.positions(of: symbols)
        }

        private static func positions(of symbols: [String]) -> [String: Int] {
            Dictionary(symbols.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    public struct Fixed: Sendable {
        public var name: String
        public var size: Int
    }

    public enum Logical: Sendable, Equatable {
        case decimal(precision: Int, scale: Int)
        case uuid, date, timeMillis, timeMicros, timestampMillis, timestampMicros, localTimestampMillis, localTimestampMicros
    }

    /// Named types by full name, filled while parsing (a class, so recursive references see later definitions).
    public final class NamedTypes: @unchecked Sendable {
        // @unchecked: filled during parsing only, read-only afterwards.
        var types: [String: AvroSchema] = [:]
    }

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The name a union branch is known by in Avro's JSON encoding (`{"<name>": value}`).
    var branchName: String {
        switch self {
        case .null: "null"
        case .boolean: "boolean"
        case .int: "int"
        case .long: "long"
        case .float: "float"
        case .double: "double"
        case .bytes: "bytes"
        case .string: "string"
        case .record(let record): record.name
        case .enumeration(let enumeration): enumeration.name
        case .array: "array"
        case .map: "map"
        case .union: "union"
        case .fixed(let fixed): fixed.name
        case .logical(_, let base): base.branchName
        case .reference(let name, _): name
        }
    }

    /// The deepest nesting of types in a schema (records, arrays, maps and unions within each other).
    public static let maximumNestingDepth = 128
    /// The largest decimal precision accepted (digits): values are converted in time quadratic in it.
    public static let maximumDecimalPrecision = 1000
    /// The largest `fixed` size accepted (bytes).
    public static let maximumFixedSize = 1 << 20

    /// Parses a schema; `references` are the referenced schemas' texts (their named types become usable).
    ///
    /// Refuses (besides malformed schemas): nesting deeper than ``maximumNestingDepth``, decimal precision above
    /// ``maximumDecimalPrecision`` or a scale outside 0...precision, `fixed` sizes above ``maximumFixedSize``,
    /// records that can have no finite value (a record that always requires itself), and field defaults that do not
    /// match their field's type (as Apache Avro's Java parser does), which also catches defaults that never end.
    public static func parse(_ text: String, references: [String] = []) throws(ParseError) -> AvroSchema {
        let names = NamedTypes()
        // References may use each other: parse in passes until every one is in, or no pass makes progress.
        var pending: [JSONValue] = []
        for reference in references {
            do { pending.append(try JSONParser.parse(reference)) } catch { throw ParseError(message: "a referenced schema is not JSON: \(error)") }
        }
        while !pending.isEmpty {
            var failures: [JSONValue] = []
            var lastError: ParseError?
            for reference in pending {
                do { _ = try parse(reference, namespace: nil, names: names) } catch {
                    failures.append(reference)
                    lastError = error
                }
            }
            if failures.count == pending.count, let lastError { throw ParseError(message: "a referenced schema cannot be used: \(lastError)") }
            pending = failures
        }
        let document: JSONValue
        do { document = try JSONParser.parse(text) } catch { throw ParseError(message: "the schema is not JSON: \(error)") }
        let schema = try parse(document, namespace: nil, names: names)
        try checkEveryRecordHasAFiniteValue(names)
        try checkDefaults(names)
        return schema
    }

    static let primitives: [String: AvroSchema] = [
        "null": .null, "boolean": .boolean, "int": .int, "long": .long, "float": .float, "double": .double, "bytes": .bytes, "string": .string,
    ]

    private static func fullName(_ name: String, namespace: String?) -> String {
        name.contains(".") || namespace?.isEmpty != false ? name : "\(namespace!).\(name)"
    }

    private static func parse(_ json: JSONValue, namespace: String?, names: NamedTypes, depth: Int = 0) throws(ParseError) -> AvroSchema {
        guard depth <= maximumNestingDepth else { throw ParseError(message: "the schema nests types deeper than \(maximumNestingDepth) levels") }
        func parse(_ json: JSONValue, namespace: String?, names: NamedTypes) throws(ParseError) -> AvroSchema {
            try AvroSchema.parse(json, namespace: namespace, names: names, depth: depth + 1)
        }
        switch json {
        case .string(let name):
            if let primitive = primitives[name] { return primitive }
            let full = fullName(name, namespace: namespace)
            if let known = names.types[full] ?? names.types[name] {
                if case .reference = known { return .reference(full, names) }
                return known
            }
            throw ParseError(message: "unknown type '\(name)'")
        case .array(let branches):
            return .union(try branches.map { value throws(ParseError) in try parse(value, namespace: namespace, names: names) })
        case .object(let object):
            guard let type = object["type"] else { throw ParseError(message: "a schema object needs 'type'") }
            if case .string(let typeName) = type, primitives[typeName] != nil, let logicalName = object["logicalType"]?.stringValue {
                let base = try parse(type, namespace: namespace, names: names)
                if let logical = try logicalType(logicalName, object: object, base: base) { return .logical(logical, base) }
                return base  // an unknown logical type is ignored, as the specification says
            }
            guard case .string(let typeName) = type else { return try parse(type, namespace: namespace, names: names) }
            switch typeName {
            case "record", "error":
                guard let name = object["name"]?.stringValue else { throw ParseError(message: "a record needs a 'name'") }
                let full = fullName(name, namespace: object["namespace"]?.stringValue ?? namespace)
                let innerNamespace = full.contains(".") ? String(full[..<full.lastIndex(of: ".")!]) : nil
                names.types[full] = .reference(full, names)  // allows recursive references to the record
                var fields: [Field] = []
                for field in object["fields"]?.arrayValue ?? [] {
                    guard let fieldName = field["name"]?.stringValue, let fieldType = field["type"] else {
                        throw ParseError(message: "record \(full): every field needs 'name' and 'type'")
                    }
                    fields.append(Field(name: fieldName, type: try parse(fieldType, namespace: innerNamespace, names: names),
                                        defaultValue: field["default"]))
                }
                let record = AvroSchema.record(Record(name: full, fields: fields))
                names.types[full] = record
                return record
            case "enum":
                guard let name = object["name"]?.stringValue else { throw ParseError(message: "an enum needs a 'name'") }
                let full = fullName(name, namespace: object["namespace"]?.stringValue ?? namespace)
                let enumeration = AvroSchema.enumeration(Enumeration(
                    name: full, symbols: object["symbols"]?.arrayValue?.compactMap(\.stringValue) ?? [], defaultSymbol: object["default"]?.stringValue))
                names.types[full] = enumeration
                return enumeration
            case "fixed":
                guard let name = object["name"]?.stringValue, let size = object["size"]?.numberValue?.int64 else {
                    throw ParseError(message: "a fixed type needs 'name' and 'size'")
                }
                guard (0...Int64(maximumFixedSize)).contains(size) else {
                    throw ParseError(message: "fixed \(name): the size \(size) is not within 0...\(maximumFixedSize)")
                }
                let full = fullName(name, namespace: object["namespace"]?.stringValue ?? namespace)
                let fixed = AvroSchema.fixed(Fixed(name: full, size: Int(size)))
                names.types[full] = fixed
                if let logicalName = object["logicalType"]?.stringValue, let logical = try logicalType(logicalName, object: object, base: fixed) {
                    return .logical(logical, fixed)
                }
                return fixed
            case "array":
                guard let items = object["items"] else { throw ParseError(message: "an array needs 'items'") }
                return .array(try parse(items, namespace: namespace, names: names))
            case "map":
                guard let values = object["values"] else { throw ParseError(message: "a map needs 'values'") }
                return .map(try parse(values, namespace: namespace, names: names))
            default:
                return try parse(.string(typeName), namespace: namespace, names: names)
            }
        default:
            throw ParseError(message: "a schema is a name, an object or a union array")
        }
    }

    private static func logicalType(_ name: String, object: JSONObject, base: AvroSchema) throws(ParseError) -> Logical? {
        switch (name, base) {
        case ("decimal", .bytes), ("decimal", .fixed):
            guard let precision = object["precision"]?.numberValue?.int64, precision > 0 else {
                throw ParseError(message: "a decimal needs a positive integer 'precision'")
            }
            guard precision <= maximumDecimalPrecision else {
                throw ParseError(message: "a decimal precision of \(precision) digits is more than the \(maximumDecimalPrecision) accepted")
            }
            let scale = object["scale"] == nil ? 0 : object["scale"]?.numberValue?.int64 ?? -1
            guard (0...precision).contains(scale) else {
                throw ParseError(message: "a decimal's 'scale' must be an integer within 0...precision (\(precision))")
            }
            return .decimal(precision: Int(precision), scale: Int(scale))
        case ("uuid", .string): return .uuid
        case ("date", .int): return .date
        case ("time-millis", .int): return .timeMillis
        case ("time-micros", .long): return .timeMicros
        case ("timestamp-millis", .long): return .timestampMillis
        case ("timestamp-micros", .long): return .timestampMicros
        case ("local-timestamp-millis", .long): return .localTimestampMillis
        case ("local-timestamp-micros", .long): return .localTimestampMicros
        default: return nil
        }
    }

    /// Every record must have a finite value: one whose fields do not all lead back to it (`{"name": "A", "fields":
    /// [{"name": "a", "type": "A"}]}` has none; recursion through a union with another branch, an array or a map
    /// is fine). Computed as the least fixed point, in time linear in the schema.
    private static func checkEveryRecordHasAFiniteValue(_ names: NamedTypes) throws(ParseError) {
        var records: [String: Record] = [:]
        for (name, type) in names.types { if case .record(let record) = type { records[name] = record } }
        /// The records one of which a value of `schema` needs; nil when it has a value needing none.
        func requirement(_ schema: AvroSchema) -> Set<String>? {
            switch schema {
            case .record(let record): return [record.name]
            case .reference(let name, _): return records[name] != nil ? [name] : nil
            case .logical(_, let base): return requirement(base)
            case .union(let branches):
                var needs = Set<String>()
                for branch in branches {
                    guard let branchNeeds = requirement(branch) else { return nil }
                    needs.formUnion(branchNeeds)
                }
                return needs
            default: return nil
            }
        }
        struct FieldID: Hashable { var record: String; var field: Int }
        var unsatisfiedFields: [String: Int] = [:]
        var watchers: [String: [FieldID]] = [:]
        var requirements: [FieldID: Set<String>] = [:]
        for (name, record) in records {
            var count = 0
            for (position, field) in record.fields.enumerated() {
                guard let needs = requirement(field.type) else { continue }
                count += 1
                requirements[FieldID(record: name, field: position)] = needs
                for need in needs { watchers[need, default: []].append(FieldID(record: name, field: position)) }
            }
            unsatisfiedFields[name] = count
        }
        var finite = Set(unsatisfiedFields.filter { $0.value == 0 }.keys)
        var queue = Array(finite)
        var satisfied = Set<FieldID>()
        while let next = queue.popLast() {
            for field in watchers[next] ?? [] where satisfied.insert(field).inserted {
                unsatisfiedFields[field.record, default: 0] -= 1
                if unsatisfiedFields[field.record] == 0, finite.insert(field.record).inserted { queue.append(field.record) }
            }
        }
        for name in records.keys.sorted() where !finite.contains(name) {
            let record = records[name]!
            let position = record.fields.indices.first { !satisfied.contains(FieldID(record: name, field: $0)) && requirements[FieldID(record: name, field: $0)] != nil } ?? 0
            let needs = requirements[FieldID(record: name, field: position)]?.sorted().joined(separator: " or ") ?? "?"
            throw ParseError(message: "record \(name) can have no finite value: its field '\(record.fields[position].name)' always needs a \(needs), "
                + "which needs it back (recursion must go through a union with another branch, an array or a map)")
        }
    }

    /// Every field default must encode as its field's type (defaults of records within defaults included), within
    /// the encoder's depth and work bounds: a default that nests itself forever is refused here.
    private static func checkDefaults(_ names: NamedTypes) throws(ParseError) {
        for (name, type) in names.types.sorted(by: { $0.key < $1.key }) {
            guard case .record(let record) = type else { continue }
            for field in record.fields {
                guard let defaultValue = field.defaultValue else { continue }
                if let violation = AvroEncoder.checkDefault(defaultValue, field.type) {
                    throw ParseError(message: "record \(name), field '\(field.name)': the default does not fit the field's type: \(violation.reason)")
                }
            }
        }
    }

    /// Follows a `.reference` to its definition.
    var resolved: AvroSchema {
        if case .reference(let name, let names) = self, let definition = names.types[name] {
            if case .reference = definition { return self }
            return definition
        }
        return self
    }
}
