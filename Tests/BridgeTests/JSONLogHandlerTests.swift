import Foundation
import Logging
import NIOCore
import Synchronization
import Testing

@testable import Bridge

/// `log_format: json`: every line is one JSON object a log collector can read, whatever the message holds.
@Suite struct JSONLogHandlerTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var output: JSONLogHandler.Output {
            JSONLogHandler.Output { line in self.lines.withLock { $0.append(String(buffer: line)) } }
        }
        func objects() throws -> [[String: Any]] {
            try lines.withLock { $0 }.map { line in
                #expect(line.hasSuffix("\n") && line.dropLast().firstIndex(of: "\n") == nil, "one line per event: \(line)")
                return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            }
        }
    }

    @Test func eventsAreOneJSONObjectPerLine() throws {
        let lines = Lines()
        var logger = Logger(label: "kbridge") { JSONLogHandler(label: $0, output: lines.output) }
        logger.logLevel = .debug
        logger[metadataKey: "component"] = "kafka-producer"
        logger.warning("broker \"b1\" down\nsecond line\u{1}", metadata: [
            "route": "/orders", "attempts": .stringConvertible(3), "brokers": ["b1:9092", "b2:9092"], "nested": ["a": "1"],
        ])
        logger.trace("not logged: below the level")
        let objects = try lines.objects()
        #expect(objects.count == 1)
        let event = try #require(objects.first)
        #expect(event["level"] as? String == "warning")
        #expect(event["logger"] as? String == "kbridge")
        #expect(event["message"] as? String == "broker \"b1\" down\nsecond line\u{1}")
        #expect(event["source"] as? String == "BridgeTests")
        let metadata = try #require(event["metadata"] as? [String: Any])
        #expect(metadata["component"] as? String == "kafka-producer")
        #expect(metadata["route"] as? String == "/orders")
        #expect(metadata["attempts"] as? String == "3")
        #expect(metadata["brokers"] as? [String] == ["b1:9092", "b2:9092"])
        #expect(metadata["nested"] as? [String: String] == ["a": "1"])
        let timestamp = try #require(event["timestamp"] as? String)
        #expect(timestamp.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil, "\(timestamp)")
    }

    @Test func timestampsAreUTCWithMilliseconds() {
        #expect(JSONLogHandler.timestamp(Date(timeIntervalSince1970: 1_795_975_800.123_9)) == "2026-11-29T18:10:00.123Z")
        #expect(JSONLogHandler.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
    }

    @Test func logFormatIsReadAndChecked() throws {
        let json = try parse("log_format: json\nroutes: [{path: /a, topic: a}]\ndefaults: {bootstrap_servers: [k:9092]}\n")
        #expect(json.configuration.logFormat == .json)
        let absent = try parse("routes: [{path: /a, topic: a}]\ndefaults: {bootstrap_servers: [k:9092]}\n")
        #expect(absent.configuration.logFormat == .text)
        #expect(throws: ConfigurationError.self) {
            try parse("log_format: xml\nroutes: [{path: /a, topic: a}]\ndefaults: {bootstrap_servers: [k:9092]}\n")
        }
    }
}
