import NIOCore

/// The two Kafka requests of a SASL login, SaslHandshake v1 (API 17) and SaslAuthenticate v1 (API 36),
/// encoded and decoded by hand: they are the only Kafka messages kbridge speaks itself.
enum KafkaSaslProtocol {
    static let clientID = "kbridge"

    struct Failure: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    /// A size-prefixed request with header v1 (api key, version, correlation id, client id).
    static func request(apiKey: Int16, correlationID: Int32, body: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(apiKey)
        payload.writeInteger(Int16(1))  // api version 1 of both requests
        payload.writeInteger(correlationID)
        payload.writeInteger(Int16(clientID.utf8.count))
        payload.writeString(clientID)
        body(&payload)
        var frame = ByteBuffer()
        frame.writeInteger(Int32(payload.readableBytes))
        frame.writeBuffer(&payload)
        return frame
    }

    static func handshake(mechanism: String, correlationID: Int32) -> ByteBuffer {
        request(apiKey: 17, correlationID: correlationID) { body in
            body.writeInteger(Int16(mechanism.utf8.count))
            body.writeString(mechanism)
        }
    }

    static func authenticate(_ bytes: String, correlationID: Int32) -> ByteBuffer {
        request(apiKey: 36, correlationID: correlationID) { body in
            body.writeInteger(Int32(bytes.utf8.count))
            body.writeString(bytes)
        }
    }

    /// Reads a SaslHandshake v1 response (the frame without its size): throws unless the error code is 0.
    static func readHandshake(_ frame: inout ByteBuffer, mechanism: String) throws(Failure) {
        guard let _ = frame.readInteger(as: Int32.self), let error = frame.readInteger(as: Int16.self) else {
            throw Failure(reason: "truncated SaslHandshake response")
        }
        guard error == 0 else {
            var offered: [String] = []
            if let count = frame.readInteger(as: Int32.self), count > 0 {
                for _ in 0..<count {
                    guard let length = frame.readInteger(as: Int16.self), let name = frame.readString(length: Int(length)) else { break }
                    offered.append(name)
                }
            }
            throw Failure(reason: "the broker does not offer \(mechanism) (error \(error); it offers \(offered.joined(separator: ", ")))")
        }
    }

    /// Reads a SaslAuthenticate v1 response: the server's SASL bytes, or the broker's error message.
    static func readAuthenticate(_ frame: inout ByteBuffer) throws(Failure) -> String {
        guard let _ = frame.readInteger(as: Int32.self), let error = frame.readInteger(as: Int16.self),
              let messageLength = frame.readInteger(as: Int16.self) else {
            throw Failure(reason: "truncated SaslAuthenticate response")
        }
        let message = messageLength >= 0 ? frame.readString(length: Int(messageLength)) : nil
        guard error == 0 else {
            throw Failure(reason: message ?? "SaslAuthenticate failed with error \(error)")
        }
        guard let length = frame.readInteger(as: Int32.self), length >= 0, let bytes = frame.readString(length: Int(length)) else {
            throw Failure(reason: "truncated SaslAuthenticate response")
        }
        return bytes
    }
}
