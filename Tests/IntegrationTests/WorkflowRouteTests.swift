import Bridge
import Foundation
import Kafka
import NIOHTTP1
import SchemaRegistry
import TestSupport
import Testing

/// Routes with a `workflow:` (Kong Datakit configurations pasted as they are), end to end: YAML → a real bridge →
/// local HTTP servers in place of the internet APIs → the real broker, whose messages are read back.
@Suite(.timeLimit(.minutes(3)))
struct WorkflowRouteTests {
    @Test func authenticateThirdPartyInjectsTheTokenIntoTheMessage() async throws {
        let tokens = try await TestHTTPServer { _ in .json(#"{"token_type":"Bearer","access_token":"tok-123"}"#) }
        let topic = uniqueTopic("wf-auth")
        let yaml = """
        routes:
          - path: /orders
            topic: \(topic)
            bootstrap_servers: BROKER
            forward_headers: true
            workflow:
              nodes:
                - name: STATIC_INPUTS
                  type: static
                  values:
                    headers:
                      Content-Type: application/x-www-form-urlencoded
                    body:
                      grant_type: client_credentials
                      client_id: my_client_id
                - name: BUILD_HEADERS
                  type: jq
                  inputs:
                    headers: STATIC_INPUTS.headers
                    query: request.query
                  jq: '.headers * { "X-Api-Key": (.query.api_key // "none") }'
                - name: AUTH_REQUEST
                  type: call
                  method: POST
                  url: \(tokens.url)/auth-token
                  inputs:
                    headers: BUILD_HEADERS
                    body: STATIC_INPUTS.body
                - name: UPSTREAM_AUTH_HEADER
                  type: jq
                  input: AUTH_REQUEST.body
                  output: service_request.headers
                  jq: '{ Authorization: (.token_type + " " + .access_token) }'
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/orders?api_key=k-9", body: #"{"id":1}"#, headers: [("content-type", "application/json")])
            #expect(answer.status == .ok, "\(answer.body)")
            #expect(answer.json["message"] as? String == "message sent")
        }
        let call = try #require(tokens.requests.first)
        #expect(call.method == "POST")
        #expect(call.bodyText == "grant_type=client_credentials&client_id=my_client_id")
        #expect(call.header("x-api-key") == "k-9")
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        let headers = try #require(message.json["headers"] as? [String: Any])
        // Kong's envelope names headers in lower case, as nginx reads them.
        #expect(headers["authorization"] as? String == "Bearer tok-123", "\(message.json)")
        #expect(message.json["body"] as? String == #"{"id":1}"#)
        await tokens.shutdown()
    }

    @Test func combineTwoAPIsAnswersWithoutProducing() async throws {
        let api = try await TestHTTPServer { request in
            request.uri == "/json" ? .json(#"{"slideshow":{"author":"Yours Truly"}}"#, delay: .milliseconds(200))
                : .json(#"{"uuid":"u-1"}"#, delay: .milliseconds(200))
        }
        let yaml = """
        routes:
          - path: /combined
            topic: \(uniqueTopic("wf-exit"))
            bootstrap_servers: BROKER
            workflow:
              nodes:
                - {name: AUTHOR, type: call, url: "\(api.url)/json"}
                - {name: UUID, type: call, url: "\(api.url)/uuid"}
                - name: JOIN
                  type: jq
                  inputs: {input1: AUTHOR.body, input2: UUID.body}
                  jq: '{ author: .input1.slideshow.author, uuid: .input2.uuid }'
                - {name: EXIT, type: exit, inputs: {body: JOIN}, status: 201}
        """
        try await withYAMLBridge(yaml) { base, bridge in
            let answer = try await request("\(base)/combined", body: "x")
            #expect(answer.status == .created)
            #expect(answer.json["author"] as? String == "Yours Truly")
            #expect(answer.json["uuid"] as? String == "u-1")
            #expect(answer.headers.first(name: "content-type") == "application/json")
            #expect(bridge.statistics.enqueued == 0)
        }
        await api.shutdown()
    }

    @Test func propertiesRouteTopicsKeysAndRecordHeaders() async throws {
        let eu = uniqueTopic("wf-eu")
        let audit = uniqueTopic("wf-audit")
        let yaml = """
        routes:
          - path: /events
            topic: \(uniqueTopic("wf-default"))
            allowed_topics: [\(eu), \(audit)]
            bootstrap_servers: BROKER
            workflow:
              nodes:
                - name: TOPICS
                  type: jq
                  input: request.body
                  jq: '[.target, "\(audit)"]'
                  output: SET_TOPIC
                - {name: SET_TOPIC, type: property, property: kafka.topic}
                - name: KEY
                  type: jq
                  input: request.body
                  jq: .customer
                  output: SET_KEY
                - {name: SET_KEY, type: property, property: kafka.key}
                - name: HEADERS
                  type: jq
                  input: request.body
                  jq: '{"x-region": .region, "x-tenant": ["a", "b"]}'
                  output: SET_HEADERS
                - {name: SET_HEADERS, type: property, property: kafka.headers}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/events", body: #"{"target":"\#(eu)","region":"EU","customer":"c-7"}"#,
                                           headers: [("content-type", "application/json")])
            #expect(answer.status == .ok, "\(answer.body)")
            let refused = try await request("\(base)/events", body: #"{"target":"elsewhere","region":"US","customer":"c-8"}"#,
                                            headers: [("content-type", "application/json")])
            #expect(refused.status == .forbidden, "\(refused.body)")
            #expect(refused.json["code"] as? String == "topic_not_allowed")
        }
        for topic in [eu, audit] {
            let message = try #require(try await readTopic(topic, minimumCount: 1).first)
            #expect(message.keyString == "c-7")
            #expect(message.headers.map { "\($0.name)=\(String(decoding: $0.value ?? [], as: UTF8.self))" } == ["x-region=EU", "x-tenant=a", "x-tenant=b"])
        }
    }

    @Test func aFailedNodeAnswersAsKongDoesAndProducesNothing() async throws {
        let api = try await TestHTTPServer { _ in .json(#"{"error":"forbidden"}"#, status: 403) }
        for debug in [false, true] {
            let yaml = """
            routes:
              - path: /guarded
                topic: \(uniqueTopic("wf-fail"))
                bootstrap_servers: BROKER
                workflow:
                  debug: \(debug)
                  nodes:
                    - {name: API, type: call, url: "\(api.url)/check"}
                    - {name: BODY, type: jq, input: API.body, jq: ., output: service_request.body}
            """
            try await withYAMLBridge(yaml) { base, bridge in
                let answer = try await request("\(base)/guarded", body: "x")
                #expect(answer.status == .internalServerError)
                #expect(answer.json["code"] as? String == "workflow_node_failed")
                #expect((answer.json["request_id"] as? String)?.count == 32)
                if debug {
                    #expect(answer.json["message"] as? String == "node execution error")
                    #expect(answer.json["error"] as? String == "non-2XX response code: 403")
                    let node = try #require(answer.json["node"] as? [String: Any])
                    #expect(node["index"] as? Int == 1)
                    #expect(node["name"] as? String == "API")
                    #expect(node["type"] as? String == "call")
                } else {
                    #expect(answer.json["message"] as? String == "An unexpected error occurred")
                    #expect(answer.json["error"] == nil)
                }
                #expect(bridge.statistics.enqueued == 0)
            }
        }
        await api.shutdown()
    }

    @Test func theDebugTraceReplacesTheBodyOnlyWhenAsked() async throws {
        let topic = uniqueTopic("wf-trace")
        let yaml = """
        routes:
          - path: /traced
            topic: \(topic)
            bootstrap_servers: BROKER
            workflow:
              debug: true
              nodes:
                - {name: UPPER, type: jq, input: request.body, jq: ascii_upcase, output: service_request.body}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let plain = try await request("\(base)/traced", body: "hello", headers: [("content-type", "text/plain")])
            #expect(plain.json["message"] as? String == "message sent")
            let traced = try await request("\(base)/traced", body: "again",
                                           headers: [("content-type", "text/plain"), ("X-DataKit-Debug-Trace", "on"), ("Authorization", "Bearer zzz")])
            #expect(traced.status == .ok)
            #expect(traced.json["status"] as? String == "PLAN_COMPLETE", "\(traced.body)")
            let nodes = try #require(traced.json["nodes"] as? [[String: Any]])
            #expect(nodes.contains { $0["name"] as? String == "UPPER" && $0["status"] as? String == "NODE_COMPLETE" })
            #expect(traced.json["events"] is [[String: Any]])
            #expect(!traced.body.contains("zzz"))
        }
        let bodies = try await readTopic(topic, minimumCount: 2).compactMap { $0.json["body"] as? String }
        #expect(bodies.sorted() == ["AGAIN", "HELLO"])  // one message each, in whichever partitions
    }

    @Test func aCallAfterProducingGetsTheDeliveriesAndShapesTheAnswer() async throws {
        let hook = try await TestHTTPServer { _ in .json(#"{"received":true}"#) }
        let topic = uniqueTopic("wf-post")
        let yaml = """
        routes:
          - path: /notify
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async: false
            workflow:
              nodes:
                - {name: NOTIFY, type: call, method: POST, url: "\(hook.url)/hook", inputs: {body: service_response.body}}
                - name: ANSWER
                  type: jq
                  inputs: {hook: NOTIFY.body, kafka: service_response.body}
                  jq: '{notified: .hook.received, topic: .kafka.deliveries[0].topic, offset: .kafka.deliveries[0].offset}'
                  output: response.body
                - {name: STATUS, type: static, values: {code: 202}, outputs: {code: SET_STATUS}}
                - {name: SET_STATUS, type: property, property: kafka.response.status}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/notify", body: "event")
            #expect(answer.status == .accepted, "\(answer.body)")
            #expect(answer.json["notified"] as? Bool == true)
            #expect(answer.json["topic"] as? String == topic)
            #expect(answer.json["offset"] as? Int == 0)
        }
        let sent = try #require(hook.requests.first)
        let delivered = try #require(try JSONSerialization.jsonObject(with: Data(sent.body)) as? [String: Any])
        let delivery = try #require((delivered["deliveries"] as? [[String: Any]])?.first)
        #expect(delivery["topic"] as? String == topic)
        #expect(delivery["partition"] is Int)
        #expect(delivery["offset"] as? Int == 0)
        #expect(try await readTopic(topic, minimumCount: 1).count == 1)
        await hook.shutdown()
    }

    @Test func theDeadlineAnswers504NamingThePendingNodes() async throws {
        let slow = try await TestHTTPServer { _ in .json("{}", delay: .seconds(60)) }
        let yaml = """
        routes:
          - path: /slow
            topic: \(uniqueTopic("wf-slow"))
            bootstrap_servers: BROKER
            workflow:
              timeout: 300
              nodes:
                - {name: SLOW_API, type: call, url: "\(slow.url)/slow"}
        """
        try await withYAMLBridge(yaml) { base, bridge in
            let start = ContinuousClock.now
            let answer = try await request("\(base)/slow", body: "x")
            #expect(ContinuousClock.now - start < .seconds(30))  // far below the slow server's 60 s
            #expect(answer.status == .gatewayTimeout)
            #expect(answer.json["code"] as? String == "workflow_timeout")
            #expect(answer.json["pending"] as? [String] == ["SLOW_API"])
            #expect(bridge.statistics.enqueued == 0)
        }
        await slow.shutdown()
    }

    @Test func aSchemaRouteValidatesWhatTheWorkflowBuilt() async throws {
        let registry = try await FakeSchemaRegistry()
        let topic = uniqueTopic("wf-sr")
        registry.register(subject: "\(topic)-value", schema: #"{"type":"object","required":["total"],"properties":{"total":{"type":"integer"}}}"#,
                          schemaType: "JSON")
        let yaml = """
        routes:
          - path: /cart
            topic: \(topic)
            bootstrap_servers: BROKER
            schema_registry:
              confluent:
                url: \(registry.url)
                value_schema: {subject_name: \(topic)-value}
            workflow:
              nodes:
                - {name: TOTAL, type: jq, input: request.body, jq: '{total: (.items | map(.price) | add)}', output: service_request.body}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/cart", body: #"{"items":[{"price":2},{"price":3}]}"#, headers: [("content-type", "application/json")])
            #expect(answer.status == .ok, "\(answer.body)")
            let invalid = try await request("\(base)/cart", body: #"{"items":[{"price":"2"}]}"#, headers: [("content-type", "application/json")])
            #expect(invalid.status == .badRequest, "\(invalid.body)")
            #expect(invalid.body.contains("total"), "\(invalid.body)")
        }
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        #expect(String(decoding: message.value.dropFirst(5), as: UTF8.self) == #"{"total":5}"#)
        try await registry.shutdown()
    }

    @Test func anXMLServiceBehindAJSONRoute() async throws {
        // The client speaks JSON; the pricing service speaks XML; the message carries JSON again.
        let pricing = try await TestHTTPServer { request in
            let sku = request.bodyText.contains("<sku>B-2</sku>") ? "B-2" : "?"
            return TestHTTPServer.Response(status: 200, headers: [("Content-Type", "application/xml")],
                                           body: #"<?xml version="1.0"?><quote currency="EUR"><sku>\#(sku)</sku><price>12.50</price></quote>"#)
        }
        let topic = uniqueTopic("wf-xml")
        let yaml = """
        routes:
          - path: /quotes
            topic: \(topic)
            bootstrap_servers: BROKER
            producer_async: false
            workflow:
              nodes:
                - {name: TO_XML, type: json_to_xml, input: request.body, root_element_name: request}
                - name: HEADERS
                  type: static
                  values: {headers: {Content-Type: application/xml}}
                - {name: PRICE, type: call, method: POST, url: "\(pricing.url)/price", inputs: {body: TO_XML, headers: HEADERS.headers}}
                - {name: TO_JSON, type: xml_to_json, input: PRICE.body, output: service_request.body}
        """
        try await withYAMLBridge(yaml) { base, _ in
            let answer = try await request("\(base)/quotes", body: #"{"sku":"B-2","qty":3}"#, headers: [("content-type", "application/json")])
            #expect(answer.status == .ok, "\(answer.body)")
        }
        let sent = try #require(pricing.requests.first)
        #expect(sent.header("content-type") == "application/xml")
        #expect(sent.bodyText.hasSuffix("<request><sku>B-2</sku><qty>3</qty></request>"), "\(sent.bodyText)")
        let message = try #require(try await readTopic(topic, minimumCount: 1).first)
        let body = try #require(message.json["body"] as? String)
        #expect(body == ##"{"quote":{"@currency":"EUR","sku":"B-2","price":12.50}}"##)
        await pricing.shutdown()
    }

    @Test func aCachedTokenCalloutCallsTheTokenServiceOnce() async throws {
        let tokens = try await TestHTTPServer { _ in .json(#"{"access_token":"tok-9"}"#) }
        let topic = uniqueTopic("wf-cache")
        let yaml = """
        routes:
          - path: /cached
            topic: \(topic)
            bootstrap_servers: BROKER
            forward_headers: true
            workflow:
              resources:
                cache: {strategy: memory}
              nodes:
                - {name: KEY, type: static, values: {key: upstream-token}}
                - {name: CACHED, type: cache, inputs: {key: KEY.key}}
                - {name: CHECK, type: branch, input: CACHED.hit, else: [FETCH, STORE]}
                - {name: FETCH, type: call, url: "\(tokens.url)/token"}
                - {name: STORE, type: cache, inputs: {key: KEY.key, data: FETCH.body}, ttl: 300}
                - name: HEADER
                  type: jq
                  inputs: {cached: CACHED.data, fetched: FETCH.body}
                  jq: '{Authorization: ("Bearer " + (.cached // .fetched).access_token)}'
                  output: service_request.headers
        """
        try await withYAMLBridge(yaml) { base, _ in
            for index in 0..<3 {
                let answer = try await request("\(base)/cached", body: "event-\(index)", headers: [("content-type", "text/plain")])
                #expect(answer.status == .ok, "\(answer.body)")
            }
        }
        #expect(tokens.requests.count == 1)
        let messages = try await readTopic(topic, minimumCount: 3)
        #expect(messages.count == 3)
        #expect(messages.allSatisfy { ($0.json["headers"] as? [String: Any])?["authorization"] as? String == "Bearer tok-9" })
        await tokens.shutdown()
    }

    @Test func configurationErrorsNameFileLineColumnAndKey() throws {
        let yaml = """
        routes:
          - path: /x
            topic: t
            bootstrap_servers: 127.0.0.1:9092
            workflow:
              nodes:
                - {name: A, type: jq, jq: .}
                - name: B
                  type: exit
                  inputs:
                    body: NOPE.body
        """
        do {
            _ = try BridgeConfiguration.parse(yaml: yaml, file: "kbridge.yaml")
            Issue.record("expected a configuration error")
        } catch {
            #expect("\(error)".contains("kbridge.yaml:11:"), "\(error)")
            #expect("\(error)".contains("routes[0].workflow.nodes[1].inputs.body: unknown node in link: NOPE"), "\(error)")
        }
    }

    @Test func metricsCountRunsAndNodes() async throws {
        let yaml = """
        routes:
          - path: /m
            name: metered
            topic: \(uniqueTopic("wf-metrics"))
            bootstrap_servers: BROKER
            workflow:
              nodes:
                - {name: J, type: jq, input: request.body, jq: ., output: service_request.body}
        """
        try await withYAMLBridge(yaml) { base, _ in
            _ = try await request("\(base)/m", body: "1", headers: [("content-type", "application/json")])
            let metrics = try await request("\(base)/metrics", method: .GET)
            #expect(metrics.body.contains(#"kbridge_workflow_runs_total{route="metered",outcome="produced"} 1"#), "\(metrics.body)")
            #expect(metrics.body.contains(#"kbridge_workflow_node_runs_total{route="metered",node="J",type="jq",outcome="complete"} 1"#))
            #expect(metrics.body.contains(#"kbridge_workflow_node_seconds_count{route="metered",node="J",type="jq"} 1"#))
        }
    }
}
