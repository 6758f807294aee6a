/// The bytes of a JSON string's text that need a look: a quote, a backslash or a control character (below 0x20). The
/// parser skips the others eight at a time, and so does the Kong envelope's writer when it escapes a body.
public enum JSONStringBytes {
    /// Whether one of the eight bytes of `word` is a quote, a backslash or below 0x20. Exact about whether there is
    /// one (not about which): bytes of 0x80 and above never count, whatever the byte order the word was read in.
    @inlinable @inline(__always)
    public static func containQuoteBackslashOrControl(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        // A byte's high bit is flagged when it is zero (or below 0x20, for `word` itself); a flag after a real one
        // may be spurious, which does not change the answer.
        let flags = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word)
        return flags & highs != 0
    }
}
