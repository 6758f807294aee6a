import FuzzSupport
import SchemaRegistry

/// Fuzzes the JSON Schema validator. Input layout: `<mode byte><rest>`.
///
/// - Mode byte below `fixedSchemas.count * 32`: the rest is a JSON document validated against
///   `fixedSchemas[mode / 32]` (schemas that use most keywords of drafts 7 and 2020-12, recursion by `$ref`).
/// - Otherwise: the rest is `<schema>\0<document>`; the schema is compiled, then the document validated.
///
/// Invariants: no crash, no hang, at most `limit` violations, validating twice gives the same answer, and validating
/// the text (`validate(json:)`, while reading it when it can) gives the answer of parsing (duplicate keys refused) and
/// validating the tree.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONSchema(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard var input = FuzzInput(data, size) else { return 0 }
    let whole = input.remaining
    let mode = Int(input.byte())
    let validator: JSONSchemaValidator
    if mode < fixedSchemas.count * 32 {
        validator = fixedSchemas[mode / 32]
    } else {
        let schemaBytes = input.bytes(upTo: 0)
        let schema: JSONValue
        do { schema = try JSONParser.parse(schemaBytes) } catch { return 0 }
        do { validator = try JSONSchemaValidator(schema: schema) } catch { return 0 }
    }
    // Validated while read (the route's path) or through the tree, refusing duplicate keys: the same result.
    let fromText = validator.validate(json: input.remaining, limit: 10)
    let throughTree = (try? JSONParser.parse(input.remaining, duplicateKeys: .refuse)).map { validator.validate($0, limit: 10) }
    switch (fromText, throughTree) {
    case (.success(let violations), let tree?) where violations == tree: break
    case (.failure, nil): break
    default: fuzzFailure("validating the text and validating the tree disagree", input: whole)
    }
    let document: JSONValue
    do { document = try JSONParser.parse(input.remaining) } catch { return 0 }
    let limit = 10
    let violations = validator.validate(document, limit: limit)
    guard violations.count <= limit else { fuzzFailure("\(violations.count) violations, more than the limit \(limit)", input: whole) }
    guard validator.validate(document, limit: limit) == violations else { fuzzFailure("validating twice gave different answers", input: whole) }
    return 0
}

let fixedSchemas: [JSONSchemaValidator] = [
    // Draft 7: objects, strings, numbers, combinators, conditionals, dependencies, definitions.
    #"""
    {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "https://example.com/order.json",
     "type": "object", "required": ["id", "lines"], "additionalProperties": false,
     "definitions": {
       "sku": {"type": "string", "pattern": "^[A-Z]{2,4}-[0-9]+$", "minLength": 4, "maxLength": 16},
       "money": {"type": "number", "minimum": 0, "exclusiveMaximum": 1e9, "multipleOf": 0.01},
       "line": {"type": "object", "required": ["sku", "qty"], "properties": {
         "sku": {"$ref": "#/definitions/sku"}, "qty": {"type": "integer", "minimum": 1, "maximum": 1000},
         "price": {"$ref": "#/definitions/money"}}, "additionalProperties": {"type": ["string", "null"]}}},
     "properties": {
       "id": {"type": "string", "format": "uuid"},
       "email": {"type": "string", "format": "email"},
       "at": {"type": "string", "format": "date-time"},
       "lines": {"type": "array", "items": {"$ref": "#/definitions/line"}, "minItems": 1, "maxItems": 50, "uniqueItems": true},
       "tags": {"type": "array", "items": [{"const": "first"}], "additionalItems": {"enum": ["a", "b", 1, null, {"x": [1]}]},
                "contains": {"type": "string"}},
       "status": {"enum": ["NEW", "PAID", "SHIPPED"]},
       "discount": {"oneOf": [{"type": "integer", "maximum": 100}, {"type": "string", "pattern": "^[0-9]+%$"}]},
       "note": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 200}]},
       "meta": {"type": "object", "propertyNames": {"pattern": "^[a-z_]+$"}, "minProperties": 1, "maxProperties": 5,
                "patternProperties": {"^x_": {"type": "boolean"}}},
       "shipping": {"if": {"properties": {"method": {"const": "post"}}}, "then": {"required": ["address"]},
                    "else": {"not": {"required": ["address"]}}},
       "card": {"type": "object", "dependencies": {"number": ["expiry"], "expiry": {"required": ["number"]}}},
       "all": {"allOf": [{"type": "number"}, {"minimum": -5}, {"not": {"const": 0}}]}
     }}
    """#,
    // Draft 2020-12: prefixItems, unevaluated*, $defs, $anchor, dependentRequired/Schemas, $dynamicRef.
    #"""
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://example.com/event",
     "type": "object",
     "$defs": {
       "name": {"$anchor": "name", "type": "string", "minLength": 1},
       "list": {"$dynamicAnchor": "item", "type": "array", "items": {"$dynamicRef": "#item"}}
     },
     "properties": {
       "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"$ref": "#name"}], "items": false},
       "rest": {"type": "array", "prefixItems": [true], "unevaluatedItems": {"type": "number"}, "contains": {"type": "number"},
                "minContains": 1, "maxContains": 3},
       "base": {"allOf": [{"properties": {"a": true}}], "unevaluatedProperties": false},
       "range": {"exclusiveMinimum": 0, "exclusiveMaximum": 10},
       "list": {"$ref": "#/$defs/list"}
     },
     "dependentRequired": {"bill": ["ship"]},
     "dependentSchemas": {"ship": {"properties": {"bill": {"type": "string"}}}},
     "unevaluatedProperties": {"type": ["integer", "boolean"]}}
    """#,
    // Recursion: a tree through "#" and through a named definition.
    #"""
    {"$id": "urn:example:tree", "type": "object", "properties": {
       "value": {"type": ["number", "string"]},
       "children": {"type": "array", "items": {"$ref": "#"}},
       "link": {"$ref": "#/definitions/link"}},
     "definitions": {"link": {"type": ["object", "null"], "properties": {"to": {"$ref": "urn:example:tree"}}}}}
    """#,
    // Boolean and near-empty schemas, numbers at the edges.
    #"{"type": "integer", "minimum": -9223372036854775808, "maximum": 9223372036854775807, "multipleOf": 3}"#,
    #"{"not": {}}"#,
    #"{"type": "string", "pattern": "(a|b)*c?[^x-z]{0,3}\\d+$", "format": "ipv4"}"#,
].map { text in
    do { return try JSONSchemaValidator(schema: JSONParser.parse(text)) } catch {
        preconditionFailure("a fuzz schema does not compile: \(error)")
    }
}

@main enum FuzzJSONSchemaMain {
    static func main() { FuzzDriver.run(fuzzJSONSchema) }
}
