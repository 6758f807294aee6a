import Foundation
import JSON
import Testing
import XML

/// Python's xmltodict (PyPI) as an independent implementation: with `recognize_type` off its mapping is kbridge's
/// (`@` attributes, `#text`, empty elements `null`, repeated elements as arrays, whitespace stripped). The test is
/// skipped where `python3 -c 'import xmltodict'` fails.
@Suite("XML to JSON against xmltodict", .enabled(if: XMLOracle.available))
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

    @Test func sameResultsAsXmltodict() throws {
        let expected = try XMLOracle.xmltodict(Self.documents)
        for (document, oracle) in zip(Self.documents, expected) {
            let ours = try XMLConversion.json(fromXML: Array(document.utf8), options: XMLToJSONOptions(recognizeType: false))
            #expect(ours == oracle, "\(document): kbridge \(ours.jsonText), xmltodict \(oracle.jsonText)")
        }
    }
}

enum XMLOracle {
    static let available: Bool = (try? run(["-c", "import xmltodict"], input: Data()).status) == 0

    static func run(_ arguments: [String], input: Data) throws -> (status: Int32, output: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    /// xmltodict.parse of each document, as JSON.
    static func xmltodict(_ documents: [String]) throws -> [JSONValue] {
        let input = JSONWriter.bytes(.array(documents.map(JSONValue.string)))
        let script = "import json, sys, xmltodict; print(json.dumps([xmltodict.parse(d) for d in json.load(sys.stdin)]))"
        let (status, output) = try run(["-c", script], input: Data(input))
        try #require(status == 0)
        let parsed = try JSONParser.parse([UInt8](output))
        return try #require(parsed.arrayValue)
    }
}
