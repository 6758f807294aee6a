import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SchemaRegistry
import TestSupport
import Testing

/// `token_endpoint_tls_verify`: an https token endpoint with a self-signed certificate is refused with verification
/// and answers without it.
@Suite(.timeLimit(.minutes(1)))
struct OAuth2TLSTests {
    /// Answers every request with one token answer, over TLS.
    final class TokenAnswerer: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            let body = ByteBuffer(string: #"{"access_token":"over-tls","expires_in":60}"#)
            var headers = HTTPHeaders([("content-type", "application/json"), ("content-length", "\(body.readableBytes)")])
            headers.add(name: "connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    @Test func verificationRefusesASelfSignedEndpointAndCanBeTurnedOff() async throws {
        let directory = NSTemporaryDirectory() + "oauth2-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try await runProcess("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem",
            "-out", "cert.pem", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
        ], directory: directory)
        try #require(made.status == 0)
        let context = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(directory + "/cert.pem").map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: directory + "/key.pem", format: .pem))))
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(TokenAnswerer())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let credentials = OAuth2ClientCredentials(tokenEndpoint: "https://127.0.0.1:\(channel.localAddress!.port!)/token",
                                                  clientID: "a", clientSecret: "b")
        let verifying = OAuth2TokenSource(credentials: credentials, httpClient: .shared,
                                          tls: OAuth2TokenSource.tlsConfiguration(verify: true), timeout: .seconds(5))
        do {
            _ = try await verifying.fetch()
            Issue.record("a self-signed endpoint must be refused with verification")
        } catch {
            #expect(error.kind == .unreachable, "\(error)")
            #expect("\(error)".contains(credentials.tokenEndpoint), "\(error)")
        }
        let trusting = OAuth2TokenSource(credentials: credentials, httpClient: .shared,
                                         tls: OAuth2TokenSource.tlsConfiguration(verify: false), timeout: .seconds(5))
        #expect(try await trusting.fetch().value == "over-tls")
        try await channel.close()
    }
}
