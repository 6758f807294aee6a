import Foundation
import Handlebars
import JSON
import Testing

func json(_ text: String) -> JSONValue {
    do { return try JSONParser.parse(text) } catch { fatalError("bad test JSON \(text): \(error)") }
}

func render(_ source: String, _ context: String = "{}", partials: [String: String] = [:], options: HandlebarsOptions = HandlebarsOptions()) throws -> String {
    try HandlebarsTemplate(source: source, partials: partials, options: options).render(json(context))
}

func compileError(_ source: String, partials: [String: String] = [:], options: HandlebarsOptions = HandlebarsOptions()) -> HandlebarsError? {
    do {
        _ = try HandlebarsTemplate(source: source, partials: partials, options: options)
        return nil
    } catch {
        return error
    }
}

@Suite struct HandlebarsExpressionTests {
    @Test func pathsAndEscaping() throws {
        #expect(try render("{{a.b.c}}", #"{"a":{"b":{"c":"x"}}}"#) == "x")
        #expect(try render("{{a/b}}", #"{"a":{"b":1}}"#) == "1")
        #expect(try render("{{s}}", #"{"s":"&<>\"'`="}"#) == "&amp;&lt;&gt;&quot;&#x27;&#x60;&#x3D;")
        #expect(try render("{{{s}}}|{{& s}}|{{~{s}~}}", #"{"s":"<b>"}"#) == "<b>|<b>|<b>")
        #expect(try render("[{{missing}}][{{a.missing.deeper}}][{{n}}]", #"{"a":{},"n":null}"#) == "[][][]")
        #expect(try render("{{this.a}} {{./a}} {{[a b]}} {{[this]}}", #"{"a":"x","a b":"y","this":"z"}"#) == "x x y z")
        #expect(try render("{{@root.a}}", #"{"a":"r"}"#) == "r")
    }

    @Test func valuesPrintAsJavaScriptDoes() throws {
        #expect(try render("{{n}} {{m}} {{t}} {{f}} {{z}}", #"{"n":1.50,"m":-2e3,"t":true,"f":false,"z":0}"#) == "1.50 -2e3 true false 0")
        #expect(try render("{{a}}", #"{"a":[1,"<x>",[2,[3]],null,{"k":1},true]}"#) == "1,&lt;x&gt;,2,3,,[object Object],true")
        #expect(try render("{{o}}", #"{"o":{"k":1}}"#) == "[object Object]")
    }

    @Test func arrayIndicesAndLength() throws {
        let context = #"{"items":["a","b",{"x":"c"}],"s":"héllo"}"#
        #expect(try render("{{items.[0]}}{{items.1}}{{items.[2].x}}{{items.length}}{{s.length}}", context) == "abc35")
        #expect(try render("{{items.[01]}}{{items.[9]}}", context) == "")
        #expect(try render("{{items.2.x}}|{{m.1.0}}|{{m.1.1}}", #"{"items":[0,1,{"x":"c"}],"m":[[0],[1,2]]}"#) == "c|1|2")
    }

    @Test func parentContexts() throws {
        let context = #"{"name":"root","outer":{"name":"o","inner":[{"name":"i"}]}}"#
        #expect(try render("{{#with outer}}{{#each inner}}{{name}}/{{../name}}/{{../../name}}{{/each}}{{/with}}", context) == "i/o/root")
        // #if does not change the context, so ../ skips it.
        #expect(try render("{{#with outer}}{{#if name}}{{../name}}{{/if}}{{/with}}", context) == "root")
    }

    @Test func lookupAndLog() throws {
        let context = #"{"map":{"k1":"v1"},"key":"k1","list":["x","y"],"i":1}"#
        #expect(try render("{{lookup map key}} {{lookup list i}} {{lookup map 'none'}}", context) == "v1 y ")
        #expect(try render("{{#with (lookup map key)}}[{{this}}]{{/with}}", context) == "[v1]")
        #expect(try render("a{{log 'hello' level='warn'}}b", context) == "ab")
    }

    @Test func literals() throws {
        #expect(try render(#"{{"foo bar"}}{{12}}"#, #"{"foo bar":"x","12":"y"}"#) == "xy")
    }
}

@Suite struct HandlebarsBlockTests {
    @Test func ifElseChains() throws {
        let source = "{{#if a}}A{{else if b}}B{{else if c}}C{{else}}D{{/if}}"
        #expect(try render(source, #"{"a":1}"#) == "A")
        #expect(try render(source, #"{"b":"x"}"#) == "B")
        #expect(try render(source, #"{"c":[0]}"#) == "C")
        #expect(try render(source, #"{"a":0,"b":"","c":[]}"#) == "D")
        #expect(try render("{{#if o}}y{{/if}}", #"{"o":{}}"#) == "y")
        #expect(try render("{{#if z includeZero=true}}y{{else}}n{{/if}}", #"{"z":0}"#) == "y")
        #expect(try render("{{#unless a}}no{{else}}yes{{/unless}}", #"{"a":false}"#) == "no")
        #expect(try render("{{^a}}none{{/a}}{{#a}}{{.}}{{^}}empty{{/a}}", #"{"a":[]}"#) == "noneempty")
    }

    @Test func eachOverArraysAndObjects() throws {
        #expect(try render("{{#each a}}{{@index}}:{{this}}{{#if @first}}F{{/if}}{{#if @last}}L{{/if}},{{/each}}", #"{"a":["x","y","z"]}"#)
            == "0:xF,1:y,2:zL,")
        #expect(try render("{{#each o}}{{@key}}={{.}}@{{@index}};{{/each}}", #"{"o":{"b":1,"a":2}}"#) == "b=1@0;a=2@1;")
        #expect(try render("{{#each a as |item i|}}{{i}}={{item.n}} {{/each}}", #"{"a":[{"n":1},{"n":2}]}"#) == "0=1 1=2 ")
        #expect(try render("{{#each o as |v k|}}{{k}}:{{v}} {{/each}}", #"{"o":{"x":1}}"#) == "x:1 ")
        #expect(try render("{{#each a}}x{{else}}empty{{/each}}", #"{"a":[]}"#) == "empty")
        #expect(try render("{{#each a}}x{{else}}empty{{/each}}", #"{}"#) == "empty")
        #expect(try render("{{#each a}}{{#each this}}{{@../index}}.{{@index}} {{/each}}{{/each}}", #"{"a":[[1,2],[3]]}"#) == "0.0 0.1 1.0 ")
    }

    @Test func withAndSections() throws {
        #expect(try render("{{#with p}}{{n}}{{else}}none{{/with}}", #"{"p":{"n":"N"}}"#) == "N")
        #expect(try render("{{#with p}}{{n}}{{else}}none{{/with}}", #"{"p":null}"#) == "none")
        #expect(try render("{{#with p as |q|}}{{q.n}}{{/with}}", #"{"p":{"n":"N"}}"#) == "N")
        #expect(try render("{{#p}}{{n}}{{/p}}", #"{"p":{"n":"N"}}"#) == "N")
        #expect(try render("{{#p}}{{n}}{{/p}}", #"{"p":[{"n":1},{"n":2}]}"#) == "12")
    }

    @Test func rawBlocksCommentsAndEscapes() throws {
        #expect(try render("{{{{raw}}}}{{x}} {{{{y}}}}{{{{/y}}}}{{{{/raw}}}}", #"{"x":1}"#) == "{{x}} {{{{y}}}}{{{{/y}}}}")
        #expect(try render("a{{! c }}b{{!-- }} --}}c", "{}") == "abc")
        #expect(try render(#"\{{x}} \\{{x}}"#, #"{"x":1}"#) == #"{{x}} \1"#)
    }

    @Test func whitespaceControlAndStandaloneLines() throws {
        #expect(try render("a  {{~x~}}  b", #"{"x":1}"#) == "a1b")
        #expect(try render("<ul>\n  {{#each a}}\n  <li>{{.}}</li>\n  {{/each}}\n</ul>\n", #"{"a":[1,2]}"#)
            == "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>\n")
        #expect(try render("a\n  {{! comment }}\nb", "{}") == "a\nb")
    }

    @Test func partials() throws {
        let partials = ["item": "<{{name}}>", "list": "{{#each items}}{{> item}}{{/each}}", "line": "x\ny\n"]
        #expect(try render("{{> list}}", #"{"items":[{"name":"a"},{"name":"b"}]}"#, partials: partials) == "<a><b>")
        #expect(try render("{{> item person}}|{{> item name='h'}}", #"{"person":{"name":"p"}}"#, partials: partials) == "<p>|<h>")
        #expect(try render("  {{> line}}\nz", "{}", partials: partials) == "  x\n  y\nz")
        #expect(try render("{{> (lookup . 'which')}}", #"{"which":"item","name":"d"}"#, partials: partials) == "<d>")
        #expect(try render("{{#> missing}}fallback{{/missing}}", "{}", partials: partials) == "fallback")
        #expect(try render("{{#> wrap}}inner {{v}}{{/wrap}}", #"{"v":1}"#, partials: ["wrap": "[{{> @partial-block}}]"]) == "[inner 1]")
        let missing = try #require(compileError("a\n {{> nope}}"))
        #expect(missing.message == "the partial nope could not be found" && missing.line == 2 && missing.column == 2)
        #expect(try render("{{#*inline \"row\"}}<{{.}}>{{/inline}}{{#each a}}{{> row}}{{/each}}", #"{"a":[1,2]}"#) == "<1><2>")
        #expect(try render("{{#if @partial-block}}x{{/if}}{{#> p}}{{/p}}", "{}", partials: ["p": "{{#if @partial-block}}has{{/if}}"]) == "has")
        #expect(throws: HandlebarsRenderError(.partialNotFound(name: "zzz"))) {
            try HandlebarsTemplate(source: "{{> (lookup . 'w')}}").render(json(#"{"w":"zzz"}"#))
        }
    }
}

@Suite struct HandlebarsErrorTests {
    @Test func syntaxErrorsCarryLineAndColumn() throws {
        let error = try #require(compileError("line one\n  {{#if a}}x{{/each}}"))
        #expect(error.line == 2)
        #expect(error.column == 13)
        #expect(error.message == "if doesn't match each")
        let unclosed = try #require(compileError("{{#if a}}x"))
        #expect(unclosed.message.contains("expecting '{{/if}}'"))
        let open = try #require(compileError("ab\n{{foo"))
        #expect(open.line == 2)
        #expect(open.message.contains("'}}'"))
        #expect(compileError("{{foo.}}") != nil)
        #expect(compileError("{{else}}") != nil)
        #expect(compileError("{{a/../b}}")?.message == "Invalid path: a/..")  // handlebars.js names the path up to the fault
    }

    @Test func unknownHelpersAreRefusedAtCompileTime() throws {
        let error = try #require(compileError("x\n{{uppercase name}}"))
        #expect(error.message.contains("unknown helper 'uppercase'"))
        #expect(error.line == 2 && error.column == 3)
        #expect(compileError("{{#myBlock a}}{{/myBlock}}")?.message.contains("myBlock") == true)
        #expect(compileError("{{if a}}")?.message.contains("needs a block") == true)
        #expect(compileError("{{#if}}{{/if}}")?.message.contains("exactly one argument") == true)
        #expect(compileError("{{*decorator}}")?.message.contains("not supported") == true)
        #expect(compileError("{{#*decorator}}{{/decorator}}")?.message.contains("not supported") == true)
    }
}

@Suite struct HandlebarsBoundsTests {
    @Test func templateSizeIsBounded() {
        var options = HandlebarsOptions()
        options.maximumTemplateBytes = 100
        #expect(compileError(String(repeating: "a", count: 101), options: options)?.message.contains("100") == true)
    }

    @Test func deepNestingIsRefusedAtCompileTime() throws {
        let deep = String(repeating: "{{#if a}}", count: 65) + String(repeating: "{{/if}}", count: 65)
        #expect(compileError(deep)?.message.contains("deeper than 64") == true)
        let shallow = String(repeating: "{{#if a}}", count: 64) + "x" + String(repeating: "{{/if}}", count: 64)
        #expect(try render(shallow, #"{"a":true}"#) == "x")
        let chain = "{{#if a}}" + String(repeating: "{{else if a}}", count: 100) + "{{/if}}"
        #expect(compileError(chain) != nil)
        let subexpressions = String(repeating: "(lookup ", count: 100)
        #expect(compileError("{{lookup \(subexpressions) a b" + String(repeating: ")", count: 100) + "}}") != nil)
    }

    @Test func eachOverAHundredThousandElementsIsLinearAndCapped() throws {
        let elements = (0..<100_000).map { JSONValue.number(JSONNumber(Int64($0))) }
        let context = JSONValue.object(JSONObject([("items", .array(elements))]))
        let template = try HandlebarsTemplate(source: "{{#each items}}{{this}},{{/each}}")
        #expect(throws: HandlebarsRenderError(.tooManyIterations(limit: 65_536))) { try template.render(context) }

        var options = HandlebarsOptions()
        options.maximumIterations = 200_000
        let uncapped = try HandlebarsTemplate(source: "{{#each items}}{{this}},{{/each}}", options: options)
        let clock = ContinuousClock()
        let small = JSONValue.object(JSONObject([("items", .array(Array(elements.prefix(10_000))))]))
        var smallOutput = ""
        let smallTime = clock.measure { smallOutput = (try? uncapped.render(small)) ?? "" }
        var output = ""
        let largeTime = clock.measure { output = (try? uncapped.render(context)) ?? "" }
        #expect(output.hasPrefix("0,1,2,") && output.hasSuffix("99999,"))
        #expect(smallOutput.hasSuffix("9999,"))
        // Ten times the elements: roughly ten times the time (generous bound for a loaded machine), never quadratic.
        print("each over 10,000 elements: \(smallTime), over 100,000: \(largeTime)")
        #expect(largeTime < smallTime * 60 + .milliseconds(200))
    }

    @Test func partialHashCopiesCountAgainstTheIterationBudget() throws {
        var options = HandlebarsOptions()
        options.maximumIterations = 1000
        let template = try HandlebarsTemplate(
            source: "{{#each items}}{{> p ../big x=1}}{{/each}}", partials: ["p": "{{x}}"], options: options)
        let big = JSONValue.object(JSONObject((0..<100).map { ("k\($0)", JSONValue.null) }))
        let few = JSONValue.object(JSONObject([("items", .array(Array(repeating: .null, count: 5))), ("big", big)]))
        #expect(try template.render(few) == "11111")
        let many = JSONValue.object(JSONObject([("items", .array(Array(repeating: .null, count: 20))), ("big", big)]))
        #expect(throws: HandlebarsRenderError(.tooManyIterations(limit: 1000))) { try template.render(many) }
    }

    @Test func renderStepsAreBounded() throws {
        var options = HandlebarsOptions()
        options.maximumRenderSteps = 10_000
        let body = String(repeating: "{{#if missing}}x{{/if}}", count: 100)
        let template = try HandlebarsTemplate(source: "{{#each items}}\(body){{/each}}", options: options)
        let items = { (count: Int) in JSONValue.object(JSONObject([("items", .array(Array(repeating: .null, count: count)))])) }
        #expect(try template.render(items(50)) == "")
        #expect(throws: HandlebarsRenderError(.tooManySteps(limit: 10_000))) { try template.render(items(200)) }
    }

    @Test func outputIsCapped() throws {
        var options = HandlebarsOptions()
        options.maximumOutputBytes = 1000
        let template = try HandlebarsTemplate(source: "{{#each a}}{{../s}}{{/each}}", options: options)
        let context = json(#"{"a":[1,2,3,4,5,6,7,8,9,10,11],"s":"\#(String(repeating: "x", count: 100))"}"#)
        #expect(throws: HandlebarsRenderError(.outputTooLarge(limit: 1000))) { try template.render(context) }
        let escaped = try HandlebarsTemplate(source: "{{s}}", options: options)
        #expect(throws: HandlebarsRenderError(.outputTooLarge(limit: 1000))) {
            try escaped.render(json(#"{"s":"\#(String(repeating: "<", count: 300))"}"#))
        }
    }

    @Test func recursivePartialsAreBoundedByDepth() throws {
        let partials = ["node": "({{name}}{{#each children}}{{> node}}{{/each}})"]
        let template = try HandlebarsTemplate(source: "{{> node}}", partials: partials)
        #expect(try template.render(json(#"{"name":"a","children":[{"name":"b","children":[]}]}"#)) == "(a(b))")
        var deep = #"{"name":"leaf"}"#
        for _ in 0..<40 { deep = #"{"name":"n","children":[\#(deep)]}"# }
        #expect(throws: HandlebarsRenderError(.partialsTooDeep(limit: 16))) { try template.render(json(deep)) }
    }

    @Test func deeplyNestedArraysPrintWithoutRecursion() throws {
        var nested = "1"
        for _ in 0..<400 { nested = "[\(nested)]" }
        #expect(try render("{{a}}", #"{"a":\#(nested)}"#) == "1")
    }
}

@Suite struct HandlebarsBenchmark {
    /// Compile and render times of a typical 1 KB template with #each over 20 items (printed, not asserted).
    @Test func compileAndRenderTimes() throws {
        let source = """
        <html><head><title>{{title}}</title></head>
        <body>
          <h1>{{#if user.admin}}Admin: {{/if}}{{user.name}} &lt;{{user.email}}&gt;</h1>
          {{! the order lines }}
          <table>
            {{#each items as |item i|}}
            <tr class="{{#if @first}}first{{else if @last}}last{{else}}middle{{/if}}">
              <td>{{@index}}</td><td>{{item.sku}}</td><td>{{item.name}}</td>
              <td>{{item.quantity}} x {{item.price}}</td>
              <td>{{#each item.tags}}{{this}}{{#unless @last}}, {{/unless}}{{/each}}</td>
              <td>{{#with item.dimensions}}{{w}}x{{h}}{{else}}n/a{{/with}}</td>
              <td>{{lookup ../currencies ../currency}}</td>
            </tr>
            {{else}}
            <tr><td colspan="7">No items</td></tr>
            {{/each}}
          </table>
          <p>Total: {{total}} {{currency}} - {{{footer}}}</p>
          <p>Shipping to {{address.street}}, {{address.city}} {{address.zip}} ({{address.country}})</p>
          {{#unless paid}}<p class="warning">Payment pending since {{since}}</p>{{/unless}}
        </body></html>
        """
        let items = (0..<20).map { index in
            #"{"sku":"SKU-\#(index)","name":"Item <\#(index)>","quantity":\#(index + 1),"price":9.99,"tags":["a","b","c"],"dimensions":\#(index % 2 == 0 ? #"{"w":10,"h":20}"# : "null")}"#
        }
        let context = json(#"""
        {"title":"Order 42","user":{"name":"Ann","email":"ann@example.com","admin":true},
         "items":[\#(items.joined(separator: ","))],"currencies":{"EUR":"€"},"currency":"EUR","total":"199.80",
         "footer":"<i>thanks</i>","address":{"street":"Main St 1","city":"Town","zip":"12345","country":"NL"},"paid":false,"since":"today"}
        """#)
        let clock = ContinuousClock()
        let compileRuns = 200
        var template = try HandlebarsTemplate(source: source)
        let compileTime = try clock.measure { for _ in 0..<compileRuns { template = try HandlebarsTemplate(source: source) } }
        let renderRuns = 1000
        var output = ""
        let renderTime = try clock.measure { for _ in 0..<renderRuns { output = try template.render(context) } }
        func microseconds(_ duration: Duration, _ runs: Int) -> Double {
            let (seconds, attoseconds) = duration.components
            return (Double(seconds) * 1e6 + Double(attoseconds) / 1e12) / Double(runs)
        }
        print("handlebars benchmark: template \(source.utf8.count) bytes, output \(output.utf8.count) bytes; "
            + "compile \(microseconds(compileTime, compileRuns)) µs, render \(microseconds(renderTime, renderRuns)) µs")
        #expect(output.contains("SKU-19") && output.contains("Item &lt;3&gt;") && output.contains("€"))
    }
}
