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
        /// The route's `{topic}` or `{key}` segment is not valid percent-encoded UTF-8 (400 `invalid_path`).
        case invalidPath(reason: String)
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
        let isNormal = Self.isNormal(path)
        let normalised = isNormal ? String(path) : "/" + RoutePattern.split(path).joined(separator: "/")
        for ingestor in exact[normalised] ?? [] {
            if ingestor.route.methods.contains(method.rawValue) { return .found(Match(ingestor: ingestor)) }
            allowed.append(contentsOf: ingestor.route.methods)
        }
        let segments = parameterised.isEmpty ? [] : RoutePattern.split(path)
        for ingestor in parameterised {
            guard Self.matchesStructurally(ingestor, segments) else { continue }
            if ingestor.route.methods.contains(method.rawValue) {
                switch Self.match(ingestor, segments) {
                case .success(let match): return .found(match)
                case .failure(let reason): return .invalidPath(reason: reason.description)
                }
            }
            allowed.append(contentsOf: ingestor.route.methods)
        }
        if allowed.isEmpty { return .notFound }
        var unique: [String] = []
        for method in allowed where !unique.contains(method) { unique.append(method) }
        return .methodNotAllowed(allowed: unique)
    }

    /// Whether `path` starts with `/`, has no empty segment and no trailing `/` (unless it is `/`): one pass over its
    /// bytes (`StringProtocol.contains(_:)` took a microsecond per request here).
    static func isNormal(_ path: Substring) -> Bool {
        var previous: UInt8 = 0
        var count = 0
        for byte in path.utf8 {
            if count == 0 { guard byte == UInt8(ascii: "/") else { return false } }
            else if byte == UInt8(ascii: "/") && previous == UInt8(ascii: "/") { return false }
            previous = byte
            count += 1
        }
        return count == 1 || (count > 1 && previous != UInt8(ascii: "/"))
    }

    private static func matchesStructurally(_ ingestor: RouteIngestor, _ segments: [Substring]) -> Bool {
        let pattern = ingestor.pattern.segments
        guard pattern.count == segments.count else { return false }
        for (expected, actual) in zip(pattern, segments) {
            if case .literal(let text) = expected, actual != text { return false }
        }
        return true
    }

    /// A failed `{topic}`/`{key}` decoding, with the segment it is about.
    struct InvalidSegment: Error, CustomStringConvertible {
        var parameter: String
        var failure: PercentDecoding.Failure
        var description: String { "the {\(parameter)} path segment is \(failure)" }
    }

    private static func match(_ ingestor: RouteIngestor, _ segments: [Substring]) -> Result<Match, InvalidSegment> {
        var match = Match(ingestor: ingestor)
        for (expected, actual) in zip(ingestor.pattern.segments, segments) {
            switch expected {
            case .literal: continue
            case .topic:
                switch percentDecoded(actual) {
                case .success(let topic): match.topic = topic
                case .failure(let failure): return .failure(InvalidSegment(parameter: "topic", failure: failure))
                }
            case .key:
                switch percentDecoded(actual) {
                case .success(let key): match.key = key
                case .failure(let failure): return .failure(InvalidSegment(parameter: "key", failure: failure))
                }
            }
        }
        return .success(match)
    }

    /// Strict `%XX` decoding of a path segment (no `+` rule in paths): a malformed escape or bytes that are not
    /// UTF-8 are refused, never kept as they are or replaced.
    static func percentDecoded(_ segment: Substring) -> Result<String, PercentDecoding.Failure> {
        PercentDecoding.decode(segment, plusIsSpace: false, malformedEscapes: .refuse)
    }
}
