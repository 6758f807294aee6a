import Bridge
import Foundation
import Kafka
import NIOHTTP1
import TestSupport
import Testing

/// The README's answers and commands that no other test reaches: each documented code, and the exit codes and
/// output of `kbridge check` and `kbridge consume`.
@Suite(.timeLimit(.minutes(2)))
struct DocumentedAnswersTests {
    @Test func asyncFanOutThatFillsTheBufferHalfwayAnswersPartiallyAccepted() async throws {
        let cluster = try KafkaMockCluster()
        let broker = try #require(BrokerAddress.list(cluster.bootstrapServers).first)
        var route = try testRoute(path: "/fan", topic: nil, async: true, broker: broker)
        route.topicsQueryArgument = "topics"
        route.kafka.asyncBufferedMessages = 1
        route.kafka.asyncFlushTimeout = 5000  // the first message stays buffered, so the second does not fit
        route.returnErrorMessage = true
        let response = try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            try await request("\(base)/fan?topics=fan-a,fan-b", body: "half", headers: [("content-type", "text/plain")])
        }
        #expect(response.status == .serviceUnavailable)
        #expect(response.json["code"] as? String == "partially_accepted", "\(response.body)")
        #expect((response.json["message"] as? String)?.hasPrefix("accepted for fan-a but not for fan-b: ") == true, "\(response.body)")
        let produced = try await readTopic("fan-a", bootstrapServers: cluster.bootstrapServers, minimumCount: 1)
        #expect(produced.compactMap { $0.json["body"] as? String } == ["half"])
    }

    @Test func aQueryThatIsNotUTF8IsInvalidQueryAndARequestWithoutATopicIsNoTopic() async throws {
        let topic = uniqueTopic("answers")
        var keyed = try testRoute(path: "/keyed", topic: topic, async: true)
        keyed.keyQueryArgument = "key"
        var fanOut = try testRoute(path: "/fan", topic: nil, async: true)
        fanOut.topicsQueryArgument = "topics"
        try await withBridge([keyed, fanOut]) { (base: String, _: KafkaBridge) async throws in
            let invalid = try await request("\(base)/keyed?key=%ff%fe", body: "x", headers: [("content-type", "text/plain")])
            #expect(invalid.status == .badRequest && invalid.json["code"] as? String == "invalid_query", "\(invalid.body)")
            let noTopic = try await request("\(base)/fan", body: "x", headers: [("content-type", "text/plain")])
            #expect(noTopic.status == .badRequest && noTopic.json["code"] as? String == "no_topic", "\(noTopic.body)")
            let emptyList = try await request("\(base)/fan?topics=,,", body: "x", headers: [("content-type", "text/plain")])
            #expect(emptyList.status == .badRequest && emptyList.json["code"] as? String == "no_topic", "\(emptyList.body)")
        }
    }

    @Test func checkExitsWith78AndNamesEveryProblemWithItsPlace() async throws {
        let file = try temporaryFile("""
            routes:
              - path: /in
                topic: t
                bootstrap_servers: [k:9092]
                producer_request_acks: 7
                forward_bodyy: true
            """)
        let result = try await runKBridge(["check", file])
        #expect(result.status == 78)
        #expect(result.stderr.contains("\(file):5:"), "\(result.stderr)")
        #expect(result.stderr.contains("routes[0].producer_request_acks"), "\(result.stderr)")
        #expect(result.stderr.contains("forward_bodyy") && result.stderr.contains("forward_body"), "\(result.stderr)")
        let good = try temporaryFile("routes: [{path: /in, topic: t, bootstrap_servers: [\"k:9092\"]}]\n")
        let ok = try await runKBridge(["check", good])
        #expect(ok.status == 0 && ok.stdout.contains("OK (1 route)"), "\(ok.stdout) \(ok.stderr)")
    }

    /// `kbridge import-kong` writes a file that `kbridge check` accepts, and lists what it did not map.
    @Test func importKongWritesAConfigurationThatChecks() async throws {
        let deck = try temporaryFile("""
            _format_version: "3.0"
            services:
              - name: events-service
                url: http://events.internal
                plugins:
                  - {name: kafka-upstream, config: {bootstrap_servers: [{host: 127.0.0.1, port: 9092}], topic: events, authentication: {strategy: null, mechanism: null}}}
                routes:
                  - {name: events, paths: [/events], methods: [POST]}
                  - name: enriched
                    paths: [/enriched]
                    methods: [POST]
                    plugins: [{name: datakit, config: {nodes: [{name: TAG, type: static, values: {source: kong}}]}}]
            plugins:
              - {name: rate-limiting, config: {minute: 100}}
            """)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-imported-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let imported = try await runKBridge(["import-kong", deck, "--output", output])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stderr.contains("not mapped: plugin rate-limiting: kbridge has no equivalent"), "\(imported.stderr)")
        #expect(imported.stderr.contains("wrote 2 routes to \(output)"), "\(imported.stderr)")
        let checked = try await runKBridge(["check", output])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
        #expect(checked.stdout.contains("POST /enriched -> events (async, workflow of 1 node)"), "\(checked.stdout)")
        let nothing = try await runKBridge(["import-kong", try temporaryFile("services: []")])
        #expect(nothing.status == 65 && nothing.stderr.contains("no route has a kafka-upstream plugin"), "\(nothing.stderr)")
    }

    @Test func consumePrintsTheTopicWithKeysAndCounts() async throws {
        let topic = uniqueTopic("consume")
        var route = try testRoute(path: "/c", topic: topic, async: false)
        route.keyQueryArgument = "key"
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            for index in 0..<3 {
                #expect(try await request("\(base)/c?key=k\(index)", body: "v\(index)", headers: [("content-type", "text/plain")]).status == .ok)
            }
        }
        let servers = try TestBroker.bootstrapServers
        let listed = try await runKBridge(["consume", "--bootstrap-servers", servers, "--topic", topic, "--count", "3", "--keys"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let lines = listed.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(Set(lines.map { $0.split(separator: "\t").first.map(String.init) ?? "" }) == ["k0", "k1", "k2"])
        #expect(lines.allSatisfy { $0.contains("\"body\":\"v") })
        let counted = try await runKBridge(["consume", "-b", servers, "-t", topic, "--count", "3", "--count-only"])
        #expect(counted.stdout == "3\n")
        let short = try await runKBridge(["consume", "-b", servers, "-t", topic, "--count", "4", "--timeout", "1"])
        #expect(short.status == 1 && short.stderr.contains("read 3 of 4 messages"), "\(short.stderr)")
    }
}
