import JSON

/// JWS compact tokens (`header.payload.signature`, RFC 7515/7519): decoding without verification (Datakit's
/// `jwt_decode`), and the parsing that signing and verification share.
public enum JWTToken {
    /// The largest token accepted, in bytes (after a `Bearer ` prefix): far above any real token, small enough that
    /// decoding a hostile one costs little.
    public static let maximumTokenBytes = 64 * 1024

    /// The header, the payload (any JSON value) and the signature as written (base64url) of `text`, which may start
    /// with `Bearer ` (any case). Nothing is verified.
    ///
    /// - Throws: ``JWTError/malformedToken(_:)`` with the reason.
    public static func decode(_ text: String) throws(JWTError) -> (header: JSONValue, payload: JSONValue, signature: String) {
        let token = try parse(text)
        return (.object(token.header), token.payload, token.signatureText)
    }

    /// `text` without a `Bearer ` prefix (any case) and surrounding spaces.
    static func strippingBearer(_ text: Substring) -> Substring {
        var token = text.drop { $0 == " " || $0 == "\t" }
        if token.utf8.count >= 7, token.prefix(7).lowercased() == "bearer " {
            token = token.dropFirst(7).drop { $0 == " " || $0 == "\t" }
        }
        while let last = token.last, last == " " || last == "\t" || last == "\r" || last == "\n" { token = token.dropLast() }
        return token
    }

    static func parse(_ text: String) throws(JWTError) -> ParsedToken {
        guard text.utf8.count <= maximumTokenBytes + 256 else {
            throw .malformedToken("the token has \(text.utf8.count) bytes, more than the \(maximumTokenBytes) allowed")
        }
        let token = strippingBearer(Substring(text))
        guard !token.isEmpty else { throw .malformedToken("the token is empty") }
        guard token.utf8.count <= maximumTokenBytes else {
            throw .malformedToken("the token has \(token.utf8.count) bytes, more than the \(maximumTokenBytes) allowed")
        }
        let utf8 = token.utf8
        var dots: [Substring.UTF8View.Index] = []
        for index in utf8.indices where utf8[index] == UInt8(ascii: ".") {
            dots.append(index)
            guard dots.count <= 4 else { break }
        }
        guard dots.count == 2 else {
            if dots.count == 4 { throw .malformedToken("encrypted tokens (JWE, 5 segments) are not supported") }
            throw .malformedToken("expected 3 base64url segments separated by '.', found \(dots.count > 4 ? "more than 5" : "\(dots.count + 1)")")
        }
        let headerText = utf8[utf8.startIndex..<dots[0]]
        let payloadText = utf8[utf8.index(after: dots[0])..<dots[1]]
        let signatureText = utf8[utf8.index(after: dots[1])...]
        guard let headerBytes = Base64URL.decode(Substring(headerText).utf8), !headerBytes.isEmpty else {
            throw .malformedToken("the header is not base64url")
        }
        guard let payloadBytes = Base64URL.decode(Substring(payloadText).utf8) else { throw .malformedToken("the payload is not base64url") }
        guard let signature = Base64URL.decode(Substring(signatureText).utf8) else { throw .malformedToken("the signature is not base64url") }
        let header: JSONValue
        do {
            // A key written twice is refused: two readers could otherwise see two different `alg`s.
            header = try JSONParser.parse(headerBytes, duplicateKeys: .refuse)
        } catch {
            throw .malformedToken("the header is not JSON (\(error))")
        }
        guard case .object(let headerObject) = header else { throw .malformedToken("the header is not a JSON object") }
        let payload: JSONValue
        do {
            payload = try JSONParser.parse(payloadBytes, duplicateKeys: .refuse)
        } catch {
            throw .malformedToken("the payload is not JSON (\(error))")
        }
        return ParsedToken(header: headerObject, payload: payload, signingInput: Array(utf8[utf8.startIndex..<dots[1]]),
                           signature: signature, signatureText: String(Substring(signatureText)))
    }
}

/// A token split and decoded, not verified.
struct ParsedToken: Sendable {
    var header: JSONObject
    var payload: JSONValue
    /// `header.payload` as written: what the signature signs.
    var signingInput: [UInt8]
    var signature: [UInt8]
    var signatureText: String
}

extension String {
    /// The text quoted for an error, cut at 100 characters (token values are attacker-chosen).
    var quotedForError: String {
        count > 100 ? "'\(prefix(100))…'" : "'\(self)'"
    }
}
