import Bridge
import Foundation
import Kafka
import NIOHTTP1
import SchemaRegistry
import TestSupport
import Testing

/// Routes with `schema_registry`: the body is validated against the registered JSON Schema, produced in the
/// Confluent wire format to the real broker, and read back.
@Suite(.timeLimit(.minutes(2)))
struct SchemaRegistryRouteTests {
    static let orderSchema = #"""
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "required": ["id", "items"],
         "properties": {"id": {"type": "string"},
                        "items": {"type": "array", "items": {"type": "object", "required": ["sku", "qty"],
                                  "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}}}}
        """#

    func route(_ registry: FakeSchemaRegistry, topic: String, configure: (inout SchemaRegistrySettings) -> Void = { _ in }) throws -> RouteConfiguration {
        var route = try testRoute(path: "/orders", topic: topic, async: false)
        var settings = SchemaRegistrySettings(registry: SchemaRegistryConfiguration(url: registry.url))
        configure(&settings)
        route.schemaRegistry = settings
        return route
    }

    @Test func validPayloadIsProducedInTheWireFormatAndInvalidOnesAreRefusedWithEveryPath() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-json")
        let (id, _) = registry.register(subject: "\(topic)-value", schema: Self.orderSchema, schemaType: "JSON")
        let valid = #"{"id":"o-1","items":[{"sku":"a","qty":2}]}"#
        try await withBridge([try route(registry, topic: topic)]) { (base: String, _: KafkaBridge) async throws in
            #expect(try await request("\(base)/orders", body: valid, headers: [("content-type", "application/json")]).status == .ok)
            let invalid = try await request("\(base)/orders", body: #"{"items":[{"sku":"a","qty":2},{"sku":"b","qty":"3"},{"qty":0}]}"#,
                                            headers: [("content-type", "application/json")])
            #expect(invalid.status == .badRequest)
            #expect(invalid.json["message"] as? String == "payload does not match schema \(topic)-value v1")
            #expect(invalid.json["code"] as? String == "schema_validation_failed")
            let errors = try #require(invalid.json["errors"] as? [[String: Any]])
            #expect(errors.map { "\($0["path"]!): \($0["reason"]!)" } == [
                "$: required property 'id' is missing",
                "$.items[1].qty: expected integer, got string (\"3\")",
                "$.items[2]: required property 'sku' is missing",
                "$.items[2].qty: 0 is less than 1",
            ])
            let notJSON = try await request("\(base)/orders", body: "{", headers: [("content-type", "application/json")])
            #expect(notJSON.status == .badRequest && notJSON.json["code"] as? String == "invalid_body")
        }
        let messages = try await readTopic(topic, minimumCount: 1)
        #expect(messages.count == 1)
        let framed = try #require(messages.first).value
        let unframed = try #require(ConfluentWireFormat.unframe(framed))
        #expect(unframed.schemaID == id)
        #expect(String(decoding: unframed.payload, as: UTF8.self) == valid)
        try await registry.shutdown()
    }

    @Test func keySchemaValidatesAndSerializesTheKey() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-key")
        registry.register(subject: "\(topic)-value", schema: #"{"type":"object"}"#, schemaType: "JSON")
        let (keyID, _) = registry.register(subject: "customer-ids", schema: #"{"type":"string","pattern":"^c-[0-9]+$"}"#, schemaType: "JSON")
        var route = try route(registry, topic: topic) { $0.key = .init(name: "customer-ids", version: .number(1)) }
        route.keyQueryArgument = "customer"
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            #expect(try await request("\(base)/orders?customer=c-42", body: "{}", headers: [("content-type", "application/json")]).status == .ok)
            let badKey = try await request("\(base)/orders?customer=bob", body: "{}", headers: [("content-type", "application/json")])
            #expect(badKey.status == .badRequest)
            #expect(badKey.json["message"] as? String == "key does not match schema customer-ids v1")
            let noKey = try await request("\(base)/orders", body: "{}", headers: [("content-type", "application/json")])
            #expect(noKey.json["code"] as? String == "key_required")
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        let key = try #require(message.key.flatMap { ConfluentWireFormat.unframe($0) })
        #expect(key.schemaID == keyID && String(decoding: key.payload, as: UTF8.self) == #""c-42""#)
        try await registry.shutdown()
    }

    @Test func registryOutagesServeTheCachedSchemaOrAnswer503() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-down")
        registry.register(subject: "\(topic)-value", schema: #"{"type":"object"}"#, schemaType: "JSON")
        let cached = try route(registry, topic: topic) { $0.registry.cacheTTL = .zero }
        var neverFetched = try route(registry, topic: uniqueTopic("sr-never"))
        neverFetched.path = "/other"
        try await withBridge([cached, neverFetched]) { (base: String, _: KafkaBridge) async throws in
            #expect(try await request("\(base)/orders", body: #"{"n":1}"#, headers: [("content-type", "application/json")]).status == .ok)
            registry.setAvailable(false)
            #expect(try await request("\(base)/orders", body: #"{"n":2}"#, headers: [("content-type", "application/json")]).status == .ok)
            let unavailable = try await request("\(base)/other", body: "{}", headers: [("content-type", "application/json")])
            #expect(unavailable.status == .serviceUnavailable)
            #expect(unavailable.json["code"] as? String == "schema_registry_unavailable")
            #expect(unavailable.headers.first(name: "retry-after") == "1")
            let metrics = try await request("\(base)/metrics", method: .GET)
            #expect(metrics.body.contains("kbridge_schema_registry_stale_served_total{url=\"\(registry.url)\"} 1\n"), "\(metrics.body)")
        }
        #expect(try await readTopic(topic, minimumCount: 2).count == 2)
        try await registry.shutdown()
    }

    @Test func unknownSubjectsAndProtobufSubjectsAreReportedNotProduced() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-missing")
        var missingRoute = try route(registry, topic: topic)
        missingRoute.returnErrorMessage = true  // the answer carries the registry's words
        try await withBridge([missingRoute]) { (base: String, _: KafkaBridge) async throws in
            let missing = try await request("\(base)/orders", body: "{}", headers: [("content-type", "application/json")])
            #expect(missing.status == .badGateway)
            #expect((missing.json["message"] as? String)?.contains("Subject '\(topic)-value' not found.") == true)
            registry.register(subject: "\(topic)-value", schema: #"syntax = "proto3"; message M {}"#, schemaType: "PROTOBUF")
            let protobuf = try await request("\(base)/orders", body: "{}", headers: [("content-type", "application/json")])
            #expect(protobuf.status == .notImplemented)
            #expect(protobuf.json["code"] as? String == "schema_type_not_supported")
        }
        try await registry.shutdown()
    }

    static let avroOrder = #"""
        {"type": "record", "name": "Order", "namespace": "shop", "fields": [
          {"name": "id", "type": "string"},
          {"name": "qty", "type": "int"},
          {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
          {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
          {"name": "note", "type": ["null", "string"], "default": null},
          {"name": "customer", "type": "Customer"}]}
        """#
    static let avroCustomer = #"{"type": "record", "name": "Customer", "namespace": "shop", "fields": [{"name": "name", "type": "string"}]}"#

    @Test func avroRecordsWithReferencesAreReadableByFastavro() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-avro")
        registry.register(subject: "customer", schema: Self.avroCustomer)
        let (id, _) = registry.register(subject: "\(topic)-value", schema: Self.avroOrder, references: [("shop.Customer", "customer", 1)])
        let (keyID, _) = registry.register(subject: "\(topic)-key", schema: #""long""#)
        var route = try route(registry, topic: topic) { $0.key = .init() }
        route.keyQueryArgument = "account"
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            let valid = #"{"id": "o-7", "qty": 2, "price": "19.90", "at": "2024-05-01T10:00:00Z", "note": "gift", "customer": {"name": "Ada"}}"#
            let accepted = try await request("\(base)/orders?account=42", body: valid, headers: [("content-type", "application/json")])
            #expect(accepted.status == .ok, "\(accepted.body)")
            let invalid = try await request("\(base)/orders?account=42", body: #"{"id": 7, "qty": 2, "price": "1.999", "at": 0, "customer": {}}"#,
                                            headers: [("content-type", "application/json")])
            #expect(invalid.status == .badRequest)
            #expect(invalid.json["message"] as? String == "payload does not match schema \(topic)-value v1")
            let errors = try #require(invalid.json["errors"] as? [[String: Any]])
            #expect(errors.map { "\($0["path"]!): \($0["reason"]!)" } == [
                "$.id: expected string, got integer (7)",
                "$.price: 1.999 does not fit decimal(9, 2) without rounding",
                "$.customer.name: required field 'name' of shop.Customer is missing (it has no default)",
            ])
            let badKey = try await request("\(base)/orders?account=forty-two", body: valid, headers: [("content-type", "application/json")])
            #expect(badKey.status == .badRequest && badKey.json["message"] as? String == "key does not match schema \(topic)-key v1")
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        let value = try #require(ConfluentWireFormat.unframe(message.value))
        #expect(value.schemaID == id)
        #expect(try await decodeWithFastavro(Array(value.payload), schema: Self.avroOrder, references: [Self.avroCustomer])
            == #"{"at": "2024-05-01T10:00:00+00:00", "customer": {"name": "Ada"}, "id": "o-7", "note": "gift", "price": "19.90", "qty": 2}"#)
        let key = try #require(message.key.flatMap { ConfluentWireFormat.unframe($0) })
        #expect(key.schemaID == keyID && Array(key.payload) == [84])  // zigzag(42) = 84
        try await registry.shutdown()
    }
    static let avroPayment = #"{"type": "record", "name": "Payment", "namespace": "shop", "fields": [{"name": "amount", "type": ["null", "double"]}, {"name": "memo", "type": ["null", "string"], "default": null}]}"#

    /// Kong 3.16's `payload_encoding`, one route per mode: tagged unions (`avro_json`), plain JSON (`simple_json`) and
    /// either (`auto`, the default when the key is absent); what is accepted is produced and read back by fastavro.
    @Test(arguments: [
        (AvroEncoder.UnionEncoding.avroJSON, [#"{"amount": {"double": 1.5}, "memo": {"string": "hi"}}"#], [#"{"amount": 1.5, "memo": {"string": "hi"}}"#],
         #"$.amount: a union value must be tagged in Avro's JSON encoding, e.g. {"double": 1.5}; payload_encoding: simple_json accepts plain JSON"#),
        (.simpleJSON, [#"{"amount": 1.5, "memo": "hi"}"#], [#"{"amount": {"double": 1.5}, "memo": "hi"}"#],
         "$.amount: object matches no branch of the union [null, double]"),
        (.auto, [#"{"amount": {"double": 1.5}, "memo": {"string": "hi"}}"#, #"{"amount": 1.5, "memo": "hi"}"#], [#"{"amount": "1.5"}"#],
         #"$.amount: string ("1.5") matches no branch of the union [null, double]"#),
    ])
    func avroUnionsAreReadAsPayloadEncodingSays(encoding: AvroEncoder.UnionEncoding, accepted: [String], refused: [String], reason: String) async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-union-\(encoding.rawValue)")
        let (id, _) = registry.register(subject: "\(topic)-value", schema: Self.avroPayment)
        let route = try route(registry, topic: topic) { $0.value.payloadEncoding = encoding }
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            for body in accepted {
                let answer = try await request("\(base)/orders", body: body, headers: [("content-type", "application/json")])
                #expect(answer.status == .ok, "\(body): \(answer.body)")
            }
            for body in refused {
                let answer = try await request("\(base)/orders", body: body, headers: [("content-type", "application/json")])
                #expect(answer.status == .badRequest)
                let errors = try #require(answer.json["errors"] as? [[String: Any]])
                #expect(errors.map { "\($0["path"]!): \($0["reason"]!)" } == [reason])
            }
        }
        let messages = try await readTopic(topic, minimumCount: accepted.count)
        #expect(messages.count == accepted.count)
        for message in messages {
            let value = try #require(ConfluentWireFormat.unframe(message.value))
            #expect(value.schemaID == id)
            #expect(try await decodeWithFastavro(Array(value.payload), schema: Self.avroPayment) == #"{"amount": 1.5, "memo": "hi"}"#)
        }
        try await registry.shutdown()
    }
}
