import JSON

/// A Handlebars template (handlebars.js 4 semantics, built-in helpers only), compiled once and rendered many times
/// over JSON contexts.
///
/// Supported: `{{path}}` (HTML-escaped), `{{{raw}}}`, `{{& raw}}`, `this`, `./`, `../`, `[literal]` segments,
/// `@root`, `@index`, `@key`, `@first`, `@last`, `@../index`; `#if`/`else if`/`else`, `#unless`, `#each` (arrays and
/// objects, `as |item index|`), `#with`, sections `{{#value}}` and inverse sections `{{^value}}`, `lookup` (also as a
/// subexpression), `log` (no output); comments, `~` whitespace control, standalone lines, raw blocks
/// `{{{{name}}}}...{{{{/name}}}}` (the text as written), `\{{` escapes; partials `{{> name}}` with a context and hash
/// arguments, dynamic partials `{{> (lookup . "field")}}`, partial blocks with `{{> @partial-block}}` and inline
/// partials `{{#*inline "name"}}`. Not supported (refused at compile time): custom helpers, other decorators.
public struct HandlebarsTemplate: Sendable {
    private let program: Program
    private let partials: [String: Program]
    public let options: HandlebarsOptions

    /// Compiles `source` and every partial (by name); `{{> name}}` must name one of `partials`.
    public init(source: String, partials partialSources: [String: String] = [:], options: HandlebarsOptions = HandlebarsOptions()) throws(HandlebarsError) {
        self.options = options
        var names = Set(partialSources.keys)
        let main = try Self.compile(source, partialName: nil, knownPartials: names, options: options)
        var compiled: [String: Program] = [:]
        var results = [main]
        for (name, partialSource) in partialSources.sorted(by: { $0.key < $1.key }) {
            let result = try Self.compile(partialSource, partialName: name, knownPartials: names, options: options)
            compiled[name] = result.program
            results.append(result)
        }
        for result in results { names.formUnion(result.inlinePartialNames) }
        for result in results {
            if let missing = result.partialReferences.first(where: { !names.contains($0.name) }) { throw missing.error }
        }
        program = main.program
        partials = compiled
    }

    private static func compile(_ source: String, partialName: String?, knownPartials: Set<String>, options: HandlebarsOptions) throws(HandlebarsError) -> Parser.Result {
        let bytes = Array(source.utf8)
        guard bytes.count <= options.maximumTemplateBytes else {
            throw HandlebarsError(partial: partialName, line: 1, column: 1,
                                  message: "the template is \(bytes.count) bytes, more than the limit of \(options.maximumTemplateBytes)")
        }
        var result = try Parser.parse(bytes, partialName: partialName, knownPartials: knownPartials, maximumDepth: options.maximumNestingDepth)
        WhitespaceControl.apply(to: &result.program, ignoreStandalone: options.ignoreStandalone)
        collectInlinePartials(&result.program)
        return result
    }

    /// Moves each `{{#*inline}}` body into its enclosing program's table (recursion follows the template's nesting,
    /// bounded at parse time).
    private static func collectInlinePartials(_ program: inout Program) {
        for index in program.body.indices {
            guard case .block(var block) = program.body[index] else { continue }
            program.body[index] = .comment(StripFlags())
            if block.program != nil { collectInlinePartials(&block.program!) }
            if block.inverse != nil { collectInlinePartials(&block.inverse!) }
            if case .inlinePartial(let name) = block.kind, let body = block.program {
                program.inlinePartials[name] = body
            }
            program.body[index] = .block(block)
        }
    }

    /// Renders the template with `context` as `this` and `@root`.
    public func render(_ context: JSONValue) throws(HandlebarsRenderError) -> String {
        var renderer = Renderer(root: context, partials: partials, options: options)
        try renderer.render(program)
        return String(decoding: renderer.output, as: UTF8.self)
    }
}
