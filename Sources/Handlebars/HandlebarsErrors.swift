/// A template that cannot be compiled: a syntax error, an unknown helper, a bound exceeded. `line` and `column` are
/// 1-based and point at the offending token (column counted in Unicode scalars).
public struct HandlebarsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The partial whose source holds the error, or nil for the main template.
    public var partial: String?
    public var line: Int
    public var column: Int
    public var message: String

    public init(partial: String? = nil, line: Int, column: Int, message: String) {
        self.partial = partial
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        let place = partial.map { "partial '\($0)', " } ?? ""
        return "Parse error in \(place)line \(line), column \(column): \(message)"
    }
}

/// A render that had to stop: the output or the work it would take exceeds a bound, or a partial named at run time
/// does not exist.
public struct HandlebarsRenderError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// The output would be larger than `HandlebarsOptions.maximumOutputBytes`.
        case outputTooLarge(limit: Int)
        /// `#each` (and sections over arrays) would run more than `HandlebarsOptions.maximumIterations` times (a
        /// partial call with hash arguments counts the members of the context it extends as iterations).
        case tooManyIterations(limit: Int)
        /// The render would visit more than `HandlebarsOptions.maximumRenderSteps` template nodes (a large template
        /// body repeated by `#each`, even when it prints little).
        case tooManySteps(limit: Int)
        /// Partials call partials deeper than `HandlebarsOptions.maximumPartialDepth`.
        case partialsTooDeep(limit: Int)
        /// A dynamic partial (`{{> (lookup . "name")}}`) names a partial that was not given at compile time.
        case partialNotFound(name: String)
    }

    public var reason: Reason

    public init(_ reason: Reason) { self.reason = reason }

    public var description: String {
        switch reason {
        case .outputTooLarge(let limit): "template output exceeds \(limit) bytes"
        case .tooManyIterations(let limit): "template iterates more than \(limit) times (#each over too many elements)"
        case .tooManySteps(let limit): "template rendering takes more than \(limit) steps"
        case .partialsTooDeep(let limit): "partials nest deeper than \(limit) levels"
        case .partialNotFound(let name): "the partial \(name) could not be found"
        }
    }
}

/// Compile options (the handlebars.js ones that make sense without JavaScript) and the bounds that keep a template
/// fed with request data cheap.
public struct HandlebarsOptions: Sendable, Equatable {
    /// Output `{{value}}` without HTML escaping (handlebars.js `noEscape`).
    public var noEscape = false
    /// Keep the whitespace of standalone block and comment lines (handlebars.js `ignoreStandalone`).
    public var ignoreStandalone = false
    /// Do not indent the lines of standalone partials (handlebars.js `preventIndent`).
    public var preventIndent = false
    /// Largest template (and each partial) source, in UTF-8 bytes.
    public var maximumTemplateBytes = 64 * 1024
    /// Deepest nesting of blocks, `else if` chains and subexpressions in a template.
    public var maximumNestingDepth = 64
    /// Largest output of one render, in UTF-8 bytes.
    public var maximumOutputBytes = 16 * 1024 * 1024
    /// Most `#each` iterations (over all blocks) in one render; partial calls with hash arguments count the members
    /// of the context they copy.
    public var maximumIterations = 65_536
    /// Most template nodes (text, mustaches, blocks, partial calls) one render visits: bounds the time of a render
    /// whatever the template and the data.
    public var maximumRenderSteps = 10_000_000
    /// Deepest nesting of partial calls at render time (a partial may call itself over nested data).
    public var maximumPartialDepth = 16

    public init() {}
}
