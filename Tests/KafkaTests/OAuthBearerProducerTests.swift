import Foundation
import Kafka
import Synchronization
import TestSupport
import Testing

/// The producer's OAUTHBEARER token refresh without a broker: librdkafka asks for a token as soon as the producer
/// polls, and a failure (the provider's, or librdkafka refusing the token) marks the producer down with the reason.
@Suite(.timeLimit(.minutes(1)))
struct OAuthBearerProducerTests {
    static let properties = ["bootstrap.servers": "127.0.0.1:1", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER"]

    struct Refused: Error, CustomStringConvertible {
        var description: String { "the token endpoint http://idp.test/token refused the token request: HTTP 401 invalid_client" }
    }

    func downReason(_ producer: KafkaProducer) -> String? {
        if case .down(let reason) = producer.health { reason } else { nil }
    }

    @Test func aFailingTokenProviderMarksTheProducerDownWithItsReason() async throws {
        let calls = Atomic<Int>(0)
        let producer = try KafkaProducer(properties: Self.properties, oauthBearer: {
            calls.add(1, ordering: .relaxed)
            throw Refused()
        }, logger: testLogger)
        let down = try await eventually(timeout: .seconds(20)) { downReason(producer)?.contains("HTTP 401 invalid_client") == true }
        #expect(down, "\(producer.health)")
        #expect(downReason(producer)?.contains("OAUTHBEARER") == true, "\(producer.health)")
        #expect(calls.load(ordering: .relaxed) >= 1)
        await producer.close(flushTimeout: .zero)
    }

    @Test func aSlowProviderDoesNotHoldThePollThread() async throws {
        // The provider takes 30 s. Were it called on the poll thread, no delivery report could be served meanwhile;
        // the message's 500 ms timeout is reported within about a second instead, and close does not wait for it.
        let started = Atomic<Int>(0)
        var properties = Self.properties
        properties["message.timeout.ms"] = "500"
        let producer = try KafkaProducer(properties: properties, oauthBearer: {
            started.add(1, ordering: .relaxed)
            try await Task.sleep(for: .seconds(30))
            return KafkaOAuthBearerToken(value: "t", expires: Date().addingTimeInterval(60), principal: "p")
        }, logger: testLogger)
        #expect(try await eventually(timeout: .seconds(20)) { started.load(ordering: .relaxed) == 1 })
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: KafkaError.self) { try await producer.sendAndAwait(topic: "t", value: Array("x".utf8)) }
        #expect(clock.now - start < .seconds(15), "the delivery report waited for the token provider")
        await producer.close(flushTimeout: .zero)
        #expect(clock.now - start < .seconds(25), "close waited for the token provider")
    }

    @Test func aTokenLibrdkafkaRefusesMarksTheProducerDown() async throws {
        // An extension name with a digit is not RFC 7628: librdkafka refuses the token, and says why.
        let producer = try KafkaProducer(properties: Self.properties, oauthBearer: {
            KafkaOAuthBearerToken(value: "t", expires: Date().addingTimeInterval(60), principal: "p", extensions: ["cluster1": "x"])
        }, logger: testLogger)
        let down = try await eventually(timeout: .seconds(20)) { downReason(producer)?.contains("librdkafka refused the OAUTHBEARER token") == true }
        #expect(down, "\(producer.health)")
        await producer.close(flushTimeout: .zero)
    }
}
