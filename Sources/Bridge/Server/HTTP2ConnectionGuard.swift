import Logging
import NIOCore

/// The first handler of an HTTP/2 connection after TLS (on raw bytes): counts the connection against `max_connections`
/// (one over it is closed at once: HTTP/2 has no place for a 503 before the client's preface) and closes it after
/// `idle_timeout` without a byte in either direction. Each stream's request has its own `request_read_timeout`
/// (kept by ``HTTPIngestHandler``); the HTTP/1.x equivalent is ``ConnectionGuard``.
///
/// A connection waiting for the broker on one of its streams sends and receives nothing meanwhile: the route's
/// producer `timeout` (10 s by default) must stay below `idle_timeout` (60 s by default).
final class HTTP2ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let idleTimeout: TimeAmount
    private let maxConnections: Int
    private let metrics: ConnectionMetrics
    private let logger: Logger
    private var lastActivity = NIODeadline.now()
    private var timer: Scheduled<Void>?
    private var activated = false
    /// Whether this connection is counted in ``ConnectionMetrics/openConnections``.
    private var counted = false

    init(idleTimeout: TimeAmount, maxConnections: Int, metrics: ConnectionMetrics, logger: Logger) {
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.metrics = metrics
        self.logger = logger
    }

    /// Added once ALPN chose `h2`, when the connection is already active.
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { activate(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    private func activate(context: ChannelHandlerContext) {
        guard !activated else { return }
        activated = true
        guard metrics.open(maximum: maxConnections) else {
            metrics.closed(.maxConnections)
            if metrics.shouldLog(.maxConnections) != nil {
                logger.notice("refusing an HTTP/2 connection over max_connections", metadata: ["max_connections": "\(maxConnections)"])
            }
            context.close(promise: nil)
            return
        }
        counted = true
        lastActivity = .now()
        arm(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    private func release() {
        timer?.cancel()
        timer = nil
        if counted {
            counted = false
            metrics.connectionClosed()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = .now()
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        context.write(data, promise: promise)
    }

    private func arm(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: lastActivity + idleTimeout) { [self] in
            self.timer = nil
            guard context.channel.isActive else { return }
            if NIODeadline.now() < self.lastActivity + self.idleTimeout {
                self.arm(context: context)
                return
            }
            self.metrics.closed(.idleTimeout)
            if self.metrics.shouldLog(.idleTimeout) != nil {
                self.logger.info("closing an idle HTTP/2 connection", metadata: [
                    "reason": "idle_timeout", "timeout_ms": "\(self.idleTimeout.nanoseconds / 1_000_000)",
                ])
            }
            context.close(promise: nil)
        }
    }
}
