import CRdKafka

/// Builds an `rd_kafka_conf_t` from string properties, naming the property librdkafka refused.
enum RDKafkaConfiguration {
    /// librdkafka's default `message.max.bytes`.
    static let defaultMessageMaxBytes = 1_000_000

    /// Returns a new configuration object owned by the caller (freed by `rd_kafka_new` on success,
    /// or by the caller with `rd_kafka_conf_destroy` on failure).
    ///
    /// librdkafka's log lines are discarded unless the caller sets its own log callback (the producer sends
    /// them to kbridge's logger): without one, librdkafka prints them to standard error, past kbridge's log.
    static func make(_ properties: [String: String]) throws(KafkaError) -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(code: .invalidConfiguration, message: "rd_kafka_conf_new failed")
        }
        rd_kafka_conf_set_log_cb(conf) { _, _, _, _ in }
        var errorText = [CChar](repeating: 0, count: 512)
        // Sorted so that a configuration error is reported the same way on every run.
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, key, value, &errorText, errorText.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                // librdkafka's text may quote the value: never for a secret.
                let reason = isSecret(key) ? "invalid value"
                    : String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                throw KafkaError(code: .invalidConfiguration, message: "librdkafka property '\(key)': \(reason)")
            }
        }
        return conf
    }

    /// Properties whose values are secrets and must never appear in errors or logs.
    static func isSecret(_ key: String) -> Bool {
        key.contains("password") || key.contains("secret") || key.hasSuffix(".pem") || key == "sasl.oauthbearer.config"
    }

    /// Creates a client handle of the given type; on failure the configuration is destroyed here.
    static func makeHandle(type: rd_kafka_type_t, conf: OpaquePointer) throws(KafkaError) -> OpaquePointer {
        var errorText = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            let reason = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError(code: .invalidConfiguration, message: "cannot create Kafka client: \(reason)")
        }
        return handle
    }

    /// The version of the librdkafka library loaded at run time, e.g. `2.16.0`.
    static var runtimeVersion: String { String(cString: rd_kafka_version_str()) }
}

/// An `rd_kafka_t*`. librdkafka documents its handle as thread-safe, which is why this is `@unchecked Sendable`.
final class RDKafkaHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}
