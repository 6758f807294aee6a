import Bridge
import Foundation
import Kafka
import NIOHTTP1
import TestSupport
import Testing

/// Broker failures injected with librdkafka's in-process mock cluster (the real broker cannot be taken down
/// and brought back from a test).
@Suite(.timeLimit(.minutes(2)))
struct FaultInjectionTests {
    @Test func syncRouteAnswers503WhileTheBrokerIsDownAndRecovers() async throws {
        let cluster = try KafkaMockCluster()
        let broker = try #require(BrokerAddress.list(cluster.bootstrapServers).first)
        var route = try testRoute(path: "/orders", topic: "orders", async: false, broker: broker)
        route.kafka.timeout = 2000
        try await withBridge([route]) { (base: String, bridge: KafkaBridge) async throws in
            #expect(try await request("\(base)/orders", body: "before", headers: [("content-type", "text/plain")]).status == .ok)
            cluster.setBrokerDown(1)
            let down = try await request("\(base)/orders", body: "during", headers: [("content-type", "text/plain")])
            #expect(down.status == .serviceUnavailable)
            #expect(down.json["code"] as? String == "kafka_unavailable")
            cluster.setBrokerUp(1)
            var status = HTTPResponseStatus.serviceUnavailable
            for _ in 0..<100 where status != .ok {
                status = try await request("\(base)/orders", body: "after", headers: [("content-type", "text/plain")]).status
                if status != .ok { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(status == .ok)
        }
        let bodies = try await readTopic("orders", bootstrapServers: cluster.bootstrapServers, minimumCount: 2)
            .compactMap { $0.json["body"] as? String }
        #expect(bodies.filter { $0 == "before" }.count == 1)
        #expect(bodies.filter { $0 == "after" }.count == 1)
    }

    /// An async message waits out an outage longer than `timeout` (Kong's socket timeout, which used to be its
    /// delivery deadline too): it is delivered once the broker answers again, not counted as failed.
    @Test func asyncMessagesOutliveAnOutageLongerThanTimeout() async throws {
        let cluster = try KafkaMockCluster()
        let broker = try #require(BrokerAddress.list(cluster.bootstrapServers).first)
        var route = try testRoute(path: "/events", topic: "events", async: true, broker: broker)
        route.kafka.timeout = 1000
        #expect(route.kafka.librdkafkaProperties["message.timeout.ms"] == "300000")
        try await withBridge([route]) { (base: String, bridge: KafkaBridge) async throws in
            #expect(try await request("\(base)/events", body: "before", headers: [("content-type", "text/plain")]).status == .ok)
            #expect(try await eventually { bridge.statistics.delivered == 1 })
            cluster.setRoundTripTime(3000)  // the broker answers nothing for 3 s: three times `timeout`
            #expect(try await request("\(base)/events", body: "during", headers: [("content-type", "text/plain")]).status == .ok)
            try await Task.sleep(for: .seconds(3))
            cluster.setRoundTripTime(0)
            #expect(try await eventually(timeout: .seconds(30)) { bridge.statistics.delivered == 2 })
            #expect(bridge.statistics.failed == 0)
        }
        let bodies = try await readTopic("events", bootstrapServers: cluster.bootstrapServers, minimumCount: 2)
            .compactMap { $0.json["body"] as? String }
        #expect(bodies.contains("during"))
    }

    @Test func asyncRouteAnswers503WhenTheBufferIsFull() async throws {
        let cluster = try KafkaMockCluster()
        let broker = try #require(BrokerAddress.list(cluster.bootstrapServers).first)
        var route = try testRoute(path: "/events", topic: "events", async: true, broker: broker)
        route.kafka.asyncBufferedMessages = 5
        // Messages stay buffered for the whole test, so the buffer fills: a linger far longer than the requests take,
        // even on a loaded machine (5 s once let a batch go out mid-test). Stopping the bridge flushes at once.
        route.kafka.asyncFlushTimeout = 120_000
        route.kafka.timeout = 20000
        let accepted = try await withBridge([route]) { (base: String, _: KafkaBridge) async throws -> Int in
            var statuses: [HTTPResponseStatus] = []
            var full: TestResponse?
            for index in 0..<20 {
                let response = try await request("\(base)/events", body: "e\(index)", headers: [("content-type", "text/plain")])
                statuses.append(response.status)
                if response.status == .serviceUnavailable { full = response; break }
            }
            #expect(statuses == Array(repeating: .ok, count: 5) + [.serviceUnavailable])
            #expect(full?.json["code"] as? String == "kafka_queue_full")
            #expect(full?.headers.first(name: "retry-after") == "1")
            return statuses.filter { $0 == .ok }.count
        }
        // Everything that was answered 200 was delivered (shutting the bridge down flushed the buffer).
        #expect(try await readTopic("events", bootstrapServers: cluster.bootstrapServers, minimumCount: accepted).count == accepted)
    }
}
