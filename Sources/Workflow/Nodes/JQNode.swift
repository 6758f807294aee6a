import JQ
import JSON

/// Datakit's `jq` node: the program is compiled once (libjq through the `JQ` module) and runs on the workflow's jq
/// thread pool, off the event loops, within the workflow's deadline. Its input is the node-wise value, or the object
/// of its named inputs; its output (one result, `null` for none, a list for several) is checked where it arrives.
struct JQNode {
    let work: AsynchronousNodeWork

    init(program: JQProgram, namedInputs: [String], services: WorkflowServices) {
        let threadPool = services.jqThreadPool
        work = { inputs, deadline async throws(WorkflowNodeError) -> NodeOutputs in
            let input = namedInputs.isEmpty ? (inputs.whole ?? .null) : inputs.object(order: namedInputs)
            let remaining = deadline - .now
            guard remaining > .zero else { throw WorkflowNodeError("the workflow's deadline passed before jq started") }
            let output: [UInt8]
            do throws(JQRunError) {
                output = try await program.run(JSONWriter.bytes(input), on: threadPool, timeout: remaining)
            } catch {
                throw WorkflowNodeError(error.description)
            }
            do {
                return NodeOutputs(whole: try output.withUnsafeBytes { try JSONParser.parse($0) })
            } catch {
                throw WorkflowNodeError("jq produced invalid JSON: \(error)")
            }
        }
    }
}
