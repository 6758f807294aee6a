import Foundation
import JSON
import NIOCore

/// Hand-written JSON output: kbridge builds each Kafka message straight into a `ByteBuffer`
/// (Foundation's encoders would need an intermediate tree and reorder or reformat numbers).
extension ByteBuffer {
    /// Writes `bytes` (valid UTF-8) as a JSON string literal, escaping quotes, backslashes and control characters.
    ///
    /// Straight into the buffer's storage, eight bytes at a time while none needs escaping (a message's body is
    /// written here on every request); the buffer grows only when the text with its escapes does not fit.
    mutating func writeJSONString(_ bytes: UnsafeRawBufferPointer) {
        writeInteger(UInt8(ascii: "\""))
        var position = 0
        while position < bytes.count {
            // Room for the unescaped rest (or a 4 KiB part of it); an escape that does not fit ends this round.
            let room = min(bytes.count - position, 4096) + 16
            writeWithUnsafeMutableBytes(minimumWritableBytes: room) { out in
                let (consumed, written) = Self.writeEscaped(bytes, from: position, into: out)
                position += consumed
                return written
            }
        }
        writeInteger(UInt8(ascii: "\""))
    }

    /// Writes as much of `bytes[start...]` escaped for a JSON string as fits into `out` (at least 16 bytes); returns
    /// the input bytes consumed and the bytes written.
    private static func writeEscaped(
        _ bytes: UnsafeRawBufferPointer, from start: Int, into out: UnsafeMutableRawBufferPointer
    ) -> (consumed: Int, written: Int) {
        let hex: StaticString = "0123456789abcdef"
        var written = 0
        var index = start
        func put(_ first: UInt8, _ second: UInt8) {
            out[written] = first
            out[written + 1] = second
            written += 2
        }
        // Stop while six bytes (the longest escape) or a word still fit.
        while index < bytes.count, written + 8 <= out.count {
            if index &+ 8 <= bytes.count {
                let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                if !JSONStringBytes.containQuoteBackslashOrControl(word) {
                    out.storeBytes(of: word, toByteOffset: written, as: UInt64.self)
                    written &+= 8
                    index &+= 8
                    continue
                }
            }
            let byte = bytes[index]
            index &+= 1
            switch byte {
            case UInt8(ascii: "\""): put(UInt8(ascii: "\\"), UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): put(UInt8(ascii: "\\"), UInt8(ascii: "\\"))
            case UInt8(ascii: "\n"): put(UInt8(ascii: "\\"), UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): put(UInt8(ascii: "\\"), UInt8(ascii: "r"))
            case UInt8(ascii: "\t"): put(UInt8(ascii: "\\"), UInt8(ascii: "t"))
            case 0x08: put(UInt8(ascii: "\\"), UInt8(ascii: "b"))
            case 0x0C: put(UInt8(ascii: "\\"), UInt8(ascii: "f"))
            case ..<0x20:
                put(UInt8(ascii: "\\"), UInt8(ascii: "u"))
                put(UInt8(ascii: "0"), UInt8(ascii: "0"))
                put(hex.utf8Start[Int(byte >> 4)], hex.utf8Start[Int(byte & 0x0F)])
            default:
                out[written] = byte
                written &+= 1
            }
        }
        return (index - start, written)
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
