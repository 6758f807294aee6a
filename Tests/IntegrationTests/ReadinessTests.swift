import Bridge
import Foundation
import Kafka
import NIOHTTP1
import TestSupport
import Testing

/// `GET /ready` (`server.ready_path`): 503 until every cluster was reached once, 200 then, 503 from the start of
/// shutdown; beside `/health`, which stays the liveness answer.
@Suite(.timeLimit(.minutes(2)))
struct ReadinessTests {
    @Test func readyOnceEveryClusterWasReached() async throws {
        let yaml = """
        routes:
          - {path: /reachable, topic: \(uniqueTopic("ready")), bootstrap_servers: BROKER}
        """
        try await withYAMLBridge(yaml) { base, _ in
            var last = TestResponse(status: .serviceUnavailable, headers: [:], body: "")
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                last = try await request("\(base)/ready", method: .GET)
                if last.status == .ok { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(last.status == .ok, "\(last.body)")
            #expect(last.body == #"{"status":"ready"}"#)
        }
    }

    @Test func notReadyWhileAClusterWasNeverReached() async throws {
        let yaml = """
        routes:
          - {path: /reachable, topic: \(uniqueTopic("ready")), bootstrap_servers: BROKER}
          - {path: /nowhere, topic: t, bootstrap_servers: "127.0.0.1:1", timeout: 1000}
        """
        try await withYAMLBridge(yaml) { base, _ in
            // Once the test broker was reached, the answer names only the other cluster (and stays 503).
            let expected = #"{"status":"not_ready","unreached_clusters":["127.0.0.1:1"]}"#
            var answer = try await request("\(base)/ready", method: .GET)
            let deadline = ContinuousClock.now + .seconds(30)
            while answer.body != expected, ContinuousClock.now < deadline {
                #expect(answer.status == .serviceUnavailable, "\(answer.body)")
                try await Task.sleep(for: .milliseconds(100))
                answer = try await request("\(base)/ready", method: .GET)
            }
            #expect(answer.status == .serviceUnavailable)
            #expect(answer.body == expected)
            // Liveness is another matter: /health answers 200 while kbridge serves, whatever the clusters' health.
            #expect(try await request("\(base)/health", method: .GET).status == .ok)
        }
    }

    @Test func theReadyPathIsConfigurable() async throws {
        let yaml = """
        server: {ready_path: /readyz}
        routes:
          - {path: /events, topic: \(uniqueTopic("ready")), bootstrap_servers: BROKER}
        """
        try await withYAMLBridge(yaml) { base, _ in
            #expect(try await request("\(base)/ready", method: .GET).status == .notFound)
            let status = try await request("\(base)/readyz", method: .GET).status
            #expect(status == .ok || status == .serviceUnavailable)
        }
    }

    @Test func theAdminListenerAnswersNotReadyWhileShuttingDown() async throws {
        let yaml = """
        server:
          host: 127.0.0.1
          port: 0
          shutdown_timeout: 3000
          admin: {host: 127.0.0.1, port: 0}
        routes:
          - {path: /events, topic: \(uniqueTopic("ready-admin")), bootstrap_servers: \(try TestBroker.bootstrapServers)}
        """
        let configuration = try BridgeConfiguration.parse(yaml: yaml, file: "test.yaml").configuration
        let bridge = try await KafkaBridge.start(configuration: configuration, logger: testLogger)
        let admin = "http://127.0.0.1:\(try #require(bridge.adminPort))"
        var ready = try await request("\(admin)/ready", method: .GET)
        let deadline = ContinuousClock.now + .seconds(30)
        while ready.status != .ok, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            ready = try await request("\(admin)/ready", method: .GET)
        }
        #expect(ready.status == .ok, "\(ready.body)")
        #expect(try await request("\(admin)/health", method: .GET).status == .ok)
        #expect(try await request("\(admin)/metrics", method: .GET).body.contains("kbridge_connections_open"))
        // The main listener serves routes only.
        #expect(try await request("http://127.0.0.1:\(bridge.port)/ready", method: .GET).status == .notFound)

        // A request half sent on the main listener holds its drain (up to shutdown_timeout, 3 s); the 100 Continue
        // shows that the server is reading its body.
        let unfinished = try RawConnection(port: bridge.port)
        unfinished.send("POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
        let continued = try await onOwnThread { [unfinished = UncheckedBox(unfinished)] in unfinished.value.receive(until: "\r\n\r\n") }
        #expect(continued.hasPrefix("HTTP/1.1 100 Continue"), "\(continued)")
        unfinished.send("half")
        let started = ContinuousClock.now
        let shutdown = Task { await bridge.shutdown() }
        var draining = try await request("\(admin)/ready", method: .GET)
        let drainDeadline = ContinuousClock.now + .seconds(20)
        while draining.status == .ok, ContinuousClock.now < drainDeadline {
            try await Task.sleep(for: .milliseconds(20))
            draining = try await request("\(admin)/ready", method: .GET)
        }
        #expect(draining.status == .serviceUnavailable)
        #expect(draining.body == #"{"status":"shutting_down"}"#)
        let report = await shutdown.value
        // The drain lasted until shutdown_timeout (far from both 0 and a hang).
        #expect(!report.connectionsDrained)
        #expect(ContinuousClock.now - started > .seconds(1))
        withExtendedLifetime(unfinished) {}
        await #expect(throws: (any Error).self) { try await request("\(admin)/ready", method: .GET, timeout: .seconds(5)) }
    }
}

/// Hands a non-Sendable value to another thread when the test knows only one uses it at a time.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
