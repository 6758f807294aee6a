// Validation + serialization throughput for a realistic ~1 KB order record: JSON Schema and Avro, each
// measured from the request body's bytes to the wire-format record, with JSON parsing alone as the baseline,
// all in the same run. Usage: SchemaBenchmark [records]  (build with -c release)
import Foundation
import SchemaRegistry

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 50_000 : 50_000

let items = (0..<8).map { index in
    #"{"sku": "SKU-\#(1000 + index)", "name": "Item number \#(index) with a description", "qty": \#(index + 1), "price": "\#(index * 3 + 1).99", "tags": ["a", "b"]}"#
}.joined(separator: ", ")
let body = Array(#"{"id": "order-2024-000123", "customer": {"id": 42, "name": "Ada Lovelace", "email": "ada@example.com"}, "createdAt": "2024-05-01T10:00:00.123Z", "status": "PAID", "items": [\#(items)], "note": null}"#.utf8)

let jsonSchema = try JSONParser.parse(#"""
    {"type": "object", "required": ["id", "customer", "createdAt", "status", "items"], "additionalProperties": false,
     "properties": {
       "id": {"type": "string", "pattern": "^order-[0-9]{4}-[0-9]+$"},
       "customer": {"type": "object", "required": ["id", "name"], "properties": {"id": {"type": "integer"}, "name": {"type": "string", "minLength": 1}, "email": {"type": "string"}}},
       "createdAt": {"type": "string", "format": "date-time"},
       "status": {"enum": ["NEW", "PAID", "SHIPPED"]},
       "note": {"type": ["string", "null"]},
       "items": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["sku", "qty", "price"],
         "properties": {"sku": {"type": "string"}, "name": {"type": "string"}, "qty": {"type": "integer", "minimum": 1},
                        "price": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"}, "tags": {"type": "array", "items": {"type": "string"}}}}}}}
    """#)
let avroSchema = try AvroSchema.parse(#"""
    {"type": "record", "name": "Order", "fields": [
      {"name": "id", "type": "string"},
      {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}, {"name": "email", "type": ["null", "string"], "default": null}]}},
      {"name": "createdAt", "type": {"type": "long", "logicalType": "timestamp-millis"}},
      {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}},
      {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
        {"name": "sku", "type": "string"}, {"name": "name", "type": "string"}, {"name": "qty", "type": "int"},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "tags", "type": {"type": "array", "items": "string"}}]}}},
      {"name": "note", "type": ["null", "string"], "default": null}]}
    """#)
let validator = try JSONSchemaValidator(schema: jsonSchema)

/// This thread's CPU time in seconds: on a shared machine the wall clock also counts time spent waiting for a core.
func threadCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Records per second of wall-clock time and of this thread's CPU time.
func measure(_ name: String, _ work: () throws -> Int) rethrows -> (name: String, wall: Double, cpu: Double, bytes: Int) {
    for _ in 0..<1000 { _ = try work() }  // warm-up
    let clock = ContinuousClock()
    var bytes = 0
    let cpuStart = threadCPUSeconds()
    let elapsed = try clock.measure { for _ in 0..<count { bytes = try work() } }
    let cpuSeconds = threadCPUSeconds() - cpuStart
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return (name, Double(count) / seconds, Double(count) / cpuSeconds, bytes)
}

let baseline = try measure("JSON parse only (baseline)") { try JSONParser.parse(body).objectValue?.count ?? 0 }
let json = try measure("JSON Schema: parse + validate + frame") {
    // As the route does: validated while read when the document allows (else through the tree).
    let violations = try body.withUnsafeBytes { bytes in try validator.validate(json: bytes, limit: 50).get() }
    precondition(violations.isEmpty)
    return ConfluentWireFormat.frame(schemaID: 1, payload: body).count
}
let jsonTree = try measure("JSON Schema through the tree (the fallback)") {
    let document = try JSONParser.parse(body, duplicateKeys: .refuse)
    precondition(validator.validate(document, limit: 50).isEmpty)
    return ConfluentWireFormat.frame(schemaID: 1, payload: body).count
}
let avro = try measure("Avro: parse + validate + encode + frame") {
    // As the route does: straight from the bytes when the document allows (else through the tree), the encoder
    // writing after the wire-format header.
    try body.withUnsafeBytes { bytes in
        try AvroEncoder.encode(json: bytes, schema: avroSchema, prefix: ConfluentWireFormat.header(schemaID: 1)).get().count
    }
}
let avroTree = try measure("Avro through the tree (the fallback)") {
    let document = try JSONParser.parse(body, duplicateKeys: .refuse)
    return try AvroEncoder.encode(document, schema: avroSchema, prefix: ConfluentWireFormat.header(schemaID: 1)).get().count
}
print("\nSchema validation + serialization, \(count) records of \(body.count) bytes (JSON), one core")
print("(CPU: per second of this thread's CPU time, which a busy machine does not inflate; wall: per second of wall-clock time)\n")
print("| pipeline | records/s (CPU) | µs/record (CPU) | vs baseline (CPU) | records/s (wall) | record bytes |")
print("|---|---:|---:|---:|---:|---:|")
for result in [baseline, json, avro, jsonTree, avroTree] {
    print("| \(result.name) | \(Int(result.cpu)) | \(String(format: "%.2f", 1e6 / result.cpu)) | \(String(format: "%.2f", result.cpu / baseline.cpu))× "
        + "| \(Int(result.wall)) | \(result.bytes) |")
}
