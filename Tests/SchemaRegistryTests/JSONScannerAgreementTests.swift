import Foundation
import JSON
import TestSupport
import Testing

/// `JSONParser.validate` (the Kong envelope's check) and `JSONParser.parse` (the schema routes' tree) are one
/// scanner: they must accept and refuse exactly the same texts. Foundation's parser is the independent oracle for
/// the grammar, outside kbridge's own limits.
@Suite struct JSONScannerAgreementTests {
    static let edgeCases: [String] = [
        "{}", "[]", "0", "-0", "1e5", "1E+5", "-1.5e-3", "\"\"", "true", "false", "null", " [1, 2 ,3 ] ",
        #""\ud83d\ude00""#, #""\ud800""#, #""\udc00""#, #""\ud800x""#, #""\ud800\u0041""#, #""\u00e9\n\t\/""#,
        "01", "1.", ".5", "-", "+1", "1e", "1e+", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "[", "{", "\"abc",
        "\"a\u{01}b\"", "nul", "truex", "[1] [2]", "", " ", "\u{FEFF}{}", "{\"a\":1,\"a\":2}", "\"\\x\"",
        String(repeating: "[", count: 512) + String(repeating: "]", count: 512),
        String(repeating: "[", count: 513) + String(repeating: "]", count: 513),
        String(repeating: "9", count: 1000), String(repeating: "9", count: 1001),
    ]

    func agree(_ bytes: [UInt8]) -> Bool? {
        let validated = bytes.withUnsafeBytes { buffer in (try? JSONParser.validate(buffer)) != nil }
        let parsed = (try? JSONParser.parse(bytes)) != nil
        guard validated == parsed else { return nil }
        return parsed
    }

    @Test(arguments: edgeCases)
    func validationAndParsingAgree(text: String) {
        #expect(agree(Array(text.utf8)) != nil, "validate and parse disagree on \(text.prefix(60))")
    }

    @Test func loneSurrogatesAndInvalidUTF8AreRefusedByBoth() {
        for text in [#""\ud800""#, #"{"k":"\udfff"}"#] { #expect(agree(Array(text.utf8)) == false, "\(text)") }
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xC0, 0xAF, 0x22]] {
            #expect(agree(bytes) == false)
        }
        let failure = [UInt8]([0x5B, 0x31, 0x2C, 0xFF, 0x5D]).withUnsafeBytes { buffer in
            #expect(throws: JSONParser.Failure.self) { try JSONParser.validate(buffer) }
        }
        #expect(failure?.offset == 3)
    }

    /// Seeded mutations of valid documents: both agree with each other on every one, and with Foundation wherever
    /// kbridge's own limits (depth, number length, lone surrogates) are not involved.
    @Test func mutationsAgreeWithEachOtherAndWithFoundation() {
        var generator = SeededGenerator(seed: 0x5EED)
        let seeds = [#"{"a":[1,2.5,-3e2,{"b":null}],"c":"x\"y","d":true}"#, #"[{"k":"v"},[],{},"\u00e9",0]"#, #"{"n":-0.0,"s":"\\"}"#]
        let alphabet = Array(#"{}[]":,.-+eE0123456789 tfn"\u"#.utf8) + [0x0A, 0x00, 0xFF]
        var checked = 0
        for _ in 0..<20_000 {
            var bytes = Array(seeds[Int.random(in: 0..<seeds.count, using: &generator)].utf8)
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let position = Int.random(in: 0...bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0 where position < bytes.count: bytes.remove(at: position)
                case 1: bytes.insert(alphabet.randomElement(using: &generator)!, at: position)
                default: if position < bytes.count { bytes[position] = alphabet.randomElement(using: &generator)! }
                }
            }
            guard let verdict = agree(bytes) else {
                Issue.record("validate and parse disagree on \(String(decoding: bytes, as: UTF8.self))")
                continue
            }
            let foundation = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
            let text = String(decoding: bytes, as: UTF8.self)
            // Foundation accepts lone surrogates (as U+FFFD) and trailing commas; kbridge refuses both, as RFC 8259 does.
            let squeezed = text.filter { !$0.isWhitespace }
            if !text.contains("\\u") && !text.contains("\u{FFFD}") && !squeezed.contains(",]") && !squeezed.contains(",}") {
                #expect(verdict == foundation, "kbridge says \(verdict), Foundation \(foundation) for \(text)")
                checked += 1
            }
        }
        #expect(checked > 10_000)
    }
}
