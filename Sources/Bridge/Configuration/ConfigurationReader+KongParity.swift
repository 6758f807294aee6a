import Yams

/// Kong 3.15/3.16 kafka-upstream keys: `headers` (record headers) and `error_handling`.
extension ConfigurationReader {
    static let recordHeaderKeys = [
        "forward_http_headers_as_record_headers", "forward_all_by_default", "include_headers", "exclude_headers",
        "name_mappings", "repeated_headers_behavior",
    ]

    /// Longest HTTP header name kbridge accepts in `include_headers`, `exclude_headers` and `name_mappings`.
    static let maximumHeaderNameLength = 1024

    func readRecordHeaders(_ node: Node, _ path: String) -> RecordHeaderSettings? {
        var settings = RecordHeaderSettings()
        if node.null != nil { return settings }
        guard let entries = mapping(node, path, allowed: Self.recordHeaderKeys, nullIsUnset: true) else { return nil }
        for (key, value) in entries {
            let keyPath = "\(path).\(key)"
            switch key {
            case "forward_http_headers_as_record_headers": if let flag = bool(value, keyPath) { settings.forwardAsRecordHeaders = flag }
            case "forward_all_by_default": if let flag = bool(value, keyPath) { settings.forwardAllByDefault = flag }
            case "include_headers": if let names = headerNames(value, keyPath) { settings.includeHeaders = names }
            case "exclude_headers": if let names = headerNames(value, keyPath) { settings.excludeHeaders = names }
            case "name_mappings": if let mappings = headerNameMappings(value, keyPath) { settings.nameMappings = mappings }
            case "repeated_headers_behavior":
                guard let text = string(value, keyPath) else { break }
                if let behavior = RecordHeaderSettings.RepeatedHeaders(rawValue: text) {
                    settings.repeatedHeaders = behavior
                } else {
                    let choices = RecordHeaderSettings.RepeatedHeaders.allCases.map(\.rawValue).joined(separator: ", ")
                    issue(value, keyPath, "unknown behaviour '\(text)' (\(choices))")
                }
            default: break
            }
        }
        return settings
    }

    /// A list of HTTP header names, lower-cased (Kong exports `null` for an unset list).
    private func headerNames(_ node: Node, _ path: String) -> Set<String>? {
        if node.null != nil { return [] }
        guard let names = stringList(node, path) else { return nil }
        var result = Set<String>()
        for (index, name) in names.enumerated() where validHeaderName(name, node.sequence?[index], "\(path)[\(index)]") {
            result.insert(name.lowercased())
        }
        return result
    }

    private func headerNameMappings(_ node: Node, _ path: String) -> [String: String]? {
        if node.null != nil { return [:] }
        guard let mapping = node.mapping else {
            issue(node, path, "expected a mapping of HTTP header names to record header names")
            return nil
        }
        var mappings: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            guard let name = keyNode.scalar?.string else {
                issue(keyNode, path, "HTTP header names must be strings")
                continue
            }
            let entryPath = "\(path).\(name)"
            guard validHeaderName(name, keyNode, entryPath), let recordName = nonEmptyString(valueNode, entryPath) else { continue }
            guard recordName.utf8.count <= Self.maximumHeaderNameLength else {
                issue(valueNode, entryPath, "a record header name is limited to \(Self.maximumHeaderNameLength) bytes")
                continue
            }
            guard mappings.updateValue(recordName, forKey: name.lowercased()) == nil else {
                issue(keyNode, entryPath, "'\(name)' is mapped twice (header names are case-insensitive)")
                continue
            }
        }
        return mappings
    }

    /// An HTTP field name: a non-empty token (RFC 9110 `tchar`s), of bounded length.
    private func validHeaderName(_ name: String, _ node: Node?, _ path: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= Self.maximumHeaderNameLength else {
            issue(node, path, name.isEmpty ? "must not be empty" : "a header name is limited to \(Self.maximumHeaderNameLength) bytes")
            return false
        }
        let token = name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
        guard token else {
            issue(node, path, "'\(name)' is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)")
            return false
        }
        return true
    }

    /// `error_handling`: `{return_error_message: bool}`; `nil` when the value is unusable.
    func readErrorHandling(_ node: Node, _ path: String) -> Bool? {
        if node.null != nil { return false }
        guard let entries = mapping(node, path, allowed: ["return_error_message"], nullIsUnset: true) else { return nil }
        var returnErrorMessage = false
        for (key, value) in entries where key == "return_error_message" {
            guard let flag = bool(value, "\(path).\(key)") else { return nil }
            returnErrorMessage = flag
        }
        return returnErrorMessage
    }
}
