// Measures the JQ module (run in release: `swift run -c release JQBenchmark`): program compile time, and the cost of
// one run (parse + execute + dump) of a small filter on a small document, synchronous and on a NIOThreadPool, and how
// fast a never-ending program is halted at its deadline.
// `JQBenchmark memory <runs>` instead prints the resident memory before and after <runs> runs of every kind (values,
// several values, runtime errors, invalid input), for the leak test (JQTests), which needs a process of its own.
import JQ
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

if CommandLine.arguments.dropFirst().first == "memory" {
    let runs = CommandLine.arguments.dropFirst(2).first.flatMap { Int($0) } ?? 100_000
    let program = try JQProgram(#"if .fail then error("no \(.n)") else (.items[] | {n: .n, s: (.s + "!")}) end"#, maximumStates: 1)
    let inputs: [[UInt8]] = [
        Array(#"{"items":[{"n":1,"s":"a"}]}"#.utf8),
        Array(#"{"items":[{"n":1,"s":"a"},{"n":2,"s":"b"}]}"#.utf8),
        Array(#"{"fail":true,"n":3}"#.utf8),
        Array(#"{"items":[{"n":1,"s":"#.utf8),
    ]
    func residentBytes() -> Int {
        let descriptor = open("/proc/self/statm", O_RDONLY)
        guard descriptor >= 0 else { return 0 }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        let fields = String(decoding: buffer[0..<max(0, count)], as: UTF8.self).split(separator: " ")  // size resident …
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(getpagesize()) : 0
    }
    func round(_ count: Int) {
        for index in 0..<count { _ = try? program.run(inputs[index % inputs.count]) }
    }
    round(20_000)  // warm up: allocator pools, jq's per-thread data
    let before = residentBytes()
    round(runs)
    print("resident-before=\(before) resident-after=\(residentBytes()) runs=\(runs)")
    exit(0)
}

let filter = #"{id: .id, names: [.items[] | select(.n > 1) | .name], total: ([.items[].n] | add)}"#
let document = Array(#"{"id":42,"items":[{"name":"a","n":1},{"name":"b","n":2},{"name":"c","n":3}]}"#.utf8)
let clock = ContinuousClock()

func microseconds(_ duration: Duration, per count: Int) -> String {
    let total = Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
    let hundredths = Int((total / Double(count) * 100).rounded())
    let fraction = String(hundredths % 100)
    return "\(hundredths / 100)." + (fraction.count == 1 ? "0" + fraction : fraction)
}

// Compile: every JQProgram init runs jq_compile once.
let compiles = 20
var program = try JQProgram(filter)
let compileTime = clock.measure {
    for _ in 0..<compiles { program = try! JQProgram(filter) }
}
print("compile: \(microseconds(compileTime, per: compiles)) µs per program (\(compiles) programs)")
print("output: \(String(decoding: try program.run(document), as: UTF8.self))")

// Synchronous runs, one thread.
let runs = 200_000
for _ in 0..<10_000 { _ = try program.run(document) }
let syncTime = try clock.measure {
    for _ in 0..<runs { _ = try program.run(document) }
}
print("sync run: \(microseconds(syncTime, per: runs)) µs per run (\(runs) runs, \(document.count)-byte document)")

// Asynchronous runs on a thread pool: one at a time (latency including the thread hops), then 64 in flight.
let pool = NIOThreadPool(numberOfThreads: 2)
pool.start()
let asyncRuns = 50_000
for _ in 0..<5_000 { _ = try await program.run(document, on: pool) }
let asyncTime = try await clock.measure {
    for _ in 0..<asyncRuns { _ = try await program.run(document, on: pool) }
}
print("async run, one at a time: \(microseconds(asyncTime, per: asyncRuns)) µs per run (\(asyncRuns) runs, 2 pool threads)")
let sharedProgram = program
let concurrentTime = await clock.measure {
    await withTaskGroup(of: Void.self) { group in
        for worker in 0..<64 {
            group.addTask {
                for _ in 0..<(asyncRuns / 64) { _ = try? await sharedProgram.run(document, on: pool) }
                _ = worker
            }
        }
    }
}
print("async run, 64 in flight: \(microseconds(concurrentTime, per: asyncRuns / 64 * 64)) µs per run (wall time / runs, 2 pool threads)")
print("statistics: \(program.statistics)")
try await pool.shutdownGracefully()

// Halting: never-ending programs with a 50 ms timeout on a 1-thread pool. "late" is how long after the deadline the
// call returned; "freed" how long after it returned the pool's only thread had run the next (tiny) run.
let haltPool = NIOThreadPool(numberOfThreads: 1)
haltPool.start()
let next = try JQProgram(".")
for text in ["def f: f; f", "[range(1e18)] | length", "last(repeat(.))"] {
    let endless = try JQProgram(text, maximumStates: 1)
    var late: [Duration] = []
    var freed: [Duration] = []
    for _ in 0..<20 {
        let start = clock.now
        _ = try? await endless.run(Array("null".utf8), on: haltPool, timeout: .milliseconds(50))
        let returned = clock.now
        _ = try await next.run(Array("1".utf8), on: haltPool)
        late.append(returned - start - .milliseconds(50))
        freed.append(clock.now - returned)
    }
    late.sort()
    freed.sort()
    print(
        "halt \(text): late \(microseconds(late[10], per: 1)) µs median, \(microseconds(late[19], per: 1)) µs max; freed "
            + "\(microseconds(freed[10], per: 1)) µs median, \(microseconds(freed[19], per: 1)) µs max; \(endless.statistics)")
}
try await haltPool.shutdownGracefully()
