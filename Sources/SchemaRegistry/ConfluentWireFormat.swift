/// The Confluent wire format of a serialized record: magic byte 0, the schema id as a 4-byte big-endian
/// integer, then the Avro binary or JSON bytes. Every Confluent deserializer expects it.
public enum ConfluentWireFormat {
    public static let magicByte: UInt8 = 0
    public static let headerSize = 5

    /// The wire-format header for `schemaID` alone (for an encoder that writes the payload after it).
    public static func header(schemaID: Int32) -> [UInt8] { frame(schemaID: schemaID, payload: []) }

    /// Prefixes `payload` with the wire-format header for `schemaID`.
    public static func frame(schemaID: Int32, payload: some Collection<UInt8>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerSize + payload.count)
        bytes.append(magicByte)
        withUnsafeBytes(of: schemaID.bigEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// Splits framed bytes into the schema id and the payload, or `nil` when they are not in the wire format.
    public static func unframe(_ bytes: [UInt8]) -> (schemaID: Int32, payload: ArraySlice<UInt8>)? {
        guard bytes.count >= headerSize, bytes[0] == magicByte else { return nil }
        let id = bytes[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return (Int32(bitPattern: id), bytes[headerSize...])
    }
}
