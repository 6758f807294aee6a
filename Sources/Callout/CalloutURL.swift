/// A parsed, canonical `http`/`https` URL: the one reading of a URL that both ``CalloutDestinationPolicy`` checks and
/// ``CalloutClient`` connects to, so the two cannot disagree about the host (the client sends the canonical ``string``,
/// never the original text).
///
/// Strict on purpose: printable ASCII only (non-ASCII must be percent-encoded), at most ``maximumLength`` bytes, no
/// userinfo, no `%` or `\` in the authority, no IPv6 zone, host names of letters, digits, `-` and `_` in labels of at
/// most 63 bytes (253 in all). A host whose last label is numeric (`2852039166`, `0xA9FEA9FE`, `0251.0376.0251.0376`,
/// `169.254.43518`) is an IPv4 address in the lenient `inet_aton` spellings the system resolver also accepts, and is
/// normalised to dotted-decimal; one that is not a valid such address is refused. A trailing dot is removed.
public struct CalloutURL: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable, Hashable {
        case http, https

        public var defaultPort: Int { self == .http ? 80 : 443 }
    }

    public enum Host: Sendable, Hashable, CustomStringConvertible {
        /// Lower-case DNS name without a trailing dot.
        case name(String)
        /// IPv4 address, host byte order.
        case ipv4(UInt32)
        /// IPv6 address, 16 bytes in network order.
        case ipv6([UInt8])

        /// Canonical text: the name, dotted-decimal, or RFC 5952 IPv6 (no brackets).
        public var description: String {
            switch self {
            case .name(let name): return name
            case .ipv4(let address): return IPAddressText.ipv4(address)
            case .ipv6(let bytes): return IPAddressText.ipv6(bytes)
            }
        }

        /// The host as it appears in a URL authority (IPv6 in brackets).
        public var urlText: String {
            if case .ipv6 = self { return "[\(description)]" }
            return description
        }
    }

    public static let maximumLength = 8192

    public let scheme: Scheme
    public let host: Host
    public let port: Int
    /// Path and query, always starting with `/`; the fragment is dropped.
    public let pathAndQuery: String

    /// `host:port` (IPv6 in brackets), for messages and the connection target; never userinfo, path or query.
    public var hostAndPort: String { "\(host.urlText):\(port)" }

    /// The `Host` header value: the host, with the port when it is not the scheme's default.
    public var authority: String { port == scheme.defaultPort ? host.urlText : hostAndPort }

    /// The canonical URL text handed to the HTTP client.
    public var string: String { "\(scheme.rawValue)://\(authority)\(pathAndQuery)" }

    public var description: String { string }

    public init(parsing text: String) throws(CalloutError) {
        guard text.utf8.count <= Self.maximumLength else {
            throw CalloutError(.invalidURL, "URL longer than \(Self.maximumLength) bytes")
        }
        guard text.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            throw CalloutError(.invalidURL, "URL contains spaces, control or non-ASCII characters (percent-encode them)")
        }
        guard let schemeEnd = text.firstRange(of: "://") else {
            throw CalloutError(.invalidURL, "URL is not absolute (expected http:// or https://)")
        }
        guard let scheme = Scheme(rawValue: text[..<schemeEnd.lowerBound].lowercased()) else {
            throw CalloutError(.invalidURL, "URL scheme must be http or https")
        }
        let rest = text[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var pathAndQuery = rest[authorityEnd...]
        if let fragment = pathAndQuery.firstIndex(of: "#") { pathAndQuery = pathAndQuery[..<fragment] }

        guard !authority.isEmpty else { throw CalloutError(.invalidURL, "URL has no host") }
        guard !authority.contains("@") else {
            throw CalloutError(.invalidURL, "URL must not contain userinfo (user:password@); send credentials in headers")
        }
        guard !authority.contains("%"), !authority.contains("\\") else {
            throw CalloutError(.invalidURL, "URL host must not contain '%' or '\\'")
        }

        let hostText: Substring
        let portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw CalloutError(.invalidURL, "URL has an unterminated IPv6 literal")
            }
            hostText = authority[authority.index(after: authority.startIndex)..<close]
            let afterClose = authority[authority.index(after: close)...]
            if afterClose.isEmpty {
                portText = nil
            } else if afterClose.hasPrefix(":") {
                portText = afterClose.dropFirst()
            } else {
                throw CalloutError(.invalidURL, "URL has characters after the IPv6 literal")
            }
            guard let address = IPAddressParser.ipv6(hostText) else {
                throw CalloutError(.invalidURL, "URL has an invalid IPv6 literal")
            }
            self.host = .ipv6(address)
        } else {
            let colons = authority.filter { $0 == ":" }.count
            guard colons <= 1 else { throw CalloutError(.invalidURL, "URL host has more than one ':' (IPv6 needs brackets)") }
            if let colon = authority.firstIndex(of: ":") {
                hostText = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            } else {
                hostText = authority
                portText = nil
            }
            self.host = try Self.parseHost(hostText)
        }

        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let port = Int(portText), (1...65535).contains(port)
            else {
                throw CalloutError(.invalidURL, "URL port must be 1-65535")
            }
            self.port = port
        } else {
            self.port = scheme.defaultPort
        }
        self.scheme = scheme
        self.pathAndQuery = pathAndQuery.hasPrefix("/") ? String(pathAndQuery) : "/" + pathAndQuery
    }

    /// Parses a host without brackets or port: an IPv6 literal (only when `allowBareIPv6`), an IPv4 address in any
    /// `inet_aton` spelling, or a DNS name (lower-cased, trailing dot removed).
    static func parseHost(_ text: Substring, allowBareIPv6: Bool = false) throws(CalloutError) -> Host {
        if allowBareIPv6, text.contains(":") {
            guard let address = IPAddressParser.ipv6(text) else {
                throw CalloutError(.invalidURL, "invalid IPv6 address")
            }
            return .ipv6(address)
        }
        var name = text.lowercased()
        if name.hasSuffix("."), name.count > 1 { name.removeLast() }
        guard !name.isEmpty, name.utf8.count <= 253 else {
            throw CalloutError(.invalidURL, "URL host is empty or longer than 253 bytes")
        }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty, label.utf8.count <= 63,
                  label.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F })
            else {
                throw CalloutError(.invalidURL, "URL host is not a valid host name")
            }
        }
        if let last = labels.last, IPAddressParser.looksNumeric(last) {
            guard let address = IPAddressParser.ipv4Lenient(name) else {
                throw CalloutError(.invalidURL, "URL host looks like an IPv4 address but is not a valid one")
            }
            return .ipv4(address)
        }
        return .name(name)
    }
}

/// IPv4/IPv6 text parsing, bounded: every part is length-checked before its value is computed.
enum IPAddressParser {
    /// WHATWG's rule: a host whose last label is a decimal number or `0x`-prefixed hex is meant as IPv4.
    static func looksNumeric(_ label: Substring) -> Bool {
        if label.allSatisfy({ $0.isASCII && $0.isNumber }) { return true }
        let lower = label.lowercased()
        return lower.hasPrefix("0x") && lower.dropFirst(2).allSatisfy { $0.isHexDigit }
    }

    /// `inet_aton` forms: `a`, `a.b`, `a.b.c`, `a.b.c.d`; each part decimal, `0`-prefixed octal or `0x` hex;
    /// the last part fills the remaining bytes.
    static func ipv4Lenient(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...4).contains(parts.count) else { return nil }
        var values: [UInt64] = []
        for part in parts {
            guard let value = numericPart(part) else { return nil }
            values.append(value)
        }
        var address: UInt64 = 0
        for value in values.dropLast() {
            guard value <= 255 else { return nil }
            address = (address << 8) | value
        }
        let remainingBytes = 5 - parts.count
        let lastLimit: UInt64 = (1 << (8 * UInt64(remainingBytes))) - 1
        guard let last = values.last, last <= lastLimit else { return nil }
        address = (address << (8 * UInt64(remainingBytes))) | last
        return UInt32(exactly: address)
    }

    private static func numericPart(_ part: Substring) -> UInt64? {
        guard !part.isEmpty, part.count <= 34 else { return nil }
        let lower = part.lowercased()
        let digits: Substring
        let radix: UInt64
        if lower.hasPrefix("0x") {
            digits = Substring(lower.dropFirst(2))
            radix = 16
            if digits.isEmpty { return 0 }  // "0x" alone reads as 0, as WHATWG does
        } else if lower.count > 1, lower.hasPrefix("0") {
            digits = Substring(lower.dropFirst())
            radix = 8
        } else {
            digits = Substring(lower)
            radix = 10
        }
        var value: UInt64 = 0
        for character in digits {
            guard let digit = character.hexDigitValue.map(UInt64.init), digit < radix else { return nil }
            let (shifted, overflowA) = value.multipliedReportingOverflow(by: radix)
            let (next, overflowB) = shifted.addingReportingOverflow(digit)
            guard !overflowA, !overflowB, next <= UInt64(UInt32.max) else { return nil }
            value = next
        }
        return value
    }

    /// Strict dotted-decimal (used inside IPv6 literals): four parts 0-255, no leading zeros.
    static func ipv4Strict(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var address: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  !(part.count > 1 && part.hasPrefix("0")), let value = UInt32(part), value <= 255
            else { return nil }
            address = (address << 8) | value
        }
        return address
    }

    /// RFC 4291 text forms, including `::` and a trailing dotted IPv4. No zone identifiers.
    static func ipv6(_ text: Substring) -> [UInt8]? {
        guard !text.isEmpty, text.count <= 45, !text.contains("%") else { return nil }
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }

        func groups(_ half: String, allowTrailingIPv4: Bool) -> [UInt16]? {
            if half.isEmpty { return [] }
            let pieces = half.split(separator: ":", omittingEmptySubsequences: false)
            var result: [UInt16] = []
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, allowTrailingIPv4, piece.contains(".") {
                    guard let v4 = ipv4Strict(piece) else { return nil }
                    result.append(UInt16(v4 >> 16))
                    result.append(UInt16(v4 & 0xFFFF))
                } else {
                    guard (1...4).contains(piece.count), piece.allSatisfy({ $0.isHexDigit }),
                          let value = UInt16(piece, radix: 16)
                    else { return nil }
                    result.append(value)
                }
            }
            return result
        }

        var all: [UInt16]
        if halves.count == 2 {
            guard let head = groups(halves[0], allowTrailingIPv4: false),
                  let tail = groups(halves[1], allowTrailingIPv4: true),
                  head.count + tail.count <= 7
            else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let only = groups(halves[0], allowTrailingIPv4: true), only.count == 8 else { return nil }
            all = only
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for group in all {
            bytes.append(UInt8(group >> 8))
            bytes.append(UInt8(group & 0xFF))
        }
        return bytes
    }
}

enum IPAddressText {
    static func ipv4(_ address: UInt32) -> String {
        "\(address >> 24).\((address >> 16) & 0xFF).\((address >> 8) & 0xFF).\(address & 0xFF)"
    }

    /// RFC 5952: lower-case hex, leading zeros dropped, the longest run (≥ 2) of zero groups as `::`.
    static func ipv6(_ bytes: [UInt8]) -> String {
        guard bytes.count == 16 else { return "invalid" }
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        var bestStart = -1
        var bestLength = 0
        var index = 0
        while index < 8 {
            if groups[index] == 0 {
                var end = index
                while end < 8, groups[end] == 0 { end += 1 }
                if end - index > bestLength { bestStart = index; bestLength = end - index }
                index = end
            } else {
                index += 1
            }
        }
        func hex(_ range: Range<Int>) -> String { range.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
        guard bestLength >= 2 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}
