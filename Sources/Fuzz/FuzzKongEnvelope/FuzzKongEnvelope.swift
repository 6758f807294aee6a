import FuzzSupport
import NIOCore
import NIOHTTP1

@testable import Bridge

/// Fuzzes the Kong envelope encoder (`KongMessageEncoder`: JSON, urlencoded and multipart bodies, query strings,
/// headers). Input layout:
///
///     <selector byte><content type>\n<uri>\n<header name>: <value>\n...\n\n<body>
///
/// The selector's low four bits switch `forward_method`, `forward_uri`, `forward_headers` and `forward_body`;
/// its high bits pick the method. An empty content-type line means the request has none.
///
/// Invariant: whenever encoding succeeds, the message is one valid JSON object (checked with Foundation).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKongEnvelope(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard var input = FuzzInput(data, size) else { return 0 }
    let whole = input.remaining
    let selector = input.byte()
    var fields = MessageFields()
    fields.method = selector & 1 != 0
    fields.uri = selector & 2 != 0
    fields.headers = selector & 4 != 0
    fields.body = selector & 8 != 0
    let methods: [HTTPMethod] = [.POST, .PUT, .PATCH, .GET, .DELETE, .OPTIONS, .RAW(value: "PURGE\"\\\u{1}"), .POST]
    let method = methods[Int(selector >> 5)]
    let contentType = input.line()
    let uri = input.line()
    var headers = HTTPHeaders()
    while !input.isEmpty {
        let line = input.line()
        if line.isEmpty { break }
        let colon = line.firstIndex(of: ":") ?? line.endIndex
        let name = line[..<colon]
        let value = colon < line.endIndex ? line[line.index(after: colon)...].drop(while: { $0 == " " }) : ""
        // Only headers NIO's HTTP parser can deliver (HTTPHeaders traps on a name that is not ASCII).
        guard !name.isEmpty, name.utf8.allSatisfy(isTokenCharacter),
              value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F || $0 == "\t" }) else { continue }
        headers.add(name: String(name), value: String(value))
    }
    let body = ByteBuffer(bytes: input.remaining)
    let request = IngestRequest(method: method, uri: uri, headers: headers, body: body,
                                contentType: .some(contentType.isEmpty ? nil : contentType))
    var message = ByteBuffer()
    do {
        try KongMessageEncoder.encode(request, fields: fields, into: &message)
    } catch {
        return 0
    }
    // A JSON body is embedded verbatim: unpaired surrogate escapes (valid for kbridge's validator, RFC 8259 leaves
    // them open) and nesting at the depth limit are not Foundation's to judge.
    let embedsUncheckable = containsSurrogateEscape(input.remaining) || bracketCount(input.remaining) > 500
        || mayHoldHugeNumber(input.remaining)
    let encoded = message.readableBytesView
    if embedsUncheckable { return 0 }
    guard encoded.first == UInt8(ascii: "{"), foundationAcceptsJSON(encoded) else {
        fuzzFailure("the envelope is not valid JSON: \(String(decoding: encoded.prefix(2000), as: UTF8.self).debugDescription)", input: whole)
    }
    return 0
}

/// RFC 9110 `tchar`: what a header name is made of.
private func isTokenCharacter(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
    default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}

@main enum FuzzKongEnvelopeMain {
    static func main() { FuzzDriver.run(fuzzKongEnvelope) }
}
