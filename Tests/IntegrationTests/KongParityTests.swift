import Bridge
import Foundation
import Kafka
import NIOHTTP1
import SchemaRegistry
import TestSupport
import Testing

/// Kong 3.15/3.16 kafka-upstream keys end to end: record headers read back from the real broker, and
/// `error_handling.return_error_message` on the answers.
@Suite(.timeLimit(.minutes(3)))
struct KongParityTests {
    static func pairs(_ message: KafkaConsumedMessage) -> [String] {
        message.headers.map { "\($0.name)=\($0.value.map { String(decoding: $0, as: UTF8.self) } ?? "nil")" }
    }

    /// What a client sends: a repeated header in three spellings, a header to rename, one to leave out.
    static let clientHeaders = [
        ("content-type", "application/json"), ("X-Tag", "a"), ("X-Request-ID", "r-1"), ("x-tag", "b"), ("Authorization", "Bearer s"),
        ("X-TAG", "c"),
    ]

    @Test(arguments: [
        // Kong's defaults: nothing is included.
        ("{}", [String]()),
        ("{include_headers: [X-Tag, x-request-id]}", ["x-tag=a", "x-request-id=r-1", "x-tag=b", "x-tag=c"]),
        ("{include_headers: [x-tag], repeated_headers_behavior: concatenate_by_comma}", ["x-tag=a,b,c"]),
        ("{include_headers: [x-tag], repeated_headers_behavior: take_first}", ["x-tag=a"]),
        ("{include_headers: [x-tag, x-request-id], repeated_headers_behavior: retain_duplicates, name_mappings: {X-Request-Id: trace-id}}",
         ["x-tag=a", "trace-id=r-1", "x-tag=b", "x-tag=c"]),
        ("{forward_all_by_default: true, exclude_headers: [authorization, X-TAG, user-agent, host, content-length, accept-encoding]}",
         ["content-type=application/json", "x-request-id=r-1"]),
        ("{forward_http_headers_as_record_headers: false, forward_all_by_default: true}", [String]()),
    ])
    func recordHeadersAreReadBackFromTheBroker(headers: String, expected: [String]) async throws {
        let topic = uniqueTopic("rec-headers")
        let yaml = """
        routes:
          - path: /in
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async: false
            forward_headers: true
            headers: \(headers)
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/in", body: #"{"n":1}"#, headers: Self.clientHeaders)
            #expect(answer.status == .ok, "\(answer.body)")
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        #expect(Self.pairs(message) == expected)
        // `forward_headers` (the envelope) is independent of the record headers.
        let envelope = try #require(message.json["headers"] as? [String: Any])
        #expect(envelope["x-tag"] as? [String] == ["a", "b", "c"])
        #expect(envelope["authorization"] as? String == "Bearer s")
    }

    @Test func schemaRoutesCarryRecordHeadersBesideTheEncodedValue() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("rec-headers-sr")
        _ = registry.register(subject: "\(topic)-value", schema: #"{"type":"object","required":["id"]}"#, schemaType: "JSON")
        let yaml = """
        routes:
          - path: /orders
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async: false
            headers: {include_headers: [x-request-id], name_mappings: {x-request-id: trace-id}}
            schema_registry:
              confluent:
                url: \(registry.url)
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/orders", body: #"{"id":"o-1"}"#,
                                           headers: [("content-type", "application/json"), ("X-Request-Id", "r-9")])
            #expect(answer.status == .ok, "\(answer.body)")
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        #expect(Self.pairs(message) == ["trace-id=r-9"])
        let unframed = try #require(ConfluentWireFormat.unframe(message.value))
        #expect(String(decoding: unframed.payload, as: UTF8.self) == #"{"id":"o-1"}"#)
        try await registry.shutdown()
    }

    /// Kong 3.16's Confluent Cloud ids, from the YAML to the registry's request headers.
    @Test func confluentCloudIdsReachTheRegistry() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-cloud")
        _ = registry.register(subject: "\(topic)-value", schema: #"{"type":"object"}"#, schemaType: "JSON")
        let yaml = """
        routes:
          - path: /orders
            topic: \(topic)
            bootstrap_servers: BROKER
            schema_registry:
              confluent:
                url: \(registry.url)
                authentication: {mode: none, identity_pool_id: pool-Ab1, logical_cluster_id: lsrc-123}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/orders", body: "{}", headers: [("content-type", "application/json")])
            #expect(answer.status == .ok, "\(answer.body)")
        }
        let headers = registry.lastRequestHeaders
        #expect(headers.first { $0.name.lowercased() == "confluent-identity-pool-id" }?.value == "pool-Ab1", "\(headers)")
        #expect(headers.first { $0.name.lowercased() == "target-sr-cluster" }?.value == "lsrc-123", "\(headers)")
        try await registry.shutdown()
    }

    @Test func aWorkflowsKafkaHeadersComeAfterTheRoutes() async throws {
        let topic = uniqueTopic("rec-headers-wf")
        let yaml = """
        routes:
          - path: /events
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async: false
            headers: {include_headers: [x-request-id]}
            workflow:
              nodes:
                - name: HEADERS
                  type: jq
                  input: request.body
                  jq: '{"x-region": .region}'
                  output: SET_HEADERS
                - {name: SET_HEADERS, type: property, property: kafka.headers}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/events", body: #"{"region":"EU"}"#,
                                           headers: [("content-type", "application/json"), ("X-Request-ID", "r-3")])
            #expect(answer.status == .ok, "\(answer.body)")
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        #expect(Self.pairs(message) == ["x-request-id=r-3", "x-region=EU"])
    }

    // MARK: error_handling.return_error_message

    /// Kong's default (false): the stable code and a generic message, no broker address or librdkafka text; true: the detail.
    @Test func returnErrorMessageDecidesWhetherTheKafkaDetailReachesTheClient() async throws {
        let yaml = """
        defaults:
          bootstrap_servers: 127.0.0.1:1
          topic: nowhere
          producer_async: false
          timeout: 1500
        routes:
          - path: /quiet
          - path: /kong-default
            error_handling: {return_error_message: false}
          - path: /verbose
            error_handling: {return_error_message: true}
        """
        try await withYAMLBridge(yaml) { base, _ in
            // Until the cluster is known to be down, a sync request waits for its delivery timeout.
            var verbose = try await request("\(base)/verbose", body: "x", headers: [("content-type", "text/plain")])
            for _ in 0..<100 where !verbose.body.contains("127.0.0.1:1") {
                try await Task.sleep(for: .milliseconds(100))
                verbose = try await request("\(base)/verbose", body: "x", headers: [("content-type", "text/plain")])
            }
            #expect(verbose.status == .serviceUnavailable)
            #expect(verbose.json["code"] as? String == "kafka_unavailable")
            #expect((verbose.json["message"] as? String)?.hasPrefix("the Kafka cluster is unreachable: ") == true, "\(verbose.body)")
            #expect(verbose.body.contains("127.0.0.1:1"), "\(verbose.body)")
            for path in ["/quiet", "/kong-default"] {
                let quiet = try await request("\(base)\(path)", body: "x", headers: [("content-type", "text/plain")])
                #expect(quiet.status == .serviceUnavailable)
                #expect(quiet.headers.first(name: "retry-after") == "1")
                #expect(quiet.json["code"] as? String == "kafka_unavailable")
                #expect(quiet.json["message"] as? String == "the Kafka cluster is unreachable", "\(quiet.body)")
                #expect(!quiet.body.contains("127.0.0.1"), "\(quiet.body)")
            }
        }
    }

    @Test func aDeliveryFailureIsGenericUnlessErrorMessagesAreReturned() async throws {
        let cluster = try KafkaMockCluster()
        cluster.setTopicError("denied", .topicAuthorizationFailed)
        for returnErrorMessage in [false, true] {
            let yaml = """
            routes:
              - path: /in
                topic: denied
                bootstrap_servers: \(cluster.bootstrapServers)
                producer_async: false
                timeout: 3000
                error_handling: {return_error_message: \(returnErrorMessage)}
            """
            let text = yaml
            let configuration = try BridgeConfiguration.parse(yaml: text, file: "test.yaml").configuration
            try await withBridge(configuration: configuration) { base, _ in
                let answer = try await request("\(base)/in", body: "x", headers: [("content-type", "text/plain")])
                #expect(answer.status == .forbidden, "\(answer.body)")
                #expect(answer.json["code"] as? String == "kafka_topic_authorization_failed")
                let message = answer.json["message"] as? String ?? ""
                if returnErrorMessage {
                    #expect(message != "the Kafka cluster refused this route's writes to the topic" && !message.isEmpty, "\(answer.body)")
                } else {
                    #expect(message == "the Kafka cluster refused this route's writes to the topic", "\(answer.body)")
                }
            }
        }
    }

    @Test func registryErrorsFollowTheSameRule() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("sr-generic")
        for returnErrorMessage in [false, true] {
            let yaml = """
            routes:
              - path: /orders
                topic: \(topic)
                bootstrap_servers: BROKER
                error_handling: {return_error_message: \(returnErrorMessage)}
                schema_registry: {confluent: {url: \(registry.url)}}
            """
            try await withYAMLBridge(yaml) { base, _ in
                let missing = try await request("\(base)/orders", body: "{}", headers: [("content-type", "application/json")])
                #expect(missing.status == .badGateway)
                #expect(missing.json["code"] as? String == "schema_registry_error")
                let message = missing.json["message"] as? String
                if returnErrorMessage {
                    #expect(message?.contains("Subject '\(topic)-value' not found.") == true, "\(missing.body)")
                } else {
                    #expect(message == "no schema for subject '\(topic)-value'", "\(missing.body)")
                }
            }
        }
        try await registry.shutdown()
    }

    // MARK: producer_async_health_*

    /// `producer_async_health_recovery_threshold: 4` with probes every 500 ms: once the broker is back, the cluster is
    /// reported up no sooner than the fourth successful probe (1.5 s after the first); with 1 it is up at the first.
    /// Measured: 1.34-1.52 s with 4, 0.05 s with 1.
    @Test(arguments: [1, 4])
    func recoveryWaitsForTheConfiguredNumberOfProbes(threshold: Int) async throws {
        let cluster = try KafkaMockCluster()
        let yaml = """
        routes:
          - path: /orders
            topic: orders
            bootstrap_servers: \(cluster.bootstrapServers)
            producer_async: false
            timeout: 2000
            producer_async_health_probe_interval: 500
            producer_async_health_recovery_threshold: \(threshold)
        """
        let configuration = try BridgeConfiguration.parse(yaml: yaml, file: "test.yaml").configuration
        let route = try #require(configuration.routes.first)
        #expect(route.kafka.healthProbeInterval == 500 && route.kafka.healthRecoveryThreshold == threshold)
        try await withBridge(configuration: configuration) { base, _ in
            #expect(try await request("\(base)/orders", body: "before", headers: [("content-type", "text/plain")]).status == .ok)
            cluster.setBrokerDown(1)
            var health = "up"   // /health's "status": the cluster's health (the answer itself is 200: liveness)
            for _ in 0..<200 where health != "down" {
                try await Task.sleep(for: .milliseconds(50))
                health = try await request("\(base)/health", method: .GET).json["status"] as? String ?? "?"
            }
            #expect(health == "down", "the cluster was never reported down")
            let clock = ContinuousClock()
            cluster.setBrokerUp(1)
            let back = clock.now
            for _ in 0..<400 where health != "up" {
                try await Task.sleep(for: .milliseconds(25))
                health = try await request("\(base)/health", method: .GET).json["status"] as? String ?? "?"
            }
            let recoveredAfter = clock.now - back
            #expect(health == "up")
            print("recovery threshold \(threshold), probes every 500 ms: up \(recoveredAfter) after the broker came back")
            // Four successes are three intervals apart, and the first may be a probe sent up to one interval before
            // the broker came back (it waits up to 500 ms for an answer): at least 1 s.
            if threshold == 4 { #expect(recoveredAfter >= .milliseconds(1000), "up after \(recoveredAfter)") }
            #expect(recoveredAfter < .seconds(15), "up after \(recoveredAfter)")
        }
    }
}
