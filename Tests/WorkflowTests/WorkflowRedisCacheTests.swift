import Foundation
import JSON
import Redis
import Secrets
import TestSupport
import Testing
@testable import Workflow

/// The `cache` node with `strategy: redis`, against the real redis-server scripts/test starts: the `redis` record,
/// hits, misses and expiry, two workflow instances (two kbridge processes) sharing entries, and `bypass_on_error`.
@Suite(.timeLimit(.minutes(3)))
struct WorkflowRedisCacheTests {
    func redisPort() throws -> Int {
        guard let text = ProcessInfo.processInfo.environment["KBRIDGE_TEST_REDIS_PORT"], let port = Int(text) else {
            throw TestSetupError("KBRIDGE_TEST_REDIS_PORT is not set: run the tests with scripts/test (it starts Redis)")
        }
        return port
    }

    struct TestSetupError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    func definition(_ json: String) throws -> WorkflowDefinition {
        var text = json
        let value = try text.withUTF8 { try JSONParser.parse(UnsafeRawBufferPointer($0)) }
        return try WorkflowDefinition.parse(value)
    }

    func problems(_ json: String) throws -> [WorkflowConfigurationError.Issue] {
        do {
            _ = try definition(json)
            return []
        } catch let error as WorkflowConfigurationError {
            return error.issues
        }
    }

    func redisSettings(_ json: String) throws -> RedisCacheSettings? {
        guard case .redis(let settings)? = try definition(json).cacheResource else { return nil }
        return settings
    }

    func request() -> WorkflowRequest {
        WorkflowRequest(method: "POST", path: "/in", query: JSONObject(), headers: [], body: [], contentType: nil, port: 8080,
                        clientIP: "127.0.0.1", clientPort: 5555, routeName: "test", requestID: "req-1", defaultTopic: "default-topic")
    }

    func json(_ bytes: [UInt8]) throws -> JSONValue { try bytes.withUnsafeBytes { try JSONParser.parse($0) } }

    /// A workflow that reads a token from the cache, else fetches and stores it.
    func tokenWorkflow(redis: String, key: String, tokenURL: String, ttl: Int = 300, bypass: Bool? = nil) -> String {
        let bypassField = bypass.map { #", "bypass_on_error": \#($0)"# } ?? ""
        return """
        {"resources": {"cache": {"strategy": "redis", "redis": \(redis)}}, "nodes": [
          {"name": "KEY", "type": "static", "values": {"key": "\(key)"}},
          {"name": "CACHED", "type": "cache", "inputs": {"key": "KEY.key"}\(bypassField)},
          {"name": "CHECK", "type": "branch", "input": "CACHED.hit", "else": ["FETCH", "STORE"]},
          {"name": "FETCH", "type": "call", "url": "\(tokenURL)/token"},
          {"name": "STORE", "type": "cache", "inputs": {"key": "KEY.key", "data": "FETCH.body"}, "ttl": \(ttl)\(bypassField)},
          {"name": "JOIN", "type": "jq", "inputs": {"cached": "CACHED.data", "fetched": "FETCH.body", "hit": "CACHED.hit", "stored": "STORE.stored"},
           "jq": "{token: (.cached // .fetched).access_token, hit: .hit, stored: .stored}"},
          {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}}]}
        """
    }

    func answer(_ flow: Workflow) async throws -> JSONValue {
        guard case .exit(let response) = try await flow.execution(for: request()).runUntilProduce() else {
            throw TestSetupError("expected the exit node to answer")
        }
        return try json(response.body)
    }

    // MARK: - Configuration

    @Test func theRedisRecordIsReadWithKongsDefaults() throws {
        let node = #"[{"name": "C", "type": "cache", "inputs": {"key": "request.path"}}]"#
        let settings = try #require(try redisSettings(#"{"resources": {"cache": {"strategy": "redis", "redis": {"host": "cache.internal"}}}, "nodes": "# + node + "}"))
        let configuration = settings.configuration
        #expect(configuration.host == "cache.internal" && configuration.port == 6379 && configuration.database == 0)
        #expect(configuration.username == nil && configuration.password == nil)
        #expect(!configuration.tls && !configuration.tlsVerify && configuration.serverName == nil)
        #expect(configuration.connectTimeout == .milliseconds(2000) && configuration.sendTimeout == .milliseconds(2000)
                && configuration.readTimeout == .milliseconds(2000))
        #expect(configuration.poolSize == 256)
        #expect(settings.keyPrefix.hasPrefix("kbridge:workflow:") && settings.keyPrefix.hasSuffix(":") && settings.keyPrefix.count == 34)

        // A Kong export: every field written, unset ones null; the deprecated `timeout` fills the three unset timeouts.
        let kong = try #require(try redisSettings("""
        {"resources": {"cache": {"strategy": "redis", "redis": {"host": "10.0.0.5", "port": 6380, "database": 4, "username": "u",
          "password": "p", "ssl": true, "ssl_verify": true, "server_name": "redis.example", "timeout": 750, "connect_timeout": null,
          "send_timeout": 900, "read_timeout": null, "keepalive_pool_size": 16, "keepalive_backlog": null, "sentinel_master": null,
          "sentinel_role": null, "sentinel_nodes": null, "sentinel_username": null, "sentinel_password": null, "cluster_nodes": null,
          "cluster_max_redirections": 5, "connection_is_proxied": false, "cloud_authentication": null, "key_prefix": "shared-tokens"}}},
         "nodes": \(node)}
        """))
        #expect(kong.configuration.port == 6380 && kong.configuration.database == 4 && kong.configuration.username == "u")
        #expect(kong.configuration.password == "p" && kong.configuration.tls && kong.configuration.tlsVerify)
        #expect(kong.configuration.serverName == "redis.example" && kong.configuration.poolSize == 16)
        #expect(kong.configuration.connectTimeout == .milliseconds(750) && kong.configuration.sendTimeout == .milliseconds(900)
                && kong.configuration.readTimeout == .milliseconds(750))
        #expect(kong.keyPrefix == "shared-tokens:")
        // The default prefix belongs to the nodes: the same nodes share it, other nodes do not.
        let other = #"[{"name": "D", "type": "cache", "inputs": {"key": "request.path"}}]"#
        let again = try #require(try redisSettings(#"{"resources": {"cache": {"strategy": "redis", "redis": {"host": "h"}}}, "nodes": "# + node + "}"))
        let different = try #require(try redisSettings(#"{"resources": {"cache": {"strategy": "redis", "redis": {"host": "h"}}}, "nodes": "# + other + "}"))
        #expect(again.keyPrefix == settings.keyPrefix)
        #expect(different.keyPrefix != settings.keyPrefix)
    }

    @Test func redisFieldsThatCannotApplyAreRefusedWithTheirPath() throws {
        func expectProblem(_ redis: String, at path: String, containing text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let found = try problems(#"{"resources": {"cache": {"strategy": "redis", "redis": "# + redis
                                     + #"}}, "nodes": [{"name": "C", "type": "cache", "inputs": {"key": "request.path"}}]}"#)
            #expect(found.contains { $0.path == path && $0.reason.contains(text) }, "expected \(path): …\(text)…, got \(found)",
                    sourceLocation: sourceLocation)
        }
        try expectProblem(#"{"host": "h", "cluster_nodes": [{"ip": "10.0.0.1", "port": 6379}]}"#, at: "resources.cache.redis.cluster_nodes",
                          containing: "talks to one server")
        try expectProblem(#"{"host": "h", "sentinel_master": "m"}"#, at: "resources.cache.redis.sentinel_master", containing: "Sentinel")
        try expectProblem(#"{"host": "h", "cloud_authentication": {"auth_provider": "aws"}}"#, at: "resources.cache.redis.cloud_authentication",
                          containing: "cloud authentication")
        try expectProblem(#"{"port": 6379}"#, at: "resources.cache.redis.host", containing: "required")
        try expectProblem(#"{"host": "h", "port": 70000}"#, at: "resources.cache.redis.port", containing: "out of range")
        try expectProblem(#"{"host": "h", "keepalive_pool_size": 0}"#, at: "resources.cache.redis.keepalive_pool_size", containing: "out of range")
        try expectProblem(#"{"host": "h", "read_timout": 5}"#, at: "resources.cache.redis.read_timout", containing: "did you mean 'read_timeout'")
        try expectProblem(#"{"host": "h", "ssl": "yes"}"#, at: "resources.cache.redis.ssl", containing: "expected true or false")
        try expectProblem(#"{"host": "h", "password": "{vault://aws/redis}"}"#, at: "resources.cache.redis.password", containing: "env vault")
        try expectProblem(#"{"host": "h", "password": "{vault://env/kbridge-no-such-variable-here}"}"#, at: "resources.cache.redis.password",
                          containing: "KBRIDGE_NO_SUCH_VARIABLE_HERE is not set")
    }

    @Test func aPasswordMayBeAKongEnvVaultReference() throws {
        let settings = try #require(try redisSettings("""
        {"resources": {"cache": {"strategy": "redis", "redis": {"host": "h", "password": "{vault://env/path}"}}},
         "nodes": [{"name": "C", "type": "cache", "inputs": {"key": "request.path"}}]}
        """))
        #expect(settings.configuration.password == ProcessInfo.processInfo.environment["PATH"])
    }

    // MARK: - Runs against redis-server

    /// Runs `body` with fresh workflow services, shut down afterwards even when `body` throws (a callout client dropped
    /// without shutdown traps in AsyncHTTPClient's debug builds, which ended the whole test run once).
    func withWorkflowServices<T>(_ body: (WorkflowServices) async throws -> T) async throws -> T {
        let services = WorkflowServices()
        do {
            let result = try await body(services)
            await services.shutdown()
            return result
        } catch {
            await services.shutdown()
            throw error
        }
    }

    @Test func hitMissAndExpiryThroughRedis() async throws {
        let tokens = try await TestHTTPServer { _ in .json(#"{"access_token":"t-1"}"#) }
        try await withWorkflowServices { services in
            let flow = try Workflow(try definition(tokenWorkflow(redis: #"{"host": "127.0.0.1", "port": \#(try redisPort())}"#,
                                                                 key: "token-\(UUID().uuidString)", tokenURL: tokens.url, ttl: 5)),
                                    services: services, defaultTimeout: .seconds(30))
            let first = try await answer(flow)
            #expect(first["hit"] == .bool(false) && first["stored"] == .bool(true) && first["token"] == .string("t-1"))
            let second = try await answer(flow)
            #expect(second["hit"] == .bool(true) && second["token"] == .string("t-1"))
            #expect(tokens.requests.count == 1)
            // ttl 5 (far from the time between two runs, even on a loaded machine): the entry expires and the token is
            // fetched again.
            let start = ContinuousClock.now
            var refetched = false
            while ContinuousClock.now - start < .seconds(30) {
                try await Task.sleep(for: .milliseconds(200))
                if try await answer(flow)["hit"] == .bool(false) { refetched = true; break }
            }
            #expect(refetched)
            #expect(tokens.requests.count == 2)
            await tokens.shutdown()
        }
    }

    @Test func twoWorkflowInstancesShareEntries() async throws {
        let tokens = try await TestHTTPServer { _ in .json(#"{"access_token":"shared"}"#) }
        let text = tokenWorkflow(redis: #"{"host": "127.0.0.1", "port": \#(try redisPort())}"#, key: "token-\(UUID().uuidString)", tokenURL: tokens.url)
        // Two processes' worth: separate services (separate Redis clients and pools), the same configuration.
        try await withWorkflowServices { servicesA in
            try await withWorkflowServices { servicesB in
                let a = try Workflow(try definition(text), services: servicesA, defaultTimeout: .seconds(30))
                let b = try Workflow(try definition(text), services: servicesB, defaultTimeout: .seconds(30))
                let fromA = try await answer(a)
                let fromB = try await answer(b)
                #expect(fromA["hit"] == .bool(false) && fromA["token"] == .string("shared"))
                #expect(fromB["hit"] == .bool(true) && fromB["token"] == .string("shared"))
                #expect(tokens.requests.count == 1)
                // Another workflow (other nodes, so another default prefix) does not see the entry.
                let other = try Workflow(try definition(text.replacingOccurrences(of: #""name": "JOIN""#, with: #""name": "JOIN2""#)
                    .replacingOccurrences(of: #""body": "JOIN""#, with: #""body": "JOIN2""#)), services: servicesB, defaultTimeout: .seconds(30))
                #expect(try await answer(other)["hit"] == .bool(false))
                #expect(tokens.requests.count == 2)
                await tokens.shutdown()
            }
        }
    }

    @Test func bypassOnErrorTurnsARedisFailureIntoAMiss() async throws {
        let tokens = try await TestHTTPServer { _ in .json(#"{"access_token":"t-1"}"#) }
        // Nothing listens on port 1: every connection is refused.
        let down = #"{"host": "127.0.0.1", "port": 1, "connect_timeout": 5000}"#
        try await withWorkflowServices { services in
            let bypassing = try Workflow(try definition(tokenWorkflow(redis: down, key: "k", tokenURL: tokens.url, bypass: true)),
                                         services: services, defaultTimeout: .seconds(30))
            let answered = try await answer(bypassing)
            #expect(answered["hit"] == .bool(false) && answered["stored"] == .bool(false) && answered["token"] == .string("t-1"))

            let strict = try Workflow(try definition(tokenWorkflow(redis: down, key: "k", tokenURL: tokens.url, bypass: false)),
                                      services: services, defaultTimeout: .seconds(30))
            do throws(WorkflowFailure) {
                _ = try await strict.execution(for: request()).runUntilProduce()
                Issue.record("the run went on with Redis down and bypass_on_error false")
            } catch {
                guard case .nodeFailed(let node, let message) = error else { Issue.record("\(error)"); return }
                #expect(node.name == "CACHED")
                #expect(message.contains("cache: redis 127.0.0.1:1: cannot connect"), "\(message)")
            }
            #expect(tokens.requests.count == 1)
            await tokens.shutdown()
        }
    }

    /// A cache GET through the workflow's Redis cache and through the memory cache (printed for the report; nothing is
    /// asserted on the times).
    @Test func cacheGetLatency() async throws {
        try await withWorkflowServices { services in
            let settings = try #require(try redisSettings("""
            {"resources": {"cache": {"strategy": "redis", "redis": {"host": "127.0.0.1", "port": \(try redisPort())}}},
             "nodes": [{"name": "C", "type": "cache", "inputs": {"key": "request.path"}}]}
            """))
            let redis = try services.redisCache(settings, caCertificateFiles: [])
            let memory = MemoryCache(limits: MemoryCache.Limits())
            let value: JSONValue = .object(JSONObject([("access_token", .string("t-1")), ("expires_in", .integer(300))]))
            let key = "latency-\(UUID().uuidString)"
            try await redis.store(value, for: key, seconds: 60)
            memory.store(value, for: key, ttl: .seconds(60))
            func median(_ samples: [Duration]) -> Double {
                let sorted = samples.sorted()
                return Double(sorted[sorted.count / 2].components.attoseconds) / 1e12 + Double(sorted[sorted.count / 2].components.seconds) * 1e6
            }
            var redisSamples: [Duration] = [], memorySamples: [Duration] = []
            for _ in 0..<10_000 {
                let start = ContinuousClock.now
                let found = try await redis.value(for: key)
                redisSamples.append(ContinuousClock.now - start)
                #expect(found == value)
            }
            for _ in 0..<10_000 {
                let start = ContinuousClock.now
                _ = memory.value(for: key)
                memorySamples.append(ContinuousClock.now - start)
            }
            print("workflow cache GET (10,000, loopback): redis median \(median(redisSamples)) µs, memory median \(median(memorySamples)) µs")
        }
    }
}

/// A loopback TCP port that accepts connections (the kernel completes them) and never reads or answers: a Redis
/// that hangs.
final class SilentListener: Sendable {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard descriptor >= 0, bound == 0, listen(descriptor, 64) == 0, named == 0 else {
            throw WorkflowRedisCacheTests.TestSetupError("cannot listen on loopback: errno \(errno)")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}

extension WorkflowRedisCacheTests {
    /// A Redis that never answers does not hold the workflow past its deadline: the node is cancelled at once,
    /// whatever its `read_timeout`.
    @Test func theWorkflowDeadlineIsNotHeldUpByAHangingRedis() async throws {
        let silent = try SilentListener()
        try await withWorkflowServices { services in
            let flow = try Workflow(try definition("""
            {"resources": {"cache": {"strategy": "redis", "redis": {"host": "127.0.0.1", "port": \(silent.port), "read_timeout": 600000}}},
             "nodes": [{"name": "CACHED", "type": "cache", "inputs": {"key": "request.path"}},
                       {"name": "EXIT", "type": "exit", "inputs": {"body": "CACHED.hit"}}]}
            """), services: services, defaultTimeout: .milliseconds(300))
            let started = ContinuousClock.now
            do throws(WorkflowFailure) {
                _ = try await flow.execution(for: request()).runUntilProduce()
                Issue.record("a hanging Redis answered")
            } catch {
                guard case .timedOut(let pending, _) = error else { Issue.record("\(error)"); return }
                #expect(pending.contains("CACHED"))
            }
            // The read timeout is ten minutes: returning at all shows the node was cancelled.
            #expect(ContinuousClock.now - started < .seconds(60))
        }
    }
}
