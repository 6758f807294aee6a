/// The one UTF-8 check of kbridge: the standard library's validator (`UTF8Span`, RFC 3629: no overlongs, no
/// surrogates, nothing above U+10FFFF), which allocates nothing and is vectorised for ASCII.
public enum UTF8Validation {
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        do {
            _ = try UTF8Span(validating: bytes.assumingMemoryBound(to: UInt8.self).span)
            return true
        } catch {
            return false
        }
    }

    /// The offset of the first byte that is not part of well-formed UTF-8, or `nil` when all of it is.
    public static func firstInvalidOffset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        do {
            _ = try UTF8Span(validating: bytes.assumingMemoryBound(to: UInt8.self).span)
            return nil
        } catch {
            return error.byteOffsets.lowerBound
        }
    }
}
