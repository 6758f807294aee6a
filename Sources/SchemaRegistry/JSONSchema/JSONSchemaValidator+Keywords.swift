import JSON
import Foundation

extension JSONSchemaValidator {
    /// Messages and helpers shared by the validator's keywords (and the Avro encoder's paths and previews).
    enum Context {
        static func format(_ number: JSONNumber) -> String {
            if let integer = number.int64 { return String(integer) }
            return abbreviated(number.text)
        }

        static func abbreviated(_ text: String) -> String {
            text.utf8.count > 40 ? String(text.prefix(40)) + "…" : text
        }

        /// The first item equal to an earlier one, and that earlier one: linear expected time, by a hash
        /// consistent with `jsonEquals` (equal hashes are confirmed with it).
        static func firstRepeat(in array: [JSONValue]) -> (Int, Int)? {
            var first: [Int: Int] = [:]  // hash → the first item with it
            var others: [Int: [Int]] = [:]  // hash → later, different items with the same hash (rare)
            first.reserveCapacity(array.count)
            for (position, item) in array.enumerated() {
                let hash = item.jsonHash
                guard let earliest = first[hash] else {
                    first[hash] = position
                    continue
                }
                if array[earliest].jsonEquals(item) { return (earliest, position) }
                if let earlier = others[hash]?.first(where: { array[$0].jsonEquals(item) }) { return (earlier, position) }
                others[hash, default: []].append(position)
            }
            return nil
        }

        // MARK: Messages

        static func childPath(_ path: String, _ name: String) -> String {
            // ASCII letters, digits and '_', not starting with a digit: written as `.name`, anything else as `["name"]`.
            let isIdentifier = !name.isEmpty && name.utf8.allSatisfy { byte in
                (byte >= 97 && byte <= 122) || (byte >= 65 && byte <= 90) || (byte >= 48 && byte <= 57) || byte == 95
            } && !(name.utf8.first! >= 48 && name.utf8.first! <= 57)
            if isIdentifier { return "\(path).\(name)" }
            var escaped = ByteBufferWriter()
            escaped.string(name)
            return "\(path)[\(escaped.text)]"
        }

        static func format(_ value: Double) -> String {
            value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        }

        /// ` ("abc")` for scalars, for messages such as `expected integer, got string ("12,5")`.
        static func preview(_ value: JSONValue, bare: Bool = false) -> String {
            let text: String
            switch value {
            case .null: text = "null"
            case .bool(let bool): text = String(bool)
            case .number(let number): text = number.text
            case .string(let string):
                var writer = ByteBufferWriter()
                writer.string(string.count > 40 ? String(string.prefix(40)) + "…" : string)
                text = writer.text
            case .array: text = "an array"
            case .object: text = "an object"
            }
            if bare { return text }
            if case .array = value { return "" }
            if case .object = value { return "" }
            return " (\(text))"
        }
    }
}

/// A JSON string literal for messages.
struct ByteBufferWriter {
    private(set) var text = ""
    mutating func string(_ value: String) {
        text += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            default:
                if scalar.value < 0x20 { text += String(format: "\\u%04x", scalar.value) } else { text.unicodeScalars.append(scalar) }
            }
        }
        text += "\""
    }
}
