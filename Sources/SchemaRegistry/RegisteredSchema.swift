/// A schema as the registry returns it.
public struct RegisteredSchema: Sendable, Hashable {
    public enum SchemaType: String, Sendable, Hashable {
        case avro = "AVRO"
        case json = "JSON"
        case protobuf = "PROTOBUF"
    }

    /// A named reference to another registered schema (`references` in the registry's answer).
    public struct Reference: Sendable, Hashable, Codable {
        public var name: String
        public var subject: String
        public var version: Int
    }

    /// The globally unique id, written into the wire format.
    public var id: Int32
    /// The subject and version it was fetched by (`nil` when fetched by id).
    public var subject: String?
    public var version: Int?
    /// `schemaType`; absent in the registry's answer means Avro.
    public var type: SchemaType
    /// The schema text (Avro JSON or a JSON Schema document).
    public var schema: String
    public var references: [Reference]
}

/// Which version of a subject to use: `latest` or a number (Kong's `schema_version`).
public enum SchemaVersion: Sendable, Hashable, CustomStringConvertible {
    case latest
    case number(Int)

    /// Parses `latest` or a positive integer.
    public init?(_ text: String) {
        if text == "latest" {
            self = .latest
        } else if let number = Int(text), number > 0 {
            self = .number(number)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .latest: "latest"
        case .number(let number): String(number)
        }
    }
}
