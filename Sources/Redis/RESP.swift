/// One RESP2 value, as a Redis server answers (RESP3 types are refused: the client never sends `HELLO 3`).
public enum RESPValue: Sendable, Hashable {
    case simpleString(String)
    /// An error reply (`-ERR ...`, `-WRONGPASS ...`): the server's own words.
    case error(String)
    case integer(Int64)
    /// A bulk string; `nil` is the null bulk string (`$-1`), Redis's "no such key".
    case bulkString([UInt8]?)
    /// An array; `nil` is the null array (`*-1`).
    case array([RESPValue]?)
}

/// What the decoder accepts at most. Everything the server says is bounded by these before it is kept.
public struct RESPLimits: Sendable, Hashable {
    /// The largest bulk string (a cached value); Redis's own cap is 512 MiB.
    public var maximumBulkLength = 16 << 20
    /// The longest line (`+OK`, `-ERR ...`, `:42`, a length header) including its CRLF.
    public var maximumLineLength = 64 * 1024
    /// How deeply arrays may nest.
    public var maximumDepth = 8
    /// How many values one reply may hold in all its arrays together.
    public var maximumElements = 4096

    public init() {}
}

/// Why the server's bytes are not a RESP2 reply kbridge accepts: what was wrong and at which byte offset of the reply.
public struct RESPProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public var offset: Int

    public init(reason: String, offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String { "invalid RESP reply at byte \(offset): \(reason)" }
}

/// A RESP2 decoder over bytes that may be incomplete: ``decode(_:limits:)`` returns `nil` until one whole reply has
/// arrived. Every length, count, depth and line is bounded by ``RESPLimits`` before it is used, arithmetic is checked,
/// and hostile bytes end in a ``RESPProtocolError``, never a trap. A reply is first scanned without copying anything
/// (bulk strings are skipped by their length), and built only once it is complete, so a reply arriving in many pieces
/// costs one scan of its headers per piece and one copy of its data.
public enum RESPDecoder {
    /// Decodes the first whole reply in `bytes`: the value and how many bytes it took, or `nil` if more are needed.
    public static func decode(_ bytes: UnsafeRawBufferPointer, limits: RESPLimits = RESPLimits()) throws(RESPProtocolError)
        -> (value: RESPValue, consumed: Int)?
    {
        var scan = State(bytes: bytes, limits: limits, materialize: false)
        guard try scan.value(depth: 0) != nil else { return nil }
        var build = State(bytes: UnsafeRawBufferPointer(rebasing: bytes[..<scan.position]), limits: limits, materialize: true)
        guard let value = try build.value(depth: 0) else { return nil }
        return (value, build.position)
    }

    /// Convenience over an array (tests, the fuzz target).
    public static func decode(_ bytes: [UInt8], limits: RESPLimits = RESPLimits()) throws(RESPProtocolError) -> (value: RESPValue, consumed: Int)? {
        let result: Result<(value: RESPValue, consumed: Int)?, RESPProtocolError> = bytes.withUnsafeBytes { buffer in
            do throws(RESPProtocolError) {
                return .success(try decode(buffer, limits: limits))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private struct State {
        let bytes: UnsafeRawBufferPointer
        let limits: RESPLimits
        /// Whether to build the values (else only find where the reply ends).
        let materialize: Bool
        var position = 0
        var elements = 0

        func fail(_ reason: String, at offset: Int) -> RESPProtocolError {
            RESPProtocolError(reason: reason, offset: offset)
        }

        /// The line starting at `position` without its CRLF (and moves past it), or `nil` if its end has not arrived.
        mutating func line() throws(RESPProtocolError) -> UnsafeRawBufferPointer? {
            let start = position
            var index = start
            let end = bytes.count
            while index < end {
                if index - start >= limits.maximumLineLength {
                    throw fail("a line longer than \(limits.maximumLineLength) bytes", at: start)
                }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\r") {
                    guard index + 1 < end else { return nil }
                    guard bytes[index + 1] == UInt8(ascii: "\n") else { throw fail("a CR not followed by LF", at: index) }
                    position = index + 2
                    return UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                }
                if byte == UInt8(ascii: "\n") { throw fail("a bare LF in a line", at: index) }
                index += 1
            }
            if end - start >= limits.maximumLineLength { throw fail("a line longer than \(limits.maximumLineLength) bytes", at: start) }
            return nil
        }

        /// A signed decimal integer: at most 19 digits, no `+`, no spaces; overflow is an error.
        func integer(_ text: UnsafeRawBufferPointer, at offset: Int) throws(RESPProtocolError) -> Int64 {
            var digits = text[...]
            var negative = false
            if digits.first == UInt8(ascii: "-") {
                negative = true
                digits = digits.dropFirst()
            }
            guard !digits.isEmpty, digits.count <= 19 else { throw fail("'\(Self.printable(text))' is not an integer", at: offset) }
            var value: Int64 = 0
            for digit in digits {
                guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else {
                    throw fail("'\(Self.printable(text))' is not an integer", at: offset)
                }
                let (times, overflowTimes) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflowSum) = times.addingReportingOverflow(Int64(digit - UInt8(ascii: "0")))
                guard !overflowTimes, !overflowSum else { throw fail("integer '\(Self.printable(text))' overflows 64 bits", at: offset) }
                value = sum
            }
            return negative ? -value : value
        }

        mutating func value(depth: Int) throws(RESPProtocolError) -> RESPValue? {
            let start = position
            guard start < bytes.count else { return nil }
            guard depth <= limits.maximumDepth else { throw fail("arrays nested deeper than \(limits.maximumDepth)", at: start) }
            elements += 1
            guard elements <= limits.maximumElements else {
                throw fail("more than \(limits.maximumElements) values in one reply", at: start)
            }
            let type = bytes[start]
            position += 1
            guard let text = try line() else { return nil }
            switch type {
            case UInt8(ascii: "+"):
                return .simpleString(materialize ? String(decoding: text, as: UTF8.self) : "")
            case UInt8(ascii: "-"):
                return .error(materialize ? String(decoding: text, as: UTF8.self) : "")
            case UInt8(ascii: ":"):
                return .integer(try integer(text, at: start + 1))
            case UInt8(ascii: "$"):
                let length = try integer(text, at: start + 1)
                if length == -1 { return .bulkString(nil) }
                guard length >= 0 else { throw fail("negative bulk string length \(length)", at: start + 1) }
                guard length <= Int64(limits.maximumBulkLength), let count = Int(exactly: length) else {
                    throw fail("bulk string of \(length) bytes is larger than the limit of \(limits.maximumBulkLength)", at: start + 1)
                }
                let (end, overflow) = position.addingReportingOverflow(count)
                guard !overflow else { throw fail("bulk string length \(length) overflows", at: start + 1) }
                // The data and its CRLF.
                guard end <= bytes.count - 2 else { return nil }
                guard bytes[end] == UInt8(ascii: "\r"), bytes[end + 1] == UInt8(ascii: "\n") else {
                    throw fail("bulk string of \(count) bytes not followed by CRLF", at: end)
                }
                let data = materialize ? [UInt8](UnsafeRawBufferPointer(rebasing: bytes[position..<end])) : nil
                position = end + 2
                return .bulkString(data)
            case UInt8(ascii: "*"):
                let count = try integer(text, at: start + 1)
                if count == -1 { return .array(nil) }
                guard count >= 0 else { throw fail("negative array length \(count)", at: start + 1) }
                guard count <= Int64(limits.maximumElements) else {
                    throw fail("array of \(count) values is larger than the limit of \(limits.maximumElements)", at: start + 1)
                }
                var values: [RESPValue] = []
                if materialize { values.reserveCapacity(Int(count)) }
                for _ in 0..<Int(count) {
                    guard let element = try value(depth: depth + 1) else { return nil }
                    if materialize { values.append(element) }
                }
                return .array(values)
            default:
                throw fail("unknown reply type byte 0x\(String(type, radix: 16)) (kbridge speaks RESP2)", at: start)
            }
        }

        /// At most 40 bytes of a line, non-printable bytes as `?`, for error messages.
        static func printable(_ text: UnsafeRawBufferPointer) -> String {
            let shown = text.prefix(40).map { $0 >= 0x20 && $0 < 0x7F ? Character(UnicodeScalar($0)) : "?" }
            return String(shown) + (text.count > 40 ? "..." : "")
        }
    }
}

/// Writes commands as RESP2 arrays of bulk strings (what every Redis accepts).
public enum RESPEncoder {
    public static func command(_ arguments: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(arguments.reduce(16) { $0 &+ $1.count &+ 16 })
        bytes += Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            bytes += Array("$\(argument.count)\r\n".utf8)
            bytes += argument
            bytes += [UInt8(ascii: "\r"), UInt8(ascii: "\n")]
        }
        return bytes
    }
}
