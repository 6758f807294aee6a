import Foundation
import Testing

@testable import Kafka

@Suite struct ScramClientTests {
    /// RFC 7677, section 3: the SCRAM-SHA-256 example exchange.
    @Test func rfc7677Example() throws {
        let client = ScramClient(algorithm: .sha256, user: "user", password: "pencil", clientNonce: "rOprNGfwEbeRWgbNEkqO")
        #expect(client.clientFirst == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        let exchange = try client.clientFinal(
            serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        #expect(exchange.clientFinal == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        try ScramClient.verify(serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", exchange: exchange)
        #expect(throws: ScramClient.Failure.self) {
            try ScramClient.verify(serverFinal: "v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", exchange: exchange)
        }
    }

    @Test func kafkaTokenExtensionAndEscaping() {
        let client = ScramClient(algorithm: .sha512, user: "to,k=1", password: "x", extensions: [("tokenauth", "true")], clientNonce: "abc")
        #expect(client.clientFirst == "n,,n=to=2Ck=3D1,r=abc,tokenauth=true")
    }

    @Test(arguments: [
        ("r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce"),
        ("r=abcdef,i=4096", "salt"),
        ("r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "iteration"),
        ("e=invalid-proof", "refused"),
    ])
    func badServerMessagesAreRefused(serverFirst: String, reason: String) {
        let client = ScramClient(algorithm: .sha256, user: "u", password: "p", clientNonce: "abc")
        let error = #expect(throws: ScramClient.Failure.self) { try client.clientFinal(serverFirst: serverFirst) }
        #expect(error?.reason.contains(reason) == true)
    }
}
