import Bridge
import Foundation
import Kafka
import NIOHTTP1
import SchemaRegistry
import TestSupport
import Testing

/// What a request turns into when it is not the plain one-topic case: fan-out where only some topics take the
/// message, keys on schema routes without a key schema, and registry credentials that must never be echoed.
@Suite(.timeLimit(.minutes(2)))
struct RouteSemanticsTests {
    @Test func syncFanOutWhereOneTopicFailsAnswersPartiallyAcceptedNamingBoth() async throws {
        let cluster = try KafkaMockCluster()
        try cluster.createTopic("fan-good", partitions: 1)
        cluster.setTopicError("fan-bad", .topicAuthorizationFailed)
        let broker = try #require(BrokerAddress.list(cluster.bootstrapServers).first)
        var route = try testRoute(path: "/fan", topic: nil, async: false, broker: broker)
        route.topicsQueryArgument = "topics"
        route.kafka.timeout = 3000
        route.returnErrorMessage = true
        let response = try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            try await request("\(base)/fan?topics=fan-good,fan-bad", body: "once", headers: [("content-type", "text/plain")])
        }
        #expect(response.status != .ok)
        #expect(response.json["code"] as? String == "partially_accepted", "\(response.body)")
        #expect((response.json["message"] as? String)?.hasPrefix("accepted for fan-good but not for fan-bad: ") == true, "\(response.body)")
        let produced = try await readTopic("fan-good", bootstrapServers: cluster.bootstrapServers, minimumCount: 1)
        #expect(produced.compactMap { $0.json["body"] as? String } == ["once"])
    }

    @Test func syncFanOutWhereEveryTopicFailsIsAPlainFailure() async throws {
        let cluster = try KafkaMockCluster()
        cluster.setTopicError("fan-x", .topicAuthorizationFailed)
        cluster.setTopicError("fan-y", .topicAuthorizationFailed)
        let broker = try #require(BrokerAddress.list(cluster.bootstrapServers).first)
        var route = try testRoute(path: "/fan", topic: nil, async: false, broker: broker)
        route.topicsQueryArgument = "topics"
        route.kafka.timeout = 3000
        let response = try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            try await request("\(base)/fan?topics=fan-x,fan-y", body: "none", headers: [("content-type", "text/plain")])
        }
        #expect(response.status != .ok)
        #expect(response.json["code"] as? String != "partially_accepted", "\(response.body)")
    }

    @Test func schemaRouteWithoutAKeySchemaProducesTheKeyAsItCame() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-rawkey")
        registry.register(subject: "\(topic)-value", schema: #"{"type":"object"}"#, schemaType: "JSON")
        var route = try testRoute(path: "/orders", topic: topic, async: false)
        route.keyQueryArgument = "key"
        route.schemaRegistry = SchemaRegistrySettings(registry: SchemaRegistryConfiguration(url: registry.url))
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            let answer = try await request("\(base)/orders?key=customer-7", body: #"{"n":1}"#, headers: [("content-type", "application/json")])
            #expect(answer.status == .ok, "\(answer.body)")
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        #expect(message.keyString == "customer-7")
        try await registry.shutdown()
    }

    /// `{"a":1,"a":"x"}` would be validated as `{"a":"x"}` and read as `{"a":1}` by a first-key-wins consumer.
    @Test func schemaRoutesRefuseDuplicateKeys() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-dupkey")
        registry.register(subject: "\(topic)-value", schema: #"{"type":"object","properties":{"a":{"type":"string"}}}"#, schemaType: "JSON")
        var route = try testRoute(path: "/orders", topic: topic, async: false)
        route.schemaRegistry = SchemaRegistrySettings(registry: SchemaRegistryConfiguration(url: registry.url))
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            let duplicate = try await request("\(base)/orders", body: #"{"a":1,"b":{"c":2},"a":"x"}"#, headers: [("content-type", "application/json")])
            #expect(duplicate.status == .badRequest, "\(duplicate.body)")
            #expect(duplicate.json["code"] as? String == "invalid_body")
            #expect((duplicate.json["message"] as? String)?.contains("duplicate key 'a'") == true, "\(duplicate.body)")
            let nested = try await request("\(base)/orders", body: #"{"b":{"c":2,"c":3}}"#, headers: [("content-type", "application/json")])
            #expect(nested.status == .badRequest, "\(nested.body)")
            let fine = try await request("\(base)/orders", body: #"{"a":"x","b":{"a":1}}"#, headers: [("content-type", "application/json")])
            #expect(fine.status == .ok, "\(fine.body)")
        }
        #expect(try await readTopic(topic, minimumCount: 1).count == 1)
        try await registry.shutdown()
    }

    @Test func registryCredentialsInTheURLAuthenticateAndAreNeverEchoed() async throws {
        let registry = try await FakeSchemaRegistry(basicAuth: "svc:p@ss-word")
        let topic = uniqueTopic("sr-userinfo")
        registry.register(subject: "\(topic)-value", schema: #"{"type":"object"}"#, schemaType: "JSON")
        var route = try testRoute(path: "/orders", topic: topic, async: false)
        let withCredentials = registry.url.replacingOccurrences(of: "http://", with: "http://svc:p%40ss-word@")
        var settings = SchemaRegistrySettings(registry: SchemaRegistryConfiguration(url: withCredentials))
        settings.registry.cacheTTL = .zero
        settings.registry.retryBackoff = .milliseconds(50)
        route.schemaRegistry = settings
        var unused = try testRoute(path: "/other", topic: uniqueTopic("sr-userinfo-other"), async: false)
        unused.schemaRegistry = settings
        try await withBridge([route, unused]) { (base: String, _: KafkaBridge) async throws in
            let accepted = try await request("\(base)/orders", body: #"{"n":1}"#, headers: [("content-type", "application/json")])
            #expect(accepted.status == .ok, "\(accepted.body)")
            try await registry.shutdown()
            let unavailable = try await request("\(base)/other", body: "{}", headers: [("content-type", "application/json")])
            #expect(unavailable.status == .serviceUnavailable)
            let metrics = try await request("\(base)/metrics", method: .GET)
            for text in [unavailable.body, metrics.body] {
                #expect(!text.contains("p%40ss") && !text.contains("p@ss") && !text.contains("svc:"), "\(text)")
            }
            #expect(metrics.body.contains("url=\"\(registry.url)\""), "\(metrics.body)")
        }
    }
}
