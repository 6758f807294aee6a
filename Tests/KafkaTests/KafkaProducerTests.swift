import Foundation
import Kafka
import Logging
import Synchronization
import TestSupport
import Testing

let testLogger = Logger(label: "kbridge-test")

/// Fault injection against librdkafka's in-process mock cluster (the real-broker tests are in IntegrationTests).
@Suite struct KafkaProducerTests {
    @Test func deliversAndReadsBackWithKey() async throws {
        let cluster = try KafkaMockCluster()
        let producer = try KafkaProducer(properties: ["bootstrap.servers": cluster.bootstrapServers, "linger.ms": "0"], logger: testLogger)
        let topic = uniqueTopic()
        let report = try await producer.sendAndAwait(topic: topic, key: Array("k1".utf8), value: Array("v1".utf8))
        #expect(report.offset >= 0)
        #expect(await producer.close(flushTimeout: .seconds(5)) == 0)
        let messages = try await readTopic(topic, bootstrapServers: cluster.bootstrapServers, minimumCount: 1)
        #expect(messages.map { String(decoding: $0.value, as: UTF8.self) } == ["v1"])
        #expect(messages.first?.key == Array("k1".utf8))
        #expect(messages.first?.partition == report.partition)
        #expect(producer.statistics.delivered == 1)
    }

    @Test func fullQueueIsRefusedAndCloseReportsWhatItPurged() async throws {
        let cluster = try KafkaMockCluster()
        cluster.setBrokerDown(1)
        let producer = try KafkaProducer(properties: [
            "bootstrap.servers": cluster.bootstrapServers, "queue.buffering.max.messages": "2", "message.timeout.ms": "60000",
        ], logger: testLogger)
        let failures = Mutex<[KafkaError.Code]>([])
        let value = Array("x".utf8)
        for _ in 0..<2 {
            try value.withUnsafeBytes { bytes in
                try producer.send(topic: "q", key: nil, value: bytes) { result in
                    if case .failure(let error) = result { failures.withLock { $0.append(error.code) } }
                }
            }
        }
        let third = #expect(throws: KafkaError.self) {
            try value.withUnsafeBytes { try producer.send(topic: "q", key: nil, value: $0) }
        }
        #expect(third?.code == .queueFull)
        // Closing cannot deliver: both messages are purged, each handler hears of it, and close counts them.
        #expect(await producer.close(flushTimeout: .milliseconds(200)) == 2)
        #expect(failures.withLock { $0 }.count == 2)
        #expect(failures.withLock { $0 }.allSatisfy { $0 == .purgedInQueue || $0 == .purgedInFlight })
        let afterClose = #expect(throws: KafkaError.self) {
            try value.withUnsafeBytes { try producer.send(topic: "q", key: nil, value: $0) }
        }
        #expect(afterClose?.code == .shutdown)
    }

    @Test func deliveryTimesOutWhenTheBrokerIsDown() async throws {
        let cluster = try KafkaMockCluster()
        cluster.setBrokerDown(1)
        let producer = try KafkaProducer(properties: ["bootstrap.servers": cluster.bootstrapServers, "message.timeout.ms": "500"], logger: testLogger)
        let error = await #expect(throws: KafkaError.self) {
            try await producer.sendAndAwait(topic: "t", value: Array("x".utf8))
        }
        #expect(error?.code == .messageTimedOut)
        #expect(error?.isUnavailable == true)
        #expect(producer.statistics.failed == 1)
        await producer.close(flushTimeout: .zero)
    }

    @Test func healthFollowsTheCluster() async throws {
        let cluster = try KafkaMockCluster()
        let producer = try KafkaProducer(properties: ["bootstrap.servers": cluster.bootstrapServers], logger: testLogger)
        #expect(try await eventually { producer.health == .up })
        cluster.setBrokerDown(1)
        #expect(try await eventually { if case .down = producer.health { true } else { false } })
        cluster.setBrokerUp(1)
        #expect(try await eventually { producer.health == .up })
        await producer.close(flushTimeout: .seconds(1))
    }

    @Test func invalidPropertiesNameTheProperty() {
        let error = #expect(throws: KafkaError.self) { try KafkaProducer.validate(properties: ["acks": "many"]) }
        #expect(error?.message.contains("'acks'") == true)
        let unknown = #expect(throws: KafkaError.self) {
            try KafkaProducer(properties: ["bootstrap.servers": "x:1", "no.such": "1"], logger: testLogger)
        }
        #expect(unknown?.message.contains("'no.such'") == true)
    }
}
