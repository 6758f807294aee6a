/// The tokens of handlebars.js's lexer (handlebars.l), produced in one pass over the template's UTF-8 bytes.
enum TokenKind: Equatable {
    case content
    case comment
    case open  // `{{`, `{{&` (unescaped), `{{*` (decorator)
    case openUnescaped  // `{{{`
    case openBlock  // `{{#`, `{{#*` (decorator block)
    case openEndBlock  // `{{/`
    case openInverse  // `{{^`
    case openInverseChain  // `{{else`
    case inverse  // `{{^}}`, `{{else}}`
    case openPartial  // `{{>`
    case openPartialBlock  // `{{#>`
    case openRawBlock  // `{{{{`
    case closeRawBlock  // `}}}}`
    case endRawBlock  // `{{{{/name}}}}`
    case close  // `}}`
    case closeUnescaped  // `}}}`
    case openSexpr, closeSexpr, equals, separator, data
    case id, string, number, boolean, undefined, null
    case openBlockParams, closeBlockParams
    case endOfInput

    var displayName: String {
        switch self {
        case .content: "text"
        case .comment: "a comment"
        case .open: "'{{'"
        case .openUnescaped: "'{{{'"
        case .openBlock: "'{{#'"
        case .openEndBlock: "'{{/'"
        case .openInverse: "'{{^'"
        case .openInverseChain: "'{{else'"
        case .inverse: "'{{else}}'"
        case .openPartial: "'{{>'"
        case .openPartialBlock: "'{{#>'"
        case .openRawBlock: "'{{{{'"
        case .closeRawBlock: "'}}}}'"
        case .endRawBlock: "'{{{{/'"
        case .close: "'}}'"
        case .closeUnescaped: "'}}}'"
        case .openSexpr: "'('"
        case .closeSexpr: "')'"
        case .equals: "'='"
        case .separator: "'.' or '/'"
        case .data: "'@'"
        case .id: "an identifier"
        case .string: "a string"
        case .number: "a number"
        case .boolean: "a boolean"
        case .undefined: "'undefined'"
        case .null: "'null'"
        case .openBlockParams: "'as |'"
        case .closeBlockParams: "'|'"
        case .endOfInput: "the end of the template"
        }
    }
}

struct Token {
    var kind: TokenKind
    /// The token's value: content text, identifier (brackets removed), string contents, number text, end-raw name.
    var text: String
    /// The token as written (for open tags and comments: the strip flags and the escape flag are read from it).
    var raw: String
    /// Byte offset in the template, for error positions.
    var offset: Int
    /// `[literal]` identifiers: not `this`, `.` or `..` even when they read so.
    var isBracketed = false
}

struct Lexer {
    private let bytes: [UInt8]
    private let partialName: String?
    private var position = 0
    private var tokens: [Token] = []

    private enum State { case content, mustache, escapedMustache, raw }
    private var states: [State] = [.content]

    static func tokenize(_ bytes: [UInt8], partialName: String?) throws(HandlebarsError) -> [Token] {
        var lexer = Lexer(bytes: bytes, partialName: partialName)
        try lexer.run()
        return lexer.tokens
    }

    private init(bytes: [UInt8], partialName: String?) {
        self.bytes = bytes
        self.partialName = partialName
    }

    // MARK: Character classes

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D || byte == 0x0B || byte == 0x0C
    }

    /// `[^\s!"#%-,\.\/;->@\[-\^`\{-~]`: the characters an identifier is made of.
    static func isIdentifierByte(_ byte: UInt8) -> Bool {
        if isWhitespace(byte) { return false }
        switch byte {
        case UInt8(ascii: "!"), UInt8(ascii: "\""), UInt8(ascii: "#"): return false
        case UInt8(ascii: "%")...UInt8(ascii: ","): return false
        case UInt8(ascii: "."), UInt8(ascii: "/"): return false
        case UInt8(ascii: ";")...UInt8(ascii: ">"): return false
        case UInt8(ascii: "@"): return false
        case UInt8(ascii: "[")...UInt8(ascii: "^"): return false
        case UInt8(ascii: "`"): return false
        case UInt8(ascii: "{")...UInt8(ascii: "~"): return false
        default: return true
        }
    }

    /// `[=~}\s\/.)|]`: what may follow an identifier.
    private func isIdentifierLookahead(_ index: Int) -> Bool {
        guard index < bytes.count else { return false }
        let byte = bytes[index]
        return isWhitespace(byte) || "=~}/.)|".utf8.contains(byte)
    }

    /// `[~}\s)]`: what may follow a literal.
    private func isLiteralLookahead(_ index: Int) -> Bool {
        guard index < bytes.count else { return false }
        let byte = bytes[index]
        return isWhitespace(byte) || "~})".utf8.contains(byte)
    }

    private func isWhitespace(_ byte: UInt8) -> Bool { Self.isWhitespace(byte) }

    private func matches(_ literal: String, at index: Int) -> Bool {
        var at = index
        for byte in literal.utf8 {
            guard at < bytes.count, bytes[at] == byte else { return false }
            at += 1
        }
        return true
    }

    private func find(_ literal: String, from index: Int) -> Int? {
        let needle = Array(literal.utf8)
        guard let first = needle.first, bytes.count >= needle.count else { return nil }
        var at = index
        let last = bytes.count - needle.count
        while at <= last {
            if bytes[at] == first, matches(literal, at: at) { return at }
            at += 1
        }
        return nil
    }

    private func text(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }

    private mutating func emit(_ kind: TokenKind, _ range: Range<Int>, text value: String? = nil) {
        let raw = text(range)
        tokens.append(Token(kind: kind, text: value ?? raw, raw: raw, offset: range.lowerBound))
    }

    func error(at offset: Int, _ message: String) -> HandlebarsError {
        let (line, column) = Lexer.location(of: offset, in: bytes)
        return HandlebarsError(partial: partialName, line: line, column: column, message: message)
    }

    /// The positions of ascending `offsets`, in one pass over the bytes.
    static func locations(of offsets: [Int], in bytes: [UInt8]) -> [(line: Int, column: Int)] {
        var result: [(line: Int, column: Int)] = []
        result.reserveCapacity(offsets.count)
        var line = 1
        var column = 1
        var position = 0
        for offset in offsets {
            while position < min(offset, bytes.count) {
                if bytes[position] == 0x0A {
                    line += 1
                    column = 1
                } else if bytes[position] & 0xC0 != 0x80 {
                    column += 1
                }
                position += 1
            }
            result.append((line, column))
        }
        return result
    }

    static func location(of offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for byte in bytes[0..<min(offset, bytes.count)] {
            if byte == 0x0A {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }

    // MARK: The states

    private mutating func run() throws(HandlebarsError) {
        while true {
            switch states.last ?? .content {
            case .content:
                if position >= bytes.count {
                    tokens.append(Token(kind: .endOfInput, text: "", raw: "", offset: bytes.count))
                    return
                }
                lexContent()
            case .escapedMustache: lexEscapedMustache()
            case .mustache: try lexMustache()
            case .raw: try lexRaw()
            }
        }
    }

    private mutating func lexContent() {
        guard let open = find("{{", from: position) else {
            emit(.content, position..<bytes.count)
            position = bytes.count
            return
        }
        var end = open
        if open - position >= 2, bytes[open - 1] == UInt8(ascii: "\\"), bytes[open - 2] == UInt8(ascii: "\\") {
            end = open - 1  // `\\{{`: one backslash is text, the mustache is real
            states.append(.mustache)
        } else if open - position >= 1, bytes[open - 1] == UInt8(ascii: "\\") {
            end = open - 1  // `\{{`: the mustache is text
            states.append(.escapedMustache)
        } else {
            states.append(.mustache)
        }
        if end > position { emit(.content, position..<end) }
        position = open
    }

    /// After `\{{`: text from the `{{` up to the next `{{`, `\{{` or `\\{{`.
    private mutating func lexEscapedMustache() {
        var at = position + 2
        while at < bytes.count {
            if matches("{{", at: at) || matches("\\{{", at: at) || matches("\\\\{{", at: at) { break }
            at += 1
        }
        emit(.content, position..<min(at, bytes.count))
        position = min(at, bytes.count)
        states.removeLast()
    }

    private mutating func lexRaw() throws(HandlebarsError) {
        // Nested `{{{{x}}}}...{{{{/x}}}}` are text; the block ends at the `{{{{/name}}}}` that balances the opening.
        var depth = 0
        let start = position
        var at = position
        while true {
            guard let open = find("{{{{", from: at) else {
                throw error(at: start, "the raw block is not closed: expecting '{{{{/name}}}}'")
            }
            if matches("{{{{/", at: open) {
                var nameEnd = open + 5
                while nameEnd < bytes.count, Lexer.isIdentifierByte(bytes[nameEnd]) { nameEnd += 1 }
                if nameEnd > open + 5, matches("}}}}", at: nameEnd) {
                    if depth == 0 {
                        if open > start { emit(.content, start..<open) }
                        emit(.endRawBlock, open..<(nameEnd + 4), text: text((open + 5)..<nameEnd))
                        position = nameEnd + 4
                        states.removeLast()
                        return
                    }
                    depth -= 1
                }
                at = open + 5
            } else {
                depth += 1
                at = open + 4
            }
        }
    }

    private mutating func lexMustache() throws(HandlebarsError) {
        while position < bytes.count, isWhitespace(bytes[position]) { position += 1 }
        guard position < bytes.count else {
            throw error(at: position, "the mustache is not closed: expecting '}}' before the end of the template")
        }
        let start = position
        let byte = bytes[position]
        if byte == UInt8(ascii: "(") { return single(.openSexpr) }
        if byte == UInt8(ascii: ")") { return single(.closeSexpr) }
        if matches("{{{{", at: position) {
            position += 4
            return emit(.openRawBlock, start..<position)
        }
        if matches("}}}}", at: position) {
            position += 4
            emit(.closeRawBlock, start..<position)
            states.removeLast()
            states.append(.raw)
            return
        }
        if matches("{{", at: position) { return try lexOpen() }
        if byte == UInt8(ascii: "=") { return single(.equals) }
        if matches("..", at: position) {
            position += 2
            return emit(.id, start..<position)
        }
        if byte == UInt8(ascii: "."), isIdentifierLookahead(position + 1) { return single(.id) }
        if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "/") { return single(.separator) }
        if matches("}}}", at: position) || matches("}~}}", at: position) {
            position += bytes[position + 1] == UInt8(ascii: "~") ? 4 : 3
            emit(.closeUnescaped, start..<position)
            states.removeLast()
            return
        }
        if matches("}}", at: position) || matches("~}}", at: position) {
            position += byte == UInt8(ascii: "~") ? 3 : 2
            emit(.close, start..<position)
            states.removeLast()
            return
        }
        if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") { return try lexString(quote: byte) }
        if byte == UInt8(ascii: "@") { return single(.data) }
        for (word, kind) in [("true", TokenKind.boolean), ("false", .boolean), ("undefined", .undefined), ("null", .null)]
        where matches(word, at: position) && isLiteralLookahead(position + word.utf8.count) {
            position += word.utf8.count
            return emit(kind, start..<position)
        }
        if let end = numberEnd(from: position), isLiteralLookahead(end) {
            position = end
            return emit(.number, start..<end)
        }
        if matches("as", at: position) {
            var at = position + 2
            while at < bytes.count, isWhitespace(bytes[at]) { at += 1 }
            if at > position + 2, at < bytes.count, bytes[at] == UInt8(ascii: "|") {
                position = at + 1
                return emit(.openBlockParams, start..<position)
            }
        }
        if byte == UInt8(ascii: "|") { return single(.closeBlockParams) }
        if Lexer.isIdentifierByte(byte) {
            var end = position
            while end < bytes.count, Lexer.isIdentifierByte(bytes[end]) { end += 1 }
            guard isIdentifierLookahead(end) else {
                throw error(at: end < bytes.count ? end : start, end < bytes.count
                    ? "unexpected character '\(text(end..<(end + 1)))' after '\(text(start..<end))'"
                    : "the mustache is not closed: expecting '}}' before the end of the template")
            }
            position = end
            return emit(.id, start..<end)
        }
        if byte == UInt8(ascii: "[") { return try lexBracketedIdentifier() }
        throw error(at: start, "unexpected character '\(text(start..<min(start + 1, bytes.count)))' in a mustache")
    }

    private mutating func single(_ kind: TokenKind) {
        position += 1
        emit(kind, (position - 1)..<position)
    }

    /// `-?[0-9]+(?:\.[0-9]+)?`
    private func numberEnd(from start: Int) -> Int? {
        var at = start
        if at < bytes.count, bytes[at] == UInt8(ascii: "-") { at += 1 }
        let digitsStart = at
        while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
        guard at > digitsStart else { return nil }
        if at + 1 < bytes.count, bytes[at] == UInt8(ascii: "."), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at + 1]) {
            at += 1
            while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
        }
        return at
    }

    private mutating func lexString(quote: UInt8) throws(HandlebarsError) {
        let start = position
        var value: [UInt8] = []
        var at = position + 1
        while true {
            guard at < bytes.count else { throw error(at: start, "the string is not closed") }
            let byte = bytes[at]
            if byte == UInt8(ascii: "\\"), at + 1 < bytes.count, bytes[at + 1] == quote {
                value.append(quote)
                at += 2
                continue
            }
            if byte == quote { break }
            value.append(byte)
            at += 1
        }
        position = at + 1
        emit(.string, start..<position, text: String(decoding: value, as: UTF8.self))
    }

    /// `[...]`, where `\]` and `\\` stand for `]` and `\`.
    private mutating func lexBracketedIdentifier() throws(HandlebarsError) {
        let start = position
        var value: [UInt8] = []
        var at = position + 1
        while true {
            guard at < bytes.count else { throw error(at: start, "the '[' segment is not closed: expecting ']'") }
            let byte = bytes[at]
            if byte == UInt8(ascii: "\\"), at + 1 < bytes.count,
               bytes[at + 1] == UInt8(ascii: "]") || bytes[at + 1] == UInt8(ascii: "\\") {
                value.append(bytes[at + 1])
                at += 2
                continue
            }
            if byte == UInt8(ascii: "]") { break }
            value.append(byte)
            at += 1
        }
        position = at + 1
        var token = Token(kind: .id, text: String(decoding: value, as: UTF8.self), raw: text(start..<position), offset: start)
        token.isBracketed = true
        tokens.append(token)
    }

    /// At `{{`: which kind of tag opens here.
    private mutating func lexOpen() throws(HandlebarsError) {
        let start = position
        var at = position + 2
        if at < bytes.count, bytes[at] == UInt8(ascii: "~") { at += 1 }
        func skipWhitespace(_ from: Int) -> Int {
            var index = from
            while index < bytes.count, isWhitespace(bytes[index]) { index += 1 }
            return index
        }
        func closesHere(_ from: Int) -> Int? {
            var index = from
            if index < bytes.count, bytes[index] == UInt8(ascii: "~") { index += 1 }
            return matches("}}", at: index) ? index + 2 : nil
        }
        func finish(_ kind: TokenKind, _ end: Int) {
            position = end
            emit(kind, start..<end)
        }
        if matches(">", at: at) { return finish(.openPartial, at + 1) }
        if matches("#>", at: at) { return finish(.openPartialBlock, at + 2) }
        if matches("#", at: at) { return finish(.openBlock, matches("#*", at: at) ? at + 2 : at + 1) }
        if matches("/", at: at) { return finish(.openEndBlock, at + 1) }
        if matches("^", at: at), let end = closesHere(skipWhitespace(at + 1)) {
            finish(.inverse, end)
            states.removeLast()
            return
        }
        let elseStart = skipWhitespace(at)
        if matches("else", at: elseStart) {
            let afterElse = elseStart + 4
            if let end = closesHere(skipWhitespace(afterElse)) {
                finish(.inverse, end)
                states.removeLast()
                return
            }
            if afterElse < bytes.count, !Lexer.isIdentifierByte(bytes[afterElse]) {
                return finish(.openInverseChain, afterElse)
            }
        }
        if matches("^", at: at) { return finish(.openInverse, at + 1) }
        if matches("{", at: at) { return finish(.openUnescaped, at + 1) }
        if matches("&", at: at) { return finish(.open, at + 1) }
        if matches("!--", at: at) {
            var search = at + 3
            while true {
                guard let dashes = find("--", from: search) else {
                    throw error(at: start, "the comment is not closed: expecting '--}}'")
                }
                if let end = closesHere(dashes + 2) {
                    finish(.comment, end)
                    states.removeLast()
                    return
                }
                search = dashes + 1
            }
        }
        if matches("!", at: at) {
            guard let close = find("}}", from: at + 1) else { throw error(at: start, "the comment is not closed: expecting '}}'") }
            finish(.comment, close + 2)
            states.removeLast()
            return
        }
        finish(.open, matches("*", at: at) ? at + 1 : at)
    }
}
