import NIOCore
import NIOPosix
import Synchronization

/// A minimal HTTP CONNECT proxy on 127.0.0.1 (random port) that tunnels every CONNECT, whatever its target, to
/// 127.0.0.1:`backendPort`, and records each CONNECT request line and its `Proxy-Authorization` header.
final class TestConnectProxy: Sendable {
    let port: Int
    private let channel: any Channel
    private let recorded = Mutex<[(target: String, authorization: String?)]>([])

    var connects: [(target: String, authorization: String?)] { recorded.withLock { $0 } }

    static func start(backendPort: Int) async throws -> TestConnectProxy {
        let box = RecorderBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectFrontHandler(backendPort: backendPort, record: { target, authorization in
                            box.proxy?.recorded.withLock { $0.append((target, authorization)) }
                        }))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let proxy = TestConnectProxy(channel: channel, port: channel.localAddress?.port ?? 0)
        box.set(proxy)
        return proxy
    }

    private init(channel: any Channel, port: Int) {
        self.channel = channel
        self.port = port
    }

    func stop() async throws {
        try await channel.close()
    }

    /// Lets the child handlers reach the proxy object created after the bootstrap.
    private final class RecorderBox: Sendable {
        private let stored = Mutex<TestConnectProxy?>(nil)
        var proxy: TestConnectProxy? { stored.withLock { $0 } }
        func set(_ proxy: TestConnectProxy) { stored.withLock { $0 = proxy } }
    }
}

/// Reads the CONNECT head (≤ 16 KiB), answers 200, then relays bytes both ways.
private final class ConnectFrontHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let backendPort: Int
    private let record: @Sendable (String, String?) -> Void
    private var head = ByteBuffer()
    private var pending: [ByteBuffer] = []
    private var backend: (any Channel)?
    private var tunnelRequested = false

    init(backendPort: Int, record: @escaping @Sendable (String, String?) -> Void) {
        self.backendPort = backendPort
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if let backend {
            backend.writeAndFlush(buffer, promise: nil)
            return
        }
        if tunnelRequested {
            pending.append(buffer)
            return
        }
        head.writeBuffer(&buffer)
        let text = String(buffer: head)
        guard let end = text.firstRange(of: "\r\n\r\n") else {
            if head.readableBytes > 16384 { context.close(promise: nil) }
            return
        }
        let lines = text[..<end.lowerBound].split(separator: "\r\n")
        let requestLine = lines.first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[0] == "CONNECT" else {
            context.close(promise: nil)
            return
        }
        let authorization = lines.dropFirst().first { $0.lowercased().hasPrefix("proxy-authorization:") }
            .map { String($0.dropFirst("proxy-authorization:".count).drop(while: { $0 == " " })) }
        record(String(parts[1]), authorization)
        let leftover = String(text[end.upperBound...])
        if !leftover.isEmpty { pending.append(ByteBuffer(string: leftover)) }
        tunnelRequested = true

        let front = context.channel
        ClientBootstrap(group: context.eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RelayHandler(peer: front))
                }
            }
            .connect(host: "127.0.0.1", port: backendPort)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let backend):
                    self.backend = backend
                    context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 200 Connection established\r\n\r\n")), promise: nil)
                    for buffer in self.pending { backend.writeAndFlush(buffer, promise: nil) }
                    self.pending = []
                case .failure:
                    context.close(promise: nil)
                }
            }
    }

    func channelInactive(context: ChannelHandlerContext) {
        backend?.close(promise: nil)
        context.fireChannelInactive()
    }
}

private final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let peer: any Channel

    init(peer: any Channel) {
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        peer.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
        context.fireChannelInactive()
    }
}
