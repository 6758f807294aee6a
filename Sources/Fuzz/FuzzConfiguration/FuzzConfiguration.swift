import FuzzSupport

@testable import Bridge

/// Fuzzes the YAML configuration loader (`BridgeConfiguration.parse(yaml:file:environment:)`: Yams, then the
/// typed reader with its validation). Input: the YAML text.
///
/// The file is placed in a directory that does not exist, so relative `{file: ...}` secrets and certificate
/// paths resolve to nothing; inputs naming device or process files are skipped (reading `/dev/zero` is not a
/// configuration bug). Inputs with a workflow `jq` node are skipped too: compiling one runs libjq's compiler (third-party
/// C, 17 ms a program), which is not what this target fuzzes; everything else of a workflow's configuration is.
///
/// Invariants: no crash, no hang; a rejected configuration names at least one issue.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let input = FuzzInput(data, size) else { return 0 }
    let text = String(decoding: input.remaining, as: UTF8.self)
    if text.contains("/dev") || text.contains("/proc") || text.contains("/sys") || text.contains("jq") { return 0 }
    let file = "/nonexistent-kbridge-fuzz/kbridge.yaml"
    do {
        _ = try BridgeConfiguration.parse(yaml: text, file: file, environment: fuzzEnvironment)
    } catch {
        guard !error.issues.isEmpty else { fuzzFailure("a configuration was rejected without an issue", input: input.remaining) }
    }
    return 0
}

/// What `{env: NAME}` secrets see.
let fuzzEnvironment = ["KAFKA_PASSWORD": "secret", "REGISTRY_TOKEN": "token", "EMPTY": ""]

@main enum FuzzConfigurationMain {
    static func main() { FuzzDriver.run(fuzzConfiguration) }
}
