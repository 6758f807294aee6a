import AsyncHTTPClient
import Logging
import SchemaRegistry
import TestSupport
import Testing

let orderSchema = #"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#

func makeClient(_ registry: FakeSchemaRegistry, _ configure: (inout SchemaRegistryConfiguration) -> Void = { _ in }) throws -> SchemaRegistryClient {
    var configuration = SchemaRegistryConfiguration(url: registry.url)
    configure(&configuration)
    return try SchemaRegistryClient(configuration: configuration, httpClient: .shared, logger: Logger(label: "test"))
}

/// The client against a registry over real HTTP.
@Suite(.timeLimit(.minutes(1)))
struct SchemaRegistryClientTests {
    @Test func fetchesBySubjectAndVersionAndByIDUnderABasePath() async throws {
        let registry = try await FakeSchemaRegistry(basePath: "/apis/ccompat/v7")
        let first = registry.register(subject: "orders-value", schema: orderSchema)
        let second = registry.register(subject: "orders-value", schema: #"{"type":"object"}"#, schemaType: "JSON")
        let client = try makeClient(registry)

        let latest = try await client.schema(subject: "orders-value", version: .latest)
        #expect(latest.id == second.id && latest.version == 2 && latest.type == .json)
        let v1 = try await client.schema(subject: "orders-value", version: .number(1))
        #expect(v1.id == first.id && v1.type == .avro && v1.schema == orderSchema)  // no schemaType means Avro
        let byID = try await client.schema(id: first.id)
        #expect(byID.schema == orderSchema)
        try await registry.shutdown()
    }

    @Test func missingSubjectsVersionsAndIDsAreNotFoundWithTheRegistrysMessage() async throws {
        let registry = try await FakeSchemaRegistry()
        registry.register(subject: "s", schema: orderSchema)
        let client = try makeClient(registry)
        let subject = await #expect(throws: SchemaRegistryError.self) { try await client.schema(subject: "nope", version: .latest) }
        #expect(subject?.code == .notFound && subject?.registryErrorCode == 40401)
        #expect(subject?.message.contains("Subject 'nope' not found.") == true)
        let version = await #expect(throws: SchemaRegistryError.self) { try await client.schema(subject: "s", version: .number(9)) }
        #expect(version?.registryErrorCode == 40402)
        let id = await #expect(throws: SchemaRegistryError.self) { try await client.schema(id: 99) }
        #expect(id?.registryErrorCode == 40403)
        try await registry.shutdown()
    }

    @Test func cachesLatestForTheTTLAndFixedVersionsForever() async throws {
        let registry = try await FakeSchemaRegistry()
        registry.register(subject: "s", schema: orderSchema)
        let client = try makeClient(registry) { $0.cacheTTL = .milliseconds(300) }
        for _ in 0..<5 { _ = try await client.schema(subject: "s", version: .latest) }
        for _ in 0..<5 { _ = try await client.schema(subject: "s", version: .number(1)) }
        #expect(registry.requests(to: "/subjects/s/versions/latest") == 1)
        #expect(registry.requests(to: "/subjects/s/versions/1") == 1)
        // A new version appears after the TTL.
        registry.register(subject: "s", schema: #"{"type":"string"}"#)
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await client.schema(subject: "s", version: .latest).version == 2)
        #expect(registry.requests(to: "/subjects/s/versions/latest") == 2)
        try await registry.shutdown()
    }

    @Test func concurrentRequestsForOneSchemaFetchItOnce() async throws {
        let registry = try await FakeSchemaRegistry(delay: .milliseconds(200))
        let (id, _) = registry.register(subject: "s", schema: orderSchema)
        let client = try makeClient(registry)
        try await withThrowingTaskGroup(of: Int32.self) { group in
            for _ in 0..<50 { group.addTask { try await client.schema(subject: "s", version: .latest).id } }
            for try await fetched in group { #expect(fetched == id) }
        }
        #expect(registry.requests(to: "/subjects/s/versions/latest") == 1)
        try await registry.shutdown()
    }

    @Test func servesTheCachedSchemaWhileTheRegistryIsDownAndCountsIt() async throws {
        let registry = try await FakeSchemaRegistry()
        registry.register(subject: "s", schema: orderSchema)
        let client = try makeClient(registry) { $0.cacheTTL = .zero }
        _ = try await client.schema(subject: "s", version: .latest)
        registry.setAvailable(false)
        #expect(try await client.schema(subject: "s", version: .latest).schema == orderSchema)
        #expect(client.staleServed == 1)
        // With nothing cached, the failure is reported as unavailable.
        let error = await #expect(throws: SchemaRegistryError.self) { try await client.schema(subject: "other", version: .latest) }
        #expect(error?.code == .unavailable)
        try await registry.shutdown()
        // Unreachable (nothing listens any more): the same.
        let gone = await #expect(throws: SchemaRegistryError.self) { try await client.schema(subject: "other", version: .latest) }
        #expect(gone?.code == .unavailable)
    }

    @Test func basicAuthentication() async throws {
        let registry = try await FakeSchemaRegistry(basicAuth: "svc:pw")
        registry.register(subject: "s", schema: orderSchema)
        let wrong = try makeClient(registry) { $0.authentication = .basic(username: "svc", password: "nope") }
        let refused = await #expect(throws: SchemaRegistryError.self) { try await wrong.schema(subject: "s", version: .latest) }
        #expect(refused?.code == .unauthorized)
        let right = try makeClient(registry) { $0.authentication = .basic(username: "svc", password: "pw") }
        #expect(try await right.schema(subject: "s", version: .latest).schema == orderSchema)
        try await registry.shutdown()
    }

    @Test func oauth2TokensAreFetchedOnceAndRefreshedBeforeExpiry() async throws {
        // Tokens live 33 s: refreshed 30 s early, so each is reused for about 3 s (1 s flaked on a loaded machine).
        let registry = try await FakeSchemaRegistry(bearerTokenLifetime: 33)
        registry.register(subject: "s", schema: orderSchema)
        let client = try makeClient(registry) {
            $0.cacheTTL = .zero
            $0.authentication = .oauth2(.init(tokenEndpoint: registry.tokenEndpoint, clientID: "kbridge", clientSecret: "secret"))
        }
        for _ in 0..<3 { _ = try await client.schema(subject: "s", version: .latest) }
        #expect(registry.tokensIssued == 1)
        try await Task.sleep(for: .milliseconds(3300))
        _ = try await client.schema(subject: "s", version: .latest)
        #expect(registry.tokensIssued == 2)
        try await registry.shutdown()
    }

    @Test func referencesAreResolvedTransitivelyAndCyclesRefused() async throws {
        let registry = try await FakeSchemaRegistry()
        registry.register(subject: "money", schema: #"{"type":"fixed","name":"Money","size":8}"#)
        registry.register(subject: "line", schema: #"{"type":"record","name":"Line","fields":[{"name":"price","type":"Money"}]}"#,
                          references: [("Money", "money", 1)])
        let (orderID, _) = registry.register(subject: "order", schema: #"{"type":"record","name":"Order","fields":[{"name":"line","type":"Line"}]}"#,
                                             references: [("Line", "line", 1)])
        let client = try makeClient(registry)
        let order = try await client.schema(id: orderID)
        let references = try await client.references(of: order)
        #expect(Set(references.keys) == ["Line", "Money"])
        registry.register(subject: "a", schema: "{}", references: [("B", "b", 1)])
        registry.register(subject: "b", schema: "{}", references: [("A", "a", 1)])
        let a = try await client.schema(subject: "a", version: .number(1))
        let cycle = await #expect(throws: SchemaRegistryError.self) { try await client.references(of: a) }
        #expect(cycle?.message.contains("reference cycle: a -> b -> a") == true)
        try await registry.shutdown()
    }

    @Test func wireFormat() {
        let framed = ConfluentWireFormat.frame(schemaID: 0x0102_0304, payload: [0xAA, 0xBB])
        #expect(framed == [0, 1, 2, 3, 4, 0xAA, 0xBB])
        let parsed = ConfluentWireFormat.unframe(framed)
        #expect(parsed?.schemaID == 0x0102_0304 && parsed.map { Array($0.payload) } == [0xAA, 0xBB])
        #expect(ConfluentWireFormat.unframe([1, 0, 0, 0, 1]) == nil)
    }
}
