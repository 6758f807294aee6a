import Foundation
import SchemaRegistry
import Testing

@testable import Bridge

/// A kafka-upstream configuration as Kong's Admin API exports it: every field of the 3.15 schema and the 3.16
/// additions, unset ones as `null`, the rest at Kong's defaults. It loads unchanged, with Kong's meaning.
@Suite struct KongExportTests {
    static let exportedConfig = """
        allowed_topics: null
        authentication:
          mechanism: null
          oauthbearer:
            client_id: null
            client_secret: null
            extensions: null
            scopes: null
            token_endpoint_tls_verify: true
            token_endpoint_url: null
          password: null
          strategy: null
          tokenauth: null
          user: null
        bootstrap_servers:
        - host: kafka
          port: 9092
        cluster_name: null
        compression_type: none
        error_handling:
          return_error_message: false
        forward_body: true
        forward_headers: false
        forward_method: false
        forward_uri: false
        headers:
          exclude_headers: []
          forward_all_by_default: false
          forward_http_headers_as_record_headers: true
          include_headers: []
          name_mappings: {}
          repeated_headers_behavior: retain_duplicates
        keepalive: 60000
        keepalive_enabled: false
        key_query_arg: null
        message_by_lua_functions: null
        new_kafka_async_producer: false
        producer_async: true
        producer_async_buffering_limits_messages_in_memory: 50000
        producer_async_flush_timeout: 1000
        producer_async_health_failure_threshold: 3
        producer_async_health_gating: false
        producer_async_health_probe_interval: 5000
        producer_async_health_recovery_threshold: 1
        producer_request_acks: 1
        producer_request_limits_bytes_per_request: 1048576
        producer_request_limits_messages_per_request: 200
        producer_request_retries_backoff_timeout: 100
        producer_request_retries_max_attempts: 10
        producer_request_timeout: 2000
        schema_registry:
          confluent:
            authentication:
              basic: null
              identity_pool_id: null
              logical_cluster_id: null
              mode: none
              oauth2: null
              oauth2_client:
                auth_method: client_secret_post
                client_secret_jwt_alg: HS512
                http_proxy: null
                http_proxy_authorization: null
                http_version: 1.1
                https_proxy: null
                https_proxy_authorization: null
                keep_alive: true
                no_proxy: null
                ssl_verify: true
                timeout: 10000
            key_schema: null
            ssl_verify: true
            ttl: null
            url: null
            value_schema: null
        security:
          certificate_id: null
          ssl: false
          ssl_verify: true
        timeout: 10000
        topic: orders
        topics_query_arg: null
        """

    /// The export under a kbridge route (`path` is kbridge's; the rest is the plugin's `config` as exported).
    static func route(_ config: String) -> String {
        "routes:\n  - path: /orders\n" + config.split(separator: "\n", omittingEmptySubsequences: false).map { "    \($0)" }.joined(separator: "\n") + "\n"
    }

    @Test func anAdminAPIExportLoadsWithKongsMeaning() throws {
        let loaded = try parse(Self.route(Self.exportedConfig))
        let route = try #require(loaded.configuration.routes.first)
        var expected = RouteConfiguration(path: "/orders", topic: "orders", kafka: KafkaSettings(bootstrapServers: [BrokerAddress(host: "kafka", port: 9092)]),
                                          name: "POST /orders")
        expected.fields = MessageFields()
        expected.kafka.healthProbeInterval = 5000  // Kong's default, as exported
        #expect(route == expected)
        #expect(route.kafka.authentication == nil)
        #expect(route.kafka.tls == nil)
        #expect(route.schemaRegistry == nil)
        #expect(!route.returnErrorMessage)
        #expect(route.recordHeaders == RecordHeaderSettings())
        // Warnings only, each for a key that has no effect in kbridge; nothing at its default in Kong is called an error.
        let warned = loaded.warnings.map(\.key)
        #expect(!warned.contains { $0.hasPrefix("routes[0].security") || $0.hasPrefix("routes[0].authentication") || $0.hasPrefix("routes[0].headers") })
        #expect(warned.contains("routes[0].schema_registry.confluent.url"))
        #expect(loaded.warnings.allSatisfy { !$0.reason.isEmpty })
    }

    /// As 3.13 exported it (`ssl_verify` defaulted to false then): a warning, not an error.
    @Test func sslVerifyFalseWithoutSSLIsAWarning() throws {
        let loaded = try parse(Self.route(Self.exportedConfig.replacingOccurrences(of: "  ssl: false\n  ssl_verify: true", with: "  ssl: false\n  ssl_verify: false")))
        #expect(loaded.warnings.contains { $0.key == "routes[0].security.ssl_verify" && $0.reason.contains("has no effect without 'ssl: true'") })
    }

    @Test func aSetRegistryInAnExportIsRead() throws {
        let config = Self.exportedConfig
            .replacingOccurrences(of: "    url: null", with: "    url: https://psrc-1.example.confluent.cloud")
            .replacingOccurrences(of: "      identity_pool_id: null", with: "      identity_pool_id: pool-Ab1")
            .replacingOccurrences(of: "      logical_cluster_id: null", with: "      logical_cluster_id: lsrc-123")
            .replacingOccurrences(of: "        keep_alive: true", with: "        keep_alive: false")
            .replacingOccurrences(of: "    key_schema: null", with: "    key_schema:\n      payload_encoding: avro_json\n      schema_version: latest\n      subject_name: null")
            .replacingOccurrences(of: "    value_schema: null", with: "    value_schema:\n      payload_encoding: simple_json\n      schema_version: latest\n      subject_name: orders-v")
        let loaded = try parse(Self.route(config))
        let settings = try #require(loaded.configuration.routes.first?.schemaRegistry)
        // Kong 3.16 exports payload_encoding on every subject: honoured as written.
        #expect(settings.value == SchemaRegistrySettings.Subject(name: "orders-v", version: .latest, payloadEncoding: .simpleJSON))
        #expect(settings.key == SchemaRegistrySettings.Subject(name: nil, version: .latest, payloadEncoding: .avroJSON))
        let registry = settings.registry
        #expect(registry.url == "https://psrc-1.example.confluent.cloud")
        #expect(registry.identityPoolID == "pool-Ab1")
        #expect(registry.logicalClusterID == "lsrc-123")
        #expect(loaded.warnings.contains { $0.key == "routes[0].schema_registry.confluent.authentication.oauth2_client.keep_alive" })
        #expect(!loaded.warnings.contains { $0.key.contains("oauth2_client.") && !$0.key.hasSuffix("keep_alive") })
    }

    @Test func settingsThatMatterAreStillChecked() {
        // Not defaults: still refused where kbridge cannot do what Kong would.
        let withLua = Self.exportedConfig.replacingOccurrences(of: "message_by_lua_functions: null", with: "message_by_lua_functions: ['return 1']")
        #expect(issues(Self.route(withLua)).contains { $0.contains("message_by_lua_functions: kbridge runs no Lua") })
        let withCA = Self.exportedConfig.replacingOccurrences(of: "  certificate_id: null", with: "  certificate_id: 5f1d0c2e-0000-4000-8000-000000000000")
        #expect(issues(Self.route(withCA)).contains { $0.contains("security.certificate_id") })
        let halfSASL = Self.exportedConfig.replacingOccurrences(of: "  user: null", with: "  user: alice")
        #expect(issues(Self.route(halfSASL)).contains { $0.contains("authentication.mechanism: required key missing") })
    }
}
