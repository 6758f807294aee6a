import NIOHTTP1

/// The routes compiled once at start-up: exact paths in a dictionary, parameterised paths in file order.
struct RouteTable: Sendable {
    struct Match {
        var ingestor: RouteIngestor
        /// The `{topic}` path segment, percent-decoded.
        var topic: String?
        /// The `{key}` path segment, percent-decoded.
        var key: String?
    }

    enum Lookup {
        case found(Match)
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    private let exact: [String: [RouteIngestor]]
    private let parameterised: [RouteIngestor]

    init(_ ingestors: [RouteIngestor]) {
        var exact: [String: [RouteIngestor]] = [:]
        var parameterised: [RouteIngestor] = []
        for ingestor in ingestors {
            if ingestor.pattern.hasParameters {
                parameterised.append(ingestor)
            } else {
                exact[ingestor.pattern.description, default: []].append(ingestor)
            }
        }
        self.exact = exact
        self.parameterised = parameterised
    }

    /// Finds the route for a request: exact paths first, then parameterised ones in configuration order.
    func lookup(method: HTTPMethod, path: Substring) -> Lookup {
        var allowed: [String] = []
        // Most paths are already normal ("/a/b"); only others are rebuilt from their segments.
        let isNormal = path.hasPrefix("/") && !path.contains("//") && (path.count == 1 || !path.hasSuffix("/"))
        let normalised = isNormal ? String(path) : "/" + RoutePattern.split(path).joined(separator: "/")
        for ingestor in exact[normalised] ?? [] {
            if ingestor.route.methods.contains(method.rawValue) { return .found(Match(ingestor: ingestor)) }
            allowed.append(contentsOf: ingestor.route.methods)
        }
        let segments = parameterised.isEmpty ? [] : RoutePattern.split(path)
        for ingestor in parameterised {
            guard let match = Self.match(ingestor, segments) else { continue }
            if ingestor.route.methods.contains(method.rawValue) { return .found(match) }
            allowed.append(contentsOf: ingestor.route.methods)
        }
        if allowed.isEmpty { return .notFound }
        var unique: [String] = []
        for method in allowed where !unique.contains(method) { unique.append(method) }
        return .methodNotAllowed(allowed: unique)
    }

    private static func match(_ ingestor: RouteIngestor, _ segments: [Substring]) -> Match? {
        let pattern = ingestor.pattern.segments
        guard pattern.count == segments.count else { return nil }
        var match = Match(ingestor: ingestor)
        for (expected, actual) in zip(pattern, segments) {
            switch expected {
            case .literal(let text): guard actual == text else { return nil }
            case .topic: match.topic = percentDecoded(actual)
            case .key: match.key = percentDecoded(actual)
            }
        }
        return match
    }

    /// `%XX` decoding of a path segment (no `+` rule in paths); invalid UTF-8 is kept as replacement characters.
    static func percentDecoded(_ segment: Substring) -> String {
        guard segment.contains("%") else { return String(segment) }
        var bytes: [UInt8] = []
        let utf8 = Array(segment.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%"), index + 2 < utf8.count,
               let value = UInt8(String(decoding: utf8[(index + 1)...(index + 2)], as: UTF8.self), radix: 16) {
                bytes.append(value)
                index += 3
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
