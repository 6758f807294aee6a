/// A `multipart/form-data` body (RFC 7578) split into its parts.
///
/// Hand-written rather than taken from vapor/multipart-kit: its streaming parser keeps its state private, so it
/// cannot tell a truncated body (no closing boundary) from a complete one, and kbridge must reject the former.
struct MultipartForm {
    struct Part {
        /// The `name` of the part's `Content-Disposition`.
        var name: String
        /// The `filename` of the part's `Content-Disposition`, present for file uploads.
        var filename: String?
        /// The part's own `Content-Type`, if it has one.
        var contentType: String?
        /// Where the part's content lies in the body.
        var content: Range<Int>
    }

    struct Failure: Error, Equatable, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    var parts: [Part]

    /// Splits `body` at `boundary`. Throws when the body does not start with the boundary, a part has no
    /// `Content-Disposition: form-data` with a name, or the closing boundary is missing.
    static func parse(_ body: UnsafeRawBufferPointer, boundary: String) throws(Failure) -> MultipartForm {
        let delimiter = Array("--\(boundary)".utf8)
        let separator = Array("\r\n--\(boundary)".utf8)
        guard let first = find(delimiter, in: body, from: 0) else {
            throw Failure(reason: "multipart body does not contain the boundary '\(boundary)'")
        }
        var position = first + delimiter.count
        var parts: [Part] = []
        while true {
            if position + 2 <= body.count, body[position] == UInt8(ascii: "-"), body[position + 1] == UInt8(ascii: "-") {
                return MultipartForm(parts: parts)  // closing delimiter; anything after it is the epilogue
            }
            // Transport padding (spaces, tabs), then the CRLF ending the delimiter line.
            while position < body.count, body[position] == UInt8(ascii: " ") || body[position] == UInt8(ascii: "\t") {
                position += 1
            }
            guard position + 2 <= body.count, body[position] == 0x0D, body[position + 1] == 0x0A else {
                throw Failure(reason: "multipart body ends before the closing boundary '--\(boundary)--'")
            }
            position += 2
            guard let headerEnd = find([0x0D, 0x0A, 0x0D, 0x0A], in: body, from: position - 2) else {
                throw Failure(reason: "multipart part \(parts.count + 1) has no end of headers")
            }
            let headers = String(decoding: UnsafeRawBufferPointer(rebasing: body[position..<max(position, headerEnd)]), as: UTF8.self)
            let contentStart = headerEnd + 4
            guard let contentEnd = find(separator, in: body, from: contentStart) else {
                throw Failure(reason: "multipart body ends before the closing boundary '--\(boundary)--'")
            }
            parts.append(try part(headers: headers, content: contentStart..<max(contentStart, contentEnd), number: parts.count + 1))
            position = contentEnd + separator.count
        }
    }

    private static func part(headers: String, content: Range<Int>, number: Int) throws(Failure) -> Part {
        var name: String?
        var filename: String?
        var contentType: String?
        for line in headers.split(separator: "\r\n", omittingEmptySubsequences: true) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let field = line[..<colon].trimmingSpaces().lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces()
            switch field {
            case "content-disposition":
                let pieces = MediaType.splitParameters(value)
                guard pieces.first?.trimmingSpaces().lowercased() == "form-data" else {
                    throw Failure(reason: "multipart part \(number) is not 'Content-Disposition: form-data'")
                }
                // Reuse the media-type parameter parser on "x/y; name=...; filename=...".
                let parameters = MediaType("x/y;" + pieces.dropFirst().joined(separator: ";"))?.parameters ?? [:]
                name = parameters["name"]
                filename = parameters["filename"]
            case "content-type":
                contentType = value
            default:
                continue
            }
        }
        guard let name else { throw Failure(reason: "multipart part \(number) has no 'name' in its Content-Disposition") }
        return Part(name: name, filename: filename, contentType: contentType, content: content)
    }

    /// The first index of `needle` in `haystack` at or after `start`.
    static func find(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard let first = needle.first, needle.count <= haystack.count else { return nil }
        var index = max(0, start)
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == first {
                var matched = 1
                while matched < needle.count, haystack[index + matched] == needle[matched] { matched += 1 }
                if matched == needle.count { return index }
            }
            index += 1
        }
        return nil
    }
}
