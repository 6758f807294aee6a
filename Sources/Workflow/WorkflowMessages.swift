import Foundation
import JSON

/// What a workflow sees of the client's request (the implicit `request` node), plus the facts properties read.
public struct WorkflowRequest: Sendable {
    public var method: String
    /// The path as received, without the query.
    public var path: String
    /// The path as received (kbridge does not rewrite paths, so it equals ``path`` unless the caller says otherwise).
    public var rawPath: String
    /// Query arguments, decoded; a repeated name becomes a list.
    public var query: JSONObject
    /// Headers in order as received; ``headerMap`` groups them.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var contentType: String?
    public var scheme: String
    public var version: String
    public var port: Int
    public var clientIP: String?
    public var clientPort: Int?
    public var routeName: String?
    public var requestID: String
    /// The topic the route would use without the workflow, which `kafka.topic` reads before a node sets it.
    public var defaultTopic: String?
    /// The client's verified TLS certificate: its subject (RFC 4514) and subject alternative names, which the
    /// `client.certificate.subject` and `client.certificate.sans` properties read.
    public var clientCertificate: (subject: String, subjectAlternativeNames: [String])?
    /// The consumer the route's `client_authentication` authenticated (the `client.consumer` property).
    public var consumer: String?

    public init(
        method: String, path: String, rawPath: String? = nil, query: JSONObject = JSONObject(), headers: [(name: String, value: String)],
        body: [UInt8], contentType: String?, scheme: String = "http", version: String = "1.1", port: Int, clientIP: String? = nil,
        clientPort: Int? = nil, routeName: String? = nil, requestID: String, defaultTopic: String? = nil,
        consumer: String? = nil
    ) {
        self.consumer = consumer
        self.method = method
        self.path = path
        self.rawPath = rawPath ?? path
        self.query = query
        self.headers = headers
        self.body = body
        self.contentType = contentType
        self.scheme = scheme
        self.version = version
        self.port = port
        self.clientIP = clientIP
        self.clientPort = clientPort
        self.routeName = routeName
        self.requestID = requestID
        self.defaultTopic = defaultTopic
    }

    /// Headers as Datakit shows them: name → string, or a list of strings when the name repeats. Names keep the case
    /// of their first occurrence.
    var headerMap: JSONObject { HeaderMap.object(from: headers) }

    /// The body as Datakit shows it: decoded when the content type is JSON (and the body is valid JSON), else the text.
    var bodyValue: JSONValue? { BodyCodec.decode(body, contentType: contentType) }
}

/// What the request becomes after the workflow (the implicit `service_request` node): each part `nil` when no node
/// changed it, so the caller keeps the request's own.
public struct WorkflowServiceRequest: Sendable {
    /// The new body, encoded (objects as JSON), with the content type that goes with it.
    public var body: (bytes: [UInt8], contentType: String?)?
    /// The headers after the workflow set some (each replaced by name, as Kong's `set_headers` does) or cleared
    /// them (`null`), in order; `nil` when no node touched them.
    public var headers: [(name: String, value: String)]?
    /// The new query arguments (name, value; `nil` for a name without a value).
    public var query: [(name: String, value: String?)]?
    /// `kafka.topic` when a node set it: one or several topics.
    public var topics: [String]?
    /// `kafka.key` when a node set it.
    public var key: String?
    /// `kafka.headers`: record headers for the message(s).
    public var recordHeaders: [(name: String, value: String)]?

    /// ``query`` as a query string (without `?`), percent-encoded; `nil` when the query is unchanged.
    public var encodedQuery: String? {
        query.map { pairs in
            pairs.map { pair in pair.value.map { "\(FormEncoding.escape(pair.name))=\(FormEncoding.escape($0))" } ?? FormEncoding.escape(pair.name) }
                .joined(separator: "&")
        }
    }
}

/// The answer to the client that a workflow decided (an `exit` node, or the `response` node).
public struct WorkflowResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var contentType: String?
}

/// What Kafka did with the message (the implicit `service_response` node).
public struct WorkflowServiceResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: JSONValue

    public init(status: Int, headers: [(name: String, value: String)] = [], body: JSONValue) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Datakit's header maps: name → string, or a list when the name repeats.
enum HeaderMap {
    /// Each name once, as first seen, in the order of first appearance (one dictionary lookup per header: this runs
    /// for every workflow request).
    static func object(from headers: [(name: String, value: String)]) -> JSONObject {
        var entries: [(name: String, values: [String])] = []
        entries.reserveCapacity(headers.count)
        var positions = [String: Int](minimumCapacity: headers.count)  // lower-cased name → its entry
        for (name, value) in headers {
            let lower = name.lowercased()
            if let position = positions[lower] {
                entries[position].values.append(value)
            } else {
                positions[lower] = entries.count
                entries.append((name, [value]))
            }
        }
        return JSONObject(entries.map { entry in
            (entry.name, entry.values.count == 1 ? .string(entry.values[0]) : .array(entry.values.map { .string($0) }))
        })
    }

    /// A header map back to a list: lists become repeated headers, numbers their text; `null` leaves the header out.
    static func pairs(from object: JSONObject) -> Result<[(name: String, value: String)], WorkflowNodeError> {
        var pairs: [(name: String, value: String)] = []
        for (name, value) in object {
            switch value {
            case .null: continue
            case .string(let text): pairs.append((name, text))
            case .number(let number): pairs.append((name, number.text))
            case .bool(let flag): pairs.append((name, flag ? "true" : "false"))
            case .array(let list):
                for element in list {
                    switch element {
                    case .string(let text): pairs.append((name, text))
                    case .number(let number): pairs.append((name, number.text))
                    default: return .failure(WorkflowNodeError("header '\(name)' must be a string or a list of strings"))
                    }
                }
            case .object: return .failure(WorkflowNodeError("header '\(name)' must be a string or a list of strings, got object"))
            }
            guard !name.isEmpty, name.utf8.allSatisfy(HeaderMap.isTokenByte) else {
                return .failure(WorkflowNodeError("'\(name)' is not a valid header name"))
            }
        }
        for pair in pairs where pair.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) {
            return .failure(WorkflowNodeError("header '\(pair.name)' has a line break or NUL in its value"))
        }
        return .success(pairs)
    }

    /// `base` with the headers of `changes` set (Kong's `set_headers`: each named header replaced, case-insensitively)
    /// and the ones set to `null` removed.
    static func merge(_ base: [(name: String, value: String)], with changes: JSONObject)
        -> Result<[(name: String, value: String)], WorkflowNodeError>
    {
        let replaced = Set(changes.keys.map { $0.lowercased() })
        var merged = base.filter { !replaced.contains($0.name.lowercased()) }
        switch pairs(from: changes) {
        case .success(let added): merged += added
        case .failure(let error): return .failure(error)
        }
        return .success(merged)
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}

/// Datakit's body rules: JSON content types decode, objects encode as JSON.
enum BodyCodec {
    /// The largest body decoded as JSON; larger ones stay text.
    static let maximumDecodedBytes = 16 << 20

    /// Whether the media type (before any `;`, without the spaces and tabs around it, in any case) is
    /// `application/json` or `application/*+json`. Read as bytes: it runs for every workflow request.
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let utf8 = contentType.utf8
        func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var start = utf8.startIndex
        var end = utf8.firstIndex(of: UInt8(ascii: ";")) ?? utf8.endIndex
        while start < end, isSpace(utf8[start]) { start = utf8.index(after: start) }
        while start < end, isSpace(utf8[utf8.index(before: end)]) { end = utf8.index(before: end) }
        let type = contentType[start..<end].lowercased()
        return type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json"))
    }

    static func decode(_ body: [UInt8], contentType: String?) -> JSONValue? {
        if body.isEmpty { return nil }
        if isJSON(contentType), body.count <= maximumDecodedBytes,
           let value = try? body.withUnsafeBytes({ try JSONParser.parse($0) }) {
            return value
        }
        return .string(String(decoding: body, as: UTF8.self))
    }

    /// A body value as bytes, and the content type it implies when the headers name none.
    static func encode(_ value: JSONValue, formURLEncoded: Bool = false) -> (bytes: [UInt8], contentType: String?) {
        switch value {
        // What json_to_xml makes (it always writes the declaration) is sent as XML, as Kong 3.13.0.10 does.
        case .string(let text) where text.hasPrefix("<?xml "): return (Array(text.utf8), "application/xml")
        case .string(let text): return (Array(text.utf8), nil)
        case .object(let object) where formURLEncoded: return (Array(FormEncoding.encode(object).utf8), "application/x-www-form-urlencoded")
        default: return (JSONWriter.bytes(value), "application/json")
        }
    }
}

/// `application/x-www-form-urlencoded` and query strings.
enum FormEncoding {
    static func encode(_ object: JSONObject) -> String {
        var parts: [String] = []
        for (name, value) in object {
            let values: [JSONValue] = value.arrayValue ?? [value]
            for element in values {
                switch element {
                case .null: parts.append(escape(name))
                case .string(let text): parts.append("\(escape(name))=\(escape(text))")
                case .number(let number): parts.append("\(escape(name))=\(escape(number.text))")
                case .bool(let flag): parts.append("\(escape(name))=\(flag)")
                default: parts.append("\(escape(name))=\(escape(element.jsonText))")
                }
            }
        }
        return parts.joined(separator: "&")
    }

    static func escape(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        let hex = Array("0123456789ABCDEF".unicodeScalars)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                output.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                output.unicodeScalars.append("%")
                output.unicodeScalars.append(hex[Int(byte >> 4)])
                output.unicodeScalars.append(hex[Int(byte & 0x0F)])
            }
        }
        return output
    }
}
