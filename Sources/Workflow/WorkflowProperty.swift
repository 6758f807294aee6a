import JSON

/// The properties a `property` node reads or writes. kbridge's names first; Kong's names that have a meaning here
/// are accepted as aliases.
public enum WorkflowProperty: Sendable, Hashable {
    /// The topic, or a list of topics for a fan-out (still limited by the route's `allowed_topics`).
    case kafkaTopic
    /// The record key.
    case kafkaKey
    /// Kafka record headers: a map of names to a string or a list of strings.
    case kafkaHeaders
    /// The status of the answer to the client.
    case responseStatus
    case clientIP
    case clientPort
    /// The consumer the route's `client_authentication` authenticated (absent without it).
    case clientConsumer
    case routeName
    case requestID
    /// The subject of the client's verified TLS certificate (RFC 4514); `null` without one.
    case clientCertificateSubject
    /// Its subject alternative names (`DNS:…`, `IP:…`, `email:…`, `URI:…`); `null` without a certificate.
    case clientCertificateSANs
    /// Request-scoped values shared between nodes (`ctx.shared.<key>`).
    case shared(String)

    public init?(name: String) {
        switch name {
        case "kafka.topic": self = .kafkaTopic
        case "kafka.key": self = .kafkaKey
        case "kafka.headers": self = .kafkaHeaders
        case "kafka.response.status", "kong.response.status": self = .responseStatus
        case "client.ip", "kong.client.ip": self = .clientIP
        case "client.port", "kong.client.port": self = .clientPort
        case "client.consumer": self = .clientConsumer
        case "route.name", "kong.route_name": self = .routeName
        case "request.id", "kong.request.id": self = .requestID
        case "client.certificate.subject": self = .clientCertificateSubject
        case "client.certificate.sans": self = .clientCertificateSANs
        default:
            for prefix in ["ctx.shared.", "kong.ctx.shared.", "kong.ctx.plugin."] where name.hasPrefix(prefix) {
                let key = String(name.dropFirst(prefix.count))
                guard !key.isEmpty else { return nil }
                self = .shared(key)
                return
            }
            return nil
        }
    }

    /// The names the README lists (for "did you mean").
    static let documentedNames = [
        "kafka.topic", "kafka.key", "kafka.headers", "kafka.response.status", "client.ip", "client.port", "client.consumer", "route.name",
        "request.id", "client.certificate.subject", "client.certificate.sans", "ctx.shared.", "kong.client.ip", "kong.client.port", "kong.route_name", "kong.response.status",
        "kong.ctx.shared.", "kong.ctx.plugin.",
    ]

    public var isSettable: Bool {
        switch self {
        case .kafkaTopic, .kafkaKey, .kafkaHeaders, .responseStatus, .shared: true
        case .clientIP, .clientPort, .clientConsumer, .routeName, .requestID, .clientCertificateSubject, .clientCertificateSANs: false
        }
    }

    /// Checks a value being set, returning it in the form kbridge keeps, or the reason it cannot be set.
    func validate(_ value: JSONValue) -> Result<JSONValue, PropertyError> {
        switch self {
        case .kafkaTopic:
            switch value {
            case .string(let topic) where !topic.isEmpty: return .success(value)
            case .array(let topics) where !topics.isEmpty && topics.count <= 64
                && topics.allSatisfy({ ($0.stringValue.map { !$0.isEmpty }) ?? false }):
                return .success(value)
            default: return .failure(PropertyError("kafka.topic must be a topic name or a list of 1 to 64 topic names, got \(value.datakitTypeName)"))
            }
        case .kafkaKey:
            switch value {
            case .string: return .success(value)
            case .number(let number): return .success(.string(number.text))
            default: return .failure(PropertyError("kafka.key must be a string, got \(value.datakitTypeName)"))
            }
        case .kafkaHeaders:
            guard let object = value.objectValue else {
                return .failure(PropertyError("kafka.headers must be a map of header names to strings, got \(value.datakitTypeName)"))
            }
            for (name, headerValue) in object {
                guard !name.isEmpty, !name.utf8.contains(0) else { return .failure(PropertyError("kafka.headers: invalid header name '\(name)'")) }
                switch headerValue {
                case .string, .number, .null: continue
                case .array(let values) where values.allSatisfy({ $0.stringValue != nil }): continue
                default: return .failure(PropertyError("kafka.headers['\(name)'] must be a string or a list of strings, got \(headerValue.datakitTypeName)"))
                }
            }
            return .success(value)
        case .responseStatus:
            guard case .number(let number) = value, let status = number.int64, (100...599).contains(status) else {
                return .failure(PropertyError("kafka.response.status must be an integer from 100 to 599"))
            }
            return .success(value)
        case .shared:
            return .success(value)
        case .clientIP, .clientPort, .clientConsumer, .routeName, .requestID, .clientCertificateSubject, .clientCertificateSANs:
            return .failure(PropertyError("this property cannot be set"))
        }
    }
}

struct PropertyError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The request's property values, read and written by `property` nodes during one run.
struct PropertyStore {
    var values: [WorkflowProperty: JSONValue] = [:]

    init(context: WorkflowRequest) {
        values[.clientIP] = context.clientIP.map { .string($0) }
        values[.clientPort] = context.clientPort.map { .integer($0) }
        values[.clientConsumer] = context.consumer.map { .string($0) }
        values[.routeName] = context.routeName.map { .string($0) }
        values[.requestID] = .string(context.requestID)
        if let certificate = context.clientCertificate {
            values[.clientCertificateSubject] = .string(certificate.subject)
            values[.clientCertificateSANs] = .array(certificate.subjectAlternativeNames.map { .string($0) })
        }
        if let topic = context.defaultTopic { values[.kafkaTopic] = .string(topic) }
    }

    subscript(property: WorkflowProperty) -> JSONValue? {
        get { values[property] }
        set { values[property] = newValue }
    }
}
