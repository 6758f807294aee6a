import CCrypt

/// Why a configured password hash cannot be used, in words safe to show (never the hash's secret part).
public struct PasswordHashError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A password hash in crypt(3)'s modular format, verified with libxcrypt's `crypt_r`: bcrypt (`$2a$`, `$2b$`, `$2y$`)
/// or yescrypt (`$y$`). Anything else is refused, above all a plain password, and the old crypt schemes (DES, MD5,
/// SHA-crypt) that `crypt_r` would otherwise accept.
///
/// Verifying costs what the hash's parameters say (bcrypt cost 10: about 50-100 ms): call ``verify(_:)`` off the event
/// loop. Every C call of the module is here.
public struct PasswordHash: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable, Hashable {
        case bcrypt
        case yescrypt
    }

    public let scheme: Scheme
    /// The encoded hash (`$2b$10$...`); a hash, not a secret, but still only shown as its scheme and cost.
    let encoded: String

    /// bcrypt costs accepted: below 4 libxcrypt refuses; above 16 one verification takes seconds.
    public static let bcryptCosts = 4...16
    /// The longest encoded hash read (a yescrypt hash is about 73 characters).
    static let maximumEncodedLength = 256
    /// The longest password verified: bcrypt reads 72 bytes; longer inputs only cost time.
    public static let maximumPasswordBytes = 1024

    /// Parses and checks `text`: a supported scheme, well formed, and accepted by this system's libcrypt.
    public init(parsing text: String) throws(PasswordHashError) {
        guard text.utf8.count <= Self.maximumEncodedLength else {
            throw PasswordHashError("a password hash has at most \(Self.maximumEncodedLength) characters")
        }
        if text.hasPrefix("$2a$") || text.hasPrefix("$2b$") || text.hasPrefix("$2y$") {
            try Self.checkBcrypt(text)
            scheme = .bcrypt
        } else if text.hasPrefix("$y$") {
            scheme = .yescrypt
        } else if text.hasPrefix("$argon2") {
            throw PasswordHashError("argon2 hashes are not supported by this system's libcrypt; use bcrypt ($2b$) or yescrypt ($y$)")
        } else if text.hasPrefix("$") {
            let prefix = text.dropFirst().prefix { $0 != "$" }.prefix(12)
            throw PasswordHashError("unsupported hash scheme '$\(prefix)$'; use bcrypt ($2b$) or yescrypt ($y$)")
        } else {
            throw PasswordHashError("not a password hash: give a bcrypt ($2b$...) or yescrypt ($y$...) hash, never the password itself")
        }
        encoded = text
        // libcrypt must compute a hash of the same shape with these parameters (a bad yescrypt parameter string fails here).
        guard let computed = Self.crypt(password: Array("kbridge-check".utf8), setting: text),
              computed.utf8.count == text.utf8.count, computed.hasPrefix(Self.settingPrefix(of: text)) else {
            throw PasswordHashError("this system's libcrypt refuses the \(scheme.rawValue) hash (malformed parameters or salt)")
        }
    }

    /// Makes a hash of `password` (for tests and tooling; production reads hashes from the configuration).
    public static func make(password: String, scheme: Scheme = .bcrypt, cost: Int = 10) throws(PasswordHashError) -> PasswordHash {
        let prefix = scheme == .bcrypt ? "$2b$" : "$y$"
        guard let setting = gensalt(prefix: prefix, cost: scheme == .bcrypt ? cost : 0),
              let hashed = crypt(password: Array(password.utf8), setting: setting) else {
            throw PasswordHashError("libcrypt could not make a \(scheme.rawValue) hash")
        }
        return try PasswordHash(parsing: hashed)
    }

    /// The bcrypt cost, or `nil` for yescrypt.
    public var cost: Int? {
        guard scheme == .bcrypt else { return nil }
        return Int(String(decoding: Array(encoded.utf8)[4..<6], as: UTF8.self))
    }

    public var description: String { cost.map { "\(scheme.rawValue) (cost \($0))" } ?? scheme.rawValue }

    /// Whether `password` hashes to this hash. Blocking (milliseconds): not on an event loop. A password with a NUL
    /// byte never matches (crypt would stop at it), nor one over ``maximumPasswordBytes``.
    public func verify<Password: Collection<UInt8>>(_ password: Password) -> Bool {
        guard password.count <= Self.maximumPasswordBytes, !password.contains(0) else { return false }
        guard let computed = Self.crypt(password: Array(password), setting: encoded) else { return false }
        return Self.constantTimeEquals(Array(computed.utf8), Array(encoded.utf8))
    }

    // MARK: - libxcrypt

    /// `crypt_r(password, setting)`, or `nil` when libcrypt refuses (it returns a string starting with `*`).
    static func crypt(password: [UInt8], setting: String) -> String? {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<crypt_data>.size, alignment: MemoryLayout<crypt_data>.alignment)
        defer {
            // The work area held the password's derived state: cleared before it is freed.
            storage.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<crypt_data>.size)
            storage.deallocate()
        }
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<crypt_data>.size)
        let data = storage.bindMemory(to: crypt_data.self, capacity: 1)
        var phrase = password.map { CChar(bitPattern: $0) }
        phrase.append(0)
        defer { for index in phrase.indices { phrase[index] = 0 } }
        guard let result = CCrypt.crypt_r(phrase, setting, data) else { return nil }
        let text = String(cString: result)
        return text.hasPrefix("*") ? nil : text
    }

    static func gensalt(prefix: String, cost: Int) -> String? {
        var output = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        let count = output.count
        let made = output.withUnsafeMutableBufferPointer { buffer in
            crypt_gensalt_rn(prefix, UInt(cost), nil, 0, buffer.baseAddress, Int32(count))
        }
        guard made != nil else { return nil }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// bcrypt: `$2b$NN$` then 53 characters of bcrypt's base64 (22 of salt, 31 of hash).
    private static func checkBcrypt(_ text: String) throws(PasswordHashError) {
        let bytes = Array(text.utf8)
        guard bytes.count == 60, bytes[6] == UInt8(ascii: "$"),
              let cost = Int(String(decoding: bytes[4..<6], as: UTF8.self)) else {
            throw PasswordHashError("a bcrypt hash is '$2b$' + a two-digit cost + '$' + 53 characters (60 in all)")
        }
        guard bcryptCosts.contains(cost) else {
            throw PasswordHashError("bcrypt cost \(cost) is out of range \(bcryptCosts.lowerBound)...\(bcryptCosts.upperBound)")
        }
        let alphabet = Set("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        guard bytes[7...].allSatisfy(alphabet.contains) else {
            throw PasswordHashError("a bcrypt hash's salt and hash use only '.', '/', letters and digits")
        }
    }

    /// What a computed hash must start with: the parameters and salt (everything before the last `$`).
    private static func settingPrefix(of text: String) -> String {
        if text.hasPrefix("$2") { return String(text.prefix(29)) }
        guard let last = text.lastIndex(of: "$") else { return text }
        return String(text[...last])
    }

    static func constantTimeEquals(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }
}
