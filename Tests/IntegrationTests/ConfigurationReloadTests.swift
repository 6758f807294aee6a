import AsyncHTTPClient
import Bridge
import Foundation
import Kafka
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import TestSupport
import Testing

/// Reloading the configuration while serving: routes swap at once, unchanged producers are kept, removed ones flush
/// and close, and an invalid file changes nothing. Every test goes through the real broker.
@Suite(.timeLimit(.minutes(5)))
struct ConfigurationReloadTests {
    /// A configuration file the test rewrites, and a bridge started from it that reloads from it.
    final class ReloadableBridge: Sendable {
        let file: String
        let bridge: KafkaBridge
        var url: String { "http://127.0.0.1:\(bridge.port)" }

        init(_ yaml: String) async throws {
            file = try temporaryFile(try Self.filled(yaml))
            let path = file
            let source: @Sendable () throws -> BridgeConfiguration = {
                var configuration = try BridgeConfiguration.load(file: path).configuration
                configuration.server.threads = 2
                return configuration
            }
            bridge = try await KafkaBridge.start(configuration: try source(), logger: testLogger, reloadSource: source)
        }

        static func filled(_ yaml: String) throws -> String {
            yaml.replacingOccurrences(of: "BROKER", with: try TestBroker.bootstrapServers)
        }

        /// Replaces the file's text (`BROKER` filled in).
        func write(_ yaml: String) throws {
            try Self.filled(yaml).write(toFile: file, atomically: true, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(atPath: file) }
    }

    /// Runs `body` with a bridge started from `yaml`, then shuts the bridge down.
    static func withReloadableBridge(_ yaml: String, _ body: (ReloadableBridge) async throws -> Void) async throws {
        let live = try await ReloadableBridge(yaml)
        do {
            try await body(live)
        } catch {
            await live.bridge.shutdown()
            throw error
        }
        await live.bridge.shutdown()
    }

    static func routes(_ topics: (a: String, b: String, c: String), acks: Int = 1, withB: Bool = true, withC: Bool = false,
                       server: String = "server: {host: 127.0.0.1, port: 0, shutdown_timeout: 20000}") -> String {
        var yaml = """
            \(server)
            routes:
              - name: a
                path: /a
                topic: \(topics.a)
                bootstrap_servers: [BROKER]
                producer_async: true
                producer_request_acks: \(acks)

            """
        if withB {
            yaml += """
                  - name: b
                    path: /b
                    topic: \(topics.b)
                    bootstrap_servers: [BROKER]
                    producer_async: false

                """
        }
        if withC {
            yaml += """
                  - name: c
                    path: /c
                    topic: \(topics.c)
                    bootstrap_servers: [BROKER]
                    producer_async: true
                    producer_request_acks: \(acks)

                """
        }
        return yaml
    }

    static func topics() -> (a: String, b: String, c: String) {
        (uniqueTopic("reload-a"), uniqueTopic("reload-b"), uniqueTopic("reload-c"))
    }

    @Test func aReloadAddsRemovesAndKeepsRoutesAndProducers() async throws {
        let topics = Self.topics()
        try await Self.withReloadableBridge(Self.routes(topics)) { live in
            #expect(try await post(live.url + "/a", "a-1").status == .ok)
            #expect(try await post(live.url + "/b", "b-1").status == .ok)
            #expect(try await post(live.url + "/c", "c-0").status == .notFound)

            // b (the sync producer) goes, c comes on a's producer.
            try live.write(Self.routes(topics, withB: false, withC: true))
            let report = try await live.bridge.reload().get()
            #expect(report.description == "generation 2: 2 routes; producers kept 1, created 0, retiring 1",
                    "\(report)")
            #expect(try await post(live.url + "/a", "a-2").status == .ok)
            #expect(try await post(live.url + "/c", "c-1").status == .ok)
            let removed = try await post(live.url + "/b", "b-2")
            #expect(removed.status == .notFound, "\(removed.body)")
            #expect(live.bridge.configuration.routes.map(\.name) == ["a", "c"])

            // Route a's counters carry on across the reload.
            let metrics = try await request(live.url + "/metrics", method: .GET).body
            #expect(metrics.contains(#"kbridge_http_responses_total{route="a",status="2xx"} 2"#), "\(metrics)")

            #expect(try await readTopic(topics.a, minimumCount: 2).compactMap { $0.json["body"] as? String }.sorted() == ["a-1", "a-2"])
            #expect(try await readTopic(topics.b, minimumCount: 1).compactMap { $0.json["body"] as? String } == ["b-1"])
            #expect(try await readTopic(topics.c, minimumCount: 1).compactMap { $0.json["body"] as? String } == ["c-1"])
        }
    }

    @Test func anInvalidFileOrARestartOnlyKeyChangesNothing() async throws {
        let topics = Self.topics()
        try await Self.withReloadableBridge(Self.routes(topics)) { live in

            try live.write(Self.routes(topics) + "    producer_request_acks: 7\n")
            guard case .failure(let invalid) = await live.bridge.reload() else {
                Issue.record("an invalid file was applied")
                return
            }
            #expect(invalid.reason == .invalidConfiguration)
            #expect(invalid.message.contains("producer_request_acks"), "\(invalid.message)")

            try live.write(Self.routes(topics, withC: true, server: "server: {host: 127.0.0.1, port: 0, shutdown_timeout: 20000, max_headers: 50}"))
            guard case .failure(let restart) = await live.bridge.reload() else {
                Issue.record("a change of server.max_headers was applied")
                return
            }
            #expect(restart.reason == .restartRequired)
            #expect(restart.message.contains("server.max_headers"), "\(restart.message)")

            // The configuration in force still serves, unchanged.
            #expect(try await post(live.url + "/a", "a-1").status == .ok)
            #expect(try await post(live.url + "/b", "b-1").status == .ok)
            #expect(try await post(live.url + "/c", "c-1").status == .notFound)
            #expect(live.bridge.configuration.routes.map(\.name) == ["a", "b"])

            // A valid file after them applies.
            try live.write(Self.routes(topics, withC: true))
            #expect(try await live.bridge.reload().get().generation == 2)
            #expect(try await post(live.url + "/c", "c-2").status == .ok)
        }
    }

    @Test func theAdminListenerReloadsOnPost() async throws {
        let topics = Self.topics()
        let server = "server: {host: 127.0.0.1, port: 0, shutdown_timeout: 20000, admin: {host: 127.0.0.1, port: 0}}"
        try await Self.withReloadableBridge(Self.routes(topics, server: server)) { live in
            let admin = "http://127.0.0.1:\(try #require(live.bridge.adminPort))"
            // Reaching the cluster is asynchronous (a loaded broker may take seconds).
            let deadline = ContinuousClock.now + .seconds(60)
            while try await request(admin + "/ready", method: .GET).status != .ok, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(try await request(admin + "/ready", method: .GET).status == .ok)

            // New settings for a's producer: the reload makes a new one, which has not connected yet, for a cluster an
            // earlier producer reached; kbridge stays ready.
            try live.write(Self.routes(topics, acks: -1, withC: true, server: server))
            let applied = try await request(admin + "/reload")
            #expect(applied.status == .ok, "\(applied.body)")
            #expect(applied.json["status"] as? String == "reloaded")
            #expect(applied.json["generation"] as? Int == 2)
            #expect(try await request(admin + "/ready", method: .GET).status == .ok)
            #expect(try await post(live.url + "/c", "c-1").status == .ok)

            try live.write("routes: [")
            let refused = try await request(admin + "/reload")
            #expect(refused.status == .unprocessableEntity, "\(refused.body)")
            #expect(refused.json["code"] as? String == "invalid_configuration")
            #expect(try await post(live.url + "/c", "c-2").status == .ok)

            #expect(try await request(admin + "/reload", method: .GET).status == .methodNotAllowed)
            // The main listener has no reload endpoint, and the admin listener no routes.
            #expect(try await request(live.url + "/reload").status == .notFound)
            #expect(try await post(admin + "/a", "x").status == .notFound)
            #expect(try await request(admin + "/ready", method: .GET).status == .ok)
        }
    }

    /// A request whose head was routed before two reloads and whose body arrives after them is served by the route it
    /// started with: the producer the second reload retired (kept by the first) waits for it before closing.
    @Test func aRequestStartedBeforeTheReloadFinishesOnItsRoute() async throws {
        let topics = Self.topics()
        try await Self.withReloadableBridge(Self.routes(topics, withB: false)) { live in
            let slow = try RawConnection(port: live.bridge.port)
            slow.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nslow")
            try await Task.sleep(for: .milliseconds(300))
            // A first reload keeps the route's producer; a second one retires it, while the request still uses it.
            try live.write(Self.routes(topics, withB: false, withC: true))
            let keeping = try await live.bridge.reload().get()
            #expect(keeping.producersKept == 1 && keeping.producersRetired == 0, "\(keeping)")
            try live.write(Self.routes(topics, acks: -1, withB: false))
            let report = try await live.bridge.reload().get()
            #expect(report.producersRetired == 1 && report.producersCreated == 1, "\(report)")
            try await Task.sleep(for: .milliseconds(500))
            slow.send("-body")
            let answer = try await onOwnThread { [slow = UncheckedBox(slow)] in slow.value.receive(until: "}") }
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
            #expect(try await post(live.url + "/a", "after").status == .ok)
            let bodies = try await readTopic(topics.a, minimumCount: 2).compactMap { $0.json["body"] as? String }
            #expect(Set(bodies) == ["slow-body", "after"])
        }
    }

    /// Secret files are read again by every reload, even when the configuration's text did not change.
    @Test func aReloadRereadsSecretFiles() async throws {
        let keyFile = try temporaryFile("first-key-0123456789abcdef")
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        let topic = uniqueTopic("reload-secret")
        let yaml = """
            server: {host: 127.0.0.1, port: 0}
            routes:
              - path: /keyed
                topic: \(topic)
                bootstrap_servers: [BROKER]
                client_authentication:
                  api_key:
                    keys: [{consumer: alice, key: {file: \(keyFile)}}]
            """
        try await Self.withReloadableBridge(yaml) { live in
            let first = [("apikey", "first-key-0123456789abcdef")]
            let second = [("apikey", "second-key-0123456789abcdef")]
            #expect(try await request(live.url + "/keyed", body: "1", headers: first).status == .ok)
            try "second-key-0123456789abcdef\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
            #expect(try await request(live.url + "/keyed", body: "2", headers: second).status == .unauthorized)
            _ = try await live.bridge.reload().get()
            #expect(try await request(live.url + "/keyed", body: "3", headers: second).status == .ok)
            #expect(try await request(live.url + "/keyed", body: "4", headers: first).status == .unauthorized)
        }
    }

    /// Tells the load's workers when to stop, and counts their answers.
    final class StopFlag: Sendable {
        private let value = Atomic<Bool>(false)
        private let answers = Atomic<Int>(0)
        var isSet: Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
        func answered() { answers.add(1, ordering: .relaxed) }

        /// Waits until `count` more answers came (the pace of a loaded machine, not a fixed time).
        func waitForAnswers(_ count: Int) async throws {
            let target = answers.load(ordering: .relaxed) + count
            let deadline = ContinuousClock.now + .seconds(60)
            while answers.load(ordering: .relaxed) < target, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    /// Posts `m-<worker>-<n>` bodies to `url` from `workers` keep-alive clients until `stop` is set; returns each
    /// body's answer.
    static func load(_ url: String, workers: Int, stop: StopFlag) async -> [String: HTTPResponseStatus] {
        await withTaskGroup(of: [String: HTTPResponseStatus].self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var answers: [String: HTTPResponseStatus] = [:]
                    var sent = 0
                    while !stop.isSet, !Task.isCancelled {
                        let body = "m-\(worker)-\(sent)"
                        sent += 1
                        let status = try? await request(url, body: body, headers: [("content-type", "text/plain")], timeout: .seconds(30)).status
                        answers[body] = status ?? .init(statusCode: 599)
                        stop.answered()
                    }
                    return answers
                }
            }
            var all: [String: HTTPResponseStatus] = [:]
            for await answers in group { all.merge(answers) { first, _ in first } }
            return all
        }
    }

    @Test(arguments: [true, false])
    func reloadsUnderLoadLoseNothing(async: Bool) async throws {
        let topic = uniqueTopic(async ? "reload-load-async" : "reload-load-sync")
        func yaml(acks: Int, extraRoute: Bool) -> String {
            var text = """
                server: {host: 127.0.0.1, port: 0, shutdown_timeout: 20000}
                routes:
                  - name: load
                    path: /load
                    topic: \(topic)
                    bootstrap_servers: [BROKER]
                    producer_async: \(async)
                    producer_request_acks: \(acks)

                """
            if extraRoute {
                text += """
                      - name: extra
                        path: /extra
                        topic: \(topic)
                        bootstrap_servers: [BROKER]
                        producer_request_acks: 0

                    """
            }
            return text
        }
        try await Self.withReloadableBridge(yaml(acks: 1, extraRoute: false)) { live in
            let stop = StopFlag()
            async let answers = Self.load(live.url + "/load", workers: 16, stop: stop)

            try await stop.waitForAnswers(150)
            // A new producer for the route (acks changed) and a new route: the old producer flushes and closes.
            try live.write(yaml(acks: -1, extraRoute: true))
            let first = try await live.bridge.reload().get()
            #expect(first.producersCreated == 2 && first.producersKept == 0 && first.producersRetired == 1, "\(first)")
            try await stop.waitForAnswers(150)
            // An invalid file: nothing changes.
            try live.write(yaml(acks: 3, extraRoute: true))
            if case .success = await live.bridge.reload() { Issue.record("acks 3 was applied") }
            try await stop.waitForAnswers(150)
            // Back to the first producer's settings: a new producer again.
            try live.write(yaml(acks: 1, extraRoute: false))
            #expect(try await live.bridge.reload().get().generation == 3)
            try await stop.waitForAnswers(150)
            stop.set()

            let results = await answers
            let failed = results.filter { $0.value != .ok }
            #expect(results.count >= 600, "only \(results.count) requests were sent")
            #expect(failed.isEmpty, "\(failed.count) of \(results.count) requests failed, e.g. \(failed.prefix(5).map { "\($0.key): \($0.value.code)" })")
            let accepted = Set(results.filter { $0.value == .ok }.keys)
            print("reloads under load (\(async ? "async" : "sync") route, 3 reloads, one refused): \(results.count) requests, "
                + "\(failed.count) failed, \(accepted.count) answered 200")
            let bodies = try await readTopic(topic, minimumCount: accepted.count, timeout: .seconds(60)).compactMap { $0.json["body"] as? String }
            let lost = accepted.subtracting(bodies)
            #expect(lost.isEmpty, "\(lost.count) of \(accepted.count) answered 200 are not in the topic, e.g. \(lost.prefix(5))")
            #expect(bodies.count == Set(bodies).count, "duplicates in the topic")
        }
    }
}

/// Posts `body` as text (so that the message's `body` is the text itself).
func post(_ url: String, _ body: String) async throws -> TestResponse {
    try await request(url, body: body, headers: [("content-type", "text/plain")])
}

/// The real binary: SIGHUP and `kbridge reload` apply the file; an invalid file is refused and logged.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct ReloadSignalTests {
    static func configuration(topic: String, extraRoute: Bool) throws -> String {
        var yaml = """
            server: {host: 127.0.0.1, port: 0, shutdown_timeout: 20000, admin: {host: 127.0.0.1, port: 0}}
            log_level: info
            routes:
              - path: /first
                topic: \(topic)
                bootstrap_servers: [\(try TestBroker.bootstrapServers)]

            """
        if extraRoute {
            yaml += """
                  - path: /second
                    topic: \(topic)
                    bootstrap_servers: [\(try TestBroker.bootstrapServers)]

                """
        }
        return yaml
    }

    @Test func sighupAppliesAValidFileAndRefusesAnInvalidOne() async throws {
        let topic = uniqueTopic("sighup")
        let bridge = try await BridgeProcess(configuration: try Self.configuration(topic: topic, extraRoute: false))
        let url = "http://127.0.0.1:\(bridge.port)"
        #expect(try await post(url + "/second", "s-0").status == .notFound)

        try Self.configuration(topic: topic, extraRoute: true).write(toFile: bridge.configurationFile, atomically: true, encoding: .utf8)
        kill(bridge.pid, SIGHUP)
        var applied = false
        let deadline = ContinuousClock.now + .seconds(30)
        while !applied, ContinuousClock.now < deadline {
            applied = try await post(url + "/second", "s-1").status == .ok
            if !applied { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(applied, "\(bridge.stderr.suffix(2000))")

        try "routes: [{path: /x}]\n".write(toFile: bridge.configurationFile, atomically: true, encoding: .utf8)
        kill(bridge.pid, SIGHUP)
        let refused = try await eventually(timeout: .seconds(30)) { bridge.stderr.contains("configuration reload refused") }
        #expect(refused, "\(bridge.stderr.suffix(2000))")
        #expect(bridge.stderr.contains("routes[0]"), "the refusal names the key: \(bridge.stderr.suffix(2000))")
        #expect(try await post(url + "/first", "f-1").status == .ok)
        #expect(try await post(url + "/second", "s-2").status == .ok)

        let status = try await bridge.terminate()
        #expect(status == 0, "\(bridge.stderr.suffix(2000))")
        let bodies = try await readTopic(topic, minimumCount: 3).compactMap { $0.json["body"] as? String }
        #expect(Set(bodies) == ["s-1", "f-1", "s-2"])
    }

    @Test func theReloadCommandAsksTheAdminListener() async throws {
        let topic = uniqueTopic("reload-command")
        let bridge = try await BridgeProcess(configuration: try Self.configuration(topic: topic, extraRoute: false))
        let adminPort = try #require(bridge.stderr.range(of: #"address=127\.0\.0\.1:(\d+)[^\n]*admin listener"#, options: .regularExpression)
            .flatMap { Int(bridge.stderr[$0].split(separator: " ").first!.split(separator: ":").last!) })
        try Self.configuration(topic: topic, extraRoute: true).write(toFile: bridge.configurationFile, atomically: true, encoding: .utf8)
        let admin = ["--admin", "http://127.0.0.1:\(adminPort)"]
        let applied = try await runKBridge(["reload", bridge.configurationFile] + admin)
        #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
        #expect(applied.stdout.contains("\"status\":\"reloaded\""), "\(applied.stdout)")
        #expect(try await request("http://127.0.0.1:\(bridge.port)/second", body: "s-1").status == .ok)

        // The running kbridge refuses a change of a key that needs a restart, and says which.
        let changed = try Self.configuration(topic: topic, extraRoute: true).replacingOccurrences(of: "shutdown_timeout: 20000", with: "shutdown_timeout: 1000")
        try changed.write(toFile: bridge.configurationFile, atomically: true, encoding: .utf8)
        let refused = try await runKBridge(["reload", bridge.configurationFile] + admin)
        #expect(refused.status == 1, "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stderr.contains("server.shutdown_timeout"), "\(refused.stderr)")
        #expect(try await bridge.terminate() == 0)
    }

    /// A request that never finishes is cut when the drain runs out of time: kbridge exits at once after it, without
    /// SwiftNIO's warning about a connection outliving its event loop.
    @Test func aDrainThatTimesOutClosesTheConnectionsLeft() async throws {
        let yaml = """
            server: {host: 127.0.0.1, port: 0, shutdown_timeout: 1000}
            routes:
              - path: /stuck
                topic: \(uniqueTopic("stuck"))
                bootstrap_servers: [\(try TestBroker.bootstrapServers)]
            """
        let bridge = try await BridgeProcess(configuration: yaml)
        let socket = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: bridge.port).get()
        // Half a body: the request stays in progress.
        try await socket.writeAndFlush(ByteBuffer(string: "POST /stuck HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nhalf")).get()
        try await Task.sleep(for: .milliseconds(300))
        let status = try await bridge.terminate(timeout: .seconds(30))
        #expect(status == 0, "\(bridge.stderr.suffix(2000))")
        #expect(bridge.stderr.contains("connections_drained=false"), "\(bridge.stderr.suffix(2000))")
        #expect(!bridge.stderr.contains("Cannot schedule tasks"), "\(bridge.stderr.suffix(2000))")
        try? await socket.close()
    }
}
