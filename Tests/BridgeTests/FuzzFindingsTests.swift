import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import Bridge

/// Bugs found by the fuzz targets (Sources/Fuzz), one test each, with the input reduced to its essence.
@Suite struct FuzzFindingsTests {
    /// FuzzKongEnvelope (timeout): `MultipartForm.find` compares the whole delimiter at every position, so a long
    /// boundary made of dashes against a body of slightly shorter runs of dashes takes boundary × body steps:
    /// 63 KB of request took 15 s in the sanitizer build. A body of 1 MiB (the default limit) would hold the event
    /// loop for minutes. The search must be linear in the body (or the boundary bounded: RFC 2046 allows 70 bytes).
    @Test func multipartWithALongBoundaryIsRejectedOrSplitInLinearTime() {
        let boundaryLength = 40_000
        let boundary = String(repeating: "-", count: boundaryLength)
        let run = String(repeating: "-", count: boundaryLength + 1) + "x"
        let body = String(repeating: run, count: 2)
        let clock = ContinuousClock()
        var failure: String?
        let elapsed = clock.measure {
            failure = encodingFailure(contentType: "multipart/form-data; boundary=\(boundary)", body: body)
        }
        // Boundaries are bounded to RFC 2046's 70 characters, which keeps the search linear in the body.
        #expect(failure?.contains("boundary") == true, "\(String(describing: failure))")
        // Milliseconds; the old quadratic search took minutes (40,000 × 80,000 comparisons).
        #expect(elapsed < .seconds(20), "splitting \(body.utf8.count) bytes at a \(boundaryLength)-byte boundary took \(elapsed)")
    }
}
