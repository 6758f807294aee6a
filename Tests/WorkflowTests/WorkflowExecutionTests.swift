import Foundation
import JSON
import Secrets
import TestSupport
import Synchronization
import Testing
@testable import Workflow

/// Runs of compiled workflows against real local HTTP servers and the real libjq: concurrency, cancellation, the
/// deadline, branches, properties, and the trace.
@Suite(.timeLimit(.minutes(2)))
struct WorkflowExecutionTests {
    static let services = WorkflowServices()

    /// The deadline is far from what any run here takes, so that a loaded machine (other suites of this process share its
    /// 2 cores) cannot turn a slow run into a timeout; the deadline tests set their own.
    func workflow(_ json: String, vault: [(name: String, secret: Secret)] = [], timeout: Duration = .seconds(60)) throws -> Workflow {
        var text = json
        let value = try text.withUTF8 { try JSONParser.parse(UnsafeRawBufferPointer($0)) }
        return try Workflow(try WorkflowDefinition.parse(value, vault: vault), services: Self.services, defaultTimeout: timeout)
    }

    func request(body: String = "", contentType: String? = nil, headers: [(name: String, value: String)] = [], query: JSONObject = JSONObject())
        -> WorkflowRequest
    {
        WorkflowRequest(method: "POST", path: "/in", query: query, headers: headers, body: Array(body.utf8), contentType: contentType, port: 8080,
                        clientIP: "127.0.0.1", clientPort: 5555, routeName: "test", requestID: "req-1", defaultTopic: "default-topic")
    }

    func json(_ bytes: [UInt8]) throws -> JSONValue { try bytes.withUnsafeBytes { try JSONParser.parse($0) } }

    @Test func combineTwoAPIsIntoOneResponse() async throws {
        let server = try await TestHTTPServer { request in
            request.uri == "/json" ? .json(#"{"slideshow":{"author":"Yours Truly"}}"#) : .json(#"{"uuid":"7f4e"}"#)
        }
        let flow = try workflow("""
        {"nodes": [
          {"name": "AUTHOR", "type": "call", "url": "\(server.url)/json"},
          {"name": "UUID", "type": "call", "url": "\(server.url)/uuid"},
          {"name": "JOIN", "type": "jq", "inputs": {"input1": "AUTHOR.body", "input2": "UUID.body"},
           "jq": "{ author: .input1.slideshow.author, uuid: .input2.uuid }"},
          {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}, "status": 200}]}
        """)
        let decision = try await flow.execution(for: request()).runUntilProduce()
        guard case .exit(let response) = decision else { Issue.record("expected an exit, got \(decision)"); return }
        #expect(response.status == 200)
        #expect(response.contentType == "application/json")
        #expect(try json(response.body) == .object(JSONObject([("author", .string("Yours Truly")), ("uuid", .string("7f4e"))])))
        await server.shutdown()
    }

    @Test func independentCallsRunConcurrently() async throws {
        // Load-independent evidence: each answer waits 5 s, so if both requests reach the server within 4 s of each
        // other, the second was sent before the first was answered (a sequential run would be 5 s apart or more).
        let arrivals = Mutex<[ContinuousClock.Instant]>([])
        let server = try await TestHTTPServer { _ in
            arrivals.withLock { $0.append(.now) }
            return .json(#"{"ok":true}"#, delay: .seconds(5))
        }
        let flow = try workflow("""
        {"nodes": [
          {"name": "A", "type": "call", "url": "\(server.url)/a"},
          {"name": "B", "type": "call", "url": "\(server.url)/b"},
          {"name": "J", "type": "jq", "inputs": {"a": "A.body", "b": "B.body"}, "jq": ".a.ok and .b.ok"},
          {"name": "E", "type": "exit", "inputs": {"body": "J"}}]}
        """, timeout: .seconds(60))  // a deadline far from the 5 s answers, so a loaded machine cannot fail this
        let decision = try await flow.execution(for: request()).runUntilProduce()
        guard case .exit(let response) = decision else { Issue.record("expected an exit"); return }
        #expect(String(decoding: response.body, as: UTF8.self) == "true")
        let times = arrivals.withLock { $0 }
        #expect(times.count == 2)
        if times.count == 2 { #expect(times[1] - times[0] < .seconds(4), "the second call was sent \(times[1] - times[0]) after the first") }
        await server.shutdown()
    }

    @Test func theFirstFailureCancelsTheNodesStillRunning() async throws {
        let server = try await TestHTTPServer { request in
            request.uri == "/fail" ? .json(#"{"error":"no"}"#, status: 403) : .json("{}", delay: .seconds(60))
        }
        let flow = try workflow("""
        {"nodes": [
          {"name": "API", "type": "call", "url": "\(server.url)/fail"},
          {"name": "SLOW_API", "type": "call", "url": "\(server.url)/slow"}]}
        """)
        let execution = flow.execution(for: request())
        let start = ContinuousClock.now
        await #expect(throws: WorkflowFailure.self) { try await execution.runUntilProduce() }
        // Far below the slow server's 60 s, whatever the machine's load: the proof is that nobody waited for it.
        #expect(ContinuousClock.now - start < .seconds(30))
        let trace = try json(await execution.traceJSON())
        #expect(trace["status"] == .string("PLAN_ERROR"))
        let nodes = try #require(trace["nodes"]?.arrayValue)
        #expect(nodes.contains { $0["name"] == .string("API") && $0["status"] == .string("NODE_ERROR")
            && $0["error"] == .string("non-2XX response code: 403") })
        #expect(nodes.contains { $0["name"] == .string("SLOW_API") && $0["status"] == .string("NODE_CANCELED") })
        let events = try #require(trace["events"]?.arrayValue)
        let fail = try #require(events.first { $0["action"] == .string("fail") })
        #expect(fail["values"]?.arrayValue?.contains { $0["key"] == .string("status") && $0["value"] == .integer(403) } == true, "\(fail)")
        await server.shutdown()
    }

    @Test func theDeadlineNamesThePendingNodes() async throws {
        let server = try await TestHTTPServer { _ in .json("{}", delay: .seconds(60)) }
        let flow = try workflow("""
        {"timeout": 300, "nodes": [{"name": "SLOW", "type": "call", "url": "\(server.url)/slow"},
                                   {"name": "AFTER", "type": "jq", "input": "SLOW.body", "jq": "."}]}
        """)
        let start = ContinuousClock.now
        do {
            _ = try await flow.execution(for: request()).runUntilProduce()
            Issue.record("expected the deadline")
        } catch {
            guard case .timedOut(let pending, _) = error else { Issue.record("expected a timeout, got \(error)"); return }
            #expect(pending == ["SLOW", "AFTER"])
        }
        // Far below the slow server's 60 s, whatever the machine's load: the proof is that nobody waited for it.
        #expect(ContinuousClock.now - start < .seconds(30))
        await server.shutdown()
    }

    @Test func branchesSkipTheOtherSide() async throws {
        let flow = try workflow("""
        {"nodes": [
          {"name": "IS_VIP", "type": "jq", "input": "request.headers", "jq": ".[\\"X-Vip\\"] == \\"yes\\""},
          {"name": "B", "type": "branch", "input": "IS_VIP", "then": ["VIP"], "else": ["REGULAR"]},
          {"name": "VIP", "type": "static", "values": {"topic": "vip-orders"}, "outputs": {"topic": "SET_TOPIC"}},
          {"name": "REGULAR", "type": "exit", "status": 403}, 
          {"name": "SET_TOPIC", "type": "property", "property": "kafka.topic"}]}
        """)
        let vip = flow.execution(for: request(headers: [("X-Vip", "yes")]))
        guard case .produce(let produce) = try await vip.runUntilProduce() else { Issue.record("expected produce"); return }
        #expect(produce.topics == ["vip-orders"])
        let trace = try json(await vip.traceJSON())
        #expect(trace["events"]?.arrayValue?.contains { $0["name"] == .string("REGULAR") && $0["action"] == .string("skip") } == true)

        let regular = flow.execution(for: request(headers: [("X-Vip", "no")]))
        guard case .exit(let response) = try await regular.runUntilProduce() else { Issue.record("expected exit"); return }
        #expect(response.status == 403)
    }

    @Test func propertiesChooseTopicKeyAndRecordHeaders() async throws {
        let flow = try workflow("""
        {"nodes": [
          {"name": "ROUTE", "type": "jq", "input": "request.body",
           "jq": "{topic: [\\"orders-\\" + .region, \\"audit\\"], key: .customer, headers: {\\"x-region\\": .region, \\"x-tags\\": [\\"a\\", \\"b\\"]}}"},
          {"name": "T", "type": "property", "property": "kafka.topic", "content_type": "application/octet-stream"},
          {"name": "TOPIC_OF", "type": "jq", "input": "ROUTE", "jq": ".topic", "output": "T"},
          {"name": "K", "type": "property", "property": "kafka.key"},
          {"name": "KEY_OF", "type": "jq", "input": "ROUTE", "jq": ".key", "output": "K"},
          {"name": "H", "type": "property", "property": "kafka.headers"},
          {"name": "HEADERS_OF", "type": "jq", "input": "ROUTE", "jq": ".headers", "output": "H"}]}
        """)
        let execution = flow.execution(for: request(body: #"{"region":"eu","customer":"c-7"}"#, contentType: "application/json"))
        guard case .produce(let produce) = try await execution.runUntilProduce() else { Issue.record("expected produce"); return }
        #expect(produce.topics == ["orders-eu", "audit"])
        #expect(produce.key == "c-7")
        #expect(produce.recordHeaders?.map { "\($0.name)=\($0.value)" } == ["x-region=eu", "x-tags=a", "x-tags=b"])
    }

    @Test func serviceRequestReplacesBodyHeadersAndQueryAndNullClearsAHeader() async throws {
        let flow = try workflow("""
        {"nodes": [
          {"name": "BODY", "type": "jq", "input": "request.body", "jq": "{order: .id, enriched: true}", "output": "service_request.body"},
          {"name": "HEADERS", "type": "jq", "jq": "{\\"x-ignored\\": null, \\"X-Added\\": \\"1\\"}",
           "output": "service_request.headers"},
          {"name": "QUERY", "type": "static", "values": {"q": {"page": "2", "flag": true}}, "outputs": {"q": "service_request.query"}}]}
        """)
        let execution = flow.execution(for: request(body: #"{"id":42}"#, contentType: "application/json",
                                                    headers: [("Content-Type", "application/json"), ("X-Ignored", "bye")]))
        guard case .produce(let produce) = try await execution.runUntilProduce() else { Issue.record("expected produce"); return }
        #expect(try json(produce.body?.bytes ?? []) == .object(JSONObject([("order", .integer(42)), ("enriched", .bool(true))])))
        #expect(produce.headers?.map(\.name) == ["Content-Type", "X-Added"])
        #expect(produce.encodedQuery == "page=2&flag")
    }

    @Test func theTraceMasksCredentialsAndVaultValues() async throws {
        let server = try await TestHTTPServer { _ in .json(#"{"ok":true}"#) }
        let flow = try workflow("""
        {"debug": true, "nodes": [
          {"name": "HEADERS", "type": "jq", "inputs": {"key": "vault.api_key"}, "jq": "{\\"X-Api-Key\\": .key, \\"Authorization\\": (\\"Bearer \\" + .key)}"},
          {"name": "CALL", "type": "call", "url": "\(server.url)/x", "inputs": {"headers": "HEADERS"}}]}
        """, vault: [("api_key", Secret("s3cr3t-value", source: "test"))])
        let execution = flow.execution(for: request(headers: [("Authorization", "Basic dXNlcjpwYXNz")]))
        _ = try await execution.runUntilProduce()
        let trace = String(decoding: await execution.traceJSON(), as: UTF8.self)
        #expect(!trace.contains("s3cr3t-value"), "\(trace)")
        #expect(!trace.contains("dXNlcjpwYXNz"), "\(trace)")
        #expect(trace.contains("********"))
        // The call did get the secret.
        #expect(server.requests.first?.header("x-api-key") == "s3cr3t-value")
        await server.shutdown()
    }

    @Test func vaultValuesInErrorMessagesAreMasked() async throws {
        // jq quotes the values it cannot add: the secret must not reach the error, the log or the trace.
        let flow = try workflow("""
        {"debug": true, "nodes": [{"name": "J", "type": "jq", "inputs": {"key": "vault.api_key"}, "jq": ".key + 1"}]}
        """, vault: [("api_key", Secret("s3cr3t-value", source: "test"))])
        let execution = flow.execution(for: request())
        do {
            _ = try await execution.runUntilProduce()
            Issue.record("expected a failure")
        } catch {
            guard case .nodeFailed(_, let message) = error else { Issue.record("\(error)"); return }
            #expect(!message.contains("s3cr3t-value"), "\(message)")
            #expect(message.contains("********"), "\(message)")
        }
        #expect(!String(decoding: await execution.traceJSON(), as: UTF8.self).contains("s3cr3t-value"))
    }

    @Test func aCachedTokenIsFetchedOnce() async throws {
        let tokens = try await TestHTTPServer { _ in .json(#"{"access_token":"t-1"}"#) }
        let flow = try workflow("""
        {"resources": {"cache": {"strategy": "memory"}}, "nodes": [
          {"name": "KEY", "type": "static", "values": {"key": "auth-token"}},
          {"name": "CACHED", "type": "cache", "inputs": {"key": "KEY.key"}},
          {"name": "CHECK", "type": "branch", "input": "CACHED.hit", "else": ["FETCH", "STORE"]},
          {"name": "FETCH", "type": "call", "url": "\(tokens.url)/token"},
          {"name": "STORE", "type": "cache", "inputs": {"key": "KEY.key", "data": "FETCH.body"}, "ttl": 300},
          {"name": "JOIN", "type": "jq", "inputs": {"cached": "CACHED.data", "fetched": "FETCH.body", "hit": "CACHED.hit"},
           "jq": "{token: (.cached // .fetched).access_token, hit: .hit}"},
          {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}}]}
        """)
        var answers: [JSONValue] = []
        for _ in 0..<3 {
            guard case .exit(let response) = try await flow.execution(for: request()).runUntilProduce() else { Issue.record("expected exit"); return }
            answers.append(try json(response.body))
        }
        #expect(answers.map { $0["token"] } == [.string("t-1"), .string("t-1"), .string("t-1")])
        #expect(answers.map { $0["hit"] } == [.bool(false), .bool(true), .bool(true)])
        #expect(tokens.requests.count == 1)
        await tokens.shutdown()
    }

    @Test func theMemoryCacheEvictsTheLeastRecentlyUsedAndExpires() {
        let cache = MemoryCache(limits: .init(maximumEntries: 3, maximumBytes: 1 << 20))
        let start = ContinuousClock.now
        for key in ["a", "b", "c"] { cache.store(.string(key), for: key, ttl: .seconds(10), now: start) }
        _ = cache.value(for: "a", now: start)  // a is now the most recent: b is the oldest
        cache.store(.string("d"), for: "d", ttl: .seconds(10), now: start)
        #expect(cache.value(for: "b", now: start) == nil)
        #expect(cache.value(for: "a", now: start) == .string("a"))
        #expect(cache.value(for: "d", now: start + .seconds(11)) == nil)
        #expect(cache.count == 2)
        // Bounded in bytes: a value larger than the cache is not stored; large ones push the others out.
        let small = MemoryCache(limits: .init(maximumEntries: 100, maximumBytes: 2048))
        #expect(!small.store(.string(String(repeating: "x", count: 4096)), for: "big", ttl: .seconds(10)))
        for index in 0..<10 { small.store(.string(String(repeating: "y", count: 500)), for: "k\(index)", ttl: .seconds(10)) }
        #expect(small.count <= 3)
        #expect(small.value(for: "k9") != nil)
    }

    @Test func xmlNodesConvertBothWays() async throws {
        let flow = try workflow("""
        {"nodes": [
          {"name": "TO_XML", "type": "json_to_xml", "input": "request.body", "root_element_name": "order", "attributes_name_prefix": "_"},
          {"name": "BACK", "type": "xml_to_json", "input": "TO_XML", "attributes_name_prefix": "_", "xpath": "/order/item"},
          {"name": "EXIT", "type": "exit", "inputs": {"body": "TO_XML"}, "status": 200}]}
        """)
        let body = #"{"_id":"7","item":[{"sku":"a","qty":2},{"sku":"b","qty":1}],"note":"x < y"}"#
        let execution = flow.execution(for: request(body: body, contentType: "application/json"))
        guard case .exit(let response) = try await execution.runUntilProduce() else { Issue.record("expected exit"); return }
        #expect(response.contentType == "application/xml")
        let xml = String(decoding: response.body, as: UTF8.self)
        #expect(xml.contains(#"<order id="7"><item><sku>a</sku><qty>2</qty></item><item><sku>b</sku><qty>1</qty></item><note>x &lt; y</note></order>"#), "\(xml)")
        let trace = try json(await execution.traceJSON())
        let back = try #require(trace["events"]?.arrayValue?.first { $0["name"] == .string("BACK") && $0["action"] == .string("complete") })
        let items = back["values"]?.arrayValue?.first?["value"]
        #expect(items == .object(JSONObject([("item", .array([
            .object(JSONObject([("sku", .string("a")), ("qty", .integer(2))])),
            .object(JSONObject([("sku", .string("b")), ("qty", .integer(1))])),
        ]))])), "\(String(describing: items))")
    }

    @Test func handlebarsRendersItsInputs() async throws {
        let flow = try workflow("""
        {"nodes": [
          {"name": "PAGE", "type": "handlebars", "inputs": {"order": "request.body", "query": "request.query"},
           "template": "<ul>{{#each order.items}}<li>{{@index}}: {{this.name}}{{#if @last}}.{{/if}}</li>{{/each}}</ul>{{query.note}}"},
          {"name": "JSON_BODY", "type": "handlebars", "input": "request.body", "content_type": "application/json",
           "template": "{\\"count\\": {{items.length}} }", "output": "service_request.body"},
          {"name": "EXIT", "type": "exit", "inputs": {"body": "PAGE"}, "status": 200}]}
        """)
        let body = #"{"items":[{"name":"a & b"},{"name":"c"}]}"#
        let execution = flow.execution(for: request(body: body, contentType: "application/json", query: JSONObject([("note", .string("<ok>"))])))
        guard case .exit(let response) = try await execution.runUntilProduce() else { Issue.record("expected exit"); return }
        #expect(String(decoding: response.body, as: UTF8.self) == "<ul><li>0: a &amp; b</li><li>1: c.</li></ul>&lt;ok&gt;")
        let trace = try json(await execution.traceJSON())
        let rendered = trace["events"]?.arrayValue?.first { $0["name"] == .string("JSON_BODY") && $0["action"] == .string("complete") }
        #expect(rendered?["values"]?.arrayValue?.first?["value"] == .object(JSONObject([("count", .integer(2))])))
    }

    @Test func hostileXMLFailsTheNodeQuickly() async throws {
        let flow = try workflow("""
        {"nodes": [{"name": "PARSE", "type": "xml_to_json", "input": "request.body", "output": "service_request.body"}]}
        """)
        let laughs = #"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"#
        let start = ContinuousClock.now
        do {
            _ = try await flow.execution(for: request(body: laughs, contentType: "application/xml")).runUntilProduce()
            Issue.record("expected a failure")
        } catch {
            guard case .nodeFailed(let node, let message) = error else { Issue.record("\(error)"); return }
            #expect(node.name == "PARSE")
            #expect(message.lowercased().contains("doctype"), "\(message)")
        }
        #expect(ContinuousClock.now - start < .seconds(10))  // an expansion would take far longer (and gigabytes)
    }

    @Test func aRuntimeTypeMismatchFailsTheNode() async throws {
        // jq's output is only known at run time: a string into exit.headers (a map) fails, as in Kong.
        let flow = try workflow("""
        {"nodes": [{"name": "J", "type": "jq", "jq": "\\"not headers\\""}, {"name": "E", "type": "exit", "inputs": {"headers": "J"}}]}
        """)
        do {
            _ = try await flow.execution(for: request()).runUntilProduce()
            Issue.record("expected a failure")
        } catch {
            guard case .nodeFailed(let node, let message) = error else { Issue.record("\(error)"); return }
            #expect(node.name == "E")
            #expect(message.contains("expected map, got string"), "\(message)")
        }
    }

    @Test func aCallAfterProducingSeesTheDeliveries() async throws {
        let server = try await TestHTTPServer { _ in .json(#"{"notified":true}"#) }
        let flow = try workflow("""
        {"nodes": [{"name": "NOTIFY", "type": "call", "method": "POST", "url": "\(server.url)/hook", "inputs": {"body": "service_response.body"}},
                   {"name": "ANSWER", "type": "jq", "inputs": {"hook": "NOTIFY.body", "kafka": "service_response.body"},
                    "jq": "{notified: .hook.notified, offset: .kafka.deliveries[0].offset}", "output": "response.body"}]}
        """)
        let execution = flow.execution(for: request())
        guard case .produce = try await execution.runUntilProduce() else { Issue.record("expected produce"); return }
        #expect(server.requests.isEmpty, "nothing runs before producing")
        let deliveries = JSONValue.object(JSONObject([("message", .string("message sent")),
                                                      ("deliveries", .array([.object(JSONObject([("topic", .string("t")), ("partition", .integer(0)), ("offset", .integer(7))]))]))]))
        let answer = try await execution.finish(with: WorkflowServiceResponse(status: 200, body: deliveries))
        #expect(try json(answer.body?.bytes ?? []) == .object(JSONObject([("notified", .bool(true)), ("offset", .integer(7))])))
        #expect(server.requests.first.map { try? json($0.body) } == deliveries)
        await server.shutdown()
    }

    @Test func dynamicURLsMustBeAllowListedAndNeverReachMetadata() async throws {
        let server = try await TestHTTPServer { _ in .json("{}") }
        let flow = try workflow("""
        {"call_allowed_hosts": ["127.0.0.1"], "nodes": [{"name": "C", "type": "call", "inputs": {"url": "request.body"}}]}
        """)
        // Allowed.
        _ = try await flow.execution(for: request(body: "\(server.url)/ok", contentType: "text/plain")).runUntilProduce()
        #expect(server.requests.count == 1)
        for target in ["http://169.254.169.254/latest/meta-data/", "http://example.com/", "http://[::ffff:169.254.169.254]/", "http://2852039166/"] {
            do {
                _ = try await flow.execution(for: request(body: target, contentType: "text/plain")).runUntilProduce()
                Issue.record("\(target) was called")
            } catch {
                guard case .nodeFailed = error else { Issue.record("\(error)"); continue }
            }
        }
        #expect(server.requests.count == 1)
        await server.shutdown()
    }
}

/// Which bodies a workflow reads as JSON: by the media type before any parameters, spaces and tabs around it and
/// letter case ignored.
@Suite struct BodyCodecContentTypeTests {
    @Test(arguments: [
        ("application/json", true), ("Application/JSON; charset=utf-8", true), (" application/json ", true),
        ("\tapplication/vnd.api+json;profile=x", true), ("application/problem+json", true),
        ("application/jsonx", false), ("text/json", false), ("", false), (";application/json", false),
        ("application/json-seq", false), ("application /json", false),
    ])
    func jsonMediaTypes(contentType: String, isJSON: Bool) {
        #expect(BodyCodec.isJSON(contentType) == isJSON, "\(contentType)")
    }

    @Test func noContentTypeIsNotJSON() {
        #expect(!BodyCodec.isJSON(nil))
    }
}

/// Datakit's header maps: each name once as first seen, in first-seen order; a repeated name (in any case) a list.
@Suite struct HeaderMapTests {
    @Test func repeatedNamesBecomeListsUnderTheFirstSpelling() throws {
        let object = HeaderMap.object(from: [("X-A", "1"), ("Accept", "a"), ("x-a", "2"), ("X-B", "b"), ("X-A", "3")])
        #expect(object.members.map(\.key) == ["X-A", "Accept", "X-B"])
        #expect(object["X-A"] == .array([.string("1"), .string("2"), .string("3")]))
        #expect(object["Accept"] == .string("a"))
        #expect(HeaderMap.object(from: []).members.isEmpty)
    }
}
