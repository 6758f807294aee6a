import Foundation
@testable import Kafka
import Logging
import Synchronization
import TestSupport
import Testing

/// Regression tests for the producer's failure handling (stalls, login failures, limits, counters), against
/// librdkafka's in-process mock cluster.
@Suite(.timeLimit(.minutes(2)))
struct ProducerHardeningTests {
    // MARK: Stalled broker (accepts, answers nothing)

    @Test func aBrokerThatStopsAnsweringMarksTheProducerDownAndItRecovers() async throws {
        let cluster = try KafkaMockCluster()
        let producer = try KafkaProducer(
            properties: [
                "bootstrap.servers": cluster.bootstrapServers, "linger.ms": "0",
                "message.timeout.ms": "60000", "request.timeout.ms": "5000",
            ],
            options: KafkaProducerOptions(stallTimeout: .seconds(1)), logger: testLogger)
        #expect(try await eventually { producer.health == .up })
        _ = try await producer.sendAndAwait(topic: "stall", value: Array("before".utf8))

        cluster.setRoundTripTime(60_000)  // the broker takes requests and answers none
        let delivered = Atomic<Int>(0)
        for index in 0..<3 {
            try Array("during-\(index)".utf8).withUnsafeBytes { bytes in
                try producer.send(topic: "stall", key: nil, value: bytes) { result in
                    if case .success = result { delivered.add(1, ordering: .relaxed) }
                }
            }
        }
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try await eventually(timeout: .seconds(5)) { producer.isDown })
        #expect(clock.now - start < .seconds(4))
        guard case .down(let reason) = producer.health else { Issue.record("not down"); return }
        #expect(reason == "no delivery progress for 1s with 3 messages in flight (broker not responding)")

        cluster.setRoundTripTime(0)
        #expect(try await eventually(timeout: .seconds(60)) { delivered.load(ordering: .relaxed) == 3 })
        #expect(try await eventually { producer.health == .up })
        await producer.close(flushTimeout: .seconds(5))
    }

    @Test func idleTimeIsNotAStall() {
        var check = StallCheck(timeout: .seconds(1))
        let start = ContinuousClock.now
        #expect(check.observe(progress: 0, inFlight: 0, now: start) == nil)
        // A minute with nothing in flight, then a message: no verdict until it waited the whole timeout.
        #expect(check.observe(progress: 0, inFlight: 0, now: start + .seconds(60)) == nil)
        #expect(check.observe(progress: 0, inFlight: 1, now: start + .seconds(60.5)) == nil)
        #expect(check.observe(progress: 0, inFlight: 1, now: start + .seconds(61)) == .seconds(1))
        #expect(check.observe(progress: 0, inFlight: 1, now: start + .seconds(62)) == nil)  // once per stretch
        #expect(check.observe(progress: 1, inFlight: 1, now: start + .seconds(63)) == nil)  // progress resets
        #expect(check.observe(progress: 1, inFlight: 1, now: start + .seconds(63.5)) == nil)
        #expect(check.observe(progress: 1, inFlight: 1, now: start + .seconds(64)) == .seconds(1))
        var off = StallCheck(timeout: nil)
        #expect(off.observe(progress: 0, inFlight: 5, now: start + .seconds(600)) == nil)
    }

    // MARK: Login failures

    @Test func loginBackoffDoublesUpToTenSeconds() {
        var backoff = LoginBackoff()
        let now = ContinuousClock.now
        #expect(!backoff.holdsBack(now: now))
        let delays = (0..<10).map { _ in backoff.loginFailed(now: now) }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600),
                           .milliseconds(3200), .milliseconds(6400), .seconds(10), .seconds(10), .seconds(10)])
        #expect(backoff.holdsBack(now: now + .seconds(9)))
        #expect(!backoff.holdsBack(now: now + .seconds(10)))
    }

    @Test func aDeliveryHandlerIsAnsweredExactlyOnce() {
        let calls = Mutex<[String]>([])
        let box = DeliveryBox { result in
            calls.withLock { $0.append((try? result.get()).map { _ in "delivered" } ?? "failed") }
        }
        #expect(box.answer(.failure(KafkaError(code: .authentication, message: "login failed"))))
        #expect(!box.answer(.success(KafkaDeliveryReport(partition: 0, offset: 1))))
        #expect(!box.claim())
        #expect(calls.withLock { $0 } == ["failed"])
    }

    // MARK: Message size limits

    @Test func aMessageAboveTheLocalLimitNamesTheLocalSetting() async throws {
        let cluster = try KafkaMockCluster()
        let producer = try KafkaProducer(
            properties: ["bootstrap.servers": cluster.bootstrapServers, "message.max.bytes": "1000"], logger: testLogger)
        let value = [UInt8](repeating: 0x61, count: 5000)
        let error = #expect(throws: KafkaError.self) {
            try value.withUnsafeBytes { try producer.send(topic: "big", key: nil, value: $0) }
        }
        #expect(error?.code == .messageTooLarge)
        #expect(error?.message.contains("local limit, librdkafka's message.max.bytes = 1000 bytes") == true, "\(String(describing: error))")
        #expect(error?.message.contains("5000 bytes") == true)
        await producer.close(flushTimeout: .zero)
    }

    @Test func aMessageTheBrokerRefusesAsTooLargeNamesTheTopicSetting() async throws {
        let cluster = try KafkaMockCluster()
        let producer = try KafkaProducer(properties: ["bootstrap.servers": cluster.bootstrapServers, "linger.ms": "0"], logger: testLogger)
        _ = try await producer.sendAndAwait(topic: "big", value: Array("warm-up".utf8))
        cluster.failNextProduceRequests(with: [.messageTooLarge])
        let error = await #expect(throws: KafkaError.self) {
            try await producer.sendAndAwait(topic: "big", value: Array("refused".utf8))
        }
        #expect(error?.code == .messageTooLarge)
        #expect(error?.message.contains("the broker refused the message for topic 'big'") == true, "\(String(describing: error))")
        #expect(error?.message.contains("raise the topic's max.message.bytes") == true)
        await producer.close(flushTimeout: .seconds(1))
    }

    // MARK: Counters and properties

    @Test func inQueueCountsMessagesNotLibrdkafkaRequests() async throws {
        let cluster = try KafkaMockCluster()
        let producer = try KafkaProducer(properties: ["bootstrap.servers": cluster.bootstrapServers, "message.timeout.ms": "60000"],
                                         logger: testLogger)
        #expect(try await eventually { producer.health == .up })
        // Idle: nothing enqueued, so nothing in the queue, whatever librdkafka is doing (metadata, ...).
        var idle: [Int] = []
        for _ in 0..<20 {
            idle.append(producer.statistics.inQueue)
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(idle.allSatisfy { $0 == 0 }, "\(idle)")
        cluster.setBrokerDown(1)
        #expect(try await eventually { producer.isDown })
        for index in 0..<3 {
            try Array("m\(index)".utf8).withUnsafeBytes { try producer.send(topic: "q", key: nil, value: $0) }
        }
        var samples: [Int] = []
        for _ in 0..<10 {
            samples.append(producer.statistics.inQueue)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(samples.allSatisfy { $0 == 3 }, "\(samples)")
        cluster.setBrokerUp(1)
        #expect(try await eventually(timeout: .seconds(20)) { producer.statistics.inQueue == 0 && producer.statistics.delivered == 3 })
        await producer.close(flushTimeout: .seconds(1))
    }

    @Test func secretsAreNotExposedByTheProducer() async throws {
        let producer = try KafkaProducer(properties: [
            "bootstrap.servers": "127.0.0.1:1", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": "carol", "sasl.password": "carol-secret",
        ], logger: testLogger)
        #expect(producer.redactedProperties["sasl.password"] == "[redacted]")
        #expect(producer.redactedProperties["sasl.username"] == "carol")
        #expect(!producer.redactedProperties.values.contains("carol-secret"))
        await producer.close(flushTimeout: .zero)
    }
}
