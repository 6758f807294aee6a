import Testing

@testable import Callout

@Suite("CalloutTests: destination policy and URL parsing")
struct CalloutDestinationPolicyTests {
    enum Verdict: Sendable, CustomStringConvertible {
        case allowed, refused, invalid
        var description: String {
            switch self {
            case .allowed: "allowed"
            case .refused: "refused"
            case .invalid: "invalid"
            }
        }
    }

    static let allowList = [
        "api.example.com", "*.internal.example", "10.0.0.5", "::1", "[2001:db8::7]",
        // Allow-listed but link-local / metadata: still refused unless allowLinkLocal.
        "169.254.169.254", "metadata.google.internal", "metadata", "fe80::1", "fd00:ec2::254",
    ]

    static func verdict(_ url: String, policy: CalloutDestinationPolicy) -> Verdict {
        do {
            try policy.check(url)
            return .allowed
        } catch {
            switch error.kind {
            case .refusedDestination: return .refused
            case .invalidURL: return .invalid
            default: return .invalid
            }
        }
    }

    static let cases: [(String, Verdict)] = [
        // Allow-list matches.
        ("https://api.example.com/x", .allowed),
        ("HTTPS://API.Example.COM./x?y=1#frag", .allowed),
        ("http://api.example.com:8080", .allowed),
        ("http://a.internal.example:8080/", .allowed),
        ("http://a.b.internal.example/", .allowed),
        ("http://10.0.0.5/", .allowed),
        ("http://012.0.0.5/", .allowed),  // octal 012 = 10
        ("http://167772165/", .allowed),  // 10.0.0.5 as one decimal number
        ("http://0x0a000005/", .allowed),
        ("http://10.5/", .allowed),  // inet_aton a.b form
        ("http://[::1]:8080/", .allowed),
        ("http://[0:0:0:0:0:0:0:1]/", .allowed),
        ("http://[2001:DB8:0::7]/", .allowed),
        ("http://[::ffff:10.0.0.5]/", .allowed),  // IPv4-mapped matches the IPv4 entry
        ("http://[::ffff:a00:5]/", .allowed),
        ("http://[::10.0.0.5]/", .refused),  // IPv4-compatible is a different (deprecated) address
        // Not on the allow-list.
        ("http://internal.example/", .refused),  // wildcard is strictly below the domain
        ("http://evilinternal.example/", .refused),
        ("http://api.example.com.evil.com/", .refused),
        ("http://api.example.co/", .refused),
        ("http://10.0.0.6/", .refused),
        ("http://localhost/", .refused),
        ("http://127.0.0.1/", .refused),
        ("http://[::2]/", .refused),
        ("http://0x1g/", .refused),  // not hex: a (non-listed) name
        // Link-local and metadata, refused even though allow-listed.
        ("http://169.254.169.254/latest/meta-data/", .refused),
        ("http://2852039166/", .refused),
        ("http://0xA9FEA9FE/", .refused),
        ("http://0xa9.0xfe.0xa9.0xfe/", .refused),
        ("http://0251.0376.0251.0376/", .refused),
        ("http://0251.254.169.254/", .refused),
        ("http://169.254.43518/", .refused),
        ("http://169.16689662/", .refused),
        ("http://169.254.1.1/", .refused),
        ("http://100.100.100.200/", .refused),
        ("http://[::ffff:169.254.169.254]/", .refused),
        ("http://[::ffff:a9fe:a9fe]/", .refused),
        ("http://[0:0:0:0:0:ffff:169.254.169.254]/", .refused),
        ("http://[::169.254.169.254]/", .refused),
        ("http://[::ffff:0:169.254.169.254]/", .refused),
        ("http://[64:ff9b::a9fe:a9fe]/", .refused),
        ("http://[64:ff9b::169.254.169.254]/", .refused),
        ("http://[2002:a9fe:a9fe::1]/", .refused),
        ("http://[fe80::1]/", .refused),
        ("http://[FE80::abcd]/", .refused),
        ("http://[febf::1]/", .refused),
        ("http://[fd00:ec2::254]/", .refused),
        ("http://[fd00:ec2:0::254]/", .refused),
        ("http://metadata.google.internal/computeMetadata/v1/", .refused),
        ("http://METADATA.google.internal./", .refused),
        ("http://metadata/", .refused),
        ("http://metadata./", .refused),
        ("http://metadata.goog/", .refused),
        // Malformed or tricky URLs.
        ("ftp://api.example.com/", .invalid),
        ("file:///etc/passwd", .invalid),
        ("api.example.com/x", .invalid),
        ("//api.example.com/x", .invalid),
        ("http://user:secret@api.example.com/", .invalid),
        ("http://api.example.com@169.254.169.254/", .invalid),
        ("http://api.example.com\\@169.254.169.254/", .invalid),
        ("http://api.example.com%2F@evil/", .invalid),
        ("http://api%2Eexample.com/", .invalid),
        ("http://[fe80::1%25eth0]/", .invalid),
        ("http://[::1/", .invalid),
        ("http://[::1]x/", .invalid),
        ("http://1::2/", .invalid),
        ("http://[1::2::3]/", .invalid),
        ("http://[1:2:3:4:5:6:7:8:9]/", .invalid),
        ("http://[12345::]/", .invalid),
        ("http://[::1.2.3.04]/", .invalid),
        ("http://256.1.1.1/", .invalid),
        ("http://1.2.3.4.5/", .invalid),
        ("http://4294967296/", .invalid),
        ("http://0x1ffffffff/", .invalid),
        ("http://1.2.3.08/", .invalid),  // 08 is not octal
        ("http://999999999999999999999999999999/", .invalid),
        ("http://api.example.com:0/", .invalid),
        ("http://api.example.com:65536/", .invalid),
        ("http://api.example.com:/", .invalid),
        ("http://api.example.com:+80/", .invalid),
        ("http://api.example.com:80:80/", .invalid),
        ("http:// api.example.com/", .invalid),
        ("http://api.example.com/\r\nX-Injected: 1", .invalid),
        ("http://api.example.com/a b", .invalid),
        ("http://m\u{FC}nchen.example/", .invalid),
        ("http:///path", .invalid),
        ("http://a..b/", .invalid),
        ("http://.api.example.com/", .invalid),
        ("http://-/", .refused),  // syntactically a label, not allow-listed
        ("http://" + String(repeating: "a", count: 64) + ".example/", .invalid),
        ("http://api.example.com/" + String(repeating: "a", count: 9000), .invalid),
    ]

    @Test("table: allowed, refused and invalid destinations", arguments: cases)
    func table(url: String, expected: Verdict) throws {
        let policy = try CalloutDestinationPolicy(allowedHosts: Self.allowList)
        #expect(Self.verdict(url, policy: policy) == expected, "\(url)")
    }

    @Test("allowLinkLocal lets allow-listed link-local and metadata destinations through, and only those")
    func allowLinkLocal() throws {
        let policy = try CalloutDestinationPolicy(allowedHosts: Self.allowList, allowLinkLocal: true)
        for url in ["http://169.254.169.254/", "http://0xA9FEA9FE/", "http://[::ffff:169.254.169.254]/",
                    "http://metadata.google.internal/", "http://[fe80::1]/", "http://[fd00:ec2::254]/"]
        {
            #expect(Self.verdict(url, policy: policy) == .allowed, "\(url)")
        }
        // Still bound by the allow-list.
        #expect(Self.verdict("http://169.254.1.1/", policy: policy) == .refused)
        #expect(Self.verdict("http://[fe80::2]/", policy: policy) == .refused)
    }

    @Test("an empty allow-list allows no dynamic destination")
    func emptyAllowList() throws {
        let policy = try CalloutDestinationPolicy(allowedHosts: [])
        #expect(Self.verdict("https://api.example.com/", policy: policy) == .refused)
        #expect(Self.verdict("http://127.0.0.1/", policy: policy) == .refused)
    }

    @Test("refusals name the host, never the path, query or userinfo")
    func refusalMessages() throws {
        let policy = try CalloutDestinationPolicy(allowedHosts: ["api.example.com"])
        do {
            try policy.check("http://0xA9FEA9FE/latest?token=secret")
            Issue.record("expected a refusal")
        } catch {
            #expect(error.kind == .refusedDestination)
            #expect(error.description.contains("169.254.169.254"))
            #expect(!error.description.contains("secret"))
            #expect(error.description.contains("link-local"))
        }
        do {
            try policy.check("https://other.example.com/path?token=secret")
            Issue.record("expected a refusal")
        } catch {
            #expect(error.description.contains("other.example.com"))
            #expect(!error.description.contains("secret"))
        }
        do {
            try policy.check("https://admin:secret@api.example.com/")
            Issue.record("expected a refusal")
        } catch {
            #expect(error.kind == .invalidURL)
            #expect(!error.description.contains("secret"))
        }
    }

    @Test("invalid allow-list entries fail with the entry named", arguments: ["*", "*.", "http://x.example", "a b", "*.10.0.0.1", "1.2.3.4.5", "[::1", "x..y", ""])
    func invalidEntries(entry: String) {
        do {
            _ = try CalloutDestinationPolicy(allowedHosts: ["ok.example", entry])
            Issue.record("entry '\(entry)' was accepted")
        } catch {
            #expect(error.kind == .invalidURL)
            #expect(error.description.contains("'\(entry)'"))
        }
    }

    @Test("URLs are normalised to one canonical form", arguments: [
        ("http://0xA9FEA9FE:80/x#frag", "http://169.254.169.254/x"),
        ("HTTP://API.example.COM?q=1", "http://api.example.com/?q=1"),
        ("https://[0:0::1]:8443/a", "https://[::1]:8443/a"),
        ("https://[2001:DB8:0:0:1:0:0:1]/", "https://[2001:db8::1:0:0:1]/"),
        ("https://[::FFFF:169.254.169.254]/", "https://[::ffff:a9fe:a9fe]/"),
        ("https://example.com.:443/p/q", "https://example.com/p/q"),
        ("http://example.com:8080", "http://example.com:8080/"),
        ("http://127.1/", "http://127.0.0.1/"),
    ])
    func canonicalForm(input: String, expected: String) throws {
        #expect(try CalloutURL(parsing: input).string == expected)
    }

    @Test("printing a request or proxy setting shows no secrets")
    func redactedDescriptions() {
        let request = CalloutRequest(
            method: "POST", url: "https://api.example.com/token?key=secret-query",
            headers: [("Authorization", "Bearer secret-header")], body: Array("secret-body".utf8),
            proxy: CalloutProxy(httpsProxy: "http://proxy.example:3128", username: "proxy-user", password: "secret-password"))
        for text in [String(describing: request), String(reflecting: request), "\(request.proxy!)", String(reflecting: request.proxy!)] {
            #expect(!text.contains("secret"), "\(text)")
        }
        #expect(String(describing: request).contains("api.example.com:443"))
    }

    @Test("loopback and unspecified IPv6 are not mistaken for embedded IPv4")
    func loopbackIsNotEmbedded() throws {
        #expect(!CalloutDestinationPolicy.isLinkLocalOrMetadata(try CalloutURL(parsing: "http://[::1]/").host))
        #expect(!CalloutDestinationPolicy.isLinkLocalOrMetadata(try CalloutURL(parsing: "http://[::]/").host))
        #expect(!CalloutDestinationPolicy.isLinkLocalOrMetadata(try CalloutURL(parsing: "http://[fec0::1]/").host))
        #expect(!CalloutDestinationPolicy.isLinkLocalOrMetadata(try CalloutURL(parsing: "http://169.253.255.255/").host))
        #expect(!CalloutDestinationPolicy.isLinkLocalOrMetadata(try CalloutURL(parsing: "http://169.255.0.0/").host))
    }
}
