import JSON
import NIOCore

/// The arguments of a query string or an `application/x-www-form-urlencoded` body, decoded as nginx's
/// `ngx.decode_args` does (which is what Kong puts in `uri_args` and `body_args`): `+` is a space,
/// `%XX` is a byte, a repeated name collects its values in an array, and a name without `=` is the flag `true`.
struct FormArguments: Equatable {
    enum Value: Equatable {
        /// A name without `=`, e.g. `?debug`.
        case flag
        case text(String)
    }

    /// Names in first-seen order, with every value given for the name.
    private(set) var entries: [(name: String, values: [Value])] = []

    static func == (lhs: FormArguments, rhs: FormArguments) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.name == $1.name && $0.values == $1.values }
    }

    /// A name or value that is not valid UTF-8 once percent-decoded.
    struct Failure: Error, Equatable, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    /// Parses `a=1&b=two+words&a=2&flag`.
    static func parse(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> FormArguments {
        var arguments = FormArguments()
        var positions: [String: Int] = [:]
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                let pair = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
                let equals = pair.firstIndex(of: UInt8(ascii: "="))
                let name = try decode(UnsafeRawBufferPointer(rebasing: pair[..<(equals ?? pair.count)]), what: "argument name")
                let value: Value = if let equals {
                    .text(try decode(UnsafeRawBufferPointer(rebasing: pair[(equals + 1)...]), what: "value of argument '\(name)'"))
                } else {
                    .flag
                }
                if let position = positions[name] {
                    arguments.entries[position].values.append(value)
                } else if !name.isEmpty {
                    positions[name] = arguments.entries.count
                    arguments.entries.append((name, [value]))
                }
            }
            start = end + 1
        }
        return arguments
    }

    static func parse(_ string: Substring) throws(Failure) -> FormArguments {
        var string = String(string)
        let result = string.withUTF8 { buffer in
            Result { () throws(Failure) in try parse(UnsafeRawBufferPointer(buffer)) }
        }
        return try result.get()
    }

    /// The first text value given for `name`.
    func first(_ name: String) -> String? {
        for entry in entries where entry.name == name {
            for case .text(let text) in entry.values { return text }
        }
        return nil
    }

    /// Writes the arguments as a JSON object: one value as itself, several as an array, a flag as `true`.
    func writeJSON(to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "{"))
        for (index, entry) in entries.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeJSONString(entry.name)
            buffer.writeInteger(UInt8(ascii: ":"))
            if entry.values.count == 1 {
                Self.write(entry.values[0], to: &buffer)
            } else {
                buffer.writeInteger(UInt8(ascii: "["))
                for (valueIndex, value) in entry.values.enumerated() {
                    if valueIndex > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                    Self.write(value, to: &buffer)
                }
                buffer.writeInteger(UInt8(ascii: "]"))
            }
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    private static func write(_ value: Value, to buffer: inout ByteBuffer) {
        switch value {
        case .flag: buffer.writeStaticString("true")
        case .text(let text): buffer.writeJSONString(text)
        }
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer, what: String) throws(Failure) -> String {
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                decoded.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), index + 2 < bytes.count,
                      let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) {
                decoded.append(high << 4 | low)
                index += 2
            } else {
                decoded.append(byte)  // a lone or malformed '%' stays as it is, as in nginx
            }
            index += 1
        }
        guard decoded.withUnsafeBytes({ UTF8Validation.isValid($0) }) else {
            throw Failure(reason: "\(what) is not valid UTF-8 after percent-decoding")
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
