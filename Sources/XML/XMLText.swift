import JSON

/// XML 1.0 (fifth edition) names, as used in namespace-aware documents: `Name` with at most one colon, not first or last.
enum XMLName {
    /// Why `name` is not a valid element or attribute name, or nil when it is.
    static func problem(_ name: String) -> String? {
        guard !name.isEmpty else { return "empty name" }
        var colons = 0
        var isFirst = true
        for scalar in name.unicodeScalars {
            let value = scalar.value
            if value == 0x3A {
                colons += 1
                if isFirst { return "starts with ':'" }
                if colons > 1 { return "more than one ':'" }
            } else if isFirst ? !isNameStart(value) : !isNameCharacter(value) {
                let code = String(value, radix: 16, uppercase: true)
                return "character U+\(String(repeating: "0", count: max(0, 4 - code.count)) + code) not allowed"
                    + (isFirst ? " at the start" : "")
            }
            isFirst = false
        }
        if name.unicodeScalars.last == ":" { return "ends with ':'" }
        return nil
    }

    private static func isNameStart(_ value: UInt32) -> Bool {
        switch value {
        case 0x41...0x5A, 0x5F, 0x61...0x7A, 0xC0...0xD6, 0xD8...0xF6, 0xF8...0x2FF, 0x370...0x37D, 0x37F...0x1FFF,
             0x200C...0x200D, 0x2070...0x218F, 0x2C00...0x2FEF, 0x3001...0xD7FF, 0xF900...0xFDCF, 0xFDF0...0xFFFD,
             0x10000...0xEFFFF:
            true
        default: false
        }
    }

    private static func isNameCharacter(_ value: UInt32) -> Bool {
        switch value {
        case 0x2D, 0x2E, 0x30...0x39, 0xB7, 0x300...0x36F, 0x203F...0x2040: true
        default: isNameStart(value)
        }
    }
}

/// Text handling shared by both directions.
enum XMLText {
    static func isXMLWhitespace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    /// `text` without leading and trailing XML whitespace.
    static func trimmed(_ text: String) -> Substring {
        let utf8 = text.utf8
        guard let first = utf8.firstIndex(where: { !isXMLWhitespace($0) }) else { return "" }
        let last = utf8.lastIndex(where: { !isXMLWhitespace($0) })!
        return text[first...last]
    }

    /// The JSON value of a text or attribute value: typed when `recognizeType` (see ``XMLConversion``).
    static func scalar(_ text: Substring, recognizeType: Bool) -> JSONValue {
        guard recognizeType else { return .string(String(text)) }
        switch text {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "null": return .null
        default: break
        }
        if text.utf8.count <= JSONParser.maximumNumberLength, isJSONNumber(text.utf8) {
            return .number(JSONNumber(text: String(text)))
        }
        return .string(String(text))
    }

    /// Whether `bytes` is exactly a JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    static func isJSONNumber(_ bytes: Substring.UTF8View) -> Bool {
        var index = bytes.startIndex
        let end = bytes.endIndex
        func isDigit(_ i: Substring.UTF8View.Index) -> Bool { i < end && bytes[i] >= 0x30 && bytes[i] <= 0x39 }
        func skipDigits() -> Bool {
            guard isDigit(index) else { return false }
            while isDigit(index) { index = bytes.index(after: index) }
            return true
        }
        if index < end, bytes[index] == 0x2D { index = bytes.index(after: index) }
        guard index < end else { return false }
        if bytes[index] == 0x30 {
            index = bytes.index(after: index)
        } else if !skipDigits() {
            return false
        }
        if index < end, bytes[index] == 0x2E {
            index = bytes.index(after: index)
            guard skipDigits() else { return false }
        }
        if index < end, bytes[index] == 0x65 || bytes[index] == 0x45 {
            index = bytes.index(after: index)
            if index < end, bytes[index] == 0x2B || bytes[index] == 0x2D { index = bytes.index(after: index) }
            guard skipDigits() else { return false }
        }
        return index == end
    }

    enum EscapeProblem: Error {
        case characterNotAllowed(UInt32)

        var reason: String {
            switch self {
            case .characterNotAllowed(let value):
                let code = String(value, radix: 16, uppercase: true)
                return "character U+\(String(repeating: "0", count: max(0, 4 - code.count)) + code) cannot appear in XML 1.0"
            }
        }
    }

    /// Appends `text` escaped for element content (`inAttribute` false) or a double-quoted attribute value.
    static func appendEscaped(_ text: String, inAttribute: Bool, to output: inout [UInt8]) throws(EscapeProblem) {
        var utf8 = text.utf8.makeIterator()
        var pending: [UInt8] = []
        while let byte = utf8.next() {
            switch byte {
            case 0x26: output.append(contentsOf: "&amp;".utf8)
            case 0x3C: output.append(contentsOf: "&lt;".utf8)
            case 0x3E: output.append(contentsOf: "&gt;".utf8)
            case 0x22 where inAttribute: output.append(contentsOf: "&quot;".utf8)
            case 0x09 where inAttribute: output.append(contentsOf: "&#9;".utf8)
            case 0x0A where inAttribute: output.append(contentsOf: "&#10;".utf8)
            case 0x0D: output.append(contentsOf: "&#13;".utf8)
            case 0x09, 0x0A: output.append(byte)
            case 0x00..<0x20: throw .characterNotAllowed(UInt32(byte))
            case 0xEF:
                // U+FFFE and U+FFFF (EF BF BE, EF BF BF) are not XML characters.
                pending.removeAll(keepingCapacity: true)
                pending.append(byte)
                if let second = utf8.next() { pending.append(second) }
                if let third = utf8.next() { pending.append(third) }
                if pending.count == 3, pending[1] == 0xBF, pending[2] == 0xBE || pending[2] == 0xBF {
                    throw .characterNotAllowed(pending[2] == 0xBE ? 0xFFFE : 0xFFFF)
                }
                output.append(contentsOf: pending)
            default: output.append(byte)
            }
        }
    }
}
