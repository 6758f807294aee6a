import AsyncHTTPClient
import Crypto
import Foundation
import JSON
import JWT
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import PasswordHash
import Synchronization

/// Checks a request's credential against a route's `client_authentication`: an API key (header or query argument), HTTP
/// Basic (a password hash, verified on NIO's thread pool, successes remembered briefly) or a JWT bearer token. Credentials
/// are never logged nor put in an answer; API keys and remembered passwords are compared through their SHA-256.
final class ClientAuthenticator: Sendable {
    enum Method: String, Sendable, CaseIterable {
        case apiKey = "api_key"
        case basic
        case jwt
    }

    /// Why a request was refused (the `reason` label of `kbridge_client_auth_failures_total`).
    enum FailureReason: String, Sendable, CaseIterable {
        case missingCredentials = "missing_credentials"
        case invalidAPIKey = "invalid_api_key"
        case invalidBasicCredentials = "invalid_basic_credentials"
        case invalidToken = "invalid_token"
        case expiredToken = "expired_token"
        case consumerNotAllowed = "consumer_not_allowed"
        case verificationBusy = "verification_busy"
    }

    enum Verdict: Sendable {
        case authenticated(consumer: String, method: Method)
        case refused(IngestResponse, FailureReason)
    }

    enum Outcome {
        case done(Verdict)
        /// A password hash is being verified on the thread pool.
        case pending(EventLoopFuture<Verdict>)
    }

    let settings: ClientAuthenticationSettings
    /// SHA-256 of each API key → its consumer.
    private let apiKeys: [SHA256Digest: String]
    private let users: [String: BasicAuthenticationSettings.User]
    /// Verified when the username is unknown, so that an unknown user costs as long as a wrong password.
    private let decoyHash: PasswordHash?
    private let verifiedCredentials: VerifiedCredentialCache?
    private let pendingVerifications = Atomic<Int>(0)
    /// Password hashes verified (cache misses), for `/metrics`.
    let passwordVerifications = Atomic<Int>(0)
    /// The JWT keys: files and secrets, and the JWKS URLs' keys as last fetched.
    let jwtKeys: JWTKeyRing?
    /// Bearer tokens waiting for an early JWKS refresh (their kid was unknown).
    private let tokensAwaitingKeys = Atomic<Int>(0)
    private let jwtOptions: JWTVerificationOptions
    private let allowedConsumers: Set<String>?
    private let challenges: [(String, String)]
    private let threadPool: NIOThreadPool

    /// The longest `Authorization` header or API key read; longer ones are refused without decoding.
    static let maximumCredentialBytes = JWTToken.maximumTokenBytes + 256
    /// The most bearer tokens waiting at once for an early JWKS refresh; more are judged on the keys as they are.
    static let maximumTokensAwaitingKeys = 1024

    /// - Parameters:
    ///   - route: the route's name, for logs and the start-up error of a JWKS URL.
    ///   - httpClient: fetches the JWKS URLs (by default ``JWKSKeySource/httpClient``: a connection that cannot be made
    ///     fails the fetch at once, named by its cause).
    ///   - jwksEarlyRefreshSpacing: how often a token naming an unknown kid may make a JWKS URL be fetched early.
    /// - Throws: ``ConfigurationError`` when a JWKS URL cannot be fetched at start-up.
    init(settings: ClientAuthenticationSettings, route: String = "", threadPool: NIOThreadPool = .singleton,
         httpClient: HTTPClient = JWKSKeySource.httpClient,
         jwksEarlyRefreshSpacing: Duration = JWKSKeySource.defaultEarlyRefreshSpacing, logger: Logger = Logger(label: "kbridge")) async throws {
        self.settings = settings
        self.threadPool = threadPool
        var keys: [SHA256Digest: String] = [:]
        for key in settings.apiKey?.keys ?? [] { keys[SHA256.hash(data: Array(key.key.value.utf8))] = key.consumer }
        apiKeys = keys
        users = Dictionary((settings.basic?.users ?? []).map { ($0.username, $0) }, uniquingKeysWith: { first, _ in first })
        decoyHash = settings.basic?.users.first?.passwordHash
        if let basic = settings.basic, basic.cacheTTL > .zero {
            verifiedCredentials = VerifiedCredentialCache(capacity: basic.cacheSize, timeToLive: .nanoseconds(Int64(clamping: basic.cacheTTL.nanoseconds)))
        } else {
            verifiedCredentials = nil
        }
        if let jwt = settings.jwt {
            let fixed = try await JWTVerificationKeys(parsingAll: jwt.keys.map(\.text.value))
            var sources: [JWKSKeySource] = []
            for keySet in jwt.keySetURLs {
                do {
                    sources.append(try await JWKSKeySource.start(settings: keySet, route: route, httpClient: httpClient,
                                                                 earlyRefreshSpacing: jwksEarlyRefreshSpacing, logger: logger))
                } catch {
                    for source in sources { source.stop() }
                    throw error
                }
            }
            jwtKeys = JWTKeyRing(fixed: fixed, sources: sources)
            var options = JWTVerificationOptions()
            options.allowedAlgorithms = jwt.algorithms
            options.issuers = jwt.issuers
            options.audiences = jwt.audiences
            options.requiredClaims = jwt.requiredClaims
            options.leeway = jwt.leeway
            jwtOptions = options
        } else {
            jwtKeys = nil
            jwtOptions = JWTVerificationOptions()
        }
        allowedConsumers = settings.allowedConsumers.isEmpty ? nil : Set(settings.allowedConsumers)
        var challenges: [(String, String)] = []
        let realm = settings.realm
        if settings.apiKey != nil { challenges.append(("www-authenticate", "Key realm=\"\(realm)\"")) }
        if settings.basic != nil { challenges.append(("www-authenticate", "Basic realm=\"\(realm)\", charset=\"UTF-8\"")) }
        if settings.jwt != nil { challenges.append(("www-authenticate", "Bearer realm=\"\(realm)\"")) }
        self.challenges = challenges
    }

    /// Authenticates `request`; with `hide_credentials`, removes the credential it used from it.
    func authenticate(_ request: inout IngestRequest, eventLoop: any EventLoop) -> Outcome {
        if let apiKey = settings.apiKey, let presented = Self.apiKey(in: request, settings: apiKey) {
            if settings.hideCredentials { Self.removeAPIKey(from: &request, settings: apiKey) }
            guard presented.utf8.count <= Self.maximumCredentialBytes, let consumer = apiKeys[SHA256.hash(data: Array(presented.utf8))] else {
                return .done(refusal(.invalidAPIKey, code: "invalid_credentials", "invalid API key", challenge: "Key"))
            }
            return .done(admit(consumer, .apiKey))
        }
        guard let authorization = request.headers.first(name: "authorization") else {
            return .done(.refused(.error(.unauthorized, code: "authentication_required",
                                         "this route needs credentials (\(enabledMethods))", headers: challenges), .missingCredentials))
        }
        let scheme = authorization.prefix { $0 != " " }.lowercased()
        if scheme == "basic", settings.basic != nil {
            if settings.hideCredentials { request.headers.remove(name: "authorization") }
            return basic(authorization, eventLoop: eventLoop)
        }
        if scheme == "bearer", settings.jwt != nil {
            if settings.hideCredentials { request.headers.remove(name: "authorization") }
            return bearer(authorization, eventLoop: eventLoop)
        }
        return .done(.refused(.error(.unauthorized, code: "authentication_required",
                                     "the Authorization header's scheme is not one this route accepts (\(enabledMethods))",
                                     headers: challenges), .missingCredentials))
    }

    private var enabledMethods: String {
        var names: [String] = []
        if let apiKey = settings.apiKey {
            let places = (apiKey.keyInHeader ? ["header"] : []) + (apiKey.keyInQuery ? ["query argument"] : [])
            names.append("an API key in the \(places.joined(separator: " or ")) \(apiKey.keyNames.joined(separator: ", "))")
        }
        if settings.basic != nil { names.append("HTTP Basic") }
        if settings.jwt != nil { names.append("a Bearer JWT") }
        return names.joined(separator: ", or ")
    }

    private func admit(_ consumer: String, _ method: Method) -> Verdict {
        if let allowedConsumers, !allowedConsumers.contains(consumer) {
            return .refused(.error(.forbidden, code: "consumer_not_allowed", "consumer '\(consumer)' may not send to this route"), .consumerNotAllowed)
        }
        return .authenticated(consumer: consumer, method: method)
    }

    private func refusal(_ reason: FailureReason, code: String, _ message: String, challenge scheme: String, error: String? = nil) -> Verdict {
        var challenge = "\(scheme) realm=\"\(settings.realm)\""
        if scheme == "Basic" { challenge += ", charset=\"UTF-8\"" }
        if let error { challenge += ", error=\"invalid_token\", error_description=\"\(error)\"" }
        return .refused(.error(.unauthorized, code: code, message, headers: [("www-authenticate", challenge)]), reason)
    }

    // MARK: - API keys

    private static func apiKey(in request: IngestRequest, settings: APIKeySettings) -> String? {
        if settings.keyInHeader {
            for name in settings.keyNames {
                if let value = request.headers.first(name: name) { return value }
            }
        }
        if settings.keyInQuery, let query = request.query, !query.isEmpty,
           let arguments = try? FormArguments.parse(query, maximumCount: request.limits.maximumFormFields) {
            for name in settings.keyNames {
                if let value = arguments.first(name) { return value }
            }
        }
        return nil
    }

    private static func removeAPIKey(from request: inout IngestRequest, settings: APIKeySettings) {
        if settings.keyInHeader {
            for name in settings.keyNames { request.headers.remove(name: name) }
        }
        if settings.keyInQuery, let query = request.query {
            let names = Set(settings.keyNames)
            let kept = query.split(separator: "&", omittingEmptySubsequences: false).filter { argument in
                let name = argument.prefix { $0 != "=" }
                guard let decoded = try? FormArguments.parse(Substring(name + "="), maximumCount: 1).entries.first?.name else { return true }
                return !names.contains(decoded)
            }
            let path = request.path
            request.uri = kept.isEmpty ? String(path) : "\(path)?\(kept.joined(separator: "&"))"
        }
    }

    // MARK: - HTTP Basic

    private func basic(_ authorization: String, eventLoop: any EventLoop) -> Outcome {
        guard let basicSettings = settings.basic else { return .done(refusal(.invalidBasicCredentials, code: "invalid_credentials", "", challenge: "Basic")) }
        let invalid = refusal(.invalidBasicCredentials, code: "invalid_credentials", "invalid username or password", challenge: "Basic")
        guard authorization.utf8.count <= Self.maximumCredentialBytes,
              let decoded = Data(base64Encoded: String(authorization.dropFirst(5).drop { $0 == " " })),
              let colon = decoded.firstIndex(of: UInt8(ascii: ":")),
              let username = String(bytes: decoded[..<colon], encoding: .utf8) else {
            return .done(refusal(.invalidBasicCredentials, code: "invalid_credentials",
                                 "the Basic credentials are not base64 of 'username:password'", challenge: "Basic"))
        }
        let password = Array(decoded[decoded.index(after: colon)...])
        let user = users[username]
        let digest = SHA256.hash(data: Array(decoded))
        if let user, let verifiedCredentials, verifiedCredentials.contains(digest, consumer: user.consumer) {
            return .done(admit(user.consumer, .basic))
        }
        guard let hash = user?.passwordHash ?? decoyHash else { return .done(invalid) }
        // Verification takes milliseconds (argon2, bcrypt, yescrypt): on the thread pool, a bounded number at a time.
        if pendingVerifications.add(1, ordering: .relaxed).newValue > basicSettings.maxPendingVerifications {
            pendingVerifications.subtract(1, ordering: .relaxed)
            return .done(.refused(.error(.serviceUnavailable, code: "authentication_busy",
                                         "too many password verifications in progress; retry later", headers: [("retry-after", "1")]),
                                  .verificationBusy))
        }
        passwordVerifications.add(1, ordering: .relaxed)
        let future = threadPool.runIfActive(eventLoop: eventLoop) { hash.verify(password) }
        return .pending(future.map { matches in
            self.pendingVerifications.subtract(1, ordering: .relaxed)
            guard matches, let user else { return invalid }
            self.verifiedCredentials?.insert(digest, consumer: user.consumer)
            return self.admit(user.consumer, .basic)
        }.recover { _ in
            self.pendingVerifications.subtract(1, ordering: .relaxed)
            return .refused(.error(.serviceUnavailable, code: "authentication_busy", "kbridge is shutting down", headers: [("retry-after", "1")]),
                            .verificationBusy)
        })
    }

    // MARK: - JWT

    private func bearer(_ authorization: String, eventLoop: any EventLoop) -> Outcome {
        guard let jwtKeys else { return .done(refusal(.invalidToken, code: "invalid_token", "", challenge: "Bearer")) }
        let keys = jwtKeys.current
        let (verdict, failure) = bearerVerdict(authorization, keys: keys)
        // A kid none of the keys has: the JWKS URLs may have a new key (rotation). Fetched early (rate-limited), then
        // the token is verified again; off the event loop, a bounded number of tokens waiting at once.
        guard let failure, let refresh = jwtKeys.earlyRefresh(for: authorization, failedWith: failure, keys: keys) else { return .done(verdict) }
        guard tokensAwaitingKeys.add(1, ordering: .relaxed).newValue <= Self.maximumTokensAwaitingKeys else {
            tokensAwaitingKeys.subtract(1, ordering: .relaxed)
            return .done(verdict)
        }
        let promise = eventLoop.makePromise(of: Verdict.self)
        Task {
            await refresh()
            self.tokensAwaitingKeys.subtract(1, ordering: .relaxed)
            promise.succeed(self.bearerVerdict(authorization, keys: jwtKeys.current).verdict)
        }
        return .pending(promise.futureResult)
    }

    /// The verdict on a bearer token with `keys`, and the verification error when the token was refused for it.
    private func bearerVerdict(_ authorization: String, keys: JWTVerificationKeys) -> (verdict: Verdict, failure: JWTError?) {
        guard let jwt = settings.jwt else { return (refusal(.invalidToken, code: "invalid_token", "", challenge: "Bearer"), nil) }
        let claims: JSONValue
        do {
            claims = try keys.verify(authorization, options: jwtOptions).claims
        } catch {
            if case .expired = error {
                return (refusal(.expiredToken, code: "token_expired", "the token has expired (\(error))", challenge: "Bearer",
                                error: "the token has expired"), error)
            }
            return (refusal(.invalidToken, code: "invalid_token", "invalid token: \(error)", challenge: "Bearer", error: "the token is not valid"), error)
        }
        guard case .object(let object) = claims, case .string(let consumer)? = object[jwt.consumerClaim], !consumer.isEmpty,
              consumer.utf8.count <= ConfigurationReader.maximumConsumerLength else {
            return (refusal(.invalidToken, code: "invalid_token",
                            "invalid token: no claim '\(jwt.consumerClaim)' naming the consumer (a string of 1 to \(ConfigurationReader.maximumConsumerLength) bytes)",
                            challenge: "Bearer", error: "the token names no consumer"), nil)
        }
        return (admit(consumer, .jwt), nil)
    }
}

/// Successful password verifications, remembered for a short time by the SHA-256 of `username:password`, so that a
/// client sending the same credential again is answered without hashing. Bounded: at capacity, expired entries are
/// dropped, and if that is not enough, all of them.
final class VerifiedCredentialCache: Sendable {
    private let entries = Mutex<[SHA256Digest: (consumer: String, expires: NIODeadline)]>([:])
    let capacity: Int
    let timeToLive: TimeAmount

    init(capacity: Int, timeToLive: TimeAmount) {
        self.capacity = capacity
        self.timeToLive = timeToLive
    }

    func contains(_ digest: SHA256Digest, consumer: String, now: NIODeadline = .now()) -> Bool {
        entries.withLock { entries in
            guard let entry = entries[digest] else { return false }
            guard entry.expires > now, entry.consumer == consumer else {
                entries[digest] = nil
                return false
            }
            return true
        }
    }

    func insert(_ digest: SHA256Digest, consumer: String, now: NIODeadline = .now()) {
        let expires = now + timeToLive
        entries.withLock { entries in
            if entries.count >= capacity, entries[digest] == nil {
                entries = entries.filter { $0.value.expires > now }
                if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            }
            entries[digest] = (consumer, expires)
        }
    }

    var count: Int { entries.withLock { $0.count } }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to `Int64` (configuration durations are far below it).
    var nanoseconds: Int64 {
        let (seconds, overflow) = components.seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return components.seconds < 0 ? .min : .max }
        let (total, overflowAdding) = seconds.addingReportingOverflow(components.attoseconds / 1_000_000_000)
        return overflowAdding ? (seconds < 0 ? .min : .max) : total
    }
}
