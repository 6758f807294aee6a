import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix

/// The listening socket and its connections. Each connection's pipeline: ``ConnectionGuard`` (connection cap,
/// idle and request timeouts, on raw bytes), NIO's HTTP/1.1 codec (with the header limits of `server:`) and
/// pipelining handler, then ``HTTPIngestHandler`` (which also answers protocol errors, as JSON).
/// The listening socket backs off from `accept` when it fails (at the file-descriptor limit, say) instead of
/// retrying at once in a loop. Shuts down by quiescing: stop accepting, let every connection finish the request
/// it is serving, then close.
final class HTTPIngestServer: Sendable {
    private let channel: any Channel
    private let quiescing: ServerQuiescingHelper

    var localAddress: SocketAddress? { channel.localAddress }

    private init(channel: any Channel, quiescing: ServerQuiescingHelper) {
        self.channel = channel
        self.quiescing = quiescing
    }

    /// How long the listening socket pauses `accept` after it failed (EMFILE, ENFILE, ENOBUFS, ENOMEM).
    static let acceptBackoff = TimeAmount.milliseconds(200)

    static func bind(
        configuration: ServerConfiguration, group: any EventLoopGroup, routes: RouteTable, observability: Observability,
        logger: Logger
    ) async throws -> HTTPIngestServer {
        let quiescing = ServerQuiescingHelper(group: group)
        let endpoints = HTTPIngestHandler.BuiltInEndpoints(health: configuration.healthPath, metrics: configuration.metricsPath)
        let limits = HTTPIngestHandler.RequestLimits(
            maxHeaderSize: configuration.maxHeaderSize, maxHeaders: configuration.maxHeaders, maxURILength: configuration.maxURILength,
            message: MessageLimits(maximumFormFields: configuration.maxFormFields, maximumMultipartParts: configuration.maxMultipartParts))
        let guardSettings = ConnectionGuard.Settings(
            requestReadTimeout: TimeAmount(configuration.requestReadTimeout), idleTimeout: TimeAmount(configuration.idleTimeout),
            maxConnections: configuration.maxConnections)
        // The decoder's own limits are a backstop above the precise checks of HTTPIngestHandler (which answer
        // 414 and 431 with the limit that was exceeded): NIO counts the request target in its header bytes.
        let decoderLimits = {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldCount = configuration.maxHeaders
            limits.maxHeaderListSize = configuration.maxHeaderSize + configuration.maxURILength
            limits.maxHeaderFieldSize = configuration.maxHeaderSize + configuration.maxURILength
            return limits
        }()
        let connections = observability.connections
        let backoff = acceptBackoff
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler(shouldForwardIOErrorCaught: false) { error in
                        if let suppressed = connections.shouldLogAcceptFailure() {
                            logger.warning("accept failed; pausing accept", metadata: [
                                "error": "\(error)", "pause_ms": "\(backoff.nanoseconds / 1_000_000)",
                                "not_logged_since_last": "\(suppressed)",
                            ])
                        }
                        return backoff
                    })
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let connectionGuard = ConnectionGuard(settings: guardSettings, metrics: connections, logger: logger)
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(connectionGuard)
                    try pipeline.configureHTTPServerPipeline(
                        withErrorHandling: false, withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
                    try pipeline.addHandler(HTTPIngestHandler(
                        routes: routes, observability: observability, endpoints: endpoints, limits: limits,
                        connectionGuard: connectionGuard, logger: logger))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .bind(host: configuration.host, port: configuration.port)
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
