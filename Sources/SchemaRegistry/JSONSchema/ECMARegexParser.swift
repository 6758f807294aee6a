/// The syntax tree of an ECMA-262 pattern.
indirect enum RegexNode: Sendable {
    case empty
    case scalar(UInt32)
    case set(ScalarSet)
    case sequence([RegexNode])
    case alternation([RegexNode])
    /// A capturing group, numbered from 1.
    case capture(RegexNode, index: Int)
    case repetition(RegexNode, min: Int, max: Int?, greedy: Bool)
    /// `^` (no multiline flag: the start of the string).
    case start
    /// `$` (no multiline flag: the end of the string).
    case end
    case wordBoundary(negated: Bool)
    /// `id`: the lookaround's number in the pattern (copies made by a counted repetition share it).
    case lookaround(RegexNode, ahead: Bool, negated: Bool, id: Int)
    case backreference(Int)

    /// Whether the node can match the empty string (conservatively: assertions count as empty).
    var isNullable: Bool {
        switch self {
        case .empty, .start, .end, .wordBoundary, .lookaround, .backreference: return true
        case .scalar, .set: return false
        case .sequence(let nodes): return nodes.allSatisfy(\.isNullable)
        case .alternation(let nodes): return nodes.contains(where: \.isNullable)
        case .capture(let node, _): return node.isNullable
        case .repetition(let node, let min, _, _): return min == 0 || node.isNullable
        }
    }

    /// Whether a backreference appears anywhere in the node.
    var hasBackreference: Bool {
        switch self {
        case .backreference: return true
        case .empty, .scalar, .set, .start, .end, .wordBoundary: return false
        case .sequence(let nodes), .alternation(let nodes): return nodes.contains(where: \.hasBackreference)
        case .capture(let node, _), .repetition(let node, _, _, _), .lookaround(let node, _, _, _): return node.hasBackreference
        }
    }

    /// The capture groups inside the node, as a range of group numbers.
    var captureRange: Range<Int>? {
        switch self {
        case .capture(let node, let index):
            guard let inner = node.captureRange else { return index..<index + 1 }
            return index..<max(index + 1, inner.upperBound)
        case .sequence(let nodes), .alternation(let nodes):
            let ranges = nodes.compactMap(\.captureRange)
            guard let first = ranges.first else { return nil }
            return ranges.dropFirst().reduce(first) { min($0.lowerBound, $1.lowerBound)..<max($0.upperBound, $1.upperBound) }
        case .repetition(let node, _, _, _), .lookaround(let node, _, _, _): return node.captureRange
        default: return nil
        }
    }
}

/// Parses an ECMA-262 pattern (u-mode grammar with a few Annex B leniencies) into a ``RegexNode``.
struct RegexParser {
    private let scalars: [UInt32]
    private var position = 0
    private var depth = 0
    private(set) var captureCount = 0
    private var groupNames: [String: Int] = [:]
    /// Capturing groups in the whole pattern and their names, found before parsing (backreferences may point ahead).
    private var totalCaptures = 0
    /// Group numbers by name, for the whole pattern.
    private var declaredNames: [String: Int] = [:]
    private var insideLookbehind = 0
    private var lookaroundCount = 0

    init(_ pattern: String) {
        scalars = pattern.unicodeScalars.map(\.value)
    }

    mutating func parse() throws(RegularExpressionError) -> RegexNode {
        guard scalars.count <= RegularExpression.maxPatternLength else {
            throw RegularExpressionError(reason: "pattern longer than \(RegularExpression.maxPatternLength) characters", offset: RegularExpression.maxPatternLength)
        }
        try countGroups()
        let node = try parseDisjunction()
        if position < scalars.count {
            throw error("unmatched ')'")
        }
        return node
    }

    // MARK: Helpers

    private func error(_ reason: String, at offset: Int? = nil) -> RegularExpressionError {
        RegularExpressionError(reason: reason, offset: offset ?? position)
    }

    private var current: UInt32? { position < scalars.count ? scalars[position] : nil }

    private func peek(_ offset: Int = 0) -> UInt32? {
        position + offset < scalars.count ? scalars[position + offset] : nil
    }

    private func isAt(_ character: Character, offset: Int = 0) -> Bool {
        peek(offset) == character.unicodeScalars.first!.value
    }

    private mutating func consume(_ character: Character) -> Bool {
        guard isAt(character) else { return false }
        position += 1
        return true
    }

    private static func describe(_ scalar: UInt32) -> String {
        guard let value = Unicode.Scalar(scalar), scalar >= 0x20, scalar != 0x7F else { return "U+\(String(scalar, radix: 16, uppercase: true))" }
        return "'\(Character(value))'"
    }

    private static func ascii(_ character: Character) -> UInt32 { character.unicodeScalars.first!.value }

    /// Counts capturing groups and collects group names, skipping escapes and classes.
    private mutating func countGroups() throws(RegularExpressionError) {
        var index = 0
        var inClass = false
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == Self.ascii("\\") {
                index += 2
                continue
            }
            if inClass {
                if scalar == Self.ascii("]") { inClass = false }
            } else if scalar == Self.ascii("[") {
                inClass = true
            } else if scalar == Self.ascii("(") {
                if index + 1 < scalars.count, scalars[index + 1] == Self.ascii("?") {
                    if index + 2 < scalars.count, scalars[index + 2] == Self.ascii("<"),
                       index + 3 < scalars.count, scalars[index + 3] != Self.ascii("="), scalars[index + 3] != Self.ascii("!") {
                        totalCaptures += 1
                        var end = index + 3
                        var name = ""
                        while end < scalars.count, scalars[end] != Self.ascii(">") {
                            if let value = Unicode.Scalar(scalars[end]) { name.unicodeScalars.append(value) }
                            end += 1
                        }
                        if declaredNames[name] == nil { declaredNames[name] = totalCaptures }
                    }
                } else {
                    totalCaptures += 1
                }
            }
            index += 1
        }
    }

    // MARK: Disjunction, alternative, term

    private mutating func parseDisjunction() throws(RegularExpressionError) -> RegexNode {
        depth += 1
        defer { depth -= 1 }
        guard depth <= RegularExpression.maxNesting else {
            throw error("groups nested deeper than \(RegularExpression.maxNesting)")
        }
        var alternatives = [try parseAlternative()]
        while consume("|") {
            alternatives.append(try parseAlternative())
        }
        return alternatives.count == 1 ? alternatives[0] : .alternation(alternatives)
    }

    private mutating func parseAlternative() throws(RegularExpressionError) -> RegexNode {
        var terms: [RegexNode] = []
        while let scalar = current, scalar != Self.ascii("|"), scalar != Self.ascii(")") {
            terms.append(try parseTerm())
        }
        switch terms.count {
        case 0: return .empty
        case 1: return terms[0]
        default: return .sequence(terms)
        }
    }

    private mutating func parseTerm() throws(RegularExpressionError) -> RegexNode {
        let atom: RegexNode
        var quantifiable = true
        switch current {
        case Self.ascii("^"):
            position += 1
            atom = .start
            quantifiable = false
        case Self.ascii("$"):
            position += 1
            atom = .end
            quantifiable = false
        case Self.ascii("\\") where isAt("b", offset: 1) || isAt("B", offset: 1):
            atom = .wordBoundary(negated: isAt("B", offset: 1))
            position += 2
            quantifiable = false
        case Self.ascii("("):
            (atom, quantifiable) = try parseGroup()
        case Self.ascii("."):
            position += 1
            atom = .set(ScalarSet.dot)
        case Self.ascii("["):
            atom = .set(try parseClass())
        case Self.ascii("\\"):
            atom = try parseAtomEscape()
        case Self.ascii("*"), Self.ascii("+"), Self.ascii("?"):
            throw error("nothing to repeat before '\(Character(Unicode.Scalar(current!)!))'")
        case Self.ascii("{"):
            let saved = position
            if (try? parseQuantifier()) != nil, position != saved {
                position = saved
                throw error("nothing to repeat before '{'")
            }
            position = saved + 1
            atom = .scalar(Self.ascii("{"))  // Annex B: a brace that starts no quantifier is literal
        case let scalar?:
            position += 1
            atom = .scalar(scalar)
        case nil:
            throw error("unexpected end of pattern")
        }
        let quantifierStart = position
        guard let (min, max, greedy) = try parseQuantifier() else { return atom }
        guard quantifiable else {
            throw error("nothing to repeat: an assertion cannot be quantified", at: quantifierStart)
        }
        return .repetition(atom, min: min, max: max, greedy: greedy)
    }

    /// `* + ? {n} {n,} {n,m}`, optionally followed by `?` (lazy). `nil` when there is none; a `{` that does not
    /// form a quantifier is left unconsumed.
    private mutating func parseQuantifier() throws(RegularExpressionError) -> (Int, Int?, Bool)? {
        let start = position
        var min: Int
        var max: Int?
        switch current {
        case Self.ascii("*"): min = 0; max = nil; position += 1
        case Self.ascii("+"): min = 1; max = nil; position += 1
        case Self.ascii("?"): min = 0; max = 1; position += 1
        case Self.ascii("{"):
            position += 1
            guard let low = parseDecimal() else { position = start; return nil }
            min = low
            if consume(",") {
                if let high = parseDecimal() { max = high } else { max = nil }
            } else {
                max = low
            }
            guard consume("}") else { position = start; return nil }
            if let max, max < min {
                throw error("numbers out of order in {\(min),\(max)} quantifier", at: start)
            }
        default: return nil
        }
        let greedy = !consume("?")
        return (min, max, greedy)
    }

    /// A decimal number, clamped to 1,000,000 (the program-size cap refuses anything that large anyway).
    private mutating func parseDecimal() -> Int? {
        var value: Int?
        while let scalar = current, scalar >= Self.ascii("0"), scalar <= Self.ascii("9") {
            value = Swift.min((value ?? 0) * 10 + Int(scalar - Self.ascii("0")), 1_000_000)
            position += 1
        }
        return value
    }

    // MARK: Groups

    private mutating func parseGroup() throws(RegularExpressionError) -> (RegexNode, quantifiable: Bool) {
        let open = position
        position += 1  // (
        if consume("?") {
            if consume(":") {
                return (try parseGroupBody(open: open), true)
            }
            if consume("=") || isAt("!") {
                let negated = consume("!")
                lookaroundCount += 1
                let id = lookaroundCount
                return (.lookaround(try parseGroupBody(open: open), ahead: true, negated: negated, id: id), false)
            }
            if isAt("<") && (isAt("=", offset: 1) || isAt("!", offset: 1)) {
                position += 1
                let negated = consume("!")
                if !negated { position += 1 }
                insideLookbehind += 1
                defer { insideLookbehind -= 1 }
                lookaroundCount += 1
                let id = lookaroundCount
                return (.lookaround(try parseGroupBody(open: open), ahead: false, negated: negated, id: id), false)
            }
            if consume("<") {
                let name = try parseGroupName()
                guard groupNames[name] == nil else { throw error("duplicate group name '\(name)'", at: open) }
                captureCount += 1
                let index = captureCount
                groupNames[name] = index
                return (.capture(try parseGroupBody(open: open), index: index), true)
            }
            let flag = current.map(Self.describe) ?? "end of pattern"
            throw error("unsupported group syntax '(?' followed by \(flag) (inline flags and other non-ECMA-262 groups are not supported)", at: open)
        }
        captureCount += 1
        let index = captureCount
        return (.capture(try parseGroupBody(open: open), index: index), true)
    }

    private mutating func parseGroupBody(open: Int) throws(RegularExpressionError) -> RegexNode {
        let body = try parseDisjunction()
        guard consume(")") else { throw error("unterminated group", at: open) }
        return body
    }

    /// A group name up to `>` (the `<` consumed): an identifier.
    private mutating func parseGroupName() throws(RegularExpressionError) -> String {
        let start = position
        var name = ""
        while let scalar = current, scalar != Self.ascii(">") {
            guard let value = Unicode.Scalar(scalar),
                  value == "$" || value == "_" || (name.isEmpty ? value.properties.isIDStart : value.properties.isIDContinue)
            else { throw error("invalid character in group name") }
            name.unicodeScalars.append(value)
            position += 1
        }
        guard !name.isEmpty, consume(">") else { throw error("invalid group name", at: start) }
        return name
    }

    // MARK: Escapes

    private mutating func parseAtomEscape() throws(RegularExpressionError) -> RegexNode {
        let start = position
        position += 1  // backslash
        guard let scalar = current else { throw error("'\\' at end of pattern", at: start) }
        // Backreferences.
        if scalar >= Self.ascii("1"), scalar <= Self.ascii("9") {
            let number = parseDecimal()!
            guard number <= totalCaptures else {
                throw error("backreference \\\(number) to a group that does not exist (octal escapes are not supported)", at: start)
            }
            guard insideLookbehind == 0 else { throw error("backreferences inside a lookbehind are not supported", at: start) }
            return .backreference(number)
        }
        if scalar == Self.ascii("k") {
            position += 1
            guard consume("<") else { throw error("\\k must be followed by <name>", at: start) }
            let name = try parseGroupName()
            guard declaredNames[name] != nil else { throw error("backreference to an undefined group name '\(name)'", at: start) }
            guard insideLookbehind == 0 else { throw error("backreferences inside a lookbehind are not supported", at: start) }
            return .backreference(try namedGroupNumber(name, at: start))
        }
        return try parseCharacterEscape(start: start, inClass: false)
    }

    /// The number of a named group, which may be defined after the reference.
    private func namedGroupNumber(_ name: String, at start: Int) throws(RegularExpressionError) -> Int {
        guard let index = groupNames[name] ?? declaredNames[name] else {
            throw error("backreference to an undefined group name '\(name)'", at: start)
        }
        return index
    }

    /// An escape after the backslash (already consumed, `start` is its offset): a single scalar or a class escape.
    private mutating func parseCharacterEscape(start: Int, inClass: Bool) throws(RegularExpressionError) -> RegexNode {
        let scalar = current!
        position += 1
        switch Character(Unicode.Scalar(scalar)!) {
        case "d": return .set(ScalarSet(ranges: ScalarSet.digitRanges))
        case "D": return .set(ScalarSet(ranges: ScalarSet.digitRanges, negated: true))
        case "w": return .set(ScalarSet(ranges: ScalarSet.wordRanges))
        case "W": return .set(ScalarSet(ranges: ScalarSet.wordRanges, negated: true))
        case "s": return .set(ScalarSet(ranges: ScalarSet.spaceRanges))
        case "S": return .set(ScalarSet(ranges: ScalarSet.spaceRanges, negated: true))
        case "p", "P": return .set(ScalarSet(items: [.property(try parsePropertyName(start: start))], negated: scalar == Self.ascii("P")))
        case "t": return .scalar(0x09)
        case "n": return .scalar(0x0A)
        case "v": return .scalar(0x0B)
        case "f": return .scalar(0x0C)
        case "r": return .scalar(0x0D)
        case "b" where inClass: return .scalar(0x08)
        case "-" where inClass: return .scalar(Self.ascii("-"))
        case "0":
            if let next = current, next >= Self.ascii("0"), next <= Self.ascii("9") {
                throw error("octal escapes are not supported", at: start)
            }
            return .scalar(0)
        case "c":
            guard let letter = current, (letter | 0x20) >= Self.ascii("a"), (letter | 0x20) <= Self.ascii("z") else {
                throw error("\\c must be followed by an ASCII letter", at: start)
            }
            position += 1
            return .scalar(letter % 32)
        case "x":
            guard let value = parseHex(count: 2) else { throw error("\\x must be followed by two hexadecimal digits", at: start) }
            return .scalar(value)
        case "u":
            return .scalar(try parseUnicodeEscape(start: start))
        default:
            // Identity escapes: syntax characters and other ASCII punctuation, any non-ASCII scalar.
            if scalar >= 128 { return .scalar(scalar) }
            if let value = Unicode.Scalar(scalar), value.properties.isASCIIHexDigit || (value >= "a" && value <= "z") || (value >= "A" && value <= "Z") || (value >= "0" && value <= "9") {
                throw error("'\\\(Character(value))' is not an ECMA-262 escape", at: start)
            }
            if scalar < 0x20 || scalar == 0x7F { throw error("invalid escape of a control character", at: start) }
            return .scalar(scalar)
        }
    }

    private mutating func parseHex(count: Int) -> UInt32? {
        var value: UInt32 = 0
        for offset in 0..<count {
            guard let digit = peek(offset).flatMap(Self.hexValue) else { return nil }
            value = value * 16 + digit
        }
        position += count
        return value
    }

    private static func hexValue(_ scalar: UInt32) -> UInt32? {
        switch scalar {
        case 0x30...0x39: scalar - 0x30
        case 0x41...0x46: scalar - 0x41 + 10
        case 0x61...0x66: scalar - 0x61 + 10
        default: nil
        }
    }

    /// `\uHHHH` (a surrogate pair of two such escapes combines) or `\u{H…}`; the `\u` is consumed.
    private mutating func parseUnicodeEscape(start: Int) throws(RegularExpressionError) -> UInt32 {
        if consume("{") {
            var value: UInt32 = 0
            var digits = 0
            while let scalar = current, let digit = Self.hexValue(scalar) {
                value = value * 16 + digit
                digits += 1
                position += 1
                guard value <= 0x10FFFF else { throw error("\\u{…} beyond U+10FFFF", at: start) }
            }
            guard digits > 0, consume("}") else { throw error("malformed \\u{…} escape", at: start) }
            return value
        }
        guard let value = parseHex(count: 4) else { throw error("\\u must be followed by four hexadecimal digits or {…}", at: start) }
        if (0xD800...0xDBFF).contains(value), isAt("\\"), isAt("u", offset: 1) {
            let saved = position
            position += 2
            if let low = parseHex(count: 4), (0xDC00...0xDFFF).contains(low) {
                return 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
            }
            position = saved
        }
        return value  // a lone surrogate: matches nothing in a Swift string
    }

    /// `{Name}` or `{Name=Value}` after `\p` / `\P`.
    private mutating func parsePropertyName(start: Int) throws(RegularExpressionError) -> UnicodeProperty {
        guard consume("{") else { throw error("\\p must be followed by {property}", at: start) }
        var name = ""
        var value: String?
        while let scalar = current, scalar != Self.ascii("}") {
            guard let character = Unicode.Scalar(scalar), character.isASCII,
                  character.properties.isAlphabetic || character == "_" || (character >= "0" && character <= "9") || character == "="
            else { throw error("invalid character in property name") }
            if character == "=" {
                guard value == nil else { throw error("invalid property name") }
                value = ""
            } else if value != nil {
                value!.unicodeScalars.append(character)
            } else {
                name.unicodeScalars.append(character)
            }
            position += 1
        }
        guard consume("}") else { throw error("unterminated \\p{…}", at: start) }
        if name == "Script" || name == "sc" || name == "Script_Extensions" || name == "scx" {
            throw error("Unicode script properties (\\p{\(name)=…}) are not supported", at: start)
        }
        guard let property = UnicodeProperty.named(name, value: value) else {
            throw error("unknown or unsupported Unicode property '\(name)\(value.map { "=\($0)" } ?? "")'", at: start)
        }
        return property
    }

    // MARK: Classes

    private mutating func parseClass() throws(RegularExpressionError) -> ScalarSet {
        let open = position
        position += 1  // [
        let negated = consume("^")
        var ranges: [ClosedRange<UInt32>] = []
        var items: [ScalarSet.Item] = []
        while true {
            guard let scalar = current else { throw error("unterminated character class", at: open) }
            if scalar == Self.ascii("]") {
                position += 1
                break
            }
            let lowStart = position
            let low = try parseClassAtom()
            if isAt("-"), let next = peek(1), next != Self.ascii("]") {
                position += 1
                let high = try parseClassAtom()
                switch (low, high) {
                case (.scalar(let from), .scalar(let to)):
                    guard from <= to else { throw error("range out of order in character class", at: lowStart) }
                    ranges.append(from...to)
                    continue
                default:
                    // Annex B: a class escape as a range bound makes the '-' literal.
                    for atom in [low, high] { Self.add(atom, to: &ranges, &items) }
                    ranges.append(Self.ascii("-")...Self.ascii("-"))
                    continue
                }
            }
            Self.add(low, to: &ranges, &items)
        }
        if !ranges.isEmpty { items.insert(.ranges(ScalarSet.normalize(ranges)), at: 0) }
        return ScalarSet(items: items, negated: negated)
    }

    private static func add(_ atom: RegexNode, to ranges: inout [ClosedRange<UInt32>], _ items: inout [ScalarSet.Item]) {
        switch atom {
        case .scalar(let value): ranges.append(value...value)
        case .set(let set):
            var item: ScalarSet.Item = set.items.count == 1 ? set.items[0] : .ranges([])
            if set.items.count == 1 {
                if set.negated { item = .complement(item) }
                items.append(item)
            }
        default: break
        }
    }

    private mutating func parseClassAtom() throws(RegularExpressionError) -> RegexNode {
        let start = position
        let scalar = current!
        position += 1
        guard scalar == Self.ascii("\\") else { return .scalar(scalar) }
        guard current != nil else { throw error("'\\' at end of pattern", at: start) }
        if let digit = current, digit >= Self.ascii("1"), digit <= Self.ascii("9") {
            throw error("backreferences and octal escapes are not allowed in a character class", at: start)
        }
        if isAt("k") { throw error("'\\k' is not allowed in a character class", at: start) }
        return try parseCharacterEscape(start: start, inClass: true)
    }
}
