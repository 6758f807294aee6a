import Bridge
import Foundation
import Kafka
import TestSupport
import Testing

/// A blocking TCP client for protocol details that HTTP client libraries hide (100-continue, chunked bodies).
final class RawConnection {
    private let socket: Int32

    init(port: Int, receiveTimeout: Duration = .seconds(10)) throws {
        socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw TestSetupError("socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let (seconds, attoseconds) = receiveTimeout.components
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestSetupError("cannot connect to 127.0.0.1:\(port)") }
    }

    deinit { close(socket) }

    func send(_ text: String) {
        send(bytes: Array(text.utf8))
    }

    /// Sends bytes; a connection the server closed is not an error here (no SIGPIPE), later reads show it.
    @discardableResult
    func send(bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Foundation.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }

    /// Reads until the peer closes the connection or the receive timeout passes.
    /// - Returns: what was read, and whether the peer closed the connection.
    func receiveToClose() -> (text: String, closed: Bool) {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count == 0 { return (String(decoding: received, as: UTF8.self), true) }
            if count < 0 { return (String(decoding: received, as: UTF8.self), errno == ECONNRESET) }
            received += buffer[..<count]
        }
    }

    /// Reads until `terminator` has been seen (or the peer closes or 10 s pass).
    func receive(until terminator: String) -> String {
        var received = ""
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.contains(terminator) {
            let count = recv(socket, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received += String(decoding: buffer[..<count], as: UTF8.self)
        }
        return received
    }
}

@Suite(.timeLimit(.minutes(2)))
struct RawHTTPTests {
    @Test func expectContinueIsAnsweredBeforeTheBodyIsSent() async throws {
        let topic = uniqueTopic("continue")
        try await withBridge([try testRoute(path: "/in", topic: topic, async: false)]) { (base: String, bridge: KafkaBridge) async throws in
            let connection = try RawConnection(port: bridge.port)
            connection.send("POST /in HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            #expect(connection.receive(until: "\r\n\r\n").hasPrefix("HTTP/1.1 100 Continue"))
            connection.send("hello")
            let response = connection.receive(until: "message sent")
            #expect(response.hasPrefix("HTTP/1.1 200 OK"), "\(response)")
        }
        #expect(try await readTopic(topic, minimumCount: 1).compactMap { $0.json["body"] as? String } == ["hello"])
    }

    @Test func chunkedBodyOverTheLimitIs413AndTheConnectionCloses() async throws {
        var route = try testRoute(path: "/in", topic: uniqueTopic("chunked"), async: false)
        route.maxBodySize = 10
        try await withBridge([route]) { (base: String, bridge: KafkaBridge) async throws in
            let connection = try RawConnection(port: bridge.port)
            connection.send("POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n")
            connection.send("6\r\nghijkl\r\n0\r\n\r\n")
            let response = connection.receive(until: "\u{0}never")  // read to the close
            #expect(response.hasPrefix("HTTP/1.1 413 Payload Too Large"), "\(response)")
            #expect(response.lowercased().contains("connection: close"))
            #expect(response.contains("payload_too_large"))
        }
    }

    @Test func keepAliveServesSeveralRequestsAndHTTP10Closes() async throws {
        let topic = uniqueTopic("keepalive")
        try await withBridge([try testRoute(path: "/in", topic: topic, async: false)]) { (base: String, bridge: KafkaBridge) async throws in
            let connection = try RawConnection(port: bridge.port)
            // Two pipelined requests on one connection: answered in order.
            connection.send("POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\naPOST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nb")
            let both = connection.receive(until: "sent\"}HTTP/1.1 200 OK")
            #expect(both.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(both)")
            let old = try RawConnection(port: bridge.port)
            old.send("POST /in HTTP/1.0\r\nContent-Length: 1\r\n\r\nc")
            let response = old.receive(until: "\u{0}never")
            #expect(response.hasPrefix("HTTP/1.0 200 OK"))
            #expect(response.lowercased().contains("connection: close"))
        }
        #expect(try await readTopic(topic, minimumCount: 3).count == 3)
    }

    /// Requests that arrive while a sync answer waits for the broker: the connection keeps reading, holds them and
    /// serves them in order after the answer, a request split across that moment included; none is lost or reordered.
    @Test func requestsSentWhileASyncAnswerIsPendingAreServedInOrder() async throws {
        let topic = uniqueTopic("held")
        let rounds = 20
        try await withBridge([try testRoute(path: "/in", topic: topic, async: false)]) { (base: String, bridge: KafkaBridge) async throws in
            let port = bridge.port
            let answers = try await onOwnThread { () throws -> String in
                let connection = try RawConnection(port: port)
                func request(_ body: String) -> String {
                    "POST /in HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                }
                var received = ""
                for round in 0..<rounds {
                    connection.send(request("r\(round)-a"))
                    connection.send(request("r\(round)-b"))
                    let third = request("r\(round)-c")
                    let split = third.index(third.endIndex, offsetBy: -3)
                    connection.send(String(third[..<split]))
                    Thread.sleep(forTimeInterval: 0.002)
                    connection.send(String(third[split...]))
                    while received.components(separatedBy: "HTTP/1.1 ").count - 1 < 3 * (round + 1) {
                        let more = connection.receive(until: "}")
                        if more.isEmpty { return received }  // closed or timed out: the count below fails
                        received += more
                    }
                }
                return received
            }
            #expect(answers.components(separatedBy: "HTTP/1.1 200 OK").count - 1 == 3 * rounds, "\(answers.suffix(500))")
        }
        let bodies = try await readTopic(topic, minimumCount: 3 * rounds).map { message in
            (try? JSONSerialization.jsonObject(with: Data(message.value)) as? [String: Any])?["body"] as? String ?? ""
        }
        // Each exactly once (the topic's partitions each keep their own order).
        #expect(bodies.sorted() == (0..<rounds).flatMap { round in ["a", "b", "c"].map { "r\(round)-\($0)" } }.sorted())
    }
}
