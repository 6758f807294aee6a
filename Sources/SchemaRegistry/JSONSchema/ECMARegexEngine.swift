/// One instruction of a compiled pattern. Programs run forwards (consuming the scalar after the position) or
/// backwards (the scalar before it: lookbehind bodies, and lookahead bodies when tabulated).
enum RegexInstruction: Sendable {
    case scalar(UInt32)
    /// Index into ``CompiledPattern/sets``.
    case set(Int)
    /// Try the first target, then the second (the order matters only when backtracking).
    case split(Int, Int)
    case jump(Int)
    /// Record the position in capture slot (backtracking only).
    case save(Int)
    /// Clear capture slots `from..<to` at the start of a repetition's iteration (backtracking only).
    case resetCaptures(from: Int, to: Int)
    /// Record the position at the start of an iteration of a repetition whose body can be empty (backtracking only).
    case loopStart(register: Int)
    /// Fail an iteration that consumed nothing (backtracking only).
    case loopCheck(register: Int)
    case start
    case end
    case wordBoundary
    case notWordBoundary
    /// Index into ``CompiledPattern/lookarounds``.
    case lookaround(Int)
    /// Group number (backtracking only).
    case backreference(Int)
    case match
}

struct RegexProgram: Sendable {
    var instructions: [RegexInstruction]
    let backward: Bool
    /// Index of the one `.match` instruction (the last).
    var matchIndex: Int { instructions.count - 1 }
}

struct CompiledLookaround: Sendable {
    let ahead: Bool
    let negated: Bool
    /// The body read left to right and right to left.
    let forward: RegexProgram
    let backward: RegexProgram
    /// Capture slots set inside the body.
    let captureSlots: Range<Int>
    /// The tabulated program (`backward` for a lookahead, `forward` for a lookbehind) as an automaton, when it allows one.
    let automaton: DeterministicAutomaton?
}

/// A compiled pattern: the main program (forwards), the character sets and lookarounds it refers to, and the
/// facts the search uses to go fast. A class: searches share it without copying its fields.
final class CompiledPattern: Sendable {
    let main: RegexProgram
    let sets: [ScalarSet]
    let lookarounds: [CompiledLookaround]
    let captureCount: Int
    let registerCount: Int
    /// Backreferences: the backtracker (with its step budget) runs instead of the automaton.
    let backtracks: Bool
    /// Every match starts at position 0.
    let anchoredStart: Bool
    /// For patterns that are a plain string, possibly anchored: no automaton at all.
    let literal: LiteralPattern?
    /// First UTF-8 bytes a match can start with, when the pattern cannot match empty nor starts with an
    /// assertion: lets the search skip ahead.
    let firstBytes: [Bool]?
    /// The deterministic automaton, when the pattern allows one.
    let automaton: DeterministicAutomaton?

    init(main: RegexProgram, sets: [ScalarSet], lookarounds: [CompiledLookaround], captureCount: Int, registerCount: Int,
         backtracks: Bool, anchoredStart: Bool, literal: LiteralPattern?, firstBytes: [Bool]?, automaton: DeterministicAutomaton?) {
        self.main = main
        self.sets = sets
        self.lookarounds = lookarounds
        self.captureCount = captureCount
        self.registerCount = registerCount
        self.backtracks = backtracks
        self.anchoredStart = anchoredStart
        self.literal = literal
        self.firstBytes = firstBytes
        self.automaton = automaton
    }
}

/// A pattern that is a fixed string, possibly anchored at either end.
struct LiteralPattern: Sendable {
    let bytes: [UInt8]
    let anchoredStart: Bool
    let anchoredEnd: Bool
}

/// Turns a ``RegexNode`` into programs, expanding counted repetitions within ``RegularExpression/maxProgramSize``.
struct RegexCompiler {
    private let captureCount: Int
    private var sets: [ScalarSet] = []
    private var lookarounds: [CompiledLookaround?] = []
    /// Compiled lookarounds by their number in the pattern.
    private var lookaroundIndices: [Int: Int] = [:]
    private var registerCount = 0
    private var totalSize = 0
    /// Emit captures, resets and empty-iteration checks (only the backtracker reads them).
    private var forBacktracking = false
    private var instructions: [RegexInstruction] = []
    private var backward = false

    init(captureCount: Int) {
        self.captureCount = captureCount
    }

    mutating func compile(_ tree: RegexNode, forceBacktracking: Bool = false) throws(RegularExpressionError) -> CompiledPattern {
        forBacktracking = forceBacktracking || tree.hasBackreference
        let main = try program(tree, backward: false)
        let anchoredStart = Self.startsAnchored(tree)
        return CompiledPattern(
            main: main, sets: sets, lookarounds: lookarounds.compactMap { $0 }, captureCount: captureCount, registerCount: registerCount,
            backtracks: forBacktracking, anchoredStart: anchoredStart,
            literal: forceBacktracking ? nil : Self.literal(tree),
            firstBytes: anchoredStart ? nil : Self.firstBytes(main, sets: sets),
            automaton: forBacktracking ? nil : DeterministicAutomaton(main, sets: sets, restarts: !anchoredStart))
    }

    private mutating func program(_ node: RegexNode, backward: Bool) throws(RegularExpressionError) -> RegexProgram {
        let savedInstructions = instructions
        let savedBackward = self.backward
        instructions = []
        self.backward = backward
        defer {
            instructions = savedInstructions
            self.backward = savedBackward
        }
        try emit(node)
        try append(.match)
        return RegexProgram(instructions: instructions, backward: backward)
    }

    @discardableResult
    private mutating func append(_ instruction: RegexInstruction) throws(RegularExpressionError) -> Int {
        totalSize += 1
        guard totalSize <= RegularExpression.maxProgramSize else {
            throw RegularExpressionError(
                reason: "pattern expands to more than \(RegularExpression.maxProgramSize) instructions (large counted repetitions {n,m})",
                offset: 0)
        }
        instructions.append(instruction)
        return instructions.count - 1
    }

    private mutating func emit(_ node: RegexNode) throws(RegularExpressionError) {
        switch node {
        case .empty: break
        case .scalar(let value): try append(.scalar(value))
        case .set(let set):
            if let index = sets.firstIndex(of: set) {
                try append(.set(index))
            } else {
                sets.append(set)
                try append(.set(sets.count - 1))
            }
        case .sequence(let nodes):
            for node in backward ? nodes.reversed() : nodes { try emit(node) }
        case .alternation(let nodes):
            var exits: [Int] = []
            for (offset, alternative) in nodes.enumerated() {
                if offset < nodes.count - 1 {
                    let split = try append(.split(0, 0))
                    try emit(alternative)
                    exits.append(try append(.jump(0)))
                    instructions[split] = .split(split + 1, instructions.count)
                } else {
                    try emit(alternative)
                }
            }
            for exit in exits { instructions[exit] = .jump(instructions.count) }
        case .capture(let body, let index):
            if forBacktracking { try append(.save(backward ? 2 * index + 1 : 2 * index)) }
            try emit(body)
            if forBacktracking { try append(.save(backward ? 2 * index : 2 * index + 1)) }
        case .repetition(let body, let min, let max, let greedy):
            try emitRepetition(body, min: min, max: max, greedy: greedy)
        case .start: try append(.start)
        case .end: try append(.end)
        case .wordBoundary(let negated): try append(negated ? .notWordBoundary : .wordBoundary)
        case .lookaround(let body, let ahead, let negated, let id):
            // Copies made by counted repetitions share one lookaround (and one table while matching).
            if let known = lookaroundIndices[id] {
                try append(.lookaround(known))
                return
            }
            let index = lookarounds.count
            guard index < RegularExpression.maxLookarounds else {
                throw RegularExpressionError(reason: "more than \(RegularExpression.maxLookarounds) different lookarounds", offset: 0)
            }
            lookaroundIndices[id] = index
            lookarounds.append(nil)
            let forward = try program(body, backward: false)
            let backward = try program(body, backward: true)
            let slots = body.captureRange.map { 2 * $0.lowerBound..<2 * $0.upperBound } ?? 0..<0
            // Tabulating cannot hand over to the Pike VM mid-string: only automata that read every scalar.
            let automaton = forBacktracking ? nil
                : DeterministicAutomaton(ahead ? backward : forward, sets: sets, restarts: true).flatMap { $0.intervalStarts.isEmpty ? nil : $0 }
            lookarounds[index] = CompiledLookaround(ahead: ahead, negated: negated, forward: forward, backward: backward,
                                                    captureSlots: slots, automaton: automaton)
            try append(.lookaround(index))
        case .backreference(let group): try append(.backreference(group))
        }
    }

    private mutating func emitRepetition(_ body: RegexNode, min: Int, max: Int?, greedy: Bool) throws(RegularExpressionError) {
        let resetSlots = forBacktracking ? body.captureRange.map { 2 * $0.lowerBound..<2 * $0.upperBound } : nil
        let checksEmpty = forBacktracking && body.isNullable
        func iteration(_ compiler: inout RegexCompiler, optional: Bool) throws(RegularExpressionError) {
            if let resetSlots { try compiler.append(.resetCaptures(from: resetSlots.lowerBound, to: resetSlots.upperBound)) }
            var register = 0
            if optional && checksEmpty {
                register = compiler.registerCount
                compiler.registerCount += 1
                try compiler.append(.loopStart(register: register))
            }
            try compiler.emit(body)
            if optional && checksEmpty { try compiler.append(.loopCheck(register: register)) }
        }
        // A body that compiles to nothing (an empty group) repeats to nothing: stop before iterating a million times.
        let before = instructions.count
        if min > 0 {
            try iteration(&self, optional: false)
            if instructions.count == before { return }
            for _ in 1..<min { try iteration(&self, optional: false) }
        }
        if max.map({ $0 > min }) ?? true {
            var probe = self
            try iteration(&probe, optional: true)
            if probe.instructions.count == instructions.count { return }
        }
        if let max {
            var splits: [Int] = []
            for _ in min..<max {
                splits.append(try append(.split(0, 0)))
                try iteration(&self, optional: true)
            }
            let exit = instructions.count
            for split in splits { instructions[split] = greedy ? .split(split + 1, exit) : .split(exit, split + 1) }
        } else {
            let loop = try append(.split(0, 0))
            try iteration(&self, optional: true)
            try append(.jump(loop))
            let exit = instructions.count
            instructions[loop] = greedy ? .split(loop + 1, exit) : .split(exit, loop + 1)
        }
    }

    // MARK: Facts for the search

    private static func startsAnchored(_ node: RegexNode) -> Bool {
        switch node {
        case .start: return true
        case .sequence(let nodes): return nodes.first.map(startsAnchored) ?? false
        case .alternation(let nodes): return nodes.allSatisfy(startsAnchored)
        case .capture(let body, _): return startsAnchored(body)
        default: return false
        }
    }

    private static func literal(_ node: RegexNode) -> LiteralPattern? {
        var nodes: [RegexNode]
        switch node {
        case .sequence(let sequence): nodes = sequence
        case .empty: nodes = []
        default: nodes = [node]
        }
        var anchoredStart = false
        var anchoredEnd = false
        if case .start = nodes.first {
            anchoredStart = true
            nodes.removeFirst()
        }
        if case .end = nodes.last {
            anchoredEnd = true
            nodes.removeLast()
        }
        var text = String.UnicodeScalarView()
        for node in nodes {
            guard case .scalar(let value) = node, let scalar = Unicode.Scalar(value) else { return nil }
            text.append(scalar)
        }
        return LiteralPattern(bytes: Array(String(text).utf8), anchoredStart: anchoredStart, anchoredEnd: anchoredEnd)
    }

    /// The UTF-8 bytes that can start a match, or `nil` when the start can be empty or assert something.
    private static func firstBytes(_ program: RegexProgram, sets: [ScalarSet]) -> [Bool]? {
        var bytes = [Bool](repeating: false, count: 256)
        var visited = Set<Int>()
        var pending = [0]
        while let pc = pending.popLast() {
            guard visited.insert(pc).inserted else { continue }
            switch program.instructions[pc] {
            case .scalar(let value):
                guard let scalar = Unicode.Scalar(value) else { continue }  // a lone surrogate never matches
                bytes[Int(String(scalar).utf8.first!)] = true
            case .set(let index):
                for byte in 0..<128 where sets[index].contains(UInt32(byte)) { bytes[byte] = true }
                if sets[index].mayContainNonASCII { for byte in 0xC2...0xF4 { bytes[byte] = true } }
            case .split(let first, let second): pending.append(first); pending.append(second)
            case .jump(let target): pending.append(target)
            case .save, .resetCaptures, .loopStart, .loopCheck: pending.append(pc + 1)
            case .start, .end, .wordBoundary, .notWordBoundary, .lookaround, .backreference, .match: return nil
            }
        }
        return bytes
    }
}

/// A deterministic automaton for patterns without lookarounds, word boundaries and backreferences, built when the
/// pattern is compiled (capped at ``maxStates``). Each state is the set of threads the Pike VM would hold. ASCII
/// bytes index the transition table directly; other scalars go through the intervals that the pattern's ranges cut
/// the code space into. A pattern with `\p{…}` has no such intervals: its first non-ASCII scalar hands the state's
/// threads over to the Pike VM.
struct DeterministicAutomaton: Sendable {
    static let maxStates = 256
    /// Larger programs go to the Pike VM directly (the construction costs states × classes × program size).
    static let maxProgramSize = 1_000
    /// Most intervals of non-ASCII scalars the pattern's ranges may cut.
    static let maxIntervals = 1_024
    static let dead: Int32 = -1

    /// `transitions[state * width + column]`: the next state, or ``dead``. Columns 0..<128 are the ASCII
    /// bytes, the others classes of non-ASCII scalars.
    let transitions: [Int32]
    let width: Int
    /// First scalar of each interval of non-ASCII scalars (sorted, from 0x80), and its column. Empty: hand over.
    let intervalStarts: [UInt32]
    let intervalColumns: [Int32]
    /// A match is complete on entering the state.
    let accepting: [Bool]
    /// A match is complete when the input ends in the state (`$`).
    let acceptingAtEnd: [Bool]
    /// The automaton's threads in each state (for the hand-over to the Pike VM).
    let threads: [[Int32]]

    /// `nil` when the program uses something the automaton cannot represent or needs more than ``maxStates``.
    /// `restarts`: a thread starts at every position (unanchored search, lookaround tables). A backward program
    /// (a lookahead body, tabulated) starts at the end of the string, where `$` holds, and finishes where `^` holds.
    init?(_ program: RegexProgram, sets: [ScalarSet], restarts: Bool) {
        let instructions = program.instructions
        guard instructions.count <= Self.maxProgramSize else { return nil }
        for instruction in instructions {
            switch instruction {
            case .lookaround, .wordBoundary, .notWordBoundary, .backreference: return nil
            default: continue
            }
        }
        var visited = [Int](repeating: 0, count: instructions.count)
        var generation = 0
        /// The threads (consuming, `$` and match instructions) reachable from `pcs` without consuming input.
        /// `atStart`/`atEnd`: at the first/last position of the scan (for a backward program, the string's end/start).
        func closure(_ pcs: [Int], atStart: Bool, atEnd: Bool) -> [Int32] {
            let startHolds = program.backward ? atEnd : atStart
            let endHolds = program.backward ? atStart : atEnd
            generation += 1
            var stack = pcs
            var threads: [Int32] = []
            while let pc = stack.popLast() {
                if visited[pc] == generation { continue }
                visited[pc] = generation
                switch instructions[pc] {
                case .jump(let target): stack.append(target)
                case .split(let first, let second): stack.append(second); stack.append(first)
                case .save, .resetCaptures, .loopStart, .loopCheck: stack.append(pc + 1)
                case .start:
                    if startHolds { stack.append(pc + 1) } else if program.backward { threads.append(Int32(pc)) }
                case .end:
                    if endHolds { stack.append(pc + 1) } else if !program.backward { threads.append(Int32(pc)) }
                case .scalar, .set, .match: threads.append(Int32(pc))
                case .wordBoundary, .notWordBoundary, .lookaround, .backreference: break
                }
            }
            return threads.sorted()
        }
        /// Which consuming instructions take `scalar`: scalars with the same signature share their transitions.
        func signature(_ scalar: UInt32) -> [Bool] {
            var signature: [Bool] = []
            for instruction in instructions {
                switch instruction {
                case .scalar(let value): signature.append(value == scalar)
                case .set(let set): signature.append(sets[set].contains(scalar))
                default: continue
                }
            }
            return signature
        }
        var representatives: [UInt32] = []
        var classBySignature: [[Bool]: Int] = [:]
        func classOf(_ scalar: UInt32) -> Int {
            let key = signature(scalar)
            if let known = classBySignature[key] { return known }
            classBySignature[key] = representatives.count
            representatives.append(scalar)
            return representatives.count - 1
        }
        let classOfByte = (UInt32(0)..<128).map(classOf)
        // Non-ASCII scalars: the boundaries of every range cut the code space into intervals of equal signature.
        var boundaries: Set<UInt32> = [0x80]
        var rangesOnly = true
        func addBoundaries(_ item: ScalarSet.Item) {
            switch item {
            case .ranges(let ranges):
                for range in ranges {
                    boundaries.insert(range.lowerBound)
                    if range.upperBound < 0x10FFFF { boundaries.insert(range.upperBound + 1) }
                }
            case .property: rangesOnly = false
            case .complement(let inner): addBoundaries(inner)
            }
        }
        for instruction in instructions {
            switch instruction {
            case .scalar(let value):
                boundaries.insert(value)
                if value < 0x10FFFF { boundaries.insert(value + 1) }
            case .set(let set): for item in sets[set].items { addBoundaries(item) }
            default: continue
            }
        }
        var intervalStarts: [UInt32] = []
        var intervalClasses: [Int] = []
        if rangesOnly {
            intervalStarts = boundaries.filter { $0 >= 0x80 && $0 <= 0x10FFFF }.sorted()
            guard intervalStarts.count <= Self.maxIntervals else { return nil }
            intervalClasses = intervalStarts.map(classOf)
        }
        let width = 128 + representatives.count
        let matchIndex = Int32(program.matchIndex)
        let restart = restarts ? closure([0], atStart: false, atEnd: false) : []
        var threads: [[Int32]] = [closure([0], atStart: true, atEnd: false)]
        var stateByThreads: [[Int32]: Int32] = [:]  // the initial state is never merged: `^` held only there
        var transitions: [Int32] = []
        var state = 0
        while state < threads.count {
            var classTransitions: [Int32] = []
            for scalar in representatives {
                var moved: [Int] = []
                for pc in threads[state] {
                    switch instructions[Int(pc)] {
                    case .scalar(let value): if value == scalar { moved.append(Int(pc) + 1) }
                    case .set(let set): if sets[set].contains(scalar) { moved.append(Int(pc) + 1) }
                    default: break
                    }
                }
                var next = closure(moved, atStart: false, atEnd: false)
                if !restart.isEmpty { next = Array(Set(next).union(restart)).sorted() }
                if next.isEmpty {
                    classTransitions.append(Self.dead)
                } else if let known = stateByThreads[next] {
                    classTransitions.append(known)
                } else {
                    guard threads.count < Self.maxStates else { return nil }
                    stateByThreads[next] = Int32(threads.count)
                    classTransitions.append(Int32(threads.count))
                    threads.append(next)
                }
            }
            for byte in 0..<128 { transitions.append(classTransitions[classOfByte[byte]]) }
            transitions.append(contentsOf: classTransitions)
            state += 1
        }
        var accepting: [Bool] = []
        var acceptingAtEnd: [Bool] = []
        for (index, stateThreads) in threads.enumerated() {
            accepting.append(stateThreads.contains(matchIndex))
            let ends = stateThreads.filter {
                switch instructions[Int($0)] {
                case .start, .end: true
                default: false
                }
            }.map { Int($0) }
            acceptingAtEnd.append(accepting[index] || closure(ends, atStart: index == 0, atEnd: true).contains(matchIndex))
        }
        acceptingAtEnd[0] = acceptingAtEnd[0] || closure([0], atStart: true, atEnd: true).contains(matchIndex)
        self.transitions = transitions
        self.width = width
        self.intervalStarts = intervalStarts
        self.intervalColumns = intervalClasses.map { Int32(128 + $0) }
        self.accepting = accepting
        self.acceptingAtEnd = acceptingAtEnd
        self.threads = threads
    }

    /// The column of a non-ASCII scalar: its interval's (binary search for the last start ≤ `scalar`).
    @inline(__always)
    private func column(of scalar: UInt32) -> Int {
        var low = 0
        var high = intervalStarts.count
        while high - low > 1 {
            let middle = (low + high) / 2
            if intervalStarts[middle] <= scalar { low = middle } else { high = middle }
        }
        return Int(intervalColumns[low])
    }

    enum Outcome {
        case match, noMatch
        /// A non-ASCII scalar at `position`, with the automaton in `state`.
        case handOver(state: Int, position: Int)
    }

    /// For every position of `input`, whether a thread reached the match there, into `table[base + position]`
    /// (`false` already). Only for automata with intervals (no `\p{…}`).
    func tabulate(_ input: UnsafeBufferPointer<UInt8>, backward: Bool, into table: inout [Bool], base: Int) {
        let end = input.count
        var state = 0
        var position = backward ? end : 0
        var finished: Bool { backward ? position == 0 : position == end }
        while true {
            table[base + position] = finished ? acceptingAtEnd[state] : accepting[state]
            if finished { return }
            let scalar: UInt32
            let length: Int
            if backward {
                (scalar, length) = decode(before: position, in: input)
                position -= length
            } else {
                (scalar, length) = decode(after: position, in: input)
                position += length
            }
            let next = transitions[state * width + (scalar < 0x80 ? Int(scalar) : column(of: scalar))]
            // Dead: no thread now, and none starts later (the table is already false).
            if next < 0 { return }
            state = Int(next)
        }
    }

    func run(_ input: UnsafeBufferPointer<UInt8>) -> Outcome {
        var state = 0
        if accepting[0] { return .match }
        let width = width
        let handsOver = intervalStarts.isEmpty
        return transitions.withUnsafeBufferPointer { transitions in
            accepting.withUnsafeBufferPointer { accepting in
                var position = 0
                let end = input.count
                while position < end {
                    let byte = input[position]
                    let next: Int32
                    if byte < 0x80 {
                        next = transitions[state &* width &+ Int(byte)]
                        position &+= 1
                    } else {
                        if handsOver { return .handOver(state: state, position: position) }
                        let (scalar, length) = decode(after: position, in: input)
                        next = transitions[state &* width &+ column(of: scalar)]
                        position &+= length
                    }
                    if next < 0 { return .noMatch }
                    state = Int(next)
                    if accepting[state] { return .match }
                }
                return acceptingAtEnd[state] ? .match : .noMatch
            }
        }
    }
}

/// The two matchers over UTF-8 input: a Pike VM (every thread of the automaton advanced together, O(program ×
/// input)), with lookarounds tabulated for all positions by one scan each, and a budgeted backtracker for patterns
/// with backreferences. Both allocate their scratch per call: a compiled pattern is immutable and shared.
extension CompiledPattern {
    func search(_ input: UnsafeBufferPointer<UInt8>) -> RegularExpression.MatchResult {
        if let literal { return literal.search(input) ? .match : .noMatch }
        if backtracks {
            var backtracker = Backtracker(pattern: self, input: input)
            do {
                return try backtracker.search() ? .match : .noMatch
            } catch {
                return .budgetExceeded
            }
        }
        if let automaton {
            switch automaton.run(input) {
            case .match: return .match
            case .noMatch: return .noMatch
            case .handOver(let state, let position):
                var machine = PikeMachine(pattern: self, input: input)
                return machine.search(from: position, threads: automaton.threads[state]) ? .match : .noMatch
            }
        }
        var machine = PikeMachine(pattern: self, input: input)
        return machine.search() ? .match : .noMatch
    }
}

extension LiteralPattern {
    func search(_ input: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = bytes.count
        guard count <= input.count else { return false }
        func matches(at offset: Int) -> Bool {
            for index in 0..<count where input[offset + index] != bytes[index] { return false }
            return true
        }
        switch (anchoredStart, anchoredEnd) {
        case (true, true): return count == input.count && matches(at: 0)
        case (true, false): return matches(at: 0)
        case (false, true): return matches(at: input.count - count)
        case (false, false):
            guard let first = bytes.first else { return true }
            var offset = 0
            let last = input.count - count
            while offset <= last {
                if input[offset] == first && matches(at: offset) { return true }
                offset += 1
            }
            return false
        }
    }
}

// MARK: - UTF-8 and positions

@inline(__always)
private func decode(after position: Int, in input: UnsafeBufferPointer<UInt8>) -> (scalar: UInt32, length: Int) {
    let lead = UInt32(input[position])
    if lead < 0x80 { return (lead, 1) }
    if lead < 0xE0 { return ((lead & 0x1F) << 6 | UInt32(input[position + 1] & 0x3F), 2) }
    if lead < 0xF0 {
        return ((lead & 0x0F) << 12 | UInt32(input[position + 1] & 0x3F) << 6 | UInt32(input[position + 2] & 0x3F), 3)
    }
    return ((lead & 0x07) << 18 | UInt32(input[position + 1] & 0x3F) << 12 | UInt32(input[position + 2] & 0x3F) << 6
            | UInt32(input[position + 3] & 0x3F), 4)
}

@inline(__always)
private func decode(before position: Int, in input: UnsafeBufferPointer<UInt8>) -> (scalar: UInt32, length: Int) {
    var start = position - 1
    while input[start] & 0xC0 == 0x80 { start -= 1 }
    return (decode(after: start, in: input).scalar, position - start)
}

/// `\b` at `position`: word characters are ASCII, so looking at the neighbouring bytes is enough.
@inline(__always)
private func isWordBoundary(_ position: Int, in input: UnsafeBufferPointer<UInt8>) -> Bool {
    let before = position > 0 && ScalarSet.isWordByte(input[position - 1])
    let after = position < input.count && ScalarSet.isWordByte(input[position])
    return before != after
}

// MARK: - Pike VM

/// A set of program counters with O(1) insert, test and clear, over scratch memory owned by ``Scratch``.
private struct SparseSet {
    let dense: UnsafeMutablePointer<Int32>
    let sparse: UnsafeMutablePointer<Int32>
    var count = 0

    @inline(__always)
    func contains(_ value: Int) -> Bool {
        let index = Int(sparse[value])
        return index < count && Int(dense[index]) == value
    }

    @inline(__always)
    mutating func insert(_ value: Int) {
        sparse[value] = Int32(truncatingIfNeeded: count)
        dense[count] = Int32(truncatingIfNeeded: value)
        count += 1
    }
}

/// The memory of one run of a program: two thread lists and the closure stack, in one allocation.
private struct Scratch {
    let memory: UnsafeMutablePointer<Int32>
    var current: SparseSet
    var next: SparseSet
    let stack: UnsafeMutablePointer<Int32>

    init(programSize: Int) {
        // The stack holds at most two entries per instruction (a split pushes both targets before one is visited).
        memory = .allocate(capacity: 6 * programSize + 2)
        memory.initialize(repeating: 0, count: 6 * programSize + 2)
        current = SparseSet(dense: memory, sparse: memory + programSize)
        next = SparseSet(dense: memory + 2 * programSize, sparse: memory + 3 * programSize)
        stack = memory + 4 * programSize
    }

    func release() { memory.deallocate() }
}

private struct PikeMachine {
    let pattern: CompiledPattern
    let input: UnsafeBufferPointer<UInt8>
    /// Whether each lookaround's body matches at each byte position: `tables[lookaround * (input.count + 1) + position]`,
    /// valid for the lookarounds in `tabulated`.
    private var tables: [Bool] = []
    private var tabulated: [Bool] = []

    init(pattern: CompiledPattern, input: UnsafeBufferPointer<UInt8>) {
        self.pattern = pattern
        self.input = input
    }

    /// Unanchored search with the main program, from the start or from `position` with `threads` (the threads
    /// there, start thread included).
    mutating func search(from start: Int = 0, threads: [Int32] = []) -> Bool {
        let program = pattern.main
        return program.instructions.withUnsafeBufferPointer { instructions in
            let matchIndex = program.matchIndex
            var scratch = Scratch(programSize: instructions.count)
            defer { scratch.release() }
            for pc in threads { scratch.current.insert(Int(pc)) }
            let end = input.count
            var position = start
            while true {
                if !pattern.anchoredStart || position == 0 {
                    if scratch.current.count == 0, let firstBytes = pattern.firstBytes {
                        while position < end && !firstBytes[Int(input[position])] { position += 1 }
                        if position == end { return false }
                    }
                    addThread(0, at: position, program: instructions, into: &scratch.current, stack: scratch.stack)
                }
                if scratch.current.contains(matchIndex) { return true }
                if position == end || scratch.current.count == 0 && pattern.anchoredStart { return false }
                if scratch.current.count > 0 {
                    let (scalar, length) = decode(after: position, in: input)
                    scratch.next.count = 0
                    step(scratch.current, scalar, to: position + length, program: instructions, into: &scratch.next, stack: scratch.stack)
                    swap(&scratch.current, &scratch.next)
                    position += length
                } else {
                    position += decode(after: position, in: input).length
                }
            }
        }
    }

    /// Fills the table of lookaround `index`: for every position, whether its body matches from there (lookahead:
    /// the reversed body run from the end) or up to there (lookbehind: the body run from the start).
    private mutating func tabulate(_ index: Int) {
        let lookaround = pattern.lookarounds[index]
        let program = lookaround.ahead ? lookaround.backward : lookaround.forward
        let base = index * (input.count + 1)
        if let automaton = lookaround.automaton {
            automaton.tabulate(input, backward: program.backward, into: &tables, base: base)
            tabulated[index] = true
            return
        }
        program.instructions.withUnsafeBufferPointer { instructions in
            let matchIndex = program.matchIndex
            var scratch = Scratch(programSize: instructions.count)
            defer { scratch.release() }
            var position = program.backward ? input.count : 0
            while true {
                addThread(0, at: position, program: instructions, into: &scratch.current, stack: scratch.stack)
                tables[base + position] = scratch.current.contains(matchIndex)
                let (scalar, length): (UInt32, Int)
                if program.backward {
                    if position == 0 { return }
                    (scalar, length) = decode(before: position, in: input)
                } else {
                    if position == input.count { return }
                    (scalar, length) = decode(after: position, in: input)
                }
                let target = program.backward ? position - length : position + length
                scratch.next.count = 0
                step(scratch.current, scalar, to: target, program: instructions, into: &scratch.next, stack: scratch.stack)
                swap(&scratch.current, &scratch.next)
                position = target
            }
        }
        tabulated[index] = true
    }

    @inline(__always)
    private mutating func step(_ current: SparseSet, _ scalar: UInt32, to position: Int, program: UnsafeBufferPointer<RegexInstruction>,
                               into next: inout SparseSet, stack: UnsafeMutablePointer<Int32>) {
        for index in 0..<current.count {
            let pc = Int(current.dense[index])
            switch program[pc] {
            case .scalar(let value):
                if value == scalar { addThread(pc + 1, at: position, program: program, into: &next, stack: stack) }
            case .set(let set):
                if pattern.sets[set].contains(scalar) { addThread(pc + 1, at: position, program: program, into: &next, stack: stack) }
            default: break
            }
        }
    }

    /// Adds `pc` and everything reachable from it without consuming input at `position`.
    private mutating func addThread(_ pc: Int, at position: Int, program: UnsafeBufferPointer<RegexInstruction>,
                                    into list: inout SparseSet, stack: UnsafeMutablePointer<Int32>) {
        var depth = 1
        stack[0] = Int32(truncatingIfNeeded: pc)
        while depth > 0 {
            depth -= 1
            let pc = Int(stack[depth])
            if list.contains(pc) { continue }
            list.insert(pc)
            var follow = true
            switch program[pc] {
            case .jump(let target):
                stack[depth] = Int32(truncatingIfNeeded: target)
                depth += 1
                continue
            case .split(let first, let second):
                stack[depth] = Int32(truncatingIfNeeded: second)
                stack[depth + 1] = Int32(truncatingIfNeeded: first)
                depth += 2
                continue
            case .save, .resetCaptures, .loopStart, .loopCheck: break
            case .start: follow = position == 0
            case .end: follow = position == input.count
            case .wordBoundary: follow = isWordBoundary(position, in: input)
            case .notWordBoundary: follow = !isWordBoundary(position, in: input)
            case .lookaround(let index):
                if tabulated.isEmpty {
                    tabulated = [Bool](repeating: false, count: pattern.lookarounds.count)
                    tables = [Bool](repeating: false, count: pattern.lookarounds.count * (input.count + 1))
                }
                if !tabulated[index] { tabulate(index) }
                follow = tables[index * (input.count + 1) + position] != pattern.lookarounds[index].negated
            case .scalar, .set, .backreference, .match: follow = false
            }
            if follow {
                stack[depth] = Int32(truncatingIfNeeded: pc + 1)
                depth += 1
            }
        }
    }
}

// MARK: - Backtracker

/// Depth-first matching with captures, for patterns with backreferences. Every instruction executed costs one
/// step of ``RegularExpression/stepBudget``.
private struct Backtracker {
    struct BudgetExceeded: Error {}

    private enum TrailEntry {
        case retry(pc: Int, position: Int)
        case capture(slot: Int, old: Int)
        case register(Int, old: Int)
    }

    let pattern: CompiledPattern
    let input: UnsafeBufferPointer<UInt8>
    private var budget = RegularExpression.stepBudget
    private var captures: [Int]
    private var registers: [Int]

    init(pattern: CompiledPattern, input: UnsafeBufferPointer<UInt8>) {
        self.pattern = pattern
        self.input = input
        captures = [Int](repeating: -1, count: 2 * (pattern.captureCount + 1))
        registers = [Int](repeating: -1, count: pattern.registerCount)
    }

    mutating func search() throws(BudgetExceeded) -> Bool {
        var position = 0
        while true {
            if let firstBytes = pattern.firstBytes {
                while position < input.count && !firstBytes[Int(input[position])] { position += 1 }
                if position == input.count { return false }
            }
            if try run(pattern.main, at: position) { return true }
            if pattern.anchoredStart || position == input.count { return false }
            position += decode(after: position, in: input).length
        }
    }

    private mutating func run(_ program: RegexProgram, at start: Int) throws(BudgetExceeded) -> Bool {
        let instructions = program.instructions
        let end = input.count
        var trail: [TrailEntry] = []
        var pc = 0
        var position = start
        while true {
            budget -= 1
            if budget < 0 { throw BudgetExceeded() }
            var failed = false
            switch instructions[pc] {
            case .scalar(let value):
                if program.backward {
                    if position > 0, case let (scalar, length) = decode(before: position, in: input), scalar == value {
                        position -= length
                        pc += 1
                    } else { failed = true }
                } else if position < end, case let (scalar, length) = decode(after: position, in: input), scalar == value {
                    position += length
                    pc += 1
                } else { failed = true }
            case .set(let set):
                if program.backward {
                    if position > 0, case let (scalar, length) = decode(before: position, in: input), pattern.sets[set].contains(scalar) {
                        position -= length
                        pc += 1
                    } else { failed = true }
                } else if position < end, case let (scalar, length) = decode(after: position, in: input), pattern.sets[set].contains(scalar) {
                    position += length
                    pc += 1
                } else { failed = true }
            case .split(let first, let second):
                trail.append(.retry(pc: second, position: position))
                pc = first
            case .jump(let target): pc = target
            case .save(let slot):
                trail.append(.capture(slot: slot, old: captures[slot]))
                captures[slot] = position
                pc += 1
            case .resetCaptures(let from, let to):
                for slot in from..<to where captures[slot] != -1 {
                    trail.append(.capture(slot: slot, old: captures[slot]))
                    captures[slot] = -1
                }
                pc += 1
            case .loopStart(let register):
                trail.append(.register(register, old: registers[register]))
                registers[register] = position
                pc += 1
            case .loopCheck(let register):
                if registers[register] == position { failed = true } else { pc += 1 }
            case .start: if position == 0 { pc += 1 } else { failed = true }
            case .end: if position == end { pc += 1 } else { failed = true }
            case .wordBoundary: if isWordBoundary(position, in: input) { pc += 1 } else { failed = true }
            case .notWordBoundary: if !isWordBoundary(position, in: input) { pc += 1 } else { failed = true }
            case .lookaround(let index):
                let lookaround = pattern.lookarounds[index]
                let saved = captures
                let matched = try run(lookaround.ahead ? lookaround.forward : lookaround.backward, at: position)
                if lookaround.negated {
                    if matched {
                        captures = saved
                        failed = true
                    } else { pc += 1 }
                } else if matched {
                    for slot in lookaround.captureSlots where saved[slot] != captures[slot] {
                        trail.append(.capture(slot: slot, old: saved[slot]))
                    }
                    pc += 1
                } else { failed = true }
            case .backreference(let group):
                let from = captures[2 * group]
                let to = captures[2 * group + 1]
                if from < 0 || to < 0 {
                    pc += 1
                } else {
                    let length = to - from
                    if length <= end - position, (0..<length).allSatisfy({ input[from + $0] == input[position + $0] }) {
                        position += length
                        pc += 1
                    } else { failed = true }
                }
            case .match: return true
            }
            guard failed else { continue }
            backtrack: while true {
                guard let entry = trail.popLast() else { return false }
                switch entry {
                case .retry(let retryPC, let retryPosition):
                    pc = retryPC
                    position = retryPosition
                    break backtrack
                case .capture(let slot, let old): captures[slot] = old
                case .register(let register, let old): registers[register] = old
                }
            }
        }
    }
}
