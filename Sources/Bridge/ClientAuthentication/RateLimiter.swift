import NIOCore
import Synchronization

/// A token bucket: `burst` tokens at most, `rate` tokens added per `period`, one taken per request.
struct TokenBucket: Sendable {
    var tokens: Double
    /// When `tokens` was last brought up to date (monotonic nanoseconds).
    var updated: UInt64

    init(limit: RateLimitSettings.Limit, now: UInt64) {
        tokens = Double(limit.burst)
        updated = now
    }

    /// Adds the tokens earned since the last update.
    mutating func refill(_ limit: RateLimitSettings.Limit, now: UInt64) {
        guard now > updated else { return }
        let elapsed = Double(now - updated)
        tokens = min(Double(limit.burst), tokens + elapsed * limit.tokensPerNanosecond)
        updated = now
    }

    func isFull(_ limit: RateLimitSettings.Limit) -> Bool { tokens >= Double(limit.burst) }
}

extension RateLimitSettings.Limit {
    var tokensPerNanosecond: Double { Double(rate) / Double(max(1, period.nanoseconds)) }

    /// Whole seconds (at least 1) until the bucket holds `tokens` more than `current`.
    func secondsUntil(tokens needed: Double, current: Double) -> Int {
        let missing = needed - current
        guard missing > 0 else { return 0 }
        let seconds = (missing / tokensPerNanosecond / 1e9).rounded(.up)
        return seconds.isFinite ? max(1, Int(min(seconds, 86_400 * 365))) : 86_400 * 365
    }
}

/// What a rate limit decided, with the `RateLimit-*` headers' values (of the tighter bucket when there are two).
struct RateLimitDecision: Sendable {
    enum Scope: String, Sendable, CaseIterable {
        case route
        case consumer
    }

    /// `nil` when the request may go on; else the bucket that is empty.
    var refusedBy: Scope?
    var limit: Int
    var remaining: Int
    /// Seconds until the bucket is full again.
    var reset: Int
    /// Seconds until a request would be let through (when refused).
    var retryAfter: Int

    var headers: [(String, String)] {
        var headers = [("ratelimit-limit", String(limit)), ("ratelimit-remaining", String(remaining)), ("ratelimit-reset", String(reset))]
        if refusedBy != nil { headers.append(("retry-after", String(retryAfter))) }
        return headers
    }
}

/// A route's `rate_limit`: one bucket for the route, one per consumer, in memory (per kbridge instance). Consumer buckets
/// are bounded by `max_consumers`: at the bound, buckets that are full (their consumer has been idle long enough to earn
/// the whole burst back, so dropping them changes nothing) are dropped, then the least recently used down to half, so
/// that the next eviction is at least `max_consumers / 2` new consumers away (its cost amortised).
final class RateLimiter: Sendable {
    let settings: RateLimitSettings
    /// The route's bucket (unused without a route limit).
    private let routeBucket: Mutex<TokenBucket>
    private let consumerBuckets = Mutex<[String: TokenBucket]>([:])
    /// How many times the consumer buckets were cut down (each costs a pass over them).
    private let evictionCount = Atomic<Int>(0)

    init(settings: RateLimitSettings, now: UInt64 = NIODeadline.now().uptimeNanoseconds) {
        self.settings = settings
        routeBucket = Mutex(TokenBucket(limit: settings.route ?? RateLimitSettings.Limit(rate: 1), now: now))
    }

    /// Takes a token from the route's bucket and from `consumer`'s; `nil` when no limit applies.
    func admit(consumer: String?, now: UInt64 = NIODeadline.now().uptimeNanoseconds) -> RateLimitDecision? {
        var decisions: [RateLimitDecision] = []
        var takenFromConsumer = false
        if let limit = settings.consumer, let consumer {
            let decision = consumerBuckets.withLock { buckets in
                if buckets[consumer] == nil, buckets.count >= settings.maxConsumers {
                    Self.evict(&buckets, limit: limit, keeping: settings.maxConsumers, now: now)
                    evictionCount.add(1, ordering: .relaxed)
                }
                var bucket = buckets[consumer] ?? TokenBucket(limit: limit, now: now)
                let decision = Self.take(&bucket, limit: limit, scope: .consumer, now: now)
                buckets[consumer] = bucket
                return decision
            }
            if decision.refusedBy != nil { return decision }
            takenFromConsumer = true
            decisions.append(decision)
        }
        if let limit = settings.route {
            let decision = routeBucket.withLock { Self.take(&$0, limit: limit, scope: .route, now: now) }
            if decision.refusedBy != nil {
                // The request does not go on: the consumer's token is given back.
                if takenFromConsumer, let consumer, let consumerLimit = settings.consumer {
                    consumerBuckets.withLock { buckets in
                        if let bucket = buckets[consumer] { buckets[consumer]?.tokens = min(Double(consumerLimit.burst), bucket.tokens + 1) }
                    }
                }
                return decision
            }
            decisions.append(decision)
        }
        return decisions.min { $0.remaining < $1.remaining }
    }

    var trackedConsumers: Int { consumerBuckets.withLock { $0.count } }
    var evictions: Int { evictionCount.load(ordering: .relaxed) }

    private static func take(_ bucket: inout TokenBucket, limit: RateLimitSettings.Limit, scope: RateLimitDecision.Scope, now: UInt64)
        -> RateLimitDecision
    {
        bucket.refill(limit, now: now)
        guard bucket.tokens >= 1 else {
            return RateLimitDecision(refusedBy: scope, limit: limit.burst, remaining: 0,
                                     reset: limit.secondsUntil(tokens: Double(limit.burst), current: bucket.tokens),
                                     retryAfter: limit.secondsUntil(tokens: 1, current: bucket.tokens))
        }
        bucket.tokens -= 1
        return RateLimitDecision(refusedBy: nil, limit: limit.burst, remaining: Int(bucket.tokens.rounded(.down)),
                                 reset: limit.secondsUntil(tokens: Double(limit.burst), current: bucket.tokens), retryAfter: 0)
    }

    /// Makes room for a new bucket: drops full buckets, then the least recently used down to half. Whatever was full, at
    /// most `keeping / 2` remain, so this runs once per `keeping / 2` new consumers at most: its pass and sort are
    /// amortised to O(log n) per new consumer.
    private static func evict(_ buckets: inout [String: TokenBucket], limit: RateLimitSettings.Limit, keeping: Int, now: UInt64) {
        buckets = buckets.filter { _, bucket in
            var refilled = bucket
            refilled.refill(limit, now: now)
            return !refilled.isFull(limit)
        }
        guard buckets.count > keeping / 2 else { return }
        let newestFirst = buckets.sorted { $0.value.updated > $1.value.updated }
        buckets = Dictionary(uniqueKeysWithValues: newestFirst.prefix(keeping / 2).map { ($0.key, $0.value) })
    }
}
