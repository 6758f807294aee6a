import Kafka
import NIOCore
import NIOHTTP1
import Testing

@testable import Bridge

/// Kong 3.15's `headers`: which HTTP headers become record headers, under which names, and how repeated ones are carried.
@Suite struct RecordHeaderTests {
    func settings(_ yaml: String) throws -> RecordHeaderSettings {
        let loaded = try parse("routes:\n  - {path: /a, topic: t, bootstrap_servers: 'k:1', headers: \(yaml)}\n")
        return try #require(loaded.configuration.routes.first).recordHeaders
    }

    func pairs(_ headers: [KafkaRecordHeader]) -> [String] {
        headers.map { "\($0.name)=\($0.value.map { String(decoding: $0, as: UTF8.self) } ?? "nil")" }
    }

    let request: HTTPHeaders = [
        "Content-Type": "application/json", "X-Request-ID": "r-1", "X-Tag": "a", "Authorization": "Bearer s", "x-tag": "b", "X-TAG": "c",
    ]

    @Test func kongDefaultsForwardNothing() throws {
        let defaults = try settings("{}")
        #expect(defaults == RecordHeaderSettings())
        #expect(defaults.forwardAsRecordHeaders)
        #expect(!defaults.forwardAllByDefault)
        #expect(defaults.repeatedHeaders == .retainDuplicates)
        #expect(defaults.recordHeaders(for: request).isEmpty)
        let route = try #require(try parse("routes:\n  - {path: /a, topic: t, bootstrap_servers: 'k:1'}\n").configuration.routes.first)
        #expect(route.recordHeaders.recordHeaders(for: request).isEmpty)
    }

    @Test func includeHeadersIsAnAllowlistMatchedCaseInsensitively() throws {
        let selected = try settings("{include_headers: [x-request-id, X-Tag]}")
        #expect(pairs(selected.recordHeaders(for: request)) == ["x-request-id=r-1", "x-tag=a", "x-tag=b", "x-tag=c"])
    }

    @Test func forwardAllByDefaultForwardsAllButExcludeHeaders() throws {
        let selected = try settings("{forward_all_by_default: true, exclude_headers: [AUTHORIZATION, x-tag], include_headers: [ignored]}")
        #expect(pairs(selected.recordHeaders(for: request)) == ["content-type=application/json", "x-request-id=r-1"])
    }

    @Test func theSwitchTurnsEverythingOff() throws {
        let off = try settings("{forward_http_headers_as_record_headers: false, forward_all_by_default: true}")
        #expect(off.recordHeaders(for: request).isEmpty)
    }

    @Test func nameMappingsRenameAndKeepTheirSpelling() throws {
        let mapped = try settings("{include_headers: [x-request-id, x-tag], name_mappings: {X-Request-Id: Trace-ID}}")
        #expect(pairs(mapped.recordHeaders(for: request)) == ["Trace-ID=r-1", "x-tag=a", "x-tag=b", "x-tag=c"])
    }

    @Test(arguments: [
        ("retain_duplicates", ["x-tag=a", "x-request-id=r-1", "x-tag=b", "x-tag=c"]),
        ("concatenate_by_comma", ["x-tag=a,b,c", "x-request-id=r-1"]),
        ("take_first", ["x-tag=a", "x-request-id=r-1"]),
    ])
    func repeatedHeadersFollowTheBehaviour(behavior: String, expected: [String]) throws {
        let selected = try settings("{include_headers: [x-tag, x-request-id], repeated_headers_behavior: \(behavior)}")
        let headers: HTTPHeaders = ["X-Tag": "a", "X-Request-ID": "r-1", "x-tag": "b", "X-TAG": "c"]
        #expect(pairs(selected.recordHeaders(for: headers)) == expected)
    }

    @Test func kongExportNullsAreDefaults() throws {
        let exported = try settings(
            "{exclude_headers: null, include_headers: null, name_mappings: null, forward_all_by_default: false, "
                + "forward_http_headers_as_record_headers: true, repeated_headers_behavior: retain_duplicates}")
        #expect(exported == RecordHeaderSettings())
    }

    /// 10,000 headers of one name concatenated, and 10,000 distinct names: one pass, hashed lookups.
    @Test(arguments: RecordHeaderSettings.RepeatedHeaders.allCases)
    func tenThousandHeadersAreSelectedInLinearTime(behavior: RecordHeaderSettings.RepeatedHeaders) {
        var selection = RecordHeaderSettings()
        selection.forwardAllByDefault = true
        selection.repeatedHeaders = behavior
        func headers(_ count: Int) -> HTTPHeaders {
            var headers = HTTPHeaders()
            for index in 0..<count {
                headers.add(name: "X-Same", value: "v\(index)")
                headers.add(name: "X-Header-\(index)", value: "\(index)")
            }
            return headers
        }
        func fastest(_ headers: HTTPHeaders) -> (records: [KafkaRecordHeader], elapsed: Duration) {
            var best: (records: [KafkaRecordHeader], elapsed: Duration)?
            for _ in 0..<5 {
                let start = ContinuousClock.now
                let records = selection.recordHeaders(for: headers)
                let elapsed = ContinuousClock.now - start
                if best == nil || elapsed < best!.elapsed { best = (records, elapsed) }
            }
            return best!
        }
        let small = fastest(headers(1_250)).elapsed
        let (records, elapsed) = fastest(headers(10_000))
        switch behavior {
        case .retainDuplicates: #expect(records.count == 20_000)
        case .takeFirst: #expect(records.count == 10_001)
        case .concatenateByComma:
            #expect(records.count == 10_001)
            let joinedLength: Int = (0..<10_000).map { "v\($0)".utf8.count + 1 }.reduce(0, +) - 1
            #expect(records.first?.value?.count == joinedLength)
        }
        // 8 times the headers: linear is about 8 times the time, quadratic 64 times.
        #expect(elapsed < small * 40, "10,000 took \(elapsed), 1,250 took \(small)")
        #expect(elapsed < .seconds(20), "selecting from 20,000 headers took \(elapsed)")
    }
}
