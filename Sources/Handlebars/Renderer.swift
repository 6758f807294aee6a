import JSON

/// The values `@index`, `@key`, `@first` and `@last` of one `#each` (handlebars.js `createFrame`: a frame starts as a
/// copy of its parent's).
struct DataFrame {
    var index: JSONValue?
    var key: JSONValue?
    var first: JSONValue?
    var last: JSONValue?
}

/// One render: a single output buffer, the context stack (`../`), the data frames (`@../index`) and the block
/// parameter frames. Recursion follows the template's nesting (bounded at compile time) and partial calls (bounded
/// by `maximumPartialDepth`); data never drives it.
struct Renderer {
    private let options: HandlebarsOptions
    private let partials: [String: Program]
    private let root: JSONValue
    private(set) var output: [UInt8] = []
    private var contexts: [JSONValue?]
    private var frames: [DataFrame] = [DataFrame()]
    private var blockParameters: [[JSONValue?]] = []
    private var partialBlocks: [(program: Program?, blockParameters: [[JSONValue?]])] = []
    /// The `{{#*inline}}` partials of the programs being rendered, innermost last.
    private var inlinePartials: [[String: Program]] = []
    private var iterations = 0
    private var steps = 0
    private var partialDepth = 0

    init(root: JSONValue, partials: [String: Program], options: HandlebarsOptions) {
        self.root = root
        self.partials = partials
        self.options = options
        contexts = [root]
    }

    // MARK: Output

    private mutating func checkOutputSize() throws(HandlebarsRenderError) {
        if output.count > options.maximumOutputBytes {
            throw HandlebarsRenderError(.outputTooLarge(limit: options.maximumOutputBytes))
        }
    }

    private mutating func append(_ text: String) throws(HandlebarsRenderError) {
        if text.utf8.count > options.maximumOutputBytes - output.count {
            throw HandlebarsRenderError(.outputTooLarge(limit: options.maximumOutputBytes))
        }
        output.append(contentsOf: text.utf8)
    }

    private mutating func appendEscaped(_ text: String) throws(HandlebarsRenderError) {
        if text.utf8.count > options.maximumOutputBytes - output.count {
            throw HandlebarsRenderError(.outputTooLarge(limit: options.maximumOutputBytes))
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "&"): output.append(contentsOf: "&amp;".utf8)
            case UInt8(ascii: "<"): output.append(contentsOf: "&lt;".utf8)
            case UInt8(ascii: ">"): output.append(contentsOf: "&gt;".utf8)
            case UInt8(ascii: "\""): output.append(contentsOf: "&quot;".utf8)
            case UInt8(ascii: "'"): output.append(contentsOf: "&#x27;".utf8)
            case UInt8(ascii: "`"): output.append(contentsOf: "&#x60;".utf8)
            case UInt8(ascii: "="): output.append(contentsOf: "&#x3D;".utf8)
            default: output.append(byte)
            }
        }
        try checkOutputSize()
    }

    /// A value as JavaScript's `String(value)` prints it (arrays comma-joined, flattened without recursion), with
    /// `null` and `undefined` as nothing.
    private mutating func write(_ value: JSONValue?, escaped: Bool) throws(HandlebarsRenderError) {
        guard let value else { return }
        switch value {
        case .array(let elements):
            var pending: [(elements: [JSONValue], next: Int)] = [(elements, 0)]
            while let (elements, next) = pending.popLast() {
                guard next < elements.count else { continue }
                if next > 0 { try append(",") }
                pending.append((elements, next + 1))
                if case .array(let inner) = elements[next] {
                    pending.append((inner, 0))
                } else {
                    try writeScalar(elements[next], escaped: escaped)
                }
            }
        default:
            try writeScalar(value, escaped: escaped)
        }
    }

    private mutating func writeScalar(_ value: JSONValue, escaped: Bool) throws(HandlebarsRenderError) {
        switch value {
        case .null, .array: return
        case .bool(let bool): try append(bool ? "true" : "false")
        case .number(let number): try append(number.text)
        case .string(let string): if escaped { try appendEscaped(string) } else { try append(string) }
        case .object: try append("[object Object]")
        }
    }

    static func javaScriptString(_ value: JSONValue?) -> String {
        guard let value else { return "undefined" }
        switch value {
        case .null: return "null"
        case .bool(let bool): return bool ? "true" : "false"
        case .number(let number): return number.text
        case .string(let string): return string
        case .object: return "[object Object]"
        case .array:
            // A property or partial name: a few KiB is plenty, and a long array (once per iteration) stays cheap.
            var options = HandlebarsOptions()
            options.maximumOutputBytes = 4096
            var renderer = Renderer(root: .null, partials: [:], options: options)
            try? renderer.write(value, escaped: false)
            return String(decoding: renderer.output, as: UTF8.self)
        }
    }

    // MARK: Values

    static func isTruthy(_ value: JSONValue?) -> Bool {
        guard let value else { return false }
        switch value {
        case .null: return false
        case .bool(let bool): return bool
        case .number(let number): return !isZero(number)
        case .string(let string): return !string.isEmpty
        case .array, .object: return true
        }
    }

    private static func isZero(_ number: JSONNumber) -> Bool { number.double == 0 || number.double.isNaN }

    /// handlebars.js `isEmpty`: falsy but not `0`, or an empty array.
    private static func isEmpty(_ value: JSONValue?) -> Bool {
        if case .array(let elements)? = value { return elements.isEmpty }
        if case .number? = value { return false }
        return !isTruthy(value)
    }

    /// An own property as handlebars.js's `lookupProperty` reads it: object members, array elements and `length`,
    /// string `length`.
    static func property(of value: JSONValue?, _ key: String) -> JSONValue? {
        guard let value else { return nil }
        switch value {
        case .object(let object): return object[key]
        case .array(let elements):
            if key == "length" { return .number(JSONNumber(Int64(elements.count))) }
            guard let index = Int(key), index >= 0, index < elements.count, String(index) == key else { return nil }
            return elements[index]
        case .string(let string):
            return key == "length" ? .number(JSONNumber(Int64(string.utf16.count))) : nil
        default: return nil
        }
    }

    private static func descend(_ start: JSONValue?, _ segments: [String]) -> JSONValue? {
        var value = start
        for segment in segments {
            guard let current = value, current != .null else { return value }
            value = property(of: current, segment)
        }
        return value
    }

    private func evaluate(_ expression: Expression) -> JSONValue? {
        switch expression {
        case .undefined: return nil
        case .literal(let value): return value
        case .context(let depth, let segments):
            guard depth < contexts.count else { return nil }
            return Self.descend(contexts[contexts.count - 1 - depth], segments)
        case .data(let depth, let name, let segments):
            guard depth < frames.count else { return nil }
            let frame = frames[frames.count - 1 - depth]
            let value: JSONValue? = switch name {
            case "root": root
            case "index": frame.index
            case "key": frame.key
            case "first": frame.first
            case "last": frame.last
            case "partial-block": partialBlocks.last?.program != nil ? .bool(true) : nil
            default: nil
            }
            return Self.descend(value, segments)
        case .blockParameter(let frame, let index, let segments):
            guard frame < blockParameters.count else { return nil }
            let values = blockParameters[blockParameters.count - 1 - frame]
            return Self.descend(index < values.count ? values[index] : nil, segments)
        case .lookup(let objectExpression, let fieldExpression):
            let object = evaluate(objectExpression)
            guard Self.isTruthy(object) else { return object }
            return Self.property(of: object, Self.javaScriptString(evaluate(fieldExpression)))
        }
    }

    // MARK: Statements

    mutating func render(_ program: Program) throws(HandlebarsRenderError) {
        steps += program.body.count
        if steps > options.maximumRenderSteps { throw HandlebarsRenderError(.tooManySteps(limit: options.maximumRenderSteps)) }
        if !program.inlinePartials.isEmpty { inlinePartials.append(program.inlinePartials) }
        defer { if !program.inlinePartials.isEmpty { inlinePartials.removeLast() } }
        for node in program.body {
            switch node {
            case .content(let content): try append(content.value)
            case .comment: break
            case .mustache(let mustache):
                guard let expression = mustache.expression else { continue }
                try write(evaluate(expression), escaped: mustache.escaped && !options.noEscape)
            case .block(let block): try render(block)
            case .partial(let partial):
                try renderPartial(partial.target, context: partial.context, hash: partial.hash, indent: partial.indent, block: nil)
            }
        }
    }

    private mutating func render(_ program: Program?, parameters: [JSONValue?]? = nil) throws(HandlebarsRenderError) {
        guard let program else { return }
        guard let parameters else { return try render(program) }
        blockParameters.append(parameters)
        defer { blockParameters.removeLast() }
        try render(program)
    }

    /// Renders `program` with `context` as `this` (pushed for `../` unless it is the current context).
    private mutating func render(_ program: Program?, in context: JSONValue?, same: Bool, parameters: [JSONValue?]?) throws(HandlebarsRenderError) {
        guard program != nil else { return }
        if same || Self.looselyEqualPrimitives(context, contexts.last ?? nil) {
            return try render(program, parameters: parameters)
        }
        contexts.append(context)
        defer { contexts.removeLast() }
        try render(program, parameters: parameters)
    }

    /// JavaScript's `context != depths[0]` for primitives (objects and arrays count as different).
    private static func looselyEqualPrimitives(_ a: JSONValue?, _ b: JSONValue?) -> Bool {
        switch (a, b) {
        case (nil, nil), (nil, .null?), (.null?, nil), (.null?, .null?): true
        case (.bool(let x)?, .bool(let y)?): x == y
        case (.string(let x)?, .string(let y)?): x == y
        case (.number(let x)?, .number(let y)?): x.numericallyEquals(y)
        default: false
        }
    }

    private mutating func render(_ block: BlockNode) throws(HandlebarsRenderError) {
        let unusedParameters: [JSONValue?]? = block.blockParameterCount > 0 ? [] : nil
        switch block.kind {
        case .ifBlock(let condition, let includeZero), .unless(let condition, let includeZero):
            let value = evaluate(condition)
            var truthy = !Self.isEmpty(value) && Self.isTruthy(value)
            if case .number? = value, !truthy, let includeZero, Self.isTruthy(evaluate(includeZero)) { truthy = true }
            if case .unless = block.kind { truthy.toggle() }
            try render(truthy ? block.program : block.inverse, parameters: truthy ? unusedParameters : nil)
        case .with(let expression):
            let value = evaluate(expression)
            if Self.isEmpty(value) {
                try render(block.inverse)
            } else {
                try render(block.program, in: value, same: expression.isThis, parameters: block.blockParameterCount > 0 ? [value] : nil)
            }
        case .each(let expression):
            try renderEach(evaluate(expression), block)
        case .section(let expression):
            let value = evaluate(expression)
            switch value {
            case .bool(true)?: try render(block.program, parameters: unusedParameters)
            case nil, .null?, .bool(false)?: try render(block.inverse)
            case .array?: try renderEach(value, block)
            default: try render(block.program, in: value, same: expression.isThis, parameters: unusedParameters)
            }
        case .raw: try render(block.program)
        case .log, .inlinePartial: break
        case .partialBlock(let target, let context, let hash):
            try renderPartial(target, context: context, hash: hash, indent: "", block: block.program)
        }
    }

    private mutating func countIteration() throws(HandlebarsRenderError) {
        iterations += 1
        if iterations > options.maximumIterations {
            throw HandlebarsRenderError(.tooManyIterations(limit: options.maximumIterations))
        }
    }

    private mutating func renderEach(_ value: JSONValue?, _ block: BlockNode) throws(HandlebarsRenderError) {
        let withParameters = block.blockParameterCount > 0
        switch value {
        case .array(let elements)? where !elements.isEmpty:
            frames.append(frames[frames.count - 1])
            defer { frames.removeLast() }
            for (index, element) in elements.enumerated() {
                try countIteration()
                let position = JSONValue.number(JSONNumber(Int64(index)))
                frames[frames.count - 1].index = position
                frames[frames.count - 1].key = position
                frames[frames.count - 1].first = .bool(index == 0)
                frames[frames.count - 1].last = .bool(index == elements.count - 1)
                contexts.append(element)
                defer { contexts.removeLast() }
                try render(block.program, parameters: withParameters ? [element, position] : nil)
            }
        case .object(let object)? where object.count > 0:
            frames.append(frames[frames.count - 1])
            defer { frames.removeLast() }
            for (index, member) in object.enumerated() {
                try countIteration()
                frames[frames.count - 1].index = .number(JSONNumber(Int64(index)))
                frames[frames.count - 1].key = .string(member.key)
                frames[frames.count - 1].first = .bool(index == 0)
                frames[frames.count - 1].last = .bool(index == object.count - 1)
                contexts.append(member.value)
                defer { contexts.removeLast() }
                try render(block.program, parameters: withParameters ? [member.value, .string(member.key)] : nil)
            }
        default:
            try render(block.inverse)
        }
    }

    // MARK: Partials

    private mutating func renderPartial(
        _ target: PartialTarget, context contextExpression: Expression?, hash: [(String, Expression)], indent: String,
        block fallback: Program?
    ) throws(HandlebarsRenderError) {
        let program: Program
        var savedParameters = blockParameters
        var isPartialBlockCall = false
        let current = contexts.last ?? nil
        var context = contextExpression.map { evaluate($0) } ?? current
        if !hash.isEmpty {
            var members: [(String, JSONValue)] = []
            if case .object(let object)? = context {
                // Copying the context's members is work the data sizes: it counts against the iteration budget.
                iterations += object.count
                try countIteration()
                members = object.map { ($0.key, $0.value) }
            }
            var merged = JSONObject(members)
            for (key, expression) in hash { merged[key] = evaluate(expression) ?? .null }
            context = .object(merged)
        }
        let sameContext = contextExpression == nil && hash.isEmpty
        let name: String
        switch target {
        case .named(let named): name = named
        case .dynamic(let expression): name = Self.javaScriptString(evaluate(expression))
        case .partialBlock: name = "@partial-block"
        }
        // A partial block's own inline partials are visible to the partial it calls.
        let blockInlinePartials = fallback?.inlinePartials ?? [:]
        if !blockInlinePartials.isEmpty { inlinePartials.append(blockInlinePartials) }
        defer { if !blockInlinePartials.isEmpty { inlinePartials.removeLast() } }
        switch target {
        case .named, .dynamic:
            guard let found = findPartial(name) else {
                if fallback != nil { return try render(fallback, in: context, same: sameContext, parameters: nil) }
                throw HandlebarsRenderError(.partialNotFound(name: name))
            }
            program = found
        case .partialBlock:
            guard let (found, parameters) = partialBlocks.last, let found else {
                throw HandlebarsRenderError(.partialNotFound(name: "@partial-block"))
            }
            program = found
            savedParameters = parameters
            isPartialBlockCall = true
        }
        partialDepth += 1
        defer { partialDepth -= 1 }
        if partialDepth > options.maximumPartialDepth {
            throw HandlebarsRenderError(.partialsTooDeep(limit: options.maximumPartialDepth))
        }
        let outerParameters = blockParameters
        let outerPartialBlocks = partialBlocks
        blockParameters = isPartialBlockCall ? savedParameters : []
        if isPartialBlockCall {
            partialBlocks.removeLast()
        } else if fallback != nil {
            partialBlocks.append((fallback, outerParameters))
        }
        defer {
            blockParameters = outerParameters
            partialBlocks = outerPartialBlocks
        }
        if options.preventIndent && !indent.isEmpty { try append(indent) }
        let start = output.count
        try render(program, in: context, same: sameContext, parameters: nil)
        if !indent.isEmpty && !options.preventIndent { try applyIndent(indent, from: start) }
    }

    private func findPartial(_ name: String) -> Program? {
        for scope in inlinePartials.reversed() {
            if let program = scope[name] { return program }
        }
        return partials[name]
    }

    /// Prefixes every line the partial wrote with the standalone partial's indentation (not an empty last line).
    private mutating func applyIndent(_ indent: String, from start: Int) throws(HandlebarsRenderError) {
        let written = output[start...]
        var indented: [UInt8] = []
        indented.reserveCapacity(written.count + indent.utf8.count)
        var atLineStart = true
        for byte in written {
            if atLineStart {
                indented.append(contentsOf: indent.utf8)
                atLineStart = false
            }
            indented.append(byte)
            if byte == UInt8(ascii: "\n") { atLineStart = true }
        }
        output.removeSubrange(start...)
        output.append(contentsOf: indented)
        try checkOutputSize()
    }
}
