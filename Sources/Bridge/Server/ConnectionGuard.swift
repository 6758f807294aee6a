import Logging
import NIOCore

/// The first handler of every connection (before the HTTP decoder, on raw bytes): counts the connection against
/// `max_connections` and closes it when it is idle too long or a request takes too long to arrive.
///
/// One deadline per connection, kept in a variable: the request path only moves it (no allocation, no task per
/// request). A single scheduled task checks it, armed for the deadline but never further than the shorter of the
/// two timeouts away, so a deadline moved earlier is still met; a busy connection costs one timer wake-up per
/// that period at most.
///
/// - Between requests (`idle`), the deadline is `idle_timeout` after the last answer (or the accept).
/// - From the first byte of a request (`reading`), it is `request_read_timeout` after that byte: the head and
///   the whole body must arrive by then (slowloris, trickled bodies). On expiry the client gets 408 and the
///   connection is closed.
/// - While the request is processed (`processing`: waiting for the broker), there is no deadline: the route's
///   producer timeout bounds it.
/// - After an answer with `Connection: close` (`closing`), the output side is shut down once the answer is
///   written, and what the client still sends is read and dropped for up to ``lingerTime`` before the connection is
///   closed: closing at once with unread input makes the kernel send a reset, which can destroy the answer before the
///   client reads it (a client still sending a refused body, a slowloris client).
///
/// While an answer is pending (`processing`), the guard keeps asking for bytes. NIO's HTTP pipeline handler withholds
/// its read until the answer is written, which made NIO take the socket out of epoll and put it back for every
/// request that waits for the broker (two `epoll_ctl` calls per sync request). Bytes that a pipelining client sends
/// meanwhile are held here, and no further read is asked for until the answer is written: at most what one readiness
/// event reads (as before, when those bytes went on to the decoder), passed on in order right after the answer.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Settings: Sendable {
        var requestReadTimeout: TimeAmount
        var idleTimeout: TimeAmount
        var maxConnections: Int
    }

    private enum Phase {
        case idle
        case reading
        case processing
        case closing
    }

    /// How long a connection answered with `Connection: close` may linger (see the type's documentation).
    static let lingerTime = TimeAmount.seconds(2)

    private let settings: Settings
    private let metrics: ConnectionMetrics
    private let logger: Logger
    private var phase = Phase.idle
    private var deadline = NIODeadline.distantFuture
    private var timer: Scheduled<Void>?
    /// Whether this connection is counted in ``ConnectionMetrics/openConnections``.
    private var counted = false
    private var activated = false
    /// Bytes that arrived while an answer was pending (see the type's documentation).
    private var held: ByteBuffer?
    private var context: ChannelHandlerContext?

    init(settings: Settings, metrics: ConnectionMetrics, logger: Logger) {
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
    }

    /// Added after the connection became active (once ALPN chose HTTP/1.1 over TLS): it starts at once.
    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { activate(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        held = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        guard activate(context: context) else { return }
        context.fireChannelActive()
    }

    /// Counts the connection; `false` when it is over `max_connections` (refused).
    @discardableResult
    private func activate(context: ChannelHandlerContext) -> Bool {
        guard !activated else { return true }
        activated = true
        guard metrics.open(maximum: settings.maxConnections) else {
            refuse(context: context)
            return false
        }
        counted = true
        phase = .idle
        deadline = .now() + settings.idleTimeout
        arm(context: context)
        return true
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        held = nil
        if counted {
            counted = false
            metrics.connectionClosed()
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if held != nil, phase != .closing {
            // Bytes are held still (released on the next tick): these go after them, in order.
            var bytes = unwrapInboundIn(data)
            held!.writeBuffer(&bytes)
            return
        }
        switch phase {
        case .idle:
            phase = .reading
            deadline = .now() + settings.requestReadTimeout
        case .closing:
            return  // the connection is being closed after an answer: nothing more is parsed
        case .processing:
            // A pipelining client's next request: held until the answer is written.
            held = unwrapInboundIn(data)
            return
        case .reading:
            break
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
        // The socket stays registered for reading while the answer is pending (unless bytes are held already).
        if phase == .processing, held == nil { context.read() }
    }

    /// Passes on the bytes held while the answer was pending, as if they had just been read.
    private func releaseHeld() {
        guard let context, held != nil else { return }
        // Not from inside the answer's write: on the next tick, like a read (bytes read before then join `held`).
        context.eventLoop.assumeIsolated().execute { [self] in
            guard let bytes = held, context.channel.isActive else { return }
            held = nil
            channelRead(context: context, data: wrapInboundOut(bytes))
            channelReadComplete(context: context)
        }
    }

    // MARK: Told by HTTPIngestHandler

    /// A request head was delivered (it may have been buffered while an earlier request was answered).
    func requestStarted() {
        guard phase == .idle else { return }
        phase = .reading
        deadline = .now() + settings.requestReadTimeout
    }

    /// The request was read completely; its answer may wait for the broker.
    func requestReceived() {
        guard phase == .reading else { return }
        phase = .processing
    }

    /// The answer was written: the connection waits for the next request, or closes.
    func requestAnswered(keepAlive: Bool) {
        guard phase != .closing else { return }
        if keepAlive {
            phase = .idle
            deadline = .now() + settings.idleTimeout
            releaseHeld()
        } else {
            phase = .closing
            held = nil
            deadline = .now() + min(Self.lingerTime, settings.requestReadTimeout)
        }
    }

    /// Shuts down the output once `written` completes; the connection is closed when the client closes its side or
    /// when the linger time is over.
    static func closeOutput(after written: EventLoopFuture<Void>, context: ChannelHandlerContext) {
        written.assumeIsolated().whenComplete { result in
            if case .failure = result {
                context.close(promise: nil)
            } else {
                context.close(mode: .output, promise: nil)
            }
        }
    }

    // MARK: Timer

    private func arm(context: ChannelHandlerContext, now: NIODeadline = .now()) {
        let latest = now + min(settings.idleTimeout, settings.requestReadTimeout)
        let fireAt = phase == .processing ? latest : min(deadline, latest)
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: fireAt) { [self] in
            self.timer = nil
            self.check(context: context)
        }
    }

    private func check(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let now = NIODeadline.now()
        if phase == .processing || now < deadline {
            arm(context: context, now: now)
            return
        }
        switch phase {
        case .idle:
            // Routine for keep-alive clients: logged at info, the others at notice.
            log(.idleTimeout, level: .info, context: context, "closing an idle connection", timeout: settings.idleTimeout)
            context.close(promise: nil)
        case .reading:
            log(.requestTimeout, context: context, "the request did not arrive in time; answering 408 and closing",
                timeout: settings.requestReadTimeout)
            phase = .closing
            Self.closeOutput(after: context.writeAndFlush(wrapOutboundOut(Self.requestTimeoutAnswer)), context: context)
            deadline = now + min(Self.lingerTime, settings.requestReadTimeout)
            arm(context: context, now: now)
        case .closing:
            context.close(promise: nil)
        case .processing:
            break
        }
    }

    private func refuse(context: ChannelHandlerContext) {
        log(.maxConnections, context: context, "refusing a connection over max_connections (answering 503)",
            metadata: ["max_connections": "\(settings.maxConnections)"])
        phase = .closing
        Self.closeOutput(after: context.writeAndFlush(wrapOutboundOut(Self.tooManyConnectionsAnswer)), context: context)
        deadline = .now() + min(Self.lingerTime, settings.requestReadTimeout)
        arm(context: context)
    }

    private func log(
        _ reason: ConnectionMetrics.CloseReason, level: Logger.Level = .notice, context: ChannelHandlerContext, _ message: Logger.Message,
        timeout: TimeAmount? = nil, metadata: Logger.Metadata = [:]
    ) {
        metrics.closed(reason)
        guard let suppressed = metrics.shouldLog(reason) else { return }
        var metadata = metadata
        metadata["reason"] = "\(reason.rawValue)"
        if let peer = context.channel.remoteAddress { metadata["peer"] = "\(peer)" }
        if let timeout { metadata["timeout_ms"] = "\(timeout.nanoseconds / 1_000_000)" }
        if suppressed > 0 { metadata["not_logged_since_last"] = "\(suppressed)" }
        logger.log(level: level, message, metadata: metadata)
    }

    /// Written as raw bytes: this handler sits before the HTTP encoder.
    private static let requestTimeoutAnswer = rawAnswer(
        status: "408 Request Timeout",
        body: JSONBody.error(message: "the request did not arrive within server.request_read_timeout", code: "request_timeout"))
    private static let tooManyConnectionsAnswer = rawAnswer(
        status: "503 Service Unavailable",
        body: JSONBody.error(message: "too many open connections (server.max_connections); retry later", code: "too_many_connections"),
        extraHeaders: "retry-after: 1\r\n")

    private static func rawAnswer(status: String, body: ByteBuffer, extraHeaders: String = "") -> ByteBuffer {
        var buffer = ByteBuffer(string: "HTTP/1.1 \(status)\r\ncontent-type: application/json\r\ncontent-length: \(body.readableBytes)\r\n"
            + extraHeaders + "connection: close\r\n\r\n")
        var body = body
        buffer.writeBuffer(&body)
        return buffer
    }
}
