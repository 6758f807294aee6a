import Foundation
import JSON
import Testing
import XML

/// Parses JSON text for expectations.
func json(_ text: String) -> JSONValue {
    do { return try JSONParser.parse(text) } catch { fatalError("bad test JSON \(text): \(error)") }
}

func toJSON(_ xml: String, _ options: XMLToJSONOptions = XMLToJSONOptions()) throws -> JSONValue {
    try XMLConversion.json(fromXML: Array(xml.utf8), options: options)
}

func toXML(_ value: JSONValue, _ options: JSONToXMLOptions = JSONToXMLOptions()) throws -> String {
    String(decoding: try XMLConversion.xml(from: value, options: options), as: UTF8.self)
}

let declaration = #"<?xml version="1.0" encoding="UTF-8"?>"#

@Suite("XML to JSON mapping")
struct XMLToJSONTests {
    @Test func attributesRepeatedElementsEmptyAndTypes() throws {
        let xml = """
            <order id="7" express="true">
              <item sku="A-1">pen</item>
              <note/>
              <item sku="B-2">ink</item>
              <price>1.50</price>
              <zip>007</zip>
              <missing>null</missing>
              <blank>   </blank>
            </order>
            """
        #expect(try toJSON(xml) == json("""
            {"order":{"@id":7,"@express":true,
              "item":[{"@sku":"A-1","#text":"pen"},{"@sku":"B-2","#text":"ink"}],
              "note":null,"price":1.50,"zip":"007","missing":null,"blank":null}}
            """))
        // The number keeps its text.
        #expect(try toJSON(xml)["order"]?["price"]?.numberValue?.text == "1.50")
    }

    @Test func attributesBlock() throws {
        let options = XMLToJSONOptions(attributes: .block("_attrs"))
        #expect(try toJSON(#"<a x="1" y="two"><b z="3">t</b></a>"#, options) == json("""
            {"a":{"_attrs":{"x":1,"y":"two"},"b":{"_attrs":{"z":3},"#text":"t"}}}
            """))
    }

    @Test func textAsPropertyAndTextBlockName() throws {
        let options = XMLToJSONOptions(textBlockName: "value", textAsProperty: true)
        #expect(try toJSON("<a><b>1</b><c/><d x=\"y\">z</d></a>", options) == json("""
            {"a":{"b":{"value":1},"c":null,"d":{"@x":"y","value":"z"}}}
            """))
        #expect(try toJSON("<a>1</a>") == json(#"{"a":1}"#))
    }

    @Test func recognizeTypeOff() throws {
        let options = XMLToJSONOptions(recognizeType: false)
        #expect(try toJSON(#"<a n="1"><b>true</b><c>2e3</c><d>null</d><e/></a>"#, options) == json("""
            {"a":{"@n":"1","b":"true","c":"2e3","d":"null","e":null}}
            """))
    }

    @Test func typeRecognition() throws {
        let cases: [(String, JSONValue)] = [
            ("0", json("0")), ("-12", json("-12")), ("3.25e-4", json("3.25e-4")), ("1E+2", json("1E+2")),
            ("007", .string("007")), ("+1", .string("+1")), (".5", .string(".5")), ("1.", .string("1.")),
            ("True", .string("True")), ("0x1F", .string("0x1F")), ("NaN", .string("NaN")), ("-", .string("-")),
            ("1e", .string("1e")), ("false", .bool(false)), (" 42 ", json("42")),
        ]
        for (text, expected) in cases {
            #expect(try toJSON("<v>\(text)</v>") == .object(JSONObject([("v", expected)])), "text \(text)")
        }
    }

    @Test func mixedContentCDATACommentsAndReferences() throws {
        #expect(try toJSON("<p>Hi <b>you</b> there<!-- c --><?pi x?></p>") == json(##"{"p":{"b":"you","#text":"Hi  there"}}"##))
        #expect(try toJSON("<a><![CDATA[<not> & markup]]></a>") == json(#"{"a":"<not> & markup"}"#))
        #expect(try toJSON("<a>x &amp; y &lt; &#233; &#x263A;</a>") == json(#"{"a":"x & y < é ☺"}"#))
        #expect(try toJSON(#"<a t="&quot;q&quot; &amp;"/>"#) == json(#"{"a":{"@t":"\"q\" &"}}"#))
        // Attribute values are not trimmed, and typed only when the whole value is a number, boolean or null.
        #expect(try toJSON(#"<a n=" 7 " m="8" s="  "/>"#) == json(#"{"a":{"@n":" 7 ","@m":8,"@s":"  "}}"#))
    }

    @Test func encodings() throws {
        let latin1 = Array(#"<?xml version="1.0" encoding="ISO-8859-1"?><a>caf"#.utf8) + [0xE9] + Array("</a>".utf8)
        #expect(try XMLConversion.json(fromXML: latin1) == json(#"{"a":"café"}"#))
        let utf16 = [UInt8]([0xFF, 0xFE]) + "<a>☺</a>".utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        #expect(try XMLConversion.json(fromXML: utf16) == json(#"{"a":"☺"}"#))
        #expect(throws: XMLConversionError.self) {
            try XMLConversion.json(fromXML: Array("<a>".utf8) + [0xC3, 0x28] + Array("</a>".utf8))
        }
    }

    @Test func namespacePrefixesKept() throws {
        let xml = """
            <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:default">
              <soap:Body><m:Get xmlns:m="urn:m" m:id="5">x</m:Get></soap:Body>
            </soap:Envelope>
            """
        #expect(try toJSON(xml) == json("""
            {"soap:Envelope":{"@xmlns:soap":"http://schemas.xmlsoap.org/soap/envelope/","@xmlns":"urn:default",
              "soap:Body":{"m:Get":{"@xmlns:m":"urn:m","@m:id":5,"#text":"x"}}}}
            """))
    }

    @Test func keyCollisionFails() throws {
        let options = XMLToJSONOptions(attributes: .block("meta"))
        #expect(throws: XMLConversionError.keyCollision(key: "meta", path: "/a")) {
            try toJSON(#"<a x="1"><meta/></a>"#, options)
        }
        #expect(throws: XMLConversionError.keyCollision(key: "value", path: "/r/a")) {
            try toJSON("<r><a>text<value>1</value></a></r>", XMLToJSONOptions(textBlockName: "value"))
        }
        #expect(throws: XMLConversionError.keyCollision(key: "xy", path: "/a")) {
            try toJSON(#"<a y="1"><xy/></a>"#, XMLToJSONOptions(attributes: .prefix("x")))
        }
        // No text, no collision.
        #expect(try toJSON("<a><value>1</value></a>", XMLToJSONOptions(textBlockName: "value")) == json(#"{"a":{"value":1}}"#))
    }

    @Test func xpathSelectsOneManyNoneAndScalars() throws {
        let xml = #"<lib><book id="1"><t>A</t></book><book id="2"><t>B</t></book><mag><t>C</t></mag></lib>"#
        func select(_ expression: String) throws -> JSONValue {
            try toJSON(xml, XMLToJSONOptions(xpath: try XPathExpression(expression)))
        }
        #expect(try select("/lib/mag") == json(#"{"mag":{"t":"C"}}"#))
        #expect(try select("//book") == json(#"{"book":[{"@id":1,"t":"A"},{"@id":2,"t":"B"}]}"#))
        #expect(try select("//t") == json(#"{"t":["A","B","C"]}"#))
        #expect(try select("//book/@id") == json(#"{"@id":[1,2]}"#))
        #expect(try select("//book[1]/@id") == json(#"{"@id":1}"#))
        #expect(try select("//nothing") == .null)
        #expect(try select("count(//book)") == json("2"))
        #expect(try select("string(//mag/t)") == .string("C"))
        #expect(try select("boolean(//mag)") == .bool(true))
        #expect(try select("/") == json(#"{"lib":{"book":[{"@id":1,"t":"A"},{"@id":2,"t":"B"}],"mag":{"t":"C"}}}"#))
        #expect(try select("//mag/t/text()") == .string("C"))
    }

    @Test func xpathAttributesInBlockMode() throws {
        let xml = #"<lib><book id="1"/><book id="2"/></lib>"#
        let options = XMLToJSONOptions(attributes: .block("_attrs"), xpath: try XPathExpression("//book/@id"))
        #expect(try toJSON(xml, options) == json(#"{"_attrs":{"id":[1,2]}}"#))
    }

    @Test func xpathWithRootNamespacePrefix() throws {
        let xml = #"<s:E xmlns:s="urn:s"><s:B><v>1</v></s:B></s:E>"#
        #expect(try toJSON(xml, XMLToJSONOptions(xpath: try XPathExpression("/s:E/s:B/v"))) == json(#"{"v":1}"#))
        #expect(throws: XMLConversionError.self) {
            try toJSON(xml, XMLToJSONOptions(xpath: try XPathExpression("/q:E")))
        }
    }

    @Test func invalidXPathIsRefusedAtCompileTime() {
        #expect {
            _ = try XPathExpression("//book[")
        } throws: { error in
            guard case .invalidXPath(let expression, let message) = error as? XMLConversionError else { return false }
            return expression == "//book[" && !message.isEmpty
        }
        #expect(throws: XMLConversionError.self) { _ = try XPathExpression("") }
    }

    @Test func invalidXMLReportsLineAndColumn() {
        #expect {
            _ = try toJSON("<a>\n  <b>text</c>\n</a>")
        } throws: { error in
            guard case .invalidXML(let line, let column, let message) = error as? XMLConversionError else { return false }
            return line == 2 && column > 0 && message.contains("mismatch")
        }
        #expect(throws: XMLConversionError.invalidXML(line: 1, column: 1, message: "Document is empty")) { try toJSON("") }
        #expect(throws: XMLConversionError.self) { try toJSON("<a>&undefined;</a>") }
        #expect(throws: XMLConversionError.self) { try toJSON("<a></a><b/>") }
    }

    @Test func optionsAreValidated() {
        #expect(throws: XMLConversionError.self) {
            _ = try XMLAttributeNaming.kong(blockName: "a", namePrefix: "@")
        }
        #expect(throws: XMLConversionError.self) {
            try XMLToJSONOptions(textBlockName: "").validate()
        }
        #expect(throws: XMLConversionError.self) {
            try JSONToXMLOptions(rootElementName: "1bad").validate()
        }
        #expect(throws: XMLConversionError.self) {
            try XMLToJSONOptions(attributes: .block("#text")).validate()
        }
    }
}

@Suite("JSON to XML mapping")
struct JSONToXMLTests {
    @Test func rootHandling() throws {
        #expect(try toXML(json(#"{"a":{"b":1}}"#)) == declaration + "<a><b>1</b></a>")
        #expect(try toXML(json(#"{"a":1,"b":2}"#)) == declaration + "<root><a>1</a><b>2</b></root>")
        #expect(try toXML(json(#"{"a":[1,2]}"#)) == declaration + "<root><a>1</a><a>2</a></root>")
        #expect(try toXML(json(#"{"a":1,"b":2}"#), JSONToXMLOptions(rootElementName: "doc"))
            == declaration + "<doc><a>1</a><b>2</b></doc>")
        #expect(try toXML(json(#"{"a":{"b":1}}"#), JSONToXMLOptions(rootElementName: "doc"))
            == declaration + "<doc><a><b>1</b></a></doc>")
        #expect(try toXML(json(#""text""#), JSONToXMLOptions(rootElementName: "doc")) == declaration + "<doc>text</doc>")
        #expect(try toXML(.null) == declaration + "<root/>")
    }

    @Test func attributesTextArraysAndOrder() throws {
        let value = json(##"{"order":{"@id":7,"@gift":false,"@skip":null,"z":"last?","item":[{"@sku":"A","#text":"pen"},"ink",null],"#text":"tail","e":""}}"##)
        #expect(try toXML(value) == declaration
            + #"<order id="7" gift="false" skip="null"><z>last?</z><item sku="A">pen</item><item>ink</item><item/>tail<e></e></order>"#)
        let block = JSONToXMLOptions(attributes: .block("_attrs"), textBlockName: "value")
        #expect(try toXML(json(#"{"a":{"_attrs":{"x":"1","n:y":2},"value":"t","b":[]}}"#), block)
            == declaration + #"<a x="1" n:y="2">t</a>"#)
    }

    @Test func escaping() throws {
        let value = JSONValue.object(JSONObject([("a", .object(JSONObject([
            ("@q", .string("<\"&'>\t\n\r")), ("#text", .string("1 < 2 & 3 > 2\r\n ]]>")),
        ])))]))
        let xml = try toXML(value)
        #expect(xml == declaration + #"<a q="&lt;&quot;&amp;'&gt;&#9;&#10;&#13;">1 &lt; 2 &amp; 3 &gt; 2&#13;"# + "\n ]]&gt;</a>")
        // libxml2 reads back exactly what was written.
        let back = try XMLConversion.json(fromXML: Array(xml.utf8), options: XMLToJSONOptions(recognizeType: false))
        #expect(back["a"]?["@q"] == .string("<\"&'>\t\n\r"))
        #expect(back["a"]?["#text"] == .string("1 < 2 & 3 > 2\r\n ]]>"))
    }

    @Test func invalidNamesNameTheKey() {
        #expect(throws: XMLConversionError.invalidName(name: "1st", path: "$.a.1st")) {
            try toXML(json(#"{"a":{"1st":1}}"#))
        }
        #expect(throws: XMLConversionError.invalidName(name: "has space", path: "$.a.@has space")) {
            try toXML(json(#"{"a":{"@has space":1}}"#))
        }
        #expect(throws: XMLConversionError.invalidName(name: "", path: "$.a.@")) {
            try toXML(json(#"{"a":{"@":1}}"#))
        }
        #expect(throws: XMLConversionError.invalidName(name: "a:b:c", path: "$.r.a:b:c")) {
            try toXML(json(#"{"r":{"a:b:c":1}}"#))
        }
        #expect(throws: XMLConversionError.invalidName(name: "x<y", path: "$.root.items[1].x<y")) {
            try toXML(json(#"{"root":{"items":[{"ok":1},{"x<y":2}]}}"#))
        }
    }

    @Test func unrepresentableValues() {
        #expect(throws: XMLConversionError.self) { try toXML(json("[1,2]")) }
        #expect(throws: XMLConversionError.self) { try toXML(json(#"{"a":[[1]]}"#)) }
        #expect(throws: XMLConversionError.self) { try toXML(json(#"{"a":{"@x":{"y":1}}}"#)) }
        #expect(throws: XMLConversionError.self) { try toXML(json(##"{"a":{"#text":[1]}}"##)) }
        #expect {
            try toXML(json(#"{"a":"bell\u0007"}"#))
        } throws: { error in
            guard case .unrepresentable(let path, let reason) = error as? XMLConversionError else { return false }
            return path == "$.a" && reason.contains("U+0007")
        }
        #expect(throws: XMLConversionError.self) { try toXML(.string("\u{FFFE}"), JSONToXMLOptions(rootElementName: "a")) }
    }

    @Test func depthAndSizeBounded() {
        var value = JSONValue.null
        for _ in 0..<300 { value = .object(JSONObject([("a", value)])) }
        #expect(throws: XMLConversionError.tooDeep(limit: 256, line: 0)) { try toXML(value) }
        var limits = XMLLimits()
        limits.maximumBytes = 1000
        let big = JSONValue.object(JSONObject([("a", .array(Array(repeating: .string("0123456789"), count: 200)))]))
        #expect(throws: XMLConversionError.self) { try toXML(big, JSONToXMLOptions(limits: limits)) }
    }
}

@Suite("XML round trips")
struct RoundTripTests {
    static let documents = [
        ##"{"order":{"@id":7,"customer":{"@vip":true,"name":"Ann"},"item":[{"@sku":"A","#text":"pen"},{"@sku":"B","#text":"ink"}],"total":12.5,"note":null}}"##,
        ##"{"a":{"b":[1,2,3],"c":{"d":{"e":"deep"}},"#text":"mixed"}}"##,
        #"{"ns:root":{"@xmlns:ns":"urn:x","ns:child":"v"}}"#,
        #"{"r":{"s":"with <markup> & \"quotes\"","t":"é ☺ 𝄞"}}"#,
    ]

    @Test(arguments: documents)
    func jsonToXMLToJSONWithPrefix(_ text: String) throws {
        let value = json(text)
        let xml = try XMLConversion.xml(from: value)
        #expect(try XMLConversion.json(fromXML: xml) == value)
    }

    @Test(arguments: documents)
    func jsonToXMLToJSONWithBlock(_ text: String) throws {
        // The same documents with attributes in a block: convert the prefix form to XML, read it back as blocks,
        // write that as XML again: both XML texts must be identical.
        let xml = try XMLConversion.xml(from: json(text))
        let blocks = XMLToJSONOptions(attributes: .block("attributes"))
        let withBlocks = try XMLConversion.json(fromXML: xml, options: blocks)
        let xmlAgain = try XMLConversion.xml(from: withBlocks, options: JSONToXMLOptions(attributes: .block("attributes")))
        #expect(xmlAgain == xml)
    }

    /// Found by FuzzXML: text "null" among children is recognized as null, and a null text member must write "null"
    /// back, not nothing, or the second trip loses the member.
    @Test func nullTextAmongChildrenRoundTrips() throws {
        let source = #"<root a="1">null<x>n</x></root>"#
        let first = try toJSON(source)
        #expect(first == json(##"{"root":{"@a":1,"x":"n","#text":null}}"##))
        let second = try toJSON(toXML(first))
        #expect(second == first)
    }

    /// Found by FuzzXML in CI: an attribute "null" is recognized as null, and a null attribute must write "null" back,
    /// not be dropped, or the second trip loses the attribute.
    @Test func nullAttributeRoundTrips() throws {
        let source = #"<order id="7" p="null"><n>2</n></order>"#
        let first = try toJSON(source)
        #expect(first == json(##"{"order":{"@id":7,"@p":null,"n":2}}"##))
        let second = try toJSON(toXML(first))
        #expect(second == first)
    }

    @Test func xmlToJSONToXML() throws {
        let xml = declaration + #"<feed version="2"><entry id="1"><title>One</title></entry><entry id="2"><title>Two</title></entry></feed>"#
        let value = try XMLConversion.json(fromXML: Array(xml.utf8))
        #expect(try toXML(value) == xml)
    }

    @Test func textAsPropertyRoundTrip() throws {
        let xml = declaration + "<a><b>1</b><c>x</c></a>"
        let value = try XMLConversion.json(fromXML: Array(xml.utf8), options: XMLToJSONOptions(textAsProperty: true))
        #expect(value == json(##"{"a":{"b":{"#text":1},"c":{"#text":"x"}}}"##))
        #expect(try toXML(value) == xml)
    }
}
