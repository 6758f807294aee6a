import Foundation
import JSON
import Synchronization
import TestSupport
import Testing
import XML

/// Runs `body` and returns its duration in seconds.
func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

@Suite("XML hostile inputs")
struct XMLHostileInputTests {
    static let billionLaughs = """
        <?xml version="1.0"?>
        <!DOCTYPE lolz [
          <!ENTITY lol "lol">
          <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
          <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
          <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
          <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
          <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
          <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
          <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
          <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
        ]>
        <lolz>&lol9;</lolz>
        """

    @Test func billionLaughsRefusedQuickly() {
        let elapsed = seconds {
            #expect {
                _ = try toJSON(Self.billionLaughs)
            } throws: { error in
                guard case .doctypeNotAllowed(line: 2, _) = error as? XMLConversionError else { return false }
                return true
            }
        }
        #expect(elapsed < 1)
    }

    @Test func externalEntitiesAreNeverRead() throws {
        // A file with a marker: if the entity were resolved, the marker would show up in the result.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("xml-xxe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let secret = directory.appendingPathComponent("secret.txt")
        try "XXE-MARKER".write(to: secret, atomically: true, encoding: .utf8)
        let dtd = directory.appendingPathComponent("evil.dtd")
        try #"<!ENTITY leak "XXE-MARKER">"#.write(to: dtd, atomically: true, encoding: .utf8)
        let documents = [
            #"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"#,
            #"<!DOCTYPE foo [<!ENTITY xxe SYSTEM "\#(secret.path)">]><foo>&xxe;</foo>"#,
            #"<!DOCTYPE foo SYSTEM "\#(dtd.path)"><foo>&leak;</foo>"#,
            #"<!DOCTYPE foo [<!ENTITY % p SYSTEM "\#(dtd.path)"> %p;]><foo>&leak;</foo>"#,
            #"<!DOCTYPE foo PUBLIC "-//x//y" "http://127.0.0.1:9/x.dtd"><foo/>"#,
            "<!-- first --><!DOCTYPE foo><foo/>",
        ]
        for document in documents {
            let elapsed = seconds {
                #expect {
                    _ = try toJSON(document)
                } throws: { error in
                    guard case .doctypeNotAllowed = error as? XMLConversionError else { return false }
                    return !"\(error)".contains("XXE-MARKER") && !"\(error)".contains("root:")
                }
            }
            #expect(elapsed < 1, "\(document)")
        }
        // Without a DOCTYPE, an entity reference is simply undefined.
        #expect {
            _ = try toJSON("<foo>&xxe;</foo>")
        } throws: { error in
            guard case .invalidXML(1, _, let message) = error as? XMLConversionError else { return false }
            return message.contains("xxe")
        }
    }

    @Test func deepNestingRefusedQuickly() throws {
        let depth = 100_000
        let document = String(repeating: "<a>", count: depth) + String(repeating: "</a>", count: depth)
        let elapsed = seconds {
            #expect(throws: XMLConversionError.tooDeep(limit: 256, line: 1)) { try toJSON(document) }
        }
        #expect(elapsed < 1)
        // Exactly at the limit is fine.
        let deepest = String(repeating: "<a>", count: 256) + String(repeating: "</a>", count: 256)
        _ = try toJSON(deepest)
        var limits = XMLLimits()
        limits.maximumDepth = 3
        #expect(throws: XMLConversionError.tooDeep(limit: 3, line: 1)) {
            try toJSON("<a><b><c><d/></c></b></a>", XMLToJSONOptions(limits: limits))
        }
    }

    @Test func oversizedDocumentRefusedQuickly() {
        let document = [UInt8]("<a>".utf8) + [UInt8](repeating: 0x78, count: 20 * 1024 * 1024) + [UInt8]("</a>".utf8)
        let elapsed = seconds {
            #expect(throws: XMLConversionError.tooLarge(size: document.count, limit: 16 * 1024 * 1024)) {
                try XMLConversion.json(fromXML: document)
            }
        }
        #expect(elapsed < 1)
    }

    @Test func nodeCountBounded() throws {
        var limits = XMLLimits()
        limits.maximumNodes = 1000
        let document = "<r>" + String(repeating: "<i a=\"1\"/>", count: 600) + "</r>"
        #expect(throws: XMLConversionError.tooManyNodes(limit: 1000, line: 1)) {
            try toJSON(document, XMLToJSONOptions(limits: limits))
        }
        _ = try toJSON("<r>" + String(repeating: "<i/>", count: 999) + "</r>", XMLToJSONOptions(limits: limits))
    }

    @Test func manyNodesWithinTheSizeLimitAreCheap() throws {
        // 16 MiB of comments and processing instructions: nothing is built for them.
        let comments = "<a>" + String(repeating: "<!----><?p?>", count: 16 * 1024 * 1024 / 12 - 1) + "</a>"
        var result = JSONValue.bool(false)
        var elapsed = try seconds { result = try toJSON(comments) }
        #expect(result == json(#"{"a":null}"#))
        #expect(elapsed < 5)
        // Elements stop at the node limit while parsing.
        let elements = "<a>" + String(repeating: "<b/>", count: 16 * 1024 * 1024 / 4 - 2) + "</a>"
        elapsed = seconds {
            #expect(throws: XMLConversionError.tooManyNodes(limit: 200_000, line: 1)) { try toJSON(elements) }
        }
        #expect(elapsed < 5)
    }

    @Test func xpathOperationLimit() throws {
        // A cartesian-product expression over a 10,000-element document exceeds the operation limit instead of running long.
        let document = "<r>" + String(repeating: "<i><j/></i>", count: 5000) + "</r>"
        let expression = try XPathExpression("count(//*[count(//*) > count(preceding::*)])")
        let elapsed = seconds {
            #expect {
                _ = try toJSON(document, XMLToJSONOptions(xpath: expression))
            } throws: { error in
                guard case .xpathFailed = error as? XMLConversionError else { return false }
                return true
            }
        }
        #expect(elapsed < 5)
    }

    @Test func libxml2MessagesNeverReachStderr() throws {
        // Capture fd 2 while provoking parser and XPath errors; libxml2's own printing would say "parser error" or "XPath error".
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("xml-stderr-\(UUID().uuidString)").path
        let captureDescriptor = open(capture, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        try #require(captureDescriptor >= 0)
        defer { unlink(capture) }
        let savedStderr = dup(2)
        dup2(captureDescriptor, 2)
        _ = try? toJSON("<a><b></a>")
        _ = try? toJSON("<a>&nope;</a>")
        _ = try? toJSON("<!DOCTYPE a><a/>")
        _ = try? XPathExpression("//[")
        _ = try? toJSON("<a/>", XMLToJSONOptions(xpath: try XPathExpression("/p:a")))
        _ = try? toJSON("<a xmlns:x='\u{1}'/>")
        _ = try? toJSON(#"<?xml version="1.0" encoding="NOPE-9"?><a/>"#)
        fflush(nil)
        dup2(savedStderr, 2)
        close(savedStderr)
        close(captureDescriptor)
        let printed = try String(contentsOfFile: capture, encoding: .utf8)
        #expect(!printed.contains("error"), "libxml2 printed: \(printed)")
    }
}

final class Failures: Sendable {
    let list = Mutex<[String]>([])
}

@Suite("XML concurrency")
struct XMLConcurrencyTests {
    @Test func eightThreadsConvertInParallel() async throws {
        let expression = try XPathExpression("//item[@kind='b']")
        let failures = Failures()
        // Eight threads of their own, awaited: no cooperative thread blocks while they convert.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for thread in 0..<8 {
                group.addTask { try await onOwnThread { Self.convert(thread: thread, expression: expression, failures: failures) } }
            }
            try await group.waitForAll()
        }
        #expect(failures.list.withLock { $0 } == [])
    }

    /// One thread's share: 100 documents converted whole, through `expression` and back, each checked, and a broken
    /// one; what differs goes to `failures`.
    static func convert(thread: Int, expression: XPathExpression, failures: Failures) {
        for iteration in 0..<100 {
            let n = thread * 1000 + iteration
            let xml = #"<list n="\#(n)"><item kind="a">\#(n)</item><item kind="b">x\#(n)</item><item kind="b"/></list>"#
            do {
                let whole = try XMLConversion.json(fromXML: Array(xml.utf8))
                let expected = json(##"{"list":{"@n":\##(n),"item":[{"@kind":"a","#text":\##(n)},{"@kind":"b","#text":"x\##(n)"},{"@kind":"b"}]}}"##)
                let selected = try XMLConversion.json(fromXML: Array(xml.utf8), options: XMLToJSONOptions(xpath: expression))
                let back = try XMLConversion.json(fromXML: try XMLConversion.xml(from: whole))
                if whole != expected || back != whole
                    || selected != json(##"{"item":[{"@kind":"b","#text":"x\##(n)"},{"@kind":"b"}]}"##)
                {
                    failures.list.withLock { $0.append("thread \(thread) iteration \(iteration)") }
                }
                _ = try? XMLConversion.json(fromXML: Array("<bad \(n)>".utf8))
            } catch {
                failures.list.withLock { $0.append("thread \(thread) iteration \(iteration): \(error)") }
            }
        }
    }
}

@Suite("XML conversion time")
struct XMLConversionTimeTests {
    /// A ~10 KB order document: 90 items with attributes and children.
    static let document: String = {
        var xml = #"<?xml version="1.0" encoding="UTF-8"?><order id="12345" currency="EUR"><customer vip="true"><name>Ann Example</name><email>ann@example.com</email></customer>"#
        for index in 0..<90 {
            xml += #"<item sku="SKU-\#(index)" qty="\#(index % 5 + 1)"><title>Item number \#(index)</title><price>\#(index).99</price><gift>false</gift></item>"#
        }
        return xml + "<note>deliver &amp; ring twice</note></order>"
    }()

    @Test func measureBothDirections() throws {
        let bytes = Array(Self.document.utf8)
        #expect(bytes.count > 8_000 && bytes.count < 12_000)
        let value = try XMLConversion.json(fromXML: bytes)
        let iterations = 300
        let toJSONTime = try seconds { for _ in 0..<iterations { _ = try XMLConversion.json(fromXML: bytes) } }
        let toXMLTime = try seconds { for _ in 0..<iterations { _ = try XMLConversion.xml(from: value) } }
        let xpath = XMLToJSONOptions(xpath: try XPathExpression("//item[@qty > 3]"))
        let xpathTime = try seconds { for _ in 0..<iterations { _ = try XMLConversion.json(fromXML: bytes, options: xpath) } }
        print(String(format: "XML conversion of a %ld-byte document: xml_to_json %.1f µs, xml_to_json with xpath %.1f µs, json_to_xml %.1f µs (average of %ld)",
                     bytes.count, toJSONTime / Double(iterations) * 1e6, xpathTime / Double(iterations) * 1e6,
                     toXMLTime / Double(iterations) * 1e6, iterations))
    }
}
