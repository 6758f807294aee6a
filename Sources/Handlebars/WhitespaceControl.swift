/// handlebars.js's whitespace pass (compiler/whitespace-control.js): `~` strips whitespace next to a tag, and block
/// tags, `{{else}}`, comments and partials alone on their line take the line's whitespace and newline with them.
struct WhitespaceControl {
    private let standalone: Bool
    private var isRootSeen = false

    static func apply(to program: inout Program, ignoreStandalone: Bool) {
        var pass = WhitespaceControl(standalone: !ignoreStandalone)
        pass.visitProgram(&program)
    }

    private init(standalone: Bool) { self.standalone = standalone }

    private struct Strip {
        var open = false
        var close = false
        var openStandalone = false
        var closeStandalone = false
        var inlineStandalone = false
    }

    private mutating func visitProgram(_ program: inout Program) {
        let isRoot = !isRootSeen
        isRootSeen = true
        for index in program.body.indices {
            guard let strip = accept(&program.body[index]) else { continue }
            let previousIsWhitespace = Self.isPreviousWhitespace(program.body, index, isRoot: isRoot)
            let nextIsWhitespace = Self.isNextWhitespace(program.body, index, isRoot: isRoot)
            let openStandalone = strip.openStandalone && previousIsWhitespace
            let closeStandalone = strip.closeStandalone && nextIsWhitespace
            let inlineStandalone = strip.inlineStandalone && previousIsWhitespace && nextIsWhitespace
            if strip.close { Self.omitRight(&program.body, after: index, multiple: true) }
            if strip.open { _ = Self.omitLeft(&program.body, before: index, multiple: true) }
            if standalone && inlineStandalone {
                Self.omitRight(&program.body, after: index, multiple: false)
                if Self.omitLeft(&program.body, before: index, multiple: false),
                   case .partial(var partial) = program.body[index], case .content(let previous) = program.body[index - 1] {
                    partial.indent = String(String.UnicodeScalarView(previous.original.unicodeScalars.reversed().prefix { $0 == " " || $0 == "\t" }.reversed()))
                    program.body[index] = .partial(partial)
                }
            }
            if standalone && openStandalone {
                Self.withBlock(&program.body[index]) { block in
                    if block.program != nil {
                        Self.omitRight(&block.program!.body, after: nil, multiple: false)
                    } else if block.inverse != nil {
                        Self.omitRight(&block.inverse!.body, after: nil, multiple: false)
                    }
                }
                _ = Self.omitLeft(&program.body, before: index, multiple: false)
            }
            if standalone && closeStandalone {
                Self.omitRight(&program.body, after: index, multiple: false)
                Self.withBlock(&program.body[index]) { block in
                    if block.inverse != nil {
                        _ = Self.omitLeft(&block.inverse!.body, before: nil, multiple: false)
                    } else if block.program != nil {
                        _ = Self.omitLeft(&block.program!.body, before: nil, multiple: false)
                    }
                }
            }
        }
    }

    private static func withBlock(_ node: inout Node, _ body: (inout BlockNode) -> Void) {
        guard case .block(var block) = node else { return }
        node = .comment(StripFlags())  // drop the node's reference so the block's arrays are mutated in place
        body(&block)
        node = .block(block)
    }

    private mutating func accept(_ node: inout Node) -> Strip? {
        switch node {
        case .content: return nil
        case .mustache(let mustache): return Strip(open: mustache.strip.open, close: mustache.strip.close)
        case .comment(let strip): return Strip(open: strip.open, close: strip.close, inlineStandalone: true)
        case .partial(let partial): return Strip(open: partial.strip.open, close: partial.strip.close, inlineStandalone: true)
        case .block:
            var strip = Strip()
            Self.withBlock(&node) { block in strip = self.visitBlock(&block) }
            return strip
        }
    }

    private enum Part { case program, inverse, chainedProgram }

    private static func withPart(_ part: Part, of block: inout BlockNode, _ body: (inout [Node]) -> Void) {
        switch part {
        case .program: if block.program != nil { body(&block.program!.body) }
        case .inverse: if block.inverse != nil { body(&block.inverse!.body) }
        case .chainedProgram:
            guard block.inverse != nil, !block.inverse!.body.isEmpty else { return }
            withBlock(&block.inverse!.body[0]) { chained in
                if chained.program != nil { body(&chained.program!.body) }
            }
        }
    }

    private static func body(_ part: Part, of block: BlockNode) -> [Node] {
        switch part {
        case .program: return block.program?.body ?? []
        case .inverse: return block.inverse?.body ?? []
        case .chainedProgram:
            guard case .block(let chained)? = block.inverse?.body.first else { return [] }
            return chained.program?.body ?? []
        }
    }

    private mutating func visitBlock(_ block: inout BlockNode) -> Strip {
        if block.program != nil { visitProgram(&block.program!) }
        if block.inverse != nil { visitProgram(&block.inverse!) }
        let programPart: Part = block.program != nil ? .program : .inverse
        let hasInverse = block.program != nil && block.inverse != nil
        var firstInverse: Part? = hasInverse ? .inverse : nil
        var lastInverse: Part? = firstInverse
        if hasInverse, block.inverse?.chained == true {
            firstInverse = .chainedProgram
            lastInverse = .chainedProgram
        }
        var strip = Strip(open: block.openStrip.open, close: block.closeStrip.close)
        strip.openStandalone = Self.isNextWhitespace(Self.body(programPart, of: block), nil, isRoot: false)
        strip.closeStandalone = Self.isPreviousWhitespace(Self.body(firstInverse ?? programPart, of: block), nil, isRoot: false)
        if block.openStrip.close {
            Self.withPart(programPart, of: &block) { Self.omitRight(&$0, after: nil, multiple: true) }
        }
        if let firstInverse, let lastInverse {
            if block.inverseStrip.open { Self.withPart(programPart, of: &block) { _ = Self.omitLeft(&$0, before: nil, multiple: true) } }
            if block.inverseStrip.close { Self.withPart(firstInverse, of: &block) { Self.omitRight(&$0, after: nil, multiple: true) } }
            if block.closeStrip.open { Self.withPart(lastInverse, of: &block) { _ = Self.omitLeft(&$0, before: nil, multiple: true) } }
            if standalone, Self.isPreviousWhitespace(Self.body(programPart, of: block), nil, isRoot: false),
               Self.isNextWhitespace(Self.body(firstInverse, of: block), nil, isRoot: false) {
                Self.withPart(programPart, of: &block) { _ = Self.omitLeft(&$0, before: nil, multiple: false) }
                Self.withPart(firstInverse, of: &block) { Self.omitRight(&$0, after: nil, multiple: false) }
            }
        } else if block.closeStrip.open {
            Self.withPart(programPart, of: &block) { _ = Self.omitLeft(&$0, before: nil, multiple: true) }
        }
        return strip
    }

    // MARK: The text tests and trims (JavaScript `\s`)

    static func isJavaScriptWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x20, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF: true
        default: false
        }
    }

    /// `/\r?\n\s*?$/` (or, at the start of the root program, `/(^|\r?\n)\s*?$/`) on the text before `index`.
    private static func isPreviousWhitespace(_ body: [Node], _ index: Int?, isRoot: Bool) -> Bool {
        let at = index ?? body.count
        guard at - 1 >= 0 else { return isRoot }
        guard case .content(let previous) = body[at - 1] else { return false }
        let hasSibling = at - 2 >= 0
        let trailing = previous.original.unicodeScalars.reversed().prefix { isJavaScriptWhitespace($0) }
        if trailing.contains("\n") { return true }
        return !(hasSibling || !isRoot) && trailing.count == previous.original.unicodeScalars.count
    }

    /// `/^\s*?\r?\n/` (or, at the end of the root program, `/^\s*?(\r?\n|$)/`) on the text after `index`.
    private static func isNextWhitespace(_ body: [Node], _ index: Int?, isRoot: Bool) -> Bool {
        let at = index ?? -1
        guard at + 1 < body.count else { return isRoot }
        guard case .content(let next) = body[at + 1] else { return false }
        let hasSibling = at + 2 < body.count
        let leading = next.original.unicodeScalars.prefix { isJavaScriptWhitespace($0) }
        if leading.contains("\n") { return true }
        return !(hasSibling || !isRoot) && leading.count == next.original.unicodeScalars.count
    }

    /// Trims the start of the text after `index` (or of the body's first node): all whitespace when `multiple`,
    /// else `/^[ \t]*\r?\n?/`.
    private static func omitRight(_ body: inout [Node], after index: Int?, multiple: Bool) {
        let at = index.map { $0 + 1 } ?? 0
        guard at < body.count, case .content(var content) = body[at] else { return }
        if !multiple && content.rightStripped { return }
        var scalars = Substring(content.value).unicodeScalars[...]
        if multiple {
            scalars = scalars.drop { isJavaScriptWhitespace($0) }
        } else {
            scalars = scalars.drop { $0 == " " || $0 == "\t" }
            if scalars.first == "\r" { scalars = scalars.dropFirst() }
            if scalars.first == "\n" { scalars = scalars.dropFirst() }
            // `\r?\n?`: a lone `\r` not followed by `\n` is still dropped by the regex's `\r?`.
        }
        let value = String(String.UnicodeScalarView(scalars))
        content.rightStripped = value != content.value
        content.value = value
        body[at] = .content(content)
    }

    /// Trims the end of the text before `index` (or of the body's last node): all whitespace when `multiple`, else
    /// `/[ \t]+$/`. Returns whether anything was trimmed.
    private static func omitLeft(_ body: inout [Node], before index: Int?, multiple: Bool) -> Bool {
        let at = index.map { $0 - 1 } ?? body.count - 1
        guard at >= 0, at < body.count, case .content(var content) = body[at] else { return false }
        if !multiple && content.leftStripped { return false }
        var scalars = Substring(content.value).unicodeScalars[...]
        if multiple {
            while let last = scalars.last, isJavaScriptWhitespace(last) { scalars = scalars.dropLast() }
        } else {
            while let last = scalars.last, last == " " || last == "\t" { scalars = scalars.dropLast() }
        }
        let value = String(String.UnicodeScalarView(scalars))
        content.leftStripped = value != content.value
        content.value = value
        body[at] = .content(content)
        return content.leftStripped
    }
}
