import FuzzSupport
import Handlebars
import JSON

/// Fuzzes the hand-written Handlebars engine: the lexer, parser and whitespace rules on any template, and the
/// renderer on a fixed context with nested objects, arrays and values of every type. Input: the template text.
///
/// Invariants: no crash, no hang; a compiled template renders the same text twice; its output stays within the
/// output bound.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandlebars(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size) else { return 0 }
    let source = String(decoding: input.remaining, as: UTF8.self)
    guard let template = try? HandlebarsTemplate(source: source, partials: ["item": "<{{name}}>", "loop": "{{#each this}}{{> item}}{{/each}}"])
    else { return 0 }
    let first = try? template.render(fuzzContext)
    let second = try? template.render(fuzzContext)
    if first != second { fuzzFailure("two renders of one template differ", input: input.remaining) }
    if let first, first.utf8.count > HandlebarsOptions().maximumOutputBytes {
        fuzzFailure("the output is over the output bound", input: input.remaining)
    }
    return 0
}

let fuzzContext: JSONValue = .object(JSONObject([
    ("name", .string("<a & \"b\">")), ("n", .number(JSONNumber(text: "1.50"))), ("zero", .number(JSONNumber(text: "0"))),
    ("yes", .bool(true)), ("no", .bool(false)), ("nothing", .null), ("empty", .array([])),
    ("items", .array([
        .object(JSONObject([("name", .string("x")), ("tags", .array([.string("a"), .string("b")]))])),
        .object(JSONObject([("name", .string("y")), ("nested", .object(JSONObject([("deep", .array([.number(JSONNumber(text: "3"))]))])))])),
    ])),
    ("map", .object(JSONObject([("k1", .string("v1")), ("k2", .object(JSONObject([("name", .string("z"))])))]))),
]))

@main enum FuzzHandlebarsMain {
    static func main() { FuzzDriver.run(fuzzHandlebars) }
}
