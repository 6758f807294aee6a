import Kafka
import NIOHTTP1

/// Kong 3.15's `headers`: which HTTP request headers become Kafka record headers, under which names, and how a
/// header sent several times is carried. Separate from `forward_headers` (the headers inside the JSON envelope):
/// both can be on. HTTP header names are matched case-insensitively; a record header is named by the lower-cased
/// HTTP name (as Kong's `kong.request.get_headers()` gives it) unless `name_mappings` renames it.
public struct RecordHeaderSettings: Sendable, Hashable {
    /// `repeated_headers_behavior`: what a header sent more than once becomes.
    public enum RepeatedHeaders: String, Sendable, Hashable, CaseIterable {
        /// One record header per value, in request order (Kong's default).
        case retainDuplicates = "retain_duplicates"
        /// One record header whose value is the values joined by `,`.
        case concatenateByComma = "concatenate_by_comma"
        /// One record header with the first value.
        case takeFirst = "take_first"
    }

    /// `forward_http_headers_as_record_headers`: the switch for the whole feature. Default: true.
    public var forwardAsRecordHeaders = true
    /// `forward_all_by_default`: false forwards only `include_headers`; true forwards every header but
    /// `exclude_headers`. Default: false.
    public var forwardAllByDefault = false
    /// `include_headers`, lower-cased: the allowlist when `forward_all_by_default` is false. Default: empty.
    public var includeHeaders: Set<String> = []
    /// `exclude_headers`, lower-cased: the blocklist when `forward_all_by_default` is true. Default: empty.
    public var excludeHeaders: Set<String> = []
    /// `name_mappings`: lower-cased HTTP header name → record header name (used as written). Default: empty.
    public var nameMappings: [String: String] = [:]
    /// `repeated_headers_behavior`. Default: `retain_duplicates`.
    public var repeatedHeaders = RepeatedHeaders.retainDuplicates

    public init() {}

    /// Whether any request can yield a record header (false for Kong's defaults: nothing is included).
    public var isActive: Bool { forwardAsRecordHeaders && (forwardAllByDefault || !includeHeaders.isEmpty) }

    /// Whether the header named `lowercasedName` is forwarded.
    func selects(_ lowercasedName: String) -> Bool {
        forwardAllByDefault ? !excludeHeaders.contains(lowercasedName) : includeHeaders.contains(lowercasedName)
    }

    /// The record headers for a request's headers, in the order the headers first appear. One pass over the headers
    /// with hashed lookups: linear in their number and size.
    func recordHeaders(for headers: some Sequence<(name: String, value: String)>) -> [KafkaRecordHeader] {
        guard isActive else { return [] }
        var records: [KafkaRecordHeader] = []
        /// For `concatenate_by_comma` and `take_first`: the index in `records` of each HTTP name already seen.
        var positions: [String: Int] = [:]
        for (name, value) in headers {
            let lowercased = name.lowercased()
            guard selects(lowercased) else { continue }
            switch repeatedHeaders {
            case .retainDuplicates:
                records.append(KafkaRecordHeader(name: nameMappings[lowercased] ?? lowercased, value: Array(value.utf8)))
            case .takeFirst:
                guard positions[lowercased] == nil else { continue }
                positions[lowercased] = records.count
                records.append(KafkaRecordHeader(name: nameMappings[lowercased] ?? lowercased, value: Array(value.utf8)))
            case .concatenateByComma:
                if let index = positions[lowercased] {
                    // Appending to the stored bytes is amortised constant time: no rebuilding of the joined value.
                    records[index].value?.append(UInt8(ascii: ","))
                    records[index].value?.append(contentsOf: value.utf8)
                } else {
                    positions[lowercased] = records.count
                    records.append(KafkaRecordHeader(name: nameMappings[lowercased] ?? lowercased, value: Array(value.utf8)))
                }
            }
        }
        return records
    }

    /// The record headers for an HTTP request's headers.
    func recordHeaders(for headers: HTTPHeaders) -> [KafkaRecordHeader] {
        guard isActive else { return [] }
        return recordHeaders(for: headers.lazy.map { (name: $0.name, value: $0.value) })
    }
}
