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

    private let bytes: UnsafeRawBufferPointer
    private let duplicateKeys: DuplicateKeys
    /// False for ``validate(_:)``: every check runs, nothing is built (values come back as `.null`).
    private let builds: Bool
    private var index = 0

    private init(_ bytes: UnsafeRawBufferPointer, duplicateKeys: DuplicateKeys, builds: Bool = true) {
        self.bytes = bytes
        self.duplicateKeys = duplicateKeys
        self.builds = builds
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

    private static func checkUTF8(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
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

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }
    private func fail(_ reason: String) -> Failure { Failure(offset: index, reason: reason) }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { index += 1 }
    }

    /// `depth`: how many arrays and objects enclose the value.
    private mutating func value(depth: Int) throws(Failure) -> JSONValue {
        guard let byte = current else { throw fail("unexpected end of input, expected a value") }
        if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
            guard depth < Self.maximumDepth else { throw fail("nesting deeper than \(Self.maximumDepth) levels") }
        }
        switch byte {
        case UInt8(ascii: "{"):
            index += 1
            var object = JSONObject()
            skipWhitespace()
            if current == UInt8(ascii: "}") { index += 1; return .object(object) }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let keyOffset = index
                let key = try string()
                // The object's lookup is indexed for larger objects: the check stays linear.
                if builds, duplicateKeys == .refuse, object[key] != nil {
                    throw Failure(offset: keyOffset, reason: "duplicate key \(Self.quoted(key))")
                }
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw fail("expected ':' after an object key") }
                index += 1
                skipWhitespace()
                let member = try value(depth: depth + 1)
                if builds { object[key] = member }
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"): index += 1; return .object(object)
                default: throw fail("expected ',' or '}' in an object")
                }
            }
        case UInt8(ascii: "["):
            index += 1
            var array: [JSONValue] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") { index += 1; return .array(array) }
            while true {
                skipWhitespace()
                let element = try value(depth: depth + 1)
                if builds { array.append(element) }
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"): index += 1; return .array(array)
                default: throw fail("expected ',' or ']' in an array")
                }
            }
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
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { throw fail("expected a digit") }
        index += 1
        if first != UInt8(ascii: "0") { while let digit = current, digit >= 48, digit <= 57 { index += 1 } }
        if current == UInt8(ascii: ".") {
            index += 1
            guard let digit = current, digit >= 48, digit <= 57 else { throw fail("expected a digit after the decimal point") }
            while let digit = current, digit >= 48, digit <= 57 { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let digit = current, digit >= 48, digit <= 57 else { throw fail("expected a digit in the exponent") }
            while let digit = current, digit >= 48, digit <= 57 { index += 1 }
        }
        guard index - start <= Self.maximumNumberLength else {
            throw Failure(offset: start, reason: "a number longer than \(Self.maximumNumberLength) characters (\(index - start))")
        }
        guard builds else { return nil }
        return JSONNumber(text: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self))
    }

    /// A key for a message: quoted, at most 40 characters.
    static func quoted(_ key: String) -> String {
        "'" + (key.count > 40 ? String(key.prefix(40)) + "…" : key) + "'"
    }

    private mutating func string() throws(Failure) -> String {
        index += 1  // the opening quote
        let start = index
        // Fast path: no escapes, the common case; the bytes are valid UTF-8 (checked once for the whole text).
        while let byte = current, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
            guard byte >= 0x20 else { throw fail("unescaped control character in a string") }
            index += 1
        }
        guard let terminator = current else { throw fail("unterminated string") }
        if terminator == UInt8(ascii: "\"") {
            index += 1
            return builds ? String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<(index - 1)]), as: UTF8.self) : ""
        }
        // Escapes: collect UTF-8 bytes (when building), then decode once.
        var utf8 = builds ? Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index])) : []
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
