import JSON
import NIOCore
import NIOHTTP1
import SchemaRegistry
import Synchronization

/// Validates a route's records against their registered schemas and serializes them in the Confluent wire
/// format: the request body is the record value (`value_schema`), the key (`key_query_arg` or `{key}`) is
/// checked against `key_schema` when one is set.
final class SchemaRecordEncoder: Sendable {
    struct Record: Sendable {
        var value: [UInt8]
        var key: [UInt8]?
    }

    let settings: SchemaRegistrySettings
    let client: SchemaRegistryClient
    /// Compiled validators and parsed Avro schemas by schema id (a registered schema never changes).
    private let validators = Mutex<[Int32: JSONSchemaValidator]>([:])
    private let avroSchemas = Mutex<[Int32: AvroSchema]>([:])
    static let maximumViolations = 50

    init(settings: SchemaRegistrySettings, client: SchemaRegistryClient) {
        self.settings = settings
        self.client = client
    }

    /// The record for `topic`, or the answer that refuses the request.
    func encode(body: ByteBuffer, key: String?, topic: String) async -> Result<Record, ResponseError> {
        let document: JSONValue
        do {
            // The bytes are produced as they came (JSON Schema) or from this tree (Avro): a key written twice would be
            // validated as its last value and read as its first by many consumers, so it is refused.
            document = try body.withUnsafeReadableBytes { bytes in try JSONParser.parse(bytes, duplicateKeys: .refuse) }
        } catch {
            return .failure(ResponseError(.error(.badRequest, code: "invalid_body", "the body must be JSON for a schema-validated route: \(error)")))
        }
        let value: [UInt8]
        switch await serialize(document, raw: Array(body.readableBytesView), subject: settings.value.subject(topic: topic, suffix: "value"),
                               version: settings.value.version,
                               unionEncoding: settings.value.payloadEncoding, role: "payload") {
        case .success(let bytes): value = bytes
        case .failure(let error): return .failure(error)
        }
        // Without a key schema the key is produced as it came (its UTF-8 bytes), as on routes without a registry.
        guard let keySchema = settings.key else { return .success(Record(value: value, key: key.map { Array($0.utf8) })) }
        guard let key else {
            return .failure(ResponseError(.error(.badRequest, code: "key_required", "this route's key schema needs a message key")))
        }
        // The key is a string; its serialized JSON form is that string as JSON text. When the key schema does not
        // take a string (an Avro long, say), the key is read as JSON instead ("42" is the number 42).
        var keyJSON = ByteBuffer()
        keyJSON.writeJSONString(key)
        let subject = keySchema.subject(topic: topic, suffix: "key")
        let asString = await serialize(.string(key), raw: Array(keyJSON.readableBytesView), subject: subject, version: keySchema.version,
                                       unionEncoding: keySchema.payloadEncoding, role: "key")
        if case .success(let bytes) = asString { return .success(Record(value: value, key: bytes)) }
        if let parsed = try? JSONParser.parse(key, duplicateKeys: .refuse), parsed != .string(key),
           case .success(let bytes) = await serialize(parsed, raw: Array(key.utf8), subject: subject, version: keySchema.version,
                                                     unionEncoding: keySchema.payloadEncoding, role: "key") {
            return .success(Record(value: value, key: bytes))
        }
        return asString.map { Record(value: value, key: $0) }
    }

    /// `unionEncoding` applies to Avro schemas only (`payload_encoding`).
    private func serialize(_ document: JSONValue, raw: [UInt8], subject: String, version: SchemaVersion,
                           unionEncoding: AvroEncoder.UnionEncoding, role: String) async -> Result<[UInt8], ResponseError> {
        let schema: RegisteredSchema
        do {
            schema = try await client.schema(subject: subject, version: version)
        } catch {
            return .failure(ResponseError(Self.response(for: error, subject: subject)))
        }
        switch schema.type {
        case .json:
            let validator: JSONSchemaValidator
            switch await compiledValidator(for: schema) {
            case .success(let compiled): validator = compiled
            case .failure(let error): return .failure(error)
            }
            let violations = validator.validate(document, limit: Self.maximumViolations)
            guard violations.isEmpty else {
                return .failure(ResponseError(Self.invalid(role: role, subject: subject, version: schema.version, violations: violations)))
            }
            return .success(ConfluentWireFormat.frame(schemaID: schema.id, payload: raw))
        case .avro:
            let avro: AvroSchema
            switch await parsedAvroSchema(for: schema) {
            case .success(let parsed): avro = parsed
            case .failure(let error): return .failure(error)
            }
            // The encoder writes after the wire-format header: the framed record without a copy.
            switch AvroEncoder.encode(document, schema: avro, limit: Self.maximumViolations, unionEncoding: unionEncoding,
                                      prefix: ConfluentWireFormat.header(schemaID: schema.id)) {
            case .success(let framed): return .success(framed)
            case .failure(let mismatch):
                return .failure(ResponseError(Self.invalid(role: role, subject: subject, version: schema.version, violations: mismatch.violations)))
            }
        case .protobuf:
            return .failure(ResponseError(.error(.notImplemented, code: "schema_type_not_supported",
                                                 "subject '\(subject)' holds a PROTOBUF schema; kbridge validates Avro and JSON Schema")))
        }
    }

    private func parsedAvroSchema(for schema: RegisteredSchema) async -> Result<AvroSchema, ResponseError> {
        if let cached = avroSchemas.withLock({ $0[schema.id] }) { return .success(cached) }
        do {
            // Referenced schemas define the named types the schema uses.
            let references = try await client.references(of: schema).values
            let parsed = try AvroSchema.parse(schema.schema, references: references.map(\.schema))
            avroSchemas.withLock { $0[schema.id] = parsed }
            return .success(parsed)
        } catch let error as SchemaRegistryError {
            return .failure(ResponseError(Self.response(for: error, subject: schema.subject ?? "id \(schema.id)")))
        } catch {
            return .failure(ResponseError(.error(.badGateway, code: "schema_unusable", "Avro schema \(schema.id) cannot be used: \(error)")))
        }
    }

    private func compiledValidator(for schema: RegisteredSchema) async -> Result<JSONSchemaValidator, ResponseError> {
        if let cached = validators.withLock({ $0[schema.id] }) { return .success(cached) }
        do {
            let baseURI = "urn:kbridge:schema:\(schema.id)"
            var remotes: [String: JSONValue] = [:]
            for (name, referenced) in try await client.references(of: schema) {
                remotes[URIReferenceResolver.resolve(name, against: baseURI)] = try JSONParser.parse(referenced.schema)
            }
            let validator = try JSONSchemaValidator(schema: try JSONParser.parse(schema.schema), baseURI: baseURI, remotes: remotes)
            validators.withLock { $0[schema.id] = validator }
            return .success(validator)
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
