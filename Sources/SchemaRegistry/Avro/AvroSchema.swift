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
        public var fields: [Field]
    }

    public struct Field: Sendable {
        public var name: String
        public var type: AvroSchema
        public var defaultValue: JSONValue?
    }

    public struct Enumeration: Sendable {
        public var name: String
        public var symbols: [String]
        public var defaultSymbol: String?
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

    /// Parses a schema; `references` are the referenced schemas' texts (their named types become usable).
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
        return try parse(document, namespace: nil, names: names)
    }

    static let primitives: [String: AvroSchema] = [
        "null": .null, "boolean": .boolean, "int": .int, "long": .long, "float": .float, "double": .double, "bytes": .bytes, "string": .string,
    ]

    private static func fullName(_ name: String, namespace: String?) -> String {
        name.contains(".") || namespace?.isEmpty != false ? name : "\(namespace!).\(name)"
    }

    private static func parse(_ json: JSONValue, namespace: String?, names: NamedTypes) throws(ParseError) -> AvroSchema {
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
            let precision = Int(object["precision"]?.numberValue?.int64 ?? 0)
            guard precision > 0 else { throw ParseError(message: "a decimal needs a positive 'precision'") }
            return .decimal(precision: precision, scale: Int(object["scale"]?.numberValue?.int64 ?? 0))
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

    /// Follows a `.reference` to its definition.
    var resolved: AvroSchema {
        if case .reference(let name, let names) = self, let definition = names.types[name] {
            if case .reference = definition { return self }
            return definition
        }
        return self
    }
}
