import CRdKafka
import Foundation
import Logging
import Synchronization

/// A SASL OAUTHBEARER token for the brokers (KIP-255), with the metadata librdkafka needs.
public struct KafkaOAuthBearerToken: Sendable, Hashable {
    /// The token sent to the brokers (often a JWT).
    public var value: String
    /// When it expires, on the wall clock: librdkafka asks for a new one at 80 % of the remaining lifetime.
    public var expires: Date
    /// The Kafka principal the token stands for.
    public var principal: String
    /// SASL extensions sent with the token (RFC 7628 §3.1: keys are letters only, never `auth`; values printable).
    public var extensions: [String: String]

    public init(value: String, expires: Date, principal: String, extensions: [String: String] = [:]) {
        self.value = value
        self.expires = expires
        self.principal = principal
        self.extensions = extensions
    }
}

/// Gets a new OAUTHBEARER token. Called from librdkafka's refresh request, never on librdkafka's thread: it may
/// take its time (an HTTP request). A thrown error's description is the reason the cluster is reported down.
public typealias KafkaOAuthBearerTokenProvider = @Sendable () async throws -> KafkaOAuthBearerToken

/// Answers librdkafka's OAUTHBEARER token refresh requests: each request starts one fetch on a task of its own
/// (the poll thread goes straight back to polling) and hands the token (`rd_kafka_oauthbearer_set_token`,
/// thread-safe) or the failure (`rd_kafka_oauthbearer_set_token_failure`, which librdkafka reports as an
/// authentication error, so the cluster is marked down with the reason) to librdkafka when it ends.
final class OAuthBearerRefresher: Sendable {
    private let provider: KafkaOAuthBearerTokenProvider
    private let logger: Logger
    /// `closed` once the producer is being freed: a fetch that ends later hands nothing to the freed handle.
    /// `fetching`: a fetch is under way (a new request while one is running is answered by that one).
    /// `expires`: the expiry of the token last handed over, to log how early librdkafka asked for the next.
    private let state = Mutex<(closed: Bool, fetching: Task<Void, Never>?, expires: Date?)>((false, nil, nil))

    init(provider: @escaping KafkaOAuthBearerTokenProvider, logger: Logger) {
        self.provider = provider
        self.logger = logger
    }

    /// librdkafka asks for a token (on the poll thread, from `rd_kafka_poll`).
    func refreshRequested(handle: RDKafkaHandle) {
        state.withLock { state in
            guard !state.closed, state.fetching == nil else { return }
            if let expires = state.expires {
                logger.debug("OAUTHBEARER token refresh requested", metadata: [
                    "seconds_before_expiry": "\(String(format: "%.3f", expires.timeIntervalSinceNow))",
                ])
            }
            state.fetching = Task.detached { [self] in await fetch(handle: handle) }
        }
    }

    private func fetch(handle: RDKafkaHandle) async {
        let result: Result<KafkaOAuthBearerToken, any Error>
        do { result = .success(try await provider()) } catch { result = .failure(error) }
        state.withLock { state in
            state.fetching = nil
            // Under the lock: `close()` cannot free the handle while the token is being handed over.
            guard !state.closed else { return }
            switch result {
            case .success(let token):
                if let failure = Self.setToken(token, handle: handle) {
                    _ = rd_kafka_oauthbearer_set_token_failure(handle.pointer, failure)
                } else {
                    state.expires = token.expires
                }
            case .failure(let error):
                _ = rd_kafka_oauthbearer_set_token_failure(handle.pointer, "\(error)")
            }
        }
    }

    /// Hands the token to librdkafka; returns librdkafka's reason when it refuses it (an expired token, an
    /// extension key that is not letters only, ...).
    private static func setToken(_ token: KafkaOAuthBearerToken, handle: RDKafkaHandle) -> String? {
        let milliseconds = token.expires.timeIntervalSince1970 * 1000
        guard milliseconds.isFinite, let lifetime = Int64(exactly: milliseconds.rounded(.down)) else {
            return "the OAUTHBEARER token's expiry is out of range"
        }
        let pairs = token.extensions.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }
        var errorText = [CChar](repeating: 0, count: 512)
        let cStrings = pairs.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = cStrings.map { UnsafePointer($0) }
        let result = pointers.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_oauthbearer_set_token(handle.pointer, token.value, lifetime, token.principal,
                                           buffer.baseAddress, buffer.count, &errorText, errorText.count)
        }
        guard result != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        let reason = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "librdkafka refused the OAUTHBEARER token: \(reason)"
    }

    /// No token is handed to the handle after this (called before the handle is freed); a fetch under way is cancelled.
    func close() {
        state.withLock { state in
            state.closed = true
            state.fetching?.cancel()
        }
    }
}
