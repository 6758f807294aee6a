import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A real HTTP/1.1 server on 127.0.0.1 for the tests, standing in for the APIs a workflow calls: each request goes
/// to `respond`, which may take its time (`delay`), and is recorded for the test to read.
public final class TestHTTPServer: Sendable {
    public struct Request: Sendable {
        public var method: String
        /// Path and query as received.
        public var uri: String
        public var headers: [(String, String)]
        public var body: [UInt8]
        public var bodyText: String { String(decoding: body, as: UTF8.self) }
        public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: String
        public var delay: Duration

        public init(status: Int = 200, headers: [(String, String)] = [], body: String = "", delay: Duration = .zero) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delay = delay
        }

        /// A JSON answer.
        public static func json(_ body: String, status: Int = 200, delay: Duration = .zero) -> Response {
            Response(status: status, headers: [("Content-Type", "application/json")], body: body, delay: delay)
        }
    }

    private let channel: any Channel
    private let group: MultiThreadedEventLoopGroup
    private final class RequestLog: Sendable {
        let requests = Mutex<[Request]>([])
    }

    private let received = RequestLog()
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }

    /// The requests received so far, in order.
    public var requests: [Request] { received.requests.withLock { $0 } }

    public init(respond: @escaping @Sendable (Request) -> Response) async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let log = received
        let record: @Sendable (Request) -> Void = { request in log.requests.withLock { $0.append(request) } }
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(respond: respond, record: record))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
    }

    public func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        // @unchecked: used only on its channel's event loop.
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let respond: @Sendable (Request) -> Response
        let record: @Sendable (Request) -> Void
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        init(respond: @escaping @Sendable (Request) -> Response, record: @escaping @Sendable (Request) -> Void) {
            self.respond = respond
            self.record = record
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body = []
            case .body(let chunk):
                body += Array(buffer: chunk)
            case .end:
                guard let head else { return }
                let request = Request(method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) }, body: body)
                record(request)
                let response = respond(request)
                let keepAlive = head.isKeepAlive
                let write = { [self] in
                    var headers = HTTPHeaders(response.headers)
                    headers.replaceOrAdd(name: "content-length", value: String(response.body.utf8.count))
                    if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
                    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: response.status),
                                                                         headers: headers))), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                        if !keepAlive { context.close(promise: nil) }
                    }
                }
                if response.delay > .zero {
                    let nanoseconds = response.delay.components.seconds * 1_000_000_000 + response.delay.components.attoseconds / 1_000_000_000
                    context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) { write() }
                } else {
                    write()
                }
            }
        }
    }
}
