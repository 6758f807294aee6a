import FuzzSupport
import SchemaRegistry

/// Fuzzes the Avro schema parser and encoder. Input layout: `<mode byte><rest>`.
///
/// - Even mode byte: the rest is a JSON document encoded against ``everyTypeSchema`` (every primitive, complex
///   and logical type, named references, recursion, unions with and without null).
/// - Odd mode byte: the rest is `<schema text>\0<JSON document>`; the schema is parsed, then the document encoded.
///
/// The mode byte's bits 1-2 choose the union encoding (`payload_encoding`): auto, avro_json or simple_json.
///
/// Invariants: no crash, no hang, encoding from the text (`encode(json:)`, straight from the bytes when it can) gives
/// the result of parsing (duplicate keys refused) and encoding the tree, encoding a document twice gives the same bytes, and a document accepted in
/// Avro's JSON encoding is accepted by `auto` with the same bytes (its tags name branches its values fit).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAvro(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard var input = FuzzInput(data, size) else { return 0 }
    let whole = input.remaining
    let schema: AvroSchema
    let mode = input.byte()
    let encodings: [AvroEncoder.UnionEncoding] = [.auto, .avroJSON, .simpleJSON, .auto]
    let unionEncoding = encodings[Int(mode >> 1) & 3]
    if mode & 1 == 0 {
        schema = everyTypeSchema
    } else {
        let text = String(decoding: input.bytes(upTo: 0), as: UTF8.self)
        do { schema = try AvroSchema.parse(text) } catch { return 0 }
    }
    // Straight from the text (the route's path) or through the tree, refusing duplicate keys: the same result.
    let fromText = AvroEncoder.encode(json: input.remaining, schema: schema, unionEncoding: unionEncoding)
    let throughTree = (try? JSONParser.parse(input.remaining, duplicateKeys: .refuse)).map { AvroEncoder.encode($0, schema: schema, unionEncoding: unionEncoding) }
    switch (fromText, throughTree) {
    case (.success(let bytes), .success(let treeBytes)?) where bytes == treeBytes: break
    case (.failure(.invalidJSON), nil), (.failure(.mismatch), .failure?): break
    default: fuzzFailure("encoding from the text and through the tree disagree", input: whole)
    }
    let document: JSONValue
    do { document = try JSONParser.parse(input.remaining) } catch { return 0 }
    let first = AvroEncoder.encode(document, schema: schema, unionEncoding: unionEncoding)
    if case .success(let bytes) = first,
       case .success(let again) = AvroEncoder.encode(document, schema: schema, unionEncoding: unionEncoding), bytes != again {
        fuzzFailure("encoding the same document twice gave different bytes", input: whole)
    }
    if unionEncoding == .avroJSON, case .success(let bytes) = first {
        guard case .success(let auto) = AvroEncoder.encode(document, schema: schema, unionEncoding: .auto), auto == bytes else {
            fuzzFailure("a document accepted as avro_json was refused or encoded differently by auto", input: whole)
        }
    }
    return 0
}

/// A record with every Avro type and logical type kbridge supports.
let everyTypeSchema: AvroSchema = {
    let text = #"""
        {"type": "record", "name": "Everything", "namespace": "fuzz.avro",
         "fields": [
           {"name": "null", "type": "null"},
           {"name": "boolean", "type": "boolean"},
           {"name": "int", "type": "int"},
           {"name": "long", "type": "long"},
           {"name": "float", "type": "float"},
           {"name": "double", "type": "double"},
           {"name": "bytes", "type": "bytes"},
           {"name": "string", "type": "string"},
           {"name": "enum", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN", "BLUE"], "default": "RED"}},
           {"name": "fixed", "type": {"type": "fixed", "name": "Four", "size": 4}},
           {"name": "array", "type": {"type": "array", "items": ["null", "long", "string"]}},
           {"name": "map", "type": {"type": "map", "values": {"type": "array", "items": "double"}}, "default": {}},
           {"name": "optional", "type": ["null", "string"], "default": null},
           {"name": "choice", "type": ["int", "string", "Colour", "Four", {"type": "map", "values": "boolean"}]},
           {"name": "decimalBytes", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 4}},
           {"name": "decimalFixed", "type": {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 2}},
           {"name": "uuid", "type": {"type": "string", "logicalType": "uuid"}},
           {"name": "date", "type": {"type": "int", "logicalType": "date"}},
           {"name": "timeMillis", "type": {"type": "int", "logicalType": "time-millis"}},
           {"name": "timeMicros", "type": {"type": "long", "logicalType": "time-micros"}},
           {"name": "timestampMillis", "type": {"type": "long", "logicalType": "timestamp-millis"}},
           {"name": "timestampMicros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
           {"name": "localTimestampMillis", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
           {"name": "localTimestampMicros", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
           {"name": "tree", "type": ["null", {"type": "record", "name": "Node", "fields": [
              {"name": "label", "type": "string", "default": ""},
              {"name": "children", "type": {"type": "array", "items": "Node"}, "default": []},
              {"name": "next", "type": ["null", "Node"], "default": null}]}], "default": null},
           {"name": "money", "type": ["null", "Money"], "default": null},
           {"name": "withDefault", "type": "string", "default": "dflt"}
         ]}
        """#
    do { return try AvroSchema.parse(text) } catch { preconditionFailure("the fuzz schema does not parse: \(error)") }
}()

@main enum FuzzAvroMain {
    static func main() { FuzzDriver.run(fuzzAvro) }
}
