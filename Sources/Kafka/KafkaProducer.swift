import CRdKafka
import Foundation
import Logging
import Synchronization

/// Where a message landed, as the broker acknowledged it.
public struct KafkaDeliveryReport: Sendable, Hashable {
    public var partition: Int32
    /// The message offset; `-1` when the broker does not report one (`acks=0`).
    public var offset: Int64
}

/// A Kafka record header: a name and a value (`nil` for a header without a value).
public struct KafkaRecordHeader: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]?

    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }
}

/// Called once per message with the broker's verdict, on the producer's poll thread. Must not block.
public typealias KafkaDeliveryHandler = @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void

/// Whether the producer can currently reach its cluster, as librdkafka reports it.
public enum KafkaProducerHealth: Sendable, Hashable {
    /// No verdict yet: the first connection is being made.
    case connecting
    /// A broker answered (metadata or a delivery report) since the last failure.
    case up
    /// All brokers are down, authentication failed, or the producer hit a fatal error.
    case down(reason: String)
}

/// Counters since the producer started.
public struct KafkaProducerStatistics: Sendable, Hashable {
    /// Messages librdkafka accepted into its queue.
    public var enqueued: Int
    /// Messages the broker acknowledged.
    public var delivered: Int
    /// Messages that failed for good (timed out, rejected by the broker, or purged at shutdown).
    public var failed: Int
    /// Messages accepted and not yet delivered or failed (kbridge's own count: enqueued − delivered − failed).
    public var inQueue: Int

    public init(enqueued: Int = 0, delivered: Int = 0, failed: Int = 0, inQueue: Int = 0) {
        self.enqueued = enqueued
        self.delivered = delivered
        self.failed = failed
        self.inQueue = inQueue
    }
}

/// kbridge's own producer settings (the ones librdkafka has no property for).
public struct KafkaProducerOptions: Sendable, Hashable {
    /// With messages in flight and no delivery progress (no acknowledgement, no answer from a broker) for this
    /// long, the producer reports itself `.down`: a broker that accepts connections but answers nothing is
    /// otherwise only noticed when messages time out. `nil`: no such check.
    public var stallTimeout: Duration?
    /// While the producer is not up, how often the poll thread asks the cluster for metadata (a probe). Default: 1 s.
    public var probeInterval: Duration
    /// Consecutive successful probes before a producer that is down is reported up again. A delivered message
    /// reports it up at once. Default: 1.
    public var recoveryProbes: Int

    public init(stallTimeout: Duration? = nil, probeInterval: Duration = .seconds(1), recoveryProbes: Int = 1) {
        self.stallTimeout = stallTimeout
        self.probeInterval = probeInterval
        self.recoveryProbes = max(1, recoveryProbes)
    }
}

/// A librdkafka producer: non-blocking ``send(topic:key:value:onDelivery:)`` with one delivery report per
/// message, a dedicated poll thread that serves delivery reports, error aggregation and health tracking.
///
/// - Important: call ``close(flushTimeout:)`` before dropping the producer, or queued messages are purged.
public final class KafkaProducer: Sendable {
    /// The librdkafka properties this producer was made with (secrets included: never exposed).
    private let properties: [String: String]
    private let handle: RDKafkaHandle
    private let callbacks: ProducerCallbacks
    private let pollThread: PollThread
    private let lifecycle = Mutex<Lifecycle>(.open)
    /// Sends between their state check and the end of `rd_kafka_produceva`; shutdown waits for none to be left
    /// before it frees the handle.
    private let activeSends = Atomic<Int>(0)

    private enum Lifecycle { case open, closing, closed }

    /// Creates the producer and starts its poll thread.
    ///
    /// - Parameters:
    ///   - properties: librdkafka configuration properties (`bootstrap.servers`, `acks`, ...).
    ///   - logger: receives librdkafka's logs and errors, rate-limited so that a reconnect loop logs once.
    /// - Throws: ``KafkaError`` with code `.invalidConfiguration`, naming the property librdkafka refused.
    ///   - delegationToken: log every broker connection in with this Kafka delegation token (kbridge performs the
    ///     SCRAM `tokenauth` login itself; `properties` must then say `security.protocol=PLAINTEXT`).
    ///   - oauthBearer: with `sasl.mechanism=OAUTHBEARER`, where tokens come from: librdkafka asks for one at start and
    ///     again at 80 % of each token's lifetime; a failure marks the cluster down with its reason.
    ///   - options: kbridge's own settings, such as the stall check.
    public init(
        properties: [String: String], delegationToken: DelegationTokenLogin? = nil, oauthBearer: KafkaOAuthBearerTokenProvider? = nil,
        options: KafkaProducerOptions = KafkaProducerOptions(), logger: Logger, deliveryLatency: (@Sendable (Duration) -> Void)? = nil
    ) throws(KafkaError) {
        self.properties = properties
        let callbacks = ProducerCallbacks(logger: logger, messageMaxBytes: properties["message.max.bytes"].flatMap { Int($0) }
            ?? RDKafkaConfiguration.defaultMessageMaxBytes, deliveryLatency: deliveryLatency)
        if let delegationToken {
            let relay = try DelegationTokenRelay(login: delegationToken, logger: callbacks.logger) { [weak callbacks] reason in
                callbacks?.loginFailed(reason)
            }
            callbacks.relay.withLock { $0 = relay }
        }
        let conf: OpaquePointer
        do {
            conf = try RDKafkaConfiguration.make(properties)
        } catch {
            callbacks.shutdownRelay()
            throw error
        }
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbacks).toOpaque())
        // Every connection goes through here: after a failed login, connections are held back (see LoginBackoff);
        // with a delegation token, they go to kbridge's relay, which logs in.
        rd_kafka_conf_set_connect_cb(conf) { socket, address, length, nodename, opaque in
            guard let address, let opaque else { return EINVAL }
            let callbacks = Unmanaged<ProducerCallbacks>.fromOpaque(opaque).takeUnretainedValue()
            if callbacks.loginBackoff.withLock({ $0.holdsBack(now: .now) }) { return ECANCELED }
            if let relay = callbacks.relay.withLock({ $0 }) {
                return relay.connect(socket: socket, to: address, length: length, nodename: nodename.map { String(cString: $0) } ?? "")
            }
            // librdkafka's own connect: the socket is non-blocking, and EINPROGRESS is success.
            return Foundation.connect(socket, address, socklen_t(length)) == 0 || errno == EINPROGRESS ? 0 : errno
        }
        if let oauthBearer {
            callbacks.oauthBearer.withLock { $0 = OAuthBearerRefresher(provider: oauthBearer, logger: callbacks.logger) }
            // Called from `rd_kafka_poll` (the poll thread): starts the fetch and returns at once.
            rd_kafka_conf_set_oauthbearer_token_refresh_cb(conf) { rk, _, opaque in
                guard let rk, let opaque else { return }
                let callbacks = Unmanaged<ProducerCallbacks>.fromOpaque(opaque).takeUnretainedValue()
                callbacks.oauthBearer.withLock { $0 }?.refreshRequested(handle: RDKafkaHandle(rk))
            }
        }
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, opaque in
            guard let message, let opaque else { return }
            Unmanaged<ProducerCallbacks>.fromOpaque(opaque).takeUnretainedValue().deliveryReport(message)
        }
        rd_kafka_conf_set_error_cb(conf) { _, code, reason, opaque in
            guard let opaque else { return }
            let text = reason.map { String(cString: $0) } ?? ""
            Unmanaged<ProducerCallbacks>.fromOpaque(opaque).takeUnretainedValue().error(code: code, reason: text)
        }
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, text in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            Unmanaged<ProducerCallbacks>.fromOpaque(opaque).takeUnretainedValue().log(
                level: level, facility: facility.map { String(cString: $0) } ?? "", text: text.map { String(cString: $0) } ?? "")
        }
        let pointer: OpaquePointer
        do {
            pointer = try RDKafkaConfiguration.makeHandle(type: RD_KAFKA_PRODUCER, conf: conf)
        } catch {
            callbacks.shutdownRelay()
            throw error
        }
        self.handle = RDKafkaHandle(pointer)
        self.callbacks = callbacks
        self.pollThread = PollThread(handle: handle, callbacks: callbacks, options: options)
        callbacks.logger.debug("Kafka producer started", metadata: ["librdkafka": "\(RDKafkaConfiguration.runtimeVersion)"])
    }

    deinit {
        // Not closed: purge so that every pending delivery handler still runs (with a purge error), then free.
        if lifecycle.withLock({ $0 }) != .closed { shutdown(flushTimeoutMilliseconds: 0) }
    }

    /// The librdkafka properties this producer was made with, secrets replaced by `[redacted]`.
    public var redactedProperties: [String: String] {
        Dictionary(uniqueKeysWithValues: properties.map { ($0.key, RDKafkaConfiguration.isSecret($0.key) ? "[redacted]" : $0.value) })
    }

    /// The version of librdkafka loaded at run time (which may differ from the headers compiled against).
    public static var librdkafkaVersion: String { RDKafkaConfiguration.runtimeVersion }

    /// The current connection health; a request router can fail fast while it is `.down`.
    public var health: KafkaProducerHealth { callbacks.health }

    /// Whether the cluster was reached (``health`` `.up`) at least once since the producer started.
    public var hasReachedCluster: Bool { callbacks.reachedOnce.load(ordering: .relaxed) }

    /// True while ``health`` is `.down`: one atomic load, for the request path.
    public var isDown: Bool { callbacks.healthState.load(ordering: .relaxed) == ProducerCallbacks.HealthState.down }

    public var statistics: KafkaProducerStatistics {
        // `rd_kafka_outq_len` would also count librdkafka's own requests (metadata, ...): kbridge counts messages.
        let counts = callbacks.counts
        return KafkaProducerStatistics(
            enqueued: counts.enqueued, delivered: counts.delivered, failed: counts.failed, inQueue: counts.inFlight)
    }

    /// Enqueues one message without blocking; librdkafka copies key and value.
    ///
    /// - Parameters:
    ///   - topic: The topic name.
    ///   - key: The message key, or `nil` for none (the partitioner then spreads messages).
    ///   - value: The message value.
    ///   - onDelivery: Called exactly once with the broker's verdict; `nil` to only count and log failures.
    ///     When a login fails (authentication, TLS), handlers still waiting are called at once with that
    ///     reason; the message's own delivery report later is then only counted (and logged if it succeeds).
    /// - Throws: ``KafkaError`` `.queueFull` when the local queue is at `queue.buffering.max.messages`,
    ///   `.shutdown` after ``close(flushTimeout:)`` began, `.messageTooLarge` above `message.max.bytes`,
    ///   the login failure while one is known (only when `onDelivery` is given), or another code librdkafka
    ///   returns for the message.
    public func send(
        topic: String, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, headers: [KafkaRecordHeader] = [],
        onDelivery: KafkaDeliveryHandler? = nil
    ) throws(KafkaError) {
        activeSends.add(1, ordering: .sequentiallyConsistent)
        defer { activeSends.subtract(1, ordering: .sequentiallyConsistent) }
        guard lifecycle.withLock({ $0 }) == .open else {
            throw KafkaError(code: .shutdown, message: "the producer is shutting down and accepts no more messages")
        }
        var deliveryBox: DeliveryBox?
        if let onDelivery {
            let newBox = DeliveryBox(onDelivery)
            // A login is known to fail: the message could not be delivered before its timeout, say so now.
            if let failure = callbacks.register(newBox) { throw failure }
            deliveryBox = newBox
        }
        let box = deliveryBox.map { Unmanaged.passRetained($0).toOpaque() }
        // Header names as consecutive C strings and values as one byte run, so that one pointer of each stays valid
        // for the call (librdkafka copies both).
        var headerNames: [CChar] = []
        var headerValues: [UInt8] = []
        for header in headers {
            headerNames.append(contentsOf: header.name.utf8CString)
            headerValues.append(contentsOf: header.value ?? [])
        }
        let result = topic.withCString { topicName in
            headerNames.withUnsafeBufferPointer { names in
            headerValues.withUnsafeBufferPointer { values in
            withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 6 + headers.count) { vus -> rd_kafka_resp_err_t in
                var count = 0
                func append(_ fill: (inout rd_kafka_vu_t) -> Void) {
                    var vu = rd_kafka_vu_t()
                    fill(&vu)
                    vus[count] = vu
                    count += 1
                }
                append { $0.vtype = RD_KAFKA_VTYPE_TOPIC; $0.u.cstr = topicName }
                append { $0.vtype = RD_KAFKA_VTYPE_PARTITION; $0.u.i32 = -1 }  // RD_KAFKA_PARTITION_UA
                append { $0.vtype = RD_KAFKA_VTYPE_MSGFLAGS; $0.u.i = RD_KAFKA_MSG_F_COPY }
                append {
                    $0.vtype = RD_KAFKA_VTYPE_VALUE
                    $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                    $0.u.mem.size = value.count
                }
                if let key {
                    append {
                        $0.vtype = RD_KAFKA_VTYPE_KEY
                        $0.u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                        $0.u.mem.size = key.count
                    }
                }
                if let box { append { $0.vtype = RD_KAFKA_VTYPE_OPAQUE; $0.u.ptr = box } }
                var nameOffset = 0
                var valueOffset = 0
                for header in headers {
                    let name = names.baseAddress.map { $0 + nameOffset }
                    let valueStart = values.baseAddress.map { UnsafeMutableRawPointer(mutating: $0 + valueOffset) }
                    append {
                        $0.vtype = RD_KAFKA_VTYPE_HEADER
                        $0.u.header.name = name
                        $0.u.header.val = header.value == nil ? nil : UnsafeRawPointer(valueStart)
                        $0.u.header.size = header.value?.count ?? 0
                    }
                    nameOffset += header.name.utf8.count + 1
                    valueOffset += header.value?.count ?? 0
                }
                guard let error = rd_kafka_produceva(handle.pointer, vus.baseAddress, count) else {
                    return RD_KAFKA_RESP_ERR_NO_ERROR
                }
                let code = rd_kafka_error_code(error)
                rd_kafka_error_destroy(error)
                return code
            }
            }
            }
        }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            if let box { Unmanaged<DeliveryBox>.fromOpaque(box).release() }
            if let deliveryBox {
                callbacks.unregister(deliveryBox)
                // A login failure already called the handler: that was the one answer, do not add another.
                guard deliveryBox.claim() else { return }
            }
            if result == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE {
                throw KafkaError(code: .messageTooLarge, message: "the message for topic '\(topic)' (\(value.count + (key?.count ?? 0)) bytes) "
                    + "is larger than this producer's local limit, librdkafka's message.max.bytes = \(callbacks.messageMaxBytes) bytes: "
                    + "raise message.max.bytes (kbridge sizes it from max_body_size unless kafka_properties sets it)")
            }
            throw KafkaError(result, context: "cannot enqueue a message for topic '\(topic)'")
        }
        callbacks.enqueued.add(1, ordering: .relaxed)
    }

    /// Enqueues one message and suspends until the broker acknowledges or rejects it.
    public func sendAndAwait(topic: String, key: [UInt8]? = nil, value: [UInt8]) async throws(KafkaError) -> KafkaDeliveryReport {
        let result: Result<KafkaDeliveryReport, KafkaError> = await withCheckedContinuation { continuation in
            let handler: KafkaDeliveryHandler = { continuation.resume(returning: $0) }
            let enqueued: Result<Void, KafkaError> = value.withUnsafeBytes { valueBytes in
                guard let key else {
                    return Result { () throws(KafkaError) in try send(topic: topic, key: nil, value: valueBytes, onDelivery: handler) }
                }
                return key.withUnsafeBytes { keyBytes in
                    Result { () throws(KafkaError) in try send(topic: topic, key: keyBytes, value: valueBytes, onDelivery: handler) }
                }
            }
            if case .failure(let error) = enqueued { continuation.resume(returning: .failure(error)) }
        }
        return try result.get()
    }

    /// Stops taking messages, waits up to `flushTimeout` for queued ones to be delivered, purges what is
    /// left (each purged message's handler gets a purge error and is counted as failed), and frees the client.
    ///
    /// Runs the blocking librdkafka calls on a thread of its own, never on the caller's executor.
    /// - Returns: The number of messages that could not be delivered within the timeout.
    @discardableResult
    public func close(flushTimeout: Duration) async -> Int {
        let milliseconds = Int32(clamping: flushTimeout.components.seconds * 1000
            + flushTimeout.components.attoseconds / 1_000_000_000_000_000)
        return await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                continuation.resume(returning: shutdown(flushTimeoutMilliseconds: milliseconds))
            }
            thread.name = "kbridge-kafka-close"
            thread.start()
        }
    }

    @discardableResult
    private func shutdown(flushTimeoutMilliseconds: Int32) -> Int {
        let proceed = lifecycle.withLock { state -> Bool in
            guard state == .open else { return false }
            state = .closing
            return true
        }
        guard proceed else { return 0 }
        while activeSends.load(ordering: .sequentiallyConsistent) > 0 { Thread.sleep(forTimeInterval: 0.000_1) }
        let before = callbacks.failed.load(ordering: .relaxed)
        _ = rd_kafka_flush(handle.pointer, flushTimeoutMilliseconds)
        if rd_kafka_outq_len(handle.pointer) > 0 {
            _ = rd_kafka_purge(handle.pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            _ = rd_kafka_flush(handle.pointer, 1000)  // serves the purged messages' delivery reports
        }
        pollThread.stop()
        let lost = callbacks.failed.load(ordering: .relaxed) - before
        if lost > 0 {
            callbacks.logger.error("Kafka producer closed with undelivered messages", metadata: ["undelivered": "\(lost)"])
        }
        callbacks.oauthBearer.withLock { $0 }?.close()
        lifecycle.withLock { state in
            rd_kafka_destroy(handle.pointer)
            state = .closed
        }
        callbacks.shutdownRelay()
        return lost
    }
}

/// The per-message delivery handler, passed to librdkafka as the message opaque (retained until the report).
/// Answered exactly once: by the delivery report, or earlier by a login failure (``claim()`` decides which).
final class DeliveryBox: Sendable {
    private let handler: KafkaDeliveryHandler
    private let answered = Atomic<Bool>(false)
    init(_ handler: @escaping KafkaDeliveryHandler) { self.handler = handler }

    /// Takes the right to answer; true only for the first caller.
    func claim() -> Bool { !answered.exchange(true, ordering: .acquiringAndReleasing) }

    /// Calls the handler unless it was already called; returns whether it called it.
    @discardableResult
    func answer(_ result: Result<KafkaDeliveryReport, KafkaError>) -> Bool {
        guard claim() else { return false }
        handler(result)
        return true
    }
}

/// State reachable from librdkafka's C callbacks (through the configuration opaque).
final class ProducerCallbacks: Sendable {
    let logger: Logger
    /// librdkafka's `message.max.bytes` for this producer (named in too-large errors).
    let messageMaxBytes: Int
    let enqueued = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    /// Delivery reports that show a broker answered (an acknowledgement or a broker's error code): the
    /// stall check watches it move.
    let progress = Atomic<Int>(0)
    /// True while the producer is down because deliveries stalled (see ``PollThread``).
    let stalled = Atomic<Bool>(false)
    /// The handlers of messages in flight, so that a login failure can answer them at once, and that failure
    /// while it lasts (a new message with a handler is then refused).
    private let pending = Mutex<(boxes: [ObjectIdentifier: DeliveryBox], loginFailure: KafkaError?)>(([:], nil))

    /// The counters, and the messages in flight derived from them (never negative: a report may be counted
    /// before its send is).
    var counts: (enqueued: Int, delivered: Int, failed: Int, inFlight: Int) {
        let delivered = delivered.load(ordering: .relaxed)
        let failed = failed.load(ordering: .relaxed)
        let enqueued = enqueued.load(ordering: .relaxed)
        return (enqueued, delivered, failed, max(0, enqueued - delivered - failed))
    }
    /// The health as one atomic value (read on every request and updated on every delivery report);
    /// the reason for `.down` is kept beside it.
    enum HealthState {
        static let connecting: UInt8 = 0
        static let up: UInt8 = 1
        static let down: UInt8 = 2
    }
    let healthState = Atomic<UInt8>(HealthState.connecting)
    /// Set the first time the health is up, never cleared.
    let reachedOnce = Atomic<Bool>(false)
    /// Why the cluster is down, and how specific that reason is: an authentication or TLS failure says more
    /// than the "1/1 brokers are down" that follows it, so it is kept until the cluster is up again.
    private let downReason = Mutex<(text: String, rank: Int, lastTransportError: String?)>(("", 0, nil))

    var health: KafkaProducerHealth {
        switch healthState.load(ordering: .acquiring) {
        case HealthState.up: .up
        case HealthState.down: .down(reason: downReason.withLock { $0.text })
        default: .connecting
        }
    }
    private let throttle = Mutex(LogThrottle())
    /// The delegation-token relay, when the producer logs in with a token.
    let relay = Mutex<DelegationTokenRelay?>(nil)
    /// Answers librdkafka's OAUTHBEARER token refresh requests, when the producer logs in with OAUTHBEARER.
    let oauthBearer = Mutex<OAuthBearerRefresher?>(nil)
    /// Holds connections back after failed logins (librdkafka reconnects many times a second otherwise).
    let loginBackoff = Mutex(LoginBackoff())

    /// Told each message's time from enqueueing to its delivery report (librdkafka's `rd_kafka_message_latency`).
    let deliveryLatency: (@Sendable (Duration) -> Void)?

    init(logger: Logger, messageMaxBytes: Int, deliveryLatency: (@Sendable (Duration) -> Void)? = nil) {
        var logger = logger
        logger[metadataKey: "component"] = "kafka-producer"
        self.logger = logger
        self.messageMaxBytes = messageMaxBytes
        self.deliveryLatency = deliveryLatency
    }

    func deliveryReport(_ message: UnsafePointer<rd_kafka_message_t>) {
        let m = message.pointee
        if let deliveryLatency {
            let microseconds = rd_kafka_message_latency(message)
            if microseconds >= 0 { deliveryLatency(.microseconds(microseconds)) }
        }
        let topic = { m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?" }
        let result: Result<KafkaDeliveryReport, KafkaError>
        if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
            delivered.add(1, ordering: .relaxed)
            progress.add(1, ordering: .relaxed)
            markUp()
            result = .success(KafkaDeliveryReport(partition: m.partition, offset: m.offset))
        } else {
            failed.add(1, ordering: .relaxed)
            // Positive codes come from a broker (it answered); negative ones are librdkafka's own (timeouts, ...).
            if m.err.rawValue > 0 { progress.add(1, ordering: .relaxed) }
            var error = KafkaError(m.err, context: "delivery to topic '\(topic())' failed")
            if m.err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE {
                error.message = "the broker refused the message for topic '\(topic())' (\(m.len + m.key_len) bytes) as too large: "
                    + "raise the topic's max.message.bytes (and the broker's message.max.bytes)"
            }
            result = .failure(error)
            if m._private == nil {
                // Nobody waits for this message: say so, once per error kind and interval.
                logThrottled(key: "dr:\(m.err.rawValue)", level: .error, "message not delivered: \(error.message)")
            }
        }
        if let opaque = m._private {
            let box = Unmanaged<DeliveryBox>.fromOpaque(opaque).takeRetainedValue()
            unregister(box)
            if !box.answer(result) {
                // Already answered with a login failure; the outcome is only counted, and a late success logged.
                if case .success = result {
                    logThrottled(key: "late-delivery", level: .warning,
                                 "a message answered as failed when the login failed was delivered after all (topic '\(topic())')")
                }
            }
        }
    }

    /// Remembers a handler until its report; returns the login failure instead while one is known.
    func register(_ box: DeliveryBox) -> KafkaError? {
        pending.withLock { pending in
            if let failure = pending.loginFailure { return failure }
            pending.boxes[ObjectIdentifier(box)] = box
            return nil
        }
    }

    func unregister(_ box: DeliveryBox) {
        _ = pending.withLock { $0.boxes.removeValue(forKey: ObjectIdentifier(box)) }
    }

    /// A login failed: new connections wait (see ``LoginBackoff``).
    private func holdBackConnections() {
        let delay = loginBackoff.withLock { $0.loginFailed(now: .now) }
        logThrottled(key: "login-backoff", level: .warning,
                     "Kafka login failed: new connections are held back for \(delay), doubling with each failure up to \(LoginBackoff.maximum)")
    }

    /// A login failed (wrong credentials, TLS): messages cannot be delivered until that changes, so every
    /// handler still waiting hears the reason now instead of after `message.timeout.ms`.
    private func failPending(code: KafkaError.Code, reason: String) {
        // Kept short: the bridge puts the health's reason (this `reason`) before it.
        let error = KafkaError(code: code, message: code == .fatal ? "not delivered: \(reason)" : "not delivered: the login failed")
        let boxes = pending.withLock { pending in
            pending.loginFailure = error
            defer { pending.boxes.removeAll() }
            return Array(pending.boxes.values)
        }
        var answered = 0
        for box in boxes where box.answer(.failure(error)) { answered += 1 }
        if answered > 0 {
            logger.warning("Kafka login failed: answered the requests waiting for delivery at once", metadata: [
                "requests": "\(answered)", "reason": "\(reason)",
            ])
        }
    }

    func error(code: Int32, reason: String) {
        let err = rd_kafka_resp_err_t(rawValue: code)
        switch err {
        case RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR__SSL:
            markDown(reason, rank: 2)
            holdBackConnections()
            failPending(code: KafkaError.Code(rawValue: code), reason: reason)
        case RD_KAFKA_RESP_ERR__FATAL:
            markDown(reason, rank: 2)
            failPending(code: .fatal, reason: reason)
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
            let last = downReason.withLock { $0.lastTransportError }
            markDown(last.map { "\(reason) (last error: \($0))" } ?? reason, rank: 1)
        case RD_KAFKA_RESP_ERR__TRANSPORT:
            downReason.withLock { $0.lastTransportError = reason }
        default:
            break
        }
        logThrottled(key: "err:\(code)", level: .error, "Kafka client error \(KafkaError.Code(rawValue: code).name): \(reason)")
    }

    func log(level: Int32, facility: String, text: String) {
        // syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug. librdkafka reports each error through
        // the error callback too (logged by `error(code:reason:)`), so its error-level log lines are debug here.
        let swiftLevel: Logger.Level = level <= 3 ? .debug : level == 4 ? .warning : level <= 6 ? .info : .debug
        guard swiftLevel >= logger.logLevel else { return }
        logThrottled(key: "log:\(facility)", level: swiftLevel, "librdkafka \(facility): \(text)")
    }

    /// A delegation-token login was refused: as specific as an authentication error from librdkafka.
    func loginFailed(_ reason: String) {
        markDown(reason, rank: 2)
        holdBackConnections()
        failPending(code: .authentication, reason: reason)
        logThrottled(key: "token-login", level: .error, "Kafka \(reason)")
    }

    func shutdownRelay() {
        relay.withLock { relay in
            relay?.shutdown()
            relay = nil
        }
    }

    private func markDown(_ reason: String, rank: Int) {
        downReason.withLock { current in
            let isDown = healthState.load(ordering: .relaxed) == HealthState.down
            if !isDown || rank >= current.rank { (current.text, current.rank) = (reason, rank) }
        }
        healthState.store(HealthState.down, ordering: .releasing)
    }

    /// No delivery progress for the stall timeout while messages are in flight; ignored while already down
    /// (the reason known then is more specific).
    func markStalled(after timeout: Duration, inFlight: Int) {
        guard healthState.load(ordering: .relaxed) != HealthState.down else { return }
        stalled.store(true, ordering: .relaxed)
        let milliseconds = Int(timeout / .milliseconds(1))
        let window = milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(milliseconds) ms"
        let reason = "no delivery progress for \(window) "
            + "with \(inFlight) messages in flight (broker not responding)"
        markDown(reason, rank: 1)
        logger.error("Kafka \(reason)")
    }

    func markUp() {
        guard healthState.load(ordering: .relaxed) != HealthState.up else { return }
        reachedOnce.store(true, ordering: .relaxed)
        stalled.store(false, ordering: .relaxed)
        pending.withLock { $0.loginFailure = nil }
        loginBackoff.withLock { $0 = LoginBackoff() }
        downReason.withLock { $0 = ("", 0, nil) }
        if healthState.exchange(HealthState.up, ordering: .acquiringAndReleasing) == HealthState.down {
            logger.info("Kafka cluster reachable again")
        }
    }

    private func logThrottled(key: String, level: Logger.Level, _ message: String) {
        let decision = throttle.withLock { $0.admit(key: key, now: .now) }
        guard case .log(let suppressed) = decision else { return }
        let suffix = suppressed > 0 ? " (\(suppressed) similar messages suppressed in the last \(LogThrottle.interval))" : ""
        logger.log(level: level, "\(message)\(suffix)")
    }
}

/// After a failed login (wrong credentials, refused certificate), new connections are refused locally for a
/// while that doubles with each failure, from ``initial`` up to ``maximum``. librdkafka's own reconnect
/// backoff does not grow here: the TCP connection succeeds each time (only the login fails), so it would log
/// in again 10-20 times a second for as long as kbridge runs. Reset when the cluster is up again.
struct LoginBackoff {
    static let initial: Duration = .milliseconds(100)
    static let maximum: Duration = .seconds(10)
    private var failures = 0
    private var until: ContinuousClock.Instant?

    /// Records a failed login; returns how long connections are now held back.
    mutating func loginFailed(now: ContinuousClock.Instant) -> Duration {
        failures = min(failures + 1, 30)
        var delay = Self.initial
        for _ in 1..<failures where delay < Self.maximum { delay *= 2 }
        delay = min(delay, Self.maximum)
        until = now + delay
        return delay
    }

    func holdsBack(now: ContinuousClock.Instant) -> Bool { until.map { now < $0 } ?? false }
}

/// Lets one message per key through per interval and counts the ones it held back.
struct LogThrottle {
    static let interval: Duration = .seconds(10)
    enum Decision { case log(suppressed: Int), suppress }
    private var entries: [String: (last: ContinuousClock.Instant, suppressed: Int)] = [:]

    mutating func admit(key: String, now: ContinuousClock.Instant) -> Decision {
        if let entry = entries[key], now - entry.last < Self.interval {
            entries[key] = (entry.last, entry.suppressed + 1)
            return .suppress
        }
        let suppressed = entries[key]?.suppressed ?? 0
        entries[key] = (now, 0)
        return .log(suppressed: suppressed)
    }
}

/// The thread that serves librdkafka's callbacks (`rd_kafka_poll`) and probes the cluster while it is not up.
final class PollThread: Sendable {
    /// Shared with the thread's closure (an `Atomic` is not copyable, so it lives in a class).
    private final class Flag: Sendable { let running = Atomic<Bool>(true) }
    private let flag = Flag()
    private let finished = DispatchSemaphore(value: 0)
    /// - Parameter options: the stall timeout (checked here, after every poll), the probe interval and the number of
    ///   successful probes that report the cluster up again.
    init(handle: RDKafkaHandle, callbacks: ProducerCallbacks, options: KafkaProducerOptions) {
        let stallTimeout = options.stallTimeout
        let probeInterval = options.probeInterval
        let recoveryProbes = options.recoveryProbes
        let thread = Thread { [flag, finished] in
            var lastProbe = ContinuousClock.now - probeInterval
            var successfulProbes = 0
            var stallCheck = StallCheck(timeout: stallTimeout)
            while flag.running.load(ordering: .relaxed) {
                rd_kafka_poll(handle.pointer, 50)
                let inFlight = callbacks.counts.inFlight
                if let stallTimeout, stallCheck.observe(progress: callbacks.progress.load(ordering: .relaxed), inFlight: inFlight, now: .now) != nil {
                    callbacks.markStalled(after: stallTimeout, inFlight: inFlight)
                }
                if callbacks.healthState.load(ordering: .relaxed) == ProducerCallbacks.HealthState.up {
                    successfulProbes = 0
                } else if ContinuousClock.now - lastProbe >= probeInterval {
                    lastProbe = .now
                    var metadata: UnsafePointer<rd_kafka_metadata>?
                    // A broker that answers metadata but not produce requests is not up while messages stay stuck.
                    if rd_kafka_metadata(handle.pointer, 0, nil, &metadata, 500) == RD_KAFKA_RESP_ERR_NO_ERROR,
                       !callbacks.stalled.load(ordering: .relaxed) || callbacks.counts.inFlight == 0 {
                        successfulProbes += 1
                        // Only a cluster that is down waits for more than one probe; one still connecting is up at once.
                        if successfulProbes >= recoveryProbes || callbacks.healthState.load(ordering: .relaxed) != ProducerCallbacks.HealthState.down {
                            callbacks.markUp()
                            successfulProbes = 0
                        }
                    } else {
                        successfulProbes = 0
                    }
                    if let metadata { rd_kafka_metadata_destroy(metadata) }
                }
            }
            finished.signal()
        }
        thread.name = "kbridge-kafka-poll"
        thread.start()
    }

    /// Stops the loop and waits for the thread to leave it.
    func stop() {
        flag.running.store(false, ordering: .relaxed)
        finished.wait()
    }
}

/// Notices deliveries that stopped: messages in flight the whole time and no delivery progress for `timeout`.
/// Idle time (nothing in flight) does not count, so a message sent after a quiet minute is not "stalled".
struct StallCheck {
    let timeout: Duration?
    private var lastProgress = -1
    /// The last time there was progress or nothing was in flight.
    private var quietSince = ContinuousClock.now
    /// Reported for the current stretch already.
    private var reported = false

    init(timeout: Duration?) { self.timeout = timeout }

    /// Returns the stall duration once per stretch without progress, or `nil`.
    mutating func observe(progress: Int, inFlight: Int, now: ContinuousClock.Instant) -> Duration? {
        guard let timeout else { return nil }
        if progress != lastProgress || inFlight == 0 {
            lastProgress = progress
            quietSince = now
            reported = false
            return nil
        }
        guard !reported, now - quietSince >= timeout else { return nil }
        reported = true
        return now - quietSince
    }
}

extension KafkaProducer {
    /// Checks that librdkafka accepts every property name and value, and the properties together: it creates
    /// (and at once destroys) a client without brokers, so librdkafka also checks combinations (`acks` with
    /// `enable.idempotence`, ...) and, with TLS, loads the CA, client certificate and key and checks that the
    /// key matches the certificate. Nothing connects anywhere, and librdkafka's log lines are discarded.
    /// With a delegation token, its TLS settings are loaded the same way (by kbridge's relay).
    public static func validate(properties: [String: String], delegationToken: DelegationTokenLogin? = nil) throws(KafkaError) {
        if let tls = delegationToken?.tls {
            do { _ = try DelegationTokenRelay.makeTLSContext(tls) } catch {
                throw KafkaError(code: .ssl, message: "ssl: cannot load the TLS files for the delegation-token login: \(error)")
            }
        }
        var properties = properties
        properties["bootstrap.servers"] = ""
        let conf = try RDKafkaConfiguration.make(properties)
        let handle = try RDKafkaConfiguration.makeHandle(type: RD_KAFKA_PRODUCER, conf: conf)
        rd_kafka_destroy(handle)
    }
}
