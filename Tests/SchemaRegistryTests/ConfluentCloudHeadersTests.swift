import Foundation
import SchemaRegistry
import TestSupport
import Testing

/// Kong 3.16's Confluent Cloud ids: `identity_pool_id` → `Confluent-Identity-Pool-Id`, `logical_cluster_id` →
/// `target-sr-cluster`, on every registry request, seen by the registry.
@Suite(.timeLimit(.minutes(1)))
struct ConfluentCloudHeadersTests {
    @Test func theIdsAreSentAsConfluentCloudHeaders() async throws {
        let registry = try await FakeSchemaRegistry(bearerTokenLifetime: 300)
        registry.register(subject: "s", schema: #"{"type":"object"}"#, schemaType: "JSON")
        let client = try makeClient(registry) {
            $0.authentication = .oauth2(.init(tokenEndpoint: registry.tokenEndpoint, clientID: "kbridge", clientSecret: "secret"))
            $0.identityPoolID = "pool-Ab1"
            $0.logicalClusterID = "lsrc-123"
        }
        _ = try await client.schema(subject: "s", version: .latest)
        let headers = registry.lastRequestHeaders
        #expect(headers.filter { $0.name.lowercased() == "confluent-identity-pool-id" }.map(\.value) == ["pool-Ab1"])
        #expect(headers.filter { $0.name.lowercased() == "target-sr-cluster" }.map(\.value) == ["lsrc-123"])
        #expect(headers.contains { $0.name.lowercased() == "authorization" && $0.value.hasPrefix("Bearer ") })
        try await registry.shutdown()
    }

    @Test func withoutIdsNoConfluentCloudHeaderIsSent() async throws {
        let registry = try await FakeSchemaRegistry()
        registry.register(subject: "s", schema: #"{"type":"object"}"#, schemaType: "JSON")
        let client = try makeClient(registry)
        _ = try await client.schema(subject: "s", version: .latest)
        let names = registry.lastRequestHeaders.map { $0.name.lowercased() }
        #expect(!names.contains("confluent-identity-pool-id"))
        #expect(!names.contains("target-sr-cluster"))
        #expect(names.contains("accept"))
        try await registry.shutdown()
    }
}
