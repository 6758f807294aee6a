import Foundation
import Logging
import Yams

/// A configuration read from a file, with the warnings found on the way (keys kbridge accepts but ignores).
public struct LoadedConfiguration: Sendable {
    public var configuration: BridgeConfiguration
    public var warnings: [ConfigurationIssue]
}

extension BridgeConfiguration {
    /// Reads and validates a YAML configuration file.
    ///
    /// - Throws: ``ConfigurationError`` listing every problem with file, line, column and key path.
    public static func load(
        file: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> LoadedConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigurationError(issues: [ConfigurationIssue(file: file, key: "", reason: "cannot read the file: \(error.localizedDescription)")])
        }
        return try parse(yaml: text, file: file, environment: environment)
    }

    /// Parses and validates YAML configuration text; `file` names it in error messages, and relative paths
    /// in it (certificates, `{file: ...}` secrets) are relative to its directory.
    public static func parse(
        yaml: String, file: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> LoadedConfiguration {
        let reader = ConfigurationReader(file: file, environment: environment)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigurationError(issues: [ConfigurationIssue(file: file, key: "", reason: "not valid YAML: \(error)")])
        }
        let configuration = reader.readBridge(root)
        guard reader.issues.isEmpty else {
            // In file order, so the list reads top to bottom.
            throw ConfigurationError(issues: reader.issues.enumerated().sorted {
                ($0.element.line ?? 0, $0.element.column ?? 0, $0.offset) < ($1.element.line ?? 0, $1.element.column ?? 0, $1.offset)
            }.map(\.element))
        }
        return LoadedConfiguration(configuration: configuration, warnings: reader.warnings)
    }
}

/// Walks the YAML tree, turning nodes into typed values and collecting issues with their location.
final class ConfigurationReader {
    let file: String
    /// Where `{env: NAME}` secrets are looked up.
    let environment: [String: String]
    private(set) var issues: [ConfigurationIssue] = []
    private(set) var warnings: [ConfigurationIssue] = []

    init(file: String, environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    static let topLevelKeys = ["server", "log_level", "log_format", "defaults", "routes"]
    static let serverKeys = [
        "host", "port", "threads", "shutdown_timeout", "health_path", "metrics_path", "ready_path", "tls", "admin",
        "request_read_timeout", "idle_timeout", "max_connections", "max_header_size", "max_headers", "max_uri_length",
        "max_form_fields", "max_multipart_parts", "request_id_header", "access_log",
    ]
    /// Keys of a route that may also be set once under `defaults`.
    static let sharedRouteKeys = [
        "methods", "max_body_size", "topic", "topics_query_arg", "allowed_topics", "key_query_arg",
        "forward_method", "forward_uri", "forward_headers", "forward_body",
        "bootstrap_servers", "timeout", "keepalive", "keepalive_enabled",
        "producer_request_acks", "producer_request_timeout",
        "producer_request_limits_messages_per_request", "producer_request_limits_bytes_per_request",
        "producer_request_retries_max_attempts", "producer_request_retries_backoff_timeout",
        "producer_async", "producer_async_flush_timeout", "producer_async_buffering_limits_messages_in_memory",
        "async_delivery_timeout", "idempotent", "stall_timeout",
        "compression_type", "kafka_properties", "authentication", "security", "schema_registry",
        "headers", "error_handling", "producer_async_health_probe_interval", "producer_async_health_recovery_threshold",
        "client_certificate_header", "client_authentication", "rate_limit", "trace_context_headers",
    ]
    static let routeOnlyKeys = ["name", "path", "workflow", "request_callout"]
    /// Kong keys with a meaning kbridge does not implement (yet): refused, so nothing silently behaves differently.
    static let unsupportedKongKeys: [String: String] = [
        "message_by_lua_functions": "kbridge runs no Lua: to change the message, give the route a 'workflow' "
            + "whose 'jq' or 'handlebars' node writes service_request.body (the message is built from it)",
    ]
    /// Kong keys that have no effect in kbridge: accepted with a warning so that Kong configurations load.
    static let ignoredKongKeys: [String: String] = [
        "cluster_name": "ignored: kbridge shares one producer among all routes with identical Kafka settings",
        "new_kafka_async_producer": "ignored: kbridge's async producer is librdkafka's",
        "producer_async_health_gating": "ignored: kbridge always answers 503 while the cluster is unreachable (sync and async routes)",
        "producer_async_health_failure_threshold": "ignored: kbridge reports the cluster down at the first failed login, "
            + "at librdkafka's 'all brokers down', or after stall_timeout without delivery progress; librdkafka reports these "
            + "once per outage, not once per attempt, so there is no count of consecutive failures to compare with a threshold",
    ]

    // MARK: - Issues

    func issue(_ node: Node?, _ key: String, _ reason: String) {
        issues.append(ConfigurationIssue(file: file, line: node?.mark?.line, column: node?.mark?.column, key: key, reason: reason))
    }

    func warning(_ node: Node?, _ key: String, _ reason: String) {
        warnings.append(ConfigurationIssue(file: file, line: node?.mark?.line, column: node?.mark?.column, key: key, reason: reason))
    }

    // MARK: - Typed readers

    /// The entries of a mapping, in file order; reports keys not in `allowed` (with a suggestion).
    /// - Parameter nullIsUnset: leave out keys whose value is `null`, as Kong means them (an export lists every field,
    ///   unset ones as `null`); for Kong's plugin configuration only.
    func mapping(_ node: Node, _ path: String, allowed: [String], nullIsUnset: Bool = false) -> [(key: String, node: Node)]? {
        guard let mapping = node.mapping else {
            issue(node, path, "expected a mapping of keys to values")
            return nil
        }
        var entries: [(key: String, node: Node)] = []
        var seen = Set<String>()
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                issue(keyNode, path, "keys must be strings")
                continue
            }
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            guard seen.insert(key).inserted else {
                issue(keyNode, keyPath, "duplicate key")
                continue
            }
            if nullIsUnset, value.null != nil,
               allowed.contains(key) || Self.unsupportedKongKeys[key] != nil || Self.ignoredKongKeys[key] != nil { continue }
            if allowed.contains(key) {
                entries.append((key, value))
            } else if let reason = Self.unsupportedKongKeys[key], allowed.contains("topic") {
                issue(keyNode, keyPath, reason)
            } else if let reason = Self.ignoredKongKeys[key], allowed.contains("topic") {
                warning(keyNode, keyPath, reason)
            } else {
                let suggestion = Self.closest(to: key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                issue(keyNode, keyPath, "unknown key\(suggestion)")
            }
        }
        return entries
    }

    func string(_ node: Node, _ path: String) -> String? {
        guard let scalar = node.scalar, node.null == nil else {
            issue(node, path, "expected a string")
            return nil
        }
        return scalar.string
    }

    func nonEmptyString(_ node: Node, _ path: String) -> String? {
        guard let value = string(node, path) else { return nil }
        guard !value.isEmpty else {
            issue(node, path, "must not be empty")
            return nil
        }
        return value
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        guard node.scalar != nil, let value = node.bool else {
            issue(node, path, "expected true or false, got '\(node.scalar?.string ?? "a collection")'")
            return nil
        }
        return value
    }

    func int(_ node: Node, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard node.scalar != nil, let value = node.int else {
            issue(node, path, "expected an integer, got '\(node.scalar?.string ?? "a collection")'")
            return nil
        }
        guard range.contains(value) else {
            issue(node, path, "\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    func stringList(_ node: Node, _ path: String) -> [String]? {
        guard let sequence = node.sequence else {
            issue(node, path, "expected a list")
            return nil
        }
        var values: [String] = []
        for (index, element) in sequence.enumerated() {
            if let value = nonEmptyString(element, "\(path)[\(index)]") { values.append(value) }
        }
        return values
    }

    /// The closest candidate by edit distance, if it is close enough to be a likely typo.
    static func closest(to word: String, in candidates: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var current = [i + 1]
                for (j, cb) in b.enumerated() {
                    current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
                }
                previous = current
            }
            return previous[b.count]
        }
        let scored = candidates.map { ($0, distance(Array(word), Array($0))) }.min { $0.1 < $1.1 }
        guard let (candidate, score) = scored, score <= max(2, word.count / 3) else { return nil }
        return candidate
    }
}
