/// A failure to get a schema, with a code safe to use as a metrics label and a message for people.
public struct SchemaRegistryError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The subject, version or id does not exist (HTTP 404, error codes 40401/40402/40403).
        public static let notFound = Code("not_found")
        /// The registry refused the credentials (HTTP 401/403).
        public static let unauthorized = Code("unauthorized")
        /// The registry could not be reached, timed out, or failed (5xx): a cached schema may be served instead.
        public static let unavailable = Code("unavailable")
        /// The registry answered something kbridge cannot use.
        public static let invalidResponse = Code("invalid_response")
        /// The OAuth2 token endpoint refused or failed.
        public static let tokenRequestFailed = Code("token_request_failed")
    }

    public var code: Code
    /// What went wrong, naming the subject, version or id; the registry's own `message` when it sent one.
    public var message: String
    /// The registry's `error_code`, when it sent one.
    public var registryErrorCode: Int?

    public init(code: Code, message: String, registryErrorCode: Int? = nil) {
        self.code = code
        self.message = message
        self.registryErrorCode = registryErrorCode
    }

    public var description: String { "\(code): \(message)" }
}
