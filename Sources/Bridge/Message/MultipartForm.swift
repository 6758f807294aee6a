import JSON
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

    /// How many parts a body may have when the caller sets no limit (`server.max_multipart_parts`'s default).
    static let defaultMaximumParts = 1000
    /// RFC 2046 §5.1.1: a boundary is 1 to 70 characters. Longer ones are refused (they would make every search longer).
    static let maximumBoundaryLength = 70

    /// Splits `body` at `boundary`. Throws when the body does not start with the boundary, a part has no
    /// `Content-Disposition: form-data` with a name, the closing boundary is missing, or there are more than
    /// `maximumParts` parts. Linear in the body's size: each search starts where the previous one ended.
    static func parse(
        _ body: UnsafeRawBufferPointer, boundary: String, maximumParts: Int = defaultMaximumParts
    ) throws(Failure) -> MultipartForm {
        guard boundary.utf8.count <= maximumBoundaryLength else {
            throw Failure(reason: "the boundary is longer than \(maximumBoundaryLength) characters (RFC 2046)")
        }
        let delimiter = Array("--\(boundary)".utf8)
        let separator = ByteSearch(Array("\r\n--\(boundary)".utf8))
        let headersEnd = ByteSearch([0x0D, 0x0A, 0x0D, 0x0A])
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
            guard parts.count < maximumParts else {
                throw Failure(reason: "more than \(maximumParts) parts (server.max_multipart_parts)")
            }
            guard let headerEnd = headersEnd.firstIndex(in: body, from: position - 2) else {
                throw Failure(reason: "multipart part \(parts.count + 1) has no end of headers")
            }
            let headerBytes = UnsafeRawBufferPointer(rebasing: body[position..<max(position, headerEnd)])
            guard UTF8Validation.isValid(headerBytes) else {
                throw Failure(reason: "multipart part \(parts.count + 1) has headers that are not valid UTF-8")
            }
            let headers = String(decoding: headerBytes, as: UTF8.self)
            let contentStart = headerEnd + 4
            guard let contentEnd = separator.firstIndex(in: body, from: contentStart) else {
                throw Failure(reason: "multipart body ends before the closing boundary '--\(boundary)--'")
            }
            parts.append(try part(headers: headers, content: contentStart..<max(contentStart, contentEnd), number: parts.count + 1))
            position = contentEnd + separator.needle.count
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
        ByteSearch(needle).firstIndex(in: haystack, from: start)
    }
}

/// Knuth-Morris-Pratt search for a short byte string: linear in the haystack whatever the needle, so a body of
/// near-matches of the boundary costs no more than any other body (a naive search compares the whole needle
/// at each offset).
struct ByteSearch {
    let needle: [UInt8]
    /// For each prefix length `n`, the length of the longest proper prefix of `needle[..<n]` that is also its suffix.
    private let fallback: [Int]

    init(_ needle: [UInt8]) {
        self.needle = needle
        var fallback = Array(repeating: 0, count: needle.count)
        var length = 0
        var index = 1
        while index < needle.count {
            if needle[index] == needle[length] {
                length += 1
                fallback[index] = length
                index += 1
            } else if length > 0 {
                length = fallback[length - 1]
            } else {
                fallback[index] = 0
                index += 1
            }
        }
        self.fallback = fallback
    }

    func firstIndex(in haystack: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard let first = needle.first else { return nil }
        var matched = 0
        var index = max(0, start)
        let count = haystack.count
        while index < count {
            let byte = haystack[index]
            if matched == 0 {
                if byte != first { index += 1; continue }
            } else {
                while matched > 0, needle[matched] != byte { matched = fallback[matched - 1] }
            }
            if needle[matched] == byte { matched += 1 }
            if matched == needle.count { return index + 1 - matched }
            index += 1
        }
        return nil
    }
}
