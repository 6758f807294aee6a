import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// An OAuth2 client-credentials client on async-http-client: ``token()`` serves a cached token and fetches a new
/// one (once, however many callers wait) ``refreshMargin`` before it expires; ``fetch()`` always asks the endpoint
/// (for callers that schedule refreshes themselves, such as librdkafka's OAUTHBEARER refresh).
public actor OAuth2TokenSource {
    /// The lifetime assumed when the endpoint sends no `expires_in`.
    public static let defaultLifetime: Duration = .seconds(300)
    /// The largest token answer read; a larger one is refused, not buffered.
    public static let maximumAnswerSize = 1 << 20
    /// The longest `error_description` kept from an error answer (it ends up in logs and HTTP answers).
    static let maximumDescriptionLength = 300

    public nonisolated let credentials: OAuth2ClientCredentials
    private let httpClient: HTTPClient
    private let tls: TLSConfiguration?
    private let timeout: Duration
    private let refreshMargin: Duration
    private var current: (token: OAuth2Token, refreshAt: ContinuousClock.Instant)?
    private var inFlight: Task<OAuth2Token, any Error>?

    /// - Parameters:
    ///   - tls: the TLS settings towards an `https` endpoint (`nil`: the client's default, with verification).
    ///   - timeout: the deadline of one token request, connecting included.
    ///   - refreshMargin: how long before expiry ``token()`` fetches a new token (at least 1 s after it arrived).
    public init(credentials: OAuth2ClientCredentials, httpClient: HTTPClient, tls: TLSConfiguration?, timeout: Duration,
                refreshMargin: Duration = .seconds(30)) {
        self.credentials = credentials
        self.httpClient = httpClient
        self.tls = tls
        self.timeout = timeout
        self.refreshMargin = refreshMargin
    }

    /// A TLS configuration for the endpoint that verifies certificates or, with `verify` false, does not.
    public static func tlsConfiguration(verify: Bool) -> TLSConfiguration? {
        guard !verify else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        return configuration
    }

    /// The cached token's value, or a new one when it is within ``refreshMargin`` of expiring.
    public func token() async throws(OAuth2Error) -> String {
        if let current, ContinuousClock.now < current.refreshAt { return current.token.value }
        let task = inFlight ?? Task { try await self.request() }
        inFlight = task
        do {
            let token = try await task.value
            inFlight = nil
            current = (token, .now + max(.seconds(1), token.lifetime - refreshMargin))
            return token.value
        } catch {
            inFlight = nil
            throw error as? OAuth2Error ?? OAuth2Error(kind: .unreachable, endpoint: credentials.tokenEndpoint, detail: "\(error)")
        }
    }

    /// A new token from the endpoint, never the cached one.
    public func fetch() async throws(OAuth2Error) -> OAuth2Token {
        try await request()
    }

    private struct TokenAnswer: Decodable {
        var access_token: String
        var expires_in: Double?
    }

    private struct ErrorAnswer: Decodable {
        var error: String?
        var error_description: String?
    }

    private func request() async throws(OAuth2Error) -> OAuth2Token {
        let endpoint = credentials.tokenEndpoint
        var form = "grant_type=client_credentials&client_id=\(Self.formEscape(credentials.clientID.current()))"
            + "&client_secret=\(Self.formEscape(credentials.clientSecret.current()))"
        if !credentials.scopes.isEmpty { form += "&scope=\(Self.formEscape(credentials.scopes.joined(separator: " ")))" }
        for audience in credentials.audience { form += "&audience=\(Self.formEscape(audience))" }
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "accept", value: "application/json")
        request.tlsConfiguration = tls
        request.body = .bytes(ByteBuffer(string: form))
        let status: Int
        let body: ByteBuffer
        do {
            let response = try await httpClient.execute(request, timeout: .init(timeout))
            status = Int(response.status.code)
            body = try await response.body.collect(upTo: Self.maximumAnswerSize)
        } catch is NIOTooManyBytesError {
            throw OAuth2Error(kind: .invalidAnswer, endpoint: endpoint, detail: "the answer is larger than \(Self.maximumAnswerSize >> 20) MiB")
        } catch {
            throw OAuth2Error(kind: .unreachable, endpoint: endpoint, detail: "\(error)")
        }
        let received = Date()
        let data = Data(body.readableBytesView)
        guard status == 200 else {
            let answer = try? JSONDecoder().decode(ErrorAnswer.self, from: data)
            throw OAuth2Error(kind: .refused, endpoint: endpoint, status: status, oauthError: answer?.error.map(Self.printable),
                              errorDescription: answer?.error_description.map(Self.printable))
        }
        let answer: TokenAnswer
        do {
            answer = try JSONDecoder().decode(TokenAnswer.self, from: data)
        } catch {
            throw OAuth2Error(kind: .invalidAnswer, endpoint: endpoint, status: status, detail: "not a token answer")
        }
        guard !answer.access_token.isEmpty else {
            throw OAuth2Error(kind: .invalidAnswer, endpoint: endpoint, status: status, detail: "empty access_token")
        }
        // A negative, absurd or missing expires_in: clamped to [1 s, 1 year] or the default.
        let lifetime: Duration = answer.expires_in.map { seconds in
            guard seconds.isFinite else { return Self.defaultLifetime }
            return .milliseconds(Int64(min(max(seconds, 1), 365 * 24 * 3600) * 1000))
        } ?? Self.defaultLifetime
        return OAuth2Token(value: answer.access_token, lifetime: lifetime, received: received)
    }

    /// Text from the endpoint made safe for logs and answers: control characters dropped, length bounded.
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(maximumDescriptionLength).map(Character.init))
    }

    private static func formEscape(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
