import JSON

/// Writes one JSON value as an XML document (mapping in ``XMLConversion``).
struct JSONToXMLWriter {
    let options: JSONToXMLOptions
    private var output: [UInt8] = []
    /// JSON keys (and `[index]`) from the top to the value being written, for error messages.
    private var path: [String] = []

    static let declaration = Array(#"<?xml version="1.0" encoding="UTF-8"?>"#.utf8)
    static let defaultRootName = "root"

    init(options: JSONToXMLOptions) { self.options = options }

    private var pathDescription: String {
        var description = "$"
        for component in path { description += component.hasPrefix("[") ? component : "." + component }
        return description
    }

    mutating func document(_ value: JSONValue) throws(XMLConversionError) -> [UInt8] {
        output = Self.declaration
        if let rootElementName = options.rootElementName {
            try element(rootElementName, value, depth: 1)
        } else if case .object(let object) = value, object.count == 1, let (key, member) = object.members.first,
                  member.arrayValue == nil, !isSpecial(key)
        {
            path.append(key)
            try element(key, member, depth: 1)
        } else {
            try element(Self.defaultRootName, value, depth: 1)
        }
        return output
    }

    /// Whether `key` names attributes or text rather than an element.
    private func isSpecial(_ key: String) -> Bool {
        if key == options.textBlockName { return true }
        switch options.attributes {
        case .prefix(let prefix): return key.hasPrefix(prefix)
        case .block(let blockName): return key == blockName
        }
    }

    private mutating func checkSize() throws(XMLConversionError) {
        if output.count > options.limits.maximumBytes {
            throw .tooLarge(size: output.count, limit: options.limits.maximumBytes)
        }
    }

    private func checkName(_ name: String) throws(XMLConversionError) {
        if XMLName.problem(name) != nil { throw .invalidName(name: name, path: pathDescription) }
    }

    private mutating func appendText(_ text: String, inAttribute: Bool) throws(XMLConversionError) {
        do {
            try XMLText.appendEscaped(text, inAttribute: inAttribute, to: &output)
        } catch {
            throw .unrepresentable(path: pathDescription, reason: error.reason)
        }
    }

    /// The text of a scalar, or nil for null; objects and arrays fail.
    private func scalarText(_ value: JSONValue, what: String) throws(XMLConversionError) -> String? {
        switch value {
        case .null: return nil
        case .bool(let bool): return bool ? "true" : "false"
        case .number(let number): return number.text
        case .string(let string): return string
        case .array, .object: throw .unrepresentable(path: pathDescription, reason: "\(what) must be a string, number, boolean or null, not \(value.typeName)")
        }
    }

    /// Writes element `name` with `value` as its content; arrays are handled by the caller (one element per item).
    private mutating func element(_ name: String, _ value: JSONValue, depth: Int) throws(XMLConversionError) {
        guard depth <= options.limits.maximumDepth else { throw .tooDeep(limit: options.limits.maximumDepth, line: 0) }
        try checkName(name)
        output.append(0x3C)
        output.append(contentsOf: name.utf8)
        switch value {
        case .null:
            output.append(contentsOf: "/>".utf8)
            return
        case .bool, .number, .string:
            output.append(0x3E)
            try appendText(try scalarText(value, what: "an element's value") ?? "", inAttribute: false)
        case .array:
            throw .unrepresentable(path: pathDescription, reason: "an array can only be a member value (its items become repeated elements named by the member's key)")
        case .object(let object):
            try writeAttributes(of: object)
            output.append(0x3E)
            try writeContent(of: object, depth: depth)
        }
        output.append(contentsOf: "</".utf8)
        output.append(contentsOf: name.utf8)
        output.append(0x3E)
        try checkSize()
    }

    private mutating func writeAttribute(_ name: String, _ value: JSONValue) throws(XMLConversionError) {
        try checkName(name)
        // A null attribute is the text "null" (what xml_to_json makes of `a="null"` with recognize_type), as for text,
        // so that the two conversions round-trip (FuzzXML found the attribute dropped).
        let text = try scalarText(value, what: "an attribute value") ?? "null"
        output.append(0x20)
        output.append(contentsOf: name.utf8)
        output.append(contentsOf: "=\"".utf8)
        try appendText(text, inAttribute: true)
        output.append(0x22)
    }

    private mutating func writeAttributes(of object: JSONObject) throws(XMLConversionError) {
        switch options.attributes {
        case .prefix(let prefix):
            for (key, value) in object where key != options.textBlockName && key.hasPrefix(prefix) {
                path.append(key)
                defer { path.removeLast() }
                try writeAttribute(String(key.dropFirst(prefix.count)), value)
            }
        case .block(let blockName):
            guard let block = object[blockName] else { return }
            path.append(blockName)
            defer { path.removeLast() }
            switch block {
            case .null: return
            case .object(let attributes):
                for (name, value) in attributes {
                    path.append(name)
                    defer { path.removeLast() }
                    try writeAttribute(name, value)
                }
            default:
                throw .unrepresentable(path: pathDescription, reason: "the attributes block must be an object, not \(block.typeName)")
            }
        }
    }

    private mutating func writeContent(of object: JSONObject, depth: Int) throws(XMLConversionError) {
        for (key, value) in object {
            if isSpecial(key) {
                guard key == options.textBlockName else { continue }
                path.append(key)
                defer { path.removeLast() }
                // A null text member is the text "null" (what xml_to_json makes of it with recognize_type), so that
                // the two conversions round-trip; an element whose value is null is still written empty.
                let text = try scalarText(value, what: "text") ?? "null"
                try appendText(text, inAttribute: false)
                continue
            }
            path.append(key)
            defer { path.removeLast() }
            if case .array(let items) = value {
                for (position, item) in items.enumerated() {
                    path.append("[\(position)]")
                    defer { path.removeLast() }
                    if item.arrayValue != nil {
                        throw .unrepresentable(path: pathDescription, reason: "an array inside an array has no XML form")
                    }
                    try element(key, item, depth: depth + 1)
                }
            } else {
                try element(key, value, depth: depth + 1)
            }
        }
    }
}
