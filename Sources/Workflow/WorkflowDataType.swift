import Foundation
import JSON

/// Datakit's port types. `object` has fixed fields (a node's whole output), `map` dynamic keys (headers, query).
public enum WorkflowDataType: String, Sendable, Hashable {
    case string, number, object, map, any

    /// Whether a connection from `self` into `target` may exist. Equal types and `any` on either side connect; `string`
    /// and `number` convert into each other; a value out of `any` is checked when it arrives.
    func connects(to target: WorkflowDataType) -> Bool {
        switch (self, target) {
        case (_, .any), (.any, _): true
        case (.string, .number), (.number, .string): true
        default: self == target
        }
    }

    /// The value converted for a port of this type, or the reason it does not fit. `nil` passes as `nil`.
    func accept(_ value: JSONValue?) -> Result<JSONValue?, WorkflowValueError> {
        guard let value else { return .success(nil) }
        switch (self, value) {
        case (.any, _): return .success(value)
        case (.string, .string), (.number, .number), (.object, .object), (.map, .object): return .success(value)
        case (_, .null): return .success(nil)
        case (.string, .number(let number)): return .success(.string(number.text))
        case (.number, .string(let text)):
            if let parsed = JSONNumber.parse(text) { return .success(.number(parsed)) }
            return .failure(WorkflowValueError(expected: self, found: value))
        default: return .failure(WorkflowValueError(expected: self, found: value))
        }
    }

    /// The port type a static value gives its output.
    init(staticValue: JSONValue) {
        switch staticValue {
        case .string: self = .string
        case .number: self = .number
        case .object: self = .map
        default: self = .any
        }
    }
}

/// A value that does not fit the port it arrives at.
struct WorkflowValueError: Error, CustomStringConvertible {
    var expected: WorkflowDataType
    var found: JSONValue
    var description: String { "expected \(expected.rawValue), got \(found.datakitTypeName)" }
}

extension JSONValue {
    /// The value's type in Datakit's terms, for errors and the trace.
    var datakitTypeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}
