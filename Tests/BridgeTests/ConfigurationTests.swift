import Foundation
import Logging
import SchemaRegistry
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
            "message.timeout.ms": "300000",
            "enable.idempotence": "false",
            "reconnect.backoff.ms": "100",
            "reconnect.backoff.max.ms": "10000",
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
            "security.protocol": "PLAINTEXT",
        ])
    }

    @Test func deliveryTimeoutsIdempotenceAndStallTimeout() throws {
        let loaded = try parse("""
            defaults:
              bootstrap_servers: [k:1]
              topic: t
            routes:
              - path: /async
              - path: /async-all
                producer_request_acks: -1
                async_delivery_timeout: 60000
                stall_timeout: 0
              - path: /sync-all
                producer_async: false
                producer_request_acks: -1
                idempotent: false
                timeout: 4000
              - path: /not-idempotent
                producer_request_acks: 1
                idempotent: true
                producer_async_flush_timeout: 6000
            """)
        let routes = loaded.configuration.routes
        let properties = routes.map(\.kafka.librdkafkaProperties)
        #expect(properties.map { $0["message.timeout.ms"] } == ["300000", "60000", "4000", "300000"])
        #expect(properties.map { $0["enable.idempotence"] } == ["false", "true", "false", "false"])
        #expect(routes.map(\.kafka.effectiveStallTimeout) == [5000, 0, 5000, 9000])
        #expect(loaded.warnings.map(\.description).contains { $0.contains("routes[3].idempotent: ignored") && $0.contains("producer_request_acks is 1") },
                "\(loaded.warnings)")
    }

    /// `message.max.bytes` fits the largest Kong envelope of a 1 MiB body, capped at librdkafka's maximum.
    @Test func messageMaxBytesIsSizedFromMaxBodySize() throws {
        var route = RouteConfiguration(path: "/in", topic: "t", kafka: KafkaSettings(bootstrapServers: [BrokerAddress(host: "k", port: 1)]))
        #expect(route.largestMessage >= 12 * 1_048_576)
        #expect(route.largestMessage < 14 * 1_048_576)
        var settings = route.kafka
        settings.largestMessage = route.largestMessage
        #expect(Int(settings.librdkafkaProperties["message.max.bytes"] ?? "") == route.largestMessage)
        route.maxBodySize = 1 << 30
        settings.largestMessage = route.largestMessage
        #expect(settings.librdkafkaProperties["message.max.bytes"] == "1000000000")
        settings.additionalProperties = ["message.max.bytes": "2000000"]
        #expect(settings.librdkafkaProperties["message.max.bytes"] == "2000000")
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
        ("path: /a\n    topic: t\n    producer_async_flush_timeout: 400000", "must be less than async_delivery_timeout (300000 ms)"),
        ("path: /a\n    topic: t\n    producer_async_flush_timeout: 2000\n    stall_timeout: 1500", "stall_timeout (1500 ms) must be more than"),
        ("path: /a\n    topic: t\n    kafka_properties: {acks: 1}\n    producer_request_acks: -1", "`acks` must be set to `all`"),
        ("path: /a\n    topic: t\n    message_by_lua_functions: []", "kbridge runs no Lua"),
        ("path: /a\n    topic: t\n    message_by_lua_functions: []", "give the route a 'workflow' whose 'jq' or 'handlebars' node"),
        ("path: /a\n    topic: t\n    headers: {repeated_headers_behavior: last}", "unknown behaviour 'last' (retain_duplicates, concatenate_by_comma, take_first)"),
        ("path: /a\n    topic: t\n    headers: {include_headers: ['x y']}", "routes[0].headers.include_headers[0]: 'x y' is not an HTTP header name"),
        ("path: /a\n    topic: t\n    headers: {name_mappings: {X-A: a, x-a: b}}", "'x-a' is mapped twice"),
        ("path: /a\n    topic: t\n    headers: {forward_all: true}", "routes[0].headers.forward_all: unknown key"),
        ("path: /a\n    topic: t\n    error_handling: {return_error_message: maybe}", "routes[0].error_handling.return_error_message: expected true or false"),
        ("path: /a\n    topic: t\n    producer_async_health_probe_interval: 50", "producer_async_health_probe_interval: 50 is out of range 100...600000"),
        ("path: /a\n    topic: t\n    producer_async_health_recovery_threshold: 0", "producer_async_health_recovery_threshold: 0 is out of range 1...100"),
        ("path: /a\n    topic: t\n    schema_registry: {confluent: {url: 'http://r', authentication: {logical_cluster_id: 'a b'}}}",
         "authentication.logical_cluster_id: expected an id of at most 256 visible ASCII characters"),
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

    @Test func builtInEndpointsCanMoveOrBeTurnedOffButNotBeShadowed() throws {
        let moved = try parse("""
            server: {health_path: /-/health, metrics_path: ""}
            routes: [{path: /a, topic: t, bootstrap_servers: [k:1]}]
            """)
        #expect(moved.configuration.server.healthPath == "/-/health")
        #expect(moved.configuration.server.metricsPath == nil)
        let found = issues("""
            routes: [{path: /health, methods: [GET], topic: t, bootstrap_servers: [k:1]}]
            """)
        #expect(found.contains { $0.contains("GET /health is already served by server.health_path") }, "\(found)")
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
        #expect(loaded.configuration.routes.count == 3)
        #expect(loaded.configuration.routes.last?.workflow?.nodeCount == 4)
    }
}

@Suite struct SecurityConfigurationTests {
    /// Test-only PEM files (see TestPKI/README.md): a CA, a certificate signed by it with its key (plain and
    /// encrypted), and a second key.
    static let pki = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("TestPKI").path

    func route(_ extra: String, environment: [String: String] = [:]) throws -> RouteConfiguration {
        let loaded = try BridgeConfiguration.parse(yaml: "routes:\n  - path: /a\n    topic: t\n    bootstrap_servers: [k:1]\n" + extra,
                                                   file: "\(Self.pki)/kbridge.yaml", environment: environment)
        return try #require(loaded.configuration.routes.first)
    }

    func problems(_ extra: String, environment: [String: String] = [:]) -> [String] {
        do {
            _ = try route(extra, environment: environment)
            return []
        } catch let error as ConfigurationError {
            return error.issues.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    @Test func saslMapsToLibrdkafkaProperties() throws {
        let properties = try route("""
                authentication: {strategy: sasl, mechanism: SCRAM-SHA-512, user: bob, password: {env: BOB_PASSWORD}}
            """, environment: ["BOB_PASSWORD": "pw"]).kafka.librdkafkaProperties
        #expect(properties["security.protocol"] == "SASL_PLAINTEXT")
        #expect(properties["sasl.mechanism"] == "SCRAM-SHA-512")
        #expect(properties["sasl.username"] == "bob")
        #expect(properties["sasl.password"] == "pw")
        #expect(properties["ssl.ca.location"] == nil)
    }

    @Test func tlsAndMTLSMapToLibrdkafkaProperties() throws {
        let tls = try route("    security: {ssl: true}\n").kafka.librdkafkaProperties
        #expect(tls["security.protocol"] == "SSL")
        #expect(tls["ssl.ca.location"] == "probe")
        #expect(tls["enable.ssl.certificate.verification"] == "true")
        #expect(tls["ssl.endpoint.identification.algorithm"] == "https")
        let mtls = try route("""
                authentication: {mechanism: PLAIN, user: u, password: p}
                security: {ssl: true, ssl_verify: false, ca_file: ca.crt, client_certificate_file: client.crt, client_key_file: encrypted.key, client_key_password: hunter2}
            """).kafka.librdkafkaProperties
        #expect(mtls["security.protocol"] == "SASL_SSL")
        #expect(mtls["ssl.ca.location"] == "\(Self.pki)/ca.crt")
        #expect(mtls["ssl.certificate.location"] == "\(Self.pki)/client.crt")
        #expect(mtls["ssl.key.location"] == "\(Self.pki)/encrypted.key")
        #expect(mtls["ssl.key.password"] == "hunter2")
        #expect(mtls["enable.ssl.certificate.verification"] == "false")
        #expect(mtls["ssl.endpoint.identification.algorithm"] == "none")
    }

    @Test(arguments: [
        ("    security: {ssl: true, certificate_id: 8d3c}\n", "security.certificate_id: Kong's certificate entities do not exist in kbridge; give the PEM files with client_certificate_file and client_key_file"),
        ("    security: {ssl: true, ca_file: missing.pem}\n", "missing.pem does not exist"),
        ("    security: {ssl: true, client_certificate_file: client.crt}\n", "client_certificate_file and client_key_file go together"),
        ("    security: {ca_file: ca.crt}\n", "security.ca_file: has no effect without 'ssl: true'"),
        ("    authentication: {mechanism: GSSAPI, user: u, password: p}\n", "unknown mechanism 'GSSAPI'"),
        ("    authentication: {mechanism: OAUTHBEARER, user: u, password: p}\n", "authentication.oauthbearer: required with mechanism OAUTHBEARER"),
        ("    authentication: {strategy: ldap, mechanism: PLAIN, user: u, password: p}\n", "unknown strategy 'ldap'"),
        ("    authentication: {mechanism: PLAIN, user: u}\n", "authentication.password: required key missing"),
        ("    authentication: {mechanism: PLAIN, user: u, password: {env: NOPE}}\n", "environment variable NOPE is not set"),
        ("    authentication: {mechanism: PLAIN, user: u, password: {file: nope.txt}}\n", "nope.txt does not exist"),
        ("    authentication: {mechanism: PLAIN, user: u, password: p, tokenauth: true}\n", "not PLAIN"),
        ("    authentication: {mechanism: PLAIN, user: u, password: \"{vault://env/kafka-nope}\"}\n", "environment variable KAFKA_NOPE is not set"),
        ("    authentication: {mechanism: PLAIN, user: u, password: \"{vault://aws/kafka/password}\"}\n", "only Kong's env vault is supported"),
    ])
    func invalidSecurityIsRefused(extra: String, expected: String) {
        let found = problems(extra)
        #expect(found.contains { $0.contains(expected) }, "\(found)")
    }

    @Test func aKeyThatDoesNotMatchItsCertificateIsFoundAtLoadTime() {
        let found = problems("    security: {ssl: true, ca_file: ca.crt, client_certificate_file: client.crt, client_key_file: other.key}\n")
        #expect(found.contains { $0.contains("routes[0].security") && $0.lowercased().contains("key") }, "\(found)")
        let wrongPassphrase = problems("""
                security: {ssl: true, ca_file: ca.crt, client_certificate_file: client.crt, client_key_file: encrypted.key, client_key_password: wrong}
            """)
        #expect(!wrongPassphrase.isEmpty)
        #expect(!wrongPassphrase.joined().contains("wrong"), "the passphrase must not be echoed: \(wrongPassphrase)")
    }

    @Test func secretsNeverAppearInDescriptions() throws {
        let route = try route("    authentication: {mechanism: PLAIN, user: u, password: {env: PW}}\n", environment: ["PW": "t0p-s3cret"])
        #expect(!"\(route)".contains("t0p-s3cret"))
        #expect(!String(reflecting: route).contains("t0p-s3cret"))
        #expect(route.kafka.authentication?.password.description == "<secret from env PW>")
    }

    /// A Kong export carries its referenceable fields as vault references: Kong's env vault reads NAME with dashes as
    /// underscores, upper-cased.
    @Test func kongEnvVaultReferencesAreSecrets() throws {
        let route = try route("    authentication: {mechanism: PLAIN, user: \"{vault://env/kafka-user}\", password: \"{vault://env/kafka-password}\"}\n",
                              environment: ["KAFKA_USER": "ingest", "KAFKA_PASSWORD": "t0p-s3cret"])
        #expect(route.kafka.authentication?.password.description == "<secret from env KAFKA_PASSWORD>")
        #expect(route.kafka.librdkafkaProperties["sasl.password"] == "t0p-s3cret")
        #expect(route.kafka.librdkafkaProperties["sasl.username"] == "ingest")
    }
}

@Suite struct SchemaRegistryConfigurationTests {
    @Test func kongsSchemaRegistryFieldsAreRead() throws {
        let loaded = try BridgeConfiguration.parse(yaml: """
            routes:
              - path: /a
                topic: orders
                bootstrap_servers: [k:1]
                schema_registry:
                  confluent:
                    url: http://registry:8081/apis/ccompat/v7
                    ttl: 60
                    ssl_verify: false
                    authentication: {mode: basic, basic: {username: svc, password: {env: SR_PASSWORD}}}
                    value_schema: {subject_name: orders-v, schema_version: "3"}
                    key_schema: {schema_version: latest}
            """, file: "test.yaml", environment: ["SR_PASSWORD": "pw"])
        let settings = try #require(loaded.configuration.routes.first?.schemaRegistry)
        #expect(settings.registry.url == "http://registry:8081/apis/ccompat/v7")
        #expect(settings.registry.cacheTTL == .seconds(60))
        #expect(settings.registry.tls.verify == false)
        #expect(settings.registry.authentication == .basic(username: "svc", password: Secret("pw", source: "env SR_PASSWORD")))
        #expect(settings.value.name == "orders-v" && settings.value.version == .number(3))
        #expect(settings.key?.name == nil && settings.key?.version == .latest)
        // payload_encoding absent: kbridge takes both encodings.
        #expect(settings.value.payloadEncoding == .auto && settings.key?.payloadEncoding == .auto)
    }

    /// Kong 3.16's `payload_encoding`, on the value and the key subject: an explicit value is honoured exactly, an
    /// absent or null one is kbridge's `auto`.
    @Test(arguments: [
        ("payload_encoding: avro_json", AvroEncoder.UnionEncoding.avroJSON),
        ("payload_encoding: simple_json", .simpleJSON),
        ("payload_encoding: auto", .auto),
        ("payload_encoding: null", .auto),
        ("schema_version: latest", .auto),
    ])
    func payloadEncodingIsRead(entry: String, expected: AvroEncoder.UnionEncoding) throws {
        let loaded = try parse("""
            routes:
              - path: /a
                topic: orders
                bootstrap_servers: [k:1]
                schema_registry: {confluent: {url: 'http://r', value_schema: {\(entry)}, key_schema: {\(entry)}}}
            """)
        let settings = try #require(loaded.configuration.routes.first?.schemaRegistry)
        #expect(settings.value.payloadEncoding == expected)
        #expect(settings.key?.payloadEncoding == expected)
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
    }

    @Test func forwardSettingsOnASchemaRoutesAreReportedAsIgnored() throws {
        let loaded = try BridgeConfiguration.parse(yaml: """
            routes:
              - {path: /a, topic: t, bootstrap_servers: [k:1], forward_headers: true, schema_registry: {confluent: {url: 'http://r'}}}
            """, file: "test.yaml")
        #expect(loaded.warnings.map(\.description).contains { $0.contains("routes[0].forward_headers: ignored on a schema_registry route") })
    }

    @Test(arguments: [
        ("{confluent: {}}", "schema_registry.confluent.url: required key missing"),
        ("{confluent: {url: ftp://x}}", "is not an http:// or https:// URL"),
        ("{confluent: {url: 'http://r', ttl: 4000}}", "ttl: 4000 is out of range 0...3600"),
        ("{confluent: {url: 'http://r', value_schema: {schema_version: newest}}}", "'newest' is neither 'latest' nor a version number"),
        ("{confluent: {url: 'http://r', authentication: {mode: kerberos}}}", "unknown mode 'kerberos'"),
        ("{confluent: {url: 'http://r', authentication: {mode: oauth2}}}", "required with mode 'oauth2'"),
        ("{confluent: {url: 'http://r', value_schema: {payload_encoding: json}}}",
         "test.yaml:2:132: routes[0].schema_registry.confluent.value_schema.payload_encoding: unknown encoding 'json' (avro_json, simple_json, auto)"),
        ("{confluent: {url: 'http://r', key_schema: {payload_encoding: [avro_json]}}}", "routes[0].schema_registry.confluent.key_schema.payload_encoding: expected a string"),
    ])
    func invalidSchemaRegistrySettingsAreRefused(value: String, expected: String) {
        let found = issues("routes:\n  - {path: /a, topic: t, bootstrap_servers: [k:1], schema_registry: \(value)}\n")
        #expect(found.contains { $0.contains(expected) }, "\(found)")
    }
}
