/// An ECMA-262 regular expression (the dialect of JSON Schema's `pattern` and `patternProperties`), matched at a
/// bounded cost: patterns come from registered schemas and strings from requests, so neither may buy unbounded work.
///
/// Semantics are those of a JavaScript `RegExp` with the `u` flag and no other flag, on Unicode scalars: `\d`, `\w`
/// and `\b` are ASCII, `\s` is the ECMA white-space and line-terminator set, `.` matches anything but `\n`, `\r`,
/// U+2028 and U+2029, `^` and `$` match only at the ends of the string, `\p{…}`/`\P{…}` take general categories
/// (short or long names) and a few binary properties. A few Annex B leniencies are accepted (a `{` or `]` that
/// cannot start a quantifier or end a class is literal, identity escapes of any ASCII punctuation).
///
/// Cost: without backreferences, matching simulates the automaton over all threads at once (Pike VM); lookarounds
/// are precomputed for every position by one scan of their body, so a match costs O(program × input). Counted
/// repetitions expand into the program, whose size is capped at ``maxProgramSize`` instructions. A pattern with
/// backreferences is matched by backtracking with a budget of ``stepBudget`` steps per string.
struct RegularExpression: Sendable {
    /// The outcome of a search.
    enum MatchResult: Sendable, Hashable {
        case match
        case noMatch
        /// A pattern with backreferences needed more than ``stepBudget`` steps on this string.
        case budgetExceeded
    }

    /// Largest compiled program (all instructions of the pattern and its lookarounds).
    static let maxProgramSize = 10_000
    /// Longest pattern, in Unicode scalars.
    static let maxPatternLength = 32_768
    /// Most different lookarounds in a pattern (each holds a table of one entry per byte of the string while matching).
    static let maxLookarounds = 16
    /// Deepest nesting of groups, classes and lookarounds.
    static let maxNesting = 100
    /// Backtracking steps allowed per string for patterns with backreferences.
    static let stepBudget = 1_000_000

    let pattern: String
    let compiled: CompiledPattern

    /// `nil` when the pattern is not a supported ECMA-262 regular expression.
    init?(_ pattern: String) {
        guard let expression = try? RegularExpression(validating: pattern) else { return nil }
        self = expression
    }

    /// Compiles `pattern`, or throws why it cannot be used, with the offset (in Unicode scalars) of the problem.
    init(validating pattern: String) throws(RegularExpressionError) {
        try self.init(validating: pattern, forceBacktracking: false)
    }

    /// `forceBacktracking` runs the backtracker even without backreferences (to test one engine against the other).
    init(validating pattern: String, forceBacktracking: Bool) throws(RegularExpressionError) {
        var parser = RegexParser(pattern)
        let tree = try parser.parse()
        var compiler = RegexCompiler(captureCount: parser.captureCount)
        self.pattern = pattern
        self.compiled = try compiler.compile(tree, forceBacktracking: forceBacktracking)
    }

    /// Whether the pattern matches somewhere in `string` (an unanchored search, like JavaScript's `test`).
    /// A string on which the step budget runs out does not match.
    func matches(_ string: String) -> Bool { evaluate(string) == .match }

    /// Whether the pattern matches somewhere in `string`, or that it could not tell within the step budget.
    func evaluate(_ string: String) -> MatchResult {
        var copy = string
        return copy.withUTF8 { compiled.search($0) }
    }
}

/// Why a pattern cannot be compiled: what and where.
struct RegularExpressionError: Error, Sendable, Hashable, CustomStringConvertible {
    var reason: String
    /// Offset of the problem in the pattern, in Unicode scalars from 0.
    var offset: Int
    var description: String { "\(reason) at offset \(offset)" }
}

// MARK: - Character sets

/// A set of Unicode scalars: the union of `items`, complemented when `negated`. ASCII membership is precomputed.
struct ScalarSet: Sendable, Hashable {
    enum Item: Sendable, Hashable {
        /// Sorted, non-overlapping, non-adjacent code point ranges.
        case ranges([ClosedRange<UInt32>])
        case property(UnicodeProperty)
        indirect case complement(Item)

        func contains(_ scalar: UInt32) -> Bool {
            switch self {
            case .ranges(let ranges):
                var low = 0
                var high = ranges.count
                while low < high {
                    let middle = (low + high) / 2
                    if ranges[middle].upperBound < scalar {
                        low = middle + 1
                    } else if ranges[middle].lowerBound > scalar {
                        high = middle
                    } else {
                        return true
                    }
                }
                return false
            case .property(let property): return property.contains(scalar)
            case .complement(let item): return !item.contains(scalar)
            }
        }
    }

    let items: [Item]
    let negated: Bool
    /// Membership of the scalars 0..<64 and 64..<128.
    private let asciiLow: UInt64
    private let asciiHigh: UInt64

    init(items: [Item], negated: Bool = false) {
        self.items = items
        self.negated = negated
        var low: UInt64 = 0
        var high: UInt64 = 0
        for scalar in UInt32(0)..<128 where items.contains(where: { $0.contains(scalar) }) != negated {
            if scalar < 64 { low |= 1 << UInt64(scalar) } else { high |= 1 << UInt64(scalar - 64) }
        }
        asciiLow = low
        asciiHigh = high
    }

    init(ranges: [ClosedRange<UInt32>], negated: Bool = false) {
        self.init(items: [.ranges(Self.normalize(ranges))], negated: negated)
    }

    @inline(__always)
    func contains(_ scalar: UInt32) -> Bool {
        if scalar < 64 { return asciiLow & (1 << UInt64(scalar)) != 0 }
        if scalar < 128 { return asciiHigh & (1 << UInt64(scalar - 64)) != 0 }
        for item in items where item.contains(scalar) { return !negated }
        return negated
    }

    /// Whether some scalar ≥ 128 may be in the set.
    var mayContainNonASCII: Bool {
        if negated { return true }
        for item in items {
            switch item {
            case .ranges(let ranges): if let last = ranges.last, last.upperBound >= 128 { return true }
            default: return true
            }
        }
        return false
    }

    /// Sorts and merges overlapping or adjacent ranges.
    static func normalize(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var merged: [ClosedRange<UInt32>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, range.lowerBound <= last.upperBound || range.lowerBound == last.upperBound + 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        return merged
    }

    static let digitRanges: [ClosedRange<UInt32>] = [0x30...0x39]
    static let wordRanges: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
    /// ECMA-262 WhiteSpace and LineTerminator.
    static let spaceRanges: [ClosedRange<UInt32>] = [
        0x09...0x0D, 0x20...0x20, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A, 0x2028...0x2029, 0x202F...0x202F,
        0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF,
    ]
    static let lineTerminatorRanges: [ClosedRange<UInt32>] = [0x0A...0x0A, 0x0D...0x0D, 0x2028...0x2029]
    /// `.`: anything but a line terminator.
    static let dot = ScalarSet(ranges: lineTerminatorRanges, negated: true)

    @inline(__always)
    static func isWordByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F || (byte >= 0x61 && byte <= 0x7A)
    }
}

/// A Unicode property usable in `\p{…}`: a set of general categories, or a binary property.
enum UnicodeProperty: Sendable, Hashable {
    /// Bit `i` set: general category number `i` (in ``UnicodeProperty/categories`` order) is in.
    case generalCategories(UInt32)
    case any, ascii, assigned, alphabetic, whiteSpace, uppercase, lowercase, emoji, emojiPresentation, hexDigit,
         asciiHexDigit, ideographic, idStart, idContinue, math, dash, noncharacterCodePoint

    /// The general categories, with their short and long names.
    static let categories: [(Unicode.GeneralCategory, String, String)] = [
        (.uppercaseLetter, "Lu", "Uppercase_Letter"), (.lowercaseLetter, "Ll", "Lowercase_Letter"),
        (.titlecaseLetter, "Lt", "Titlecase_Letter"), (.modifierLetter, "Lm", "Modifier_Letter"),
        (.otherLetter, "Lo", "Other_Letter"), (.nonspacingMark, "Mn", "Nonspacing_Mark"),
        (.spacingMark, "Mc", "Spacing_Mark"), (.enclosingMark, "Me", "Enclosing_Mark"),
        (.decimalNumber, "Nd", "Decimal_Number"), (.letterNumber, "Nl", "Letter_Number"),
        (.otherNumber, "No", "Other_Number"), (.connectorPunctuation, "Pc", "Connector_Punctuation"),
        (.dashPunctuation, "Pd", "Dash_Punctuation"), (.openPunctuation, "Ps", "Open_Punctuation"),
        (.closePunctuation, "Pe", "Close_Punctuation"), (.initialPunctuation, "Pi", "Initial_Punctuation"),
        (.finalPunctuation, "Pf", "Final_Punctuation"), (.otherPunctuation, "Po", "Other_Punctuation"),
        (.mathSymbol, "Sm", "Math_Symbol"), (.currencySymbol, "Sc", "Currency_Symbol"),
        (.modifierSymbol, "Sk", "Modifier_Symbol"), (.otherSymbol, "So", "Other_Symbol"),
        (.spaceSeparator, "Zs", "Space_Separator"), (.lineSeparator, "Zl", "Line_Separator"),
        (.paragraphSeparator, "Zp", "Paragraph_Separator"), (.control, "Cc", "Control"),
        (.format, "Cf", "Format"), (.surrogate, "Cs", "Surrogate"), (.privateUse, "Co", "Private_Use"),
        (.unassigned, "Cn", "Unassigned"),
    ]

    /// Property names and aliases (ECMA-262 table 67-69 names, plus the lower-case aliases `digit`, `punct`,
    /// `cntrl` of UTS #18 that the JSON Schema test suite uses).
    static func named(_ name: String, value: String?) -> UnicodeProperty? {
        if let value {
            guard name == "General_Category" || name == "gc" else { return nil }
            return category(value)
        }
        if let category = category(name) { return category }
        switch name {
        case "Any": return .any
        case "ASCII": return .ascii
        case "Assigned": return .assigned
        case "Alphabetic", "Alpha": return .alphabetic
        case "White_Space", "space": return .whiteSpace
        case "Uppercase", "Upper": return .uppercase
        case "Lowercase", "Lower": return .lowercase
        case "Emoji": return .emoji
        case "Emoji_Presentation", "EPres": return .emojiPresentation
        case "Hex_Digit", "Hex": return .hexDigit
        case "ASCII_Hex_Digit", "AHex": return .asciiHexDigit
        case "Ideographic", "Ideo": return .ideographic
        case "ID_Start", "IDS": return .idStart
        case "ID_Continue", "IDC": return .idContinue
        case "Math": return .math
        case "Dash": return .dash
        case "Noncharacter_Code_Point", "NChar": return .noncharacterCodePoint
        default: return nil
        }
    }

    private static func category(_ name: String) -> UnicodeProperty? {
        func mask(_ prefix: Character) -> UInt32 {
            var mask: UInt32 = 0
            for (index, entry) in categories.enumerated() where entry.1.first == prefix { mask |= 1 << UInt32(index) }
            return mask
        }
        switch name {
        case "L", "Letter": return .generalCategories(mask("L"))
        case "LC", "Cased_Letter": return .generalCategories(0b111)
        case "M", "Mark", "Combining_Mark": return .generalCategories(mask("M"))
        case "N", "Number": return .generalCategories(mask("N"))
        case "P", "Punctuation", "punct": return .generalCategories(mask("P"))
        case "S", "Symbol": return .generalCategories(mask("S"))
        case "Z", "Separator": return .generalCategories(mask("Z"))
        case "C", "Other": return .generalCategories(mask("C"))
        case "digit": return category("Nd")
        case "cntrl": return category("Cc")
        default:
            guard let index = categories.firstIndex(where: { $0.1 == name || $0.2 == name }) else { return nil }
            return .generalCategories(1 << UInt32(index))
        }
    }

    /// Category numbers by `Unicode.GeneralCategory`, for the mask test.
    private static func categoryBit(_ category: Unicode.GeneralCategory) -> UInt32 {
        switch category {
        case .uppercaseLetter: 1 << 0
        case .lowercaseLetter: 1 << 1
        case .titlecaseLetter: 1 << 2
        case .modifierLetter: 1 << 3
        case .otherLetter: 1 << 4
        case .nonspacingMark: 1 << 5
        case .spacingMark: 1 << 6
        case .enclosingMark: 1 << 7
        case .decimalNumber: 1 << 8
        case .letterNumber: 1 << 9
        case .otherNumber: 1 << 10
        case .connectorPunctuation: 1 << 11
        case .dashPunctuation: 1 << 12
        case .openPunctuation: 1 << 13
        case .closePunctuation: 1 << 14
        case .initialPunctuation: 1 << 15
        case .finalPunctuation: 1 << 16
        case .otherPunctuation: 1 << 17
        case .mathSymbol: 1 << 18
        case .currencySymbol: 1 << 19
        case .modifierSymbol: 1 << 20
        case .otherSymbol: 1 << 21
        case .spaceSeparator: 1 << 22
        case .lineSeparator: 1 << 23
        case .paragraphSeparator: 1 << 24
        case .control: 1 << 25
        case .format: 1 << 26
        case .surrogate: 1 << 27
        case .privateUse: 1 << 28
        case .unassigned: 1 << 29
        @unknown default: 0
        }
    }

    func contains(_ codePoint: UInt32) -> Bool {
        guard let scalar = Unicode.Scalar(codePoint) else {
            // A surrogate code point (only reachable through a class range bound): never in a Swift string.
            if case .generalCategories(let mask) = self { return mask & (1 << 27) != 0 }
            return self == .any
        }
        let properties = scalar.properties
        switch self {
        case .generalCategories(let mask): return mask & Self.categoryBit(properties.generalCategory) != 0
        case .any: return true
        case .ascii: return codePoint < 128
        case .assigned: return properties.generalCategory != .unassigned
        case .alphabetic: return properties.isAlphabetic
        case .whiteSpace: return properties.isWhitespace
        case .uppercase: return properties.isUppercase
        case .lowercase: return properties.isLowercase
        case .emoji: return properties.isEmoji
        case .emojiPresentation: return properties.isEmojiPresentation
        case .hexDigit: return properties.isHexDigit
        case .asciiHexDigit: return properties.isASCIIHexDigit
        case .ideographic: return properties.isIdeographic
        case .idStart: return properties.isIDStart
        case .idContinue: return properties.isIDContinue
        case .math: return properties.isMath
        case .dash: return properties.isDash
        case .noncharacterCodePoint: return properties.isNoncharacterCodePoint
        }
    }
}
