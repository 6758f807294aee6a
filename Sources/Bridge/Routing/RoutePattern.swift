/// A route path compiled once: literal segments and the parameters `{topic}` and `{key}`.
struct RoutePattern: Hashable, Sendable, CustomStringConvertible {
    enum Segment: Hashable, Sendable {
        case literal(String)
        case topic
        case key
    }

    struct Failure: Error, Equatable { var reason: String }

    static let parameterNames = ["topic", "key"]

    let segments: [Segment]

    var hasParameters: Bool { segments.contains { !$0.isLiteral } }
    var hasTopic: Bool { segments.contains(.topic) }

    init(parsing path: String) throws(Failure) {
        guard path.hasPrefix("/") else { throw Failure(reason: "must start with '/'") }
        var segments: [Segment] = []
        for raw in Self.split(Substring(path)) {
            if raw.hasPrefix("{"), raw.hasSuffix("}") {
                guard raw.count > 2 else { throw Failure(reason: "segment '{}' names no parameter") }
                let name = String(raw.dropFirst().dropLast())
                let segment: Segment
                switch name {
                case "topic": segment = .topic
                case "key": segment = .key
                default:
                    throw Failure(reason: "unknown parameter '{\(name)}' (known: {topic}, {key})")
                }
                guard !segments.contains(segment) else { throw Failure(reason: "parameter '{\(name)}' appears twice") }
                segments.append(segment)
            } else {
                guard !raw.contains("{"), !raw.contains("}") else {
                    throw Failure(reason: "segment '\(raw)' mixes text and a parameter; a parameter must be a whole segment")
                }
                segments.append(.literal(String(raw)))
            }
        }
        self.segments = segments
    }

    /// Splits a path into its segments, ignoring empty ones (so `/a//b/` is `a`, `b`).
    static func split(_ path: Substring) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    var description: String {
        "/" + segments.map { segment in
            switch segment {
            case .literal(let text): text
            case .topic: "{topic}"
            case .key: "{key}"
            }
        }.joined(separator: "/")
    }
}

extension RoutePattern.Segment {
    var isLiteral: Bool { if case .literal = self { true } else { false } }
}
