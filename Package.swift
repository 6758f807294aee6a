// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "kbridge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kbridge", targets: ["kbridge"]),
        .library(name: "Bridge", targets: ["Bridge"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context.git", from: "1.0.0"),
        // Already resolved through jwt-kit: the ingress client certificate's subject (RFC 4514) and SANs.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.15.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.1.0"),
    ],
    targets: [
        // librdkafka's C API. Only the `Kafka` module imports it.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // Swift wrapper over librdkafka: producer with delivery reports, topic reader, mock cluster.
        .target(
            name: "Kafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                // The delegation-token relay: SCRAM (Crypto), the broker connection (NIO, NIOSSL), Kafka framing (NIOExtras).
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
            ]
        ),
        // libjq 1.6's C API (Debian libjq-dev has no pkg-config file: the module map links "jq"). Only `JQ` imports it.
        .systemLibrary(name: "CJQ", providers: [.apt(["libjq-dev"])]),
        // A safe Swift wrapper over libjq: compiled-once programs, a pool of jq states, bytes in and out.
        .target(
            name: "JQ",
            dependencies: [
                "CJQ",
                "JSON",
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // libxml2 2.9's C API (Debian libxml2-dev; headers in /usr/include/libxml2 via pkg-config). Only `XML` imports it.
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        // XML <-> JSON conversion (Datakit `xml_to_json`, `json_to_xml`) over libxml2: no DTDs, bounded, deterministic.
        .target(name: "XML", dependencies: ["CLibXML2", "JSON"]),
        // JSON values, the one JSON scanner (tree or validation only) and the one UTF-8 check; no dependencies.
        .target(name: "JSON"),
        // Handlebars templates (handlebars.js semantics, built-in helpers only) over JSON values, for the workflow
        // `handlebars` node; knows nothing of workflows, HTTP or Kafka.
        .target(name: "Handlebars", dependencies: ["JSON"]),
        // libxcrypt's crypt_r (Debian libcrypt-dev): bcrypt and yescrypt password hashes. Only `PasswordHash` imports it.
        .systemLibrary(name: "CCrypt", pkgConfig: "libxcrypt", providers: [.apt(["libcrypt-dev"])]),
        // Password hashes (argon2 `$argon2id$`, bcrypt `$2b$`, yescrypt `$y$`): parse, check, verify (blocking: call it off the event loop).
        // libargon2 (Debian libargon2-dev): argon2 password hashes. Only `PasswordHash` imports it.
        .systemLibrary(name: "CArgon2", pkgConfig: "libargon2", providers: [.apt(["libargon2-dev"])]),
        .target(name: "PasswordHash", dependencies: ["CCrypt", "CArgon2"]),
        // Configuration secrets (passwords, tokens) that never print their value; shared by Bridge and SchemaRegistry.
        .target(name: "Secrets"),
        // OAuth2 client-credentials tokens (cached, refreshed before expiry), shared by the registry client and the
        // Kafka OAUTHBEARER login; knows nothing of Kafka or schemas.
        .target(
            name: "OAuth2",
            dependencies: [
                "Secrets",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Confluent Schema Registry: the client (cache, auth, TLS) and the wire format.
        .target(
            name: "SchemaRegistry",
            dependencies: [
                "JSON",
                "Secrets",
                "OAuth2",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Outbound HTTP calls for workflows (Datakit `call`, request-callout): pooled client, TLS, proxies, size cap,
        // destination policy. Knows nothing about workflows, JSON, Kafka or the Bridge.
        .target(
            name: "Callout",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // JSON Web Tokens (Datakit `jwt_decode`, `jwt_sign`, `jwt_verify`) over jwt-kit's keys: decode, sign and verify
        // with the algorithm bound to the key type; knows nothing of workflows or HTTP.
        .target(name: "JWT", dependencies: ["JSON", .product(name: "JWTKit", package: "jwt-kit")]),
        // A small hand-written RESP2 Redis client (the workflow cache's `redis` strategy): pool, timeouts, TLS.
        // Knows nothing about workflows, JSON, Kafka or the Bridge.
        .target(
            name: "Redis",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The workflow pre-stage (Kong Datakit): configuration, graph compilation and the per-request run.
        .target(
            name: "Workflow",
            dependencies: [
                "JSON", "Secrets", "JQ", "Callout", "XML", "Handlebars", "JWT", "Redis",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                // SHA-256 of request-callout cache keys.
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The bridge: configuration, routes, Kong message encoding, the NIO ingest server.
        .target(
            name: "Bridge",
            dependencies: [
                "Kafka",
                "SchemaRegistry",
                "Secrets",
                "OAuth2",
                "JSON",
                "Workflow",
                // Client authentication of routes: JWT bearer tokens, password hashes, SHA-256 of credentials.
                "JWT", "PasswordHash", .product(name: "Crypto", package: "swift-crypto"),
                // JWKS URLs of client_authentication.jwt.keys: parsed and checked as callout URLs are.
                "Callout",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
                // Ingress TLS and mTLS (`server.tls`).
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        .executableTarget(
            name: "kbridge",
            dependencies: [
                "Bridge",
                "Kafka",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Validation + serialization throughput of the schema pipelines (scripts/bench runs it).
        .executableTarget(name: "SchemaBenchmark", dependencies: ["SchemaRegistry"]),
        // Compile time and per-run cost of the JQ module (swift run -c release JQBenchmark).
        .executableTarget(
            name: "JQBenchmark",
            dependencies: ["JQ", .product(name: "NIOPosix", package: "swift-nio")]
        ),
        // The benchmark's baseline: the smallest useful NIO HTTP/1.1 server (fixed 200 response).
        .executableTarget(
            name: "NIOHelloWorld",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // libFuzzer targets (scripts/fuzz builds them with -sanitize=fuzzer,address -DFUZZING); an ordinary build
        // makes executables that replay corpus files through the same code (scripts/fuzz --replay, in CI).
        .target(name: "FuzzSupport", path: "Sources/Fuzz/FuzzSupport"),
        .executableTarget(
            name: "FuzzKongEnvelope", dependencies: ["Bridge", "FuzzSupport", .product(name: "NIOCore", package: "swift-nio"),
                                                     .product(name: "NIOHTTP1", package: "swift-nio")],
            path: "Sources/Fuzz/FuzzKongEnvelope"),
        .executableTarget(name: "FuzzJSONParser", dependencies: ["JSON", "FuzzSupport"], path: "Sources/Fuzz/FuzzJSONParser"),
        .executableTarget(name: "FuzzJSONSchema", dependencies: ["SchemaRegistry", "FuzzSupport"], path: "Sources/Fuzz/FuzzJSONSchema"),
        .executableTarget(name: "FuzzAvro", dependencies: ["SchemaRegistry", "FuzzSupport"], path: "Sources/Fuzz/FuzzAvro"),
        .executableTarget(name: "FuzzConfiguration", dependencies: ["Bridge", "FuzzSupport"], path: "Sources/Fuzz/FuzzConfiguration"),
        .executableTarget(name: "FuzzHandlebars", dependencies: ["Handlebars", "JSON", "FuzzSupport"], path: "Sources/Fuzz/FuzzHandlebars"),
        .executableTarget(name: "FuzzJWT", dependencies: ["JWT", "JSON", "FuzzSupport"], path: "Sources/Fuzz/FuzzJWT"),
        .executableTarget(name: "FuzzCalloutTemplate", dependencies: ["Workflow", "JSON", "FuzzSupport"], path: "Sources/Fuzz/FuzzCalloutTemplate"),
        .executableTarget(name: "FuzzXML", dependencies: ["XML", "JSON", "FuzzSupport"], path: "Sources/Fuzz/FuzzXML"),
        .executableTarget(name: "FuzzRESP", dependencies: ["Redis", "FuzzSupport"], path: "Sources/Fuzz/FuzzRESP"),
        .executableTarget(
            name: "FuzzHTTPPipeline",
            dependencies: [
                "Bridge", "Kafka", "FuzzSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Fuzz/FuzzHTTPPipeline"),
        // Helpers shared by the test targets (reading topics back, polling for a condition).
        .target(
            name: "TestSupport",
            dependencies: [
                "Kafka",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "SchemaRegistryTests",
            dependencies: [
                "SchemaRegistry", "Secrets", "JSON", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The official suite is read from the source tree by the conformance test, not bundled.
            exclude: ["JSON-Schema-Test-Suite"]
        ),
        .testTarget(
            name: "CalloutTests",
            dependencies: [
                "Callout",
                "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(name: "XMLTests", dependencies: ["XML", "JSON", "TestSupport"]),
        .testTarget(
            name: "HandlebarsTests",
            dependencies: ["Handlebars", "JSON"],
            // The handlebars.js spec suite is read from the source tree by the conformance test, not bundled.
            exclude: ["handlebars-spec"]
        ),
        .testTarget(
            name: "JWTTests",
            dependencies: ["JWT", "JSON", "TestSupport", .product(name: "Crypto", package: "swift-crypto")],
            // Test-only keys and the PyJWT oracle script, read from the source tree.
            exclude: ["keys", "oracle"]
        ),
        .testTarget(name: "JQTests", dependencies: ["JQ", "JSON", "TestSupport", .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(
            name: "WorkflowTests",
            dependencies: ["Workflow", "JSON", "Secrets", "TestSupport", "JWT", "Redis"]
        ),
        .testTarget(
            name: "RedisTests",
            dependencies: [
                "Redis",
                "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka", "TestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "BridgeTests",
            dependencies: [
                "Bridge",
                "PasswordHash",
                .product(name: "Crypto", package: "swift-crypto"),
                "Kafka",
                "SchemaRegistry",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Test-only PEM files, read from the source tree.
            exclude: ["TestPKI"]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Bridge",
                "Kafka",
                "SchemaRegistry",
                "TestSupport",
                "JWT",
                .product(name: "Yams", package: "Yams"),
                "PasswordHash",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)

for target in package.targets where [.regular, .test, .executable].contains(target.type) {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("ExistentialAny"),
    ]
}
