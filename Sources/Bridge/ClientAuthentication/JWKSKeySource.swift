import AsyncHTTPClient
import Callout
import Foundation
import JSON
import JWT
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Why a JWKS URL gave no usable keys: the connection refused, the TLS handshake failed, no answer in time, an error
/// status, too large, or not a set of public keys.
struct JWKSFetchError: Error, Sendable, CustomStringConvertible {
    var reason: String
    /// No connection could be made (refused, a name that does not resolve, closed before answering): worth trying again
    /// while the start-up fetch still has time.
    var isConnectionFailure = false
    var description: String { reason }
}

/// The keys of one `{jwks_url: URL}` of `client_authentication.jwt.keys`: fetched once at start-up (``start`` throws when
/// that fails), then every `jwks_refresh_interval` in the background, and early when a token names a `kid` the set lacks
/// (at most once every `earlyRefreshSpacing`, so that a flood of tokens with made-up kids cannot become a flood of
/// fetches). A failed refresh keeps the last good keys, is logged (URL and reason, never keys) and counted.
///
/// Fetches run on Swift concurrency through AsyncHTTPClient (``httpClient``), never on an event loop; the answer is
/// bounded by the JWT module's key text limit and read by the same parser as a key file. The background task holds the
/// source weakly and ends with ``stop()`` or when the source is released.
final class JWKSKeySource: Sendable {
    /// Early refreshes (a token naming an unknown kid) start at most this often per URL.
    static let defaultEarlyRefreshSpacing: Duration = .seconds(10)
    /// The largest answer read: the JWT module's limit for a key text (a JWKS of a few dozen RSA keys fits easily).
    static var maximumDocumentBytes: Int { JWTVerificationKeys.maximumKeyTextBytes }

    /// The client of the JWKS fetches: AsyncHTTPClient's shared configuration, except that a connection that cannot be
    /// made (refused, a failed TLS handshake) fails the fetch at once with its cause instead of being tried again until
    /// `jwks_timeout` and reported as that deadline; and that only `jwks_timeout` (each request's deadline) bounds
    /// connecting and reading (the connect timeout is the longest `jwks_timeout`). Process-wide and never shut down,
    /// like `HTTPClient.shared`.
    static let httpClient: HTTPClient = {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .seconds(600), read: nil)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    let settings: JWTAuthenticationSettings.KeySetURL
    /// The route's name, for logs and errors.
    let route: String
    private let httpClient: HTTPClient
    private let tls: TLSConfiguration?
    private let earlyRefreshSpacing: Duration
    private let logger: Logger

    private struct State {
        var keys: JWTVerificationKeys
        /// The answer the keys were read from: an unchanged answer is not parsed again.
        var document: String
        var lastFetchStart: ContinuousClock.Instant
        var inFlight: Task<Void, Never>?
        var background: Task<Void, Never>?
        var stopped = false
    }

    private let state: Mutex<State>
    /// Increased (after the keys) whenever the keys change, so that a combined key set knows when to combine again.
    private let keysGeneration = Atomic<UInt64>(0)
    /// Fetches after start-up that failed (the last good keys stayed in use), for `/metrics`.
    let refreshFailures = Atomic<Int>(0)
    /// Fetches started, the one at start-up included.
    let fetchesStarted = Atomic<Int>(1)

    private init(settings: JWTAuthenticationSettings.KeySetURL, route: String, httpClient: HTTPClient, tls: TLSConfiguration?,
                 earlyRefreshSpacing: Duration, logger: Logger, keys: JWTVerificationKeys, document: String, fetchStarted: ContinuousClock.Instant) {
        self.settings = settings
        self.route = route
        self.httpClient = httpClient
        self.tls = tls
        self.earlyRefreshSpacing = earlyRefreshSpacing
        self.logger = logger
        state = Mutex(State(keys: keys, document: document, lastFetchStart: fetchStarted))
    }

    deinit {
        state.withLock { $0.background }?.cancel()
    }

    /// Fetches the set and starts the background refresh.
    /// - Throws: ``ConfigurationError`` at the `jwks_url` key's place, naming the route, the URL and the reason, when the
    ///   first fetch fails: kbridge does not start without the keys.
    static func start(settings: JWTAuthenticationSettings.KeySetURL, route: String, httpClient: HTTPClient = JWKSKeySource.httpClient,
                      earlyRefreshSpacing: Duration = defaultEarlyRefreshSpacing, logger: Logger) async throws(ConfigurationError) -> JWKSKeySource {
        let tls = tlsConfiguration(settings)
        let started = ContinuousClock.now
        let document: String
        let keys: JWTVerificationKeys
        do {
            document = try await startUpFetch(settings.url, httpClient: httpClient, tls: tls, timeout: settings.timeout, started: started)
            keys = try await read(document)
        } catch {
            throw ConfigurationError(issues: [settings.origin.issue(
                "route '\(route)': cannot fetch the JWKS from \(settings.url) at start-up: \(error.reason) (kbridge does not start without the route's keys)")])
        }
        let source = JWKSKeySource(settings: settings, route: route, httpClient: httpClient, tls: tls, earlyRefreshSpacing: earlyRefreshSpacing,
                                   logger: logger, keys: keys, document: document, fetchStarted: started)
        logger.info("JWKS fetched", metadata: ["route": "\(route)", "jwks_url": "\(settings.url)", "keys": "\(keys.count)"])
        source.startBackgroundRefresh()
        return source
    }

    /// The keys of the last good answer.
    var keys: JWTVerificationKeys { state.withLock { $0.keys } }

    /// Changes whenever ``keys`` does (read it before the keys).
    var generation: UInt64 { keysGeneration.load(ordering: .acquiring) }

    /// A token named a kid the keys lack: the refresh to wait for (the one in flight, or a new one when the last fetch
    /// started at least `earlyRefreshSpacing` ago), or `nil` when it is too soon (the token is judged on the keys as they are).
    func refreshForUnknownKeyID() -> Task<Void, Never>? {
        state.withLock { state in
            guard !state.stopped else { return nil }
            if let inFlight = state.inFlight { return inFlight }
            guard ContinuousClock.now - state.lastFetchStart >= earlyRefreshSpacing else { return nil }
            return startRefresh(&state, trigger: "unknown kid")
        }
    }

    /// Fetches now (or joins the fetch in flight) and returns when it is over.
    func refresh() async {
        let task = state.withLock { state -> Task<Void, Never>? in
            guard !state.stopped else { return nil }
            return state.inFlight ?? startRefresh(&state, trigger: "scheduled")
        }
        await task?.value
    }

    /// Stops the background refresh and a fetch in flight; the keys stay usable.
    func stop() {
        let tasks = state.withLock { state in
            state.stopped = true
            defer { (state.background, state.inFlight) = (nil, nil) }
            return [state.background, state.inFlight]
        }
        for task in tasks { task?.cancel() }
    }

    private func startBackgroundRefresh() {
        let interval = settings.refreshInterval
        let task = Task { [weak self] in
            while true {
                do { try await Task.sleep(for: interval) } catch { return }
                guard let source = self else { return }
                await source.refresh()
            }
        }
        let stopped = state.withLock { state in
            if !state.stopped { state.background = task }
            return state.stopped
        }
        if stopped { task.cancel() }
    }

    private func startRefresh(_ state: inout State, trigger: String) -> Task<Void, Never> {
        state.lastFetchStart = .now
        fetchesStarted.add(1, ordering: .relaxed)
        let previous = state.document
        // Holds the source until the fetch is over (bounded by jwks_timeout).
        let task = Task { await self.performRefresh(previous: previous, trigger: trigger) }
        state.inFlight = task
        return task
    }

    private func performRefresh(previous: String, trigger: String) async {
        do {
            let document = try await Self.fetch(settings.url, httpClient: httpClient, tls: tls, timeout: settings.timeout)
            // An unchanged answer is not parsed again.
            var keys: JWTVerificationKeys?
            if document != previous { keys = try await Self.read(document) }
            let stopped = state.withLock { state in
                if let keys, !state.stopped {
                    state.keys = keys
                    state.document = document
                    keysGeneration.add(1, ordering: .releasing)
                }
                state.inFlight = nil
                return state.stopped
            }
            guard !stopped else { return }
            if let keys {
                logger.info("JWKS changed", metadata: ["route": "\(route)", "jwks_url": "\(settings.url)", "keys": "\(keys.count)", "trigger": "\(trigger)"])
            } else {
                logger.debug("JWKS unchanged", metadata: ["route": "\(route)", "jwks_url": "\(settings.url)", "trigger": "\(trigger)"])
            }
        } catch {
            let stopped = state.withLock { state in
                state.inFlight = nil
                return state.stopped
            }
            // A fetch cancelled by stop() is no failure.
            guard !stopped, !Task.isCancelled else { return }
            refreshFailures.add(1, ordering: .relaxed)
            logger.warning("cannot refresh the JWKS; the last good keys stay in use", metadata: [
                "route": "\(route)", "jwks_url": "\(settings.url)", "reason": "\(error.reason)", "trigger": "\(trigger)",
            ])
        }
    }

    // MARK: - Fetching

    static func tlsConfiguration(_ settings: JWTAuthenticationSettings.KeySetURL) -> TLSConfiguration? {
        guard !settings.sslVerify || settings.caFile != nil else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = settings.sslVerify ? .fullVerification : .none
        if let caFile = settings.caFile { configuration.trustRoots = .file(caFile) }
        return configuration
    }

    /// The keys of an answer: a JWK or JWK Set of public keys, read by the parser of key files.
    static func read(_ document: String) async throws(JWKSFetchError) -> JWTVerificationKeys {
        // Anything else would be read as an HMAC secret (an HTML error page answered 200, say).
        guard document.drop(while: \.isWhitespace).hasPrefix("{") else {
            throw JWKSFetchError(reason: "the answer is not a JWK Set (a JSON object)")
        }
        do {
            if try JWTVerificationKeys.keyTypes(of: document).contains(.hmac) {
                throw JWKSFetchError(reason: "the set holds a symmetric key (kty 'oct'): a JWKS URL serves public keys only")
            }
            return try await JWTVerificationKeys(parsing: document)
        } catch let error as JWKSFetchError {
            throw error
        } catch {
            throw JWKSFetchError(reason: "\(error)")
        }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds.multipliedReportingOverflow(by: 1000).partialValue &+ attoseconds / 1_000_000_000_000_000
    }

    /// Refuses an answer that came, through redirects, over plain `http://` from another machine: the rule `jwks_url`
    /// itself follows at start-up (AsyncHTTPClient follows redirects, `https` to `http` too).
    static func checkRedirects(_ urls: [String]) throws(JWKSFetchError) {
        for text in urls {
            guard let url = try? CalloutURL(parsing: text) else { throw JWKSFetchError(reason: "redirected to an unusable URL") }
            if url.scheme == .http, !url.host.isLoopback {
                throw JWKSFetchError(reason: "redirected to plain http:// on \(url.hostAndPort): refused (the keys could be swapped on the way)")
            }
        }
    }

    /// The start-up fetch: a key server that cannot be connected to yet (an identity provider starting beside kbridge)
    /// is tried again, 100 ms after the first attempt and twice as long after each (at most 1 s), until `timeout`
    /// after `started`; then its last cause is reported. Other failures (TLS, the server's answer) are reported at once.
    static func startUpFetch(
        _ url: String, httpClient: HTTPClient, tls: TLSConfiguration?, timeout: Duration, started: ContinuousClock.Instant
    ) async throws(JWKSFetchError) -> String {
        let deadline = started + timeout
        var pause = Duration.milliseconds(100)
        while true {
            do {
                return try await fetch(url, httpClient: httpClient, tls: tls, timeout: timeout, until: deadline)
            } catch where error.isConnectionFailure {
                guard ContinuousClock.now + pause < deadline, !Task.isCancelled else {
                    var last = error
                    last.reason += " (tried for \(milliseconds(ContinuousClock.now - started)) ms, until jwks_timeout)"
                    throw last
                }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(1))
            }
        }
    }

    /// The body of a `GET url` answered 200, within `timeout` (connecting and reading included) and
    /// ``maximumDocumentBytes``; a failure names its cause (see ``reason(_:url:timeout:)``).
    /// - Parameter deadline: an earlier end than `timeout` from now (the start-up fetch's attempts after the first).
    static func fetch(
        _ url: String, httpClient: HTTPClient, tls: TLSConfiguration?, timeout: Duration, until deadline: ContinuousClock.Instant? = nil
    ) async throws(JWKSFetchError) -> String {
        let budget = deadline.map { max($0 - .now, .milliseconds(1)) } ?? timeout
        let request = {
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            request.headers.add(name: "accept", value: "application/jwk-set+json, application/json")
            request.tlsConfiguration = tls
            return request
        }()
        let maximumBytes = maximumDocumentBytes
        do {
            // The deadline bounds the answer's head (with ``httpClient``, a connection that cannot be made fails at once);
            // the race with a sleep a little longer bounds the body as well.
            return try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    let response = try await httpClient.execute(request, deadline: .now() + TimeAmount(budget))
                    try checkRedirects(response.history.map(\.request.url))
                    guard response.status == .ok else {
                        throw JWKSFetchError(reason: "the server answered \(response.status.code) \(response.status.reasonPhrase.prefix(100))")
                    }
                    if let declared = response.headers.first(name: "content-length").flatMap({ Int($0) }), declared > maximumBytes {
                        throw JWKSFetchError(reason: "the answer is larger than \(maximumBytes) bytes (Content-Length \(declared))")
                    }
                    let body: ByteBuffer
                    do {
                        body = try await response.body.collect(upTo: maximumBytes)
                    } catch is NIOTooManyBytesError {
                        throw JWKSFetchError(reason: "the answer is larger than \(maximumBytes) bytes")
                    }
                    guard body.withUnsafeReadableBytes({ UTF8Validation.isValid($0) }) else {
                        throw JWKSFetchError(reason: "the answer is not UTF-8 text")
                    }
                    return String(decoding: body.readableBytesView, as: UTF8.self)
                }
                group.addTask {
                    try await Task.sleep(for: budget + .milliseconds(250))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let document = first else {
                    throw JWKSFetchError(reason: "no answer within \(Self.milliseconds(timeout)) ms (jwks_timeout)")
                }
                return document
            }
        } catch let error as JWKSFetchError {
            throw error
        } catch {
            throw JWKSFetchError(reason: reason(error, url: url, timeout: timeout), isConnectionFailure: isConnectionFailure(error))
        }
    }

    /// Whether `error` is about making the connection (see ``JWKSFetchError/isConnectionFailure``).
    static func isConnectionFailure(_ error: any Error) -> Bool {
        switch error {
        case let error as HTTPClientError: error == .remoteConnectionClosed
        case is NIOConnectionError, is IOError: true
        default: false
        }
    }

    /// Why a fetch of `url` got no answer, by its cause: no answer within `timeout`, the connection refused, a host name
    /// that does not resolve, a failed TLS handshake (with the TLS library's reason), the connection closed early.
    static func reason(_ error: any Error, url: String, timeout: Duration) -> String {
        let server = (try? CalloutURL(parsing: url))?.hostAndPort ?? url
        switch error {
        case let error as HTTPClientError where [.deadlineExceeded, .connectTimeout, .readTimeout].contains(error):
            return "no answer within \(milliseconds(timeout)) ms (jwks_timeout)"
        case let error as HTTPClientError where error == .tlsHandshakeTimeout:
            return "TLS handshake with \(server) failed: it did not finish in time"
        case let error as HTTPClientError where error == .remoteConnectionClosed:
            return "\(server) closed the connection before answering"
        case let error as NIOConnectionError:
            if let resolution = error.dnsAError ?? error.dnsAAAAError {
                return "cannot resolve \(error.host): \(String(describing: resolution).prefix(200))"
            }
            let attempts = error.connectionErrors.map(\.error)
            if !attempts.isEmpty, attempts.allSatisfy(isConnectionRefused) { return "connection refused by \(error.host):\(error.port)" }
            return "cannot connect to \(error.host):\(error.port): \(attempts.first.map { String(describing: $0).prefix(200) } ?? "no address")"
        case let error as IOError:
            if isConnectionRefused(error) { return "connection refused by \(server)" }
            return "cannot connect to \(server): \(String(describing: error).prefix(200))"
        case is NIOSSLError, is NIOSSLExtraError:
            let detail = tlsReason(error)
            guard !detail.contains("CERTIFICATE_VERIFY_FAILED") else {
                return "TLS handshake with \(server) failed: the server's certificate is not trusted (\(detail); jwks_ca_file names the CAs to trust)"
            }
            return "TLS handshake with \(server) failed: \(detail)"
        default:
            return "unreachable: \(String(describing: error).prefix(300))"
        }
    }

    /// The TLS library's reasons for a failed handshake without their source locations (`CERTIFICATE_VERIFY_FAILED`,
    /// say); another TLS error as it describes itself.
    private static func tlsReason(_ error: any Error) -> String {
        guard case .handshakeFailed(.sslError(let stack))? = error as? NIOSSLError, !stack.isEmpty else {
            return String(String(describing: error).prefix(300))
        }
        // Each reads `Error: CODE error:HEX:LIBRARY:FUNCTION:REASON at FILE:LINE`: the reason is the last field before ` at `.
        return stack.prefix(4).map { failure in
            let text = failure.description
            let message = text.range(of: " at ", options: .backwards).map { String(text[..<$0.lowerBound]) } ?? text
            return String((message.split(separator: ":").last ?? Substring(message)).trimmingCharacters(in: .whitespaces).prefix(100))
        }.joined(separator: ", ")
    }

    private static func isConnectionRefused(_ error: any Error) -> Bool {
        (error as? IOError)?.errnoCode == ECONNREFUSED
    }
}

/// A route's JWT verification keys: the fixed ones (files and secrets, read at start-up) and those of its JWKS URLs,
/// combined again only when a URL's keys change.
final class JWTKeyRing: Sendable {
    let fixed: JWTVerificationKeys
    let sources: [JWKSKeySource]
    private let combined: Mutex<(generation: UInt64, keys: JWTVerificationKeys)>

    init(fixed: JWTVerificationKeys, sources: [JWKSKeySource]) {
        self.fixed = fixed
        self.sources = sources
        var generation: UInt64 = 0
        for source in sources { generation &+= source.generation }
        combined = Mutex((generation, JWTVerificationKeys(combining: [fixed] + sources.map(\.keys))))
    }

    /// The keys in use now.
    var current: JWTVerificationKeys {
        guard !sources.isEmpty else { return fixed }
        // Each source's generation only grows, so their sum changes whenever one of them does.
        var generation: UInt64 = 0
        for source in sources { generation &+= source.generation }
        return combined.withLock { combined in
            guard combined.generation != generation else { return combined.keys }
            combined = (generation, JWTVerificationKeys(combining: [fixed] + sources.map(\.keys)))
            return combined.keys
        }
    }

    /// When `token` failed verification with `keys` for want of a key (`error`) and names a kid none of them has: what
    /// to wait for before verifying it again (the JWKS URLs' early refreshes), else `nil`.
    func earlyRefresh(for token: String, failedWith error: JWTError, keys: JWTVerificationKeys) -> (@Sendable () async -> Void)? {
        guard !sources.isEmpty else { return nil }
        switch error {
        case .noMatchingKey, .signatureInvalid: break
        default: return nil
        }
        guard case .object(let header)? = try? JWTToken.decode(token).header, case .string(let kid)? = header["kid"],
              !keys.containsKey(withID: kid) else { return nil }
        let refreshes = sources.compactMap { $0.refreshForUnknownKeyID() }
        guard !refreshes.isEmpty else { return nil }
        return {
            for refresh in refreshes { await refresh.value }
        }
    }

    func stop() {
        for source in sources { source.stop() }
    }
}

extension CalloutURL.Host {
    /// Whether the host is this machine by its name or address: `localhost`, 127.0.0.0/8 or `::1`.
    var isLoopback: Bool {
        switch self {
        case .name(let name): name == "localhost"
        case .ipv4(let address): address >> 24 == 127
        case .ipv6(let bytes): bytes == [UInt8](repeating: 0, count: 15) + [1]
        }
    }
}
