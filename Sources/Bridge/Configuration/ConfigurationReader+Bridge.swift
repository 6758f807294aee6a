import Kafka
import Logging
import Yams

extension ConfigurationReader {
    func readBridge(_ root: Node?) -> BridgeConfiguration {
        var configuration = BridgeConfiguration()
        guard let root, root.null == nil else {
            issue(nil, "", "the file is empty; it needs at least 'routes'")
            return configuration
        }
        guard let entries = mapping(root, "", allowed: Self.topLevelKeys) else { return configuration }
        let values = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })

        if let node = values["server"] { configuration.server = readServer(node) }
        if let node = values["log_level"], let text = string(node, "log_level") {
            if let level = Logger.Level(rawValue: text.lowercased()) {
                configuration.logLevel = level
            } else {
                issue(node, "log_level", "unknown level '\(text)' (trace, debug, info, notice, warning, error, critical)")
            }
        }
        if let node = values["log_format"], let text = string(node, "log_format") {
            if let format = LogFormat(rawValue: text.lowercased()) {
                configuration.logFormat = format
            } else {
                issue(node, "log_format", "unknown format '\(text)' (text, json)")
            }
        }
        var defaults: [String: (node: Node, path: String)] = [:]
        if let node = values["defaults"], let entries = mapping(node, "defaults", allowed: Self.sharedRouteKeys, nullIsUnset: true) {
            for entry in entries { defaults[entry.key] = (entry.node, "defaults.\(entry.key)") }
        }
        guard let routesNode = values["routes"] else {
            issue(root, "routes", "required key missing: list at least one route")
            return configuration
        }
        guard let sequence = routesNode.sequence, !sequence.isEmpty else {
            issue(routesNode, "routes", "expected a non-empty list of routes")
            return configuration
        }
        var claimed: [String: String] = [:]  // "METHOD pattern" -> route path in the file
        for (endpoint, key) in [(configuration.server.healthPath, "server.health_path"), (configuration.server.metricsPath, "server.metrics_path"),
                                (configuration.server.readyPath, "server.ready_path")] {
            if let endpoint, let pattern = try? RoutePattern(parsing: endpoint) { claimed["GET \(pattern)"] = key }
        }
        for (index, node) in sequence.enumerated() {
            guard let route = readRoute(node, "routes[\(index)]", defaults: defaults) else { continue }
            let pattern = (try? RoutePattern(parsing: route.path))?.description ?? route.path
            for method in route.methods {
                let claim = "\(method) \(pattern)"
                if let other = claimed[claim] {
                    issue(node, "routes[\(index)]", "\(claim) is already served by \(other)")
                } else {
                    claimed[claim] = "routes[\(index)]"
                }
            }
            configuration.routes.append(route)
        }
        checkClientCertificateHeaders(configuration, routes: Array(sequence), defaults: values["defaults"])
        return configuration
    }

    func readServer(_ node: Node) -> ServerConfiguration {
        var server = ServerConfiguration()
        for (key, value) in mapping(node, "server", allowed: Self.serverKeys) ?? [] {
            let path = "server.\(key)"
            switch key {
            case "host": if let host = nonEmptyString(value, path) { server.host = host }
            case "port": if let port = int(value, path, in: 0...65535) { server.port = port }
            case "threads": if let threads = int(value, path, in: 1...256) { server.threads = threads }
            case "shutdown_timeout":
                if let ms = int(value, path, in: 0...3_600_000) { server.shutdownTimeout = .milliseconds(ms) }
            case "request_read_timeout":
                if let ms = int(value, path, in: 1...3_600_000) { server.requestReadTimeout = .milliseconds(ms) }
            case "idle_timeout":
                if let ms = int(value, path, in: 1...86_400_000) { server.idleTimeout = .milliseconds(ms) }
            case "max_connections": if let count = int(value, path, in: 1...1_000_000) { server.maxConnections = count }
            case "max_header_size": if let bytes = int(value, path, in: 1024...(1 << 20)) { server.maxHeaderSize = bytes }
            case "max_headers": if let count = int(value, path, in: 1...10_000) { server.maxHeaders = count }
            case "max_uri_length": if let bytes = int(value, path, in: 64...(1 << 20)) { server.maxURILength = bytes }
            case "max_form_fields": if let count = int(value, path, in: 1...1_000_000) { server.maxFormFields = count }
            case "max_multipart_parts": if let count = int(value, path, in: 1...1_000_000) { server.maxMultipartParts = count }
            case "tls": server.tls = readServerTLS(value, path)
            case "access_log": if let enabled = bool(value, path) { server.accessLog = enabled }
            case "request_id_header":
                if let text = string(value, path) {
                    if text.isEmpty {
                        server.requestIDHeader = nil
                    } else if text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) {
                        server.requestIDHeader = text.lowercased()
                    } else {
                        issue(value, path, "'\(text)' is not a header name")
                    }
                }
            case "admin": server.admin = readAdminListener(value, path)
            case "health_path", "metrics_path", "ready_path":
                guard let text = string(value, path) else { break }
                guard text.isEmpty || text.hasPrefix("/") else {
                    issue(value, path, "must start with '/' (or be \"\" to turn the endpoint off)")
                    break
                }
                switch key {
                case "health_path": server.healthPath = text.isEmpty ? nil : text
                case "ready_path": server.readyPath = text.isEmpty ? nil : text
                default: server.metricsPath = text.isEmpty ? nil : text
                }
            default: break
            }
        }
        return server
    }

    func readRoute(_ node: Node, _ path: String, defaults: [String: (node: Node, path: String)]) -> RouteConfiguration? {
        guard let entries = mapping(node, path, allowed: Self.routeOnlyKeys + Self.sharedRouteKeys, nullIsUnset: true) else { return nil }
        var values = defaults
        for entry in entries { values[entry.key] = (entry.node, "\(path).\(entry.key)") }
        let issuesBefore = issues.count

        guard let (pathNode, pathKey) = values["path"] else {
            issue(node, "\(path).path", "required key missing")
            return nil
        }
        guard let routePath = nonEmptyString(pathNode, pathKey) else { return nil }
        let pattern: RoutePattern
        do {
            pattern = try RoutePattern(parsing: routePath)
        } catch {
            issue(pathNode, pathKey, error.reason)
            return nil
        }

        var settings = KafkaSettings(bootstrapServers: [])
        if let (serversNode, serversKey) = values["bootstrap_servers"] {
            settings.bootstrapServers = readBootstrapServers(serversNode, serversKey)
        } else {
            issue(node, "\(path).bootstrap_servers", "required key missing (set it here or under 'defaults')")
        }

        var route = RouteConfiguration(path: routePath, topic: nil, kafka: settings)
        func read<T>(_ key: String, _ reader: (Node, String) -> T?, into apply: (T) -> Void) {
            if let (valueNode, valuePath) = values[key], let value = reader(valueNode, valuePath) { apply(value) }
        }
        read("methods", readMethods) { route.methods = $0 }
        read("max_body_size", { self.int($0, $1, in: 0...(1 << 30)) }) { route.maxBodySize = $0 }
        read("topic", readTopic) { route.topic = $0 }
        read("topics_query_arg", nonEmptyString) { route.topicsQueryArgument = $0 }
        read("allowed_topics", { node, key in self.stringList(node, key).map { topics in
            topics.enumerated().compactMap { self.validTopic($1, node.sequence?[$0], "\(key)[\($0)]") }
        } }) { route.allowedTopics = $0 }
        read("key_query_arg", nonEmptyString) { route.keyQueryArgument = $0 }
        read("forward_method", bool) { route.fields.method = $0 }
        read("forward_uri", bool) { route.fields.uri = $0 }
        read("forward_headers", bool) { route.fields.headers = $0 }
        read("forward_body", bool) { route.fields.body = $0 }
        read("timeout", { self.int($0, $1, in: 1...3_600_000) }) { route.kafka.timeout = $0 }
        read("keepalive", { self.int($0, $1, in: 0...86_400_000) }) { route.kafka.keepalive = $0 }
        read("keepalive_enabled", bool) { route.kafka.keepaliveEnabled = $0 }
        read("producer_request_acks", { node, key in
            guard let acks = self.int(node, key, in: -1...1) else { return nil }
            return acks
        }) { route.kafka.acks = $0 }
        read("producer_request_timeout", { self.int($0, $1, in: 1...900_000) }) { route.kafka.requestTimeout = $0 }
        read("producer_request_limits_messages_per_request", { self.int($0, $1, in: 1...1_000_000) }) {
            route.kafka.messagesPerRequest = $0
        }
        read("producer_request_limits_bytes_per_request", { self.int($0, $1, in: 1...2_147_483_647) }) {
            route.kafka.bytesPerRequest = $0
        }
        read("producer_request_retries_max_attempts", { self.int($0, $1, in: 0...2_147_483_647) }) {
            route.kafka.retriesMaxAttempts = $0
        }
        read("producer_request_retries_backoff_timeout", { self.int($0, $1, in: 1...300_000) }) {
            route.kafka.retriesBackoff = $0
        }
        read("producer_async", bool) { route.kafka.async = $0 }
        read("async_delivery_timeout", { self.int($0, $1, in: 1...86_400_000) }) { route.kafka.asyncDeliveryTimeout = $0 }
        read("idempotent", bool) { route.kafka.idempotent = $0 }
        read("stall_timeout", { self.int($0, $1, in: 0...3_600_000) }) { route.kafka.stallTimeout = $0 }
        read("producer_async_flush_timeout", { self.int($0, $1, in: 0...900_000) }) { route.kafka.asyncFlushTimeout = $0 }
        read("producer_async_buffering_limits_messages_in_memory", { self.int($0, $1, in: 1...10_000_000) }) {
            route.kafka.asyncBufferedMessages = $0
        }
        read("compression_type", { node, key in
            guard let codec = self.string(node, key) else { return nil }
            guard ["none", "gzip", "snappy", "lz4", "zstd"].contains(codec) else {
                self.issue(node, key, "unknown codec '\(codec)' (none, gzip, snappy, lz4, zstd)")
                return nil
            }
            return codec
        }) { route.kafka.compression = $0 }
        read("producer_async_health_probe_interval", { self.int($0, $1, in: 100...600_000) }) { route.kafka.healthProbeInterval = $0 }
        read("producer_async_health_recovery_threshold", { self.int($0, $1, in: 1...100) }) { route.kafka.healthRecoveryThreshold = $0 }
        read("kafka_properties", readProperties) { route.kafka.additionalProperties = $0 }
        read("authentication", readAuthentication) { route.kafka.authentication = $0 }
        read("security", readSecurity) { route.kafka.tls = $0 }
        read("schema_registry", readSchemaRegistry) { route.schemaRegistry = $0 }
        read("headers", readRecordHeaders) { route.recordHeaders = $0 }
        read("client_certificate_header", readRecordHeaderName) { route.clientCertificateHeader = $0 }
        read("trace_context_headers", bool) { route.traceContextHeaders = $0 }
        read("error_handling", readErrorHandling) { route.returnErrorMessage = $0 }
        read("workflow", readWorkflow) { route.workflow = $0 }
        read("client_authentication", readClientAuthentication) { route.clientAuthentication = $0 }
        read("rate_limit", readRateLimit) { route.rateLimit = $0 }
        checkRateLimit(route, values["rate_limit"])
        if values["request_callout"] != nil, values["workflow"] != nil {
            issue(node, "\(path).request_callout", "a route has either a workflow or a request_callout, not both: "
                  + "write the callouts as call nodes of the workflow")
        } else {
            read("request_callout", readRequestCallout) { route.workflow = $0 }
        }
        read("name", nonEmptyString) { route.name = $0 }
        if values["name"] == nil { route.name = "\(route.methods.joined(separator: ",")) \(routePath)" }

        // Rules across keys.
        if !(route.fields.method || route.fields.uri || route.fields.headers || route.fields.body) {
            issue(node, path, "at least one of forward_method, forward_uri, forward_headers, forward_body must be true")
        }
        if route.topic == nil, !pattern.hasTopic {
            issue(node, "\(path).topic", "required key missing (or put '{topic}' in the path)")
        }
        if route.schemaRegistry != nil {
            for key in ["forward_method", "forward_uri", "forward_headers", "forward_body"] where values[key] != nil {
                warning(values[key]!.node, values[key]!.path, "ignored on a schema_registry route: the body itself is the record value")
            }
        }
        if route.kafka.async, route.kafka.asyncFlushTimeout >= route.kafka.asyncDeliveryTimeout {
            issue(values["producer_async_flush_timeout"]?.node ?? node, values["producer_async_flush_timeout"]?.path ?? path,
                  "producer_async_flush_timeout (\(route.kafka.asyncFlushTimeout) ms) must be less than async_delivery_timeout (\(route.kafka.asyncDeliveryTimeout) ms)")
        }
        if route.kafka.async, let stallTimeout = route.kafka.stallTimeout, stallTimeout > 0, stallTimeout <= route.kafka.asyncFlushTimeout {
            issue(values["stall_timeout"]?.node ?? node, values["stall_timeout"]?.path ?? path,
                  "stall_timeout (\(stallTimeout) ms) must be more than producer_async_flush_timeout (\(route.kafka.asyncFlushTimeout) ms): messages wait that long before they are sent")
        }
        if let (idempotentNode, idempotentPath) = values["idempotent"], route.kafka.idempotent, !route.kafka.idempotenceEnabled {
            let reason = route.kafka.acks != -1 ? "producer_request_acks is \(route.kafka.acks)" : "producer_request_retries_max_attempts is 0"
            warning(idempotentNode, idempotentPath, "ignored: an idempotent producer needs producer_request_acks: -1 and retries, and \(reason)")
        }
        if route.topicsQueryArgument != nil || pattern.hasTopic, route.allowedTopics.isEmpty {
            warning(node, path, "clients choose the topic and allowed_topics is empty: any topic name is accepted")
        }
        if issues.count == issuesBefore, !route.kafka.bootstrapServers.isEmpty {
            do {
                // With TLS, librdkafka also loads the CA, certificate and key here (a mismatch is an error).
                try KafkaProducer.validate(properties: route.kafka.librdkafkaProperties, delegationToken: route.kafka.delegationTokenLogin)
            } catch {
                let culprit = route.kafka.tls != nil && error.message.contains("ssl") ? "security" : "kafka_properties"
                issue(values[culprit]?.node ?? node, values[culprit]?.path ?? path, error.message)
            }
        }
        return route
    }

    func readBootstrapServers(_ node: Node, _ path: String) -> [BrokerAddress] {
        var addresses: [BrokerAddress] = []
        func parse(_ text: String, _ element: Node, _ elementPath: String) {
            for part in text.split(separator: ",") {
                guard let address = BrokerAddress(part) else {
                    issue(element, elementPath, "'\(part.trimmingSpaces())' is not host:port")
                    continue
                }
                addresses.append(address)
            }
        }
        if let scalar = node.scalar {
            parse(scalar.string, node, path)
        } else if let sequence = node.sequence {
            for (index, element) in sequence.enumerated() {
                let elementPath = "\(path)[\(index)]"
                if let text = element.scalar?.string {
                    parse(text, element, elementPath)
                } else if let entries = mapping(element, elementPath, allowed: ["host", "port"]) {
                    let fields = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
                    guard let hostNode = fields["host"], let portNode = fields["port"] else {
                        issue(element, elementPath, "a broker record needs 'host' and 'port'")
                        continue
                    }
                    if let host = nonEmptyString(hostNode, "\(elementPath).host"),
                       let port = int(portNode, "\(elementPath).port", in: 1...65535) {
                        addresses.append(BrokerAddress(host: host, port: port))
                    }
                }
            }
        } else {
            issue(node, path, "expected 'host:port', a list of them, or a list of {host, port}")
        }
        if addresses.isEmpty, node.sequence?.isEmpty ?? false { issue(node, path, "lists no broker") }
        return addresses
    }

    func readMethods(_ node: Node, _ path: String) -> [String]? {
        guard let methods = stringList(node, path) else { return nil }
        guard !methods.isEmpty else {
            issue(node, path, "lists no method")
            return nil
        }
        var result: [String] = []
        for (index, method) in methods.enumerated() {
            let upper = method.uppercased()
            guard upper.allSatisfy({ $0.isLetter && $0.isASCII }) else {
                issue(node.sequence?[index], "\(path)[\(index)]", "'\(method)' is not an HTTP method")
                continue
            }
            if !result.contains(upper) { result.append(upper) }
        }
        return result
    }

    func readTopic(_ node: Node, _ path: String) -> String? {
        guard let topic = string(node, path) else { return nil }
        return validTopic(topic, node, path)
    }

    func validTopic(_ topic: String, _ node: Node?, _ path: String) -> String? {
        if let reason = TopicName.problem(with: topic) {
            issue(node, path, reason)
            return nil
        }
        return topic
    }

    func readProperties(_ node: Node, _ path: String) -> [String: String]? {
        guard let mapping = node.mapping else {
            issue(node, path, "expected a mapping of librdkafka property names to values")
            return nil
        }
        var properties: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.scalar?.string, let value = valueNode.scalar?.string else {
                issue(keyNode, path, "property names and values must be scalars")
                continue
            }
            properties[key] = value
        }
        return properties
    }
}

/// Kafka's rules for topic names.
enum TopicName {
    static let maximumLength = 249

    /// Why `name` is not a legal topic name, or `nil` when it is.
    static func problem(with name: some StringProtocol) -> String? {
        if name.isEmpty { return "a topic name must not be empty" }
        if name.utf8.count > maximumLength { return "topic name '\(name)' is longer than \(maximumLength) characters" }
        if name == "." || name == ".." { return "'\(name)' is not a legal topic name" }
        let legal = name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        return legal ? nil : "topic name '\(name)' may only contain letters, digits, '.', '_' and '-'"
    }
}
