import SchemaRegistry

/// A route's `schema_registry.confluent` settings: where the schemas are, and which subjects the record's
/// value and key must match.
public struct SchemaRegistrySettings: Sendable, Hashable {
    /// A subject and version (`value_schema`, `key_schema`).
    public struct Subject: Sendable, Hashable {
        /// `subject_name`. Default: TopicNameStrategy, `<topic>-value` or `<topic>-key`.
        public var name: String?
        /// `schema_version`: `latest` or a version number. Default: `latest`.
        public var version: SchemaVersion = .latest
        /// `payload_encoding` (Kong 3.16), for Avro subjects: how the JSON writes unions. Kong's default is
        /// `avro_json` (and a Kong export always lists it); when the key is absent kbridge takes both (`auto`), so
        /// configurations written before the key existed keep working. No effect on JSON Schema subjects.
        public var payloadEncoding: AvroEncoder.UnionEncoding = .auto

        public init(name: String? = nil, version: SchemaVersion = .latest, payloadEncoding: AvroEncoder.UnionEncoding = .auto) {
            self.name = name
            self.version = version
            self.payloadEncoding = payloadEncoding
        }

        /// The subject for a topic: the configured name, or `<topic>-<suffix>`.
        func subject(topic: String, suffix: String) -> String { name ?? "\(topic)-\(suffix)" }
    }

    public var registry: SchemaRegistryConfiguration
    /// `value_schema`: always applied (the request body is the record value). Default: `<topic>-value`, latest.
    public var value = Subject()
    /// `key_schema`: applied to the key (`key_query_arg` or `{key}`) when set. Default: none.
    public var key: Subject?

    public init(registry: SchemaRegistryConfiguration) { self.registry = registry }
}
