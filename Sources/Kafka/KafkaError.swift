import CRdKafka

/// An error from librdkafka or from this wrapper, with librdkafka's numeric code and a readable message.
///
/// `code` is librdkafka's `rd_kafka_resp_err_t` value; the static members name the ones callers act on,
/// so no other module needs to import `CRdKafka` to match them.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A librdkafka error code (`rd_kafka_resp_err_t`), usable as a bounded metrics label via ``name``.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// librdkafka's symbolic name without the `RD_KAFKA_RESP_ERR_` prefix, e.g. `_MSG_TIMED_OUT`.
        public var name: String { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue))) }
        public var description: String { name }

        public static let queueFull = Code(rawValue: RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue)
        public static let messageTimedOut = Code(rawValue: RD_KAFKA_RESP_ERR__MSG_TIMED_OUT.rawValue)
        public static let allBrokersDown = Code(rawValue: RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue)
        public static let transport = Code(rawValue: RD_KAFKA_RESP_ERR__TRANSPORT.rawValue)
        public static let authentication = Code(rawValue: RD_KAFKA_RESP_ERR__AUTHENTICATION.rawValue)
        public static let ssl = Code(rawValue: RD_KAFKA_RESP_ERR__SSL.rawValue)
        public static let purgedInQueue = Code(rawValue: RD_KAFKA_RESP_ERR__PURGE_QUEUE.rawValue)
        public static let purgedInFlight = Code(rawValue: RD_KAFKA_RESP_ERR__PURGE_INFLIGHT.rawValue)
        public static let messageTooLarge = Code(rawValue: RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.rawValue)
        public static let unknownTopic = Code(rawValue: RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC.rawValue)
        public static let unknownTopicOrPartition = Code(rawValue: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue)
        public static let topicAuthorizationFailed = Code(rawValue: RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED.rawValue)
        public static let invalidConfiguration = Code(rawValue: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue)
        public static let fatal = Code(rawValue: RD_KAFKA_RESP_ERR__FATAL.rawValue)
        /// The producer is closing or closed and takes no more messages (kbridge's own code, not librdkafka's).
        public static let shutdown = Code(rawValue: RD_KAFKA_RESP_ERR__DESTROY.rawValue)
    }

    public var code: Code
    /// What went wrong, in words; names the property, topic or broker involved where there is one.
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    init(_ err: rd_kafka_resp_err_t, context: String? = nil) {
        let text = String(cString: rd_kafka_err2str(err))
        self.init(code: Code(rawValue: err.rawValue), message: context.map { "\($0): \(text)" } ?? text)
    }

    /// True when the broker could not be reached or did not answer in time: the message may succeed later.
    public var isUnavailable: Bool {
        [.messageTimedOut, .allBrokersDown, .transport, .authentication, .ssl, .queueFull].contains(code)
    }

    public var description: String { "\(code.name): \(message)" }
}
