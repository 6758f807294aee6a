import NIOCore
import NIOHTTP1

/// One complete HTTP request as the ingest path sees it.
struct IngestRequest {
    var method: HTTPMethod
    /// The request target as received: path and query.
    var uri: String
    var headers: HTTPHeaders
    var body: ByteBuffer

    /// The path part of ``uri``.
    var path: Substring { uri.firstIndex(of: "?").map { uri[..<$0] } ?? Substring(uri) }
    /// The query part of ``uri`` without the `?`, or `nil` when there is none.
    var query: Substring? { uri.firstIndex(of: "?").map { uri[uri.index(after: $0)...] } }
}
