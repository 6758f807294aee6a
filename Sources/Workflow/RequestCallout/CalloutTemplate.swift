import Foundation
import JSON

/// A value of Kong request-callout's templates: text with `$(expression)` placeholders (`Bearer $(callouts.auth.
/// response.body.token)`), in URLs, custom headers, query arguments and body fields, and the error message.
///
/// Kong evaluates the expressions as Lua in its sandbox. kbridge runs no Lua: it reads the part of that language the
/// request-callout examples use, and refuses the rest at start-up with the position and the reason:
/// - paths over `headers` (case-insensitive, `_` for `-`, as OpenResty's header table), `query_params` and
///   `callouts` (`callouts.NAME.response.body.field`), with `.name`, `["name"]` and 1-based `[1]` steps;
/// - `kong.request.get_header("name")` and `kong.request.get_query_arg("name")`;
/// - string (`"..."`, `'...'`) and number literals, `nil`, `true`, `false`;
/// - `a or b or "default"`: the first value that is neither missing, `nil` nor `false` (Lua's `or`).
///
/// Hand-written (no package parses this subset of Lua); every input is bounded: 16 KiB of template, 64 placeholders,
/// 16 alternatives and 32 steps per expression, literals within the template.
struct CalloutTemplate: Sendable, Hashable {
    enum Part: Sendable, Hashable {
        case text(String)
        case expression(CalloutExpression)
    }

    let parts: [Part]
    let source: String

    static let maximumBytes = 16 << 10
    static let maximumExpressions = 64

    init(parsing text: String) throws(CalloutTemplateError) {
        source = text
        guard text.utf8.count <= Self.maximumBytes else {
            throw CalloutTemplateError(offset: 0, reason: "the template is longer than \(Self.maximumBytes) bytes")
        }
        let bytes = Array(text.utf8)
        var parts: [Part] = []
        var literal: [UInt8] = []
        var position = 0
        var expressions = 0
        while position < bytes.count {
            guard bytes[position] == UInt8(ascii: "$"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "(") else {
                literal.append(bytes[position])
                position += 1
                continue
            }
            let end = try Self.closingParenthesis(bytes, from: position + 2)
            if !literal.isEmpty { parts.append(.text(String(decoding: literal, as: UTF8.self))) }
            literal = []
            expressions += 1
            guard expressions <= Self.maximumExpressions else {
                throw CalloutTemplateError(offset: position, reason: "more than \(Self.maximumExpressions) $(...) placeholders")
            }
            var parser = CalloutExpressionParser(bytes: Array(bytes[(position + 2)..<end]), offset: position + 2)
            parts.append(.expression(try parser.parseWhole()))
            position = end + 1
        }
        if !literal.isEmpty { parts.append(.text(String(decoding: literal, as: UTF8.self))) }
        self.parts = parts
    }

    /// A template of plain text (no placeholders).
    init(text: String) {
        source = text
        parts = text.isEmpty ? [] : [.text(text)]
    }

    /// The position of the `)` that closes a placeholder opened before `start`, skipping quoted strings.
    private static func closingParenthesis(_ bytes: [UInt8], from start: Int) throws(CalloutTemplateError) -> Int {
        var depth = 0
        var position = start
        var quote: UInt8?
        while position < bytes.count {
            let byte = bytes[position]
            if let open = quote {
                if byte == UInt8(ascii: "\\") { position += 2; continue }
                if byte == open { quote = nil }
            } else if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                quote = byte
            } else if byte == UInt8(ascii: "(") {
                depth += 1
            } else if byte == UInt8(ascii: ")") {
                if depth == 0 { return position }
                depth -= 1
            }
            position += 1
        }
        throw CalloutTemplateError(offset: start - 2, reason: "'$(' is not closed by ')'")
    }

    /// Whether the template is plain text.
    var isConstant: Bool { !parts.contains { if case .expression = $0 { true } else { false } } }

    /// The callouts its expressions read (`callouts.NAME...`), which must run first.
    var referencedCallouts: Set<String> {
        var names = Set<String>()
        for case .expression(let expression) in parts { names.formUnion(expression.referencedCallouts) }
        return names
    }

    /// The template's value: a lone placeholder keeps the type of what it reads (a number stays a number, a missing
    /// value is `nil`); text with placeholders is a string, where a missing value is empty.
    func value(in context: CalloutContext) -> JSONValue? {
        if parts.count == 1, case .expression(let expression) = parts[0] { return expression.evaluate(context) }
        return .string(render(context))
    }

    /// The template as text.
    func render(_ context: CalloutContext) -> String {
        var text = ""
        for part in parts {
            switch part {
            case .text(let literal): text += literal
            case .expression(let expression): text += Self.text(of: expression.evaluate(context))
            }
        }
        return text
    }

    static func text(of value: JSONValue?) -> String {
        switch value {
        case nil, .null?: ""
        case .string(let text)?: text
        case .number(let number)?: number.text
        case .bool(let flag)?: flag ? "true" : "false"
        case let other?: other.jsonText
        }
    }
}

/// A template that does not parse: the byte offset in the template and the reason.
struct CalloutTemplateError: Error, CustomStringConvertible {
    var offset: Int
    var reason: String
    var description: String { "at offset \(offset): \(reason)" }
}

/// What templates read for one callout: the client's request and the callouts that ran before.
struct CalloutContext {
    var headers: [(name: String, value: String)]
    var query: JSONObject
    /// `callouts.NAME`: each earlier callout's `{request, response}`.
    var callouts: [String: JSONValue]

    /// A header's value, case-insensitively and with `_` read as `-` (OpenResty's header table); several values are a
    /// list.
    func header(_ name: String) -> JSONValue? {
        let wanted = name.lowercased()
        let dashed = wanted.replacingOccurrences(of: "_", with: "-")
        let values = headers.filter { let lower = $0.name.lowercased(); return lower == wanted || lower == dashed }.map(\.value)
        switch values.count {
        case 0: return nil
        case 1: return .string(values[0])
        default: return .array(values.map(JSONValue.string))
        }
    }
}

/// One `$(...)` expression: alternatives joined by `or`.
struct CalloutExpression: Sendable, Hashable {
    enum Root: String, Sendable, Hashable {
        case headers, queryParameters = "query_params", callouts
    }

    enum Step: Sendable, Hashable {
        case name(String)
        /// Lua's 1-based index.
        case index(Int)
    }

    enum Term: Sendable, Hashable {
        case literal(JSONValue?)
        case path(Root, [Step])
    }

    let alternatives: [Term]

    var referencedCallouts: Set<String> {
        var names = Set<String>()
        for case .path(.callouts, let steps) in alternatives {
            if case .name(let name)? = steps.first { names.insert(name) }
        }
        return names
    }

    func evaluate(_ context: CalloutContext) -> JSONValue? {
        var last: JSONValue?
        for term in alternatives {
            last = Self.evaluate(term, context)
            switch last {
            case nil, .null?, .bool(false)?: continue
            default: return last
            }
        }
        return last
    }

    private static func evaluate(_ term: Term, _ context: CalloutContext) -> JSONValue? {
        switch term {
        case .literal(let value): return value
        case .path(let root, let steps):
            var rest = steps[...]
            var current: JSONValue?
            switch root {
            case .headers:
                guard let first = rest.popFirst() else { return .object(HeaderMap.object(from: context.headers)) }
                guard case .name(let name) = first else { return nil }
                current = context.header(name)
            case .queryParameters: current = .object(context.query)
            case .callouts:
                guard case .name(let name)? = rest.popFirst() else { return nil }
                current = context.callouts[name]
            }
            for step in rest {
                switch (step, current) {
                case (.name(let name), .object(let object)?): current = object[name]
                case (.index(let position), .array(let array)?):
                    current = position >= 1 && position <= array.count ? array[position - 1] : nil
                case (.index(let position), .object(let object)?): current = object[String(position)]
                default: return nil
                }
            }
            return current
        }
    }
}

/// Reads one expression (see ``CalloutTemplate``).
struct CalloutExpressionParser {
    let bytes: [UInt8]
    /// Where `bytes` start in the template, for error offsets.
    let offset: Int
    var position = 0

    static let maximumAlternatives = 16
    static let maximumSteps = 32

    init(bytes: [UInt8], offset: Int) {
        self.bytes = bytes
        self.offset = offset
    }

    static let supported = "request-callout templates in kbridge read paths over headers, query_params and callouts, "
        + "kong.request.get_header(\"name\") and get_query_arg(\"name\"), string and number literals, nil, true, false and `or`; "
        + "Lua code is not run"

    private func failure(_ reason: String) -> CalloutTemplateError {
        CalloutTemplateError(offset: offset + position, reason: reason)
    }

    private func unsupported(_ what: String) -> CalloutTemplateError {
        failure("\(what) is not supported: \(Self.supported)")
    }

    mutating func parseWhole() throws(CalloutTemplateError) -> CalloutExpression {
        var alternatives: [CalloutExpression.Term] = []
        repeat {
            guard alternatives.count < Self.maximumAlternatives else { throw failure("more than \(Self.maximumAlternatives) alternatives") }
            alternatives.append(try term())
            skipSpaces()
        } while keyword("or")
        skipSpaces()
        guard position == bytes.count else { throw unsupported("'\(String(decoding: bytes[position...].prefix(24), as: UTF8.self))'") }
        return CalloutExpression(alternatives: alternatives)
    }

    private mutating func skipSpaces() {
        while position < bytes.count, bytes[position] == UInt8(ascii: " ") || bytes[position] == UInt8(ascii: "\t") { position += 1 }
    }

    private func isIdentifierByte(_ byte: UInt8, first: Bool) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"): true
        case UInt8(ascii: "0")...UInt8(ascii: "9"): !first
        default: false
        }
    }

    /// Consumes `word` when it stands alone there.
    private mutating func keyword(_ word: String) -> Bool {
        let saved = position
        skipSpaces()
        if identifier() == word { return true }
        position = saved
        return false
    }

    private mutating func identifier() -> String? {
        guard position < bytes.count, isIdentifierByte(bytes[position], first: true) else { return nil }
        let start = position
        while position < bytes.count, isIdentifierByte(bytes[position], first: false) { position += 1 }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private mutating func expect(_ byte: UInt8) throws(CalloutTemplateError) {
        skipSpaces()
        guard position < bytes.count, bytes[position] == byte else { throw failure("expected '\(Character(UnicodeScalar(byte)))'") }
        position += 1
    }

    private mutating func term() throws(CalloutTemplateError) -> CalloutExpression.Term {
        skipSpaces()
        guard position < bytes.count else { throw failure("an expression is missing") }
        let byte = bytes[position]
        if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") { return .literal(.string(try string())) }
        if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") || byte == UInt8(ascii: "-") { return .literal(try number()) }
        let start = position
        guard let name = identifier() else { throw unsupported("'\(Character(UnicodeScalar(byte)))'") }
        switch name {
        case "nil": return .literal(nil)
        case "true": return .literal(.bool(true))
        case "false": return .literal(.bool(false))
        case "headers": return .path(.headers, try steps())
        case "query_params": return .path(.queryParameters, try steps())
        case "callouts":
            let steps = try steps()
            guard case .name? = steps.first else { throw failure("callouts must be followed by a callout's name: callouts.NAME") }
            return .path(.callouts, steps)
        case "kong": return try pdkCall()
        case "uri_captures":
            position = start
            throw failure("uri_captures: kbridge routes have no URI captures")
        case "shared":
            position = start
            throw failure("shared (kong.ctx.shared) does not exist in kbridge; read earlier callouts with callouts.NAME")
        default:
            position = start
            throw unsupported("'\(name)'")
        }
    }

    /// `kong.request.get_header("x")` or `kong.request.get_query_arg("x")`.
    private mutating func pdkCall() throws(CalloutTemplateError) -> CalloutExpression.Term {
        let start = position
        var names: [String] = []
        while names.count < 2, position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard let name = identifier() else { break }
            names.append(name)
        }
        guard names.count == 2, names[0] == "request" else {
            position = start
            throw unsupported("this kong.* call")
        }
        let function = names[1]
        let root: CalloutExpression.Root
        switch function {
        case "get_header": root = .headers
        case "get_query_arg": root = .queryParameters
        default:
            position = start
            throw unsupported("kong.request.\(function)")
        }
        try expect(UInt8(ascii: "("))
        skipSpaces()
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") || bytes[position] == UInt8(ascii: "'") else {
            throw failure("kong.request.\(function) takes one string literal")
        }
        let argument = try string()
        try expect(UInt8(ascii: ")"))
        return .path(root, [.name(argument)])
    }

    private mutating func steps() throws(CalloutTemplateError) -> [CalloutExpression.Step] {
        var steps: [CalloutExpression.Step] = []
        while position < bytes.count {
            guard steps.count < Self.maximumSteps else { throw failure("a path of more than \(Self.maximumSteps) steps") }
            if bytes[position] == UInt8(ascii: ".") {
                position += 1
                guard let name = identifier() else { throw failure("expected a name after '.'") }
                steps.append(.name(name))
            } else if bytes[position] == UInt8(ascii: "[") {
                position += 1
                skipSpaces()
                guard position < bytes.count else { throw failure("'[' is not closed") }
                if bytes[position] == UInt8(ascii: "\"") || bytes[position] == UInt8(ascii: "'") {
                    steps.append(.name(try string()))
                } else {
                    guard case .number(let number)? = try number(), let value = number.int64, let index = Int(exactly: value) else {
                        throw failure("an index must be a string or an integer")
                    }
                    steps.append(.index(index))
                }
                try expect(UInt8(ascii: "]"))
            } else {
                break
            }
        }
        return steps
    }

    /// A quoted string with Lua's common escapes.
    private mutating func string() throws(CalloutTemplateError) -> String {
        let quote = bytes[position]
        position += 1
        var text: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            if byte == quote { return String(decoding: text, as: UTF8.self) }
            guard byte == UInt8(ascii: "\\") else {
                text.append(byte)
                continue
            }
            guard position < bytes.count else { break }
            let escaped = bytes[position]
            position += 1
            switch escaped {
            case UInt8(ascii: "n"): text.append(0x0A)
            case UInt8(ascii: "t"): text.append(0x09)
            case UInt8(ascii: "r"): text.append(0x0D)
            case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "'"): text.append(escaped)
            default: throw failure("unsupported escape '\\\(Character(UnicodeScalar(escaped)))'")
            }
        }
        throw failure("a string is not closed")
    }

    private mutating func number() throws(CalloutTemplateError) -> JSONValue? {
        let start = position
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        while position < bytes.count, bytes[position] >= UInt8(ascii: "0") && bytes[position] <= UInt8(ascii: "9")
            || bytes[position] == UInt8(ascii: ".") || bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E")
            || bytes[position] == UInt8(ascii: "+") {
            position += 1
        }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        guard let number = JSONNumber.parse(text) else { throw failure("'\(text)' is not a number") }
        return .number(number)
    }
}
