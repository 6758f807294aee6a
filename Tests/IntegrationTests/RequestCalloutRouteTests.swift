import Bridge
import Foundation
import Kafka
import NIOHTTP1
import TestSupport
import Testing

/// Routes with a `request_callout:` (Kong request-callout configurations: the blog's and the docs' examples), end to
/// end: YAML → a real bridge → local HTTP servers in place of the token and data APIs → the real broker, whose
/// messages are read back.
@Suite(.timeLimit(.minutes(3)))
struct RequestCalloutRouteTests {
    /// The blog's "auth header injection": a token callout whose URL and client secret come from Kong's env vault,
    /// cached (strategy memory), and the token in the produced message's headers.
    @Test func aCachedTokenCalloutAuthorizesEveryMessage() async throws {
        let tokens = try await TestHTTPServer { _ in .json(#"{"access_token":"tok-123","expires_in":300}"#) }
        let topic = uniqueTopic("rc-auth")
        let yaml = """
        routes:
          - path: /orders
            topic: \(topic)
            bootstrap_servers: BROKER
            forward_headers: true
            request_callout:
              cache:
                strategy: memory
                cache_ttl: 60
              callouts:
                - name: auth
                  request:
                    url: "{vault://env/TOKEN_URL}"
                    method: POST
                    body:
                      custom:
                        grant_type: client_credentials
                        client_id: kbridge
                        client_secret: "{vault://env/CLIENT_SECRET}"
                  response:
                    body:
                      store: true
                      decode: true
              upstream:
                headers:
                  custom:
                    Authorization: Bearer $(callouts.auth.response.body.access_token)
        """
        try await withYAMLBridge(yaml, environment: ["TOKEN_URL": "\(tokens.url)/oauth/token", "CLIENT_SECRET": "s3cret"]) { base, _ in
            for id in 1...3 {
                let answer = try await request("\(base)/orders", body: #"{"id":\#(id)}"#, headers: [("content-type", "application/json")])
                #expect(answer.status == .ok, "\(answer.body)")
            }
        }
        #expect(tokens.requests.count == 1, "the token was fetched \(tokens.requests.count) times")
        let call = try #require(tokens.requests.first)
        #expect(call.method == "POST" && call.uri == "/oauth/token")
        #expect(call.bodyText.contains(#""client_secret":"s3cret""#), "\(call.bodyText)")
        let messages = try await readTopic(topic, minimumCount: 3)
        #expect(messages.count == 3)
        for message in messages {
            let headers = try #require(message.json["headers"] as? [String: Any])
            #expect(headers["authorization"] as? String == "Bearer tok-123", "\(message.json)")
        }
        await tokens.shutdown()
    }

    /// The blog's "aggregation" and "orchestration", with Kafka as the upstream: the second callout reads the
    /// first's response, and the message body is the combination Kong's by_lua returned.
    @Test func aggregatedCalloutResultsBecomeTheMessage() async throws {
        let api = try await TestHTTPServer { request in
            request.uri.hasPrefix("/users/1") ? .json(#"{"id":1,"name":"Leanne Graham"}"#) : .json(#"[{"id":1,"userId":1,"title":"sunt"}]"#)
        }
        let topic = uniqueTopic("rc-orchestrate")
        let yaml = """
        routes:
          - path: /profile
            topic: \(topic)
            bootstrap_servers: BROKER
            forward_headers: false
            request_callout:
              callouts:
                - name: c1
                  request:
                    url: \(api.url)/users/1
                  response:
                    body:
                      decode: true
                - name: c2
                  request:
                    url: \(api.url)/posts
                    query:
                      custom:
                        userId: $(callouts.c1.response.body.id)
                  response:
                    body:
                      decode: true
              upstream:
                body:
                  custom:
                    user: $(callouts.c1.response.body)
                    posts: $(callouts.c2.response.body)
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/profile", body: "", headers: [])
            #expect(answer.status == .ok, "\(answer.body)")
        }
        #expect(api.requests.map(\.uri) == ["/users/1", "/posts?userId=1"])
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        let body = try #require(message.json["body"] as? String)
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect((decoded["user"] as? [String: Any])?["name"] as? String == "Leanne Graham", "\(body)")
        #expect((decoded["posts"] as? [[String: Any]])?.first?["title"] as? String == "sunt", "\(body)")
        await api.shutdown()
    }

    /// kong-spec §C4's retry example: a failing service is retried, then the client gets the configured answer and
    /// nothing is produced.
    @Test func aFailingCalloutIsRetriedThenAnsweredWithTheConfiguredErrorAndNothingIsProduced() async throws {
        let api = try await TestHTTPServer { _ in .json(#"{"error":"unavailable"}"#, status: 503) }
        let topic = uniqueTopic("rc-retry")
        let yaml = """
        routes:
          - path: /in
            topic: \(topic)
            bootstrap_servers: BROKER
            request_callout:
              callouts:
                - name: check
                  request:
                    url: \(api.url)/check
                    error:
                      on_error: retry
                      http_statuses: [500, 502, 503]
                      retries: 3
                      error_response_code: 500
                      error_response_msg: internal server error
          - path: /sentinel
            topic: \(topic)
            bootstrap_servers: BROKER
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/in", body: #"{"refused":true}"#, headers: [("content-type", "application/json")])
            #expect(answer.status == .internalServerError)
            #expect(answer.json["message"] as? String == "internal server error", "\(answer.body)")
            // A message after it on the same topic: had the refused request been produced, it would come first.
            let sentinel = try await request("\(base)/sentinel", body: #"{"sentinel":true}"#, headers: [("content-type", "application/json")])
            #expect(sentinel.status == .ok)
        }
        #expect(api.requests.count == 4)
        let messages = try await readTopic(topic, minimumCount: 1)
        #expect(messages.map { $0.json["body"] as? String } == [#"{"sentinel":true}"#])
        await api.shutdown()
    }

    @Test func luaAndBothFormsOnOneRouteAreRefusedAtStartUp() throws {
        let yaml = """
        routes:
          - path: /in
            topic: t
            bootstrap_servers: [k:1]
            request_callout:
              callouts:
                - name: c1
                  request: {url: "http://api.test/x", by_lua: "kong.log('x')"}
              upstream:
                by_lua: kong.response.exit(200)
          - path: /both
            topic: t
            bootstrap_servers: [k:1]
            workflow: {nodes: [{name: S, type: static, values: {a: 1}}]}
            request_callout: {callouts: [{name: c1, request: {url: "http://api.test/x"}}]}
        """
        do {
            _ = try BridgeConfiguration.parse(yaml: yaml, file: "kbridge.yaml")
            Issue.record("accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains { $0.contains("routes[0].request_callout.callouts[0].request.by_lua: Lua code is not run by kbridge") }, "\(text)")
            #expect(text.contains { $0.contains("routes[0].request_callout.upstream.by_lua") }, "\(text)")
            #expect(text.contains { $0.contains("routes[1].request_callout: a route has either a workflow or a request_callout") }, "\(text)")
            #expect(text.allSatisfy { $0.hasPrefix("kbridge.yaml:") }, "\(text)")
        }
    }
}
