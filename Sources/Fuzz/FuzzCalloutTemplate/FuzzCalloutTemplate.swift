import FuzzSupport
import JSON
@testable import Workflow

/// Fuzzes request-callout's hand-written `$(...)` template reader and evaluator: any text as a template, read, then
/// rendered and valued on a fixed context (headers, query arguments, an earlier callout's response); and the same
/// text as every templated field of a request-callout configuration, compiled (the template walk, the dependencies
/// it adds, the graph).
///
/// Invariants: no crash, no hang; a template that reads renders the same text twice; a template of plain text (no
/// placeholder) renders as itself.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCalloutTemplate(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size) else { return 0 }
    let text = String(decoding: input.remaining, as: UTF8.self)
    if let template = try? CalloutTemplate(parsing: text) {
        let first = template.render(fuzzContext)
        if first != template.render(fuzzContext) { fuzzFailure("two renders of one template differ", input: input.remaining) }
        if template.isConstant, first != text { fuzzFailure("a template without placeholders changed its text", input: input.remaining) }
        _ = template.value(in: fuzzContext)
        _ = template.referencedCallouts
    }
    let field = JSONValue.string(text)
    let configuration = JSONValue.object(JSONObject([
        ("call_allowed_hosts", .array([.string("*.test")])),
        ("callouts", .array([
            .object(JSONObject([("name", .string("auth")), ("request", .object(JSONObject([("url", .string("http://auth.test/token"))])))])),
            .object(JSONObject([
                ("name", .string("c2")),
                ("request", .object(JSONObject([
                    ("url", field), ("headers", .object(JSONObject([("custom", .object(JSONObject([("X-A", field)])))]))),
                    ("body", .object(JSONObject([("custom", .object(JSONObject([("a", field)])))]))),
                    ("error", .object(JSONObject([("error_response_msg", field)]))),
                ]))),
            ])),
        ])),
        ("upstream", .object(JSONObject([("query", .object(JSONObject([("custom", .object(JSONObject([("q", field)])))])))]))),
    ]))
    _ = try? RequestCallout.definition(from: configuration)
    return 0
}

let fuzzContext = CalloutContext(
    headers: [("X-User", "ada"), ("Accept", "a"), ("accept", "b"), ("Authorization", "Bearer x")],
    query: JSONObject([("user", .string("7")), ("flag", .null), ("list", .array([.string("1"), .string("2")]))]),
    callouts: ["auth": .object(JSONObject([
        ("request", .object(JSONObject([("params", .object(JSONObject([("url", .string("http://auth.test/token"))])))]))),
        ("response", .object(JSONObject([
            ("status", .integer(200)), ("headers", .object(JSONObject([("content-type", .string("application/json"))]))),
            ("body", .object(JSONObject([("token", .string("t0k")), ("ids", .array([.integer(4), .integer(5)])), ("nested", .object(JSONObject([("n", .null)])))]))),
        ]))),
    ]))])

@main enum FuzzCalloutTemplateMain {
    static func main() { FuzzDriver.run(fuzzCalloutTemplate) }
}
