import CArgon2
import CCrypt

/// Why a configured password hash cannot be used, in words safe to show (never the hash's secret part).
public struct PasswordHashError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A password hash in the modular crypt format: bcrypt (`$2a$`, `$2b$`, `$2y$`) or yescrypt (`$y$`), verified with
/// libxcrypt's `crypt_r`, or argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`, version 19), verified with libargon2, the
/// reference implementation. Anything else is refused, above all a plain password, and the old crypt schemes (DES, MD5,
/// SHA-crypt) that `crypt_r` would otherwise accept.
///
/// Verifying costs what the hash's parameters say (bcrypt cost 10: about 50-100 ms): call ``verify(_:)`` off the event
/// loop. Every C call of the module is here.
public struct PasswordHash: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable, Hashable {
        case bcrypt
        case yescrypt
        case argon2id
        case argon2i
        case argon2d
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
            let parameters = try Argon2Parameters(parsing: text)
            scheme = parameters.scheme
            encoded = text
            // libargon2 must read it: a mismatch (not a decoding error) for a password that is not the one.
            guard Self.argon2Verify(encoded: text, password: Array("kbridge-check".utf8), scheme: scheme) != nil else {
                throw PasswordHashError("libargon2 refuses the \(scheme.rawValue) hash (malformed salt or hash)")
            }
            return
        } else if text.hasPrefix("$") {
            let prefix = text.dropFirst().prefix { $0 != "$" }.prefix(12)
            throw PasswordHashError("unsupported hash scheme '$\(prefix)$'; use argon2id ($argon2id$), bcrypt ($2b$) or yescrypt ($y$)")
        } else {
            throw PasswordHashError(
                "not a password hash: give an argon2id ($argon2id$...), bcrypt ($2b$...) or yescrypt ($y$...) hash, never the password itself")
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
        if let type = scheme.argon2Type {
            return try PasswordHash(parsing: try argon2Hash(password: Array(password.utf8), type: type))
        }
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

    public var description: String {
        if let cost { return "\(scheme.rawValue) (cost \(cost))" }
        if let parameters = try? Argon2Parameters(parsing: encoded) {
            return "\(scheme.rawValue) (m=\(parameters.memoryKiB) KiB, t=\(parameters.iterations), p=\(parameters.parallelism))"
        }
        return scheme.rawValue
    }

    /// Whether `password` hashes to this hash. Blocking (milliseconds): not on an event loop. A password with a NUL
    /// byte never matches (crypt would stop at it), nor one over ``maximumPasswordBytes``.
    public func verify<Password: Collection<UInt8>>(_ password: Password) -> Bool {
        guard password.count <= Self.maximumPasswordBytes, !password.contains(0) else { return false }
        if scheme.argon2Type != nil { return Self.argon2Verify(encoded: encoded, password: Array(password), scheme: scheme) == true }
        guard let computed = Self.crypt(password: Array(password), setting: encoded) else { return false }
        return Self.constantTimeEquals(Array(computed.utf8), Array(encoded.utf8))
    }

    // MARK: - libargon2

    /// `argon2_verify`: `true` on a match, `false` on a mismatch, `nil` when libargon2 cannot read the hash.
    static func argon2Verify(encoded: String, password: [UInt8], scheme: Scheme) -> Bool? {
        guard let type = scheme.argon2Type else { return nil }
        var password = password
        defer { for index in password.indices { password[index] = 0 } }
        let result = password.withUnsafeBytes { bytes in CArgon2.argon2_verify(encoded, bytes.baseAddress, bytes.count, type) }
        switch result {
        case Int32(ARGON2_OK.rawValue): return true
        case Int32(ARGON2_VERIFY_MISMATCH.rawValue): return false
        default: return nil
        }
    }

    /// An argon2 hash of `password` with RFC 9106's second recommended parameters (m=64 MiB, t=3, p=4), a 16-byte
    /// random salt and a 32-byte hash.
    static func argon2Hash(password: [UInt8], type: argon2_type) throws(PasswordHashError) -> String {
        let (iterations, memoryKiB, parallelism, saltLength, hashLength): (UInt32, UInt32, UInt32, Int, Int) = (3, 65_536, 4, 16, 32)
        var salt = [UInt8](repeating: 0, count: saltLength)
        var generator = SystemRandomNumberGenerator()
        for index in salt.indices { salt[index] = UInt8.random(in: .min ... .max, using: &generator) }
        let length = argon2_encodedlen(iterations, memoryKiB, parallelism, UInt32(saltLength), UInt32(hashLength), type)
        var output = [CChar](repeating: 0, count: length)
        let result = password.withUnsafeBytes { passwordBytes in
            salt.withUnsafeBytes { saltBytes in
                output.withUnsafeMutableBufferPointer { buffer in
                    argon2_hash(iterations, memoryKiB, parallelism, passwordBytes.baseAddress, passwordBytes.count, saltBytes.baseAddress,
                                saltBytes.count, nil, hashLength, buffer.baseAddress, buffer.count, type, UInt32(ARGON2_VERSION_13.rawValue))
                }
            }
        }
        guard result == Int32(ARGON2_OK.rawValue) else { throw PasswordHashError("libargon2 could not make a hash (error \(result))") }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
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

extension PasswordHash.Scheme {
    /// libargon2's type for an argon2 scheme.
    var argon2Type: argon2_type? {
        switch self {
        case .argon2id: Argon2_id
        case .argon2i: Argon2_i
        case .argon2d: Argon2_d
        case .bcrypt, .yescrypt: nil
        }
    }
}

/// The parameters of an argon2 hash in the PHC string format, `$argon2id$v=19$m=65536,t=3,p=4$SALT$HASH`, checked before
/// libargon2 sees it: version 19 only, and bounds that keep one verification below a few hundred milliseconds and
/// 256 MiB (each verification allocates `m` KiB).
struct Argon2Parameters {
    var scheme: PasswordHash.Scheme
    var memoryKiB: Int
    var iterations: Int
    var parallelism: Int

    static let memoryKiBRange = 8...262_144
    static let iterationsRange = 1...16
    static let parallelismRange = 1...16

    init(parsing text: String) throws(PasswordHashError) {
        let fields = text.split(separator: "$", omittingEmptySubsequences: false)
        // "", "argon2id", "v=19", "m=...,t=...,p=...", salt, hash
        guard fields.count == 6, fields[0].isEmpty else {
            throw PasswordHashError("an argon2 hash is '$argon2id$v=19$m=M,t=T,p=P$' + the salt + '$' + the hash (base64 without padding)")
        }
        switch fields[1] {
        case "argon2id": scheme = .argon2id
        case "argon2i": scheme = .argon2i
        case "argon2d": scheme = .argon2d
        default: throw PasswordHashError("unknown argon2 variant '\(fields[1].prefix(12))' (argon2id, argon2i or argon2d)")
        }
        guard fields[2] == "v=19" else { throw PasswordHashError("only argon2 version 19 (v=19) hashes are read") }
        var values: [Substring: Int] = [:]
        for pair in fields[3].split(separator: ",", omittingEmptySubsequences: false) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, ["m", "t", "p"].contains(parts[0]), values[parts[0]] == nil,
                  parts[1].count <= 9, let value = Int(parts[1]) else {
                throw PasswordHashError("argon2 parameters are 'm=M,t=T,p=P' (memory in KiB, iterations, lanes)")
            }
            values[parts[0]] = value
        }
        guard let memory = values["m"], let iterations = values["t"], let parallelism = values["p"] else {
            throw PasswordHashError("argon2 parameters are 'm=M,t=T,p=P' (memory in KiB, iterations, lanes)")
        }
        for (name, value, range) in [("m", memory, Self.memoryKiBRange), ("t", iterations, Self.iterationsRange),
                                     ("p", parallelism, Self.parallelismRange)] where !range.contains(value) {
            throw PasswordHashError("argon2 \(name)=\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        guard fields[4].utf8.count >= 11, fields[5].utf8.count >= 6,
              fields[4].utf8.allSatisfy(alphabet.contains), fields[5].utf8.allSatisfy(alphabet.contains) else {
            throw PasswordHashError("an argon2 hash's salt (8 bytes or more) and hash (4 bytes or more) are base64 without padding")
        }
        (self.memoryKiB, self.iterations, self.parallelism) = (memory, iterations, parallelism)
    }
}
