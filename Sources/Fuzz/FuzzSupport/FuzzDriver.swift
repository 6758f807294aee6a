import Foundation

/// A fuzz target: called once per input with its bytes; returns 0. A target reports a finding by trapping
/// (`fuzzFailure`), which libFuzzer (and the replay mode) treat as a crash.
public typealias FuzzTarget = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// Inputs larger than this are skipped by every target, so that one input's work stays bounded.
public let maximumFuzzInputSize = 64 * 1024

/// The `main` of every fuzz target executable.
///
/// Built with `-sanitize=fuzzer -DFUZZING` (scripts/fuzz), it hands control to libFuzzer's driver
/// (`LLVMFuzzerRunDriver`, since SwiftPM's executable entry point takes the place of libFuzzer's `main`).
/// In an ordinary build it replays the files and directories named on the command line through the target,
/// which is how CI checks the committed corpora without a sanitizer toolchain.
public enum FuzzDriver {
    public static func run(_ target: FuzzTarget) -> Never {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, target))
        #else
        exit(replay(arguments: Array(CommandLine.arguments.dropFirst()), through: target))
        #endif
    }

    /// Runs every file under `arguments` (files or directories, recursively) through `target`.
    /// - Returns: The exit status: 0 when every input ran, 2 for a usage or read error.
    static func replay(arguments: [String], through target: FuzzTarget) -> CInt {
        let name = CommandLine.arguments.first.map { URL(fileURLWithPath: $0).lastPathComponent } ?? "fuzz target"
        guard !arguments.isEmpty else {
            FileHandle.standardError.write(Data("usage: \(name) FILE_OR_DIRECTORY...\n(a plain build replays inputs; scripts/fuzz builds the libFuzzer binary)\n".utf8))
            return 2
        }
        var files: [String] = []
        for argument in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("\(name): \(argument): no such file or directory\n".utf8))
                return 2
            }
            guard isDirectory.boolValue else { files.append(argument); continue }
            let base = URL(fileURLWithPath: argument)
            let entries = FileManager.default.enumerator(atPath: argument)?.compactMap { $0 as? String } ?? []
            for entry in entries.sorted() {
                let path = base.appendingPathComponent(entry).path
                var entryIsDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &entryIsDirectory), !entryIsDirectory.boolValue,
                   !entry.hasSuffix("README.md") {
                    files.append(path)
                }
            }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("\(name): \(file): cannot read\n".utf8))
                return 2
            }
            // Announced first, so that a trap names the input that caused it.
            FileHandle.standardError.write(Data("\(name): \(file)\n".utf8))
            _ = data.withUnsafeBytes { bytes in target(bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count) }
        }
        print("\(name): replayed \(files.count) inputs")
        return 0
    }
}

#if FUZZING
/// libFuzzer's entry point for programs that have their own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ target: FuzzTarget
) -> CInt
#endif

/// A fuzz input cut into pieces: the targets read a few selector bytes and text lines before the payload.
public struct FuzzInput {
    public private(set) var remaining: UnsafeRawBufferPointer

    /// `nil` when the input is larger than ``maximumFuzzInputSize``.
    public init?(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        guard size <= maximumFuzzInputSize else { return nil }
        remaining = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    }

    /// The next byte (0 when the input is used up).
    public mutating func byte() -> UInt8 {
        guard let first = remaining.first else { return 0 }
        remaining = UnsafeRawBufferPointer(rebasing: remaining.dropFirst())
        return first
    }

    /// The bytes up to the next `separator` (consumed, not returned), or all that is left.
    public mutating func bytes(upTo separator: UInt8) -> UnsafeRawBufferPointer {
        guard let end = remaining.firstIndex(of: separator) else {
            defer { remaining = UnsafeRawBufferPointer(rebasing: remaining[remaining.endIndex...]) }
            return remaining
        }
        defer { remaining = UnsafeRawBufferPointer(rebasing: remaining[(end + 1)...]) }
        return UnsafeRawBufferPointer(rebasing: remaining[..<end])
    }

    /// The next line (up to `\n`), decoded as UTF-8 with invalid bytes replaced.
    public mutating func line() -> String {
        String(decoding: bytes(upTo: UInt8(ascii: "\n")), as: UTF8.self)
    }

    public var isEmpty: Bool { remaining.isEmpty }
}

/// Whether Foundation's `JSONSerialization` (an independent parser) accepts `bytes` as one JSON text.
public func foundationAcceptsJSON(_ bytes: some Sequence<UInt8>) -> Bool {
    (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil
}

/// Whether Foundation reads `bytes` as UTF-8 like kbridge does: it guesses UTF-16 and UTF-32 from NUL bytes
/// and byte-order marks, so inputs with those are not compared.
public func foundationReadsAsUTF8(_ bytes: some Collection<UInt8>) -> Bool {
    !bytes.contains(0) && !(bytes.first.map { [0xEF, 0xFE, 0xFF].contains($0) } ?? false)
}

/// Whether `bytes` contain a `\u` escape of a UTF-16 surrogate (`\uD800`-`\uDFFF`): parsers legitimately differ
/// on unpaired ones, so differential checks skip such inputs.
public func containsSurrogateEscape(_ bytes: some Collection<UInt8>) -> Bool {
    let array = Array(bytes)
    guard array.count >= 4 else { return false }
    for index in 0..<(array.count - 3) where array[index] == UInt8(ascii: "\\") && array[index + 1] == UInt8(ascii: "u") {
        let high = array[index + 2] | 0x20
        let next = array[index + 3] | 0x20
        if high == UInt8(ascii: "d"), (UInt8(ascii: "8")...UInt8(ascii: "9")).contains(next) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(next) {
            return true
        }
    }
    return false
}

/// Whether `bytes` may hold a number beyond `Double`'s range (an exponent of three digits or more, or 300 digits in
/// a row): Foundation refuses those, where RFC 8259 lets a parser take them, so differential checks skip them.
public func mayHoldHugeNumber(_ bytes: some Collection<UInt8>) -> Bool {
    var digitRun = 0
    var exponentDigits: Int?
    for byte in bytes {
        let isDigit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        digitRun = isDigit ? digitRun + 1 : 0
        if digitRun >= 300 { return true }
        if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            exponentDigits = 0
        } else if let count = exponentDigits {
            if isDigit {
                if count + 1 >= 3 { return true }
                exponentDigits = count + 1
            } else if !(count == 0 && (byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-"))) {
                exponentDigits = nil
            }
        }
    }
    return false
}

/// The number of `[` and `{` bytes: an upper bound on nesting, to skip differential checks near depth limits.
public func bracketCount(_ bytes: some Sequence<UInt8>) -> Int {
    bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "[") || $1 == UInt8(ascii: "{") ? 1 : 0) }
}

/// Reports a broken invariant: traps, so libFuzzer saves the input.
public func fuzzFailure(_ message: String, input: some Collection<UInt8>) -> Never {
    let preview = String(decoding: input.prefix(300), as: UTF8.self)
    // fatalError, not preconditionFailure: optimized builds drop the latter's message.
    fatalError("fuzz invariant broken: \(message)\ninput (\(input.count) bytes): \(preview.debugDescription)")
}
