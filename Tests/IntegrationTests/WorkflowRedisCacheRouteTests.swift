import Bridge
import Foundation
import Kafka
import NIOHTTP1
import TestSupport
import Testing

/// The `cache` node with `strategy: redis` end to end: two kbridge instances (two bridges, each with its own
/// workflow services and Redis pool) share a cached callout result through the real redis-server, and every message
/// is read back from the broker.
@Suite(.timeLimit(.minutes(3)))
struct WorkflowRedisCacheRouteTests {
    var redisPort: Int {
        get throws {
            guard let text = ProcessInfo.processInfo.environment["KBRIDGE_TEST_REDIS_PORT"], let port = Int(text) else {
                throw TestSetupError("KBRIDGE_TEST_REDIS_PORT is not set: run the tests with scripts/test, which starts Redis")
            }
            return port
        }
    }

    func withYAMLBridge<T>(_ yaml: String, _ body: (String, KafkaBridge) async throws -> T) async throws -> T {
        let text = yaml.replacingOccurrences(of: "BROKER", with: try TestBroker.bootstrapServers)
        return try await withBridge(configuration: try BridgeConfiguration.parse(yaml: text, file: "test.yaml").configuration, body)
    }

    @Test func twoBridgesShareACachedTokenThroughRedis() async throws {
        let tokens = try await TestHTTPServer { _ in .json(#"{"access_token":"tok-shared"}"#) }
        let topic = uniqueTopic("wf-redis")
        let yaml = """
        routes:
          - path: /cached
            topic: \(topic)
            bootstrap_servers: BROKER
            forward_headers: true
            timeout: 60000
            workflow:
              resources:
                cache:
                  strategy: redis
                  # Timeouts far above a loaded CI machine's (a 2 s read once ran out there).
                  redis: {host: 127.0.0.1, port: \(try redisPort), key_prefix: "kbridge-test-\(UUID().uuidString)",
                          connect_timeout: 30000, send_timeout: 30000, read_timeout: 30000}
              nodes:
                - {name: KEY, type: static, values: {key: upstream-token}}
                - {name: CACHED, type: cache, inputs: {key: KEY.key}}
                - {name: CHECK, type: branch, input: CACHED.hit, else: [FETCH, STORE]}
                - {name: FETCH, type: call, url: "\(tokens.url)/token"}
                - {name: STORE, type: cache, inputs: {key: KEY.key, data: FETCH.body}, ttl: 300}
                - name: HEADER
                  type: jq
                  inputs: {cached: CACHED.data, fetched: FETCH.body, hit: CACHED.hit}
                  jq: '{Authorization: ("Bearer " + (.cached // .fetched).access_token), "X-Cache-Hit": (.hit | tostring)}'
                  output: service_request.headers
        """
        try await withYAMLBridge(yaml) { first, _ in
            try await withYAMLBridge(yaml) { second, _ in
                let answer = try await request("\(first)/cached", body: "event-0", headers: [("content-type", "text/plain")])
                #expect(answer.status == .ok, "\(answer.body)")
                for index in 1..<4 {
                    let answer = try await request("\(second)/cached", body: "event-\(index)", headers: [("content-type", "text/plain")])
                    #expect(answer.status == .ok, "\(answer.body)")
                }
            }
        }
        // The second bridge never called the token service: it read what the first stored in Redis.
        #expect(tokens.requests.count == 1)
        let messages = try await readTopic(topic, minimumCount: 4)
        #expect(messages.count == 4)
        #expect(messages.allSatisfy { ($0.json["headers"] as? [String: Any])?["authorization"] as? String == "Bearer tok-shared" })
        let hits = messages.sorted { ($0.json["body"] as? String ?? "") < ($1.json["body"] as? String ?? "") }
            .map { ($0.json["headers"] as? [String: Any])?["x-cache-hit"] as? String }
        #expect(hits == ["false", "true", "true", "true"])
    }

    @Test func redisConfigurationErrorsNameFileLineColumnAndKey() throws {
        let yaml = """
        routes:
          - path: /x
            topic: t
            bootstrap_servers: 127.0.0.1:9092
            workflow:
              resources:
                cache:
                  strategy: redis
                  redis:
                    host: redis.internal
                    sentinel_master: mymaster
                    keepalive_pool_size: 0
              nodes:
                - {name: C, type: cache, inputs: {key: request.path}}
        """
        do {
            _ = try BridgeConfiguration.parse(yaml: yaml, file: "kbridge.yaml")
            Issue.record("expected a configuration error")
        } catch {
            let text = "\(error)"
            #expect(text.contains("kbridge.yaml:11:"), "\(text)")
            #expect(text.contains("routes[0].workflow.resources.cache.redis.sentinel_master: kbridge's redis cache talks to one server"), "\(text)")
            #expect(text.contains("kbridge.yaml:12:"), "\(text)")
            #expect(text.contains("routes[0].workflow.resources.cache.redis.keepalive_pool_size: 0 is out of range"), "\(text)")
        }
    }

    @Test func redisDownFailsTheNodeAsKongDoesOrIsBypassed() async throws {
        for bypass in [false, true] {
            let topic = uniqueTopic("wf-redis-down")
            let yaml = """
            routes:
              - path: /cached
                topic: \(topic)
                bootstrap_servers: BROKER
                workflow:
                  debug: true
                  resources:
                    cache: {strategy: redis, redis: {host: 127.0.0.1, port: 1}}
                  nodes:
                    - {name: CACHED, type: cache, inputs: {key: request.path}, bypass_on_error: \(bypass)}
                    - {name: BODY, type: jq, input: CACHED.miss, jq: '{miss: .}', output: service_request.body}
            """
            try await withYAMLBridge(yaml) { base, bridge in
                let answer = try await request("\(base)/cached", body: "x")
                if bypass {
                    #expect(answer.status == .ok, "\(answer.body)")
                } else {
                    #expect(answer.status == .internalServerError)
                    #expect(answer.json["code"] as? String == "workflow_node_failed")
                    #expect((answer.json["error"] as? String)?.contains("cache: redis 127.0.0.1:1: cannot connect") == true, "\(answer.body)")
                    let node = try #require(answer.json["node"] as? [String: Any])
                    #expect(node["name"] as? String == "CACHED")
                    #expect(bridge.statistics.enqueued == 0)
                }
            }
            if bypass {
                let message = try #require(try await readTopic(topic, minimumCount: 1).first)
                #expect("\(message.json["body"] ?? "")".contains("miss"), "\(message.json)")
            }
        }
    }
}
