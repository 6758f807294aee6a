import JSON

/// A value expression, resolved at compile time: where a path starts (context stack, data frames or block
/// parameters) and which built-in helper a subexpression calls.
indirect enum Expression: Sendable {
    /// JavaScript's `undefined`: renders as nothing, falsy.
    case undefined
    case literal(JSONValue)
    /// `foo.bar`, `../foo`, `this`: `depth` contexts up the stack, then the segments.
    case context(depth: Int, segments: [String])
    /// `@index`, `@root.foo`, `@../key`: `depth` data frames up, then the name and segments.
    case data(depth: Int, name: String, segments: [String])
    /// A name from `as |a b|`: `frame` block-parameter frames up, the `index`-th parameter, then the segments.
    case blockParameter(frame: Int, index: Int, segments: [String])
    /// `(lookup object field)`
    case lookup(Expression, Expression)

    var isThis: Bool {
        if case .context(0, let segments) = self { return segments.isEmpty }
        return false
    }
}

struct StripFlags: Sendable {
    var open = false
    var close = false
}

enum BlockKind: Sendable {
    case ifBlock(Expression, includeZero: Expression?)
    case unless(Expression, includeZero: Expression?)
    case each(Expression)
    case with(Expression)
    /// `{{#name}}` over a value that is not a helper (handlebars.js `blockHelperMissing`).
    case section(Expression)
    /// `{{{{name}}}}...{{{{/name}}}}`: the text as written.
    case raw
    /// `{{#log ...}}`: renders nothing.
    case log
    /// `{{#*inline "name"}}...{{/inline}}`: defines a partial for its enclosing program; renders nothing.
    case inlinePartial(String)
    /// `{{#> name}}fallback{{/name}}`
    case partialBlock(PartialTarget, context: Expression?, hash: [(String, Expression)])
}

enum PartialTarget: Sendable {
    case named(String)
    case dynamic(Expression)
    /// `{{> @partial-block}}`
    case partialBlock
}

struct ContentNode: Sendable {
    var value: String
    let original: String
    var leftStripped = false
    var rightStripped = false
}

struct MustacheNode: Sendable {
    /// nil for `{{log ...}}`, which outputs nothing.
    var expression: Expression?
    var escaped: Bool
    var strip: StripFlags
}

struct BlockNode: Sendable {
    var kind: BlockKind
    var blockParameterCount: Int
    var program: Program?
    var inverse: Program?
    var openStrip = StripFlags()
    var inverseStrip = StripFlags()
    var closeStrip = StripFlags()
}

struct PartialNode: Sendable {
    var target: PartialTarget
    var context: Expression?
    var hash: [(String, Expression)]
    var indent = ""
    var strip: StripFlags
}

enum Node: Sendable {
    case content(ContentNode)
    case mustache(MustacheNode)
    case block(BlockNode)
    case comment(StripFlags)
    case partial(PartialNode)
}

struct Program: Sendable {
    var body: [Node] = []
    /// The inverse of an `{{else if ...}}` chain: one block.
    var chained = false
    /// The `{{#*inline}}` partials defined directly in this program (the last definition of a name wins), visible
    /// while it renders, also to the partials it calls.
    var inlinePartials: [String: Program] = [:]
}
