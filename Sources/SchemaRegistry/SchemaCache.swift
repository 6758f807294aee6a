/// Schemas already fetched, with one fetch at a time per key (concurrent requests for the same schema wait
/// for the same fetch), and the last good value served when the registry fails after its entry expired.
import Synchronization

actor SchemaCache {
    enum Key: Hashable, Sendable {
        case id(Int32)
        case subject(String, SchemaVersion)
    }

    private struct Entry {
        var schema: RegisteredSchema
        var fetchedAt: ContinuousClock.Instant
    }

    /// Behind a lock rather than the actor, so that a request whose schema is cached reads it without awaiting.
    private nonisolated let entries = Mutex<[Key: Entry]>([:])
    private var inFlight: [Key: Task<RegisteredSchema, any Error>] = [:]
    /// How many times a stale schema was served because the registry was unavailable (readable without awaiting).
    nonisolated let staleServed = Counter()

    final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        func increment() { value.add(1, ordering: .relaxed) }
        var count: Int { value.load(ordering: .relaxed) }
    }

    /// The cached schema for `key` if it is younger than `ttl` (`nil`: never expires); otherwise the result of
    /// `fetch`, shared with every concurrent caller. When `fetch` fails as `.unavailable` and an older value is
    /// cached, that value is returned (and counted).
    func schema(
        for key: Key, ttl: Duration?, fetch: @escaping @Sendable () async throws(SchemaRegistryError) -> RegisteredSchema
    ) async throws(SchemaRegistryError) -> RegisteredSchema {
        if let fresh = cached(key, ttl: ttl) { return fresh }
        let task: Task<RegisteredSchema, any Error>
        if let running = inFlight[key] {
            task = running
        } else {
            task = Task { try await fetch() }
            inFlight[key] = task
        }
        do {
            let schema = try await task.value
            inFlight[key] = nil
            entries.withLock { $0[key] = Entry(schema: schema, fetchedAt: .now) }
            return schema
        } catch {
            inFlight[key] = nil
            let failure = error as? SchemaRegistryError ?? SchemaRegistryError(code: .unavailable, message: "\(error)")
            if failure.code == .unavailable, let stale = entries.withLock({ $0[key] }) {
                staleServed.increment()
                return stale.schema
            }
            throw failure
        }
    }

    /// The cached schema for `key` if it is younger than `ttl` (`nil`: never expires), without waiting.
    nonisolated func cached(_ key: Key, ttl: Duration?) -> RegisteredSchema? {
        guard let entry = entries.withLock({ $0[key] }) else { return nil }
        return ttl.map { ContinuousClock.now - entry.fetchedAt < $0 } ?? true ? entry.schema : nil
    }
}
