import Crypto
import Foundation

/// The client side of SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), with Kafka's SCRAM extensions
/// (KIP-84), of which `tokenauth=true` marks a delegation-token login (KIP-48).
///
/// librdkafka has its own SCRAM but cannot send extensions, which is why kbridge carries this one.
struct ScramClient {
    enum Algorithm: String, Sendable, Hashable {
        case sha256 = "SCRAM-SHA-256"
        case sha512 = "SCRAM-SHA-512"
    }

    struct Failure: Error, Equatable, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    let algorithm: Algorithm
    let user: String
    let password: String
    let clientNonce: String
    let extensions: [(String, String)]

    init(algorithm: Algorithm, user: String, password: String, extensions: [(String, String)] = [],
         clientNonce: String = ScramClient.makeNonce()) {
        self.algorithm = algorithm
        self.user = user
        self.password = password
        self.extensions = extensions
        self.clientNonce = clientNonce
    }

    static func makeNonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
    }

    /// `n=<user>,r=<nonce>[,key=value...]`: the message without the GS2 header.
    var clientFirstBare: String {
        let name = user.replacingOccurrences(of: "=", with: "=3D").replacingOccurrences(of: ",", with: "=2C")
        return (["n=\(name)", "r=\(clientNonce)"] + extensions.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
    }

    /// The first message: GS2 header (no channel binding, no authzid) and the bare message.
    var clientFirst: String { "n,," + clientFirstBare }

    /// What the client must check in the server's last message.
    struct Exchange {
        var clientFinal: String
        var expectedServerSignature: Data
    }

    /// Computes the client's final message from the server's first message.
    func clientFinal(serverFirst: String) throws(Failure) -> Exchange {
        let fields = Self.attributes(serverFirst)
        if let error = fields["e"] { throw Failure(reason: "the server refused: \(error)") }
        guard let nonce = fields["r"], nonce.hasPrefix(clientNonce), nonce.count > clientNonce.count else {
            throw Failure(reason: "the server's nonce does not extend the client's")
        }
        guard let saltText = fields["s"], let salt = Data(base64Encoded: saltText) else { throw Failure(reason: "the server sent no valid salt") }
        guard let iterations = fields["i"].flatMap(Int.init), iterations > 0, iterations <= 1_000_000 else {
            throw Failure(reason: "the server sent no valid iteration count")
        }
        let withoutProof = "c=biws,r=\(nonce)"  // biws = base64("n,,")
        let authMessage = Data("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let salted = saltedPassword(salt: salt, iterations: iterations)
        let clientKey = hmac(key: salted, Data("Client Key".utf8))
        let storedKey = hash(clientKey)
        let signature = hmac(key: storedKey, authMessage)
        let proof = Data(zip(clientKey, signature).map { $0 ^ $1 })
        let serverKey = hmac(key: salted, Data("Server Key".utf8))
        return Exchange(clientFinal: "\(withoutProof),p=\(proof.base64EncodedString())",
                        expectedServerSignature: hmac(key: serverKey, authMessage))
    }

    /// Checks the server's final message (`v=<signature>` or `e=<error>`).
    static func verify(serverFinal: String, exchange: Exchange) throws(Failure) {
        let fields = attributes(serverFinal)
        if let error = fields["e"] { throw Failure(reason: "the server refused: \(error)") }
        guard let signature = fields["v"].flatMap({ Data(base64Encoded: $0) }), signature == exchange.expectedServerSignature else {
            throw Failure(reason: "the server's signature does not match: it does not know the credentials")
        }
    }

    private static func attributes(_ message: String) -> [String: String] {
        var result: [String: String] = [:]
        for part in message.split(separator: ",") {
            guard let equals = part.firstIndex(of: "="), part.distance(from: part.startIndex, to: equals) == 1 else { continue }
            result[String(part[..<equals])] = String(part[part.index(after: equals)...])
        }
        return result
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with one block of HMAC output.
    private func saltedPassword(salt: Data, iterations: Int) -> Data {
        var block = hmac(key: Data(password.utf8), salt + Data([0, 0, 0, 1]))
        var result = block
        for _ in 1..<iterations {
            block = hmac(key: Data(password.utf8), block)
            for index in result.indices { result[index] ^= block[index] }
        }
        return result
    }

    private func hmac(key: Data, _ message: Data) -> Data {
        switch algorithm {
        case .sha256: Data(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
        case .sha512: Data(HMAC<SHA512>.authenticationCode(for: message, using: SymmetricKey(data: key)))
        }
    }

    private func hash(_ data: Data) -> Data {
        switch algorithm {
        case .sha256: Data(SHA256.hash(data: data))
        case .sha512: Data(SHA512.hash(data: data))
        }
    }
}
