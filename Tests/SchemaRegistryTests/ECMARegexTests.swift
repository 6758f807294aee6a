@testable import SchemaRegistry
import Testing

@Suite struct ECMARegexTests {
    func check(_ pattern: String, _ cases: [(String, Bool)], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let regex = try RegularExpression(validating: pattern)
        let backtracking = try RegularExpression(validating: pattern, forceBacktracking: true)
        for (string, expected) in cases {
            #expect(regex.matches(string) == expected, "\(pattern) on \(string.debugDescription)", sourceLocation: sourceLocation)
            #expect(backtracking.matches(string) == expected, "backtracking \(pattern) on \(string.debugDescription)", sourceLocation: sourceLocation)
        }
    }

    @Test func basics() throws {
        try check("abc", [("abc", true), ("xabcx", true), ("ab", false), ("", false)])
        try check("^abc$", [("abc", true), ("abc\n", false), ("xabc", false)])
        try check("^a.c$", [("abc", true), ("a\nc", false), ("aéc", true), ("a\u{2028}c", false)])
        try check("^[a-z0-9-]+$", [("abc-09", true), ("ABC", false), ("", false), ("a_b", false)])
        try check("^[^a-c]$", [("d", true), ("a", false), ("é", true)])
        try check("^\\d{3}-\\d{4}$", [("555-1234", true), ("55-1234", false), ("555-12345", false)])
        try check("a|b|", [("", true), ("x", true)])
        try check("^(?:a|bc)+$", [("abca", true), ("abcb", false)])
        try check("^a{2,3}$", [("a", false), ("aa", true), ("aaa", true), ("aaaa", false)])
        try check("^a{2,}$", [("a", false), ("aa", true), ("aaaaa", true)])
        try check("^a{0}$", [("", true), ("a", false)])
        try check("^(a*)*$", [("", true), ("aaa", true), ("aab", false)])
        try check("^(a|)*b$", [("aab", true), ("b", true)])
        try check("x{", [("x{", true)])
        try check("a]", [("a]", true)])
        try check("^a(?:){1000000}b(?:(?:){1000000}){1000000}$", [("ab", true), ("a", false)])
    }

    @Test func escapes() throws {
        try check("^\\t\\n\\r\\f\\v\\0$", [("\t\n\r\u{0C}\u{0B}\0", true)])
        try check("^\\cC\\cc$", [("\u{03}\u{03}", true)])
        try check("^\\x41\\u0042\\u{1F600}$", [("AB😀", true)])
        try check("^\\uD83D\\uDE00$", [("😀", true)])
        try check("^[\\uD83D\\uDE00-\\uD83D\\uDE4F]$", [("😀", true), ("🙐", false), ("🙏", true)])
        try check("^\\d\\D\\w\\W\\s\\S$", [("1a_ \u{A0}x", true), ("1x_-\u{FEFF}y", true), ("11_ \u{A0}x", false), ("1a_ xx", false)])
        try check("^[\\w-]+$", [("a-b_c", true), ("a b", false)])
        try check("^[\\s\\d]+$", [("1 2\u{3000}", true), ("1a", false)])
        try check("^[\\S]$", [("a", true), (" ", false)])
        try check("^[\\b]$", [("\u{08}", true), ("b", false)])
        try check("^\\.\\*\\/\\-$", [(".*/-", true)])
        try check("\\bfoo\\b", [("a foo b", true), ("afoo", false), ("foo", true)])
        try check("\\Bfoo", [("afoo", true), ("foo", false)])
        try check("^\\w\\b", [("é", false), ("a", true)])
    }

    @Test func unicodeProperties() throws {
        try check("^\\p{L}+$", [("abcé", true), ("ab1", false)])
        try check("^\\p{Lu}\\p{Ll}$", [("Éa", true), ("ab", false)])
        try check("^\\p{Letter}cole$", [("école", true), ("ecole", true)])
        try check("^\\p{digit}+$", [("42", true), ("\u{09EA}\u{09E8}", true), ("-", false)])
        try check("^\\P{N}$", [("a", true), ("1", false), ("\u{0663}", false)])
        try check("^\\p{General_Category=Nd}$", [("\u{0663}", true)])
        try check("^[\\p{Sc}\\d]+$", [("$12€", true), ("a", false)])
        try check("^\\p{Zs}$", [("\u{2003}", true), ("\t", false)])
        try check("^\\p{Emoji_Presentation}$", [("😀", true)])
    }

    @Test func groupsAndLookarounds() throws {
        try check("^(?<year>\\d{4})-(?<month>\\d{2})$", [("2024-01", true), ("2024-1", false)])
        try check("^(?=.*\\d)(?=.*[a-z]).{8,}$", [("abcdefg1", true), ("abcdefgh", false), ("1234567a", true), ("a1", false)])
        try check("^(?!admin$)\\w+$", [("admin", false), ("admins", true), ("root", true)])
        try check("foo(?!bar)", [("foobar", false), ("foobaz", true), ("foobarfoo", true)])
        try check("(?<=\\$)\\d+", [("cost $42", true), ("cost 42", false)])
        try check("(?<!\\$)\\b\\d+", [("$42", false), ("$42 7", true)])
        try check("^(?=(a+))a*b\\1$", [("aaab", false), ("aaaba", false)])
        try check("(?<=a(?=b)b)c", [("abc", true), ("acc", false)])
        try check("(?<=^a+)b", [("aaab", true), ("xab", false)])
        try check("^(?:(?!ab).)*$", [("aabb", false), ("baba", false), ("bbaa", true)])
        // Anchors inside tabulated lookarounds (lookahead bodies run backwards from the end).
        try check("a(?=b$)", [("ab", true), ("abb", false), ("aab", true)])
        try check("(?<=^a)b", [("ab", true), ("bab", false)])
        try check("a(?=$)", [("ba", true), ("ab", false)])
        try check("(?=^)a", [("ab", true), ("ba", false)])
        try check("a(?=)b", [("ab", true)])
        try check("(?<=é)x(?=😀$)", [("éx😀", true), ("ex😀", false), ("éx😀!", false)])
        try check("^(?=.*[é-ë]).+$", [("abê", true), ("abc", false)])
    }

    @Test func backreferences() throws {
        try check("^(a+)b\\1$", [("aabaa", true), ("aaba", false), ("aba", true)])
        try check("^(?<q>['\"]).*\\k<q>$", [("'x'", true), ("\"x'", false)])
        try check("^(?:(a)|b)+\\1$", [("aba", false), ("abaa", true), ("ab", true) /* the last iteration cleared the capture */])
        try check("\\1(a)", [("a", true)])
        try check("^(a)?\\1b$", [("b", true), ("aab", true), ("ab", false)])
        try check("^(?:(a)|(b))+$", [("ab", true)])
        try check("(\\w+)\\s\\1", [("hello hello", true), ("hello world", false)])
    }

    @Test func lazyQuantifiersAgreeWithGreedyOnMatchExistence() throws {
        try check("^a+?b*?$", [("aab", true), ("b", false)])
        try check("a{2,3}?", [("aa", true), ("a", false)])
    }

    @Test func refusals() {
        let invalid: [(String, String)] = [
            ("(", "unterminated group at offset 0"),
            ("a)", "unmatched ')' at offset 1"),
            ("[a", "unterminated character class at offset 0"),
            ("*a", "nothing to repeat before '*' at offset 0"),
            ("a{2,1}", "numbers out of order in {2,1} quantifier at offset 1"),
            ("[z-a]", "range out of order in character class at offset 1"),
            ("(?i)a", "unsupported group syntax '(?' followed by 'i' (inline flags and other non-ECMA-262 groups are not supported) at offset 0"),
            ("\\2(a)", "backreference \\2 to a group that does not exist (octal escapes are not supported) at offset 0"),
            ("\\k<x>", "backreference to an undefined group name 'x' at offset 0"),
            ("\\p{Foo}", "unknown or unsupported Unicode property 'Foo' at offset 0"),
            ("\\p{Script=Latin}", "Unicode script properties (\\p{Script=…}) are not supported at offset 0"),
            ("\\z", "'\\z' is not an ECMA-262 escape at offset 0"),
            ("\\A", "'\\A' is not an ECMA-262 escape at offset 0"),
            ("a**", "nothing to repeat before '*' at offset 2"),
            ("^*", "nothing to repeat: an assertion cannot be quantified at offset 1"),
            ("(?<n>a)(?<n>b)", "duplicate group name 'n' at offset 7"),
            ("(a){10000}", "pattern expands to more than 10000 instructions (large counted repetitions {n,m}) at offset 0"),
            ("((a{100}){100}){100}", "pattern expands to more than 10000 instructions (large counted repetitions {n,m}) at offset 0"),
            ("(?<=(a)\\1)", "backreferences inside a lookbehind are not supported at offset 7"),
            ("\\01", "octal escapes are not supported at offset 0"),
            ("\\c1", "\\c must be followed by an ASCII letter at offset 0"),
            (String(repeating: "(", count: 200), "groups nested deeper than 100 at offset 100"),
            ((0...16).map { "(?=\($0))" }.joined(), "more than 16 different lookarounds at offset 0"),
        ]
        for (pattern, reason) in invalid {
            #expect(throws: RegularExpressionError.self, "\(pattern)") { try RegularExpression(validating: pattern) }
            do {
                _ = try RegularExpression(validating: pattern)
            } catch {
                #expect(error.description == reason, "\(pattern)")
            }
            #expect(RegularExpression(pattern) == nil)
        }
    }
}
