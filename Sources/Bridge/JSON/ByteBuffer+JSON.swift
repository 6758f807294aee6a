import Foundation
import NIOCore

/// Hand-written JSON output: kbridge builds each Kafka message straight into a `ByteBuffer`
/// (Foundation's encoders would need an intermediate tree and reorder or reformat numbers).
extension ByteBuffer {
    /// Writes `bytes` (valid UTF-8) as a JSON string literal, escaping quotes, backslashes and control characters.
    mutating func writeJSONString(_ bytes: UnsafeRawBufferPointer) {
        writeInteger(UInt8(ascii: "\""))
        var runStart = 0
        for index in 0..<bytes.count {
            let byte = bytes[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            if runStart < index { writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index])) }
            runStart = index + 1
            switch byte {
            case UInt8(ascii: "\""): writeStaticString("\\\"")
            case UInt8(ascii: "\\"): writeStaticString("\\\\")
            case UInt8(ascii: "\n"): writeStaticString("\\n")
            case UInt8(ascii: "\r"): writeStaticString("\\r")
            case UInt8(ascii: "\t"): writeStaticString("\\t")
            case 0x08: writeStaticString("\\b")
            case 0x0C: writeStaticString("\\f")
            default:
                let hex: StaticString = "0123456789abcdef"
                writeStaticString("\\u00")
                writeInteger(hex.utf8Start[Int(byte >> 4)])
                writeInteger(hex.utf8Start[Int(byte & 0x0F)])
            }
        }
        if runStart < bytes.count { writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart...])) }
        writeInteger(UInt8(ascii: "\""))
    }

    mutating func writeJSONString(_ string: some StringProtocol) {
        var string = String(string)
        string.withUTF8 { writeJSONString(UnsafeRawBufferPointer($0)) }
    }

    mutating func writeJSONString(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { writeJSONString($0) }
    }

    /// Writes `bytes` base64-encoded, as a JSON string literal.
    mutating func writeJSONBase64String(_ bytes: UnsafeRawBufferPointer) {
        writeInteger(UInt8(ascii: "\""))
        writeBytes(Data(bytes).base64EncodedData())
        writeInteger(UInt8(ascii: "\""))
    }

    /// Writes `"key":` (the key must not need escaping).
    mutating func writeJSONKey(_ key: StaticString) {
        writeInteger(UInt8(ascii: "\""))
        writeStaticString(key)
        writeStaticString("\":")
    }
}

/// A small JSON document builder for error bodies and other off-hot-path responses.
enum JSONBody {
    /// A sync answer: `{"message":"message sent","topic":"t","partition":0,"offset":42,"deliveries":[...]}`: where
    /// each record landed (`deliveries`, one per topic in order; the first one's fields at the top level too, which
    /// is all a single-topic client reads). Kong's clients read `message` and ignore the rest.
    static func messageSent(_ deliveries: [(topic: String, partition: Int32, offset: Int64)]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 64 + deliveries.count * 64)
        func writeFields(_ delivery: (topic: String, partition: Int32, offset: Int64)) {
            buffer.writeStaticString("\"topic\":")
            buffer.writeJSONString(delivery.topic)
            buffer.writeString(",\"partition\":\(delivery.partition),\"offset\":\(delivery.offset)")
        }
        buffer.writeStaticString("{\"message\":\"message sent\"")
        if let first = deliveries.first {
            buffer.writeStaticString(",")
            writeFields(first)
        }
        buffer.writeStaticString(",\"deliveries\":[")
        for (index, delivery) in deliveries.enumerated() {
            buffer.writeStaticString(index == 0 ? "{" : ",{")
            writeFields(delivery)
            buffer.writeStaticString("}")
        }
        buffer.writeStaticString("]}")
        return buffer
    }

    /// `{"message": "<text>", "code": "<code>"}` plus optional extra string fields.
    static func error(message: String, code: String, allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: message.utf8.count + code.utf8.count + 32)
        buffer.writeStaticString("{\"message\":")
        buffer.writeJSONString(message)
        buffer.writeStaticString(",\"code\":")
        buffer.writeJSONString(code)
        buffer.writeStaticString("}")
        return buffer
    }
}
