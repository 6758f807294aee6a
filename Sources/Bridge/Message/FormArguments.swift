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

    /// A name or value that is not valid UTF-8 once percent-decoded, or too many arguments.
    struct Failure: Error, Equatable, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    /// How many arguments a query or form body may have when the caller sets no limit (`server.max_form_fields`'s default).
    static let defaultMaximumCount = 1000

    /// Parses `a=1&b=two+words&a=2&flag`; more than `maximumCount` arguments (repeated names count each time) is an error.
    static func parse(_ bytes: UnsafeRawBufferPointer, maximumCount: Int = defaultMaximumCount) throws(Failure) -> FormArguments {
        var arguments = FormArguments()
        var positions: [String: Int] = [:]
        var count = 0
        var start = 0
        while start <= bytes.count {
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                count += 1
                guard count <= maximumCount else {
                    throw Failure(reason: "more than \(maximumCount) arguments (server.max_form_fields)")
                }
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

    /// The number of arguments in a query string or form body, as ``parse(_:maximumCount:)`` counts them
    /// (non-empty `&`-separated pieces), without decoding anything.
    static func count<Bytes: Collection<UInt8>>(in bytes: Bytes) -> Int {
        var count = 0
        var pieceIsEmpty = true
        for byte in bytes {
            if byte == UInt8(ascii: "&") {
                if !pieceIsEmpty { count += 1 }
                pieceIsEmpty = true
            } else {
                pieceIsEmpty = false
            }
        }
        return pieceIsEmpty ? count : count + 1
    }

    static func parse(_ string: Substring, maximumCount: Int = defaultMaximumCount) throws(Failure) -> FormArguments {
        var string = string
        let result = string.withUTF8 { buffer in
            Result { () throws(Failure) in try parse(UnsafeRawBufferPointer(buffer), maximumCount: maximumCount) }
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

    private static func decode(_ bytes: UnsafeRawBufferPointer, what: @autoclosure () -> String) throws(Failure) -> String {
        switch PercentDecoding.decode(bytes, plusIsSpace: true, malformedEscapes: .keep) {
        case .success(let text): return text
        case .failure(let failure): throw Failure(reason: "\(what()) is \(failure)")
        }
    }
}

extension FormArguments {
    /// The arguments as a JSON object (one value as itself, several as a list, a flag as `true`), as a workflow's
    /// `request.query` shows them.
    var jsonObject: JSONObject {
        JSONObject(entries.map { entry in
            let values = entry.values.map { value -> JSONValue in
                switch value {
                case .flag: .bool(true)
                case .text(let text): .string(text)
                }
            }
            return (entry.name, values.count == 1 ? values[0] : .array(values))
        })
    }
}
