import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import Bridge

/// The readiness answer itself: ready without clusters to reach, 503 `shutting_down` from the start of shutdown.
@Suite struct ReadinessUnitTests {
    @Test func shuttingDownIsNotReady() {
        let observability = Observability(producers: [], routes: [])
        let before = observability.readyResponse()
        #expect(before.status == .ok)
        #expect(String(buffer: before.body) == #"{"status":"ready"}"#)
        observability.readiness.shutdownStarted()
        let after = observability.readyResponse()
        #expect(after.status == .serviceUnavailable)
        #expect(String(buffer: after.body) == #"{"status":"shutting_down"}"#)
        // Liveness is not readiness: /health still answers 200 while shutting down.
        #expect(observability.healthResponse().status == .ok)
    }
}
