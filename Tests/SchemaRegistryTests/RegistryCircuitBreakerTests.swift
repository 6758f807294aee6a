import AsyncHTTPClient
import Logging
import Secrets
import TestSupport
import Testing

@testable import SchemaRegistry

/// While the registry is down, requests fail fast (or get the cached schema at once) instead of each waiting for
/// the registry's timeout; after a backoff, one request tries again.
@Suite(.timeLimit(.minutes(1)))
struct RegistryCircuitBreakerTests {
    @Test func afterAFailureTheRegistryIsNotAskedAgainWhileTheCircuitIsOpen() async throws {
        let registry = try await FakeSchemaRegistry()
        registry.register(subject: "s", schema: orderSchema)
        registry.setAvailable(false)
        let client = try makeClient(registry) { $0.retryBackoff = .seconds(60) }
        for _ in 0..<5 {
            let error = await #expect(throws: SchemaRegistryError.self) { try await client.schema(subject: "s", version: .latest) }
            #expect(error?.code == .unavailable)
        }
        #expect(registry.requests(to: "/subjects/s/versions/latest") == 1)
        try await registry.shutdown()
    }

    /// The breaker's timing, on explicit instants (the client passes the clock's).
    @Test func theCircuitOpensForABackoffThatDoublesThenLetsOneProbeThrough() {
        let breaker = RegistryCircuitBreaker(initialBackoff: .milliseconds(500), maximumBackoff: .seconds(2))
        let start = ContinuousClock.now
        #expect(breaker.admit(now: start) == .allowed)
        breaker.recordFailure("refused", now: start)
        #expect(breaker.admit(now: start + .milliseconds(499)) == .refused(lastFailure: "refused", retryIn: .milliseconds(1)))
        // The backoff has passed: one probe, the others still refused while it runs.
        #expect(breaker.admit(now: start + .milliseconds(500)) == .allowed)
        #expect(breaker.admit(now: start + .milliseconds(501)) != .allowed)
        breaker.recordFailure("refused again", now: start + .seconds(1))
        #expect(breaker.admit(now: start + .milliseconds(1999)) != .allowed)  // doubled: 1 s
        #expect(breaker.admit(now: start + .seconds(2)) == .allowed)
        for step in 2...6 { breaker.recordFailure("down", now: start + .seconds(step * 10)) }
        #expect(breaker.admit(now: start + .seconds(60) + .milliseconds(1999)) != .allowed)  // capped at 2 s
        #expect(breaker.admit(now: start + .seconds(62)) == .allowed)
        breaker.recordSuccess()
        #expect(breaker.admit(now: start + .seconds(62)) == .allowed)
        #expect(breaker.admit(now: start + .seconds(62)) == .allowed)  // closed: everyone goes through
    }

    @Test func aRecoveredRegistryIsUsedAgainAfterTheBackoff() async throws {
        let registry = try await FakeSchemaRegistry()
        registry.register(subject: "s", schema: orderSchema)
        registry.setAvailable(false)
        let client = try makeClient(registry) { $0.retryBackoff = .milliseconds(100) }
        _ = try? await client.schema(subject: "s", version: .latest)
        registry.setAvailable(true)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await client.schema(subject: "s", version: .latest).schema == orderSchema)
        try await registry.shutdown()
    }

    @Test func aHangingRegistryCostsOneTimeoutThenStaleSchemasAreServedAtOnce() async throws {
        let registry = try await FakeSchemaRegistry()
        registry.register(subject: "s", schema: orderSchema)
        let client = try makeClient(registry) {
            $0.cacheTTL = .zero
            $0.requestTimeout = .milliseconds(300)
            $0.retryBackoff = .seconds(30)
        }
        _ = try await client.schema(subject: "s", version: .latest)
        try await registry.shutdown()  // refused connections: the client's pool retries them until the timeout
        for _ in 0..<20 { #expect(try await client.schema(subject: "s", version: .latest).schema == orderSchema) }
        #expect(client.staleServed == 20)
        #expect(registry.requests(to: "/subjects/s/versions/latest") == 1)
    }

    @Test func anAnswerLargerThanTheLimitIsRefusedWithoutOpeningTheCircuit() async throws {
        let registry = try await FakeSchemaRegistry()
        registry.register(subject: "huge", schema: #"{"type":"string","doc":""# + String(repeating: "x", count: 17 << 20) + #""}"#)
        registry.register(subject: "s", schema: orderSchema)
        // 17 MiB through a debug-built fake registry: the default 5 s can pass on a loaded machine before the limit is met.
        let client = try makeClient(registry) { $0.requestTimeout = .seconds(60) }
        let error = await #expect(throws: SchemaRegistryError.self) { try await client.schema(subject: "huge", version: .latest) }
        #expect(error?.code == .invalidResponse && error?.message.contains("larger than 16 MiB") == true, "\(String(describing: error))")
        #expect(try await client.schema(subject: "s", version: .latest).schema == orderSchema)
        try await registry.shutdown()
    }

    @Test func credentialsInTheURLBecomeBasicAuthenticationAndLeaveTheURL() {
        let configuration = SchemaRegistryConfiguration(url: "https://svc:p%40ss@registry.example:8081/apis/ccompat/v7")
        #expect(configuration.url == "https://registry.example:8081/apis/ccompat/v7")
        #expect(configuration.authentication == .basic(username: Secret("svc", source: "url"), password: Secret("p@ss", source: "url")))
        #expect(!"\(configuration)".contains("p@ss"))
        #expect(SchemaRegistryConfiguration(url: "http://registry:8081/a@b").url == "http://registry:8081/a@b")
        #expect(SchemaRegistryConfiguration(url: "http://registry:8081").authentication == .none)
    }
}
