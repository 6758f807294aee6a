import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import SwiftASN1
import Synchronization
import X509

/// The listener's TLS (`server.tls`): the `NIOSSLContext` new connections handshake with, rebuilt from the files by
/// ``reload()`` (SIGHUP). A failed reload keeps the context in use.
final class IngressTLS: Sendable {
    let settings: ServerTLSSettings
    private let context: Mutex<NIOSSLContext>
    /// The ALPN name of HTTP/2.
    static let http2 = "h2"

    init(settings: ServerTLSSettings) throws(IngressTLSError) {
        self.settings = settings
        context = Mutex(try Self.makeContext(settings))
    }

    /// The context for a new connection.
    var currentContext: NIOSSLContext { context.withLock { $0 } }

    /// Re-reads the certificate, key and CA files; on failure the context in use stays.
    func reload() throws(IngressTLSError) {
        replaceContext(try Self.makeContext(settings))
    }

    /// New connections use `fresh` from now on (made by ``makeContext(_:)`` from the files re-read).
    func replaceContext(_ fresh: NIOSSLContext) {
        context.withLock { $0 = fresh }
    }

    /// Loads the files and builds the server context; the error names the key whose file is at fault.
    static func makeContext(_ settings: ServerTLSSettings) throws(IngressTLSError) -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(settings.certificateFile)
        } catch {
            throw IngressTLSError(key: "certificate_file", reason: "\(settings.certificateFile) is not a PEM certificate file (\(error))")
        }
        guard let leaf = chain.first else {
            throw IngressTLSError(key: "certificate_file", reason: "\(settings.certificateFile) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: settings.keyFile, format: .pem)
        } catch {
            throw IngressTLSError(key: "key_file", reason: "\(settings.keyFile) is not an unencrypted PEM private key (\(error))")
        }
        if let mismatch = keyMismatch(certificate: leaf, key: settings.keyFile) {
            throw IngressTLSError(key: "key_file", reason: "the key in \(settings.keyFile) does not match the certificate in \(settings.certificateFile)\(mismatch)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = settings.minimumVersion == .tls13 ? .tlsv13 : .tlsv12
        configuration.applicationProtocols = settings.alpn
        switch settings.clientCertificate {
        case .none:
            configuration.certificateVerification = .none
        case .optional, .required:
            guard let caFile = settings.clientCAFile else {
                throw IngressTLSError(key: "client_ca_file", reason: "required with client_certificate: \(settings.clientCertificate.rawValue)")
            }
            let authorities: [NIOSSLCertificate]
            do {
                authorities = try NIOSSLCertificate.fromPEMFile(caFile)
            } catch {
                throw IngressTLSError(key: "client_ca_file", reason: "\(caFile) is not a PEM certificate file (\(error))")
            }
            guard !authorities.isEmpty else { throw IngressTLSError(key: "client_ca_file", reason: "\(caFile) holds no PEM certificate") }
            configuration.trustRoots = .certificates(authorities)
            configuration.sendCANameList = true
            configuration.certificateVerification = settings.clientCertificate == .required ? .noHostnameVerification : .optionalVerification
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw IngressTLSError(key: "certificate_file", reason: "TLS refuses \(settings.certificateFile) with \(settings.keyFile): \(error)")
        }
    }

    /// Why the private key in `keyFile` is not the certificate's (" (...)"), or `nil` when it is, or when the key
    /// type is one swift-certificates does not read (then BoringSSL's own check, when the context is built, decides).
    private static func keyMismatch(certificate: NIOSSLCertificate, key keyFile: String) -> String? {
        guard let pem = try? String(contentsOfFile: keyFile, encoding: .utf8),
              let privateKey = try? Certificate.PrivateKey(pemEncoded: pem),
              let der = try? certificate.toDERBytes(),
              let parsed = try? Certificate(derEncoded: der) else { return nil }
        return privateKey.publicKey == parsed.publicKey ? nil : ""
    }
}

/// A TLS file that cannot be used: the `server.tls` key naming it and why.
struct IngressTLSError: Error, Sendable, CustomStringConvertible {
    var key: String
    var reason: String
    var description: String { "server.tls.\(key): \(reason)" }
}

/// What a verified client certificate says of its holder: what routes forward (`client_certificate_header`) and
/// workflows read (`client.certificate.subject`, `client.certificate.sans`).
public struct ClientCertificateIdentity: Sendable, Hashable {
    /// The subject as an RFC 4514 string, most significant part last (`CN=client,O=Example`).
    public var subject: String
    /// The subject alternative names, OpenSSL style: `DNS:name`, `IP:address`, `email:address`, `URI:uri`.
    public var subjectAlternativeNames: [String]

    /// At most this many names are kept (the certificate was issued by a trusted CA, but bounded still).
    static let maximumNames = 64

    public init(subject: String, subjectAlternativeNames: [String]) {
        self.subject = subject
        self.subjectAlternativeNames = subjectAlternativeNames
    }

    /// The identity in a DER certificate, or `nil` when it cannot be parsed.
    init?(der: [UInt8]) {
        guard let certificate = try? Certificate(derEncoded: der) else { return nil }
        var names: [String] = []
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for name in alternatives where names.count < Self.maximumNames {
                switch name {
                case .dnsName(let dns): names.append("DNS:\(dns)")
                case .rfc822Name(let email): names.append("email:\(email)")
                case .uniformResourceIdentifier(let uri): names.append("URI:\(uri)")
                case .ipAddress(let octets): if let text = Self.ipText(Array(octets.bytes)) { names.append("IP:\(text)") }
                default: continue
                }
            }
        }
        self.init(subject: certificate.subject.description, subjectAlternativeNames: names)
    }

    private static func ipText(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 4 || bytes.count == 16,
              let address = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 0) else { return nil }
        return address.ipAddress
    }
}

/// Per TLS connection, right after `NIOSSLServerHandler`: closes a connection whose handshake has not completed
/// within `server.tls.handshake_timeout` (a slow or silent client holds no connection for longer), counts handshake
/// failures, and keeps the identity of the verified client certificate for the requests of the connection.
final class TLSConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let handshakeTimeout: TimeAmount
    private let readsClientCertificate: Bool
    private let metrics: ConnectionMetrics
    private let logger: Logger
    private var timer: Scheduled<Void>?
    private var handshakeCompleted = false
    /// Closed here (timeout or failure): what the TLS handler reports after that is not counted again.
    private var closing = false
    /// The verified client certificate's identity, once the handshake completed with one.
    private(set) var clientCertificate: ClientCertificateIdentity?

    init(handshakeTimeout: TimeAmount, readsClientCertificate: Bool, metrics: ConnectionMetrics, logger: Logger) {
        self.handshakeTimeout = handshakeTimeout
        self.readsClientCertificate = readsClientCertificate
        self.metrics = metrics
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            handshakeCompleted = true
            timer?.cancel()
            timer = nil
            if readsClientCertificate, let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate(),
               let der = try? certificate.toDERBytes() {
                clientCertificate = ClientCertificateIdentity(der: der)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !handshakeCompleted, error is NIOSSLError || error is BoringSSLError {
            if !closing {
                closing = true
                log(.tlsHandshakeFailed, context: context, "TLS handshake failed; closing", metadata: ["error": "\(error)"])
            }
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    private func arm(context: ChannelHandlerContext) {
        guard timer == nil, !handshakeCompleted else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: handshakeTimeout) { [self] in
            self.timer = nil
            guard !self.handshakeCompleted, !self.closing, context.channel.isActive else { return }
            self.closing = true
            self.log(.tlsHandshakeTimeout, context: context, "the TLS handshake did not complete in time; closing",
                     metadata: ["timeout_ms": "\(self.handshakeTimeout.nanoseconds / 1_000_000)"])
            context.close(promise: nil)
        }
    }

    private func log(_ reason: ConnectionMetrics.CloseReason, context: ChannelHandlerContext, _ message: Logger.Message, metadata: Logger.Metadata) {
        metrics.closed(reason)
        guard let suppressed = metrics.shouldLog(reason) else { return }
        var metadata = metadata
        metadata["reason"] = "\(reason.rawValue)"
        if let peer = context.channel.remoteAddress { metadata["peer"] = "\(peer)" }
        if suppressed > 0 { metadata["not_logged_since_last"] = "\(suppressed)" }
        logger.notice(message, metadata: metadata)
    }
}

extension IngressTLS {
    /// Adds `NIOSSLServerHandler` (with the current context) and a ``TLSConnectionHandler`` to a new connection's
    /// pipeline, before every other handler; returns the latter (the request path reads the client's identity there).
    func install(on pipeline: ChannelPipeline.SynchronousOperations, metrics: ConnectionMetrics, logger: Logger) throws -> TLSConnectionHandler {
        let connection = TLSConnectionHandler(
            handshakeTimeout: TimeAmount(settings.handshakeTimeout), readsClientCertificate: settings.clientCertificate != .none,
            metrics: metrics, logger: logger)
        try pipeline.addHandler(NIOSSLServerHandler(context: currentContext))
        try pipeline.addHandler(connection)
        return connection
    }
}
