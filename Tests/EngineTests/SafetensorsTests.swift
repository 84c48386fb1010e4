import Engine
import Foundation
import Testing
import TestSupport

@Suite struct SafetensorsTests {
    let layout = LeNet5.grayscale.layout

    func parameters() -> [Float] { randomArray(layout.count, seed: 30) }

    @Test func roundTripIsExact() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fedtrain-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let original = parameters()
        try Safetensors.save(original, layout: layout, to: path, metadata: ["format": "pt"])
        #expect(try Safetensors.load(path, layout: layout) == original)
    }

    @Test func headerFollowsTheFormat() throws {
        let bytes = Safetensors.encode(parameters(), layout: layout)
        let headerLength = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        #expect(headerLength % 8 == 0)
        #expect(bytes.count == 8 + headerLength + layout.count * 4)
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as! [String: Any]
        let conv1 = header["conv1.weight"] as! [String: Any]
        #expect(conv1["dtype"] as? String == "F32")
        #expect(conv1["shape"] as? [Int] == [6, 1, 5, 5])
        #expect(conv1["data_offsets"] as? [Int] == [0, 600])
    }

    /// Rewrites the header of a valid file with `edit`, keeping the data section.
    func withHeader(_ edit: (inout [String: Any]) -> Void) throws -> [UInt8] {
        let bytes = Safetensors.encode(parameters(), layout: layout)
        let length = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        var header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as! [String: Any]
        edit(&header)
        let json = [UInt8](try JSONSerialization.data(withJSONObject: header))
        var result: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { result.append(contentsOf: $0) }
        return result + json + bytes[(8 + length)...]
    }

    @Test func rejectsMalformedFiles() throws {
        let valid = Safetensors.encode(parameters(), layout: layout)
        var hugeLength = valid
        hugeLength.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        var notJSON = valid
        notJSON[8] = UInt8(ascii: "[")
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("short", [1, 2, 3]),
            ("huge header length", hugeLength),
            ("header not an object", notJSON),
            ("truncated data", Array(valid.dropLast(4))),
            ("extra data", valid + [0, 0, 0, 0]),
            ("wrong dtype", try withHeader { var e = $0["fc3.bias"] as! [String: Any]; e["dtype"] = "F16"; $0["fc3.bias"] = e }),
            ("wrong shape", try withHeader { var e = $0["fc3.bias"] as! [String: Any]; e["shape"] = [11]; $0["fc3.bias"] = e }),
            ("overlap", try withHeader { var e = $0["fc3.bias"] as! [String: Any]; e["data_offsets"] = [0, 40]; $0["fc3.bias"] = e }),
            ("negative offset", try withHeader { var e = $0["fc3.bias"] as! [String: Any]; e["data_offsets"] = [-40, 0]; $0["fc3.bias"] = e }),
            ("missing tensor", try withHeader { $0["fc3.bias"] = nil }),
            ("renamed tensor", try withHeader { $0["fc9.bias"] = $0["fc3.bias"]; $0["fc3.bias"] = nil }),
            ("entry not an object", try withHeader { $0["fc3.bias"] = 5 }),
        ]
        for (name, bytes) in cases {
            #expect(throws: SafetensorsError.self, "\(name)") { try Safetensors.decode(bytes, layout: layout) }
        }
    }

    @Test func missingFileNamesThePath() {
        do {
            _ = try Safetensors.load("/nonexistent/model.safetensors", layout: layout)
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("/nonexistent/model.safetensors"))
        }
    }
}
