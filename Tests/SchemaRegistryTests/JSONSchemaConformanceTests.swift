import Foundation
import SchemaRegistry
import Testing

/// The official JSON-Schema-Test-Suite (required tests of draft 7 and 2020-12, copied into this directory with
/// its licence and source commit). Prints "<file>: N passed, M failed" for every file.
@Suite struct JSONSchemaConformanceTests {
    static let suite = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("JSON-Schema-Test-Suite")

    /// Tests known not to pass, with the reason (also listed in the README). Keys: "file: group / test".
    static let exclusions: [String: String] = {
        let metaschema = "refers to the draft's metaschema on json-schema.org; kbridge fetches no schema from the network, and the metaschemas are not bundled"
        return [
            "draft7/definitions.json: validate definition against metaschema / valid definition schema": metaschema,
            "draft7/ref.json: remote ref, containing refs itself / remote ref valid": metaschema,
            "draft2020-12/defs.json: validate definition against metaschema / valid definition schema": metaschema,
            "draft2020-12/ref.json: remote ref, containing refs itself / remote ref valid": metaschema,
            "draft2020-12/vocabulary.json: schema that uses custom metaschema with with no validation vocabulary / no validation: invalid number, but it still validates":
                "$vocabulary is not read: the keywords of every vocabulary are applied",
        ]
    }()

    /// Every file of `remotes/`, by the URI the tests use for it.
    static let remotes: [String: JSONValue] = {
        var remotes: [String: JSONValue] = [:]
        let root = suite.appendingPathComponent("remotes")
        let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        while let file = enumerator?.nextObject() as? URL {
            guard file.pathExtension == "json", let data = try? Data(contentsOf: file),
                  let value = try? JSONParser.parse([UInt8](data)) else { continue }
            let relative = file.path.dropFirst(root.path.count + 1)
            remotes["http://localhost:1234/\(relative)"] = value
        }
        return remotes
    }()

    static func files(_ draft: String) -> [String] {
        let directory = suite.appendingPathComponent("tests/\(draft)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { "\(draft)/\($0)" }
    }

    struct Counts: Equatable { var passed = 0, failed = 0, excluded = 0 }

    @discardableResult
    func run(_ file: String, draft: JSONSchemaValidator.Draft) throws -> Counts {
        let data = try Data(contentsOf: Self.suite.appendingPathComponent("tests/\(file)"))
        let groups = try #require(try JSONParser.parse([UInt8](data)).arrayValue)
        var passed = 0
        var excluded = 0
        var failed: [String] = []
        for group in groups {
            let description = group["description"]?.stringValue ?? "?"
            let schema = try #require(group["schema"])
            let validator: JSONSchemaValidator
            do {
                validator = try JSONSchemaValidator(schema: schema, remotes: Self.remotes, defaultDraft: draft)
            } catch {
                failed.append("\(description): cannot compile the schema: \(error)")
                continue
            }
            for test in group["tests"]?.arrayValue ?? [] {
                let name = "\(file): \(description) / \(test["description"]?.stringValue ?? "?")"
                let expected = test["valid"]?.boolValue ?? true
                let violations = validator.validate(try #require(test["data"]))
                if violations.isEmpty == expected {
                    passed += 1
                } else if Self.exclusions[name] != nil {
                    excluded += 1
                } else {
                    failed.append("\(name): expected \(expected ? "valid" : "invalid")\(violations.first.map { ", got \($0)" } ?? "")")
                }
            }
        }
        print("JSON-Schema-Test-Suite \(file): \(passed) passed, \(failed.count) failed\(excluded > 0 ? ", \(excluded) excluded" : "")")
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        return Counts(passed: passed, failed: failed.count, excluded: excluded)
    }

    /// The suite must be there and whole: a missing or truncated copy would otherwise pass with zero cases.
    @Test func theWholeSuiteRunsWithTheDocumentedCounts() throws {
        #expect(FileManager.default.fileExists(atPath: Self.suite.appendingPathComponent("tests").path), "the suite is missing at \(Self.suite.path)")
        #expect(Self.remotes.count >= 20, "remotes/ holds \(Self.remotes.count) schemas")
        for (draft, version, expected) in [("draft7", JSONSchemaValidator.Draft.draft7, Counts(passed: 925, failed: 0, excluded: 2)),
                                           ("draft2020-12", .draft2020, Counts(passed: 1296, failed: 0, excluded: 3))] {
            let files = Self.files(draft)
            #expect(files.count >= 30, "\(draft): only \(files.count) files")
            var total = Counts()
            for file in files {
                let counts = try run(file, draft: version)
                total.passed += counts.passed
                total.failed += counts.failed
                total.excluded += counts.excluded
            }
            #expect(total == expected, "\(draft)")
        }
    }

    @Test(arguments: files("draft7"))
    func draft7(file: String) throws { try run(file, draft: .draft7) }

    @Test(arguments: files("draft2020-12"))
    func draft2020(file: String) throws { try run(file, draft: .draft2020) }
}
