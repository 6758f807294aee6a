extension BridgeConfiguration {
    /// The configuration kbridge runs with when given no file: port 8080 and one route, `POST /{topic}`,
    /// producing (async) to the given cluster, normally the embedded in-process one.
    public static func embedded(bootstrapServers: String) -> BridgeConfiguration {
        var route = RouteConfiguration(path: "/{topic}", topic: nil, kafka: KafkaSettings(bootstrapServers: BrokerAddress.list(bootstrapServers)),
                                       name: "embedded")
        route.fields.method = true
        route.fields.uri = true
        route.fields.headers = true
        route.kafka.asyncFlushTimeout = 5
        var configuration = BridgeConfiguration(routes: [route])
        configuration.server.port = 8080
        return configuration
    }
}
