import Foundation
import JSON
import Secrets
import Synchronization
import TestSupport
import Testing
@testable import Workflow

/// request-callout's `$(...)` templates: what they read, and what they refuse.
@Suite struct CalloutTemplateTests {
    let context = CalloutContext(
        headers: [("X-Custom-URL", "http://a.test"), ("x-user", "ada"), ("Accept", "a"), ("accept", "b")],
        query: JSONObject([("user", .string("7")), ("flag", .null)]),
        callouts: ["auth": try! JSONParser.parse(Array(#"{"response": {"status": 200, "body": {"token": "t0k", "ids": [4, 5], "n": 3}}}"#.utf8))])

    func render(_ text: String) throws -> String { try CalloutTemplate(parsing: text).render(context) }

    @Test func pathsLiteralsAndOr() throws {
        #expect(try render("Bearer $(callouts.auth.response.body.token)") == "Bearer t0k")
        #expect(try render(#"$(callouts["auth"].response.body["ids"][2])"#) == "5")  // Lua's 1-based index
        #expect(try render("$(headers.x_user)/$(headers['X-USER'])/$(kong.request.get_header(\"x-custom-url\"))") == "ada/ada/http://a.test")
        #expect(try render("$(query_params.user)$(kong.request.get_query_arg('user'))") == "77")
        #expect(try render(#"$(headers.missing or query_params.nothing or "unknown")"#) == "unknown")
        #expect(try render("$(headers.accept)") == #"["a","b"]"#)  // a repeated header is a list
        #expect(try render("a $( callouts.auth.response.status ) b $(nil)c") == "a 200 b c")
        #expect(try render("no placeholders: $ and $x") == "no placeholders: $ and $x")
        #expect(try render(##"$("#1234!")"##) == "#1234!")  // Kong's escape for a value starting with # or $
        // A lone placeholder keeps the type of what it reads (body fields).
        #expect(try CalloutTemplate(parsing: "$(callouts.auth.response.body.n)").value(in: context) == .integer(3))
        #expect(try CalloutTemplate(parsing: "$(headers.nope)").value(in: context) == nil)
        #expect(try CalloutTemplate(parsing: "$(callouts.auth.x) and $(callouts.other.y)").referencedCallouts == ["auth", "other"])
    }

    @Test(arguments: [
        ("$((function() return 1 end)())", "is not supported"),
        ("$(kong.service.request.set_header('a', 'b'))", "is not supported"),
        ("$(headers.a .. headers.b)", "is not supported"),
        ("$(os.execute('rm -rf /'))", "'os' is not supported"),
        ("$(uri_captures.id)", "kbridge routes have no URI captures"),
        ("$(shared.token)", "kong.ctx.shared"),
        ("Bearer $(callouts.auth", "is not closed"),
        ("$(callouts)", "callouts.NAME"),
        ("$('open)", "is not closed"),
    ])
    func luaIsRefusedWithThePosition(template: String, reason: String) {
        do {
            _ = try CalloutTemplate(parsing: template)
            Issue.record("\(template) was accepted")
        } catch {
            #expect(error.description.contains(reason), "\(template): \(error)")
            #expect(error.description.hasPrefix("at offset "))
        }
    }

    @Test func hostileTemplatesAreBounded() {
        #expect(throws: CalloutTemplateError.self) { try CalloutTemplate(parsing: String(repeating: "x", count: 20_000)) }
        #expect(throws: CalloutTemplateError.self) { try CalloutTemplate(parsing: String(repeating: "$(nil)", count: 100)) }
        #expect(throws: CalloutTemplateError.self) { try CalloutTemplate(parsing: "$(" + Array(repeating: "nil", count: 40).joined(separator: " or ") + ")") }
        #expect(throws: CalloutTemplateError.self) { try CalloutTemplate(parsing: "$(headers" + String(repeating: ".a", count: 40) + ")") }
        #expect(throws: CalloutTemplateError.self) { try CalloutTemplate(parsing: "$(" + String(repeating: "(", count: 5000)) }
    }
}

/// request-callout configurations compiled onto the workflow engine, run against real local HTTP servers.
@Suite(.timeLimit(.minutes(2)))
struct RequestCalloutTests {
    static let services = WorkflowServices()

    func workflow(_ json: String, timeout: Duration = .seconds(30)) throws -> Workflow {
        try Workflow(try RequestCallout.definition(from: try JSONParser.parse(Array(json.utf8))), services: Self.services, defaultTimeout: timeout)
    }

    func problems(_ json: String) -> [String] {
        do {
            _ = try RequestCallout.definition(from: try JSONParser.parse(Array(json.utf8)))
            return []
        } catch let error as WorkflowConfigurationError {
            return error.issues.map { "\($0.path): \($0.reason)" }
        } catch {
            return ["\(error)"]
        }
    }

    func request(body: String = "", contentType: String? = nil, headers: [(name: String, value: String)] = [], query: JSONObject = JSONObject())
        -> WorkflowRequest
    {
        WorkflowRequest(method: "POST", path: "/in", query: query, headers: headers, body: Array(body.utf8), contentType: contentType, port: 8080,
                        requestID: "req-1")
    }

    func produced(_ flow: Workflow, _ request: WorkflowRequest) async throws -> WorkflowServiceRequest {
        let decision = try await flow.execution(for: request).runUntilProduce()
        guard case .produce(let serviceRequest) = decision else { throw TestFailure("expected a message, got \(decision)") }
        return serviceRequest
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test func startUpErrorsNameTheKeyAndTheReason() {
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test", "by_lua": "ngx.log(1)"}}]}"#)
            == ["callouts[0].request.by_lua: Lua code is not run by kbridge; remove by_lua"])
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test"}}], "upstream": {"by_lua": "kong.response.exit(200)"}}"#)
            == ["upstream.by_lua: Lua code is not run by kbridge; remove by_lua"])
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test"}, "depends_on": ["b"]}, {"name": "b", "request": {"url": "http://x.test"}, "depends_on": ["a"]}]}"#)
            .first?.contains("circular dependency") == true)
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test"}, "depends_on": ["aut"]}, {"name": "auth", "request": {"url": "http://x.test"}}]}"#)
            == ["callouts[0].depends_on[0]: unknown callout 'aut' (did you mean 'auth'?)"])
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test"}}, {"name": "a", "request": {"url": "http://y.test"}}]}"#)
            == ["callouts[1].name: callout names must be unique: 'a' is used twice"])
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "$(headers.target)"}}]}"#).first?
            .contains("callouts[0].request.url: a URL built from $(...) templates can reach any address") == true)
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test", "http_opts": {"timeouts": {"connect": 100}}}}]}"#)
            == ["callouts[0].request.http_opts.timeouts: all or none of connect, write and read must be set"])
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test", "headers": {"custom": {"X": "$(kong.client.get_ip())"}}}}]}"#)
            .first?.hasPrefix("callouts[0].request.headers.custom.X: at offset ") == true)
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test", "error": {"on_error": "ignore"}}}]}"#)
            == ["callouts[0].request.error.on_error: expected fail, retry or continue, found 'ignore'"])
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test"}}], "cache": {"strategy": "disk"}}"#)
            == ["cache.strategy: unknown strategy 'disk' (off, memory or redis)"])
        #expect(problems(#"{"callouts": []}"#) == ["callouts: expected a non-empty list of callouts"])
        #expect(problems(#"{"callouts": [{"name": "a", "request": {"url": "http://x.test", "body": {"custom": {"t": "$(callouts.bee.x)"}}}}]}"#)
            == ["callouts[0]: a template reads callouts.bee, which is not a callout"])
    }

    /// Kong's "auth header injection" example: a token callout (POST, JSON body of custom fields) whose token the
    /// upstream request carries.
    @Test func aTokenCalloutAuthorizesTheUpstreamRequest() async throws {
        let server = try await TestHTTPServer { _ in .json(#"{"access_token": "abc.def", "expires_in": 300}"#) }
        let flow = try workflow("""
        {"callouts": [{"name": "auth", "request": {"url": "\(server.url)/oauth/token", "method": "POST",
            "body": {"custom": {"grant_type": "client_credentials", "client_id": "kbridge", "audience": "https://api.test", "n": 3}}},
          "response": {"body": {"store": true, "decode": true}}}],
         "upstream": {"headers": {"custom": {"Authorization": "Bearer $(callouts.auth.response.body.access_token)"}}}}
        """)
        let message = try await produced(flow, request(body: #"{"order": 1}"#, contentType: "application/json", headers: [("Content-Type", "application/json")]))
        #expect(message.headers?.first { $0.name == "Authorization" }?.value == "Bearer abc.def")
        #expect(message.headers?.contains { $0.name == "Content-Type" && $0.value == "application/json" } == true)
        #expect(message.body == nil)  // the body is forwarded as it came
        let sent = try #require(server.requests.first)
        #expect(sent.method == "POST" && sent.uri == "/oauth/token")
        #expect(sent.header("content-type") == "application/json")
        #expect(sent.header("user-agent") == "kbridge/request-callout")
        #expect(try JSONParser.parse(sent.body) == (try JSONParser.parse(Array(#"{"grant_type":"client_credentials","client_id":"kbridge","audience":"https://api.test","n":3}"#.utf8))))
        await server.shutdown()
    }

    /// Kong's "orchestration" example: the second callout's query reads the first's response; the message gets both
    /// (kbridge's upstream is Kafka: what Kong's by_lua returned becomes the message body).
    @Test func aCalloutReadsAnEarlierOneAndTheMessageAggregatesBoth() async throws {
        let server = try await TestHTTPServer { request in
            request.uri.hasPrefix("/users/1") ? .json(#"{"id": 1, "name": "Leanne"}"#)
                : .json(#"[{"id": 1, "userId": 1, "title": "sunt"}, {"id": 2, "userId": 1, "title": "qui"}]"#)
        }
        let flow = try workflow("""
        {"callouts": [
          {"name": "c1", "request": {"url": "\(server.url)/users/1"}, "response": {"body": {"decode": true}}},
          {"name": "c2", "request": {"url": "\(server.url)/posts?userId=0&x=1", "query": {"custom": {"userId": "$(callouts.c1.response.body.id)"}}},
           "response": {"body": {"decode": true}}}],
         "upstream": {"body": {"custom": {"user": "$(callouts.c1.response.body)", "posts": "$(callouts.c2.response.body)",
                                          "status": "$(callouts.c2.response.status)", "order": null}}}}
        """)
        let message = try await produced(flow, request(body: #"{"order": 1, "kept": true}"#, contentType: "application/json"))
        let uris = server.requests.map(\.uri)
        #expect(uris == ["/users/1", "/posts?x=1&userId=1"])  // c2 waited for c1 (its template reads it); custom replaced userId
        let body = try JSONParser.parse(try #require(message.body?.bytes))
        #expect(try body == JSONParser.parse(Array("""
            {"kept": true, "user": {"id": 1, "name": "Leanne"}, "posts": [{"id": 1, "userId": 1, "title": "sunt"}, {"id": 2, "userId": 1, "title": "qui"}], "status": 200}
            """.utf8)))
        #expect(message.body?.contentType == "application/json")
        await server.shutdown()
    }

    @Test func independentCalloutsRunConcurrently() async throws {
        let arrivals = Mutex<[ContinuousClock.Instant]>([])
        let server = try await TestHTTPServer { _ in
            arrivals.withLock { $0.append(.now) }
            return .json(#"{"ok": true}"#, delay: .seconds(5))
        }
        let flow = try workflow("""
        {"callouts": [{"name": "a", "request": {"url": "\(server.url)/a"}}, {"name": "b", "request": {"url": "\(server.url)/b"}}]}
        """, timeout: .seconds(60))
        _ = try await produced(flow, request())
        let times = arrivals.withLock { $0 }
        #expect(times.count == 2)
        if times.count == 2 { #expect(times[1] - times[0] < .seconds(4), "the second callout was sent \(times[1] - times[0]) after the first") }
        await server.shutdown()
    }

    @Test func failAnswersWithTheConfiguredCodeAndMessage() async throws {
        let server = try await TestHTTPServer { _ in .json(#"{"error": "denied"}"#, status: 401) }
        let flow = try workflow("""
        {"callouts": [{"name": "check", "request": {"url": "\(server.url)/check", "error": {"http_statuses": [401, 403],
            "error_response_msg": "check failed for $(headers.x_user or 'anonymous')"}}}]}
        """)
        let decision = try await flow.execution(for: request(headers: [("X-User", "ada")])).runUntilProduce()
        guard case .exit(let response) = decision else { Issue.record("expected an answer, got \(decision)"); return }
        #expect(response.status == 400)
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"message":"check failed for ada"}"#)
        #expect(server.requests.count == 1)
        // A status not listed is not an error: the response is stored and the message produced.
        let lenient = try workflow("""
        {"callouts": [{"name": "check", "request": {"url": "\(server.url)/check"}}],
         "upstream": {"headers": {"custom": {"X-Check": "$(callouts.check.response.status)"}}}}
        """)
        let message = try await produced(lenient, request())
        #expect(message.headers?.first { $0.name == "X-Check" }?.value == "401")
        await server.shutdown()
    }

    @Test func retryThenFailAndContinue() async throws {
        let server = try await TestHTTPServer { _ in .json(#"{"error": "busy"}"#, status: 503) }
        let retried = try workflow("""
        {"callouts": [{"name": "flaky", "request": {"url": "\(server.url)/flaky", "error": {"on_error": "retry", "http_statuses": [500, 502, 503],
            "retries": 3, "error_response_code": 500, "error_response_msg": "internal server error"}}}]}
        """)
        let decision = try await retried.execution(for: request()).runUntilProduce()
        guard case .exit(let response) = decision else { Issue.record("expected an answer, got \(decision)"); return }
        #expect(response.status == 500 && String(decoding: response.body, as: UTF8.self) == #"{"message":"internal server error"}"#)
        #expect(server.requests.count == 4)  // the first try and 3 retries

        let continued = try workflow("""
        {"callouts": [{"name": "flaky", "request": {"url": "\(server.url)/flaky", "error": {"on_error": "continue", "http_statuses": [503]}}},
                      {"name": "down", "request": {"url": "http://127.0.0.1:9/", "error": {"on_error": "continue"}}}],
         "upstream": {"headers": {"custom": {"X-Flaky": "$(callouts.flaky.response.status)", "X-Down": "$(callouts.down.response.status or 'none')"}}}}
        """)
        let message = try await produced(continued, request())
        #expect(message.headers?.first { $0.name == "X-Flaky" }?.value == "503")
        #expect(message.headers?.first { $0.name == "X-Down" }?.value == "none")  // a network error stores no response
        await server.shutdown()
    }

    @Test func cachedCalloutsAreCalledOnceAndBypassSkipsTheCache() async throws {
        let counter = Mutex(0)
        let server = try await TestHTTPServer { _ in
            let count = counter.withLock { $0 += 1; return $0 }
            return .json(#"{"token": "t\#(count)"}"#)
        }
        let flow = try workflow("""
        {"cache": {"strategy": "memory", "cache_ttl": 60},
         "callouts": [{"name": "auth", "request": {"url": "\(server.url)/token"}, "response": {"body": {"decode": true}}},
                      {"name": "live", "request": {"url": "\(server.url)/live"}, "cache": {"bypass": true}}],
         "upstream": {"headers": {"custom": {"Authorization": "Bearer $(callouts.auth.response.body.token)"}}}}
        """)
        var tokens: [String?] = []
        for _ in 0..<3 { tokens.append(try await produced(flow, request()).headers?.first { $0.name == "Authorization" }?.value) }
        #expect(tokens == ["Bearer t1", "Bearer t1", "Bearer t1"] || tokens == ["Bearer t2", "Bearer t2", "Bearer t2"])
        #expect(server.requests.filter { $0.uri == "/token" }.count == 1)
        #expect(server.requests.filter { $0.uri == "/live" }.count == 3)
        await server.shutdown()
    }

    /// `cache.strategy: redis`: two compiled copies of the configuration (two kbridge processes) share the cached
    /// response; with Redis unreachable, the cache is a miss and the callout is made (Kong has no bypass_on_error).
    @Test func redisCachedCalloutsAreSharedAndAnOutageIsAMiss() async throws {
        guard let portText = ProcessInfo.processInfo.environment["KBRIDGE_TEST_REDIS_PORT"], let port = Int(portText) else {
            throw TestFailure("KBRIDGE_TEST_REDIS_PORT is not set: run the tests with scripts/test (it starts Redis)")
        }
        let counter = Mutex(0)
        let server = try await TestHTTPServer { _ in
            let count = counter.withLock { $0 += 1; return $0 }
            return .json(#"{"token": "t\#(count)"}"#)
        }
        let prefix = "kbridge-test-rc-\(UUID().uuidString.prefix(8)):"
        func configuration(port: Int) -> String {
            """
            {"cache": {"strategy": "redis", "cache_ttl": 60, "redis": {"host": "127.0.0.1", "port": \(port), "key_prefix": "\(prefix)",
                       "connect_timeout": 1000, "read_timeout": 1000, "send_timeout": 1000}},
             "callouts": [{"name": "auth", "request": {"url": "\(server.url)/token"}, "response": {"body": {"decode": true}}}],
             "upstream": {"headers": {"custom": {"Authorization": "Bearer $(callouts.auth.response.body.token)"}}}}
            """
        }
        let first = try workflow(configuration(port: port))
        let second = try workflow(configuration(port: port))
        var tokens: [String?] = []
        for flow in [first, second, first, second] {
            tokens.append(try await produced(flow, request()).headers?.first { $0.name == "Authorization" }?.value)
        }
        #expect(tokens == Array(repeating: "Bearer t1", count: 4))
        #expect(server.requests.count == 1)
        // Nothing listens on port 9: every lookup fails, so every request makes the callout, and still gets its token.
        let down = try workflow(configuration(port: 9))
        for _ in 0..<2 { #expect(try await produced(down, request()).headers?.first { $0.name == "Authorization" } != nil) }
        #expect(server.requests.count == 3)
        await server.shutdown()
    }

    @Test func forwardingAndUpstreamReplacement() async throws {
        let server = try await TestHTTPServer { _ in .json("{}") }
        let flow = try workflow("""
        {"callouts": [{"name": "echo", "request": {"url": "\(server.url)/echo", "method": "PUT",
            "headers": {"forward": true, "custom": {"X-Drop": null, "X-Added": "yes"}}, "query": {"forward": true}, "body": {"forward": true}}}],
         "upstream": {"headers": {"forward": false, "custom": {"X-Only": "1"}}, "query": {"forward": false, "custom": {"q": "$(query_params.q)"}},
                      "body": {"forward": false}}}
        """)
        let message = try await produced(flow, request(body: "plain text", contentType: "text/plain",
                                                        headers: [("Host", "client.test"), ("X-Drop", "x"), ("X-Keep", "k"), ("Content-Type", "text/plain")],
                                                        query: JSONObject([("q", .string("a b")), ("r", .string("2"))])))
        let sent = try #require(server.requests.first)
        #expect(sent.method == "PUT")
        #expect(sent.uri == "/echo?q=a%20b&r=2" || sent.uri == "/echo?q=a+b&r=2")
        #expect(sent.header("x-keep") == "k" && sent.header("x-drop") == nil && sent.header("x-added") == "yes")
        #expect(sent.header("host") != "client.test")
        #expect(sent.bodyText == "plain text")
        // Upstream: every client header removed (null), one added; the query replaced; the body emptied.
        let headers = try #require(message.headers)
        #expect(headers.map(\.name) == ["X-Only"])
        #expect(message.query?.map(\.name) == ["q"] && message.query?.first?.value == "a b")
        #expect(message.body?.bytes == [])
        await server.shutdown()
    }

    @Test func aURLFromTemplatesMustPassTheDestinationPolicy() async throws {
        let server = try await TestHTTPServer { _ in .json("{}") }
        let flow = try workflow("""
        {"call_allowed_hosts": ["127.0.0.1"],
         "callouts": [{"name": "dyn", "request": {"url": "$(headers.x_target)/x"}}]}
        """)
        _ = try await produced(flow, request(headers: [("X-Target", server.url)]))
        #expect(server.requests.count == 1)
        // Kong answers an invalid dynamic URL with a 500: here the node fails (the workflow's error answer).
        do {
            let decision = try await flow.execution(for: request(headers: [("X-Target", "http://169.254.169.254")])).runUntilProduce()
            Issue.record("expected a refusal, got \(decision)")
        } catch {
            #expect("\(error)".contains("callout dyn:") && "\(error)".contains("169.254.169.254"), "\(error)")
        }
        #expect(server.requests.count == 1)
        await server.shutdown()
    }
}
