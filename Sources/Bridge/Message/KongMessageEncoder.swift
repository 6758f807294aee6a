import JSON
import NIOCore
import NIOHTTP1

/// Which parts of a request go into the message (Kong's `forward_*` settings).
public struct MessageFields: Sendable, Hashable {
    /// `forward_method`: adds `method`. Default: `false`.
    public var method = false
    /// `forward_uri`: adds `uri` and `uri_args`. Default: `false`.
    public var uri = false
    /// `forward_headers`: adds `headers`. Default: `false`.
    public var headers = false
    /// `forward_body`: adds `body`, `body_args` and, for non-text bodies, `body_base64`. Default: `true`.
    public var body = true

    public init() {}
}

/// A request body that cannot be turned into a message.
struct MessageEncodingError: Error, Equatable, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// Encodes a request as Kong kafka-upstream's JSON message:
/// `{"method", "uri", "uri_args", "headers", "body", "body_args", "body_base64"}`, each present only when forwarded.
///
/// - `headers`: lower-cased names; a repeated header becomes an array of its values, in order.
/// - `uri_args`: the query, decoded as nginx does; repeated names become arrays, a name without `=` is `true`.
/// - `body_args`: for `application/json` (and `application/*+json`) the JSON body itself; for
///   `application/x-www-form-urlencoded` the decoded arguments; for `multipart/form-data` the fields, with file
///   parts as `{"filename", "content_type", "content"[, "content_base64": true]}`. A body of one of these types
///   that does not parse is an error (the client gets 400, nothing is produced). For any other type `body_args` is `{}`.
/// - `body`: the raw body as a string when it is UTF-8 and its type is text (`text/plain`, `text/html`,
///   `application/xml`, `text/xml`, `application/soap+xml`, or one of the parsed types); otherwise base64,
///   with `"body_base64": true`.
enum KongMessageEncoder {
    static let textTypes: Set<String> = ["text/plain", "text/html", "application/xml", "text/xml", "application/soap+xml"]

    static func encode(_ request: IngestRequest, fields: MessageFields, into buffer: inout ByteBuffer) throws(MessageEncodingError) {
        buffer.writeInteger(UInt8(ascii: "{"))
        var needsComma = false
        func separator(_ buffer: inout ByteBuffer) {
            if needsComma { buffer.writeInteger(UInt8(ascii: ",")) }
            needsComma = true
        }
        if fields.method {
            separator(&buffer)
            buffer.writeJSONKey("method")
            buffer.writeJSONString(request.method.rawValue)
        }
        if fields.uri {
            separator(&buffer)
            buffer.writeJSONKey("uri")
            buffer.writeJSONString(request.uri)
            buffer.writeStaticString(",")
            buffer.writeJSONKey("uri_args")
            do {
                try FormArguments.parse(request.query ?? "", maximumCount: request.limits.maximumFormFields).writeJSON(to: &buffer)
            } catch {
                throw MessageEncodingError(reason: "invalid query string: \(error.reason)")
            }
        }
        if fields.headers {
            separator(&buffer)
            buffer.writeJSONKey("headers")
            writeHeaders(request.headers, to: &buffer)
        }
        if fields.body {
            separator(&buffer)
            try writeBody(request, to: &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    private static func writeHeaders(_ headers: HTTPHeaders, to buffer: inout ByteBuffer) {
        let names = headers.map { $0.name.lowercased() }
        let values = headers.map(\.value)
        let grouping = FirstSeenGrouping(names)
        buffer.writeInteger(UInt8(ascii: "{"))
        for (groupIndex, group) in grouping.groups.enumerated() {
            if groupIndex > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeJSONString(names[group.first])
            buffer.writeInteger(UInt8(ascii: ":"))
            if group.count == 1 {
                buffer.writeJSONString(values[group.first])
            } else {
                buffer.writeInteger(UInt8(ascii: "["))
                for (valueIndex, member) in grouping.members(of: group).enumerated() {
                    if valueIndex > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                    buffer.writeJSONString(values[member])
                }
                buffer.writeInteger(UInt8(ascii: "]"))
            }
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    private static func writeBody(_ request: IngestRequest, to buffer: inout ByteBuffer) throws(MessageEncodingError) {
        let mediaType = request.contentType.flatMap(MediaType.init)
        let result = request.body.withUnsafeReadableBytes { body in
            Result { () throws(MessageEncodingError) in try writeBody(body, mediaType: mediaType, limits: request.limits, to: &buffer) }
        }
        try result.get()
    }

    private static func writeBody(
        _ body: UnsafeRawBufferPointer, mediaType: MediaType?, limits: MessageLimits, to buffer: inout ByteBuffer
    ) throws(MessageEncodingError) {
        let essence = mediaType?.essence ?? ""
        // Parse first (a bad body throws before anything is written), then write `body` and `body_args`.
        if essence == "application/json" || (essence.hasPrefix("application/") && essence.hasSuffix("+json")) {
            do { try JSONParser.validate(body) } catch { throw MessageEncodingError(reason: "\(error)") }
            writeRawBody(body, asText: true, knownUTF8: true, to: &buffer)
            buffer.writeBytes(body)  // valid JSON: embedded as it came, numbers and key order untouched
        } else if essence == "application/x-www-form-urlencoded" {
            let arguments: FormArguments
            do { arguments = try FormArguments.parse(body, maximumCount: limits.maximumFormFields) } catch {
                throw MessageEncodingError(reason: "invalid form body: \(error.reason)")
            }
            writeRawBody(body, asText: true, to: &buffer)
            arguments.writeJSON(to: &buffer)
        } else if essence == "multipart/form-data" {
            guard let boundary = mediaType?.parameters["boundary"], !boundary.isEmpty else {
                throw MessageEncodingError(reason: "multipart/form-data without a boundary parameter")
            }
            let form: MultipartForm
            do { form = try MultipartForm.parse(body, boundary: boundary, maximumParts: limits.maximumMultipartParts) } catch {
                throw MessageEncodingError(reason: "invalid multipart body: \(error.reason)")
            }
            writeRawBody(body, asText: true, to: &buffer)
            writeMultipart(form, body: body, to: &buffer)
        } else {
            writeRawBody(body, asText: textTypes.contains(essence), to: &buffer)
            buffer.writeStaticString("{}")
        }
    }

    /// Writes `"body":...,` and the `"body_args":` key; the body is a string when it is text and valid UTF-8,
    /// else base64 with `"body_base64":true` (written before `body_args`, whose value the caller writes).
    private static func writeRawBody(
        _ body: UnsafeRawBufferPointer, asText: Bool, knownUTF8: Bool = false, to buffer: inout ByteBuffer
    ) {
        buffer.writeJSONKey("body")
        if asText, knownUTF8 || UTF8Validation.isValid(body) {
            buffer.writeJSONString(body)
        } else {
            buffer.writeJSONBase64String(body)
            buffer.writeStaticString(",\"body_base64\":true")
        }
        buffer.writeStaticString(",")
        buffer.writeJSONKey("body_args")
    }

    private static func writeMultipart(_ form: MultipartForm, body: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        let grouping = FirstSeenGrouping(form.parts.map(\.name))
        buffer.writeInteger(UInt8(ascii: "{"))
        for (index, group) in grouping.groups.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeJSONString(form.parts[group.first].name)
            buffer.writeInteger(UInt8(ascii: ":"))
            if group.count > 1 { buffer.writeInteger(UInt8(ascii: "[")) }
            for (partIndex, member) in grouping.members(of: group).enumerated() {
                if partIndex > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                let part = form.parts[member]
                writePart(part, content: UnsafeRawBufferPointer(rebasing: body[part.content]), to: &buffer)
            }
            if group.count > 1 { buffer.writeInteger(UInt8(ascii: "]")) }
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// A plain field is its text; a file, or a field that is not UTF-8, is an object that keeps every byte.
    private static func writePart(_ part: MultipartForm.Part, content: UnsafeRawBufferPointer, to buffer: inout ByteBuffer) {
        let isUTF8 = UTF8Validation.isValid(content)
        if part.filename == nil, isUTF8 {
            buffer.writeJSONString(content)
            return
        }
        buffer.writeInteger(UInt8(ascii: "{"))
        if let filename = part.filename {
            buffer.writeJSONKey("filename")
            buffer.writeJSONString(filename)
            buffer.writeInteger(UInt8(ascii: ","))
        }
        if let contentType = part.contentType {
            buffer.writeJSONKey("content_type")
            buffer.writeJSONString(contentType)
            buffer.writeInteger(UInt8(ascii: ","))
        }
        buffer.writeJSONKey("content")
        if isUTF8 {
            buffer.writeJSONString(content)
        } else {
            buffer.writeJSONBase64String(content)
            buffer.writeStaticString(",\"content_base64\":true")
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }
}

/// Equal keys grouped in first-seen order, in linear time: a dictionary from key to group and, per element,
/// the index of the next element of its group (a lookup per element with `firstIndex(where:)` was quadratic:
/// 20,000 distinct multipart names took seconds on the event loop).
struct FirstSeenGrouping {
    struct Group {
        /// The index of the group's first element.
        var first: Int
        fileprivate(set) var last: Int
        fileprivate(set) var count: Int
    }

    private(set) var groups: [Group] = []
    /// For each element, the index of the next element with the same key, or -1.
    private var next: [Int]

    init<Key: Hashable>(_ keys: [Key]) {
        next = Array(repeating: -1, count: keys.count)
        var groupOfKey: [Key: Int] = [:]
        groupOfKey.reserveCapacity(keys.count)
        for (index, key) in keys.enumerated() {
            if let group = groupOfKey[key] {
                next[groups[group].last] = index
                groups[group].last = index
                groups[group].count += 1
            } else {
                groupOfKey[key] = groups.count
                groups.append(Group(first: index, last: index, count: 1))
            }
        }
    }

    /// The indices of the group's elements, in order.
    func members(of group: Group) -> some Sequence<Int> {
        sequence(first: group.first) { [next] index in next[index] >= 0 ? next[index] : nil }
    }
}
