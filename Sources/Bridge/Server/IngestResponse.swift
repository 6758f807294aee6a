import Kafka
import NIOCore
import NIOHTTP1

/// What the ingest path answers: a status, a JSON body and any extra headers.
struct IngestResponse: Sendable {
    var status: HTTPResponseStatus
    var body: ByteBuffer
    var headers: [(String, String)] = []
    var contentType = "application/json"
    /// For an answer whose `body` carries the Kafka client's or the schema registry's own text (broker addresses,
    /// librdkafka's words): the body with kbridge's `code` and a generic message instead, sent unless the route has
    /// `error_handling.return_error_message: true`. `nil` when the body holds kbridge's words only.
    var genericBody: ByteBuffer?
    /// The text `body` carries that `genericBody` leaves out, for the log.
    var detail: String?
    /// The answer's stable `code`, when it is one of kbridge's error answers (for `/metrics`).
    var code: String?

    /// Kong's answer for an accepted message: `200 {"message":"message sent"}`.
    static let messageSent = IngestResponse(status: .ok, body: ByteBuffer(string: #"{"message":"message sent"}"#))

    static func error(_ status: HTTPResponseStatus, code: String, _ message: String, headers: [(String, String)] = []) -> IngestResponse {
        var response = IngestResponse(status: status, body: JSONBody.error(message: message, code: code), headers: headers)
        response.code = code
        return response
    }

    /// An error answer whose `message` holds a client library's detail: `generic` replaces it unless the route
    /// returns error messages.
    static func error(
        _ status: HTTPResponseStatus, code: String, _ message: String, generic: String, detail: String, headers: [(String, String)] = []
    ) -> IngestResponse {
        var response = IngestResponse.error(status, code: code, message, headers: headers)
        response.genericBody = JSONBody.error(message: generic, code: code)
        response.detail = detail
        response.code = code
        return response
    }

    /// This answer as the client sees it: with `returnErrorMessage` false, the generic body in place of one carrying
    /// a client library's detail.
    func presented(returnErrorMessage: Bool) -> IngestResponse {
        guard !returnErrorMessage, let genericBody else { return self }
        var response = self
        response.body = genericBody
        response.genericBody = nil
        return response
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
        let summary = "accepted for \(accepted.joined(separator: ", ")) but not for \(refused.joined(separator: ", "))"
        return .error(failure.status, code: "partially_accepted", "\(summary): \(error.message)", generic: summary, detail: error.message,
                      headers: failure.headers)
    }

    /// Maps a Kafka failure to HTTP at the edge: unavailability is 503 (with `Retry-After` when the local
    /// queue is full), a too-large message 413, refused authorisation 403, anything else the broker said 502.
    /// The generic messages (`error_handling.return_error_message: false`) name the failure without the client's text.
    init(kafkaError error: KafkaError) {
        let detail = error.message
        switch error.code {
        case .queueFull:
            self = .error(.serviceUnavailable, code: "kafka_queue_full", "the producer's buffer is full; retry later (\(detail))",
                          generic: "the producer's buffer is full; retry later", detail: detail, headers: [("retry-after", "1")])
        case .shutdown:
            self = .error(.serviceUnavailable, code: "shutting_down", detail, generic: "kbridge is shutting down", detail: detail,
                          headers: [("retry-after", "1")])
        case .messageTooLarge:
            self = .error(.payloadTooLarge, code: "kafka_message_too_large", detail,
                          generic: "the message is larger than the Kafka producer accepts", detail: detail)
        case .topicAuthorizationFailed:
            self = .error(.forbidden, code: "kafka_topic_authorization_failed", detail,
                          generic: "the Kafka cluster refused this route's writes to the topic", detail: detail)
        default:
            if error.isUnavailable {
                self = .error(.serviceUnavailable, code: "kafka_unavailable", detail, generic: Self.kafkaUnavailableMessage, detail: detail,
                              headers: [("retry-after", "1")])
            } else {
                self = .error(.badGateway, code: "kafka_delivery_failed", detail, generic: "could not send message to topic", detail: detail)
            }
        }
    }

    /// The generic message of `kafka_unavailable`.
    static let kafkaUnavailableMessage = "the Kafka cluster is unreachable"
}
