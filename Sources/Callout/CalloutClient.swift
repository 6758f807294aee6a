// Callout: the HTTP client that workflow steps call through (Datakit `call` nodes, later request-callout).
//
// What it is for: run one outbound HTTP/1.1 or HTTP/2 request and hand back status, headers and body, with the bounds
// a gateway needs when request data can influence the call. It knows nothing about workflows, JSON, Kafka or the
// bridge: the caller decides what a status means and how to read the body.
//
// Bounds and behaviour:
// - One pooled AsyncHTTPClient per client (plus a bounded set of variants for proxies and TLS server-name overrides,
//   `Configuration.maximumClientVariants`, default 16; a call needing one more fails with kind `other`).
// - Every call has a time budget covering connect, send, response head and the whole body: the request's `timeout`,
//   or `Configuration.maximumTimeout` (default 60 s) when it is zero; never more than that maximum. Task cancellation
//   cancels the in-flight request.
// - Response bodies are streamed into memory up to `Configuration.maximumResponseBytes` (default 8 MiB); one byte
//   more fails the call with `tooLarge` and closes the connection, so memory stays bounded. A `Content-Length` above
//   the cap fails before any body byte is read. No decompression (a compressed body is returned as received).
//   Response header blocks are bounded by SwiftNIO's decoders (80 KiB for HTTP/1.1 by default).
// - Redirects are never followed (the 3xx response is returned), so a redirect cannot lead around
//   `CalloutDestinationPolicy`.
// - TLS: the system trust roots plus `Configuration.caCertificateFiles` (PEM, loaded and validated at init);
//   `tlsVerify: false` disables verification for that call only (a per-request TLS configuration, pooled separately).
// - Connection establishment is not retried: a refused or unreachable destination fails at once with `connectFailed`.
// - Errors name the destination `host:port` only; URLs with userinfo are refused, and header values are never logged
//   (AsyncHTTPClient's own logging is limited to `info` and above).
// - Not covered: DNS rebinding for host names (see `CalloutDestinationPolicy`), HTTPS proxies (TLS to the proxy
//   itself), SOCKS proxies, streaming request bodies, per-call connect timeouts (the client's applies).

import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Runs outbound HTTP calls over a pooled AsyncHTTPClient. Create one at start-up, share it, and `await shutdown()`
/// when the bridge stops.
public final class CalloutClient: Sendable {
    public struct Configuration: Sendable {
        /// PEM files whose certificates are trusted in addition to the system roots (Kong 3.16 `ca_certificates`).
        public var caCertificateFiles: [String]
        /// The largest response body accepted, in bytes.
        public var maximumResponseBytes: Int
        /// Soft limit of HTTP/1.1 connections per destination (per pool).
        public var maximumConnectionsPerHost: Int
        /// Time allowed to establish a TCP connection.
        public var connectTimeout: Duration
        /// The largest time budget of one call; also the budget of calls whose `timeout` is zero.
        public var maximumTimeout: Duration
        /// Idle pooled connections are closed after this long.
        public var idleConnectionTimeout: Duration
        /// How many extra pools (one per distinct proxy setting or TLS server-name override) may exist.
        public var maximumClientVariants: Int

        public init(
            caCertificateFiles: [String] = [],
            maximumResponseBytes: Int = 8 * 1024 * 1024,
            maximumConnectionsPerHost: Int = 8,
            connectTimeout: Duration = .seconds(5),
            maximumTimeout: Duration = .seconds(60),
            idleConnectionTimeout: Duration = .seconds(60),
            maximumClientVariants: Int = 16
        ) {
            self.caCertificateFiles = caCertificateFiles
            self.maximumResponseBytes = maximumResponseBytes
            self.maximumConnectionsPerHost = maximumConnectionsPerHost
            self.connectTimeout = connectTimeout
            self.maximumTimeout = maximumTimeout
            self.idleConnectionTimeout = idleConnectionTimeout
            self.maximumClientVariants = maximumClientVariants
        }
    }

    /// What selects a pool besides the default one.
    private struct VariantKey: Hashable, Sendable {
        var proxy: ProxyTarget?
        /// TLS server name and the host actually connected to, when they differ.
        var serverName: String?
        var connectHost: String?
    }

    private struct ProxyTarget: Hashable, Sendable {
        var host: String
        var port: Int
        var username: String?
        var password: String?
    }

    private struct State: ~Copyable {
        var variants: [VariantKey: HTTPClient] = [:]
        var isShutDown = false
    }

    public let configuration: Configuration
    private let eventLoopGroup: any EventLoopGroup
    private let requestLogger: Logger
    private let verifyingTLS: TLSConfiguration
    private let nonVerifyingTLS: TLSConfiguration
    private let defaultClient: HTTPClient
    private let state: Mutex<State>

    /// Validates the configuration and loads the CA files (the error names the file).
    public init(
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "kbridge.callout")
    ) throws(CalloutError) {
        guard configuration.maximumResponseBytes >= 0 else {
            throw CalloutError(.other, "callout: maximum response bytes must not be negative")
        }
        guard (1...4096).contains(configuration.maximumConnectionsPerHost) else {
            throw CalloutError(.other, "callout: maximum connections per host must be 1-4096")
        }
        guard configuration.connectTimeout > .zero, configuration.maximumTimeout > .zero,
              configuration.idleConnectionTimeout > .zero
        else {
            throw CalloutError(.other, "callout: connect, maximum and idle timeouts must be positive")
        }
        guard (0...1024).contains(configuration.maximumClientVariants) else {
            throw CalloutError(.other, "callout: maximum client variants must be 0-1024")
        }

        var trusted: [NIOSSLCertificate] = []
        for path in configuration.caCertificateFiles {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(path)
            } catch {
                throw CalloutError(.tls, "callout CA certificate file \(path): cannot be read as PEM certificates (\(error))")
            }
            guard !certificates.isEmpty else {
                throw CalloutError(.tls, "callout CA certificate file \(path): contains no certificate")
            }
            trusted += certificates
        }
        var verifying = TLSConfiguration.makeClientConfiguration()
        if !trusted.isEmpty { verifying.additionalTrustRoots = [.certificates(trusted)] }
        var nonVerifying = verifying
        nonVerifying.certificateVerification = .none

        var requestLogger = logger
        if requestLogger.logLevel < .info { requestLogger.logLevel = .info }

        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.requestLogger = requestLogger
        self.verifyingTLS = verifying
        self.nonVerifyingTLS = nonVerifying
        self.defaultClient = HTTPClient(
            eventLoopGroup: eventLoopGroup,
            configuration: Self.clientConfiguration(configuration, tls: verifying, proxy: nil, dnsOverride: [:]),
            backgroundActivityLogger: requestLogger)
        self.state = Mutex(State())
    }

    /// Closes every pooled connection; in-flight calls fail. Call once, at shutdown.
    public func shutdown() async throws {
        let clients: [HTTPClient] = state.withLock { state in
            guard !state.isShutDown else { return [] }
            state.isShutDown = true
            let variants = Array(state.variants.values)
            state.variants = [:]
            return [defaultClient] + variants
        }
        var firstError: (any Error)?
        for client in clients {
            do { try await client.shutdown() } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }

    /// Runs one call. Any HTTP status is a response; errors are transport-level (see ``CalloutError/Kind``).
    public func execute(_ request: CalloutRequest) async throws(CalloutError) -> CalloutResponse {
        let url = try CalloutURL(parsing: request.url)
        let destination = url.hostAndPort
        guard !Task.isCancelled else { throw CalloutError(.cancelled, destination: destination, "callout to \(destination) cancelled") }
        let (client, httpRequest) = try prepare(request, url: url)
        let budget = effectiveTimeout(request.timeout)
        let deadline = NIODeadline.now() + TimeAmount(budget)
        let maximumBytes = configuration.maximumResponseBytes
        let logger = requestLogger
        let expectsBody = request.method != "HEAD"

        do {
            return try await withThrowingTaskGroup(of: CalloutResponse?.self) { group in
                group.addTask {
                    try await Self.perform(
                        httpRequest, on: client, deadline: deadline, maximumBytes: maximumBytes,
                        expectsBody: expectsBody, destination: destination, logger: logger)
                }
                group.addTask {
                    try await Task.sleep(for: budget)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let response = first else {
                    throw CalloutError(.timeout, destination: destination, "callout to \(destination) timed out after \(Self.milliseconds(budget)) ms")
                }
                return response
            }
        } catch let error as CalloutError {
            throw error
        } catch {
            throw classify(error, destination: destination, budget: budget)
        }
    }

    private func effectiveTimeout(_ requested: Duration) -> Duration {
        requested <= .zero ? configuration.maximumTimeout : min(requested, configuration.maximumTimeout)
    }

    private static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds.multipliedReportingOverflow(by: 1000).partialValue &+ attoseconds / 1_000_000_000_000_000
    }

    private static func perform(
        _ request: HTTPClientRequest, on client: HTTPClient, deadline: NIODeadline, maximumBytes: Int,
        expectsBody: Bool, destination: String, logger: Logger
    ) async throws -> CalloutResponse {
        let response = try await client.execute(request, deadline: deadline, logger: logger)
        let status = Int(response.status.code)
        let headers = response.headers.map { ($0.name, $0.value) }
        let tooLarge = CalloutError(
            .tooLarge, destination: destination,
            "callout to \(destination): response body larger than \(maximumBytes) bytes")
        var body: [UInt8] = []
        if expectsBody, status >= 200, status != 204, status != 304,
           let declared = response.headers.first(name: "content-length"), let length = Int(declared), length >= 0
        {
            guard length <= maximumBytes else { throw tooLarge }
            body.reserveCapacity(length)
        }
        for try await chunk in response.body {
            guard chunk.readableBytes <= maximumBytes - body.count else { throw tooLarge }
            body.append(contentsOf: chunk.readableBytesView)
        }
        return CalloutResponse(status: status, headers: headers, body: body)
    }

    // MARK: - Request preparation

    private static let framingHeaders: Set<String> = ["content-length", "transfer-encoding", "connection"]

    private func prepare(_ request: CalloutRequest, url: CalloutURL) throws(CalloutError) -> (HTTPClient, HTTPClientRequest) {
        let destination = url.hostAndPort
        guard (1...32).contains(request.method.utf8.count), request.method.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            throw CalloutError(.invalidURL, destination: destination, "callout to \(destination): method must be 1-32 upper-case letters")
        }
        guard request.headers.count <= 1000 else {
            throw CalloutError(.invalidURL, destination: destination, "callout to \(destination): more than 1000 request headers")
        }
        var headers = HTTPHeaders()
        var hasHost = false
        for (index, (name, value)) in request.headers.enumerated() {
            guard !name.isEmpty, name.utf8.count <= 256, name.utf8.allSatisfy(Self.isTokenByte) else {
                throw CalloutError(.invalidURL, destination: destination, "callout to \(destination): request header #\(index + 1) has an invalid name")
            }
            guard value.utf8.count <= 65536, value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                throw CalloutError(.invalidURL, destination: destination, "callout to \(destination): request header \(name) has an invalid value (control characters or longer than 64 KiB)")
            }
            let lowered = name.lowercased()
            if Self.framingHeaders.contains(lowered) { continue }
            if lowered == "host" { hasHost = true }
            headers.add(name: name, value: value)
        }

        // Server-name override: the URL handed to AsyncHTTPClient carries the server name (so SNI and certificate
        // verification use it), and a per-pool DNS override connects to the real host.
        var serverName: String?
        if let requested = request.serverName, url.scheme == .https {
            let parsed: CalloutURL.Host
            do {
                parsed = try CalloutURL.parseHost(Substring(requested))
            } catch {
                throw CalloutError(.invalidURL, destination: destination, "callout to \(destination): TLS server name is not a valid host name")
            }
            guard case .name(let name) = parsed else {
                throw CalloutError(.invalidURL, destination: destination, "callout to \(destination): TLS server name must be a DNS name, not an IP address")
            }
            if parsed != url.host { serverName = name }
        }

        let proxy = try proxyTarget(request.proxy, for: url)
        let client: HTTPClient
        let urlText: String
        if proxy == nil, serverName == nil {
            client = defaultClient
            urlText = url.string
        } else {
            let key = VariantKey(proxy: proxy, serverName: serverName, connectHost: serverName.map { _ in url.host.description })
            client = try variantClient(for: key, destination: destination)
            if let serverName {
                urlText = "https://\(serverName):\(url.port)\(url.pathAndQuery)"
                if !hasHost { headers.add(name: "Host", value: url.authority) }
            } else {
                urlText = url.string
            }
        }

        var httpRequest = HTTPClientRequest(url: urlText)
        httpRequest.method = HTTPMethod(rawValue: request.method)
        httpRequest.headers = headers
        if let body = request.body { httpRequest.body = .bytes(ByteBuffer(bytes: body)) }
        if url.scheme == .https, !request.tlsVerify { httpRequest.tlsConfiguration = nonVerifyingTLS }
        return (client, httpRequest)
    }

    /// RFC 9110 `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    private func proxyTarget(_ proxy: CalloutProxy?, for url: CalloutURL) throws(CalloutError) -> ProxyTarget? {
        guard let proxy else { return nil }
        let text = url.scheme == .http ? proxy.httpProxy : proxy.httpsProxy
        guard let text, !text.isEmpty else { return nil }
        let which = url.scheme == .http ? "http_proxy" : "https_proxy"
        let parsed: CalloutURL
        do {
            parsed = try CalloutURL(parsing: text)
        } catch {
            throw CalloutError(.invalidURL, destination: url.hostAndPort, "callout to \(url.hostAndPort): \(which): \(error.message)")
        }
        guard parsed.scheme == .http, parsed.pathAndQuery == "/" else {
            throw CalloutError(.invalidURL, destination: url.hostAndPort, "callout to \(url.hostAndPort): \(which) must be http://host[:port] (TLS to the proxy is not supported)")
        }
        return ProxyTarget(host: parsed.host.description, port: parsed.port, username: proxy.username, password: proxy.password)
    }

    private func variantClient(for key: VariantKey, destination: String) throws(CalloutError) -> HTTPClient {
        let configuration = self.configuration
        let eventLoopGroup = self.eventLoopGroup
        let tls = verifyingTLS
        let logger = requestLogger
        let result: Result<HTTPClient, CalloutError> = state.withLock { state in
            guard !state.isShutDown else {
                return .failure(CalloutError(.other, destination: destination, "callout to \(destination): the callout client is shut down"))
            }
            if let existing = state.variants[key] { return .success(existing) }
            guard state.variants.count < configuration.maximumClientVariants else {
                return .failure(CalloutError(
                    .other, destination: destination,
                    "callout to \(destination): more than \(configuration.maximumClientVariants) distinct proxy / TLS server name settings"))
            }
            var dnsOverride: [String: String] = [:]
            if let serverName = key.serverName, let connectHost = key.connectHost { dnsOverride[serverName] = connectHost }
            let client = HTTPClient(
                eventLoopGroup: eventLoopGroup,
                configuration: Self.clientConfiguration(configuration, tls: tls, proxy: key.proxy, dnsOverride: dnsOverride),
                backgroundActivityLogger: logger)
            state.variants[key] = client
            return .success(client)
        }
        return try result.get()
    }

    private static func clientConfiguration(
        _ configuration: Configuration, tls: TLSConfiguration, proxy: ProxyTarget?, dnsOverride: [String: String]
    ) -> HTTPClient.Configuration {
        var pool = HTTPClient.Configuration.ConnectionPool(
            idleTimeout: TimeAmount(configuration.idleConnectionTimeout),
            concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maximumConnectionsPerHost)
        pool.retryConnectionEstablishment = false
        var client = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: TimeAmount(configuration.connectTimeout), read: nil),
            connectionPool: pool,
            proxy: proxy.map { proxy in
                .server(
                    host: proxy.host, port: proxy.port,
                    authorization: proxy.username.map { .basic(username: $0, password: proxy.password ?? "") })
            },
            ignoreUncleanSSLShutdown: false,
            decompression: .disabled)
        client.dnsOverride = dnsOverride
        return client
    }

    // MARK: - Errors

    private func classify(_ error: any Error, destination: String, budget: Duration) -> CalloutError {
        func make(_ kind: CalloutError.Kind, _ detail: String) -> CalloutError {
            CalloutError(kind, destination: destination, "callout to \(destination) \(detail)")
        }
        if error is CancellationError || Task.isCancelled {
            return make(.cancelled, "cancelled")
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout, .getConnectionFromPoolTimeout:
                return make(.timeout, "timed out after \(Self.milliseconds(budget)) ms")
            case .tlsHandshakeTimeout:
                return make(.tls, "failed: TLS handshake timed out")
            case .connectTimeout:
                return make(.connectFailed, "failed: connect timed out after \(Self.milliseconds(configuration.connectTimeout)) ms")
            case .cancelled:
                return make(.cancelled, "cancelled")
            case .httpProxyHandshakeTimeout, .invalidProxyResponse, .proxyAuthenticationRequired:
                return make(.connectFailed, "failed at the proxy: \(error)")
            case .alreadyShutdown:
                return make(.other, "failed: the callout client is shut down")
            case .invalidURL, .emptyHost, .emptyScheme:
                return make(.invalidURL, "failed: invalid URL")
            default:
                return make(.other, "failed: \(error)")
            }
        }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            let detail = "\(error)"
            if detail.contains("CERTIFICATE_VERIFY_FAILED") {
                return make(.tls, "failed: TLS certificate verification failed (certificate not trusted or not issued for this name)")
            }
            return make(.tls, "failed: TLS: \(detail)")
        }
        if error is NIOConnectionError || error is IOError {
            return make(.connectFailed, "failed: cannot connect: \(error)")
        }
        if case .connectTimeout = error as? ChannelError {
            return make(.connectFailed, "failed: connect timed out")
        }
        return make(.other, "failed: \(error)")
    }
}
