import JSON

/// Recursive descent over handlebars.js's grammar (handlebars.yy), resolving paths, block parameters and built-in
/// helpers as it goes. Recursion is bounded by `maximumNestingDepth` (blocks, `else` chains, subexpressions).
struct Parser {
    static let builtInHelpers: Set<String> = ["if", "unless", "each", "with", "lookup", "log", "helperMissing", "blockHelperMissing"]

    private let tokens: [Token]
    private let bytes: [UInt8]
    private let partialName: String?
    private let knownPartials: Set<String>
    private let maximumDepth: Int
    private var index = 0
    private var depth = 0
    private var blockParameterScopes: [[String]] = []
    /// Names `{{#*inline}}` defines, and the static partial names `{{> name}}` uses (checked once every source is
    /// parsed: an inline partial of one source may serve another).
    private(set) var inlinePartialNames: Set<String> = []
    private var partialReferenceOffsets: [(name: String, offset: Int)] = []

    struct Result {
        var program: Program
        var inlinePartialNames: Set<String>
        var partialReferences: [(name: String, error: HandlebarsError)]
    }

    static func parse(
        _ bytes: [UInt8], partialName: String?, knownPartials: Set<String>, maximumDepth: Int
    ) throws(HandlebarsError) -> Result {
        let tokens = try Lexer.tokenize(bytes, partialName: partialName)
        var parser = Parser(tokens: tokens, bytes: bytes, partialName: partialName, knownPartials: knownPartials, maximumDepth: maximumDepth)
        let program = try parser.parseProgram()
        guard parser.current.kind == .endOfInput else {
            let token = parser.current
            let message = switch token.kind {
            case .openEndBlock: "unexpected closing tag '\(token.raw)': no block is open"
            case .inverse, .openInverseChain: "unexpected '\(token.raw)' outside a block"
            default: "expecting text or a mustache, got \(token.kind.displayName)"
            }
            throw parser.error(at: token, message)
        }
        // Positions in one pass (the references are in source order), not one scan of the template per reference.
        let locations = Lexer.locations(of: parser.partialReferenceOffsets.map(\.offset), in: bytes)
        let references = zip(parser.partialReferenceOffsets, locations).map { reference, location in
            (name: reference.name, error: HandlebarsError(partial: partialName, line: location.line, column: location.column,
                                                          message: "the partial \(reference.name) could not be found"))
        }
        return Result(program: program, inlinePartialNames: parser.inlinePartialNames, partialReferences: references)
    }

    private init(tokens: [Token], bytes: [UInt8], partialName: String?, knownPartials: Set<String>, maximumDepth: Int) {
        self.tokens = tokens
        self.bytes = bytes
        self.partialName = partialName
        self.knownPartials = knownPartials
        self.maximumDepth = maximumDepth
    }

    // MARK: Tokens

    private var current: Token { tokens[min(index, tokens.count - 1)] }
    private func peek(_ offset: Int) -> Token { tokens[min(index + offset, tokens.count - 1)] }

    private mutating func advance() -> Token {
        let token = current
        if index < tokens.count - 1 { index += 1 }
        return token
    }

    private func error(at token: Token, _ message: String) -> HandlebarsError {
        let (line, column) = Lexer.location(of: token.offset, in: bytes)
        return HandlebarsError(partial: partialName, line: line, column: column, message: message)
    }

    private mutating func expect(_ kind: TokenKind, _ context: String) throws(HandlebarsError) -> Token {
        guard current.kind == kind else {
            throw error(at: current, "expecting \(kind.displayName) \(context), got \(current.kind.displayName)")
        }
        return advance()
    }

    private static func stripFlags(open: Token, close: Token) -> StripFlags {
        let openBytes = Array(open.raw.utf8)
        let closeBytes = Array(close.raw.utf8)
        return StripFlags(
            open: openBytes.count > 2 && openBytes[2] == UInt8(ascii: "~"),
            close: closeBytes.count >= 3 && closeBytes[closeBytes.count - 3] == UInt8(ascii: "~"))
    }

    private static func isDecorator(_ open: Token) -> Bool { open.raw.contains("*") }

    private mutating func enterNesting(_ token: Token) throws(HandlebarsError) {
        depth += 1
        if depth > maximumDepth {
            throw error(at: token, "the template nests blocks, 'else' chains or subexpressions deeper than \(maximumDepth) levels")
        }
    }

    // MARK: Statements

    private mutating func parseProgram() throws(HandlebarsError) -> Program {
        var program = Program()
        while true {
            let token = current
            switch token.kind {
            case .content:
                _ = advance()
                program.body.append(.content(ContentNode(value: token.text, original: token.text)))
            case .comment:
                _ = advance()
                program.body.append(.comment(Self.stripFlags(open: token, close: token)))
            case .open, .openUnescaped:
                program.body.append(try parseMustache())
            case .openBlock, .openInverse:
                program.body.append(.block(try parseBlock()))
            case .openPartial:
                program.body.append(try parsePartial())
            case .openPartialBlock:
                program.body.append(.block(try parsePartialBlock()))
            case .openRawBlock:
                program.body.append(.block(try parseRawBlock()))
            default:
                return program
            }
        }
    }

    private mutating func parseMustache() throws(HandlebarsError) -> Node {
        let open = advance()
        if Self.isDecorator(open) { throw error(at: open, "decorators ('{{*') are not supported") }
        let unescaped = open.kind == .openUnescaped || open.raw.hasSuffix("&")
        let call = try parseCall()
        let close = try expect(unescaped && open.kind == .openUnescaped ? .closeUnescaped : .close, "to close the mustache")
        let expression: Expression?
        if let helper = helperName(call.head) {
            switch helper {
            case "lookup": expression = .lookup(call.params.first ?? .undefined, call.params.dropFirst().first ?? .undefined)
            case "log": expression = nil
            default: throw error(at: call.headToken, "the '\(helper)' helper needs a block: {{#\(helper) ...}}...{{/\(helper)}}")
            }
        } else if !call.params.isEmpty || !call.hash.isEmpty {
            throw unknownHelper(call)
        } else {
            expression = resolve(call.head)
        }
        return .mustache(MustacheNode(expression: expression, escaped: !unescaped, strip: Self.stripFlags(open: open, close: close)))
    }

    private func unknownHelper(_ call: Call) -> HandlebarsError {
        error(at: call.headToken, "unknown helper '\(call.head.original)': custom helpers are not supported (built-in: if, unless, each, with, lookup, log)")
    }

    /// `{{#name ...}}` or `{{^name ...}}` through `{{/name}}`.
    private mutating func parseBlock() throws(HandlebarsError) -> BlockNode {
        let open = advance()
        try enterNesting(open)
        defer { depth -= 1 }
        let inverted = open.kind == .openInverse
        let tag = try parseOpenTag()
        let kind: BlockKind
        if Self.isDecorator(open) {
            guard tag.call.head.original == "inline", tag.call.params.count == 1, case .literal(.string(let name)) = tag.call.params[0] else {
                throw error(at: open, "decorator blocks other than {{#*inline \"name\"}} are not supported")
            }
            kind = .inlinePartial(name)
            inlinePartialNames.insert(name)
        } else {
            kind = try blockKind(tag.call)
        }
        var block = BlockNode(kind: kind, blockParameterCount: tag.blockParameters.count)
        block.openStrip = Self.stripFlags(open: open, close: tag.close)
        block.program = try parseScopedProgram(tag.blockParameters)
        var chained = false
        if current.kind == .inverse {
            let inverse = advance()
            block.inverseStrip = Self.stripFlags(open: inverse, close: inverse)
            block.inverse = try parseProgram()
        } else if current.kind == .openInverseChain {
            if inverted { throw error(at: current, "'{{else ...}}' chains cannot follow an inverted section '{{^'") }
            let (program, strip) = try parseInverseChain()
            block.inverse = program
            block.inverseStrip = strip
            chained = true
        }
        block.closeStrip = try parseClose(matching: tag.call)
        if chained, case .block(var first)? = block.inverse?.body.first {
            first.closeStrip = block.closeStrip
            block.inverse?.body[0] = .block(first)
        }
        if inverted { swap(&block.program, &block.inverse) }
        return block
    }

    /// `{{else name ...}}program` and what follows it, as a chained inverse program holding one block.
    private mutating func parseInverseChain() throws(HandlebarsError) -> (Program, StripFlags) {
        let open = advance()
        try enterNesting(open)
        defer { depth -= 1 }
        let tag = try parseOpenTag()
        var block = BlockNode(kind: try blockKind(tag.call), blockParameterCount: tag.blockParameters.count)
        let strip = Self.stripFlags(open: open, close: tag.close)
        block.openStrip = strip
        block.program = try parseScopedProgram(tag.blockParameters)
        if current.kind == .inverse {
            let inverse = advance()
            block.inverseStrip = Self.stripFlags(open: inverse, close: inverse)
            block.closeStrip = block.inverseStrip
            block.inverse = try parseProgram()
        } else if current.kind == .openInverseChain {
            var (program, innerStrip) = try parseInverseChain()
            if case .block(var first)? = program.body.first {
                first.closeStrip = innerStrip
                program.body[0] = .block(first)
            }
            block.inverse = program
            block.inverseStrip = innerStrip
            block.closeStrip = innerStrip
        }
        return (Program(body: [.block(block)], chained: true), strip)
    }

    private mutating func parseScopedProgram(_ blockParameters: [String]) throws(HandlebarsError) -> Program {
        if blockParameters.isEmpty { return try parseProgram() }
        blockParameterScopes.append(blockParameters)
        defer { blockParameterScopes.removeLast() }
        return try parseProgram()
    }

    private mutating func parseClose(matching call: Call) throws(HandlebarsError) -> StripFlags {
        guard current.kind == .openEndBlock else {
            throw error(at: current, "expecting '{{/\(call.head.original)}}' to close the block, got \(current.kind.displayName)")
        }
        let open = advance()
        let closing = try parseCall()
        let close = try expect(.close, "to close '{{/\(closing.head.original)'")
        guard closing.head.original == call.head.original, closing.params.isEmpty, closing.hash.isEmpty else {
            throw error(at: open, "\(call.head.original) doesn't match \(closing.head.original)")
        }
        return Self.stripFlags(open: open, close: close)
    }

    private func blockKind(_ call: Call) throws(HandlebarsError) -> BlockKind {
        guard let helper = helperName(call.head) else {
            if !call.params.isEmpty || !call.hash.isEmpty { throw unknownHelper(call) }
            return .section(resolve(call.head))
        }
        let includeZero = call.hash.first { $0.0 == "includeZero" }?.1
        switch helper {
        case "if", "unless", "with":
            guard call.params.count == 1 else {
                throw error(at: call.headToken, "#\(helper) requires exactly one argument, got \(call.params.count)")
            }
            return helper == "if" ? .ifBlock(call.params[0], includeZero: includeZero)
                : helper == "unless" ? .unless(call.params[0], includeZero: includeZero) : .with(call.params[0])
        case "each":
            guard let iterated = call.params.first else { throw error(at: call.headToken, "Must pass iterator to #each") }
            return .each(iterated)
        case "log":
            return .log
        default:
            throw error(at: call.headToken, "the '\(helper)' helper cannot be used as a block")
        }
    }

    private mutating func parsePartial() throws(HandlebarsError) -> Node {
        let open = advance()
        let (target, context, hash) = try parsePartialCall(open)
        let close = try expect(.close, "to close the partial")
        if case .named(let name) = target, !knownPartials.contains(name) {
            partialReferenceOffsets.append((name, open.offset))
        }
        return .partial(PartialNode(target: target, context: context, hash: hash, strip: Self.stripFlags(open: open, close: close)))
    }

    private mutating func parsePartialBlock() throws(HandlebarsError) -> BlockNode {
        let open = advance()
        try enterNesting(open)
        defer { depth -= 1 }
        let nameToken = current
        let (target, context, hash) = try parsePartialCall(open)
        let close = try expect(.close, "to close the partial block")
        var block = BlockNode(kind: .partialBlock(target, context: context, hash: hash), blockParameterCount: 0)
        block.openStrip = Self.stripFlags(open: open, close: close)
        block.program = try parseProgram()
        let name = switch target {
        case .named(let name): name
        case .partialBlock: "@partial-block"
        case .dynamic: ""
        }
        let head = Head(kind: .path(data: false, depth: 0, parts: [name]), original: name, scoped: false)
        block.closeStrip = try parseClose(matching: Call(head: head, headToken: nameToken, params: [], hash: []))
        return block
    }

    private mutating func parsePartialCall(_ open: Token) throws(HandlebarsError) -> (PartialTarget, Expression?, [(String, Expression)]) {
        let target: PartialTarget
        if current.kind == .openSexpr {
            target = .dynamic(try parseSubexpression())
        } else {
            let nameToken = current
            let head = try parseHead()
            switch head.kind {
            case .path(data: true, _, let parts):
                guard parts == ["partial-block"] else { throw error(at: nameToken, "a partial name cannot be the data variable '\(head.original)'") }
                target = .partialBlock
            default:
                target = .named(head.original)
            }
        }
        var params: [Expression] = []
        while isParamStart, !isHashStart { params.append(try parseParam()) }
        let hash = try parseHash()
        if params.count > 1 { throw error(at: open, "Unsupported number of partial arguments: \(params.count)") }
        return (target, params.first, hash)
    }

    private mutating func parseRawBlock() throws(HandlebarsError) -> BlockNode {
        let open = advance()
        try enterNesting(open)
        defer { depth -= 1 }
        let call = try parseCall()
        _ = try expect(.closeRawBlock, "to close the raw block's opening '{{{{'")
        if !call.params.isEmpty || !call.hash.isEmpty { throw unknownHelper(call) }
        var program = Program()
        while current.kind == .content {
            let token = advance()
            program.body.append(.content(ContentNode(value: token.text, original: token.text)))
        }
        let end = try expect(.endRawBlock, "to close the raw block")
        guard end.text == call.head.original else { throw error(at: end, "\(call.head.original) doesn't match \(end.text)") }
        var block = BlockNode(kind: .raw, blockParameterCount: 0)
        block.program = program
        return block
    }

    // MARK: Expressions

    struct Head {
        enum Kind { case path(data: Bool, depth: Int, parts: [String]), literal(JSONValue?) }
        var kind: Kind
        var original: String
        var scoped: Bool
    }

    struct Call {
        var head: Head
        var headToken: Token
        var params: [Expression]
        var hash: [(String, Expression)]
    }

    struct OpenTag {
        var call: Call
        var blockParameters: [String]
        var close: Token
    }

    private mutating func parseOpenTag() throws(HandlebarsError) -> OpenTag {
        let call = try parseCall()
        var blockParameters: [String] = []
        if current.kind == .openBlockParams {
            _ = advance()
            while current.kind == .id { blockParameters.append(advance().text) }
            if blockParameters.isEmpty { throw error(at: current, "expecting block parameter names after 'as |'") }
            _ = try expect(.closeBlockParams, "to end the block parameters")
        }
        let close = try expect(.close, "to close the block's opening tag")
        return OpenTag(call: call, blockParameters: blockParameters, close: close)
    }

    private var isParamStart: Bool {
        switch current.kind {
        case .id, .data, .string, .number, .boolean, .undefined, .null, .openSexpr: true
        default: false
        }
    }

    private var isHashStart: Bool { current.kind == .id && peek(1).kind == .equals }

    /// `helperName param* hash?`
    private mutating func parseCall() throws(HandlebarsError) -> Call {
        let headToken = current
        let head = try parseHead()
        var params: [Expression] = []
        while isParamStart, !isHashStart { params.append(try parseParam()) }
        let hash = try parseHash()
        return Call(head: head, headToken: headToken, params: params, hash: hash)
    }

    private mutating func parseHash() throws(HandlebarsError) -> [(String, Expression)] {
        var hash: [(String, Expression)] = []
        while isHashStart {
            let key = advance().text
            _ = advance()
            hash.append((key, try parseParam()))
        }
        if isParamStart { throw error(at: current, "a parameter cannot follow hash arguments (key=value)") }
        return hash
    }

    private mutating func parseHead() throws(HandlebarsError) -> Head {
        let token = current
        switch token.kind {
        case .id: return try parsePath(data: false)
        case .data:
            _ = advance()
            return try parsePath(data: true)
        case .string: _ = advance(); return Head(kind: .literal(.string(token.text)), original: token.text, scoped: false)
        case .number: _ = advance(); return Head(kind: .literal(.number(JSONNumber(text: token.text))), original: token.text, scoped: false)
        case .boolean: _ = advance(); return Head(kind: .literal(.bool(token.text == "true")), original: token.text, scoped: false)
        case .undefined: _ = advance(); return Head(kind: .literal(nil), original: "undefined", scoped: false)
        case .null: _ = advance(); return Head(kind: .literal(.null), original: "null", scoped: false)
        default: throw error(at: token, "expecting a path, a literal or a helper name, got \(token.kind.displayName)")
        }
    }

    /// `pathSegments: ID (SEP ID)*`, then handlebars.js's `preparePath` (`this`, `.`, `..` only at the start).
    private mutating func parsePath(data: Bool) throws(HandlebarsError) -> Head {
        let first = try expect(.id, data ? "after '@'" : "to start a path")
        var segments: [(token: Token, separator: String?)] = [(first, nil)]
        while current.kind == .separator {
            let separator = advance()
            if current.kind == .number, !current.text.hasPrefix("-") {
                // `items.0}}`: handlebars.js lexes the index as a number and refuses the path; accept it as the
                // segment `0` (and `items.1.2}}` as `1`, `2`) instead.
                var number = advance()
                number.isBracketed = true
                for (position, digits) in number.text.split(separator: ".").enumerated() {
                    number.text = String(digits)
                    segments.append((number, position == 0 ? separator.raw : "."))
                }
                continue
            }
            let segment = try expect(.id, "after '\(separator.raw)' in a path")
            segments.append((segment, separator.raw))
        }
        var original = data ? "@" : ""
        var parts: [String] = []
        var depth = 0
        for (token, separator) in segments {
            original += (separator ?? "") + token.text
            let part = token.text
            if !token.isBracketed && (part == ".." || part == "." || part == "this") {
                if !parts.isEmpty { throw error(at: first, "Invalid path: \(original)") }
                if part == ".." { depth += 1 }
            } else {
                parts.append(part)
            }
        }
        return Head(kind: .path(data: data, depth: depth, parts: parts), original: original, scoped: Self.isScoped(original))
    }

    /// handlebars.js `scopedId`: `/^\.|this\b/`.
    private static func isScoped(_ original: String) -> Bool {
        if original.hasPrefix(".") { return true }
        let scalars = Array(original.unicodeScalars)
        let this = Array("this".unicodeScalars)
        guard scalars.count >= 4 else { return false }
        for start in 0...(scalars.count - 4) where Array(scalars[start..<(start + 4)]) == this {
            let end = start + 4
            if end == scalars.count { return true }
            let next = scalars[end]
            let isWord = next == "_" || (next.isASCII && (next.properties.isAlphabetic || ("0"..."9").contains(next)))
            if !isWord { return true }
        }
        return false
    }

    private mutating func parseParam() throws(HandlebarsError) -> Expression {
        if current.kind == .openSexpr { return try parseSubexpression() }
        let head = try parseHead()
        if case .literal(let value) = head.kind { return value.map { .literal($0) } ?? .undefined }
        return resolve(head)
    }

    private mutating func parseSubexpression() throws(HandlebarsError) -> Expression {
        let open = try expect(.openSexpr, "")
        try enterNesting(open)
        defer { depth -= 1 }
        let call = try parseCall()
        _ = try expect(.closeSexpr, "to close the subexpression")
        guard let helper = helperName(call.head) else {
            if call.params.isEmpty && call.hash.isEmpty { return .undefined }  // helperMissing with no arguments
            throw unknownHelper(call)
        }
        switch helper {
        case "lookup": return .lookup(call.params.first ?? .undefined, call.params.dropFirst().first ?? .undefined)
        case "log": return .undefined
        default: throw error(at: call.headToken, "the '\(helper)' helper needs a block and cannot be a subexpression")
        }
    }

    /// The built-in helper a call's head names, if any (a simple identifier that is no block parameter).
    private func helperName(_ head: Head) -> String? {
        let name: String
        switch head.kind {
        case .path(data: false, depth: 0, let parts) where parts.count == 1 && !head.scoped: name = parts[0]
        case .literal: name = head.original
        default: return nil
        }
        guard Self.builtInHelpers.contains(name), blockParameter(named: name) == nil else { return nil }
        return name
    }

    private func blockParameter(named name: String) -> (frame: Int, index: Int)? {
        for (frame, scope) in blockParameterScopes.reversed().enumerated() {
            if let index = scope.firstIndex(of: name) { return (frame, index) }
        }
        return nil
    }

    /// A head used as a value: literals become one-segment paths, as handlebars.js does (`{{"foo bar"}}`, `{{12}}`).
    private func resolve(_ head: Head) -> Expression {
        switch head.kind {
        case .literal: return .context(depth: 0, segments: [head.original])
        case .path(data: true, let depth, let parts):
            return .data(depth: depth, name: parts.first ?? "", segments: Array(parts.dropFirst()))
        case .path(data: false, let depth, let parts):
            if !head.scoped, depth == 0, let first = parts.first, let (frame, index) = blockParameter(named: first) {
                return .blockParameter(frame: frame, index: index, segments: Array(parts.dropFirst()))
            }
            return .context(depth: depth, segments: parts)
        }
    }
}
