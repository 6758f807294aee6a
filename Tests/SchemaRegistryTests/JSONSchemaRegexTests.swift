import Foundation
@testable import SchemaRegistry
import Testing

/// `pattern` and `patternProperties` through the validator: ECMA-262 semantics, refusals with reasons, bounded cost.
@Suite struct JSONSchemaRegexTests {
    /// The test suite's optional regex files (copied from the same commit as the required tests).
    static let optionalFiles = [
        "draft7/optional/ecmascript-regex.json", "draft7/optional/non-bmp-regex.json",
        "draft2020-12/optional/ecmascript-regex.json", "draft2020-12/optional/non-bmp-regex.json",
    ]

    @Test(arguments: optionalFiles)
    func optionalRegexTestsOfTheSuite(file: String) throws {
        let data = try Data(contentsOf: JSONSchemaConformanceTests.suite.appendingPathComponent("tests/\(file)"))
        let groups = try #require(try JSONParser.parse([UInt8](data)).arrayValue)
        let draft: JSONSchemaValidator.Draft = file.hasPrefix("draft7") ? .draft7 : .draft2020
        var passed = 0
        var failed: [String] = []
        for group in groups {
            let description = group["description"]?.stringValue ?? "?"
            let validator = try JSONSchemaValidator(schema: try #require(group["schema"]), defaultDraft: draft)
            for test in group["tests"]?.arrayValue ?? [] {
                let expected = test["valid"]?.boolValue ?? true
                if validator.validate(try #require(test["data"])).isEmpty == expected {
                    passed += 1
                } else {
                    failed.append("\(file): \(description) / \(test["description"]?.stringValue ?? "?"): expected \(expected ? "valid" : "invalid")")
                }
            }
        }
        print("JSON-Schema-Test-Suite \(file): \(passed) passed, \(failed.count) failed")
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(passed > 0)
    }

    func validator(pattern: String) throws -> JSONSchemaValidator {
        try JSONSchemaValidator(schema: .object(JSONObject([("type", .string("string")), ("pattern", .string(pattern))])))
    }

    /// ICU (the former engine) differs from ECMA-262 on all of these.
    @Test func patternsFollowECMA262NotICU() throws {
        #expect(try !validator(pattern: "^abc$").validate(.string("abc\n")).isEmpty)
        #expect(try !validator(pattern: "^\\d$").validate(.string("\u{07C0}")).isEmpty)
        #expect(try !validator(pattern: "^\\w$").validate(.string("é")).isEmpty)
        #expect(try validator(pattern: "^\\s$").validate(.string("\u{FEFF}")).isEmpty)
        #expect(try validator(pattern: "^\\p{digit}+$").validate(.string("\u{09EA}\u{09E8}")).isEmpty)
        #expect(try validator(pattern: "^(?:(a)|b)+\\1$").validate(.string("ab")).isEmpty)
    }

    @Test func hostilePatternIsAnsweredQuickly() throws {
        let validator = try validator(pattern: "^(a+)+$")
        let clock = ContinuousClock()
        let start = clock.now
        let violations = validator.validate(.string(String(repeating: "a", count: 100_000) + "!"))
        #expect(violations.map(\.keyword) == ["pattern"])
        #expect(clock.now - start < .seconds(20))  // backtracking would take years; a loaded machine takes seconds
        let keys = try JSONSchemaValidator(schema: try JSONParser.parse(#"{"patternProperties": {"^(a|aa)+$": false}}"#))
        let name = String(repeating: "a", count: 50_000) + "b"
        #expect(keys.validate(.object(JSONObject([(name, .bool(true))]))).isEmpty)
        #expect(!keys.validate(.object(JSONObject([(String(repeating: "a", count: 50_000), .bool(true))]))).isEmpty)
    }

    @Test func backreferenceOverBudgetIsAViolation() throws {
        let validator = try validator(pattern: "^(a+)+\\1$")
        #expect(validator.validate(.string(String(repeating: "a", count: 40) + "!")).map(\.keyword) == ["pattern"])
        #expect(validator.validate(.string("aaaa")).isEmpty)
    }

    @Test func unsupportedPatternsAreRefusedWithTheReason() {
        let cases = [
            ("(?i)abc", "pattern '(?i)abc' is not a supported ECMA-262 regular expression: unsupported group syntax '(?' followed by 'i' (inline flags and other non-ECMA-262 groups are not supported) at offset 0"),
            ("a{1,100000}", "pattern 'a{1,100000}' is not a supported ECMA-262 regular expression: pattern expands to more than 10000 instructions (large counted repetitions {n,m}) at offset 0"),
            ("ab(", "pattern 'ab(' is not a supported ECMA-262 regular expression: unterminated group at offset 2"),
            ("\\Aab\\z", "pattern '\\Aab\\z' is not a supported ECMA-262 regular expression: '\\A' is not an ECMA-262 escape at offset 0"),
        ]
        for (pattern, message) in cases {
            #expect(throws: JSONSchemaError(message: message)) { _ = try validator(pattern: pattern) }
        }
    }
}
