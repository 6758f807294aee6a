import NIOCore
import NIOHTTP1

/// One complete HTTP request as the ingest path sees it.
struct IngestRequest {
    var method: HTTPMethod
    /// The request target as received: path and query.
    var uri: String
    var headers: HTTPHeaders
    var body: ByteBuffer
    /// The `Content-Type` header's value (the first one).
    var contentType: String?
    /// Bounds on what the message encoder parses out of the request.
    var limits: MessageLimits
    /// Where the request came from and arrived, and its HTTP version (what a workflow's `request` node and
    /// `client.ip` property show).
    var connection = ConnectionFacts()
    /// The request's id (`server.request_id_header`), if kbridge tracks one.
    var requestID: String?
    /// The verified TLS client certificate of the connection (`server.tls.client_certificate`), if any.
    var clientCertificate: ClientCertificateIdentity?
    /// The consumer `client_authentication` authenticated (`client.consumer` in a workflow), if the route has it.
    var consumer: String?

    init(
        method: HTTPMethod, uri: String, headers: HTTPHeaders, body: ByteBuffer, contentType: String?? = nil,
        limits: MessageLimits = MessageLimits()
    ) {
        self.limits = limits
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
        self.contentType = contentType ?? headers.first(name: "content-type")
    }

    /// The path part of ``uri``.
    var path: Substring { Self.path(of: uri) }
    /// The query part of ``uri`` without the `?`, or `nil` when there is none.
    var query: Substring? { Self.queryStart(in: uri).map { uri[uri.index(after: $0)...] } }

    /// The part of `uri` before its `?`.
    static func path(of uri: String) -> Substring {
        queryStart(in: uri).map { uri[..<$0] } ?? Substring(uri)
    }

    /// Where `?` is, found as a byte (`String.firstIndex(of: Character)` segments graphemes: slow on every request).
    private static func queryStart(in uri: String) -> String.Index? {
        uri.utf8.firstIndex(of: UInt8(ascii: "?"))
    }
}

/// The connection a request arrived on.
struct ConnectionFacts: Sendable {
    var clientIP: String?
    var clientPort: Int?
    var localPort: Int?
    var version = HTTPVersion.http1_1
    /// Whether the connection is TLS (the workflow's `request` shows scheme `https`).
    var isTLS = false
}

/// Bounds on the arguments and parts a request's message may have (`server.max_form_fields`, `server.max_multipart_parts`).
struct MessageLimits: Sendable, Hashable {
    /// Arguments of a query string or an `application/x-www-form-urlencoded` body.
    var maximumFormFields = FormArguments.defaultMaximumCount
    /// Parts of a `multipart/form-data` body.
    var maximumMultipartParts = MultipartForm.defaultMaximumParts
}

/// The request headers the ingest path acts on, found in one pass over the headers.
struct RequestHeaderFacts {
    var contentLength: Int?
    var contentType: String?
    var expectsContinue = false
    /// A `Transfer-Encoding` header is present (the body is chunked).
    var hasTransferEncoding = false
    /// The number of bytes of header names and values.
    var byteCount = 0
    /// The first header whose value holds U+FFFD: NIO's decoder put it there for bytes that are not UTF-8.
    var headerWithReplacementCharacter: String?

    /// The request has (or may have) a body.
    var hasBody: Bool { hasTransferEncoding || (contentLength ?? 0) > 0 }

    init(_ headers: HTTPHeaders) {
        for (name, value) in headers {
            byteCount += name.utf8.count + value.utf8.count
            if headerWithReplacementCharacter == nil, value.utf8.containsReplacementCharacter {
                headerWithReplacementCharacter = name
            }
            switch name.utf8.count {
            case 6 where expectsContinue == false && name.equalsIgnoringASCIICase("expect"):
                expectsContinue = value.equalsIgnoringASCIICase("100-continue")
            case 12 where contentType == nil && name.equalsIgnoringASCIICase("content-type"):
                contentType = value
            case 14 where contentLength == nil && name.equalsIgnoringASCIICase("content-length"):
                contentLength = Int(value)
            case 17 where name.equalsIgnoringASCIICase("transfer-encoding"):
                hasTransferEncoding = true
            default:
                continue
            }
        }
    }
}

extension String {
    /// Compares with `lowercase`, which must be lower-case ASCII, ignoring the case of ASCII letters.
    func equalsIgnoringASCIICase(_ lowercase: StaticString) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard utf8.count == count else { return false }
        var index = 0
        for byte in utf8 {
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            guard folded == lowercase.utf8Start[index] else { return false }
            index += 1
        }
        return true
    }
}
