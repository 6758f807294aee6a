import Foundation
import TestSupport
import JSON
@testable import JWT

/// The test-only keys under Tests/JWTTests/keys (see its README) and the secrets the tests use.
enum TestKeys {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("keys")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func text(_ name: String) -> String {
        (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? "missing test key \(name)"
    }

    /// 64 bytes: long enough for HS512 (RFC 7518 §3.2).
    static let secret = "kbridge-test-hmac-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"

    /// The key file names (without extension) of each algorithm's key, and the secret for HS*.
    static func name(for algorithm: JWTSignatureAlgorithm) -> String? {
        switch algorithm.keyType {
        case .rsa: "rsa"
        case .ecP256: "ec256"
        case .ecP384: "ec384"
        case .ecP521: "ec521"
        case .ed25519: "ed25519"
        case .hmac: nil
        }
    }

    static func privateKey(for algorithm: JWTSignatureAlgorithm) -> String {
        name(for: algorithm).map { text("\($0).pem") } ?? secret
    }

    static func publicKey(for algorithm: JWTSignatureAlgorithm) -> String {
        name(for: algorithm).map { text("\($0).pub.pem") } ?? secret
    }
}

/// Runs `python3` with `arguments`, `input` on stdin, on a thread of its own (never on a Swift concurrency thread),
/// and returns its standard output; throws with its standard error when it fails.
func runPython(_ arguments: [String], input: [UInt8]) async throws -> [UInt8] {
    // Input and output through files (TestSupport's runProcess): the script reads all of its input before it writes.
    let result = try await runProcess("python3", arguments, input: Data(input))
    guard result.status == 0 else {
        throw PythonFailure(message: "python3 \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderrText)")
    }
    return [UInt8](result.stdout)
}

struct PythonFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The PyJWT oracle (Tests/JWTTests/oracle/pyjwt-oracle.py): one process for a batch of sign and verify cases.
enum PyJWT {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("oracle/pyjwt-oracle.py").path

    static func run(sign: [JSONValue] = [], verify: [JSONValue] = []) async throws -> (signed: JSONObject, verified: JSONObject) {
        let request = JSONValue.object(JSONObject([("sign", .array(sign)), ("verify", .array(verify))]))
        let output = try await runPython([script], input: JSONWriter.bytes(request))
        let answer = try JSONParser.parse(output)
        return (answer["signed"]?.objectValue ?? JSONObject(), answer["verified"]?.objectValue ?? JSONObject())
    }
}

extension JSONValue {
    /// Test shorthand: parses JSON text (an invalid literal becomes a string that no expectation matches).
    static func parsing(_ text: String) -> JSONValue {
        (try? JSONParser.parse(text)) ?? .string("invalid test JSON: \(text)")
    }
}
