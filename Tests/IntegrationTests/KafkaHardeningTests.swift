import AsyncHTTPClient
import Bridge
import Foundation
import Kafka
import NIOCore
import NIOHTTP1
import Synchronization
import TestSupport
import Testing

/// Regression tests for kbridge's Kafka side under failure, against the real loopback broker (Tansu) and its
/// SASL and TLS fronts that `scripts/test` starts.
@Suite(.timeLimit(.minutes(3)))
struct KafkaHardeningTests {
    // MARK: A broker that hangs

    /// A broker that accepts connections but answers nothing (a black-holed TCP proxy in front of a Tansu
    /// broker of its own, which advertises the proxy): routes answer 503 within the stall timeout, recover
    /// once the broker answers again, and every message answered 200 is in the topic exactly once
    /// (`acks: -1`, so the producer is idempotent: a request the broker got twice is written once).
    @Test func aHangingBrokerIsReportedDownAndNothingAcceptedIsLostOrDuplicated() async throws {
        let broker = try await onOwnThread { try ProxiedTansu() }  // it waits for Tansu to start
        defer { broker.stop() }
        let topic = uniqueTopic("stall")
        var route = try testRoute(path: "/in", topic: topic, async: true, broker: BrokerAddress(host: "127.0.0.1", port: broker.port))
        route.kafka.acks = -1  // with Kong's default 1, this test finds ~90 duplicates
        route.kafka.stallTimeout = 2000
        route.returnErrorMessage = true  // the answer names the stall
        route.kafka.timeout = 3000  // socket.timeout.ms: librdkafka gives up on an unanswered request and retries it
        let accepted = Mutex<[String]>([])
        let clock = ContinuousClock()
        try await withBridge([route]) { (base: String, bridge: KafkaBridge) async throws in
            func post(_ body: String) async throws -> TestResponse {
                let response = try await request("\(base)/in", body: body, headers: [("content-type", "text/plain")], timeout: .seconds(10))
                if response.status == .ok { accepted.withLock { $0.append(body) } }
                return response
            }
            for index in 0..<50 { #expect(try await post("before-\(index)").status == .ok) }
            #expect(try await eventually { bridge.statistics.delivered == 50 })

            broker.proxy.pause()
            let paused = clock.now
            var duringStatuses: [HTTPResponseStatus] = []
            var unavailable: TestResponse?
            var index = 0
            while clock.now - paused < .seconds(8) {
                let response = try await post("during-\(index)")
                index += 1
                duringStatuses.append(response.status)
                if response.status == .serviceUnavailable { unavailable = response; break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let detectedAfter = clock.now - paused
            #expect(unavailable?.json["code"] as? String == "kafka_unavailable", "\(duringStatuses.count) answers while paused, none 503")
            #expect((unavailable?.json["message"] as? String)?.contains("no delivery progress for 2s") == true, "\(unavailable?.body ?? "")")
            #expect(detectedAfter < .seconds(5), "detected after \(detectedAfter)")
            let health = try await request("\(base)/health", method: .GET)
            #expect(health.status == .ok && health.json["status"] as? String == "down", "\(health.body)")
            #expect(health.body.contains("broker not responding"), "\(health.body)")

            try await Task.sleep(for: .seconds(5))  // past socket.timeout.ms: requests the broker took are retried
            broker.proxy.resume()
            var recovered = false
            let resumed = clock.now
            while !recovered, clock.now - resumed < .seconds(60) {
                recovered = try await post("after-\(index)").status == .ok
                index += 1
                if !recovered { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(recovered)
            #expect(try await request("\(base)/health", method: .GET).status == .ok)
            #expect(try await eventually(timeout: .seconds(60)) { bridge.statistics.inQueue == 0 })
            #expect(bridge.statistics.failed == 0)
        }
        let sent = accepted.withLock { $0 }
        let bodies = try await readTopic(topic, bootstrapServers: "127.0.0.1:\(broker.port)", minimumCount: sent.count, timeout: .seconds(30))
            .compactMap { $0.json["body"] as? String }
        #expect(Set(bodies) == Set(sent), "missing: \(Set(sent).subtracting(bodies).sorted().prefix(10))")
        let duplicates = Dictionary(grouping: bodies, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        #expect(duplicates.isEmpty, "\(duplicates.count) duplicates, e.g. \(duplicates.prefix(5))")
    }

    // MARK: Login failures

    /// A sync request in flight when the login fails is answered with the login's reason at once, not after
    /// `timeout` (60 s here; the bound of 20 s is far from both, so a loaded machine cannot fail this).
    @Test func aSyncRequestFailsAsSoonAsTheLoginFails() async throws {
        var route = try testRoute(path: "/in", topic: uniqueTopic("sasl-fast"), async: false, broker: try SecurityTests.broker(.sasl))
        route.kafka.authentication = SecurityTests.sasl(.scramSHA256, "alice", "wrong")
        route.kafka.timeout = 60_000
        route.returnErrorMessage = true  // the answer names the login's reason
        let clock = ContinuousClock()
        let (response, elapsed) = try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            let start = clock.now
            let response = try await request("\(base)/in", body: "x", headers: [("content-type", "text/plain")])
            return (response, clock.now - start)
        }
        #expect(response.status == .serviceUnavailable, "\(response.body)")
        #expect((response.json["message"] as? String)?.contains("Authentication failed") == true, "\(response.body)")
        #expect(elapsed < .seconds(20), "answered after \(elapsed)")
    }

    /// With a wrong password, kbridge logs in again less and less often (at most once a second after a few
    /// seconds), instead of 12-18 times a second for as long as it runs. Counted in the SASL proxy's log.
    @Test func aWrongPasswordIsRetriedWithBackoff() async throws {
        let user = "nobody-\(UUID().uuidString.prefix(8).lowercased())"
        var route = try testRoute(path: "/in", topic: uniqueTopic("sasl-backoff"), async: true, broker: try SecurityTests.broker(.sasl))
        route.kafka.authentication = SecurityTests.sasl(.scramSHA256, user, "wrong")
        let log = try Self.saslProxyLog()
        func logins() throws -> Int {
            try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.contains("FAILED \(user) ") }.count
        }
        let (early, late, window) = try await withBridge([route]) { (_: String, _: KafkaBridge) async throws in
            try await Task.sleep(for: .seconds(4))
            let early = try logins()
            let start = ContinuousClock.now
            try await Task.sleep(for: .seconds(6))
            return (early, try logins() - early, ContinuousClock.now - start)
        }
        #expect(early >= 1, "no login reached the proxy (log: \(log))")
        // About one a second over the window as it really lasted (a loaded machine stretches a 6 s sleep), with room for
        // the backoff still growing at its start (10 seen in 7 s); without the backoff it is 12-18 a second (over 70).
        let seconds = Int(window.components.seconds) + 1
        #expect(late <= 2 * seconds, "\(late) logins in the \(window) after the first 4 s (\(early) before)")
    }

    static func saslProxyLog() throws -> String {
        let port = try SecurityTests.broker(.sasl).port
        let base = ProcessInfo.processInfo.environment["KAFKA_TEST_DIR"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.kafka-test").path
        let path = "\(base)/broker-\(port)/sasl-proxy.log"
        guard FileManager.default.fileExists(atPath: path) else { throw TestSetupError("no SASL proxy log at \(path) (set KAFKA_TEST_DIR)") }
        return path
    }

    // MARK: librdkafka's own output

    /// `kbridge check` on a TLS route prints nothing of librdkafka's own (`%5|...|CONFWARN|...`) to standard error.
    @Test func checkPrintsNoRawLibrdkafkaLines() async throws {
        let ca = try SecurityTests.certificate("ca.crt")
        let configuration = """
            routes:
              - path: /in
                topic: t
                bootstrap_servers: [127.0.0.1:9]
                security: {ssl: true, ca_file: "\(ca)"}
              - path: /plain
                topic: t
                bootstrap_servers: [127.0.0.1:9]
            """
        let (status, _, stderr) = try await runKBridge(["check", try temporaryFile(configuration)])
        #expect(status == 0, "\(stderr)")
        #expect(!stderr.contains("%5|") && !stderr.contains("%4|") && !stderr.contains("%3|") && !stderr.contains("CONFWARN"), "\(stderr)")
    }

    // MARK: Large bodies

    /// A body of exactly the default `max_body_size` (1 MiB) is produced and read back, binary (base64 in
    /// the envelope) and JSON (embedded twice: `body` and `body_args`).
    @Test func aBodyOfTheDefaultMaximumSizeIsProduced() async throws {
        let topic = uniqueTopic("big")
        let route = try testRoute(path: "/in", topic: topic, async: false)
        #expect(route.maxBodySize == 1_048_576)
        var generator = SystemRandomNumberGenerator()
        let binary = (0..<route.maxBodySize).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let filler = String(repeating: "\\u0001", count: (route.maxBodySize - 12) / 6)
        var json = "{\"data\":\"\(filler)"
        json += String(repeating: "x", count: route.maxBodySize - json.utf8.count - 2) + "\"}"
        #expect(json.utf8.count == route.maxBodySize)
        try await withBridge([route]) { (base: String, _: KafkaBridge) async throws in
            let first = try await postBytes("\(base)/in", binary, contentType: "application/octet-stream")
            #expect(first.status == .ok, "\(first.body)")
            let second = try await postBytes("\(base)/in", Array(json.utf8), contentType: "application/json")
            #expect(second.status == .ok, "\(second.body)")
        }
        let messages = try await readTopic(topic, minimumCount: 2, timeout: .seconds(30))
        #expect(messages.count == 2)
        let values = messages.map(\.json)
        let binaryBack = values.compactMap { $0["body_base64"] as? Bool == true ? ($0["body"] as? String).flatMap { Data(base64Encoded: $0) } : nil }
        #expect(binaryBack == [Data(binary)])
        let jsonBack = values.compactMap { $0["body_base64"] == nil ? $0["body"] as? String : nil }
        #expect(jsonBack == [json])
    }
}

/// Posts raw bytes (the `request` helper takes a string).
func postBytes(_ url: String, _ bytes: [UInt8], contentType: String) async throws -> TestResponse {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "content-type", value: contentType)
    request.body = .bytes(ByteBuffer(bytes: bytes))
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let body = try await response.body.collect(upTo: 1 << 20)
    return TestResponse(status: response.status, headers: response.headers, body: String(buffer: body))
}

