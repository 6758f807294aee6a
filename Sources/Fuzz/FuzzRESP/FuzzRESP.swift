import FuzzSupport
import Redis

/// Fuzzes the RESP2 reply decoder (what a Redis server, or something pretending to be one, sends kbridge).
/// Input: the first byte picks small limits (so that the bounds themselves are exercised) or the defaults; the rest is
/// the bytes the "server" sent.
///
/// Invariants: no crash, no hang; a decoded reply consumed at least one byte and no more than were given; decoding
/// is prefix-stable: every strict prefix of the consumed bytes is "need more" (nil), never a reply or an error; a reply
/// re-encoded as RESP decodes to the same value (`regression-invalid-utf8-simple-string`: a line repaired as UTF-8 grows).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRESP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard var input = FuzzInput(data, size), !input.isEmpty else { return 0 }
    let flags = input.byte()
    var limits = RESPLimits()
    if flags & 1 != 0 {
        limits.maximumBulkLength = 64
        limits.maximumLineLength = 32
        limits.maximumDepth = 3
        limits.maximumElements = 16
    }
    let bytes = Array(input.remaining)
    guard let (value, consumed) = try? RESPDecoder.decode(bytes, limits: limits) else { return 0 }
    guard consumed >= 1, consumed <= bytes.count else {
        fuzzFailure("consumed \(consumed) of \(bytes.count) bytes", input: input.remaining)
    }
    if flags & 2 != 0 {
        // Prefix stability, on a bounded number of cut points.
        for cut in stride(from: 0, to: consumed, by: max(1, consumed / 64)) {
            do {
                if try RESPDecoder.decode(Array(bytes[..<cut]), limits: limits) != nil {
                    fuzzFailure("a prefix of \(cut) bytes decoded to a whole reply", input: input.remaining)
                }
            } catch {
                fuzzFailure("a prefix of \(cut) bytes was refused (\(error)) though the whole reply decodes", input: input.remaining)
            }
        }
    }
    let again = encode(value)
    // Simple strings and errors are read as UTF-8 with invalid bytes replaced (U+FFFD, 3 bytes for 1): written back,
    // a line may be up to 3 times longer.
    var roundTripLimits = limits
    roundTripLimits.maximumLineLength = limits.maximumLineLength * 3
    guard let round = try? RESPDecoder.decode(again, limits: roundTripLimits), round.value == value, round.consumed == again.count else {
        fuzzFailure("the reply did not survive re-encoding: \(value)", input: input.remaining)
    }
    return 0
}

/// RESP2 as a server writes it (simple strings and errors are written back as read, so they hold no CR or LF).
func encode(_ value: RESPValue) -> [UInt8] {
    switch value {
    case .simpleString(let text): return Array("+\(text)\r\n".utf8)
    case .error(let text): return Array("-\(text)\r\n".utf8)
    case .integer(let number): return Array(":\(number)\r\n".utf8)
    case .bulkString(nil): return Array("$-1\r\n".utf8)
    case .bulkString(let bytes?): return Array("$\(bytes.count)\r\n".utf8) + bytes + [13, 10]
    case .array(nil): return Array("*-1\r\n".utf8)
    case .array(let values?): return Array("*\(values.count)\r\n".utf8) + values.flatMap(encode)
    }
}

@main enum FuzzRESPMain {
    static func main() { FuzzDriver.run(fuzzRESP) }
}
