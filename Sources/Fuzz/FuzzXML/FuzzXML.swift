import FuzzSupport
import JSON
import XML

/// Fuzzes the XML ⇄ JSON mapping (the tree walk, type recognition, name checks and the XML writer; parsing itself is
/// libxml2's). Input: the first byte picks the options (attribute naming, `text_as_property`, `recognize_type`); the
/// rest is the XML document.
///
/// Invariants: no crash, no hang; a document that converts to JSON converts back to XML that libxml2 parses again;
/// with types recognized and text not forced into a property, that second document converts to the same JSON.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzXML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard var input = FuzzInput(data, size), !input.isEmpty else { return 0 }
    let flags = input.byte()
    let attributes: XMLAttributeNaming = flags & 1 == 0 ? .prefix("@") : .block("_attributes")
    let options = XMLToJSONOptions(attributes: attributes, textAsProperty: flags & 2 != 0, recognizeType: flags & 4 != 0)
    guard let json = try? XMLConversion.json(fromXML: Array(input.remaining), options: options) else { return 0 }
    guard let xml = try? XMLConversion.xml(from: json, options: JSONToXMLOptions(attributes: attributes)) else { return 0 }
    guard let again = try? XMLConversion.json(fromXML: xml, options: options) else {
        fuzzFailure("json_to_xml wrote XML that does not convert back: \(String(decoding: xml, as: UTF8.self))", input: input.remaining)
    }
    // The JSON must come back unchanged when types are recognized (else "1" and 1 differ after one trip) and text is
    // not forced into a property (`{"#text": null}` and an empty element both read back as null).
    if flags & 6 == 4, !again.jsonEquals(json) {
        fuzzFailure("the round trip changed the document: \(json.jsonText) -> \(again.jsonText)", input: input.remaining)
    }
    return 0
}

@main enum FuzzXMLMain {
    static func main() { FuzzDriver.run(fuzzXML) }
}
