import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TestSupport
import Synchronization

/// A real HTTP/1.1 server on 127.0.0.1 (random port), optionally TLS, for the callout tests. Routes:
/// - `/echo…`: 200, body = request body; `x-method` = method, `x-echo-<name>` = each request header in order;
///   `x-target` = the request target.
/// - `/status/<code>`: that status, body `status <code>`.
/// - `/delay/<ms>`: 200 `done` after that many milliseconds (nothing if the connection closed meanwhile).
/// - `/bytes/<n>`: n bytes, chunked (no Content-Length); `/bytes-cl/<n>`: n bytes with Content-Length.
/// - `/redirect`: 302 to `/echo`.
/// - `/endless`: 64 KiB chunks every millisecond until the client goes away (at most 1 GiB).
final class TestHTTPServer: Sendable {
    let port: Int
    private let channel: any Channel
    let events: ServerEvents

    final class ServerEvents: Sendable {
        private let state = Mutex<(requests: Int, closedConnections: Int)>((0, 0))
        func requestStarted() { state.withLock { $0.requests += 1 } }
        func connectionClosed() { state.withLock { $0.closedConnections += 1 } }
        var requests: Int { state.withLock { $0.requests } }
        var closedConnections: Int { state.withLock { $0.closedConnections } }
    }

    static func start(tls: TLSConfiguration? = nil) async throws -> TestHTTPServer {
        let events = ServerEvents()
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(TestHTTPHandler(events: events))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return TestHTTPServer(channel: channel, port: channel.localAddress?.port ?? 0, events: events)
    }

    private init(channel: any Channel, port: Int, events: ServerEvents) {
        self.channel = channel
        self.port = port
        self.events = events
    }

    func stop() async throws {
        try await channel.close()
    }
}

private final class TestHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let events: TestHTTPServer.ServerEvents
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var isActive = true

    init(events: TestHTTPServer.ServerEvents) {
        self.events = events
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        events.connectionClosed()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            events.requestStarted()
        case .body(let buffer):
            body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else { return }
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        // Absolute-form targets (a proxied request) are served by their path.
        var path = head.uri
        if path.hasPrefix("http://"), let slash = path.dropFirst(7).firstIndex(of: "/") { path = String(path[slash...]) }
        func number(after prefix: String) -> Int { Int(path.dropFirst(prefix.count)) ?? 0 }
        if path.hasPrefix("/echo") {
            var headers = HTTPHeaders()
            headers.add(name: "x-method", value: head.method.rawValue)
            headers.add(name: "x-target", value: head.uri)
            for (name, value) in head.headers { headers.add(name: "x-echo-\(name.lowercased())", value: value) }
            send(context: context, status: .ok, headers: headers, body: body)
        } else if path == "/redirect" {
            send(context: context, status: .found, headers: ["location": "/echo"], body: [])
        } else if path.hasPrefix("/status/") {
            let code = number(after: "/status/")
            send(context: context, status: HTTPResponseStatus(statusCode: code), headers: [:], body: Array("status \(code)".utf8))
        } else if path.hasPrefix("/delay/") {
            let milliseconds = Int64(number(after: "/delay/"))
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(milliseconds)) {
                guard self.isActive else { return }
                self.send(context: context, status: .ok, headers: [:], body: Array("done".utf8))
            }
        } else if path.hasPrefix("/bytes-cl/") {
            let count = number(after: "/bytes-cl/")
            send(context: context, status: .ok, headers: [:], body: Array(repeating: 0x61, count: count))
        } else if path.hasPrefix("/bytes/") {
            let count = number(after: "/bytes/")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["transfer-encoding": "chunked"]))), promise: nil)
            var remaining = count
            while remaining > 0 {
                let size = min(remaining, 1000)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(repeating: 0x62, count: size)))), promise: nil)
                remaining -= size
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else if path == "/endless" {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["transfer-encoding": "chunked"]))), promise: nil)
            writeEndless(context: context, remaining: 16384)
        } else {
            send(context: context, status: .notFound, headers: [:], body: [])
        }
    }

    private func writeEndless(context: ChannelHandlerContext, remaining: Int) {
        guard isActive, remaining > 0 else { return }
        // Paced at one 64 KiB chunk per millisecond so that it does not starve the timing tests running beside it.
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(repeating: 0x63, count: 65536)))))
            .assumeIsolated()
            .whenSuccess {
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(1)) {
                    self.writeEndless(context: context, remaining: remaining - 1)
                }
            }
    }

    private func send(context: ChannelHandlerContext, status: HTTPResponseStatus, headers: HTTPHeaders, body: [UInt8]) {
        var headers = headers
        headers.replaceOrAdd(name: "content-length", value: String(body.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if !body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// A throw-away CA and server certificate made with `openssl` in a temporary directory. The server certificate names
/// `localhost` and `callout.test` (no IP address).
struct TestCertificates: Sendable {
    let directory: String
    var caFile: String { directory + "/ca.pem" }
    var serverCertificateFile: String { directory + "/server.pem" }
    var serverKeyFile: String { directory + "/server.key" }

    static func generate() async throws -> TestCertificates {
        let directory = NSTemporaryDirectory() + "callout-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try await openssl(["req", "-x509"] + ec + [
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Callout Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ], in: directory)
        try await openssl(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], in: directory)
        try "subjectAltName=DNS:localhost,DNS:callout.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: directory + "/ext.cnf", atomically: true, encoding: .utf8)
        try await openssl([
            "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
        ], in: directory)
        return TestCertificates(directory: directory)
    }

    func serverTLSConfiguration() throws -> TLSConfiguration {
        TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(serverCertificateFile).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: serverKeyFile, format: .pem)))
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct OpenSSLFailed: Error {
        let command: String
        let status: Int32
    }

    private static func openssl(_ arguments: [String], in directory: String) async throws {
        let result = try await runProcess("openssl", arguments, directory: directory)
        guard result.status == 0 else {
            throw OpenSSLFailed(command: arguments.prefix(2).joined(separator: " "), status: result.status)
        }
    }
}
