import JSON
import Testing
@testable import Workflow

/// Every configuration rule of Datakit's (kong-spec §B4) and of each node's fields, with Kong's wording where Kong
/// has one and the key path of the problem.
@Suite struct WorkflowConfigurationTests {
    /// The problems of a workflow given as JSON text (nil: it is valid).
    func problems(_ json: String) throws -> [WorkflowConfigurationError.Issue]? {
        var text = json
        let value = try text.withUTF8 { try JSONParser.parse(UnsafeRawBufferPointer($0)) }
        do {
            _ = try WorkflowDefinition.parse(value)
            return nil
        } catch {
            return error.issues
        }
    }

    func expectProblem(_ json: String, at path: String, containing text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let found = try problems(json)
        #expect(found?.contains { $0.path == path && $0.reason.contains(text) } == true,
                "expected \(path): …\(text)…, got \(found.map { "\($0)" } ?? "no problem")", sourceLocation: sourceLocation)
    }

    @Test func kongsExamplesAreValid() throws {
        let combine = """
        {"nodes": [
          {"name": "AUTHOR", "type": "call", "url": "https://httpbin.konghq.com/json"},
          {"name": "UUID", "type": "call", "url": "https://httpbin.konghq.com/uuid"},
          {"name": "JOIN", "type": "jq", "inputs": {"input1": "AUTHOR.body", "input2": "UUID.body"},
           "jq": "{ author: .input1.slideshow.author, uuid: .input2.uuid }"},
          {"name": "EXIT", "type": "exit", "inputs": {"body": "JOIN"}, "status": 200}]}
        """
        #expect(try problems(combine) == nil)
        let authenticate = """
        {"nodes": [
          {"name": "STATIC_INPUTS", "type": "static", "values": {"headers": {"Content-Type": "application/x-www-form-urlencoded"},
            "body": {"grant_type": "client_credentials", "client_id": "my_client_id"}}},
          {"name": "BUILD_HEADERS", "type": "jq", "inputs": {"headers": "STATIC_INPUTS.headers", "query": "request.query"},
           "jq": ".headers * { \\"X-Api-Key\\": (.query.api_key // \\"none\\") }"},
          {"name": "AUTH_REQUEST", "type": "call", "method": "POST", "url": "https://my-token-service/auth-token",
           "inputs": {"headers": "BUILD_HEADERS", "body": "STATIC_INPUTS.body"}},
          {"name": "UPSTREAM_AUTH_HEADER", "type": "jq", "input": "AUTH_REQUEST.body", "output": "service_request.headers",
           "jq": "{ Authorization: (.token_type + \\" \\" + .access_token) }"}]}
        """
        #expect(try problems(authenticate) == nil)
    }

    @Test func unknownNodeTypeSuggestsTheClosest() throws {
        try expectProblem(#"{"nodes":[{"name":"A","type":"cal"}]}"#, at: "nodes[0].type", containing: "unknown node type 'cal' (did you mean 'call'?)")
    }

    @Test func nodeTypesOfPartTwoAreRefusedClearly() throws {
        try expectProblem(#"{"nodes":[{"name":"A","type":"jwt_sign"}]}"#, at: "nodes[0].algorithm", containing: "required key missing")
        try expectProblem(#"{"nodes":[{"name":"A","type":"cache"}]}"#, at: "nodes[0].type", containing: "needs resources.cache")
        try expectProblem(#"{"resources":{"cache":{"strategy":"redis"}},"nodes":[{"name":"A","type":"cache"}]}"#, at: "resources.cache.redis",
                          containing: "required with strategy redis")
    }

    @Test func xmlNodeFieldsAreChecked() throws {
        try expectProblem(#"{"nodes":[{"name":"X","type":"xml_to_json","xpath":"//["}]}"#, at: "nodes[0].xpath", containing: "invalid XPath")
        try expectProblem(#"{"nodes":[{"name":"X","type":"json_to_xml","attributes_block_name":"a","attributes_name_prefix":"@"}]}"#,
                          at: "nodes[0].attributes_name_prefix", containing: "mutually exclusive")
        #expect(try problems(#"{"nodes":[{"name":"X","type":"xml_to_json","input":"request.body","text_as_property":true,"recognize_type":false}]}"#) == nil)
    }

    @Test func handlebarsTemplatesCompileAtStartUp() throws {
        try expectProblem(#"{"nodes":[{"name":"H","type":"handlebars","template":"{{#if a}}\nx{{/each}}"}]}"#, at: "nodes[0].template",
                          containing: "line 2")
        try expectProblem(#"{"nodes":[{"name":"H","type":"handlebars","template":"{{shout a}}"}]}"#, at: "nodes[0].template",
                          containing: "unknown helper 'shout'")
    }

    @Test func unknownFieldIsRefusedWithASuggestion() throws {
        try expectProblem(#"{"nodes":[{"name":"A","type":"call","url":"http://x","methd":"GET"}]}"#, at: "nodes[0].methd",
                          containing: "did you mean 'method'?")
    }

    @Test func unknownNodeInALabel() throws {
        try expectProblem(#"{"nodes":[{"name":"A","type":"exit","inputs":{"body":"NOPE.body"}}]}"#, at: "nodes[0].inputs.body",
                          containing: "unknown node in link: NOPE")
    }

    @Test func unknownPortsSuggestTheClosest() throws {
        try expectProblem(#"{"nodes":[{"name":"A","type":"exit","inputs":{"body":"request.bdy"}}]}"#, at: "nodes[0].inputs.body",
                          containing: "invalid output port name request.bdy (did you mean 'body'?)")
        try expectProblem(#"{"nodes":[{"name":"A","type":"exit","inputs":{"boody":"request.body"}}]}"#, at: "nodes[0].inputs.boody",
                          containing: "invalid input port name A.boody (did you mean 'body'?)")
    }

    @Test func reservedAndDuplicateNames() throws {
        try expectProblem(#"{"nodes":[{"name":"request","type":"static","values":{}}]}"#, at: "nodes[0].name",
                          containing: "cannot use reserved node name")
        try expectProblem(#"{"nodes":[{"name":"A","type":"static","values":{}},{"name":"A","type":"static","values":{}}]}"#,
                          at: "nodes[1].name", containing: "multiple definitions of node `A`")
        try expectProblem(#"{"nodes":[{"name":"has space","type":"static","values":{}}]}"#, at: "nodes[0].name", containing: "not a valid node name")
    }

    @Test func selfConnection() throws {
        try expectProblem(#"{"nodes":[{"name":"A","type":"jq","jq":".","input":"A"}]}"#, at: "nodes[0].input", containing: "node cannot connect to itself")
    }

    @Test func twoConnectionsIntoOneInput() throws {
        let json = """
        {"nodes":[{"name":"GET_FOO","type":"static","values":{"x":1}},{"name":"GET_BAR","type":"static","values":{"x":2}},
                  {"name":"FILTER","type":"jq","jq":".","input":"GET_FOO"},
                  {"name":"OTHER","type":"static","values":{"y":1},"output":"FILTER"}]}
        """
        try expectProblem(json, at: "nodes[3].output", containing: #"invalid connection ("OTHER" -> "FILTER"): conflicts with existing connection ("GET_FOO" -> "FILTER")"#)
    }

    @Test func theSameConnectionFromBothSidesIsOne() throws {
        let json = """
        {"nodes":[{"name":"S","type":"static","values":{"x":1},"output":"F"},{"name":"F","type":"jq","jq":".","input":"S"}]}
        """
        #expect(try problems(json) == nil)
    }

    @Test func cyclesAreCircularDependencies() throws {
        let json = """
        {"nodes":[{"name":"A","type":"jq","jq":".","input":"B"},{"name":"B","type":"jq","jq":".","input":"A"}]}
        """
        let found = try #require(try problems(json))
        #expect(found.contains { $0.reason.contains("circular dependency") && $0.reason.contains("A -> B -> A") || $0.reason.contains("B -> A -> B") },
                "\(found)")
    }

    @Test func aCallBeforeProducingCannotReadWhatProducingAnswered() throws {
        let json = """
        {"nodes":[{"name":"CALL","type":"call","url":"http://127.0.0.1:1/x","inputs":{"body":"service_response.body"},
                   "outputs":{"body":"service_request.body"}}]}
        """
        let found = try #require(try problems(json))
        #expect(found.contains { $0.reason.contains("circular dependency") }, "\(found)")
    }

    @Test func typeMismatches() throws {
        // A static string into a map input (Kong: the Admin API refuses "oops not valid headers").
        try expectProblem(#"{"nodes":[{"name":"S","type":"static","values":{"headers":"oops not valid headers"}},{"name":"C","type":"call","url":"http://x","inputs":{"headers":"S.headers"}}]}"#,
                          at: "nodes[1].inputs.headers", containing: "type mismatch: string -> map")
        // A number into an object-typed node-wise input is refused; a static object into headers is fine.
        try expectProblem(#"{"nodes":[{"name":"S","type":"static","values":{"n":1}},{"name":"E","type":"exit","input":"S.n"}]}"#,
                          at: "nodes[1].input", containing: "type mismatch: number -> object")
        #expect(try problems(#"{"nodes":[{"name":"S","type":"static","values":{"h":{"a":"b"}}},{"name":"E","type":"exit","inputs":{"headers":"S.h"}}]}"#) == nil)
    }

    @Test func nodeWiseConnectionsBetweenNodesWithFieldsConnectCommonFields() throws {
        #expect(try problems(#"{"nodes":[{"name":"C","type":"call","url":"http://x","input":"request","output":"service_request"}]}"#) == nil)
    }

    @Test func branchListsMustNameNodes() throws {
        try expectProblem(#"{"nodes":[{"name":"B","type":"branch","input":"request.body","then":["NOPE"]}]}"#, at: "nodes[0].then[0]",
                          containing: "unknown node 'NOPE'")
    }

    @Test func jqNodesHaveOneOutputAndCompileAtStartUp() throws {
        try expectProblem(#"{"nodes":[{"name":"J","type":"jq","jq":".","outputs":{"x":"service_request.body"}}]}"#, at: "nodes[0].outputs",
                          containing: "use 'output'")
        try expectProblem(#"{"nodes":[{"name":"J","type":"jq","jq":".a | foo("}]}"#, at: "nodes[0].jq", containing: "jq: error")
    }

    @Test func propertiesMustBeKnownAndSettable() throws {
        try expectProblem(#"{"nodes":[{"name":"P","type":"property","property":"kafka.topik"}]}"#, at: "nodes[0].property",
                          containing: "unknown property 'kafka.topik' (did you mean 'kafka.topic'?)")
        try expectProblem(#"{"nodes":[{"name":"P","type":"property","property":"client.ip","input":"request.path"}]}"#, at: "nodes[0].input",
                          containing: "can be read but not set")
    }

    @Test func fieldRanges() throws {
        try expectProblem(#"{"nodes":[{"name":"E","type":"exit","status":700}]}"#, at: "nodes[0].status", containing: "out of range: 200 to 599")
        try expectProblem(#"{"nodes":[{"name":"C","type":"call","url":"http://x","method":"get"}]}"#, at: "nodes[0].method",
                          containing: "upper-case")
        try expectProblem(#"{"nodes":[{"name":"C","type":"call","url":"ftp://x"}]}"#, at: "nodes[0].url", containing: "")
        try expectProblem(#"{"nodes":[]}"#, at: "nodes", containing: "non-empty")
        let many = (0..<65).map { #"{"name":"S\#($0)","type":"static","values":{}}"# }.joined(separator: ",")
        try expectProblem(#"{"nodes":[\#(many)]}"#, at: "nodes", containing: "at most 64")
    }
}
