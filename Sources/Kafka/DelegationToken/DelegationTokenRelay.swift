import CRdKafka
import Foundation
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import Synchronization

/// Logs every broker connection of one librdkafka client in with a delegation token, then relays its bytes.
///
/// librdkafka is configured with `security.protocol=PLAINTEXT` and a connect callback
/// (`rd_kafka_conf_set_connect_cb`): instead of connecting to a broker, each of its sockets connects to this
/// relay on loopback. The relay opens the real connection (with TLS if configured, verifying the broker's name),
/// performs SaslHandshake and SaslAuthenticate with SCRAM and `tokenauth=true`, and from then on copies bytes
/// both ways, so librdkafka does everything else (metadata, batching, retries) as usual.
final class DelegationTokenRelay: Sendable {
    private let login: DelegationTokenLogin
    private let group: MultiThreadedEventLoopGroup
    private let tlsContext: NIOSSLContext?
    private let listeners: [any Channel]
    /// Where each librdkafka socket (by its local port) is going: the broker's address and host name.
    private let pending = Mutex<[Int: (address: SocketAddress, host: String)]>([:])
    private let onLoginFailure: @Sendable (String) -> Void
    private let logger: Logger

    /// Starts the relay's listeners on 127.0.0.1 (and ::1 when available).
    init(login: DelegationTokenLogin, logger: Logger, onLoginFailure: @escaping @Sendable (String) -> Void) throws(KafkaError) {
        self.login = login
        self.logger = logger
        self.onLoginFailure = onLoginFailure
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            tlsContext = try login.tls.map { try Self.makeTLSContext($0) }
        } catch {
            try? group.syncShutdownGracefully()
            throw KafkaError(code: .ssl, message: "cannot set up TLS for the delegation-token login: \(error)")
        }
        var listeners: [any Channel] = []
        let relay = RelayBox()
        for host in ["127.0.0.1", "::1"] {
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.autoRead, value: false)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    relay.value?.accept(channel)
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
            if let channel = try? bootstrap.bind(host: host, port: 0).wait() { listeners.append(channel) }
        }
        guard !listeners.isEmpty else {
            try? group.syncShutdownGracefully()
            throw KafkaError(code: .transport, message: "cannot listen on loopback for the delegation-token relay")
        }
        self.listeners = listeners
        relay.value = self
    }

    /// Breaks the reference cycle between the relay and its listeners' initializer.
    private final class RelayBox: @unchecked Sendable {
        // @unchecked: written once, before any connection can be accepted.
        weak var value: DelegationTokenRelay?
    }

    func shutdown() {
        for listener in listeners { try? listener.close().wait() }
        try? group.syncShutdownGracefully()
    }

    static func makeTLSContext(_ tls: DelegationTokenLogin.TLS) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile = tls.caFile { configuration.trustRoots = .file(caFile) }
        configuration.certificateVerification = tls.verify ? .fullVerification : .none
        if let certificateFile = tls.certificateFile, let keyFile = tls.keyFile {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            if let password = tls.keyPassword {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem) { $0(Array(password.utf8)) })
            } else {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            }
        }
        return try NIOSSLContext(configuration: configuration)
    }

    // MARK: - librdkafka's side

    /// The connect callback's work: binds the socket to a loopback port (so the relay can tell which broker it
    /// is for), records the broker, and connects the socket to the relay. Returns 0 or an errno.
    func connect(socket: Int32, to address: UnsafePointer<sockaddr>, length: Int32, nodename: String) -> Int32 {
        let target: SocketAddress
        let host = Self.host(fromNodename: nodename)
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            target = SocketAddress(address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }, host: host)
        case AF_INET6:
            target = SocketAddress(address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }, host: host)
        default:
            return EAFNOSUPPORT
        }
        let loopback = Int32(address.pointee.sa_family) == AF_INET ? "127.0.0.1" : "::1"
        guard let relay = listeners.compactMap(\.localAddress).first(where: { $0.ipAddress == loopback }),
              let local = try? SocketAddress(ipAddress: loopback, port: 0) else { return EAFNOSUPPORT }
        let bound = local.withSockAddr { bind(socket, $0, socklen_t($1)) }
        guard bound == 0 else { return errno }
        guard let port = Self.localPort(of: socket) else { return errno == 0 ? EINVAL : errno }
        pending.withLock { $0[port] = (target, host) }
        let connected = relay.withSockAddr { Foundation.connect(socket, $0, socklen_t($1)) }
        if connected == 0 || errno == EINPROGRESS { return 0 }  // librdkafka's own connect treats EINPROGRESS as success
        let failure = errno
        pending.withLock { _ = $0.removeValue(forKey: port) }
        return failure
    }

    /// The local port a socket is bound to (IPv4 or IPv6).
    static func localPort(of socket: Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        guard named == 0 else { return nil }
        let family = Int32(storage.ss_family)
        return withUnsafePointer(to: &storage) { pointer in
            switch family {
            case AF_INET: SocketAddress(pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }, host: "").port
            case AF_INET6: SocketAddress(pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }, host: "").port
            default: nil
            }
        }
    }

    /// `host:port` (IPv6 in brackets) to `host`.
    static func host(fromNodename nodename: String) -> String {
        guard let colon = nodename.lastIndex(of: ":") else { return nodename }
        var host = String(nodename[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host
    }

    // MARK: - The relay

    private func accept(_ client: any Channel) {
        guard let port = client.remoteAddress?.port, let target = pending.withLock({ $0.removeValue(forKey: port) }) else {
            client.close(promise: nil)
            return
        }
        let loggedIn = client.eventLoop.makePromise(of: Void.self)
        let tlsContext = self.tlsContext
        let login = self.login
        let isIPAddress = (try? SocketAddress(ipAddress: target.host, port: 0)) != nil
        ClientBootstrap(group: client.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { broker in
                broker.eventLoop.makeCompletedFuture {
                    if let tlsContext {
                        let handler = try NIOSSLClientHandler(context: tlsContext, serverHostname: isIPAddress ? nil : target.host)
                        try broker.pipeline.syncOperations.addHandler(handler)
                    }
                    try broker.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldBitLength: .thirtyTwoBits)), name: "frames")
                    try broker.pipeline.syncOperations.addHandler(SaslLoginHandler(login: login, done: loggedIn), name: "login")
                }
            }
            .connect(to: target.address)
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    self.logger.debug("delegation-token relay cannot reach the broker", metadata: ["broker": "\(target.address)", "error": "\(error)"])
                    loggedIn.fail(error)
                    client.close(promise: nil)
                case .success(let broker):
                    loggedIn.futureResult.whenComplete { result in
                        switch result {
                        case .success:
                            Self.glue(client, broker)
                        case .failure(let error):
                            if let failure = error as? SaslLoginHandler.Failure { self.onLoginFailure(failure.reason) }
                            broker.close(promise: nil)
                            client.close(promise: nil)
                        }
                    }
                }
            }
    }

    /// Once logged in: the frame decoder and login handler leave, and bytes flow both ways unchanged.
    private static func glue(_ client: any Channel, _ broker: any Channel) {
        // The broker connection was made on the client's event loop: both handlers live there, and so do these
        // callbacks.
        let pair = NIOLoopBound(GlueHandler.matchedPair(), eventLoop: broker.eventLoop)
        broker.pipeline.removeHandler(name: "login").flatMap {
            broker.pipeline.removeHandler(name: "frames")
        }.flatMapThrowing {
            try broker.pipeline.syncOperations.addHandler(pair.value.1)
            try client.pipeline.syncOperations.addHandler(pair.value.0)
        }.whenComplete { result in
            switch result {
            case .success: client.setOption(.autoRead, value: true).whenComplete { _ in client.read() }
            case .failure: client.close(promise: nil); broker.close(promise: nil)
            }
        }
    }
}

/// Drives SaslHandshake then SaslAuthenticate (client-first, client-final) over the broker connection.
final class SaslLoginHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Failure: Error {
        var reason: String
    }

    private enum Step { case handshake, first, final(ScramClient.Exchange), done }
    private var step = Step.handshake
    private let scram: ScramClient
    private let done: EventLoopPromise<Void>

    init(login: DelegationTokenLogin, done: EventLoopPromise<Void>) {
        scram = ScramClient(algorithm: login.algorithm == .scramSHA256 ? .sha256 : .sha512, user: login.tokenID,
                            password: login.hmac(), extensions: [("tokenauth", "true")])
        self.done = done
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(KafkaSaslProtocol.handshake(mechanism: scram.algorithm.rawValue, correlationID: 1)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)  // one response, without its size field
        do {
            switch step {
            case .handshake:
                try KafkaSaslProtocol.readHandshake(&frame, mechanism: scram.algorithm.rawValue)
                step = .first
                context.writeAndFlush(wrapOutboundOut(KafkaSaslProtocol.authenticate(scram.clientFirst, correlationID: 2)), promise: nil)
            case .first:
                let serverFirst = try KafkaSaslProtocol.readAuthenticate(&frame)
                let exchange = try scram.clientFinal(serverFirst: serverFirst)
                step = .final(exchange)
                context.writeAndFlush(wrapOutboundOut(KafkaSaslProtocol.authenticate(exchange.clientFinal, correlationID: 3)), promise: nil)
            case .final(let exchange):
                try ScramClient.verify(serverFinal: try KafkaSaslProtocol.readAuthenticate(&frame), exchange: exchange)
                step = .done
                done.succeed()
            case .done:
                break
            }
        } catch let error as KafkaSaslProtocol.Failure {
            fail("delegation token authentication failed: \(error.reason)")
        } catch let error as ScramClient.Failure {
            fail("delegation token authentication failed: \(error.reason)")
        } catch {
            fail("delegation token authentication failed: \(error)")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail("the broker closed the connection during the delegation-token login")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail("delegation-token login connection failed: \(error)")
        context.close(promise: nil)
    }

    private func fail(_ reason: String) {
        if case .done = step { return }
        step = .done
        done.fail(Failure(reason: reason))
    }
}

/// Copies bytes from one channel to its partner, honouring the partner's writability (back-pressure).
final class GlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func partnerFlush() { context?.flush() }
    private func partnerWriteEOF() { context?.close(mode: .output, promise: nil) }
    private func partnerCloseFull() { context?.close(promise: nil) }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }
    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }
    func channelInactive(context: ChannelHandlerContext) { partner?.partnerCloseFull() }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event { partner?.partnerWriteEOF() }
    }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }
    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
