import Synchronization

/// Parsed keys by their text, so that a key that is the same every request (a `static` node, a vault secret, a
/// cached JWKS) is parsed once: parsing an RSA key costs far more than verifying with it. Bounded in entries (the
/// oldest goes first) and in the size of a cached text; keyed by the whole text, so two texts never share an entry.
public final class JWTKeyCache<Value: Sendable>: Sendable {
    private struct State {
        var values: [String: Value] = [:]
        var order: [String] = []
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = 16) {
        self.capacity = max(1, capacity)
    }

    /// The value for `text`, made by `make` (and kept) when missing. Failures are not kept.
    public func value(for text: String, make: () async throws(JWTError) -> Value) async throws(JWTError) -> Value {
        if let cached = state.withLock({ $0.values[text] }) { return cached }
        let made = try await make()
        state.withLock { state in
            guard state.values[text] == nil else { return }
            if state.order.count >= capacity {
                let oldest = state.order.removeFirst()
                state.values[oldest] = nil
            }
            state.values[text] = made
            state.order.append(text)
        }
        return made
    }

    public var count: Int { state.withLock { $0.order.count } }
}
