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
    /// Messages and requests still in librdkafka's queues.
    public var inQueue: Int

    public init(enqueued: Int = 0, delivered: Int = 0, failed: Int = 0, inQueue: Int = 0) {
        self.enqueued = enqueued
        self.delivered = delivered
        self.failed = failed
        self.inQueue = inQueue
    }
}

/// A librdkafka producer: non-blocking ``send(topic:key:value:onDelivery:)`` with one delivery report per
/// message, a dedicated poll thread that serves delivery reports, error aggregation and health tracking.
///
/// - Important: call ``close(flushTimeout:)`` before dropping the producer, or queued messages are purged.
public final class KafkaProducer: Sendable {
    /// The librdkafka properties this producer was made with (secrets included: never log them).
    public let properties: [String: String]
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
    public init(properties: [String: String], delegationToken: DelegationTokenLogin? = nil, logger: Logger) throws(KafkaError) {
        self.properties = properties
        let callbacks = ProducerCallbacks(logger: logger)
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
        if delegationToken != nil {
            rd_kafka_conf_set_connect_cb(conf) { socket, address, length, nodename, opaque in
                guard let address, let opaque else { return EINVAL }
                let callbacks = Unmanaged<ProducerCallbacks>.fromOpaque(opaque).takeUnretainedValue()
                guard let relay = callbacks.relay.withLock({ $0 }) else { return EINVAL }
                return relay.connect(socket: socket, to: address, length: length, nodename: nodename.map { String(cString: $0) } ?? "")
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
        self.pollThread = PollThread(handle: handle, callbacks: callbacks)
        callbacks.logger.debug("Kafka producer started", metadata: ["librdkafka": "\(RDKafkaConfiguration.runtimeVersion)"])
    }

    deinit {
        // Not closed: purge so that every pending delivery handler still runs (with a purge error), then free.
        if lifecycle.withLock({ $0 }) != .closed { shutdown(flushTimeoutMilliseconds: 0) }
    }

    /// The version of librdkafka loaded at run time (which may differ from the headers compiled against).
    public static var librdkafkaVersion: String { RDKafkaConfiguration.runtimeVersion }

    /// The current connection health; a request router can fail fast while it is `.down`.
    public var health: KafkaProducerHealth { callbacks.health }

    /// True while ``health`` is `.down`: one atomic load, for the request path.
    public var isDown: Bool { callbacks.healthState.load(ordering: .relaxed) == ProducerCallbacks.HealthState.down }

    public var statistics: KafkaProducerStatistics {
        // The queue length is read under the lifecycle lock: the handle is freed once closed.
        let inQueue = lifecycle.withLock { $0 == .closed ? 0 : Int(rd_kafka_outq_len(handle.pointer)) }
        return KafkaProducerStatistics(
            enqueued: callbacks.enqueued.load(ordering: .relaxed),
            delivered: callbacks.delivered.load(ordering: .relaxed),
            failed: callbacks.failed.load(ordering: .relaxed),
            inQueue: inQueue)
    }

    /// Enqueues one message without blocking; librdkafka copies key and value.
    ///
    /// - Parameters:
    ///   - topic: The topic name.
    ///   - key: The message key, or `nil` for none (the partitioner then spreads messages).
    ///   - value: The message value.
    ///   - onDelivery: Called exactly once with the broker's verdict; `nil` to only count and log failures.
    /// - Throws: ``KafkaError`` `.queueFull` when the local queue is at `queue.buffering.max.messages`,
    ///   `.shutdown` after ``close(flushTimeout:)`` began, or another code librdkafka returns for the message.
    public func send(
        topic: String, key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer,
        onDelivery: KafkaDeliveryHandler? = nil
    ) throws(KafkaError) {
        activeSends.add(1, ordering: .sequentiallyConsistent)
        defer { activeSends.subtract(1, ordering: .sequentiallyConsistent) }
        guard lifecycle.withLock({ $0 }) == .open else {
            throw KafkaError(code: .shutdown, message: "the producer is shutting down and accepts no more messages")
        }
        let box = onDelivery.map { Unmanaged.passRetained(DeliveryBox($0)).toOpaque() }
        let result = topic.withCString { topicName in
            withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 6) { vus -> rd_kafka_resp_err_t in
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
                guard let error = rd_kafka_produceva(handle.pointer, vus.baseAddress, count) else {
                    return RD_KAFKA_RESP_ERR_NO_ERROR
                }
                let code = rd_kafka_error_code(error)
                rd_kafka_error_destroy(error)
                return code
            }
        }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            if let box { Unmanaged<DeliveryBox>.fromOpaque(box).release() }
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
        lifecycle.withLock { state in
            rd_kafka_destroy(handle.pointer)
            state = .closed
        }
        callbacks.shutdownRelay()
        return lost
    }
}

/// The per-message delivery handler, passed to librdkafka as the message opaque (retained until the report).
private final class DeliveryBox {
    let handler: KafkaDeliveryHandler
    init(_ handler: @escaping KafkaDeliveryHandler) { self.handler = handler }
}

/// State reachable from librdkafka's C callbacks (through the configuration opaque).
final class ProducerCallbacks: Sendable {
    let logger: Logger
    let enqueued = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    /// The health as one atomic value (read on every request and updated on every delivery report);
    /// the reason for `.down` is kept beside it.
    enum HealthState {
        static let connecting: UInt8 = 0
        static let up: UInt8 = 1
        static let down: UInt8 = 2
    }
    let healthState = Atomic<UInt8>(HealthState.connecting)
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

    init(logger: Logger) {
        var logger = logger
        logger[metadataKey: "component"] = "kafka-producer"
        self.logger = logger
    }

    func deliveryReport(_ message: UnsafePointer<rd_kafka_message_t>) {
        let m = message.pointee
        let result: Result<KafkaDeliveryReport, KafkaError>
        if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
            delivered.add(1, ordering: .relaxed)
            markUp()
            result = .success(KafkaDeliveryReport(partition: m.partition, offset: m.offset))
        } else {
            failed.add(1, ordering: .relaxed)
            let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "?"
            let error = KafkaError(m.err, context: "delivery to topic '\(topic)' failed")
            result = .failure(error)
            if m._private == nil {
                // Nobody waits for this message: say so, once per error kind and interval.
                logThrottled(key: "dr:\(m.err.rawValue)", level: .error, "message not delivered: \(error.message)")
            }
        }
        if let opaque = m._private {
            Unmanaged<DeliveryBox>.fromOpaque(opaque).takeRetainedValue().handler(result)
        }
    }

    func error(code: Int32, reason: String) {
        let err = rd_kafka_resp_err_t(rawValue: code)
        switch err {
        case RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR__SSL, RD_KAFKA_RESP_ERR__FATAL:
            markDown(reason, rank: 2)
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

    func markUp() {
        guard healthState.load(ordering: .relaxed) != HealthState.up else { return }
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
    static let probeInterval: Duration = .seconds(1)

    init(handle: RDKafkaHandle, callbacks: ProducerCallbacks) {
        let thread = Thread { [flag, finished] in
            var lastProbe = ContinuousClock.now - Self.probeInterval
            while flag.running.load(ordering: .relaxed) {
                rd_kafka_poll(handle.pointer, 50)
                if callbacks.healthState.load(ordering: .relaxed) != ProducerCallbacks.HealthState.up, ContinuousClock.now - lastProbe >= Self.probeInterval {
                    lastProbe = .now
                    var metadata: UnsafePointer<rd_kafka_metadata>?
                    if rd_kafka_metadata(handle.pointer, 0, nil, &metadata, 500) == RD_KAFKA_RESP_ERR_NO_ERROR {
                        callbacks.markUp()
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

extension KafkaProducer {
    /// Checks that librdkafka accepts every property name and value.
    ///
    /// - Parameter loadingTLS: also create (and at once destroy) a client without brokers, which makes
    ///   librdkafka load the CA, client certificate and key, and check that the key matches the certificate.
    ///   Nothing connects anywhere.
    ///   With a delegation token, its TLS settings are loaded the same way (by kbridge's relay).
    public static func validate(
        properties: [String: String], loadingTLS: Bool = false, delegationToken: DelegationTokenLogin? = nil
    ) throws(KafkaError) {
        if let tls = delegationToken?.tls {
            do { _ = try DelegationTokenRelay.makeTLSContext(tls) } catch {
                throw KafkaError(code: .ssl, message: "ssl: cannot load the TLS files for the delegation-token login: \(error)")
            }
        }
        var properties = properties
        if loadingTLS { properties["bootstrap.servers"] = "" }
        let conf = try RDKafkaConfiguration.make(properties)
        guard loadingTLS else {
            rd_kafka_conf_destroy(conf)
            return
        }
        let handle = try RDKafkaConfiguration.makeHandle(type: RD_KAFKA_PRODUCER, conf: conf)
        rd_kafka_destroy(handle)
    }
}
