import CRdKafka
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// librdkafka's in-process mock Kafka cluster: real TCP listeners on loopback that speak the Kafka protocol,
/// with topics auto-created on first use. kbridge's embedded default, and the tests' fault injection.
///
/// Any Kafka client (kcat, another librdkafka program, ``KafkaTopicReader``) can connect to ``bootstrapServers``
/// while this object lives. Data lives in memory and is gone when it is released.
public final class KafkaMockCluster: @unchecked Sendable {
    // @unchecked: librdkafka's mock cluster API is thread-safe (its operations are posted to the cluster thread).
    private let owner: OpaquePointer
    private let cluster: OpaquePointer

    /// The `host:port,...` list to use as `bootstrap.servers`.
    public let bootstrapServers: String
    /// The ports of brokers that are down, each held by a bound socket of ours (see ``setBrokerDown(_:)``), by broker id.
    private let heldPorts = Mutex<[Int32: Int32]>([:])

    /// Starts a mock cluster with `brokers` brokers (ids 1...brokers).
    public init(brokers: Int = 1) throws(KafkaError) {
        let conf = try RDKafkaConfiguration.make(["log_level": "3"])
        owner = try RDKafkaConfiguration.makeHandle(type: RD_KAFKA_PRODUCER, conf: conf)
        guard let cluster = rd_kafka_mock_cluster_new(owner, Int32(brokers)) else {
            rd_kafka_destroy(owner)
            throw KafkaError(code: .invalidConfiguration, message: "cannot start the mock Kafka cluster")
        }
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        for descriptor in heldPorts.withLock({ Array($0.values) }) { close(descriptor) }
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(owner)
    }

    /// Creates a topic ahead of use (auto-creation otherwise uses the mock's defaults).
    public func createTopic(_ name: String, partitions: Int = 4) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), 1)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(err, context: "create topic '\(name)'") }
    }

    /// Makes the cluster answer `code` for `topic` in metadata, so that producing to it fails (e.g.
    /// `.topicAuthorizationFailed`), while other topics keep working.
    public func setTopicError(_ topic: String, _ code: KafkaError.Code) {
        rd_kafka_mock_topic_set_error(cluster, topic, rd_kafka_resp_err_t(rawValue: code.rawValue))
    }

    /// Takes a broker down: its connections close and new ones are refused until ``setBrokerUp(_:)``.
    ///
    /// librdkafka closes the broker's listening socket and, when the broker comes up, listens again on the same port,
    /// aborting the whole process if it cannot. So the port is held meanwhile by a socket bound to it (not listening:
    /// connections are still refused), and no other socket of the machine can take it.
    public func setBrokerDown(_ brokerID: Int32 = 1) {
        _ = rd_kafka_mock_broker_set_down(cluster, brokerID)
        guard let descriptor = holdPort(ofBroker: brokerID) else { return }
        heldPorts.withLock { $0[brokerID] = descriptor }
    }

    /// Lets a broker taken down by ``setBrokerDown(_:)`` accept connections again, on its port.
    public func setBrokerUp(_ brokerID: Int32 = 1) {
        if let descriptor = heldPorts.withLock({ $0.removeValue(forKey: brokerID) }) { close(descriptor) }
        _ = rd_kafka_mock_broker_set_up(cluster, brokerID)
    }

    /// A socket bound (with `SO_REUSEADDR`, as the mock broker binds) to broker `brokerID`'s address, or `nil`.
    private func holdPort(ofBroker brokerID: Int32) -> Int32? {
        let brokers = bootstrapServers.split(separator: ",")
        guard brokerID >= 1, Int(brokerID) <= brokers.count else { return nil }
        let address = brokers[Int(brokerID) - 1]
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else { return nil }
        // sockaddr_in written out (family, port and address in network order, zero padding): its fields are not
        // reachable from this module in every build configuration.
        var ipv4: UInt32 = 0  // in network order, as inet_pton writes it
        guard inet_pton(AF_INET, String(address[..<colon]), &ipv4) == 1 else { return nil }
        var socketAddress = [UInt8](repeating: 0, count: 16)  // sizeof(struct sockaddr_in)
        withUnsafeBytes(of: sa_family_t(AF_INET)) { socketAddress.replaceSubrange(0..<2, with: $0) }
        withUnsafeBytes(of: port.bigEndian) { socketAddress.replaceSubrange(2..<4, with: $0) }
        withUnsafeBytes(of: ipv4) { socketAddress.replaceSubrange(4..<8, with: $0) }
        #if canImport(Glibc)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard descriptor >= 0 else { return nil }
        var one: Int32 = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = socketAddress.withUnsafeBytes { bytes in
            bind(descriptor, bytes.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(bytes.count))
        }
        guard bound == 0 else {
            close(descriptor)
            return nil
        }
        return descriptor
    }

    /// Delays every answer of a broker by `milliseconds`: with a long delay, a broker that accepts
    /// connections and requests but answers nothing. `0` answers at once again.
    public func setRoundTripTime(_ milliseconds: Int, broker brokerID: Int32 = 1) {
        _ = rd_kafka_mock_broker_set_rtt(cluster, brokerID, Int32(clamping: milliseconds))
    }

    /// Makes the cluster answer the next produce requests with these error codes (librdkafka's
    /// `rd_kafka_resp_err_t` values, e.g. ``KafkaError/Code/messageTooLarge``), one per request.
    public func failNextProduceRequests(with codes: [KafkaError.Code]) {
        let errors = codes.map { rd_kafka_resp_err_t(rawValue: $0.rawValue) }
        errors.withUnsafeBufferPointer { buffer in
            rd_kafka_mock_push_request_errors_array(cluster, 0 /* Produce */, buffer.count, buffer.baseAddress)
        }
    }
}
