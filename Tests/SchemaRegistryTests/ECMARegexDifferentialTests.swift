@testable import SchemaRegistry
import Foundation
import TestSupport
import Testing

struct PatternGrammar {
    var random: SeededGenerator
    var lookbehind = false
    var atoms = ["a", "b", "a", "b", ".", "[ab]", "[^b]", "[a-c]", "\\d", "\\w", "\\W", "\\s", "-", "[\\d-]", "\\."]

    mutating func pick<T>(_ options: [T]) -> T { options[Int(random.next() % UInt64(options.count))] }
    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }

    mutating func pattern(depth: Int = 0) -> String {
        var alternatives = [sequence(depth: depth)]
        while chance(20) && alternatives.count < 3 { alternatives.append(sequence(depth: depth)) }
        return alternatives.joined(separator: "|")
    }

    mutating func sequence(depth: Int) -> String {
        var terms = ""
        for _ in 0..<(1 + Int(random.next() % 4)) { terms += term(depth: depth) }
        return terms
    }

    mutating func term(depth: Int) -> String {
        if chance(10) { return pick(["^", "$", "\\b", "\\B"]) }
        if depth < 3 && chance(12) {
            var kinds = ["(?=", "(?!"]
            if lookbehind { kinds += ["(?<=", "(?<!"] }
            return pick(kinds) + pattern(depth: depth + 1) + ")"
        }
        let atom = depth < 3 && chance(20) ? pick(["(", "(?:"]) + pattern(depth: depth + 1) + ")" : pick(atoms)
        guard chance(40) else { return atom }
        let quantifier = pick(["*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}"])
        return atom + quantifier + (chance(20) ? "?" : "")
    }

    mutating func string(alphabet: [String]) -> String {
        var text = ""
        for _ in 0..<Int(random.next() % 9) { text += pick(alphabet) }
        return text
    }
}

@Suite struct ECMARegexDifferentialTests {
    /// ASCII patterns and strings where ECMA-262 and ICU agree: compare with NSRegularExpression.
    /// 16,000 comparisons take seconds of CPU: they run on a thread of their own (see `onOwnThread`).
    @Test func agreesWithNSRegularExpression() async throws {
        let (compared, disagreements) = try await onOwnThread { () throws -> (Int, [String]) in
        var grammar = PatternGrammar(random: SeededGenerator(seed: 20_251_129))
        var compared = 0
        var disagreements: [String] = []
        for _ in 0..<2000 {
            let pattern = grammar.pattern()
            let regex = try RegularExpression(validating: pattern)
            let icu = try NSRegularExpression(pattern: pattern)
            for _ in 0..<8 {
                let string = grammar.string(alphabet: ["a", "b", "a", "1", " ", "-", "c", "."])
                let expected = icu.firstMatch(in: string, range: NSRange(string.startIndex..., in: string)) != nil
                compared += 1
                if regex.matches(string) != expected {
                    disagreements.append("/\(pattern)/ on \(string.debugDescription): ICU \(expected)")
                }
            }
        }
        return (compared, disagreements)
        }
        print("differential: \(compared) cases, \(disagreements.count) disagreements")
        #expect(disagreements.isEmpty, "\(disagreements.prefix(20).joined(separator: "\n"))")
    }

    /// The automaton and the backtracker agree, lookbehind and non-ASCII included.
    @Test func automatonAgreesWithBacktracker() async throws {
        let disagreements = try await onOwnThread { () throws -> [String] in
        var grammar = PatternGrammar(random: SeededGenerator(seed: 7), lookbehind: true)
        grammar.atoms += ["é", "\\p{L}", "\\P{Ll}", "[^\\s]", "😀", "\\u{1F600}"]
        var disagreements: [String] = []
        for _ in 0..<2000 {
            let pattern = grammar.pattern()
            let automaton = try RegularExpression(validating: pattern)
            let backtracker = try RegularExpression(validating: pattern, forceBacktracking: true)
            for _ in 0..<8 {
                let string = grammar.string(alphabet: ["a", "b", "é", "1", " ", "😀", "\n", "A"])
                let result = backtracker.evaluate(string)
                if result != .budgetExceeded && automaton.evaluate(string) != result {
                    disagreements.append("/\(pattern)/ on \(string.debugDescription): backtracker \(result)")
                }
            }
        }
        return disagreements
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(20).joined(separator: "\n"))")
    }
}

@Suite struct ECMARegexReDoSTests {
    @Test func hostilePatternsRunInLinearTime() throws {
        let hostile = String(repeating: "a", count: 100_000) + "!"
        let cases: [(String, String, Bool)] = [
            ("^(a+)+$", hostile, false),
            ("(a|aa)+$", hostile, false),
            ("(a|aa)+$", String(repeating: "a", count: 100_000), true),
            ("(a*)*b", hostile, false),
            ("^(\\w+\\s?)*$", hostile, false),
            ("^(\\w+\\s?)*$", String(repeating: "ab ", count: 33_000), true),
            ("(.*a){20}", String(repeating: "b", count: 100_000) + String(repeating: "a", count: 19), false),
            ("(.*a){20}", hostile, true),
            ("^(?=(a+)+$)a", hostile, false),
            ("^(a|a?)+$", hostile, false),
            ("^([a-z]+)*[0-9]$", hostile, false),
            // Non-ASCII input leaves the ASCII automaton for the Pike VM.
            ("^(\\p{L}+)+$", String(repeating: "é", count: 100_000) + "!", false),
            ("(é|éé)+$", String(repeating: "é", count: 100_000) + "!", false),
            ("^(?:(?!x).)*$", String(repeating: "é", count: 100_000) + "\n", false),
            ("(?<=é+)!", String(repeating: "é", count: 100_000) + "!", true),
        ]
        for (pattern, string, expected) in cases {
            let regex = try RegularExpression(validating: pattern)
            let clock = ContinuousClock()
            let start = clock.now
            let result = regex.evaluate(string)
            let elapsed = clock.now - start
            print("ReDoS \(pattern) on \(string.unicodeScalars.count) characters: \(result) in \(elapsed)")
            #expect(result == (expected ? .match : .noMatch), "\(pattern)")
            // A safety net only (debug build, shared machine): backtracking would take longer than the age of the universe.
            #expect(elapsed < .seconds(20), "\(pattern) took \(elapsed)")
        }
    }

    @Test func backreferencesStopAtTheStepBudget() throws {
        let regex = try RegularExpression(validating: "^(a+)+\\1$")
        let hostile = String(repeating: "a", count: 40) + "!"
        #expect(regex.evaluate(hostile) == .budgetExceeded)
        #expect(!regex.matches(hostile))
        #expect(regex.evaluate("aaaa") == .match)
    }
}
