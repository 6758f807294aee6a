import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOTLS
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The listening socket and its connections. Each connection's pipeline: with `server.tls`, NIO's TLS handler and
/// ``TLSConnectionHandler`` (handshake timeout, client certificate); then ``ConnectionGuard`` (connection cap,
/// idle and request timeouts, on raw bytes), NIO's HTTP/1.1 codec (with the header limits of `server:`) and
/// pipelining handler, then ``HTTPIngestHandler`` (which also answers protocol errors, as JSON).
/// The listening socket pauses `accept` when it fails (at the file-descriptor limit, say) instead of retrying at
/// once in a loop (``AcceptPause``). Shuts down by quiescing: stop accepting, let every connection finish the request
/// it is serving, then close.
final class HTTPIngestServer: Sendable {
    private let channel: any Channel
    private let quiescing: ServerQuiescingHelper
    /// The accepted connections still open, closed by force when a drain runs out of time.
    private let openChannels: OpenChannels

    var localAddress: SocketAddress? { channel.localAddress }

    private init(channel: any Channel, quiescing: ServerQuiescingHelper, openChannels: OpenChannels) {
        self.channel = channel
        self.quiescing = quiescing
        self.openChannels = openChannels
    }

    /// How long the listening socket pauses `accept` after it failed (EMFILE, ENFILE, ENOBUFS, ENOMEM).
    static let acceptBackoff = TimeAmount.milliseconds(200)

    static func bind(
        configuration: ServerConfiguration, group: any EventLoopGroup, live: LiveRoutes, endpoints: HTTPIngestHandler.BuiltInEndpoints? = nil,
        reloader: ConfigurationReloadEndpoint? = nil, tls: IngressTLS? = nil, logger: Logger
    ) async throws -> HTTPIngestServer {
        let quiescing = ServerQuiescingHelper(group: group)
        let connectionPipeline = ConnectionPipeline(
            configuration: configuration, live: live, endpoints: endpoints, reloader: reloader, tls: tls, logger: logger)
        let connections = connectionPipeline.connections
        let openChannels = OpenChannels()
        let backoff = acceptBackoff
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPause(pause: backoff) { error in
                        if let suppressed = connections.shouldLogAcceptFailure() {
                            logger.warning("accept failed; pausing accept", metadata: [
                                "error": "\(error)", "pause_ms": "\(backoff.nanoseconds / 1_000_000)",
                                "not_logged_since_last": "\(suppressed)",
                            ])
                        }
                    })
                    try channel.pipeline.syncOperations.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    openChannels.add(channel)
                    try connectionPipeline.install(on: channel)
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .bind(host: configuration.host, port: configuration.port)
            .get()
        return HTTPIngestServer(channel: channel, quiescing: quiescing, openChannels: openChannels)
    }

    /// Stops accepting and waits (up to `timeout`) for open connections to finish their current request; the
    /// connections still open then are closed (their requests get no answer), so that none outlives the event loops.
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
            await openChannels.closeAll()
            return false
        }
    }
}

/// The accepted connections of a listener that are still open.
final class OpenChannels: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// Tracks `channel` until it closes.
    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in _ = channels.withLock { $0.removeValue(forKey: id) } }
    }

    var count: Int { channels.withLock { $0.count } }

    /// Closes every connection still open and waits until they are closed.
    func closeAll() async {
        let open = channels.withLock { Array($0.values) }
        for channel in open {
            try? await channel.close()
        }
    }
}

/// Pauses a listening socket's reads (its `accept` calls) for a while after `accept` failed for lack of resources
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM), then resumes.
///
/// NIO's `AcceptBackoffHandler` is not enough on Linux: it delays the next `read()` request, but the read that
/// failed stays pending, so the socket stays registered for readability; the connection waiting in the backlog
/// keeps it readable (epoll is level-triggered) and `accept` fails again at once, in a loop at 100% CPU.
/// Turning `autoRead` off unregisters the socket from epoll until the pause ends.
final class AcceptPause: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let pause: TimeAmount
    private let onPause: (IOError) -> Void
    private var resume: Scheduled<Void>?

    init(pause: TimeAmount, onPause: @escaping (IOError) -> Void) {
        self.pause = pause
        self.onPause = onPause
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let ioError = error as? IOError, Self.isResourceShortage(ioError) else {
            context.fireErrorCaught(error)
            return
        }
        onPause(ioError)
        guard resume == nil, let options = context.channel.syncOptions else { return }
        try? options.setOption(.autoRead, value: false)
        resume = context.eventLoop.assumeIsolated().scheduleTask(in: pause) { [self] in
            self.resume = nil
            guard context.channel.isActive else { return }
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
    }

    private static func isResourceShortage(_ error: IOError) -> Bool {
        [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode)
    }
}

/// The handlers of one accepted connection, in order: ``ConnectionGuard`` (connection cap and timeouts, on raw bytes),
/// NIO's HTTP/1.1 codec with pipelining and the decoder's limits, then ``HTTPIngestHandler``. Built once from the
/// configuration; the server installs it on every connection, and the HTTP fuzz target on an `EmbeddedChannel`.
struct ConnectionPipeline: Sendable {
    let live: LiveRoutes
    let endpoints: HTTPIngestHandler.BuiltInEndpoints
    let reloader: ConfigurationReloadEndpoint?
    let limits: HTTPIngestHandler.RequestLimits
    let tracking: HTTPIngestHandler.RequestTracking
    let guardSettings: ConnectionGuard.Settings
    let decoderLimits: NIOHTTPDecoderLimitConfiguration
    let logger: Logger
    /// `server.tls`: the TLS handlers go first (the guard's timeouts and answers then work on plaintext).
    let tls: IngressTLS?

    /// - Parameter endpoints: the built-in paths; by default those of `configuration`, on a listener that serves the routes.
    init(
        configuration: ServerConfiguration, live: LiveRoutes, endpoints: HTTPIngestHandler.BuiltInEndpoints? = nil,
        reloader: ConfigurationReloadEndpoint? = nil, tls: IngressTLS? = nil, logger: Logger
    ) {
        self.tls = tls
        self.live = live
        self.reloader = reloader
        self.logger = logger
        tracking = HTTPIngestHandler.RequestTracking(requestIDHeader: configuration.requestIDHeader, accessLog: configuration.accessLog)
        self.endpoints = endpoints ?? HTTPIngestHandler.BuiltInEndpoints(
            health: configuration.healthPath, metrics: configuration.metricsPath, ready: configuration.readyPath)
        limits = HTTPIngestHandler.RequestLimits(
            maxHeaderSize: configuration.maxHeaderSize, maxHeaders: configuration.maxHeaders, maxURILength: configuration.maxURILength,
            message: MessageLimits(maximumFormFields: configuration.maxFormFields, maximumMultipartParts: configuration.maxMultipartParts))
        guardSettings = ConnectionGuard.Settings(
            requestReadTimeout: TimeAmount(configuration.requestReadTimeout), idleTimeout: TimeAmount(configuration.idleTimeout),
            maxConnections: configuration.maxConnections)
        // The decoder's own limits are a backstop above the precise checks of HTTPIngestHandler (which answer
        // 414 and 431 with the limit that was exceeded): NIO counts the request target in its header bytes.
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderFieldCount = configuration.maxHeaders
        decoderLimits.maxHeaderListSize = configuration.maxHeaderSize + configuration.maxURILength
        decoderLimits.maxHeaderFieldSize = configuration.maxHeaderSize + configuration.maxURILength
        self.decoderLimits = decoderLimits
    }

    /// Open connections and closes by reason, shared by every generation of the routes.
    var connections: ConnectionMetrics { live.generation.observability.connections }

    /// Adds the handlers to a new connection's pipeline; call on its event loop. With `h2` among `server.tls.alpn`,
    /// the HTTP handlers are added once ALPN has chosen the protocol.
    func install(on channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        guard let tls else {
            try installHTTP1(on: pipeline, tls: nil)
            return
        }
        let tlsConnection = try tls.install(on: pipeline, metrics: connections, logger: logger)
        guard tls.settings.alpn.contains(IngressTLS.http2) else {
            try installHTTP1(on: pipeline, tls: tlsConnection)
            return
        }
        try pipeline.addHandler(ApplicationProtocolNegotiationHandler { [self] result, channel in
            channel.eventLoop.makeCompletedFuture {
                if case .negotiated(IngressTLS.http2) = result {
                    try installHTTP2(on: channel, tls: tlsConnection)
                } else {
                    try installHTTP1(on: channel.pipeline.syncOperations, tls: tlsConnection)
                }
            }
        })
    }

    /// ``ConnectionGuard``, NIO's HTTP/1.1 codec with pipelining and the decoder's limits, then ``HTTPIngestHandler``.
    private func installHTTP1(on pipeline: ChannelPipeline.SynchronousOperations, tls: TLSConnectionHandler?) throws {
        let connectionGuard = ConnectionGuard(settings: guardSettings, metrics: connections, logger: logger)
        try pipeline.addHandler(connectionGuard)
        try pipeline.configureHTTPServerPipeline(
            withErrorHandling: false, withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
        try pipeline.addHandler(HTTPIngestHandler(
            live: live, endpoints: endpoints, limits: limits, deadlines: .connection(connectionGuard), tls: tls, tracking: tracking,
            reloader: reloader, logger: logger))
    }

    /// The streams an HTTP/2 connection may have open at once (its `SETTINGS_MAX_CONCURRENT_STREAMS`).
    static let maximumConcurrentStreams = 100

    /// ``HTTP2ConnectionGuard``, NIO's HTTP/2 handler (header list bounded by `max_header_size` + `max_uri_length`), and on
    /// each stream NIO's HTTP/2-to-HTTP/1 codec and ``HTTPIngestHandler``: the same routes, limits and answers.
    private func installHTTP2(on channel: any Channel, tls: TLSConnectionHandler) throws {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(HTTP2ConnectionGuard(
            idleTimeout: guardSettings.idleTimeout, maxConnections: guardSettings.maxConnections, metrics: connections, logger: logger))
        var connectionConfiguration = NIOHTTP2Handler.ConnectionConfiguration()
        connectionConfiguration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: Self.maximumConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: decoderLimits.maxHeaderListSize),
        ]
        let tls = NIOLoopBound(tls, eventLoop: channel.eventLoop)
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connectionConfiguration, streamConfiguration: .init()
        ) { [self] stream in
            stream.eventLoop.makeCompletedFuture {
                let streamPipeline = stream.pipeline.syncOperations
                try streamPipeline.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try streamPipeline.addHandler(HTTPIngestHandler(
                    live: live, endpoints: endpoints, limits: limits, deadlines: .stream(readTimeout: guardSettings.requestReadTimeout),
                    tls: tls.value, tracking: tracking, reloader: reloader, logger: logger))
            }
        }
    }
}
