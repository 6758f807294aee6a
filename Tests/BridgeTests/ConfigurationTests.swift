import Logging
import Testing

@testable import Bridge

func parse(_ yaml: String) throws -> LoadedConfiguration {
    try BridgeConfiguration.parse(yaml: yaml, file: "test.yaml")
}

func issues(_ yaml: String) -> [String] {
    do {
        _ = try BridgeConfiguration.parse(yaml: yaml, file: "test.yaml")
        return []
    } catch {
        return error.issues.map(\.description)
    }
}

@Suite struct ConfigurationTests {
    @Test func kongDefaultsMapToLibrdkafkaProperties() throws {
        let loaded = try parse("""
            routes:
              - path: /in
                topic: t
                bootstrap_servers: [ "k1:9092", {host: k2, port: 9093} ]
            """)
        let route = try #require(loaded.configuration.routes.first)
        #expect(route.methods == ["POST"])
        #expect(route.maxBodySize == 1_048_576)
        #expect(route.fields == MessageFields())
        #expect(route.kafka.librdkafkaProperties == [
            "bootstrap.servers": "k1:9092,k2:9093",
            "client.id": "kbridge",
            "socket.timeout.ms": "10000",
            "message.timeout.ms": "10000",
            "connections.max.idle.ms": "60000",
            "socket.keepalive.enable": "false",
            "acks": "1",
            "request.timeout.ms": "2000",
            "batch.num.messages": "200",
            "batch.size": "1048576",
            "message.send.max.retries": "10",
            "retry.backoff.ms": "100",
            "linger.ms": "1000",
            "queue.buffering.max.messages": "50000",
            "compression.codec": "none",
            "log_level": "6",
        ])
    }

    @Test func everyKongFieldIsReadAndSyncModeSendsAtOnce() throws {
        let loaded = try parse("""
            routes:
              - path: /in
                topic: t
                bootstrap_servers: "a:1,b:2"
                timeout: 5000
                keepalive: 1000
                keepalive_enabled: true
                producer_request_acks: -1
                producer_request_timeout: 3000
                producer_request_limits_messages_per_request: 10
                producer_request_limits_bytes_per_request: 2048
                producer_request_retries_max_attempts: 3
                producer_request_retries_backoff_timeout: 50
                producer_async: false
                producer_async_flush_timeout: 20
                producer_async_buffering_limits_messages_in_memory: 7
                compression_type: lz4
                kafka_properties: {enable.idempotence: "true"}
            """)
        let properties = try #require(loaded.configuration.routes.first).kafka.librdkafkaProperties
        #expect(properties["bootstrap.servers"] == "a:1,b:2")
        #expect(properties["message.timeout.ms"] == "5000")
        #expect(properties["connections.max.idle.ms"] == "1000")
        #expect(properties["socket.keepalive.enable"] == "true")
        #expect(properties["acks"] == "-1")
        #expect(properties["request.timeout.ms"] == "3000")
        #expect(properties["batch.num.messages"] == "10")
        #expect(properties["batch.size"] == "2048")
        #expect(properties["message.send.max.retries"] == "3")
        #expect(properties["retry.backoff.ms"] == "50")
        #expect(properties["linger.ms"] == "0.5")
        #expect(properties["queue.buffering.max.messages"] == "7")
        #expect(properties["compression.codec"] == "lz4")
        #expect(properties["enable.idempotence"] == "true")
    }

    @Test func defaultsApplyToEveryRouteAndRoutesOverrideThem() throws {
        let loaded = try parse("""
            defaults:
              bootstrap_servers: [k:9092]
              producer_async: false
              forward_headers: true
            routes:
              - path: /a
                topic: a
              - path: /b
                topic: b
                producer_async: true
            """)
        let routes = loaded.configuration.routes
        #expect(routes.map(\.kafka.async) == [false, true])
        #expect(routes.allSatisfy { $0.fields.headers && $0.kafka.bootstrapServers == [BrokerAddress(host: "k", port: 9092)] })
    }

    @Test func errorsNameFileLineKeyAndReasonAndAllAreReported() {
        let found = issues("""
            server:
              port: 99999
            routes:
              - path: /x
                topik: a
                bootstrap_servers: [k:1]
                producer_request_acks: 2
                forward_body: maybe
            """)
        #expect(found == [
            "test.yaml:2:9: server.port: 99999 is out of range 0...65535",
            "test.yaml:4:5: routes[0].topic: required key missing (or put '{topic}' in the path)",
            "test.yaml:5:5: routes[0].topik: unknown key (did you mean 'topic'?)",
            "test.yaml:7:28: routes[0].producer_request_acks: 2 is out of range -1...1",
            "test.yaml:8:19: routes[0].forward_body: expected true or false, got 'maybe'",
        ])
    }

    @Test(arguments: [
        ("path: x\n    topic: t", "routes[0].path: must start with '/'"),
        ("path: /a/{nope}\n    topic: t", "unknown parameter '{nope}'"),
        ("path: /a/x{topic}", "a parameter must be a whole segment"),
        ("path: /a\n    topic: 'bad topic'", "may only contain letters"),
        ("path: /a\n    topic: t\n    forward_body: false", "at least one of forward_method"),
        ("path: /a\n    topic: t\n    methods: [GET, 'P O']", "is not an HTTP method"),
        ("path: /a\n    topic: t\n    compression_type: brotli", "unknown codec 'brotli'"),
        ("path: /a\n    topic: t\n    producer_async_flush_timeout: 20000", "must be less than timeout"),
        ("path: /a\n    topic: t\n    authentication: {strategy: sasl}", "not supported by this version"),
        ("path: /a\n    topic: t\n    kafka_properties: {no.such.property: 1}", "No such configuration property"),
        ("path: /a\n    topic: t\n    allowed_topics: ['ok', 'not ok']", "routes[0].allowed_topics[1]"),
    ])
    func invalidRoutesAreRefused(route: String, expected: String) {
        let found = issues("routes:\n  - bootstrap_servers: [k:1]\n    \(route)\n")
        #expect(found.contains { $0.contains(expected) }, "\(found)")
    }

    @Test func missingBootstrapServersAndEmptyFilesAreRefused() {
        #expect(issues("routes:\n  - path: /a\n    topic: t\n").contains {
            $0.contains("bootstrap_servers: required key missing")
        })
        #expect(issues("") == ["test.yaml: the file is empty; it needs at least 'routes'"])
        #expect(issues("routes: []").first?.contains("non-empty list") == true)
        #expect(issues("routes:\n  - path: /a\n    topic: t\n    bootstrap_servers: ['nohost']\n").contains {
            $0.contains("'nohost' is not host:port")
        })
    }

    @Test func twoRoutesServingTheSameMethodAndPathAreRefused() {
        let found = issues("""
            defaults: {bootstrap_servers: [k:1]}
            routes:
              - {path: '/a/{topic}', methods: [POST, PUT]}
              - {path: '/a/{topic}/', methods: [PUT]}
            """)
        #expect(found.contains { $0.contains("PUT /a/{topic} is already served by routes[0]") })
    }

    @Test func ignoredKongKeysWarnAndClientChosenTopicsWarn() throws {
        let loaded = try parse("""
            routes:
              - path: /e/{topic}
                bootstrap_servers: [k:1]
                cluster_name: main
            """)
        let warnings = loaded.warnings.map(\.description)
        #expect(warnings.contains { $0.contains("routes[0].cluster_name: ignored") })
        #expect(warnings.contains { $0.contains("any topic name is accepted") })
    }

    @Test func serverAndLogLevel() throws {
        let loaded = try parse("""
            server: {host: 127.0.0.1, port: 0, threads: 3, shutdown_timeout: 2500}
            log_level: debug
            routes: [{path: /a, topic: t, bootstrap_servers: [k:1]}]
            """)
        #expect(loaded.configuration.server.host == "127.0.0.1")
        #expect(loaded.configuration.server.port == 0)
        #expect(loaded.configuration.server.threads == 3)
        #expect(loaded.configuration.server.shutdownTimeout == .milliseconds(2500))
        #expect(loaded.configuration.logLevel == .debug)
    }

    @Test func theExampleConfigurationIsValid() throws {
        let file = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        let loaded = try BridgeConfiguration.load(file: "/\(file)/examples/kbridge.yaml")
        #expect(loaded.configuration.routes.count == 2)
    }
}
