import FuzzSupport
import SchemaRegistry

@testable import Bridge

/// Differential fuzzing of kbridge's two JSON readers, `JSONParser` (SchemaRegistry: builds a tree) and
/// `JSONValidator` (Bridge: checks a body that is then embedded verbatim), against each other and against
/// Foundation's `JSONSerialization`. Input: any bytes, as a JSON text.
///
/// Invariants: neither crashes; the two agree on validity (except near their depth limit, and on unpaired surrogate
/// escapes, which RFC 8259 leaves open and only the parser refuses); what they accept, Foundation accepts too.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size) else { return 0 }
    let bytes = input.remaining
    let parsed: JSONValue?
    do { parsed = try JSONParser.parse(bytes) } catch { parsed = nil }
    let validated: Bool
    do { try JSONValidator.validate(bytes); validated = true } catch { validated = false }

    guard bracketCount(bytes) < JSONParser.maximumDepth - 2 else { return 0 }
    let hasSurrogateEscape = containsSurrogateEscape(bytes)
    if !hasSurrogateEscape, (parsed != nil) != validated {
        fuzzFailure("JSONParser \(parsed != nil ? "accepts" : "rejects") but JSONValidator \(validated ? "accepts" : "rejects")", input: bytes)
    }
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
