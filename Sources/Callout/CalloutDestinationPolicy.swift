/// Where a call whose URL came from request data (a dynamic URL) may go: SSRF protection.
///
/// - The URL is parsed by ``CalloutURL`` (http/https only, no userinfo, strict host syntax, every IPv4 spelling
///   normalised), the same parser ``CalloutClient`` connects with.
/// - Link-local and cloud metadata destinations are refused unless `allowLinkLocal`, even when the allow-list matches:
///   169.254.0.0/16 (169.254.169.254), 100.100.100.200 (Alibaba Cloud metadata), fe80::/10, fd00:ec2::254, the names
///   `metadata`, `metadata.google.internal`, `metadata.goog`, and IPv6 forms that embed an IPv4 address
///   (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`,
///   NAT64 `64:ff9b::/96`, 6to4 `2002::/16`).
/// - The host must then match `allowedHosts`: exact host names, `*.example.com` (any name strictly below
///   `example.com`, not `example.com` itself), or IP literals (matched by address, so `127.1` matches an entry
///   `127.0.0.1`, and an IPv4-mapped `::ffff:a.b.c.d` matches the IPv4 entry), all case-insensitive. An empty
///   list allows no dynamic destination. A bare `*` is refused (list the domains instead).
/// - Loopback and private addresses are not refused by themselves: the allow-list decides (list them only on purpose).
///
/// Not covered: DNS resolution. A host name is judged by its text; a name that resolves to a link-local or internal
/// address (including DNS rebinding between check and connect) passes if it is allow-listed. The HTTP client exposes
/// no resolver hook, so list only names you control. Redirects are never followed by ``CalloutClient``, so a 3xx cannot
/// lead around this check.
public struct CalloutDestinationPolicy: Sendable {
    public let allowedHosts: [String]
    public let allowLinkLocal: Bool

    private let exactNames: Set<String>
    /// `.example.com` for an entry `*.example.com`.
    private let nameSuffixes: [String]
    private let exactAddresses: Set<CalloutURL.Host>

    public static let maximumEntries = 1024

    /// Validates the entries; the error names the offending entry.
    public init(allowedHosts: [String], allowLinkLocal: Bool = false) throws(CalloutError) {
        guard allowedHosts.count <= Self.maximumEntries else {
            throw CalloutError(.invalidURL, "allowed hosts: more than \(Self.maximumEntries) entries")
        }
        var exactNames: Set<String> = []
        var nameSuffixes: [String] = []
        var exactAddresses: Set<CalloutURL.Host> = []
        for entry in allowedHosts {
            guard entry.utf8.count <= 255 else {
                throw CalloutError(.invalidURL, "allowed hosts: entry longer than 255 bytes")
            }
            var text = Substring(entry)
            if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
            if text.hasPrefix("*.") {
                let base: CalloutURL.Host
                do {
                    base = try CalloutURL.parseHost(text.dropFirst(2))
                } catch {
                    throw CalloutError(.invalidURL, "allowed hosts: '\(entry)' is not a valid '*.domain' pattern")
                }
                guard case .name(let name) = base else {
                    throw CalloutError(.invalidURL, "allowed hosts: '\(entry)': a wildcard needs a domain, not an IP address")
                }
                nameSuffixes.append("." + name)
                continue
            }
            let host: CalloutURL.Host
            do {
                host = try CalloutURL.parseHost(text, allowBareIPv6: true)
            } catch {
                throw CalloutError(
                    .invalidURL, "allowed hosts: '\(entry)' is not a host name, IP address or '*.domain' pattern")
            }
            switch host {
            case .name(let name): exactNames.insert(name)
            case .ipv4, .ipv6: exactAddresses.insert(Self.comparableAddress(host))
            }
        }
        self.allowedHosts = allowedHosts
        self.allowLinkLocal = allowLinkLocal
        self.exactNames = exactNames
        self.nameSuffixes = nameSuffixes
        self.exactAddresses = exactAddresses
    }

    /// Parses and checks `url`; returns the parsed URL (pass its ``CalloutURL/string`` on to the client).
    @discardableResult
    public func check(_ url: String) throws(CalloutError) -> CalloutURL {
        let parsed = try CalloutURL(parsing: url)
        try check(parsed)
        return parsed
    }

    public func check(_ url: CalloutURL) throws(CalloutError) {
        if !allowLinkLocal, Self.isLinkLocalOrMetadata(url.host) {
            throw CalloutError(
                .refusedDestination, destination: url.hostAndPort,
                "destination \(url.host) refused: link-local or cloud metadata address")
        }
        guard isAllowListed(url.host) else {
            throw CalloutError(
                .refusedDestination, destination: url.hostAndPort,
                "destination \(url.host) refused: not in the allowed hosts")
        }
    }

    private func isAllowListed(_ host: CalloutURL.Host) -> Bool {
        switch host {
        case .name(let name):
            return exactNames.contains(name) || nameSuffixes.contains { name.hasSuffix($0) }
        case .ipv4, .ipv6:
            return exactAddresses.contains(Self.comparableAddress(host))
        }
    }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) reaches the IPv4 address, so it matches as that address.
    private static func comparableAddress(_ host: CalloutURL.Host) -> CalloutURL.Host {
        guard case .ipv6(let bytes) = host, bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }),
              bytes[10] == 0xFF, bytes[11] == 0xFF
        else { return host }
        return .ipv4(UInt32(bytes[12]) << 24 | UInt32(bytes[13]) << 16 | UInt32(bytes[14]) << 8 | UInt32(bytes[15]))
    }

    static let metadataNames: Set<String> = ["metadata", "metadata.google.internal", "metadata.goog"]

    /// True for link-local and cloud metadata destinations (see the type's documentation for the list).
    public static func isLinkLocalOrMetadata(_ host: CalloutURL.Host) -> Bool {
        switch host {
        case .name(let name):
            return metadataNames.contains(name)
        case .ipv4(let address):
            return isLinkLocalOrMetadata(ipv4: address)
        case .ipv6(let bytes):
            guard bytes.count == 16 else { return true }
            // fe80::/10
            if bytes[0] == 0xFE, bytes[1] & 0xC0 == 0x80 { return true }
            // fd00:ec2::254 (AWS IMDS over IPv6)
            if bytes == [0xFD, 0x00, 0x0E, 0xC2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54] { return true }
            if let embedded = embeddedIPv4(bytes) { return isLinkLocalOrMetadata(ipv4: embedded) }
            return false
        }
    }

    private static func isLinkLocalOrMetadata(ipv4 address: UInt32) -> Bool {
        address >> 16 == 0xA9FE  // 169.254.0.0/16
            || address == 0x6464_64C8  // 100.100.100.200
    }

    /// The IPv4 address an IPv6 address stands for, when it embeds one.
    private static func embeddedIPv4(_ bytes: [UInt8]) -> UInt32? {
        func word(_ offset: Int) -> UInt32 {
            UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
                | UInt32(bytes[offset + 3])
        }
        let firstTen = bytes[0..<10].allSatisfy { $0 == 0 }
        // ::ffff:a.b.c.d (mapped)
        if firstTen, bytes[10] == 0xFF, bytes[11] == 0xFF { return word(12) }
        // ::a.b.c.d (compatible, deprecated), excluding :: and ::1
        if firstTen, bytes[10] == 0, bytes[11] == 0, word(12) > 1 { return word(12) }
        // ::ffff:0:a.b.c.d (translated)
        if bytes[0..<8].allSatisfy({ $0 == 0 }), bytes[8] == 0xFF, bytes[9] == 0xFF, bytes[10] == 0, bytes[11] == 0 {
            return word(12)
        }
        // 64:ff9b::/96 (NAT64)
        if bytes[0..<4].elementsEqual([0x00, 0x64, 0xFF, 0x9B]), bytes[4..<12].allSatisfy({ $0 == 0 }) { return word(12) }
        // 2002::/16 (6to4)
        if bytes[0] == 0x20, bytes[1] == 0x02 { return word(2) }
        return nil
    }
}
