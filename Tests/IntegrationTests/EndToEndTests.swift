import AsyncHTTPClient
@testable import Bridge
import Foundation
import Kafka
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

/// HTTP requests in, Kafka messages out, through a real broker and back.
@Suite(.timeLimit(.minutes(3)))
struct EndToEndTests {
    /// Kong's `message`, and where the record landed: the topic, partition and offset the broker acknowledged.
    @Test func syncRouteAnswersAfterTheAckWithKongsMessageAndWhereTheRecordLanded() async throws {
        let topic = uniqueTopic("sync")
        var route = try testRoute(path: "/orders", topic: topic, async: false)
        route.fields.method = true
        route.fields.uri = true
        route.fields.headers = true
        let response = try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            try await request("\(base)/orders?source=web&tag=a&tag=b&dry", body: #"{"id":7,"items":[{"sku":"x","qty":2}]}"#,
                              headers: [("content-type", "application/json"), ("x-trace", "1"), ("x-trace", "2")])
        }
        #expect(response.status == .ok)
        let messages = try await readTopic(topic, minimumCount: 1)
        #expect(messages.count == 1)
        let consumed = try #require(messages.first)
        #expect(response.json["message"] as? String == "message sent")
        #expect(response.json["topic"] as? String == topic)
        #expect(response.json["partition"] as? Int == Int(consumed.partition))
        #expect(response.json["offset"] as? Int == Int(consumed.offset))
        let deliveries = try #require(response.json["deliveries"] as? [[String: Any]], "\(response.body)")
        #expect(deliveries.count == 1 && deliveries.first?["offset"] as? Int == Int(consumed.offset))
        let message = consumed.json
        #expect(message["method"] as? String == "POST")
        #expect(message["uri"] as? String == "/orders?source=web&tag=a&tag=b&dry")
        let arguments = try #require(message["uri_args"] as? [String: Any])
        #expect(arguments["source"] as? String == "web")
        #expect(arguments["tag"] as? [String] == ["a", "b"])
        #expect(arguments["dry"] as? Bool == true)
        let headers = try #require(message["headers"] as? [String: Any])
        #expect(headers["x-trace"] as? [String] == ["1", "2"])
        #expect(headers["content-type"] as? String == "application/json")
        #expect(message["body"] as? String == #"{"id":7,"items":[{"sku":"x","qty":2}]}"#)
        let bodyArguments = try #require(message["body_args"] as? [String: Any])
        #expect(bodyArguments["id"] as? Int == 7)
    }

    @Test func asyncRouteAcceptsABurstAndDeliversEveryMessage() async throws {
        let topic = uniqueTopic("async")
        let count = 300
        let statuses = try await withBridge([try testRoute(path: "/events", topic: topic, async: true)]) { (base: String, _: KafkaBridge) async throws in
            try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                for index in 0..<count {
                    group.addTask { try await request("\(base)/events", body: "event-\(index)", headers: [("content-type", "text/plain")]).status }
                }
                return try await group.reduce(into: [HTTPResponseStatus]()) { $0.append($1) }
            }
        }
        #expect(statuses.allSatisfy { $0 == .ok })
        let messages = try await readTopic(topic, minimumCount: count)
        let bodies = Set(messages.compactMap { $0.json["body"] as? String })
        #expect(messages.count == count)
        #expect(bodies == Set((0..<count).map { "event-\($0)" }))
    }

    @Test func eachRouteProducesToItsOwnTopic() async throws {
        let (topicA, topicB) = (uniqueTopic("a"), uniqueTopic("b"))
        try await withBridge([try testRoute(path: "/a", topic: topicA, async: false), try testRoute(path: "/b", topic: topicB, async: false)]) { (base: String, _: KafkaBridge) async throws in
            #expect(try await request("\(base)/a", body: "to-a", headers: [("content-type", "text/plain")]).status == .ok)
            #expect(try await request("\(base)/b", body: "to-b", headers: [("content-type", "text/plain")]).status == .ok)
            #expect(try await request("\(base)/b", body: "to-b-again", headers: [("content-type", "text/plain")]).status == .ok)
        }
        #expect(try await readTopic(topicA, minimumCount: 1).compactMap { $0.json["body"] as? String } == ["to-a"])
        #expect(Set(try await readTopic(topicB, minimumCount: 2).compactMap { $0.json["body"] as? String }) == ["to-b", "to-b-again"])
    }

    @Test func pathTopicRoute() async throws {
        let topic = uniqueTopic("path")
        try await withBridge([try testRoute(path: "/in/{topic}", topic: nil, async: false)]) { (base: String, _: KafkaBridge) async throws in
            #expect(try await request("\(base)/in/\(topic)", body: "p", headers: [("content-type", "text/plain")]).status == .ok)
            let invalid = try await request("\(base)/in/bad%20topic", body: "p")
            #expect(invalid.status == .badRequest)
            #expect(invalid.json["code"] as? String == "invalid_topic")
        }
        #expect(try await readTopic(topic, minimumCount: 1).count == 1)
    }

    @Test func topicsQueryArgumentFansOutWithinAllowedTopics() async throws {
        let (fallback, first, second, other) = (uniqueTopic("d"), uniqueTopic("x"), uniqueTopic("y"), uniqueTopic("z"))
        var route = try testRoute(path: "/multi", topic: fallback, async: false)
        route.topicsQueryArgument = "topics"
        route.allowedTopics = [first, second]
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            let both = try await request("\(base)/multi?topics=\(first),\(second)", body: "fan-out", headers: [("content-type", "text/plain")])
            #expect(both.status == .ok)
            // One delivery per topic, in the order asked.
            #expect((both.json["deliveries"] as? [[String: Any]])?.compactMap { $0["topic"] as? String } == [first, second], "\(both.body)")
            let forbidden = try await request("\(base)/multi?topics=\(first),\(other)", body: "nope", headers: [("content-type", "text/plain")])
            #expect(forbidden.status == .forbidden)
            #expect(forbidden.json["code"] as? String == "topic_not_allowed")
            #expect((forbidden.json["message"] as? String)?.contains(other) == true)
            let fallbackResponse = try await request("\(base)/multi", body: "default", headers: [("content-type", "text/plain")])
            #expect(fallbackResponse.status == .ok)
            // The default topic is always allowed, even when asked for explicitly.
            #expect(try await request("\(base)/multi?topics=\(fallback)", body: "explicit", headers: [("content-type", "text/plain")]).status == .ok)
        }
        #expect(try await readTopic(first, minimumCount: 1).compactMap { $0.json["body"] as? String } == ["fan-out"])
        #expect(try await readTopic(second, minimumCount: 1).compactMap { $0.json["body"] as? String } == ["fan-out"])
        #expect(Set(try await readTopic(fallback, minimumCount: 2).compactMap { $0.json["body"] as? String }) == ["default", "explicit"])
    }

    @Test func keyComesFromTheQueryArgumentOrThePath() async throws {
        let topic = uniqueTopic("key")
        var byQuery = try testRoute(path: "/q", topic: topic, async: false)
        byQuery.keyQueryArgument = "key"
        let byPath = try testRoute(path: "/users/{key}", topic: topic, async: false)
        try await withBridge([byQuery, byPath]) { (base: String, _: KafkaBridge) async throws in
            for _ in 0..<3 {
                #expect(try await request("\(base)/q?key=user-1", body: "q", headers: [("content-type", "text/plain")]).status == .ok)
            }
            #expect(try await request("\(base)/users/user%202", body: "p", headers: [("content-type", "text/plain")]).status == .ok)
            #expect(try await request("\(base)/q", body: "none", headers: [("content-type", "text/plain")]).status == .ok)
        }
        let messages = try await readTopic(topic, minimumCount: 5)
        #expect(messages.filter { $0.keyString == "user-1" }.count == 3)
        // Same key, same partition.
        #expect(Set(messages.filter { $0.keyString == "user-1" }.map(\.partition)).count == 1)
        #expect(messages.filter { $0.keyString == "user 2" }.count == 1)
        #expect(messages.filter { $0.key == nil }.compactMap { $0.json["body"] as? String } == ["none"])
    }

    @Test func badRequestsGetJSONErrorsAndProduceNothing() async throws {
        let topic = uniqueTopic("bad")
        var route = try testRoute(path: "/strict", topic: topic, async: false)
        route.maxBodySize = 64
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            #expect(try await request("\(base)/strict", body: "first", headers: [("content-type", "text/plain")]).status == .ok)

            let notFound = try await request("\(base)/nowhere", body: "x")
            #expect(notFound.status == .notFound)
            #expect(notFound.json["code"] as? String == "route_not_found")

            let wrongMethod = try await request("\(base)/strict", method: .GET)
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(wrongMethod.headers.first(name: "allow") == "POST")

            let tooLarge = try await request("\(base)/strict", body: String(repeating: "x", count: 65), headers: [("content-type", "text/plain")])
            #expect(tooLarge.status == .payloadTooLarge)
            #expect((tooLarge.json["message"] as? String)?.contains("64 bytes") == true)

            let badJSON = try await request("\(base)/strict", body: #"{"a":"#, headers: [("content-type", "application/json")])
            #expect(badJSON.status == .badRequest)
            #expect(badJSON.json["code"] as? String == "invalid_body")
            #expect((badJSON.json["message"] as? String)?.contains("invalid JSON at byte 5") == true)

            let badForm = try await request("\(base)/strict", body: "a=%FF", headers: [("content-type", "application/x-www-form-urlencoded")])
            #expect(badForm.status == .badRequest)
            let badMultipart = try await request("\(base)/strict", body: "--b\r\n", headers: [("content-type", "multipart/form-data; boundary=b")])
            #expect(badMultipart.status == .badRequest)

            #expect(try await request("\(base)/strict", body: "last", headers: [("content-type", "text/plain")]).status == .ok)
        }
        let bodies = try await readTopic(topic, minimumCount: 2).compactMap { $0.json["body"] as? String }
        #expect(Set(bodies) == ["first", "last"])
        #expect(bodies.count == 2)
    }

    @Test func multipartFileUploadArrivesWhole() async throws {
        let topic = uniqueTopic("upload")
        try await withBridge([try testRoute(path: "/upload", topic: topic, async: false)]) { (base: String, _: KafkaBridge) async throws in
            let body = "--B\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
                + "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\nx,y\n1,2\r\n--B--\r\n"
            let response = try await request("\(base)/upload", body: body, headers: [("content-type", "multipart/form-data; boundary=B")])
            #expect(response.status == .ok)
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first).json
        let arguments = try #require(message["body_args"] as? [String: Any])
        #expect(arguments["note"] as? String == "hello")
        let file = try #require(arguments["file"] as? [String: Any])
        #expect(file["filename"] as? String == "a.csv")
        #expect(file["content"] as? String == "x,y\n1,2")
    }

    @Test func unreachableBrokerGives503NotASilentDrop() async throws {
        // Nothing listens on port 1: sync requests fail within `timeout`, then every route fails fast.
        let unreachable = BrokerAddress(host: "127.0.0.1", port: 1)
        var sync = try testRoute(path: "/sync", topic: "nowhere", async: false, broker: unreachable)
        sync.kafka.timeout = 1500
        var async = try testRoute(path: "/async", topic: "nowhere", async: true, broker: unreachable)
        async.kafka.timeout = 1500
        async.kafka.asyncDeliveryTimeout = 1500  // async messages wait this long for the cluster (default 5 min)
        try await withBridge([sync, async]) { (base: String, bridge: KafkaBridge) async throws in
            let clock = ContinuousClock()
            let start = clock.now
            let first = try await request("\(base)/sync", body: "x", headers: [("content-type", "text/plain")])
            #expect(first.status == .serviceUnavailable)
            #expect(first.json["code"] as? String == "kafka_unavailable")
            #expect(first.headers.first(name: "retry-after") == "1")
            // Within `timeout` (1.5 s) in principle; the bound is far from it so that a loaded machine cannot fail
            // this, and a silent drop would hang until the client's 30 s.
            #expect(clock.now - start < .seconds(20))
            // The async route stops accepting once librdkafka reports the cluster down (at the latest after
            // its first connection attempts), so messages are not buffered where they can never drain.
            var asyncStatus = HTTPResponseStatus.ok
            for _ in 0..<100 where asyncStatus == .ok {
                asyncStatus = try await request("\(base)/async", body: "x", headers: [("content-type", "text/plain")]).status
                if asyncStatus == .ok { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(asyncStatus == .serviceUnavailable)
            let health = try await request("\(base)/health", method: .GET)
            #expect(health.status == .ok)   // liveness: kbridge serves; the body says the cluster is down
            #expect(health.json["status"] as? String == "down")
            #expect(health.body.contains("127.0.0.1:1"), "\(health.body)")
            // Two producers on the same brokers (the sync and the async route) keep distinct metric series.
            let metrics = try await request("\(base)/metrics", method: .GET).body
            #expect(metrics.contains("kbridge_kafka_cluster_up{bootstrap_servers=\"127.0.0.1:1\"} 0\n"), "\(metrics)")
            #expect(metrics.contains("kbridge_kafka_cluster_up{bootstrap_servers=\"127.0.0.1:1 #2\"} 0\n"), "\(metrics)")
            // Whatever the async route accepted before that is reported as failed, not dropped silently.
            let accepted = bridge.statistics.enqueued
            let settled = try await eventually(timeout: .seconds(10)) { bridge.statistics.failed == accepted }
            #expect(settled, "enqueued \(accepted), failed \(bridge.statistics.failed)")
        }
    }

    @Test func healthAndMetricsEndpoints() async throws {
        let topic = uniqueTopic("observed")
        var route = try testRoute(path: "/orders", topic: topic, async: false)
        route.name = "orders"
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            #expect(try await request("\(base)/orders", body: "one", headers: [("content-type", "text/plain")]).status == .ok)
            #expect(try await request("\(base)/orders", body: #"{"bad"#, headers: [("content-type", "application/json")]).status == .badRequest)
            #expect(try await request("\(base)/nowhere", body: "x").status == .notFound)
            let health = try await request("\(base)/health", method: .GET)
            #expect(health.status == .ok)
            #expect(health.json["status"] as? String == "up")
            let clusters = try #require(health.json["clusters"] as? [[String: Any]])
            #expect(clusters.first?["delivered"] as? Int == 1)
            let metrics = try await request("\(base)/metrics", method: .GET)
            #expect(metrics.status == .ok)
            #expect(metrics.headers.first(name: "content-type") == "text/plain; version=0.0.4")
            let broker = try TestBroker.bootstrapServers
            #expect(metrics.body.contains("kbridge_http_responses_total{route=\"orders\",status=\"2xx\"} 1\n"), "\(metrics.body)")
            #expect(metrics.body.contains("kbridge_http_responses_total{route=\"orders\",status=\"4xx\"} 1\n"))
            #expect(metrics.body.contains("kbridge_http_responses_total{route=\"(none)\",status=\"4xx\"} 1\n"))
            #expect(metrics.body.contains("kbridge_kafka_messages_delivered_total{bootstrap_servers=\"\(broker)\"} 1\n"))
            #expect(metrics.body.contains("kbridge_kafka_cluster_up{bootstrap_servers=\"\(broker)\"} 1\n"))
            // The histograms (swift-prometheus): request durations and body sizes by route, produce latency by producer.
            let samples = Self.samples(metrics.body)
            #expect(samples["kbridge_http_request_duration_seconds_count{route=\"orders\"}"] == 2, "\(metrics.body)")
            #expect(samples["kbridge_http_request_duration_seconds_bucket{route=\"orders\",le=\"+Inf\"}"] == 2)
            #expect((samples["kbridge_http_request_duration_seconds_sum{route=\"orders\"}"] ?? 0) > 0)
            #expect(samples["kbridge_http_request_body_bytes_count{route=\"orders\"}"] == 2)
            #expect(samples["kbridge_http_request_body_bytes_sum{route=\"orders\"}"] == 8)   // "one" and {"bad
            #expect(samples["kbridge_http_request_body_bytes_bucket{route=\"orders\",le=\"64.0\"}"] == 2)
            #expect(samples["kbridge_http_rejected_total{route=\"orders\",code=\"invalid_body\"}"] == 1)
            #expect(samples["kbridge_http_rejected_total{route=\"(none)\",code=\"route_not_found\"}"] == 1)
            #expect(samples["kbridge_kafka_produce_latency_seconds_count{bootstrap_servers=\"\(broker)\",mode=\"sync\"}"] == 1)
            #expect(metrics.body.contains("# TYPE kbridge_http_request_duration_seconds histogram\n"))
            // Each bucket counts what is at most its bound: the counts never decrease.
            let buckets = metrics.body.split(separator: "\n").filter { $0.hasPrefix("kbridge_http_request_duration_seconds_bucket{route=\"orders\"") }
            let counts = buckets.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            #expect(counts.count == MetricsRegistry.durationBuckets.count + 1 && counts == counts.sorted(), "\(buckets)")
        }
    }

    /// The samples of a Prometheus text exposition, by series (name and labels as written).
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }
}
