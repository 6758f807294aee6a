import Kafka
import NIOCore
import NIOHTTP1

/// What the ingest path answers: a status, a JSON body and any extra headers.
struct IngestResponse: Sendable {
    var status: HTTPResponseStatus
    var body: ByteBuffer
    var headers: [(String, String)] = []
    var contentType = "application/json"

    /// Kong's answer for an accepted message: `200 {"message":"message sent"}`.
    static let messageSent = IngestResponse(status: .ok, body: ByteBuffer(string: #"{"message":"message sent"}"#))

    static func error(_ status: HTTPResponseStatus, code: String, _ message: String, headers: [(String, String)] = []) -> IngestResponse {
        IngestResponse(status: status, body: JSONBody.error(message: message, code: code), headers: headers)
    }

    static func notFound(path: Substring) -> IngestResponse {
        .error(.notFound, code: "route_not_found", "no route for path '\(path)'")
    }

    static func methodNotAllowed(_ method: HTTPMethod, allowed: [String]) -> IngestResponse {
        .error(.methodNotAllowed, code: "method_not_allowed", "method \(method.rawValue) is not allowed here; use \(allowed.joined(separator: ", "))",
               headers: [("allow", allowed.joined(separator: ", "))])
    }

    static func requestHeaderFieldsTooLarge(_ message: String) -> IngestResponse {
        .error(.requestHeaderFieldsTooLarge, code: "request_header_fields_too_large", message)
    }

    static func payloadTooLarge(limit: Int) -> IngestResponse {
        .error(.payloadTooLarge, code: "payload_too_large", "the request body is larger than this route's limit of \(limit) bytes")
    }

}

extension IngestResponse {
    /// A fan-out where some topics took the message and others did not: the failure's status, with code
    /// `partially_accepted` and both lists, so that the client knows a retry would duplicate the accepted ones.
    static func partiallyAccepted(accepted: some Collection<String>, refused: some Collection<String>, error: KafkaError) -> IngestResponse {
        let failure = IngestResponse(kafkaError: error)
        return .error(failure.status, code: "partially_accepted",
                      "accepted for \(accepted.joined(separator: ", ")) but not for \(refused.joined(separator: ", ")): \(error.message)",
                      headers: failure.headers)
    }

    /// Maps a Kafka failure to HTTP at the edge: unavailability is 503 (with `Retry-After` when the local
    /// queue is full), a too-large message 413, refused authorisation 403, anything else the broker said 502.
    init(kafkaError error: KafkaError) {
        switch error.code {
        case .queueFull:
            self = .error(.serviceUnavailable, code: "kafka_queue_full",
                          "the producer's buffer is full; retry later (\(error.message))", headers: [("retry-after", "1")])
        case .shutdown:
            self = .error(.serviceUnavailable, code: "shutting_down", error.message, headers: [("retry-after", "1")])
        case .messageTooLarge:
            self = .error(.payloadTooLarge, code: "kafka_message_too_large", error.message)
        case .topicAuthorizationFailed:
            self = .error(.forbidden, code: "kafka_topic_authorization_failed", error.message)
        default:
            if error.isUnavailable {
                self = .error(.serviceUnavailable, code: "kafka_unavailable", error.message, headers: [("retry-after", "1")])
            } else {
                self = .error(.badGateway, code: "kafka_delivery_failed", error.message)
            }
        }
    }
}
