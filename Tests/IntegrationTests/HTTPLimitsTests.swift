import Bridge
import Foundation
import NIOHTTP1
import TestSupport
import Testing

/// Starts a bridge like ``withBridge(_:_:)`` with the `server:` settings changed by `configure`.
func withBridge<T>(
    _ routes: [RouteConfiguration], server configure: (inout ServerConfiguration) -> Void, _ body: (KafkaBridge) async throws -> T
) async throws -> T {
    var configuration = BridgeConfiguration(routes: routes)
    configuration.server.host = "127.0.0.1"
    configuration.server.port = 0
    configuration.server.threads = 2
    configuration.server.shutdownTimeout = .seconds(10)
    configure(&configuration.server)
    let bridge = try await KafkaBridge.start(configuration: configuration, logger: testLogger)
    do {
        let result = try await body(bridge)
        await bridge.shutdown()
        return result
    } catch {
        await bridge.shutdown()
        throw error
    }
}

/// The `{"message", "code"}` of a raw answer's body.
func errorCode(_ response: String) -> String? {
    guard let start = response.range(of: "\r\n\r\n")?.upperBound,
          let object = try? JSONSerialization.jsonObject(with: Data(response[start...].utf8)) as? [String: Any] else { return nil }
    return object["code"] as? String
}

func errorMessage(_ response: String) -> String {
    guard let start = response.range(of: "\r\n\r\n")?.upperBound,
          let object = try? JSONSerialization.jsonObject(with: Data(response[start...].utf8)) as? [String: Any] else { return "" }
    return object["message"] as? String ?? ""
}

/// Issue 8 (HTTP part): every bound of `server:` holds on a real listener, answers are JSON, refused bodies are
/// not read, and connections that are idle or too slow are closed.
@Suite(.timeLimit(.minutes(3)))
struct HTTPLimitsTests {
    func route() throws -> RouteConfiguration {
        try testRoute(path: "/in/{key}", topic: uniqueTopic("limits"), async: true)
    }

    @Test func headersOverTheLimitsAre431WithJSON() async throws {
        try await withBridge([try route()], server: { _ in }) { bridge in
            // One 64 KB header line: stopped by the HTTP parser.
            let huge = try RawConnection(port: bridge.port)
            huge.send("POST /in/k HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 65_536))\r\nContent-Length: 1\r\n\r\n")
            let hugeAnswer = huge.receiveToClose()
            #expect(hugeAnswer.text.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large"), "\(hugeAnswer.text.prefix(300))")
            #expect(errorCode(hugeAnswer.text) == "request_header_fields_too_large")
            #expect(hugeAnswer.closed)

            // Two 17 KB headers: each fits the parser, together over max_header_size (32 KiB).
            let two = try RawConnection(port: bridge.port)
            let value = String(repeating: "b", count: 17_000)
            two.send("POST /in/k HTTP/1.1\r\nHost: x\r\nX-A: \(value)\r\nX-B: \(value)\r\nContent-Length: 1\r\n\r\n")
            let twoAnswer = two.receiveToClose()
            #expect(twoAnswer.text.hasPrefix("HTTP/1.1 431"), "\(twoAnswer.text.prefix(300))")
            #expect(errorMessage(twoAnswer.text).contains("server.max_header_size"), "\(twoAnswer.text.prefix(400))")
            #expect(twoAnswer.text.lowercased().contains("connection: close") && twoAnswer.closed)

            // 10,000 headers (101 would do): max_headers is 100.
            let many = try RawConnection(port: bridge.port)
            var request = "POST /in/k HTTP/1.1\r\nHost: x\r\n"
            for index in 0..<10_000 { request += "X-\(index): v\r\n" }
            many.send(request + "Content-Length: 1\r\n\r\na")
            let manyAnswer = many.receiveToClose()
            #expect(manyAnswer.text.hasPrefix("HTTP/1.1 431"), "\(manyAnswer.text.prefix(300))")
            #expect(errorCode(manyAnswer.text) == "request_header_fields_too_large")
        }
    }

    @Test func longURIsAre414AndManyQueryArgumentsAre400() async throws {
        try await withBridge([try route()], server: { $0.maxFormFields = 10 }) { bridge in
            let long = try RawConnection(port: bridge.port)
            long.send("POST /in/\(String(repeating: "k", count: 9_000)) HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
            let longAnswer = long.receiveToClose()
            #expect(longAnswer.text.hasPrefix("HTTP/1.1 414 URI Too Long"), "\(longAnswer.text.prefix(300))")
            #expect(errorCode(longAnswer.text) == "uri_too_long")
            #expect(longAnswer.closed)

            let query = (0..<11).map { "a\($0)=1" }.joined(separator: "&")
            let arguments = try RawConnection(port: bridge.port)
            arguments.send("POST /in/k?\(query) HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
            let argumentsAnswer = arguments.receiveToClose()
            #expect(argumentsAnswer.text.hasPrefix("HTTP/1.1 400"), "\(argumentsAnswer.text.prefix(300))")
            #expect(errorCode(argumentsAnswer.text) == "invalid_query")
            #expect(errorMessage(argumentsAnswer.text).contains("server.max_form_fields"))
        }
    }

    /// NIO's decoder turns the bytes into U+FFFD: the message differed silently from the request.
    @Test func headerValuesThatAreNotUTF8AreRefused() async throws {
        try await withBridge([try route()], server: { _ in }) { bridge in
            let connection = try RawConnection(port: bridge.port)
            var bytes = Array("POST /in/k HTTP/1.1\r\nHost: x\r\nX-Name: caf".utf8)
            bytes += [0xE9, 0xFF]
            bytes += Array("\r\nContent-Length: 2\r\n\r\n{}".utf8)
            connection.send(bytes: bytes)
            let answer = connection.receiveToClose()
            #expect(answer.text.hasPrefix("HTTP/1.1 400"), "\(answer.text.prefix(300))")
            #expect(errorCode(answer.text) == "invalid_header")
            #expect(errorMessage(answer.text).contains("'X-Name'"), "\(answer.text)")
        }
    }

    @Test func pathSegmentsThatDoNotDecodeAre400() async throws {
        try await withBridge([try route()], server: { _ in }) { bridge in
            for path in ["/in/%FF", "/in/%+1", "/in/a%2"] {
                let connection = try RawConnection(port: bridge.port)
                connection.send("POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                let answer = connection.receiveToClose()
                #expect(answer.text.hasPrefix("HTTP/1.1 400"), "\(path): \(answer.text.prefix(300))")
                #expect(errorCode(answer.text) == "invalid_path", "\(path)")
            }
        }
    }

    @Test func refusedRequestsAreAnsweredWithoutReadingTheirBody() async throws {
        try await withBridge([try route()], server: { _ in }) { bridge in
            for (request, status) in [
                ("POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", "404"),
                ("GET /in/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", "405"),
                ("POST /nowhere HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "404"),
                ("GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", "400"),
            ] {
                // The body is never sent: the old code waited for it (the answer came only after the read timeout).
                let connection = try RawConnection(port: bridge.port, receiveTimeout: .seconds(5))
                let start = ContinuousClock.now
                connection.send(request)
                let answer = connection.receiveToClose()
                #expect(answer.text.hasPrefix("HTTP/1.1 \(status)"), "\(request): \(answer.text.prefix(300))")
                #expect(answer.text.lowercased().contains("connection: close"), "\(answer.text.prefix(300))")
                #expect(answer.closed, "\(request)")
                #expect(ContinuousClock.now - start < .seconds(3))
            }
            // Built-in endpoints without a body keep the connection open.
            let keepAlive = try RawConnection(port: bridge.port)
            keepAlive.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            let first = keepAlive.receive(until: "\"status\"")
            #expect(first.hasPrefix("HTTP/1.1 "), "\(first)")
            #expect(!first.lowercased().contains("connection: close"))
            keepAlive.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            let second = keepAlive.receive(until: "kbridge_connections_open")
            #expect(second.contains("HTTP/1.1 200 OK"), "\(second.prefix(300))")
        }
    }

    @Test func malformedRequestsGetAJSON400() async throws {
        try await withBridge([try route()], server: { _ in }) { bridge in
            for garbage in ["GARBAGE\r\n\r\n", "POST /in/k HTTP/1.1\r\nBad Header\r\n\r\n", "POST /in/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"] {
                let connection = try RawConnection(port: bridge.port)
                connection.send(garbage)
                let answer = connection.receiveToClose()
                #expect(answer.text.hasPrefix("HTTP/1.1 400 Bad Request"), "\(garbage): \(answer.text.prefix(300))")
                #expect(errorCode(answer.text) == "malformed_request", "\(answer.text)")
                #expect(errorMessage(answer.text).hasPrefix("malformed HTTP request: "))
                #expect(answer.text.lowercased().contains("content-type: application/json"))
                #expect(answer.closed)
            }
        }
    }

    @Test func idleConnectionsAreClosed() async throws {
        try await withBridge([try route()], server: { $0.idleTimeout = .milliseconds(300) }) { bridge in
            // Silent from the start.
            let silent = try RawConnection(port: bridge.port, receiveTimeout: .seconds(5))
            let start = ContinuousClock.now
            let silentAnswer = silent.receiveToClose()
            #expect(silentAnswer.closed && silentAnswer.text.isEmpty, "\(silentAnswer)")
            #expect(ContinuousClock.now - start < .seconds(3))

            // Idle after a request.
            let after = try RawConnection(port: bridge.port, receiveTimeout: .seconds(5))
            after.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            let answer = after.receiveToClose()
            #expect(answer.text.hasPrefix("HTTP/1.1 "), "\(answer.text.prefix(200))")
            #expect(answer.closed)

            let metrics = try await request("http://127.0.0.1:\(bridge.port)/metrics", method: .GET)
            #expect(metrics.body.contains("kbridge_connections_closed_total{reason=\"idle_timeout\"} "), "\(metrics.body)")
            #expect(!metrics.body.contains("kbridge_connections_closed_total{reason=\"idle_timeout\"} 0\n"))
        }
    }

    @Test func slowHeadsAndTrickledBodiesGet408() async throws {
        try await withBridge([try route()], server: { $0.requestReadTimeout = .seconds(1) }) { bridge in
            // Slowloris: a header byte every 100 ms, forever.
            let slowHead = try RawConnection(port: bridge.port, receiveTimeout: .milliseconds(100))
            let trickle = try RawConnection(port: bridge.port, receiveTimeout: .milliseconds(100))
            slowHead.send("POST /in/k HTTP/1.1\r\nHost: x\r\n")
            trickle.send("POST /in/k HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")
            let start = ContinuousClock.now
            var slowHeadAnswer = ""
            var trickleAnswer = ""
            var slowHeadClosed = false
            var trickleClosed = false
            while ContinuousClock.now - start < .seconds(6), !(slowHeadClosed && trickleClosed) {
                if !slowHeadClosed {
                    slowHead.send("X")
                    let read = slowHead.receiveToClose()
                    slowHeadAnswer += read.text
                    slowHeadClosed = read.closed
                }
                if !trickleClosed {
                    trickle.send("y")
                    let read = trickle.receiveToClose()
                    trickleAnswer += read.text
                    trickleClosed = read.closed
                }
            }
            let elapsed = ContinuousClock.now - start
            #expect(slowHeadClosed && trickleClosed, "still open after \(elapsed)")
            #expect(elapsed < .seconds(4), "closed after \(elapsed)")
            for answer in [slowHeadAnswer, trickleAnswer] {
                #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout"), "\(answer.prefix(300))")
                #expect(errorCode(answer) == "request_timeout")
            }
            let metrics = try await request("http://127.0.0.1:\(bridge.port)/metrics", method: .GET)
            #expect(metrics.body.contains("kbridge_connections_closed_total{reason=\"request_timeout\"} 2\n"), "\(metrics.body)")
        }
    }

    @Test func connectionsOverTheCapAreRefusedWith503() async throws {
        try await withBridge([try route()], server: { $0.maxConnections = 3 }) { bridge in
            var open = try (0..<3).map { _ in try RawConnection(port: bridge.port, receiveTimeout: .seconds(5)) }
            // Each of the three is served (they are counted by the time they answer).
            for connection in open {
                connection.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(connection.receive(until: "\"status\"").hasPrefix("HTTP/1.1 "))
            }
            let refused = try RawConnection(port: bridge.port, receiveTimeout: .seconds(5))
            let answer = refused.receiveToClose()
            #expect(answer.text.hasPrefix("HTTP/1.1 503 Service Unavailable"), "\(answer.text.prefix(300))")
            #expect(errorCode(answer.text) == "too_many_connections")
            #expect(answer.text.lowercased().contains("retry-after: 1"))
            #expect(answer.closed)

            open.removeFirst()  // closes one
            try await Task.sleep(for: .milliseconds(200))
            let metrics = try RawConnection(port: bridge.port)
            metrics.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let text = metrics.receiveToClose().text
            #expect(text.hasPrefix("HTTP/1.1 200 OK"), "\(text.prefix(300))")
            #expect(text.contains("kbridge_connections_closed_total{reason=\"max_connections\"} 1\n"), "\(text)")
            #expect(text.contains("kbridge_connections_open 3\n"), "\(text)")
        }
    }

    /// The issue's acceptance test, smaller for CI (scripts/testing/slowloris.py runs the full one):
    /// 200 slowloris connections and 200 idle ones do not keep a fresh client waiting.
    @Test func slowlorisConnectionsDoNotDelayOtherClients() async throws {
        try await withBridge([try route()], server: { _ in }) { bridge in
            let slow = try (0..<200).map { _ in try RawConnection(port: bridge.port) }
            let idle = try (0..<200).map { _ in try RawConnection(port: bridge.port) }
            for connection in slow { connection.send("POST /in/k HTTP/1.1\r\n") }
            var worst = Duration.zero
            let start = ContinuousClock.now
            while ContinuousClock.now - start < .seconds(5) {
                for connection in slow { connection.send("X") }
                let asked = ContinuousClock.now
                let fresh = try RawConnection(port: bridge.port)
                fresh.send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                let answer = fresh.receiveToClose().text
                worst = max(worst, ContinuousClock.now - asked)
                #expect(answer.hasPrefix("HTTP/1.1 "), "\(answer.prefix(200))")
                try await Task.sleep(for: .milliseconds(500))
            }
            // The issue's 100 ms is measured on a release build by scripts/testing/slowloris.py. A debug build running the
            // other suites in parallel on 2 shared cores has taken 0.57 s here; starvation (a loop held by the slow
            // connections, or a client queued behind them until their timeout) takes tens of seconds.
            #expect(worst < .seconds(3), "a fresh client waited \(worst)")
            _ = idle
        }
    }
}
