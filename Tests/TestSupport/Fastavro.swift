import Foundation

/// Decodes Avro binary with fastavro (`scripts/testing/avro-decode.py`) and returns its JSON rendering.
public func decodeWithFastavro(_ bytes: [UInt8], schema: String, references: [String] = []) async throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kbridge-avro-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    try schema.write(to: directory.appendingPathComponent("schema.avsc"), atomically: true, encoding: .utf8)
    try Data(bytes).write(to: directory.appendingPathComponent("datum.bin"))
    var arguments = [directory.appendingPathComponent("schema.avsc").path, directory.appendingPathComponent("datum.bin").path]
    for (index, reference) in references.enumerated() {
        let file = directory.appendingPathComponent("reference-\(index).avsc")
        try reference.write(to: file, atomically: true, encoding: .utf8)
        arguments.append(file.path)
    }
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/testing/avro-decode.py").standardized.path
    let result = try await runProcess("python3", [script] + arguments)
    guard result.status == 0 else { throw DecodeFailure(message: result.stderrText) }
    let text = result.stdoutText
    return text.trimmingCharacters(in: .whitespacesAndNewlines)
}

public struct DecodeFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "fastavro could not decode: \(message)" }
}

