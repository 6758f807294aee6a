import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// One command on its way to the handler: the encoded bytes and where its reply goes.
struct RedisRequest {
    var bytes: ByteBuffer
    var reply: EventLoopPromise<RESPValue>
    var name: String
    var sendTimeout: TimeAmount
    var readTimeout: TimeAmount
}

/// The pipeline's end: sends one command at a time, times its write and its reply, decodes the reply with
/// ``RESPDecoder`` (bounded), and on any failure (timeout, protocol error, close) fails the command and closes the
/// channel, so that a connection in an unknown state is never used again.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private let limits: RESPLimits
    private let endpoint: String
    private var received: ByteBuffer?
    private var pending: (reply: EventLoopPromise<RESPValue>, name: String)?
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    /// With TLS: completed when the handshake is (or failed with why not).
    private let handshake: EventLoopPromise<Void>?

    init(limits: RESPLimits, endpoint: String, handshake: EventLoopPromise<Void>?) {
        self.limits = limits
        self.endpoint = endpoint
        self.handshake = handshake
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        fail(RedisError(.connectionClosed, "redis \(endpoint): the connection closed"))
        handshake?.fail(RedisError(.tls, "redis \(endpoint): the connection closed during the TLS handshake"))
        self.context = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event { handshake?.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        guard pending == nil else {
            request.reply.fail(RedisError(.invalidArgument, "redis \(endpoint): a command is already in flight on this connection"))
            promise?.fail(ChannelError.inappropriateOperationForState)
            return
        }
        pending = (request.reply, request.name)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let name = request.name
        let sendTimeout = request.sendTimeout
        let readTimeout = request.readTimeout
        timer = context.eventLoop.scheduleTask(in: sendTimeout) {
            bound.value.timedOut("sending \(name) took longer than \(Self.milliseconds(sendTimeout)) ms")
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { result in
            let handler = bound.value
            switch result {
            case .success:
                guard handler.pending != nil else { return }
                handler.timer?.cancel()
                handler.timer = handler.context?.eventLoop.scheduleTask(in: readTimeout) {
                    bound.value.timedOut("no reply to \(name) within \(Self.milliseconds(readTimeout)) ms")
                }
            case .failure(let error):
                handler.failAndClose(Self.describe(error, endpoint: handler.endpoint, doing: "sending \(name)"))
            }
        }
        promise.map { written.futureResult.cascade(to: $0) }
        context.writeAndFlush(wrapOutboundOut(request.bytes), promise: written)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if received == nil { received = bytes } else { received!.writeBuffer(&bytes) }
        guard var buffer = received, buffer.readableBytes > 0 else { return }
        guard pending != nil else {
            failAndClose(RedisError(.protocolViolation, "redis \(endpoint): the server sent \(buffer.readableBytes) bytes nobody asked for"))
            return
        }
        let decoded: Result<(value: RESPValue, consumed: Int)?, RESPProtocolError> = buffer.withUnsafeReadableBytes { raw in
            do throws(RESPProtocolError) {
                return .success(try RESPDecoder.decode(raw, limits: limits))
            } catch {
                return .failure(error)
            }
        }
        switch decoded {
        case .failure(let error):
            failAndClose(RedisError(.protocolViolation, "redis \(endpoint): reply to \(pending?.name ?? "a command"): \(error)"))
        case .success(nil):
            // A bulk string may legitimately be up to the limit: anything much larger cannot be one reply.
            let (ceiling, overflow) = limits.maximumBulkLength.addingReportingOverflow(limits.maximumLineLength)
            if !overflow, buffer.readableBytes > ceiling {
                failAndClose(RedisError(.protocolViolation, "redis \(endpoint): reply larger than \(ceiling) bytes"))
            }
        case .success(let (value, consumed)?):
            buffer.moveReaderIndex(forwardBy: consumed)
            received = buffer.readableBytes == 0 ? nil : buffer
            guard let (reply, _) = pending else { return }
            pending = nil
            timer?.cancel()
            timer = nil
            if received != nil {
                failAndClose(RedisError(.protocolViolation, "redis \(endpoint): the server sent more than one reply"))
            }
            reply.succeed(value)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(RedisError(.connectionClosed, "redis \(endpoint): the server closed the connection"))
        handshake?.fail(RedisError(.tls, "redis \(endpoint): the server closed the connection during the TLS handshake"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshake?.fail(Self.describe(error, endpoint: endpoint, doing: "the TLS handshake"))
        failAndClose(Self.describe(error, endpoint: endpoint, doing: pending.map { "waiting for the reply to \($0.name)" } ?? "idle"))
    }

    private func timedOut(_ what: String) {
        failAndClose(RedisError(.timeout, "redis \(endpoint): \(what)"))
    }

    private func fail(_ error: RedisError) {
        timer?.cancel()
        timer = nil
        guard let (reply, _) = pending else { return }
        pending = nil
        reply.fail(error)
    }

    private func failAndClose(_ error: RedisError) {
        fail(error)
        context?.close(promise: nil)
    }

    static func milliseconds(_ amount: TimeAmount) -> Int64 { amount.nanoseconds / 1_000_000 }

    static func describe(_ error: any Error, endpoint: String, doing what: String) -> RedisError {
        if let redis = error as? RedisError { return redis }
        if let tls = error as? NIOSSLError { return RedisError(.tls, "redis \(endpoint): TLS failed while \(what): \(tls)") }
        if error is BoringSSLError { return RedisError(.tls, "redis \(endpoint): TLS failed while \(what): \(error)") }
        if let channel = error as? ChannelError {
            switch channel {
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed:
                return RedisError(.connectionClosed, "redis \(endpoint): the connection closed while \(what)")
            default: break
            }
        }
        return RedisError(.connectionClosed, "redis \(endpoint): connection failed while \(what): \(error)")
    }
}

/// One open connection to the server, used by one command at a time (the pool hands it out).
final class RedisConnection: Sendable {
    let channel: any Channel
    let endpoint: String
    private let broken = Atomic<Bool>(false)

    init(channel: any Channel, endpoint: String) {
        self.channel = channel
        self.endpoint = endpoint
    }

    /// Whether it may serve another command: open, and no command on it ever failed other than by an error reply.
    var isUsable: Bool { channel.isActive && !broken.load(ordering: .relaxed) }

    /// Sends one command and awaits its reply; an error reply comes back as ``RESPValue/error(_:)``. Cancelling the
    /// task fails the command at once and closes the connection.
    func send(_ arguments: [[UInt8]], name: String, sendTimeout: Duration, readTimeout: Duration) async throws(RedisError) -> RESPValue {
        let encoded = RESPEncoder.command(arguments)
        let reply = channel.eventLoop.makePromise(of: RESPValue.self)
        let request = RedisRequest(bytes: channel.allocator.buffer(bytes: encoded), reply: reply, name: name,
                                   sendTimeout: Self.timeAmount(sendTimeout), readTimeout: Self.timeAmount(readTimeout))
        let endpoint = endpoint
        let channel = channel
        channel.writeAndFlush(request).whenFailure { error in
            reply.fail(RedisChannelHandler.describe(error, endpoint: endpoint, doing: "sending \(name)"))
        }
        do {
            return try await withTaskCancellationHandler {
                try await reply.futureResult.get()
            } onCancel: {
                reply.fail(RedisError(.timeout, "redis \(endpoint): \(name) cancelled (the workflow's deadline passed)"))
                channel.close(promise: nil)
            }
        } catch {
            broken.store(true, ordering: .relaxed)
            channel.close(promise: nil)
            throw RedisChannelHandler.describe(error, endpoint: endpoint, doing: "waiting for the reply to \(name)")
        }
    }

    func close() {
        broken.store(true, ordering: .relaxed)
        channel.close(promise: nil)
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        let (secondsNanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow, seconds >= 0 else { return seconds < 0 ? .zero : .nanoseconds(.max) }
        let (total, overflowSum) = secondsNanos.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflowSum ? .nanoseconds(.max) : .nanoseconds(total)
    }
}
