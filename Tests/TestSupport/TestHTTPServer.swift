import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A real HTTP/1.1 server on 127.0.0.1 for the tests, standing in for the APIs a workflow calls: each request goes
/// to `respond`, which may take its time (`delay`), and is recorded for the test to read.
///
/// With `selfSignedTLS` it speaks HTTPS, with a certificate made for it (by `openssl`: self-signed, `CN=localhost`,
/// `subjectAltName=IP:127.0.0.1`, valid one day) that no system CA knows: a verifying client refuses it unless it
/// trusts ``certificateFile``. A response with `Connection: close` closes its connection.
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
    /// The PEM file of the server's certificate, for a client to trust as its CA; nil for plain HTTP. It is removed
    /// by ``shutdown()``.
    public let certificateFile: String?
    public var url: String { "\(certificateFile == nil ? "http" : "https")://127.0.0.1:\(port)" }

    /// The requests received so far, in order.
    public var requests: [Request] { received.requests.withLock { $0 } }

    /// - Parameter port: `0` picks a free one; another brings a server back on the port of one shut down.
    public init(selfSignedTLS: Bool = false, port: Int = 0, respond: @escaping @Sendable (Request) -> Response) async throws {
        let tls = selfSignedTLS ? try await Self.makeSelfSignedCertificate() : nil
        certificateFile = tls?.certificateFile
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let log = received
        let record: @Sendable (Request) -> Void = { request in log.requests.withLock { $0.append(request) } }
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context = tls?.context { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(respond: respond, record: record))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        self.port = channel.localAddress!.port!
    }

    public func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
        if let certificateFile { try? FileManager.default.removeItem(atPath: (certificateFile as NSString).deletingLastPathComponent) }
    }

    /// A new key and self-signed certificate for 127.0.0.1, in a directory of their own, and the server context
    /// that presents them.
    private static func makeSelfSignedCertificate() async throws -> (context: NIOSSLContext, certificateFile: String) {
        let directory = NSTemporaryDirectory() + "kbridge-test-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        do {
            let made = try await runProcess("openssl", [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem",
                "-out", "cert.pem", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            ], directory: directory)
            guard made.status == 0 else { throw CertificateNotMade(status: made.status, stderr: made.stderrText) }
            let context = try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(directory + "/cert.pem").map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: directory + "/key.pem", format: .pem))))
            return (context, directory + "/cert.pem")
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// `openssl req -x509` failed.
    public struct CertificateNotMade: Error, CustomStringConvertible {
        public var status: Int32
        public var stderr: String
        public var description: String { "openssl could not make the test server's certificate (exit status \(status)): \(stderr)" }
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
                let keepAlive = head.isKeepAlive && !response.headers.contains { $0.0.lowercased() == "connection" && $0.1.lowercased() == "close" }
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
