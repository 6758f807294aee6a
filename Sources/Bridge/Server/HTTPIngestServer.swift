import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix

/// The listening socket and its connections: NIO's HTTP/1.1 codec with pipelining and protocol-error
/// handling, then ``HTTPIngestHandler``. Shuts down by quiescing: stop accepting, let every connection finish
/// the request it is serving, then close.
final class HTTPIngestServer: Sendable {
    private let channel: any Channel
    private let quiescing: ServerQuiescingHelper

    var localAddress: SocketAddress? { channel.localAddress }

    private init(channel: any Channel, quiescing: ServerQuiescingHelper) {
        self.channel = channel
        self.quiescing = quiescing
    }

    static func bind(
        host: String, port: Int, group: any EventLoopGroup, routes: RouteTable, observability: Observability,
        endpoints: HTTPIngestHandler.BuiltInEndpoints, logger: Logger
    ) async throws -> HTTPIngestServer {
        let quiescing = ServerQuiescingHelper(group: group)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        HTTPIngestHandler(routes: routes, observability: observability, endpoints: endpoints, logger: logger))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .bind(host: host, port: port)
            .get()
        return HTTPIngestServer(channel: channel, quiescing: quiescing)
    }

    /// Stops accepting and waits (up to `timeout`) for open connections to finish their current request.
    /// - Returns: `true` if every connection closed in time.
    func quiesce(timeout: Duration) async -> Bool {
        let closed = channel.eventLoop.makePromise(of: Void.self)
        quiescing.initiateShutdown(promise: closed)
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
            + Int64(timeout.components.attoseconds / 1_000_000_000))) {
            closed.fail(ChannelError.ioOnClosedChannel)
        }
        do {
            try await closed.futureResult.get()
            timer.cancel()
            return true
        } catch {
            return false
        }
    }
}
