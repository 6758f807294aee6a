import JSON
import NIOCore
import NIOHTTP1
import SchemaRegistry
import Synchronization

/// Validates a route's records against their registered schemas and serializes them in the Confluent wire
/// format: the request body is the record value (`value_schema`), the key (`key_query_arg` or `{key}`) is
/// checked against `key_schema` when one is set.
///
/// Two phases: the schemas a topic needs (``cachedSchemas(topic:)`` when they are cached and compiled, which is
/// the usual case and costs no wait; else ``schemas(topic:)``, which may ask the registry), then the record
/// (``encode(body:key:schemas:)``, synchronous and bounded by the encoders' own limits).
final class SchemaRecordEncoder: Sendable {
    struct Record: Sendable {
        var value: [UInt8]
        var key: [UInt8]?
    }

    /// A registered schema ready to validate with: compiled (JSON Schema) or parsed (Avro).
    struct PreparedSchema: Sendable {
        enum Validator: Sendable {
            case json(JSONSchemaValidator)
            case avro(AvroSchema)
            case unsupported(RegisteredSchema.SchemaType)
        }
        var subject: String
        var id: Int32
        var version: Int?
        var validator: Validator
    }

    /// The schemas a topic's records need: the value's, and the key's when the route has `key_schema`.
    struct TopicSchemas: Sendable {
        var value: PreparedSchema
        var key: PreparedSchema?
    }

    let settings: SchemaRegistrySettings
    let client: SchemaRegistryClient
    /// Compiled validators and parsed Avro schemas by schema id (a registered schema never changes).
    private let prepared = Mutex<[Int32: PreparedSchema.Validator]>([:])
    static let maximumViolations = 50
    /// Bodies up to this size whose schemas are ready are validated on the event loop, where the request already
    /// is: validating a few kilobytes costs microseconds, less than a hop to another thread and back. Larger
    /// bodies are validated off the event loop.
    static let inlineBodyLimit = 16 * 1024

    init(settings: SchemaRegistrySettings, client: SchemaRegistryClient) {
        self.settings = settings
        self.client = client
    }

    /// The schemas for `topic` if each is cached (and fresh) and already compiled; `nil` when one must be fetched
    /// or compiled first (``schemas(topic:)``).
    func cachedSchemas(topic: String) -> TopicSchemas? {
        let valueSubject = settings.value.subject(topic: topic, suffix: "value")
        guard let value = cachedSchema(subject: valueSubject, version: settings.value.version) else { return nil }
        guard let keySchema = settings.key else { return TopicSchemas(value: value, key: nil) }
        guard let key = cachedSchema(subject: keySchema.subject(topic: topic, suffix: "key"), version: keySchema.version) else { return nil }
        return TopicSchemas(value: value, key: key)
    }

    /// The schemas for `topic`, fetched from the registry and compiled when they are not cached.
    func schemas(topic: String) async -> Result<TopicSchemas, ResponseError> {
        let value: PreparedSchema
        switch await schema(subject: settings.value.subject(topic: topic, suffix: "value"), version: settings.value.version) {
        case .success(let prepared): value = prepared
        case .failure(let error): return .failure(error)
        }
        guard let keySchema = settings.key else { return .success(TopicSchemas(value: value, key: nil)) }
        return await schema(subject: keySchema.subject(topic: topic, suffix: "key"), version: keySchema.version)
            .map { TopicSchemas(value: value, key: $0) }
    }

    /// The record for a request to `topic`, with the schemas from the cache or the registry.
    func encode(body: ByteBuffer, key: String?, topic: String) async -> Result<Record, ResponseError> {
        if let cached = cachedSchemas(topic: topic) { return encode(body: body, key: key, schemas: cached) }
        return await schemas(topic: topic).flatMap { encode(body: body, key: key, schemas: $0) }
    }

    /// The record for a request, or the answer that refuses it.
    func encode(body: ByteBuffer, key: String?, schemas: TopicSchemas) -> Result<Record, ResponseError> {
        let value: [UInt8]
        if case .avro(let avro) = schemas.value.validator {
            // Avro from the bytes directly when the document allows, through the tree otherwise (the same bytes and
            // answers); duplicate keys are refused, as below.
            let encoded = body.withUnsafeReadableBytes { bytes in
                AvroEncoder.encode(json: bytes, schema: avro, limit: Self.maximumViolations, unionEncoding: settings.value.payloadEncoding,
                                   prefix: ConfluentWireFormat.header(schemaID: schemas.value.id))
            }
            switch encoded {
            case .success(let framed): value = framed
            case .failure(.invalidJSON(let error)): return .failure(Self.invalidBody(error))
            case .failure(.mismatch(let mismatch)):
                return .failure(ResponseError(Self.invalid(role: "payload", subject: schemas.value.subject, version: schemas.value.version,
                                                           violations: mismatch.violations)))
            }
        } else if case .json(let validator) = schemas.value.validator {
            // Validated while read when the document allows, through the tree otherwise (the same answers); the
            // bytes are produced as they came.
            switch body.withUnsafeReadableBytes({ bytes in validator.validate(json: bytes, limit: Self.maximumViolations) }) {
            case .failure(let error): return .failure(Self.invalidBody(error))
            case .success(let violations) where !violations.isEmpty:
                return .failure(ResponseError(Self.invalid(role: "payload", subject: schemas.value.subject, version: schemas.value.version,
                                                           violations: violations)))
            case .success: value = ConfluentWireFormat.frame(schemaID: schemas.value.id, payload: body.readableBytesView)
            }
        } else {
            let document: JSONValue
            do {
                // The bytes are produced as they came (JSON Schema) or from this tree (Avro): a key written twice would be
                // validated as its last value and read as its first by many consumers, so it is refused.
                document = try body.withUnsafeReadableBytes { bytes in try JSONParser.parse(bytes, duplicateKeys: .refuse) }
            } catch {
                return .failure(Self.invalidBody(error))
            }
            switch serialize(document, raw: Array(body.readableBytesView), schema: schemas.value, unionEncoding: settings.value.payloadEncoding,
                             role: "payload") {
            case .success(let bytes): value = bytes
            case .failure(let error): return .failure(error)
            }
        }
        // Without a key schema the key is produced as it came (its UTF-8 bytes), as on routes without a registry.
        guard let keySchema = schemas.key else { return .success(Record(value: value, key: key.map { Array($0.utf8) })) }
        guard let key else {
            return .failure(ResponseError(.error(.badRequest, code: "key_required", "this route's key schema needs a message key")))
        }
        // The key is a string; its serialized JSON form is that string as JSON text. When the key schema does not
        // take a string (an Avro long, say), the key is read as JSON instead ("42" is the number 42).
        var keyJSON = ByteBuffer()
        keyJSON.writeJSONString(key)
        let keyEncoding = settings.key?.payloadEncoding ?? .auto
        let asString = serialize(.string(key), raw: Array(keyJSON.readableBytesView), schema: keySchema, unionEncoding: keyEncoding, role: "key")
        if case .success(let bytes) = asString { return .success(Record(value: value, key: bytes)) }
        if let parsed = try? JSONParser.parse(key, duplicateKeys: .refuse), parsed != .string(key),
           case .success(let bytes) = serialize(parsed, raw: Array(key.utf8), schema: keySchema, unionEncoding: keyEncoding, role: "key") {
            return .success(Record(value: value, key: bytes))
        }
        return asString.map { Record(value: value, key: $0) }
    }

    private static func invalidBody(_ error: any Error) -> ResponseError {
        ResponseError(.error(.badRequest, code: "invalid_body", "the body must be JSON for a schema-validated route: \(error)"))
    }

    /// `unionEncoding` applies to Avro schemas only (`payload_encoding`).
    private func serialize(
        _ document: JSONValue, raw: [UInt8], schema: PreparedSchema, unionEncoding: AvroEncoder.UnionEncoding, role: String
    ) -> Result<[UInt8], ResponseError> {
        switch schema.validator {
        case .json(let validator):
            let violations = validator.validate(document, limit: Self.maximumViolations)
            guard violations.isEmpty else {
                return .failure(ResponseError(Self.invalid(role: role, subject: schema.subject, version: schema.version, violations: violations)))
            }
            return .success(ConfluentWireFormat.frame(schemaID: schema.id, payload: raw))
        case .avro(let avro):
            // The encoder writes after the wire-format header: the framed record without a copy.
            switch AvroEncoder.encode(document, schema: avro, limit: Self.maximumViolations, unionEncoding: unionEncoding,
                                      prefix: ConfluentWireFormat.header(schemaID: schema.id)) {
            case .success(let framed): return .success(framed)
            case .failure(let mismatch):
                return .failure(ResponseError(Self.invalid(role: role, subject: schema.subject, version: schema.version, violations: mismatch.violations)))
            }
        case .unsupported(let type):
            return .failure(ResponseError(.error(.notImplemented, code: "schema_type_not_supported",
                                                 "subject '\(schema.subject)' holds a \(type.rawValue) schema; kbridge validates Avro and JSON Schema")))
        }
    }

    private func cachedSchema(subject: String, version: SchemaVersion) -> PreparedSchema? {
        guard let registered = client.cachedSchema(subject: subject, version: version),
              let validator = prepared.withLock({ $0[registered.id] }) else { return nil }
        return PreparedSchema(subject: subject, id: registered.id, version: registered.version, validator: validator)
    }

    private func schema(subject: String, version: SchemaVersion) async -> Result<PreparedSchema, ResponseError> {
        let registered: RegisteredSchema
        do {
            registered = try await client.schema(subject: subject, version: version)
        } catch {
            return .failure(ResponseError(Self.response(for: error, subject: subject)))
        }
        if let validator = prepared.withLock({ $0[registered.id] }) {
            return .success(PreparedSchema(subject: subject, id: registered.id, version: registered.version, validator: validator))
        }
        let validator: PreparedSchema.Validator
        switch registered.type {
        case .json:
            switch await compiledValidator(for: registered) {
            case .success(let compiled): validator = .json(compiled)
            case .failure(let error): return .failure(error)
            }
        case .avro:
            switch await parsedAvroSchema(for: registered) {
            case .success(let parsed): validator = .avro(parsed)
            case .failure(let error): return .failure(error)
            }
        case .protobuf:
            validator = .unsupported(.protobuf)
        }
        prepared.withLock { $0[registered.id] = validator }
        return .success(PreparedSchema(subject: subject, id: registered.id, version: registered.version, validator: validator))
    }

    private func parsedAvroSchema(for schema: RegisteredSchema) async -> Result<AvroSchema, ResponseError> {
        do {
            // Referenced schemas define the named types the schema uses.
            let references = try await client.references(of: schema).values
            return .success(try AvroSchema.parse(schema.schema, references: references.map(\.schema)))
        } catch let error as SchemaRegistryError {
            return .failure(ResponseError(Self.response(for: error, subject: schema.subject ?? "id \(schema.id)")))
        } catch {
            return .failure(ResponseError(.error(.badGateway, code: "schema_unusable", "Avro schema \(schema.id) cannot be used: \(error)")))
        }
    }

    private func compiledValidator(for schema: RegisteredSchema) async -> Result<JSONSchemaValidator, ResponseError> {
        do {
            let baseURI = "urn:kbridge:schema:\(schema.id)"
            var remotes: [String: JSONValue] = [:]
            for (name, referenced) in try await client.references(of: schema) {
                remotes[URIReferenceResolver.resolve(name, against: baseURI)] = try JSONParser.parse(referenced.schema)
            }
            return .success(try JSONSchemaValidator(schema: try JSONParser.parse(schema.schema), baseURI: baseURI, remotes: remotes))
        } catch let error as SchemaRegistryError {
            return .failure(ResponseError(Self.response(for: error, subject: schema.subject ?? "id \(schema.id)")))
        } catch {
            return .failure(ResponseError(.error(.badGateway, code: "schema_unusable", "schema \(schema.id) cannot be used: \(error)")))
        }
    }

    static func response(for error: SchemaRegistryError, subject: String) -> IngestResponse {
        let generic = "no schema for subject '\(subject)'"
        if error.code == .unavailable {
            return .error(.serviceUnavailable, code: "schema_registry_unavailable", "\(generic): \(error.message)",
                          generic: "\(generic): the schema registry is unreachable", detail: error.message, headers: [("retry-after", "1")])
        }
        return .error(.badGateway, code: "schema_registry_error", "\(generic): \(error.message)", generic: generic, detail: error.message)
    }

    /// `400 {"message": "payload does not match schema <subject> v<version>", "errors": [{"path", "reason"}]}`.
    static func invalid(role: String, subject: String, version: Int?, violations: [JSONSchemaViolation]) -> IngestResponse {
        var body = ByteBuffer()
        body.writeStaticString("{\"message\":")
        body.writeJSONString("\(role) does not match schema \(subject)\(version.map { " v\($0)" } ?? "")")
        body.writeStaticString(",\"code\":\"schema_validation_failed\",\"errors\":[")
        for (index, violation) in violations.enumerated() {
            if index > 0 { body.writeStaticString(",") }
            body.writeStaticString("{\"path\":")
            body.writeJSONString(violation.path)
            body.writeStaticString(",\"keyword\":")
            body.writeJSONString(violation.keyword)
            body.writeStaticString(",\"reason\":")
            body.writeJSONString(violation.reason)
            body.writeStaticString("}")
        }
        body.writeStaticString("]}")
        return IngestResponse(status: .badRequest, body: body)
    }
}
