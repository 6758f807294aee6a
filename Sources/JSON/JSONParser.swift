/// Parses JSON text (RFC 8259) into a ``JSONValue``, byte by byte: several times faster than Foundation's
/// decoders, and numbers keep their text. ``validate(_:)`` runs the same scanner without building anything, for
/// callers that forward the bytes as they are (the Kong envelope): both accept exactly the same texts.
///
/// Hand-written because no listed package parses JSON into a tree that keeps numbers' text, or validates it without
/// decoding; it is fuzzed (`scripts/fuzz`) and checked against Foundation's parser.
///
/// Bounded: nesting depth (``maximumDepth``), number length (``maximumNumberLength``); linear in the text, duplicate
/// key checks included.
public struct JSONParser {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "invalid JSON at byte \(offset): \(reason)" }
    }

    /// What to do with an object key written twice.
    public enum DuplicateKeys: Sendable {
        /// The last value wins (most parsers' behaviour): the default.
        case lastWins
        /// The document is refused (`duplicate key 'a'` at the second key's offset). For documents that are
        /// validated and then forwarded as bytes: a consumer whose parser keeps the first value would read
        /// something that was not validated.
        case refuse
    }

    /// The most arrays and objects nested in each other.
    public static let maximumDepth = 512
    /// The longest number text accepted, in bytes (sign, digits, point and exponent included).
    public static let maximumNumberLength = 1000

    fileprivate let bytes: UnsafeBufferPointer<UInt8>
    private let duplicateKeys: DuplicateKeys
    /// False for ``validate(_:)``: every check runs, nothing is built (values come back as `.null`).
    private let builds: Bool
    fileprivate var index = 0
    /// The elements and members of the containers being parsed, moved into each container's array (allocated
    /// once, at its final size) when it closes; nil when not building.
    private var elements: ScratchStack<JSONValue>?
    private var members: ScratchStack<(key: String, value: JSONValue)>?

    fileprivate init(_ bytes: UnsafeRawBufferPointer, duplicateKeys: DuplicateKeys, builds: Bool = true) {
        self.bytes = bytes.assumingMemoryBound(to: UInt8.self)
        self.duplicateKeys = duplicateKeys
        self.builds = builds
        // Created by the first object or array (a reader may build scalars only).
        elements = nil
        members = nil
    }
    /// Checks that `bytes` are one JSON text, with the same rules and limits as ``parse(_:duplicateKeys:)-(UnsafeRawBufferPointer,_)``,
    /// allocating nothing.
    public static func validate(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        try checkUTF8(bytes)
        var parser = JSONParser(bytes, duplicateKeys: .lastWins, builds: false)
        parser.skipWhitespace()
        guard parser.index < bytes.count else { throw Failure(offset: 0, reason: "empty input, expected a value") }
        _ = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw Failure(offset: parser.index, reason: "unexpected data after the JSON value") }
    }

    fileprivate static func checkUTF8(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        if let offset = UTF8Validation.firstInvalidOffset(bytes) { throw Failure(offset: offset, reason: "the text is not valid UTF-8") }
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, duplicateKeys: DuplicateKeys = .lastWins) throws(Failure) -> JSONValue {
        try checkUTF8(bytes)
        var parser = JSONParser(bytes, duplicateKeys: duplicateKeys)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw Failure(offset: parser.index, reason: "unexpected data after the JSON value") }
        return value
    }

    public static func parse(_ text: String, duplicateKeys: DuplicateKeys = .lastWins) throws(Failure) -> JSONValue {
        var text = text
        let result = text.withUTF8 { buffer in
            Result { () throws(Failure) in try parse(UnsafeRawBufferPointer(buffer), duplicateKeys: duplicateKeys) }
        }
        return try result.get()
    }

    public static func parse(_ bytes: [UInt8], duplicateKeys: DuplicateKeys = .lastWins) throws(Failure) -> JSONValue {
        let result = bytes.withUnsafeBytes { buffer in Result { () throws(Failure) in try parse(buffer, duplicateKeys: duplicateKeys) } }
        return try result.get()
    }

    fileprivate var current: UInt8? { index < bytes.count ? bytes[index] : nil }
    private func fail(_ reason: String) -> Failure { Failure(offset: index, reason: reason) }

    fileprivate mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
    }

    /// `depth`: how many arrays and objects enclose the value.
    fileprivate mutating func value(depth: Int) throws(Failure) -> JSONValue {
        guard let byte = current else { throw fail("unexpected end of input, expected a value") }
        switch byte {
        case UInt8(ascii: "{"):
            guard depth < Self.maximumDepth else { throw fail("nesting deeper than \(Self.maximumDepth) levels") }
            return try object(depth: depth)
        case UInt8(ascii: "["):
            guard depth < Self.maximumDepth else { throw fail("nesting deeper than \(Self.maximumDepth) levels") }
            return try array(depth: depth)
        case UInt8(ascii: "\""):
            let string = try string()
            return builds ? .string(string) : .null
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let number = try number()
            return number.map(JSONValue.number) ?? .null
        default: throw fail("unexpected character, expected a value")
        }
    }

    /// The object at the cursor (`{`). Its members gather on ``members``; a key written twice is found by comparing
    /// it with the object's earlier keys while there are a few, through a dictionary of their positions beyond
    /// (so the check stays linear).
    private mutating func object(depth: Int) throws(Failure) -> JSONValue {
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "}") { index += 1; return .object(JSONObject()) }
        if builds, members == nil { members = ScratchStack() }
        let start = members?.count ?? 0
        var positions: [String: Int]?
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let keyOffset = index
            let key = try string()
            // The position (from `start`) of an earlier member with this key.
            var earlier: Int?
            if let members {
                earlier = positions.map { $0[key] } ?? members.firstPosition(from: start) { $0.key == key }
                if earlier != nil, duplicateKeys == .refuse { throw Failure(offset: keyOffset, reason: "duplicate key \(Self.quoted(key))") }
            }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw fail("expected ':' after an object key") }
            index += 1
            skipWhitespace()
            let member = try value(depth: depth + 1)
            if let members {
                if let earlier {
                    members[start + earlier].value = member  // the last value wins, at the first one's place
                } else {
                    members.push((key, member))
                    let count = members.count - start
                    if positions != nil {
                        positions![key] = count - 1
                    } else if count > JSONObject.indexThreshold {
                        positions = members.positionsByKey(from: start)
                    }
                }
            }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                guard let members else { return .null }
                return .object(JSONObject(uniqueMembers: members.pop(from: start), index: positions))
            default: throw fail("expected ',' or '}' in an object")
            }
        }
    }

    /// The array at the cursor (`[`); its elements gather on ``elements``.
    private mutating func array(depth: Int) throws(Failure) -> JSONValue {
        index += 1
        skipWhitespace()
        if current == UInt8(ascii: "]") { index += 1; return .array([]) }
        if builds, elements == nil { elements = ScratchStack() }
        let start = elements?.count ?? 0
        while true {
            skipWhitespace()
            let element = try value(depth: depth + 1)
            elements?.push(element)
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                guard let elements else { return .null }
                return .array(elements.pop(from: start))
            default: throw fail("expected ',' or ']' in an array")
            }
        }
    }

    private mutating func literal(_ word: StaticString) throws(Failure) {
        let length = word.utf8CodeUnitCount
        guard index + length <= bytes.count, (0..<length).allSatisfy({ bytes[index + $0] == word.utf8Start[$0] }) else {
            throw fail("invalid literal, expected '\(word)'")
        }
        index += length
    }

    /// The number at the cursor (`nil` when not building).
    private mutating func number() throws(Failure) -> JSONNumber? {
        let start = index
        let negative = current == UInt8(ascii: "-")
        if negative { index += 1 }
        guard let first = current, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { throw fail("expected a digit") }
        index += 1
        // The integer part's value while it has at most 18 digits (below 10^18: no overflow).
        var integer = UInt64(first - 48)
        if first != UInt8(ascii: "0") {
            while let digit = current, digit >= 48, digit <= 57 {
                if index - start < 19 { integer = integer &* 10 &+ UInt64(digit - 48) }
                index += 1
            }
        }
        let integerDigits = index - start - (negative ? 1 : 0)
        var isInteger = true
        if current == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard let digit = current, digit >= 48, digit <= 57 else { throw fail("expected a digit after the decimal point") }
            while let digit = current, digit >= 48, digit <= 57 { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let digit = current, digit >= 48, digit <= 57 else { throw fail("expected a digit in the exponent") }
            while let digit = current, digit >= 48, digit <= 57 { index += 1 }
        }
        guard index - start <= Self.maximumNumberLength else {
            throw Failure(offset: start, reason: "a number longer than \(Self.maximumNumberLength) characters (\(index - start))")
        }
        guard builds else { return nil }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if isInteger, integerDigits <= 18 {
            // Exact, and Int64 to Double rounds to nearest as parsing the text does; `-0` is the double -0.0.
            let value = negative ? -Int64(integer) : Int64(integer)
            return JSONNumber(text: text, double: negative && integer == 0 ? -0.0 : Double(value), int64: value)
        }
        return JSONNumber(text: text)
    }

    /// A key for a message: quoted, at most 40 characters.
    static func quoted(_ key: String) -> String {
        "'" + (key.count > 40 ? String(key.prefix(40)) + "…" : key) + "'"
    }

    /// Moves the cursor over the bytes of a string that need no look (no quote, backslash or control character),
    /// eight at a time; it stops at or before the first byte that does (which the caller then examines).
    private mutating func skipPlainStringBytes() {
        guard let base = bytes.baseAddress else { return }
        while index + 8 <= bytes.count {
            if JSONStringBytes.containQuoteBackslashOrControl(UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)) { return }
            index += 8
        }
    }

    /// Moves the cursor inside a string to its first quote or backslash and returns that byte; throws when a control
    /// character comes first, or the text ends before either.
    @inline(__always)
    private mutating func scanToQuoteOrEscape() throws(Failure) -> UInt8 {
        skipPlainStringBytes()
        while let byte = current, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
            guard byte >= 0x20 else { throw fail("unescaped control character in a string") }
            index += 1
        }
        guard let stop = current else { throw fail("unterminated string") }
        return stop
    }

    /// The string at the cursor (`"`) as the bytes between its quotes, the cursor after it, when it has no
    /// escapes; nil, with the cursor where it was, when it has.
    fileprivate mutating func unescapedString() throws(Failure) -> UnsafeBufferPointer<UInt8>? {
        let quote = index
        index += 1
        let start = index
        guard try scanToQuoteOrEscape() == UInt8(ascii: "\"") else {
            index = quote
            return nil
        }
        index += 1
        return UnsafeBufferPointer(rebasing: bytes[start..<(index - 1)])
    }

    private mutating func string() throws(Failure) -> String {
        index += 1  // the opening quote
        let start = index
        // Fast path: no escapes, the common case; the bytes are valid UTF-8 (checked once for the whole text).
        if try scanToQuoteOrEscape() == UInt8(ascii: "\"") {
            index += 1
            return builds ? String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<(index - 1)]), as: UTF8.self) : ""
        }
        // Escapes: collect UTF-8 bytes (when building), then decode once.
        var utf8 = builds ? Array(UnsafeBufferPointer(rebasing: bytes[start..<index])) : []
        while let byte = current {
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return builds ? String(decoding: utf8, as: UTF8.self) : ""
            case UInt8(ascii: "\\"):
                index += 1
                guard let escaped = current else { throw fail("unterminated escape sequence") }
                index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): if builds { utf8.append(escaped) }
                case UInt8(ascii: "b"): if builds { utf8.append(0x08) }
                case UInt8(ascii: "f"): if builds { utf8.append(0x0C) }
                case UInt8(ascii: "n"): if builds { utf8.append(0x0A) }
                case UInt8(ascii: "r"): if builds { utf8.append(0x0D) }
                case UInt8(ascii: "t"): if builds { utf8.append(0x09) }
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if code >= 0xD800, code < 0xDC00 {  // a high surrogate: a low one must follow
                        guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        index += 2
                        let low = try hex4()
                        guard low >= 0xDC00, low < 0xE000 else { throw fail("unpaired surrogate in \\u escape") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if code >= 0xDC00, code < 0xE000 {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                    if builds { utf8.append(contentsOf: UTF8.encode(scalar)!) }
                default:
                    throw fail("invalid escape character")
                }
            case 0..<0x20:
                throw fail("unescaped control character in a string")
            default:
                if builds { utf8.append(byte) }
                index += 1
            }
        }
        throw fail("unterminated string")
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case 48...57: digit = UInt32(byte - 48)
            case 97...102: digit = UInt32(byte - 87)
            case 65...70: digit = UInt32(byte - 55)
            default: throw fail("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }
}

/// Reads one JSON text in document order for a caller that handles the values as they come (an encoder directed by
/// a schema) instead of building the tree first: the same scanner, rules and limits as ``JSONParser``, refusing
/// duplicate keys in the values it builds.
///
/// The caller drives the grammar with ``peek()``, ``consume(_:)``, ``rawString()`` and ``value(depth:)``, keeping
/// count of the enclosing arrays and objects (`depth`) as the parser does; a text is one JSON text only when the
/// caller reaches ``isAtEnd()`` having read one value. Callers fall back to ``JSONParser/parse(_:duplicateKeys:)`` for
/// anything they do not handle: it reports the failures.
public struct JSONReader {
    private var parser: JSONParser

    /// Checks that `bytes` are UTF-8 (as the parser does, once) and moves to the first value.
    public init(_ bytes: UnsafeRawBufferPointer) throws(JSONParser.Failure) {
        try JSONParser.checkUTF8(bytes)
        parser = JSONParser(bytes, duplicateKeys: .refuse)
        parser.skipWhitespace()
    }

    /// The byte where the next token starts (whitespace skipped), or nil at the end.
    public mutating func peek() -> UInt8? {
        parser.skipWhitespace()
        return parser.current
    }

    /// Moves past `byte` (a structural character: `{`, `}`, `[`, `]`, `:`, `,`) when it is the next token.
    public mutating func consume(_ byte: UInt8) -> Bool {
        parser.skipWhitespace()
        guard parser.current == byte else { return false }
        parser.index += 1
        return true
    }

    /// The string at the cursor as its UTF-8 bytes, when it has no escapes (the bytes of the text, valid UTF-8);
    /// nil, without moving, when it has escapes or the next token is no string. The bytes live as long as the text.
    public mutating func rawString() throws(JSONParser.Failure) -> UnsafeBufferPointer<UInt8>? {
        guard peek() == UInt8(ascii: "\"") else { return nil }
        return try parser.unescapedString()
    }

    /// The value at the cursor, built as ``JSONParser`` builds it; `depth` is how many arrays and objects enclose it.
    public mutating func value(depth: Int) throws(JSONParser.Failure) -> JSONValue {
        parser.skipWhitespace()
        return try parser.value(depth: depth)
    }

    /// Whether only whitespace is left.
    public mutating func isAtEnd() -> Bool { peek() == nil }
}

/// A stack of values kept in one growing allocation, from which the top elements move (not copy) into an array
/// of their exact size: what a parser needs to build each container with one allocation, without knowing its size
/// in advance. Holds at most one element per byte of the text being parsed.
final class ScratchStack<Element> {
    private var base: UnsafeMutablePointer<Element>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 32) {
        self.capacity = capacity
        base = UnsafeMutablePointer<Element>.allocate(capacity: capacity)
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    func push(_ element: Element) {
        if count == capacity { grow() }
        (base + count).initialize(to: element)
        count += 1
    }

    private func grow() {
        let (doubled, overflow) = capacity.multipliedReportingOverflow(by: 2)
        precondition(!overflow, "scratch stack too large")
        let larger = UnsafeMutablePointer<Element>.allocate(capacity: doubled)
        larger.moveInitialize(from: base, count: count)
        base.deallocate()
        base = larger
        capacity = doubled
    }

    subscript(position: Int) -> Element {
        get {
            precondition(position >= 0 && position < count)
            return base[position]
        }
        _modify {
            precondition(position >= 0 && position < count)
            yield &base[position]
        }
    }

    /// The position (counted from `start`) of the first element from `start` on that satisfies `predicate`.
    func firstPosition(from start: Int, where predicate: (Element) -> Bool) -> Int? {
        for position in start..<count where predicate(base[position]) { return position - start }
        return nil
    }

    /// The elements from `start` to the top, moved into an array; the stack then ends at `start`.
    func pop(from start: Int) -> [Element] {
        precondition(start >= 0 && start <= count)
        let popped = count - start
        let array = [Element](unsafeUninitializedCapacity: popped) { buffer, initialized in
            if popped > 0 { buffer.baseAddress!.moveInitialize(from: base + start, count: popped) }
            initialized = popped
        }
        count = start
        return array
    }
}

extension ScratchStack where Element == (key: String, value: JSONValue) {
    /// The positions (from `start`) of the members from `start` on, by key.
    func positionsByKey(from start: Int) -> [String: Int] {
        var positions: [String: Int] = [:]
        positions.reserveCapacity(2 * (count - start))
        for position in start..<count { positions[base[position].key] = position - start }
        return positions
    }
}
