import Foundation
import JSON
import NIOCore
import NIOHTTP1
import Testing

@testable import Bridge

/// Encodes a request and decodes the message with Foundation's independent JSON parser.
func encodeMessage(
    method: HTTPMethod = .POST, uri: String = "/t", headers: [(String, String)] = [], body: [UInt8],
    fields: MessageFields = .all
) throws -> [String: Any] {
    var buffer = ByteBuffer()
    let request = IngestRequest(method: method, uri: uri, headers: HTTPHeaders(headers), body: ByteBuffer(bytes: body))
    try KongMessageEncoder.encode(request, fields: fields, into: &buffer)
    let object = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))
    return try #require(object as? [String: Any])
}

func encodeMessage(
    method: HTTPMethod = .POST, uri: String = "/t", contentType: String?, body: String, fields: MessageFields = .all
) throws -> [String: Any] {
    try encodeMessage(method: method, uri: uri, headers: contentType.map { [("Content-Type", $0)] } ?? [],
                      body: Array(body.utf8), fields: fields)
}

extension MessageFields {
    static var all: MessageFields {
        var fields = MessageFields()
        fields.method = true
        fields.uri = true
        fields.headers = true
        fields.body = true
        return fields
    }
}

func encodingFailure(contentType: String, body: String) -> String? {
    var buffer = ByteBuffer()
    let request = IngestRequest(method: .POST, uri: "/t", headers: ["content-type": contentType], body: ByteBuffer(string: body))
    do {
        try KongMessageEncoder.encode(request, fields: MessageFields(), into: &buffer)
        return nil
    } catch {
        return error.reason
    }
}

@Suite struct KongMessageEncoderTests {
    @Test func jsonBodyIsKeptRawAndEmbeddedAsBodyArgs() throws {
        let message = try encodeMessage(contentType: "application/json", body: #"{"id": 12345678901234567890, "n": [1.50, "x"]}"#)
        #expect(message["body"] as? String == #"{"id": 12345678901234567890, "n": [1.50, "x"]}"#)
        let args = try #require(message["body_args"] as? [String: Any])
        #expect((args["n"] as? [Any])?.count == 2)
        #expect(message["body_base64"] == nil)
    }

    @Test func jsonNumbersPassThroughExactly() throws {
        var buffer = ByteBuffer()
        let body = #"{"big":12345678901234567890,"f":1.50}"#
        let request = IngestRequest(method: .POST, uri: "/", headers: ["content-type": "application/json"], body: ByteBuffer(string: body))
        try KongMessageEncoder.encode(request, fields: MessageFields(), into: &buffer)
        #expect(String(buffer: buffer).hasSuffix(#""body_args":{"big":12345678901234567890,"f":1.50}}"#))
    }

    @Test(arguments: ["application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json", "application/problem+json"])
    func jsonMediaTypesAreParsed(contentType: String) throws {
        let message = try encodeMessage(contentType: contentType, body: #"{"a":1}"#)
        #expect((message["body_args"] as? [String: Any])?["a"] as? Int == 1)
    }

    @Test(arguments: [
        ("{", "expected a string key"), ("[1", "expected ',' or ']'"), ("[", "unexpected end of input"), (#"{"a":}"#, "expected a value"), ("[1,]", "expected a value"),
        (#"{"a":1} x"#, "unexpected data after the JSON value"), ("", "empty input"), ("01", "unexpected data"),
        (#""\x""#, "invalid escape"), ("nul", "invalid literal"), ("1.", "expected a digit after the decimal point"),
    ])
    func badJSONIsRejectedWithTheReason(body: String, reason: String) {
        let failure = encodingFailure(contentType: "application/json", body: body)
        #expect(failure?.contains(reason) == true, "\(body): \(failure ?? "accepted")")
    }

    @Test func deeplyNestedJSONIsRejectedNotCrashing() {
        let body = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(encodingFailure(contentType: "application/json", body: body)?.contains("nesting deeper") == true)
    }

    @Test func jsonThatIsNotUTF8IsRejected() {
        var buffer = ByteBuffer()
        let request = IngestRequest(method: .POST, uri: "/", headers: ["content-type": "application/json"],
                                    body: ByteBuffer(bytes: [0x22, 0xFF, 0x22]))
        #expect(throws: MessageEncodingError.self) { try KongMessageEncoder.encode(request, fields: MessageFields(), into: &buffer) }
    }

    @Test func urlencodedBodyBecomesArgumentsWithArraysAndFlags() throws {
        let message = try encodeMessage(contentType: "application/x-www-form-urlencoded",
                                        body: "name=J%C3%BCrgen+Smith&tag=a&tag=b&flag&empty=")
        let args = try #require(message["body_args"] as? [String: Any])
        #expect(args["name"] as? String == "Jürgen Smith")
        #expect(args["tag"] as? [String] == ["a", "b"])
        #expect(args["flag"] as? Bool == true)
        #expect(args["empty"] as? String == "")
        #expect(message["body"] as? String == "name=J%C3%BCrgen+Smith&tag=a&tag=b&flag&empty=")
    }

    @Test func urlencodedBodyThatDecodesToInvalidUTF8IsRejected() {
        #expect(encodingFailure(contentType: "application/x-www-form-urlencoded", body: "a=%FF")?.contains("not valid UTF-8") == true)
    }

    @Test func multipartFieldsAndFilesAreAllKept() throws {
        let boundary = "XyZ"
        var body: [UInt8] = []
        body += Array("preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello world\r\n".utf8)
        body += Array("--XyZ\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\na\r\n".utf8)
        body += Array("--XyZ\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nb\r\n".utf8)
        body += Array("--XyZ\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n".utf8)
        body += Array("--XyZ\r\nContent-Disposition: form-data; name=\"img\"; filename=\"a;b.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
        body += [0x89, 0x50, 0x4E, 0x47, 0x00, 0xFF]
        body += Array("\r\n--XyZ--\r\nepilogue".utf8)
        let message = try encodeMessage(headers: [("content-type", "multipart/form-data; boundary=\(boundary)")], body: body)
        let args = try #require(message["body_args"] as? [String: Any])
        #expect(args["title"] as? String == "Hello world")
        #expect(args["tag"] as? [String] == ["a", "b"])
        let doc = try #require(args["doc"] as? [String: Any])
        #expect(doc["filename"] as? String == "notes.txt")
        #expect(doc["content_type"] as? String == "text/plain")
        #expect(doc["content"] as? String == "line1\r\nline2")
        let image = try #require(args["img"] as? [String: Any])
        #expect(image["filename"] as? String == "a;b.png")
        #expect(image["content_base64"] as? Bool == true)
        #expect(Data(base64Encoded: try #require(image["content"] as? String)) == Data([0x89, 0x50, 0x4E, 0x47, 0x00, 0xFF]))
        // The raw body holds binary bytes, so it travels base64-encoded, whole.
        #expect(message["body_base64"] as? Bool == true)
        #expect(Data(base64Encoded: try #require(message["body"] as? String)) == Data(body))
    }

    @Test(arguments: [
        ("multipart/form-data", "--b\r\n\r\nx\r\n--b--", "without a boundary"),
        ("multipart/form-data; boundary=b", "no boundary here", "does not contain the boundary"),
        ("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\ntruncated", "ends before the closing boundary"),
        ("multipart/form-data; boundary=b", "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "has no 'name'"),
    ])
    func badMultipartIsRejectedWithTheReason(contentType: String, body: String, reason: String) {
        let failure = encodingFailure(contentType: contentType, body: body)
        #expect(failure?.contains(reason) == true, "\(failure ?? "accepted")")
    }

    @Test(arguments: ["text/plain", "text/html", "application/xml", "text/xml", "application/soap+xml", "text/plain; charset=utf-8"])
    func textBodiesStayText(contentType: String) throws {
        let message = try encodeMessage(contentType: contentType, body: "<a>héllo \"x\"\n</a>")
        #expect(message["body"] as? String == "<a>héllo \"x\"\n</a>")
        #expect(message["body_base64"] == nil)
        #expect((message["body_args"] as? [String: Any])?.isEmpty == true)
    }

    @Test(arguments: [nil, "application/octet-stream", "image/png", "text/csv"] as [String?])
    func otherBodiesAreBase64(contentType: String?) throws {
        let bytes: [UInt8] = [0, 1, 2, 0xFF, 0x41]
        let message = try encodeMessage(headers: contentType.map { [("content-type", $0)] } ?? [], body: bytes)
        #expect(message["body_base64"] as? Bool == true)
        #expect(Data(base64Encoded: try #require(message["body"] as? String)) == Data(bytes))
        #expect((message["body_args"] as? [String: Any])?.isEmpty == true)
    }

    @Test func textTypeWithInvalidUTF8FallsBackToBase64() throws {
        let message = try encodeMessage(headers: [("content-type", "text/plain")], body: [0x61, 0xC3])
        #expect(message["body_base64"] as? Bool == true)
        #expect(Data(base64Encoded: try #require(message["body"] as? String)) == Data([0x61, 0xC3]))
    }

    @Test func headersAreLowerCasedAndRepeatedOnesBecomeArrays() throws {
        let message = try encodeMessage(headers: [("X-Multi", "a"), ("Accept", "*/*"), ("x-multi", "b"), ("X-MULTI", "c")], body: [])
        let headers = try #require(message["headers"] as? [String: Any])
        #expect(headers["x-multi"] as? [String] == ["a", "b", "c"])
        #expect(headers["accept"] as? String == "*/*")
    }

    @Test func uriAndQueryArguments() throws {
        let message = try encodeMessage(method: .PUT, uri: "/orders/7?a=1&a=2&flag&e=&sp=x+y&enc=%2Fp", contentType: "text/plain", body: "")
        #expect(message["method"] as? String == "PUT")
        #expect(message["uri"] as? String == "/orders/7?a=1&a=2&flag&e=&sp=x+y&enc=%2Fp")
        let args = try #require(message["uri_args"] as? [String: Any])
        #expect(args["a"] as? [String] == ["1", "2"])
        #expect(args["flag"] as? Bool == true)
        #expect(args["e"] as? String == "")
        #expect(args["sp"] as? String == "x y")
        #expect(args["enc"] as? String == "/p")
    }

    @Test func onlyForwardedPartsArePresent() throws {
        let bodyOnly = try encodeMessage(contentType: "text/plain", body: "x", fields: MessageFields())
        #expect(Set(bodyOnly.keys) == ["body", "body_args"])
        var fields = MessageFields()
        fields.body = false
        fields.method = true
        let methodOnly = try encodeMessage(contentType: "text/plain", body: "x", fields: fields)
        #expect(Set(methodOnly.keys) == ["method"])
    }

    @Test func controlCharactersAreEscaped() throws {
        var buffer = ByteBuffer()
        buffer.writeJSONString("a\u{0}b\u{1F}\"\\\t")
        #expect(String(buffer: buffer) == #""a\u0000b\u001f\"\\\t""#)
    }
}

/// The Kong envelope checks JSON bodies with the same scanner as the schema routes (a lone surrogate used to pass here
/// and fail there).
@Suite struct KongEnvelopeJSONScannerTests {
    @Test(arguments: [#"{"a":"\ud800"}"#, #"["\udc00"]"#, #"{"n":1}x"#, String(repeating: "1", count: 1001)])
    func bodiesTheSchemaRoutesRefuseAreRefusedHereToo(body: String) {
        let request = IngestRequest(method: .POST, uri: "/", headers: ["content-type": "application/json"], body: ByteBuffer(string: body))
        var buffer = ByteBuffer()
        #expect(throws: MessageEncodingError.self) { try KongMessageEncoder.encode(request, fields: MessageFields(), into: &buffer) }
    }
}

/// The hot-path shortcuts (eight bytes at a time in JSON strings, request ids written as bytes, the plain media type
/// and path checks) agree with the plain code they skip.
@Suite struct HotPathShortcutTests {
    /// Every escape position and run length around the eight-byte words, decoded by Foundation's parser.
    @Test func jsonStringsRoundTripWhateverTheEscapesPositions() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = Array("abc\"\\\n\t\u{1}\u{1F} ~".utf8) + [0xC3, 0xA9]  // é as UTF-8 (kept whole below)
        for length in Array(0..<40) + [4088, 4095, 4096, 4097, 4103, 9000] {
            for _ in 0..<(length < 40 ? 50 : 5) {
                var bytes: [UInt8] = []
                while bytes.count < length {
                    let byte = alphabet[Int.random(in: 0..<(alphabet.count - 1), using: &generator)]
                    if byte == 0xC3 { bytes += [0xC3, 0xA9] } else { bytes.append(byte) }
                }
                var buffer = ByteBuffer()
                buffer.writeJSONString(bytes)
                let decoded = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView), options: .fragmentsAllowed)
                #expect(decoded as? String == String(decoding: bytes, as: UTF8.self))
            }
        }
    }

    @Test func everyByteBelowSpaceQuoteAndBackslashIsFoundInAWord() {
        for special in Array(0..<0x20) + [0x22, 0x5C] as [UInt8] {
            for position in 0..<8 {
                var word = [UInt8](repeating: UInt8(ascii: "a"), count: 8)
                word[position] = special
                let value = word.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                #expect(JSONStringBytes.containQuoteBackslashOrControl(value), "byte \(special) at \(position)")
            }
        }
        for byte in Array(0x20...0xFF) as [UInt8] where byte != 0x22 && byte != 0x5C {
            let value = [UInt8](repeating: byte, count: 8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            #expect(!JSONStringBytes.containQuoteBackslashOrControl(value), "byte \(byte)")
        }
    }

    @Test func requestIDsAre32HexDigitsAndDistinct() {
        var sequence = RequestID.Sequence()
        let ids = (0..<1000).map { _ in sequence.next() }
        #expect(Set(ids).count == 1000)
        for id in ids {
            #expect(id.utf8.count == 32 && id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }, "\(id)")
            #expect(id.prefix(16) == ids[0].prefix(16))
        }
        #expect(ids[0].hasSuffix("0000000000000001") && ids[999].hasSuffix("00000000000003e8"))
    }

    @Test(arguments: ["application/json", "Application/JSON", " application/json ", "application/json; charset=utf-8",
                      "text/plain", "application/vnd.api+json", "a/b", "/json", "json/", "json", "a/b/c", "", "text/plain;",
                      "multipart/form-data; boundary=\"x;y\""])
    func mediaTypesParseAsBefore(header: String) {
        let parsed = MediaType(header)
        let lowered = header.trimmingSpaces().lowercased()
        if header.contains(";") || header != lowered {
            return  // the general path, unchanged
        }
        let slash = lowered.firstIndex(of: "/")
        let valid = slash != nil && slash != lowered.startIndex && slash != lowered.index(before: lowered.endIndex)
        #expect((parsed != nil) == valid, "\(header)")
        if valid { #expect(parsed?.essence == lowered && parsed?.parameters.isEmpty == true) }
    }
}
