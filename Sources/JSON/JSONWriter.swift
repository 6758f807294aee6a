/// Writes a ``JSONValue`` back to compact JSON text: members in their order, numbers as written, strings escaped
/// (quotes, backslashes and control characters; everything else is kept as UTF-8). Iterative, so no depth overflows
/// the stack, whatever the value's depth.
public enum JSONWriter {
    public static func bytes(_ value: JSONValue) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(64)
        write(value, into: &output)
        return output
    }

    public static func string(_ value: JSONValue) -> String {
        String(decoding: bytes(value), as: UTF8.self)
    }

    /// What is left to write: a value, or the closing bracket of an array or object.
    private enum Pending {
        case value(JSONValue)
        case member(key: String, value: JSONValue, first: Bool)
        case element(JSONValue, first: Bool)
        case close(UInt8)
    }

    public static func write(_ value: JSONValue, into output: inout [UInt8]) {
        var stack: [Pending] = [.value(value)]
        while let next = stack.popLast() {
            switch next {
            case .close(let bracket):
                output.append(bracket)
            case .member(let key, let value, let first):
                if !first { output.append(UInt8(ascii: ",")) }
                writeString(key, into: &output)
                output.append(UInt8(ascii: ":"))
                stack.append(.value(value))
            case .element(let value, let first):
                if !first { output.append(UInt8(ascii: ",")) }
                stack.append(.value(value))
            case .value(let value):
                switch value {
                case .null: output.append(contentsOf: "null".utf8)
                case .bool(let bool): output.append(contentsOf: (bool ? "true" : "false").utf8)
                case .number(let number): output.append(contentsOf: number.text.utf8)
                case .string(let string): writeString(string, into: &output)
                case .array(let elements):
                    output.append(UInt8(ascii: "["))
                    stack.append(.close(UInt8(ascii: "]")))
                    for (index, element) in elements.enumerated().reversed() { stack.append(.element(element, first: index == 0)) }
                case .object(let object):
                    output.append(UInt8(ascii: "{"))
                    stack.append(.close(UInt8(ascii: "}")))
                    for (index, member) in object.members.enumerated().reversed() {
                        stack.append(.member(key: member.key, value: member.value, first: index == 0))
                    }
                }
            }
        }
    }

    /// Writes `string` as a JSON string literal.
    public static func writeString(_ string: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                           hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }
}

extension JSONValue {
    /// Compact JSON text of this value (see ``JSONWriter``).
    public var jsonText: String { JSONWriter.string(self) }

    /// A number value from an integer.
    public static func integer(_ value: Int) -> JSONValue { .number(JSONNumber(Int64(value))) }

    /// A number value from a double (non-finite values, which JSON cannot hold, become `null`).
    public static func double(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .null }
        if value == value.rounded(), abs(value) < 9.007_199_254_740_992e15 { return .number(JSONNumber(Int64(value))) }
        return .number(JSONNumber(text: "\(value)"))
    }
}
