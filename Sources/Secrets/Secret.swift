import Foundation

/// A secret from the configuration (a password, a key passphrase): its value is never printed.
/// `description` says only where it came from (`inline`, `env NAME`, `file PATH`).
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, ExpressibleByStringLiteral {
    public let value: String
    /// Where the value came from, safe to show.
    public let source: String
    /// The file it was read from, for `{file: PATH}` secrets.
    public let file: String?

    public init(_ value: String, source: String = "inline", file: String? = nil) {
        self.value = value
        self.source = source
        self.file = file
    }

    /// An inline secret (as in code and tests).
    public init(stringLiteral value: String) { self.init(value) }

    /// The value now: a file secret is read again (so a rotated token or password is picked up); if the file
    /// cannot be read or is empty, the value it had at start-up.
    public func current() -> String {
        guard let file, var text = try? String(contentsOfFile: file, encoding: .utf8) else { return value }
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        return text.isEmpty ? value : text
    }

    public var description: String { "<secret from \(source)>" }
    public var debugDescription: String { description }
}
