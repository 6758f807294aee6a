import FuzzSupport
import JSON


/// Differential fuzzing of kbridge's JSON scanner in its two modes, `JSONParser.parse` (the schema routes: builds a
/// tree) and `JSONParser.validate` (the Kong envelope: checks a body that is then embedded verbatim), against each
/// other and against Foundation's `JSONSerialization`. Input: any bytes, as a JSON text.
///
/// Invariants: neither crashes; the two modes agree on validity on every input; what they accept, Foundation accepts
/// too (except unpaired surrogate escapes, which RFC 8259 leaves open and kbridge refuses).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size) else { return 0 }
    let bytes = input.remaining
    let parsed: JSONValue?
    do { parsed = try JSONParser.parse(bytes) } catch { parsed = nil }
    let validated: Bool
    do { try JSONParser.validate(bytes); validated = true } catch { validated = false }
    if (parsed != nil) != validated {
        fuzzFailure("JSONParser.parse \(parsed != nil ? "accepts" : "rejects") but JSONParser.validate \(validated ? "accepts" : "rejects")", input: bytes)
    }
    let hasSurrogateEscape = containsSurrogateEscape(bytes)
    // One way only: Foundation is lenient where RFC 8259 is not (it takes "[1,]", for one), and strict on
    // numbers that overflow a Double, which RFC 8259 leaves to the implementation.
    if parsed != nil, !hasSurrogateEscape, !mayHoldHugeNumber(bytes), foundationReadsAsUTF8(bytes), !foundationAcceptsJSON(bytes) {
        fuzzFailure("JSONParser accepts what JSONSerialization rejects", input: bytes)
    }
    return 0
}

@main enum FuzzJSONParserMain {
    static func main() { FuzzDriver.run(fuzzJSONParser) }
}
