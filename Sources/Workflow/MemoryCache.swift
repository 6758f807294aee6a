import JSON
import Synchronization

/// `resources.cache` with `strategy: memory`: a per-workflow cache in this process, bounded in entries and in bytes,
/// evicting the least recently used entry first; entries expire after their TTL. Every operation is O(1).
final class MemoryCache: Sendable {
    struct Limits: Sendable, Hashable {
        var maximumEntries = 10_000
        var maximumBytes = 64 << 20
    }

    private struct Entry {
        var key: String
        var value: JSONValue
        var bytes: Int
        var expires: ContinuousClock.Instant
        var newer: Int?
        var older: Int?
    }

    /// The entries in slots linked from the most recently used (`newest`) to the least (`oldest`).
    private struct Store {
        var slots: [Entry?] = []
        var free: [Int] = []
        var index: [String: Int] = [:]
        var newest: Int?
        var oldest: Int?
        var bytes = 0

        mutating func unlink(_ slot: Int) {
            guard let entry = slots[slot] else { return }
            if let newer = entry.newer { slots[newer]?.older = entry.older } else { newest = entry.older }
            if let older = entry.older { slots[older]?.newer = entry.newer } else { oldest = entry.newer }
            slots[slot]?.newer = nil
            slots[slot]?.older = nil
        }

        mutating func pushNewest(_ slot: Int) {
            slots[slot]?.older = newest
            slots[slot]?.newer = nil
            if let newest { slots[newest]?.newer = slot }
            newest = slot
            if oldest == nil { oldest = slot }
        }

        mutating func remove(_ slot: Int) {
            guard let entry = slots[slot] else { return }
            unlink(slot)
            index[entry.key] = nil
            bytes -= entry.bytes
            slots[slot] = nil
            free.append(slot)
        }
    }

    let limits: Limits
    private let store = Mutex(Store())

    init(limits: Limits) {
        self.limits = limits
    }

    /// The value under `key`, unless it expired (then it is removed).
    func value(for key: String, now: ContinuousClock.Instant = .now) -> JSONValue? {
        store.withLock { store in
            guard let slot = store.index[key], let entry = store.slots[slot] else { return nil }
            guard entry.expires > now else {
                store.remove(slot)
                return nil
            }
            store.unlink(slot)
            store.pushNewest(slot)
            return entry.value
        }
    }

    /// Stores `value` under `key` for `ttl`; `false` when it is larger than the whole cache may hold.
    @discardableResult
    func store(_ value: JSONValue, for key: String, ttl: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        let bytes = key.utf8.count + JSONWriter.bytes(value).count + 64
        guard bytes <= limits.maximumBytes else { return false }
        return store.withLock { store in
            if let existing = store.index[key] { store.remove(existing) }
            while store.index.count >= limits.maximumEntries || store.bytes + bytes > limits.maximumBytes, let oldest = store.oldest {
                store.remove(oldest)
            }
            let entry = Entry(key: key, value: value, bytes: bytes, expires: now + ttl)
            let slot: Int
            if let reused = store.free.popLast() {
                slot = reused
                store.slots[slot] = entry
            } else {
                slot = store.slots.count
                store.slots.append(entry)
            }
            store.index[key] = slot
            store.bytes += bytes
            store.pushNewest(slot)
            return true
        }
    }

    var count: Int { store.withLock { $0.index.count } }
}
