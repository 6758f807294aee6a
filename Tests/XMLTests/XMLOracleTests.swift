import Foundation
import JSON
import Testing
import TestSupport
import XML

/// Python's xmltodict (PyPI) as an independent implementation: with `recognize_type` off its mapping is kbridge's
/// (`@` attributes, `#text`, empty elements `null`, repeated elements as arrays, whitespace stripped).
/// `scripts/install-deps --test` installs it.
@Suite("XML to JSON against xmltodict")
struct XMLOracleTests {
    static let documents = [
        #"<order id="7" express="true"><item sku="A-1">pen</item><note/><item sku="B-2">ink</item><price>1.50</price></order>"#,
        "<p>Hi <b>you</b> there<!-- c --><?pi x?></p>",
        #"<a xmlns:p="urn:p" x="1"><p:b p:y="2">2</p:b><c/><c>  </c></a>"#,
        "<a><![CDATA[<x> & y]]></a>",
        "<r>\n  <b>1</b>\n  <c/>\n  <b>2</b>\n  <d><e><f>deep</f></e></d>\n</r>",
        "<a>x &amp; y &lt; &#233; &#x263A; 𝄞</a>",
        #"<feed><entry id="1"><t>One</t></entry><entry id="2"><t>Two</t><t>Second</t></entry><entry/></feed>"#,
    ]

    @Test func sameResultsAsXmltodict() async throws {
        let expected = try await XMLOracle.xmltodict(Self.documents)
        for (document, oracle) in zip(Self.documents, expected) {
            let ours = try XMLConversion.json(fromXML: Array(document.utf8), options: XMLToJSONOptions(recognizeType: false))
            #expect(ours == oracle, "\(document): kbridge \(ours.jsonText), xmltodict \(oracle.jsonText)")
        }
    }
}

enum XMLOracle {
    /// xmltodict.parse of each document, as JSON.
    static func xmltodict(_ documents: [String]) async throws -> [JSONValue] {
        let input = JSONWriter.bytes(.array(documents.map(JSONValue.string)))
        let script = "import json, sys, xmltodict; print(json.dumps([xmltodict.parse(d) for d in json.load(sys.stdin)]))"
        let result = try await runProcess("python3", ["-c", script], input: Data(input))
        try #require(result.status == 0, "xmltodict failed: \(result.stderrText)")
        let parsed = try JSONParser.parse([UInt8](result.stdout))
        return try #require(parsed.arrayValue)
    }
}
