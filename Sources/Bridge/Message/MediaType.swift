/// A parsed `Content-Type` value: the lower-cased `type/subtype` and its parameters (names lower-cased).
struct MediaType: Equatable {
    var essence: String
    var parameters: [String: String]

    init?(_ header: String) {
        if Self.isPlainEssence(header) {  // the usual `application/json`: already lower case, nothing to trim or split
            essence = header
            parameters = [:]
            return
        }
        if !header.utf8.contains(UInt8(ascii: ";")) {  // the common case: no parameters (a byte search, not a substring one)
            let essence = header.trimmingSpaces().lowercased()
            guard let slash = essence.firstIndex(of: "/"), slash != essence.startIndex, slash != essence.index(before: essence.endIndex)
            else { return nil }
            self.essence = essence
            parameters = [:]
            return
        }
        var parts = Self.splitParameters(header)[...]
        guard let first = parts.popFirst() else { return nil }
        let essence = first.trimmingSpaces().lowercased()
        guard essence.utf8.contains(UInt8(ascii: "/")), !essence.hasPrefix("/"), !essence.hasSuffix("/") else { return nil }
        self.essence = essence
        var parameters: [String: String] = [:]
        for part in parts {
            guard let equals = part.firstIndex(of: "=") else { continue }
            let name = part[..<equals].trimmingSpaces().lowercased()
            var value = part[part.index(after: equals)...].trimmingSpaces()
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = Self.unquote(value.dropFirst().dropLast())
            }
            if parameters[name] == nil { parameters[name] = value }
        }
        self.parameters = parameters
    }

    /// `type/subtype` in lower case without parameters or spaces: token characters and one `/` inside.
    private static func isPlainEssence(_ header: String) -> Bool {
        var slashes = 0
        var count = 0
        var last: UInt8 = 0
        for byte in header.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "!"),
                 UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "^"):
                break
            case UInt8(ascii: "/"):
                guard count > 0 else { return false }
                slashes += 1
            default:
                return false
            }
            last = byte
            count += 1
        }
        return slashes == 1 && last != UInt8(ascii: "/")
    }

    /// Splits on `;` outside double quotes.
    static func splitParameters(_ header: some StringProtocol) -> [Substring] {
        let text = Substring(header)
        var result: [Substring] = []
        var start = text.startIndex
        var inQuotes = false
        var escaped = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if escaped {
                escaped = false
            } else if inQuotes && character == "\\" {
                escaped = true
            } else if character == "\"" {
                inQuotes.toggle()
            } else if character == ";" && !inQuotes {
                result.append(text[start..<index])
                start = text.index(after: index)
            }
            index = text.index(after: index)
        }
        result.append(text[start...])
        return result
    }

    private static func unquote(_ quoted: Substring) -> String {
        var result = ""
        var escaped = false
        for character in quoted {
            if !escaped && character == "\\" { escaped = true; continue }
            escaped = false
            result.append(character)
        }
        return result
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        let scalars = Substring(self).unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(scalars[first...last])
    }
}
