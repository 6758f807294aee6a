import Synchronization

/// Fails registry requests fast while the registry is known to be unreachable.
///
/// After a failure the circuit opens for a backoff (``SchemaRegistryConfiguration/retryBackoff``, doubled after each
/// further failure up to ``SchemaRegistryConfiguration/maximumRetryBackoff``): requests are refused at once, so that
/// the cache answers with what it has (stale or nothing) instead of every request waiting for the registry's timeout.
/// When the backoff has passed, one request probes the registry (the others are still refused); its success closes the
/// circuit, its failure opens it again for longer.
final class RegistryCircuitBreaker: Sendable {
    enum Admission: Equatable {
        case allowed
        /// Refused: the last failure, and how long until the next probe.
        case refused(lastFailure: String, retryIn: Duration)
    }

    private struct State {
        var consecutiveFailures = 0
        var openUntil: ContinuousClock.Instant?
        var probing = false
        var lastFailure = ""
    }

    private let state = Mutex(State())
    private let initialBackoff: Duration
    private let maximumBackoff: Duration

    init(initialBackoff: Duration, maximumBackoff: Duration) {
        self.initialBackoff = initialBackoff
        self.maximumBackoff = max(initialBackoff, maximumBackoff)
    }

    func admit(now: ContinuousClock.Instant = .now) -> Admission {
        state.withLock { state in
            guard let openUntil = state.openUntil else { return .allowed }
            if now < openUntil || state.probing {
                return .refused(lastFailure: state.lastFailure, retryIn: max(.zero, openUntil - now))
            }
            state.probing = true
            return .allowed
        }
    }

    func recordSuccess() {
        state.withLock { $0 = State() }
    }

    func recordFailure(_ reason: String, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            state.consecutiveFailures += 1
            state.probing = false
            state.lastFailure = reason
            // initial × 2^(failures-1), without overflowing: the exponent is capped well before Duration's range.
            let doublings = min(state.consecutiveFailures - 1, 20)
            var backoff = initialBackoff
            for _ in 0..<doublings where backoff < maximumBackoff { backoff = backoff * 2 }
            state.openUntil = now + min(backoff, maximumBackoff)
        }
    }
}
