import Foundation
import JSON

/// The debug trace of one run, in Kong 3.11+'s shape: the plan's times and status, each node's status, and the
/// events (`run` with inputs, `complete` with outputs, `fail`, `skip`, `cancel`) with their time since the start.
/// Credentials never appear: headers such as `authorization` and every vault value are masked.
struct WorkflowTrace: Sendable {
    struct Value: Sendable {
        var key: String?
        var type: String
        var value: JSONValue?
    }

    struct Event: Sendable {
        var name: String
        var type: String
        var action: String
        var values: [Value]?
        var at: Duration
        var duration: Duration?
    }

    static let mask = "********"
    /// Header names whose values the trace masks (Kong's default list).
    static let sensitiveHeaders: Set<String> = [
        "authorization", "proxy-authorization", "api-key", "apikey", "x-api-key", "cookie", "set-cookie", "x-consumer-username",
        "x-consumer-custom-id", "x-consumer-id", "x-credential-identifier",
    ]
    /// The most events kept (a bound on memory for a workflow of 64 nodes: a handful of events each).
    static let maximumEvents = 1024

    let masked: Set<String>
    let startedAt = Date()
    let start = ContinuousClock.now
    var events: [Event] = []
    var errors: [Int: String] = [:]
    var durations: [Int: Duration] = [:]
    /// `PLAN_COMPLETE` unless the run failed.
    var planStatus = "PLAN_COMPLETE"

    init(masked: Set<String>) {
        self.masked = masked
    }

    mutating func record(node: GraphNode, index: Int, action: String, values: [Value]? = nil, duration: Duration? = nil) {
        guard events.count < Self.maximumEvents else { return }
        events.append(Event(name: node.name, type: node.typeName, action: action, values: values, at: .now - start, duration: duration))
        if action == "fail" { planStatus = "PLAN_ERROR" }
        if action == "cancel", planStatus == "PLAN_COMPLETE" { planStatus = "PLAN_CANCELED" }
    }

    func json(nodes: [(name: String, type: String, status: String, error: String?)]) -> [UInt8] {
        let ended = Date()
        let started = startedAt.timeIntervalSince1970
        var nodeList: [JSONValue] = []
        for node in nodes {
            var object = JSONObject([("name", .string(node.name)), ("type", .string(node.type)), ("status", .string(node.status))])
            if let error = node.error { object["error"] = .string(hide(.string(error)).stringValue ?? Self.mask) }
            nodeList.append(.object(object))
        }
        var eventList: [JSONValue] = []
        for event in events {
            var object = JSONObject([("name", .string(event.name)), ("type", .string(event.type)), ("action", .string(event.action))])
            if let values = event.values {
                object["values"] = .array(values.map { value in
                    var entry = JSONObject()
                    if let key = value.key { entry["key"] = .string(key) }
                    entry["type"] = .string(value.type)
                    if let inner = value.value { entry["value"] = hide(inner, key: value.key) }
                    return .object(entry)
                })
            }
            object["at"] = .double(event.at.secondsDouble)
            if let duration = event.duration { object["duration"] = .double(duration.secondsDouble) }
            eventList.append(.object(object))
        }
        let trace = JSONObject([
            ("started_at", .double(started)), ("ended_at", .double(ended.timeIntervalSince1970)),
            ("duration", .double(ended.timeIntervalSince(startedAt))), ("status", .string(planStatus)),
            ("nodes", .array(nodeList)), ("events", .array(eventList)),
        ])
        return JSONWriter.bytes(.object(trace))
    }

    /// `text` with every vault value in it replaced by the mask.
    func redact(_ text: String) -> String {
        var redacted = text
        for secret in masked where redacted.contains(secret) {
            redacted = redacted.replacingOccurrences(of: secret, with: Self.mask)
        }
        return redacted
    }

    /// `value` with sensitive headers and vault values masked (`key`: the port or member it sits under).
    func hide(_ value: JSONValue, key: String? = nil) -> JSONValue {
        if let key, Self.sensitiveHeaders.contains(key.lowercased()) { return .string(Self.mask) }
        switch value {
        case .string(let text):
            // A PEM private key (a jwt_sign key in a static node, say) is a secret wherever it shows.
            if text.contains("PRIVATE KEY-----") { return .string(Self.mask) }
            return masked.contains(where: { text.contains($0) }) ? .string(Self.mask) : value
        case .array(let elements):
            return .array(elements.map { hide($0, key: key) })
        case .object(let object):
            return .object(JSONObject(object.map { ($0.key, hide($0.value, key: $0.key)) }))
        default:
            return value
        }
    }
}
