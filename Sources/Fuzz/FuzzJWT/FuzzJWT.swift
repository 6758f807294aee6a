import Dispatch
import FuzzSupport
import JSON
import Synchronization
@testable import JWT

/// Fuzzes what a stranger's token reaches: `JWTToken.decode` (the Bearer prefix, the split, base64url, the JSON
/// parser) and `JWTVerificationKeys.verify` with an HMAC secret and an RSA public key, and the key reader on a JWK or
/// JWKS (what a callout could fetch). The first byte picks the mode: 0 the input is the token; 1 it is the payload of
/// an HS256 token; 2 it is the header; 3 it is the verification key text.
///
/// Invariants: no crash, no hang; nothing verifies (no input carries a valid signature of the fixed keys), in
/// particular no HS256 token verifies with the RSA public key; a token that verifies would also decode.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJWT(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard var input = FuzzInput(data, size) else { return 0 }
    let mode = input.byte() % 4
    let text = String(decoding: input.remaining, as: UTF8.self)
    let token: String
    switch mode {
    case 0: token = text
    case 1: token = Base64URL.encode(#"{"alg":"HS256","typ":"JWT"}"#) + "." + Base64URL.encode(Array(input.remaining)) + ".c2lnbmF0dXJl"
    case 2: token = Base64URL.encode(Array(input.remaining)) + "." + Base64URL.encode(#"{"sub":"x"}"#) + ".c2lnbmF0dXJl"
    default:
        if let keys = blocking({ () async -> JWTVerificationKeys? in try? await JWTVerificationKeys(parsing: text) }) {
            if (try? keys.verify(fixedToken)) != nil { fuzzFailure("a fuzzed key verified a token signed with another key", input: input.remaining) }
        }
        return 0
    }
    _ = try? JWTToken.decode(token)
    for keys in fixedKeys where (try? keys.verify(token)) != nil {
        fuzzFailure("a fuzzed token verified", input: input.remaining)
    }
    return 0
}

/// An HS256 token signed with a secret the fuzzed keys do not hold.
let fixedToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.lP5bMSI3Mb5nOvMxVI1bSiAbIrbrhMY2sr-gRgJXY0I"

/// An HMAC secret and an RSA public key (test-only, the one in Tests/JWTTests/keys/rsa.pub.pem).
let fixedKeys: [JWTVerificationKeys] = [
    "fuzzing-secret-of-at-least-32-bytes-long!",
    """
    -----BEGIN PUBLIC KEY-----
    MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAqKunSLmaXBTwuSoql5o6
    CPdVuQmHS3xe3C33WT9NmyyHW68867qQALfLapBv3Kc/5zWOfN1VsbRyQ1bzhW2F
    3tng2zNmp9YXFImhEv3O3YYd9uW1GWS188vxRhlfEOlIXnignbpDeDzCNy/lcEpm
    p+Ic4rCuP+Oo8Op3ONQIRoEXzM8Br2ADURhWwMHM0IsrE2PaxoiQx8MF/zKZl5wb
    cg/6a+HmARbGSltpXG2OeZe1qPyE8Tl7XM62z5DY+ozctAYJ73QGw8EnliWSh1zO
    y8R1JtKqc++aChbzSfsBmCY5mHBJQjVVl707U6zlxoLYSr15vv3YMyk61h414rE8
    WwIDAQAB
    -----END PUBLIC KEY-----
    """,
].compactMap { text in blocking { () async -> JWTVerificationKeys? in try? await JWTVerificationKeys(parsing: text) } }

/// Runs async work to completion from the fuzzer's synchronous entry point (a fuzz driver, never the server).
func blocking<T: Sendable>(_ work: @escaping @Sendable () async -> T?) -> T? {
    let result = Mutex<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let value = await work()
        result.withLock { $0 = value }
        done.signal()
    }
    done.wait()
    return result.withLock { $0 }
}

@main enum FuzzJWTMain {
    static func main() {
        precondition(fixedKeys.count == 2, "the fixed keys did not parse")
        FuzzDriver.run(fuzzJWT)
    }
}
