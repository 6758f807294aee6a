import CRdKafka
import Foundation

/// A message read back from a topic.
public struct KafkaConsumedMessage: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    /// The record's headers, in order.
    public var headers: [KafkaRecordHeader] = []
}

/// Reads a topic from the beginning of every partition, without a consumer group (partitions are assigned,
/// not subscribed, so no group join is needed). Used by `kbridge consume`, the tests and the benchmark.
public final class KafkaTopicReader: @unchecked Sendable {
    // @unchecked: the handle is only used from the thread that calls `read`, one call at a time (documented).
    private let handle: OpaquePointer

    /// - Parameter properties: librdkafka properties; at least `bootstrap.servers` (plus security settings).
    public init(properties: [String: String]) throws(KafkaError) {
        var properties = properties
        if properties["group.id"] == nil { properties["group.id"] = "kbridge-reader-\(UUID().uuidString)" }
        properties["enable.auto.commit"] = "false"
        properties["enable.partition.eof"] = "true"
        properties["auto.offset.reset"] = "earliest"
        if properties["log_level"] == nil { properties["log_level"] = "3" }
        let conf = try RDKafkaConfiguration.make(properties)
        handle = try RDKafkaConfiguration.makeHandle(type: RD_KAFKA_CONSUMER, conf: conf)
    }

    deinit {
        rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
    }

    /// Reads every message of `topic` from the beginning, until each partition is at its end and at least
    /// `minimumCount` messages were read, or until `timeout` passes. Blocking: call it off any event loop.
    ///
    /// - Returns: The messages, grouped by partition in offset order.
    /// - Throws: ``KafkaError`` when the topic's metadata cannot be read within the timeout.
    public func read(topic: String, minimumCount: Int = 0, timeout: Duration) throws(KafkaError) -> [KafkaConsumedMessage] {
        let deadline = ContinuousClock.now + timeout
        let partitions = try partitionCount(topic: topic, deadline: deadline)
        guard let list = rd_kafka_topic_partition_list_new(partitions) else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for partition in 0..<partitions {
            let entry = rd_kafka_topic_partition_list_add(list, topic, partition)
            entry?.pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
        }
        let assigned = rd_kafka_assign(handle, list)
        guard assigned == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(assigned, context: "assign '\(topic)'") }
        defer { rd_kafka_assign(handle, nil) }

        var messages: [KafkaConsumedMessage] = []
        var atEnd = Set<Int32>()
        while ContinuousClock.now < deadline {
            if atEnd.count == Int(partitions), messages.count >= minimumCount { break }
            guard let message = rd_kafka_consumer_poll(handle, 100) else { continue }
            defer { rd_kafka_message_destroy(message) }
            let m = message.pointee
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                atEnd.insert(m.partition)
                continue
            }
            guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }  // transient: keep reading until the deadline
            atEnd.remove(m.partition)
            messages.append(KafkaConsumedMessage(
                topic: topic, partition: m.partition, offset: m.offset,
                key: m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) },
                value: m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? [],
                headers: Self.headers(of: message)))
        }
        return messages.sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
    }

    private static func headers(of message: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaRecordHeader] {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        var headers: [KafkaRecordHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            headers.append(KafkaRecordHeader(name: name.map { String(cString: $0) } ?? "",
                                             value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
            index += 1
        }
        return headers
    }

    private func partitionCount(topic: String, deadline: ContinuousClock.Instant) throws(KafkaError) -> Int32 {
        guard let topicHandle = rd_kafka_topic_new(handle, topic, nil) else {
            throw KafkaError(code: .invalidConfiguration, message: "invalid topic name '\(topic)'")
        }
        defer { rd_kafka_topic_destroy(topicHandle) }
        var lastError = KafkaError(code: .messageTimedOut, message: "no metadata for topic '\(topic)'")
        repeat {
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(handle, 0, topicHandle, &metadata, 2000)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata {
                defer { rd_kafka_metadata_destroy(metadata) }
                if metadata.pointee.topic_cnt > 0, let topics = metadata.pointee.topics,
                   topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR, topics[0].partition_cnt > 0 {
                    return topics[0].partition_cnt
                }
                if metadata.pointee.topic_cnt > 0, let topics = metadata.pointee.topics {
                    lastError = KafkaError(topics[0].err, context: "metadata for topic '\(topic)'")
                }
            } else {
                lastError = KafkaError(err, context: "metadata for topic '\(topic)'")
            }
            Thread.sleep(forTimeInterval: 0.2)
        } while ContinuousClock.now < deadline
        throw lastError
    }
}
