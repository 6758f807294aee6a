/// One outbound HTTP call, as the workflow engine describes it. Nothing here is interpreted beyond HTTP framing:
/// the body is bytes, headers are name/value pairs in order (repeats kept).
public struct CalloutRequest: Sendable {
    /// Upper-case HTTP method token (`GET`, `POST`, …); 1…32 characters `A-Z`.
    public var method: String
    /// Absolute `http://` or `https://` URL. Userinfo (`user:pass@`) is refused; a fragment is dropped.
    public var url: String
    /// Request headers in order, repeats kept. `Content-Length`, `Transfer-Encoding` and `Connection` are set by the
    /// client from the body and are dropped if given. A `Host` header given here is sent as is.
    public var headers: [(String, String)]
    /// The request body; `nil` sends none.
    public var body: [UInt8]?
    /// The whole call's time budget (connect, send, response head and body). `.zero` (or negative) means "no per-call
    /// timeout", which is still bounded by ``CalloutClient/Configuration/maximumTimeout``; larger values are clamped
    /// to it.
    public var timeout: Duration
    /// `false` skips certificate verification for this call only (`certificateVerification = .none`).
    public var tlsVerify: Bool
    /// TLS server name (SNI) and the name the certificate is verified against, instead of the URL's host (Kong's
    /// `ssl_server_name`). The connection still goes to the URL's host and port, and the `Host` header stays the
    /// URL's authority unless `headers` set one. Must be a DNS name, not an IP literal. Ignored for `http://` URLs.
    /// Each distinct (server name, URL host) pair uses its own pooled connection set (see
    /// ``CalloutClient/Configuration/maximumClientVariants``).
    public var serverName: String?
    /// Forward proxy for this call, or `nil` for a direct connection.
    public var proxy: CalloutProxy?

    public init(
        method: String = "GET",
        url: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration = .zero,
        tlsVerify: Bool = true,
        serverName: String? = nil,
        proxy: CalloutProxy? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.tlsVerify = tlsVerify
        self.serverName = serverName
        self.proxy = proxy
    }
}

/// Forward proxy settings (Kong `call` inputs `http_proxy`, `https_proxy`, `proxy_auth_username`, `proxy_auth_password`).
/// `http://` URLs go through `httpProxy`, `https://` URLs through `httpsProxy`, both as a CONNECT tunnel (the way
/// AsyncHTTPClient proxies; plain HTTP proxies that refuse CONNECT cannot be used); a `nil` entry means direct for that
/// scheme. Basic proxy credentials are sent on the CONNECT request only. Proxy URLs are `http://host[:port]` (default port 80): TLS to the proxy
/// itself is not supported, and credentials belong in `username`/`password`, never in the URL.
public struct CalloutProxy: Sendable, Hashable {
    public var httpProxy: String?
    public var httpsProxy: String?
    public var username: String?
    public var password: String?

    public init(httpProxy: String? = nil, httpsProxy: String? = nil, username: String? = nil, password: String? = nil) {
        self.httpProxy = httpProxy
        self.httpsProxy = httpsProxy
        self.username = username
        self.password = password
    }
}

/// The response, whatever its status: judging the status is the caller's job.
public struct CalloutResponse: Sendable {
    public var status: Int
    /// Response headers in the order received, repeats kept.
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Why a call failed. The message names the destination's host (and port) only: never userinfo, path, query or
/// header values, which can carry credentials.
public struct CalloutError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable, Hashable {
        /// The URL, method, header or proxy setting is malformed or unsupported.
        case invalidURL
        /// ``CalloutDestinationPolicy`` refused the destination.
        case refusedDestination
        /// No connection: refused, unreachable, name resolution failed, connect timeout, proxy refused.
        case connectFailed
        /// The call's time budget ran out.
        case timeout
        /// The response body exceeded ``CalloutClient/Configuration/maximumResponseBytes``.
        case tooLarge
        /// TLS handshake or certificate verification failed (or a CA file could not be loaded).
        case tls
        /// The calling task was cancelled.
        case cancelled
        /// Anything else (connection closed mid-response, client shut down, …).
        case other
    }

    public let kind: Kind
    /// `host:port` of the destination when known.
    public let destination: String?
    public let message: String

    public init(_ kind: Kind, destination: String? = nil, _ message: String) {
        self.kind = kind
        self.destination = destination
        self.message = message
    }

    public var description: String { message }
}

// Printing a request or proxy setting never shows header values, the body, the path and query, or credentials.
extension CalloutRequest: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        let destination = (try? CalloutURL(parsing: url))?.hostAndPort ?? "<invalid URL>"
        return "CalloutRequest(\(method) \(destination), \(headers.count) headers, \(body?.count ?? 0) body bytes)"
    }

    public var debugDescription: String { description }
}

extension CalloutProxy: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        func host(_ text: String?) -> String {
            guard let text else { return "none" }
            return (try? CalloutURL(parsing: text))?.hostAndPort ?? "<invalid URL>"
        }
        return "CalloutProxy(http: \(host(httpProxy)), https: \(host(httpsProxy)), authenticated: \(username != nil))"
    }

    public var debugDescription: String { description }
}
