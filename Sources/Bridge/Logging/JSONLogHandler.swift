import Foundation
import Logging
import NIOCore
import Synchronization

/// `log_format: json`: one JSON object per line, for log collectors (Loki, Elasticsearch, CloudWatch):
/// `{"timestamp":"2026-11-29T18:30:00.123Z","level":"warning","logger":"kbridge","message":"…","source":"Bridge",`
/// `"metadata":{"route":"/orders"}}`. Metadata values are strings; nested ones (arrays, dictionaries) are written as
/// JSON arrays and objects. Each line is written with one `write(2)`, so lines from several threads never mix.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: Output

    /// Where lines go: a file descriptor (standard error by default), or a sink (for tests).
    public final class Output: Sendable {
        private let sink: @Sendable (ByteBuffer) -> Void

        public init(sink: @escaping @Sendable (ByteBuffer) -> Void) { self.sink = sink }

        public static let standardError = Output { line in
            line.withUnsafeReadableBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Foundation.write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                    if written > 0 { offset += written } else if written < 0, errno == EINTR { continue } else { return }
                }
            }
        }

        func write(_ line: ByteBuffer) { sink(line) }
    }

    public init(label: String, output: Output = .standardError, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.output = output
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = ByteBuffer()
        line.reserveCapacity(256)
        line.writeStaticString("{\"timestamp\":")
        line.writeJSONString(Self.timestamp(Date()))
        line.writeStaticString(",\"level\":")
        line.writeJSONString(event.level.rawValue)
        line.writeStaticString(",\"logger\":")
        line.writeJSONString(label)
        line.writeStaticString(",\"message\":")
        line.writeJSONString(event.message.description)
        line.writeStaticString(",\"source\":")
        line.writeJSONString(event.source)
        if !merged.isEmpty {
            line.writeStaticString(",\"metadata\":")
            Self.write(.dictionary(merged), into: &line)
        }
        line.writeStaticString("}\n")
        output.write(line)
    }

    private static func write(_ value: Logger.Metadata.Value, into line: inout ByteBuffer) {
        switch value {
        case .string(let text): line.writeJSONString(text)
        case .stringConvertible(let convertible): line.writeJSONString(convertible.description)
        case .array(let values):
            line.writeStaticString("[")
            for (index, element) in values.enumerated() {
                if index > 0 { line.writeStaticString(",") }
                write(element, into: &line)
            }
            line.writeStaticString("]")
        case .dictionary(let entries):
            line.writeStaticString("{")
            for (index, (key, element)) in entries.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { line.writeStaticString(",") }
                line.writeJSONString(key)
                line.writeStaticString(":")
                write(element, into: &line)
            }
            line.writeStaticString("}")
        }
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-29T18:30:00.123Z`.
    static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        let milliseconds = Int((date.timeIntervalSince1970 - Double(seconds)) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), min(milliseconds, 999))
    }
}

/// `log_format`: how kbridge writes its log lines.
public enum LogFormat: String, Sendable, CaseIterable {
    /// swift-log's text lines: `2026-11-29T18:30:00+0000 warning kbridge: route=/orders …`.
    case text
    /// One JSON object per line (``JSONLogHandler``).
    case json

    /// The log handler factory for `LoggingSystem.bootstrap`.
    public var makeHandler: @Sendable (String) -> any LogHandler {
        switch self {
        case .text: { StreamLogHandler.standardError(label: $0) }
        case .json: { JSONLogHandler(label: $0) }
        }
    }
}
