import Kafka
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// A route's gate before anything is produced: `client_authentication`, then `rate_limit` (per route and per consumer).
final class RouteAccess: Sendable {
    let authenticator: ClientAuthenticator?
    let rateLimiter: RateLimiter?
    let metrics = AccessMetrics()

    /// What the gate decided.
    enum Admission: Sendable {
        /// Go on with this request (credentials removed with `hide_credentials`, `consumer` set), and add these headers
        /// (`RateLimit-*`) to the answer.
        case admitted(IngestRequest, headers: [(String, String)])
        case refused(IngestResponse)
    }

    enum Outcome {
        case immediate(Admission)
        case pending(EventLoopFuture<Admission>)
    }

    init(authenticator: ClientAuthenticator?, rateLimiter: RateLimiter?) {
        self.authenticator = authenticator
        self.rateLimiter = rateLimiter
    }

    /// The gate of `route`, or `nil` when it has neither `client_authentication` nor `rate_limit`. A JWKS URL is fetched
    /// here, and refreshed in the background until ``stop()`` or until the gate is released.
    /// - Throws: ``ConfigurationError`` naming the `jwks_url` key, the route and the URL when a JWKS cannot be fetched.
    static func make(for route: RouteConfiguration, logger: Logger = Logger(label: "kbridge")) async throws -> RouteAccess? {
        guard route.clientAuthentication != nil || route.rateLimit != nil else { return nil }
        var authenticator: ClientAuthenticator?
        if let settings = route.clientAuthentication {
            authenticator = try await ClientAuthenticator(settings: settings, route: route.name, logger: logger)
        }
        return RouteAccess(authenticator: authenticator, rateLimiter: route.rateLimit.map { RateLimiter(settings: $0) })
    }

    /// Stops the background refresh of the route's JWKS URLs (the keys in use stay).
    func stop() {
        authenticator?.jwtKeys?.stop()
    }

    /// The record header naming the consumer (`client_authentication.consumer_record_header`), when on and authenticated.
    func consumerRecordHeader(for request: IngestRequest) -> KafkaRecordHeader? {
        guard let name = authenticator?.settings.consumerRecordHeader, let consumer = request.consumer else { return nil }
        return KafkaRecordHeader(name: name, value: Array(consumer.utf8))
    }

    func admit(_ request: IngestRequest, eventLoop: any EventLoop) -> Outcome {
        var request = request
        guard let authenticator else { return .immediate(limit(request, verdict: nil)) }
        switch authenticator.authenticate(&request, eventLoop: eventLoop) {
        case .done(let verdict):
            return .immediate(limit(request, verdict: verdict))
        case .pending(let future):
            let gated = request
            return .pending(future.map { self.limit(gated, verdict: $0) })
        }
    }

    private func limit(_ request: IngestRequest, verdict: ClientAuthenticator.Verdict?) -> Admission {
        var request = request
        switch verdict {
        case .refused(let response, let reason)?:
            metrics.countFailure(reason)
            return .refused(response)
        case .authenticated(let consumer, let method)?:
            metrics.countSuccess(method)
            request.consumer = consumer
        case nil:
            break
        }
        guard let rateLimiter, let decision = rateLimiter.admit(consumer: request.consumer) else { return .admitted(request, headers: []) }
        if let scope = decision.refusedBy {
            metrics.countRateLimited(scope)
            let whose = scope == .route ? "this route's" : "consumer '\(request.consumer ?? "")''s"
            return .refused(.error(.tooManyRequests, code: "rate_limited",
                                   "\(whose) rate limit is exhausted; retry in \(decision.retryAfter) s", headers: decision.headers))
        }
        return .admitted(request, headers: decision.headers)
    }
}

/// Counters of a route's gate, for `/metrics`.
final class AccessMetrics: Sendable {
    private let failures = Mutex<[ClientAuthenticator.FailureReason: Int]>([:])
    private let successes = Mutex<[ClientAuthenticator.Method: Int]>([:])
    private let limited = Mutex<[RateLimitDecision.Scope: Int]>([:])

    func countFailure(_ reason: ClientAuthenticator.FailureReason) { failures.withLock { $0[reason, default: 0] += 1 } }
    func countSuccess(_ method: ClientAuthenticator.Method) { successes.withLock { $0[method, default: 0] += 1 } }
    func countRateLimited(_ scope: RateLimitDecision.Scope) { limited.withLock { $0[scope, default: 0] += 1 } }

    func failures(_ reason: ClientAuthenticator.FailureReason) -> Int { failures.withLock { $0[reason] ?? 0 } }
    func successes(_ method: ClientAuthenticator.Method) -> Int { successes.withLock { $0[method] ?? 0 } }
    func rateLimited(_ scope: RateLimitDecision.Scope) -> Int { limited.withLock { $0[scope] ?? 0 } }

    /// The Prometheus text of every route's gate.
    static func text(_ routes: [(name: String, access: RouteAccess)], escape: (String) -> String) -> String {
        guard !routes.isEmpty else { return "" }
        var text = "# HELP kbridge_client_auth_failures_total Requests refused by client_authentication, by route and reason.\n"
        text += "# TYPE kbridge_client_auth_failures_total counter\n"
        for (name, access) in routes where access.authenticator != nil {
            for reason in ClientAuthenticator.FailureReason.allCases {
                text += "kbridge_client_auth_failures_total{route=\"\(escape(name))\",reason=\"\(reason.rawValue)\"} \(access.metrics.failures(reason))\n"
            }
        }
        text += "# HELP kbridge_client_auth_successes_total Requests authenticated, by route and method.\n"
        text += "# TYPE kbridge_client_auth_successes_total counter\n"
        for (name, access) in routes {
            guard let settings = access.authenticator?.settings else { continue }
            let methods: [ClientAuthenticator.Method] = (settings.apiKey != nil ? [.apiKey] : []) + (settings.basic != nil ? [.basic] : [])
                + (settings.jwt != nil ? [.jwt] : [])
            for method in methods {
                text += "kbridge_client_auth_successes_total{route=\"\(escape(name))\",method=\"\(method.rawValue)\"} \(access.metrics.successes(method))\n"
            }
        }
        text += "# HELP kbridge_client_auth_password_verifications_total Password hashes verified (HTTP Basic requests the cache did not answer).\n"
        text += "# TYPE kbridge_client_auth_password_verifications_total counter\n"
        for (name, access) in routes {
            guard let authenticator = access.authenticator, authenticator.settings.basic != nil else { continue }
            text += "kbridge_client_auth_password_verifications_total{route=\"\(escape(name))\"} \(authenticator.passwordVerifications.load(ordering: .relaxed))\n"
        }
        let keySets = routes.flatMap { route in (route.access.authenticator?.jwtKeys?.sources ?? []).map { (route.name, $0) } }
        if !keySets.isEmpty {
            text += "# HELP kbridge_client_auth_jwks_refresh_failures_total JWKS URL fetches after start-up that failed (the last good keys stayed in use), by route and URL.\n"
            text += "# TYPE kbridge_client_auth_jwks_refresh_failures_total counter\n"
            for (name, source) in keySets {
                text += "kbridge_client_auth_jwks_refresh_failures_total{route=\"\(escape(name))\",url=\"\(escape(source.settings.url))\"} \(source.refreshFailures.load(ordering: .relaxed))\n"
            }
        }
        text += "# HELP kbridge_rate_limited_total Requests refused 429 by rate_limit, by route and bucket.\n"
        text += "# TYPE kbridge_rate_limited_total counter\n"
        for (name, access) in routes {
            guard let settings = access.rateLimiter?.settings else { continue }
            let scopes: [RateLimitDecision.Scope] = (settings.route != nil ? [.route] : []) + (settings.consumer != nil ? [.consumer] : [])
            for scope in scopes {
                text += "kbridge_rate_limited_total{route=\"\(escape(name))\",scope=\"\(scope.rawValue)\"} \(access.metrics.rateLimited(scope))\n"
            }
        }
        return text
    }
}
