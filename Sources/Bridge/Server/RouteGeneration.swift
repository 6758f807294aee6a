import Synchronization

/// What one configuration serves: its compiled routes and what `/health`, `/ready` and `/metrics` report about
/// them. A reload builds a new generation and puts it in place whole (``LiveRoutes``); requests already routed
/// finish with the generation they started in.
final class RouteGeneration: Sendable {
    /// 1 for the configuration kbridge started with, then one more per applied reload.
    let number: Int
    let routes: RouteTable
    let observability: Observability
    private let inFlight = Atomic<Int>(0)

    init(number: Int, routes: RouteTable, observability: Observability) {
        self.number = number
        self.routes = routes
        self.observability = observability
    }

    /// Stops what its routes run in the background (the refresh of JWKS URLs); call once it serves no request.
    func stop() {
        for (_, access) in observability.access { access.stop() }
    }

    /// Requests routed by this generation and not yet answered.
    var requestsInFlight: Int { inFlight.load(ordering: .acquiring) }

    /// Counts a routed request until the returned lease is released (when its last reference goes: the answer was
    /// written, or the connection closed first).
    func lease() -> Lease {
        inFlight.add(1, ordering: .relaxed)
        return Lease(generation: self)
    }

    /// A request in flight in a generation; its producers are not closed while it lives.
    final class Lease: Sendable {
        private let generation: RouteGeneration

        fileprivate init(generation: RouteGeneration) { self.generation = generation }

        deinit { generation.inFlight.subtract(1, ordering: .releasing) }
    }
}

/// The generation new requests are routed by: every connection reads it at each request's head, so a reload takes
/// effect at the next request of every open connection.
final class LiveRoutes: Sendable {
    private let current: Mutex<RouteGeneration>

    init(_ generation: RouteGeneration) {
        current = Mutex(generation)
    }

    var generation: RouteGeneration { current.withLock { $0 } }

    /// Puts `generation` in place; returns the one it replaced.
    func replace(with generation: RouteGeneration) -> RouteGeneration {
        current.withLock { current in
            defer { current = generation }
            return current
        }
    }
}
