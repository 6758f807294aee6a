import JSON
/// `%XX` decoding, shared by request paths (``RouteTable``) and form arguments (``FormArguments``).
///
/// Two rules differ between the two uses:
/// - `plusIsSpace`: in `application/x-www-form-urlencoded` text (queries, form bodies) `+` is a space; in paths it is `+`.
/// - `malformedEscapes`: a `%` not followed by two hex digits is either kept as it is (what nginx's
///   `ngx.decode_args` does, so `uri_args`/`body_args` stay Kong's) or refused (paths: `{topic}` and `{key}`
///   must decode to exactly one value).
///
/// The decoded bytes must be valid UTF-8 in both cases: nothing is ever replaced by U+FFFD.
enum PercentDecoding {
    enum MalformedEscapes {
        case keep
        case refuse
    }

    /// Why text could not be decoded.
    enum Failure: Error, Equatable, CustomStringConvertible {
        /// A `%` at this byte offset is not followed by two hex digits.
        case malformedEscape(offset: Int)
        /// The decoded bytes are not UTF-8.
        case invalidUTF8

        var description: String {
            switch self {
            case .malformedEscape(let offset): "'%' at offset \(offset) is not followed by two hex digits"
            case .invalidUTF8: "not valid UTF-8 after percent-decoding"
            }
        }
    }

    static func decode(
        _ bytes: UnsafeRawBufferPointer, plusIsSpace: Bool, malformedEscapes: MalformedEscapes
    ) -> Result<String, Failure> {
        // Fast path: nothing to decode (most path segments and argument names).
        var needsDecoding = false
        for byte in bytes where byte == UInt8(ascii: "%") || (plusIsSpace && byte == UInt8(ascii: "+")) {
            needsDecoding = true
            break
        }
        guard needsDecoding else {
            guard UTF8Validation.isValid(bytes) else { return .failure(.invalidUTF8) }
            return .success(String(decoding: bytes, as: UTF8.self))
        }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+"), plusIsSpace {
                decoded.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%") {
                if index + 2 < bytes.count, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                    decoded.append(high << 4 | low)
                    index += 2
                } else if malformedEscapes == .refuse {
                    return .failure(.malformedEscape(offset: index))
                } else {
                    decoded.append(byte)  // a lone or malformed '%' stays as it is, as in nginx
                }
            } else {
                decoded.append(byte)
            }
            index += 1
        }
        guard decoded.withUnsafeBytes({ UTF8Validation.isValid($0) }) else { return .failure(.invalidUTF8) }
        return .success(String(decoding: decoded, as: UTF8.self))
    }

    static func decode(_ text: Substring, plusIsSpace: Bool, malformedEscapes: MalformedEscapes) -> Result<String, Failure> {
        var text = text
        return text.withUTF8 { decode(UnsafeRawBufferPointer($0), plusIsSpace: plusIsSpace, malformedEscapes: malformedEscapes) }
    }

    /// Only `0-9`, `a-f` and `A-F`: `UInt8(_:radix:)` would also take a sign (`%+1`).
    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
