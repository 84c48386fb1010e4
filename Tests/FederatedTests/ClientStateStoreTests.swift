import Engine
import Federated
import Foundation
import Testing
import TestSupport

@Suite struct ClientStateStoreTests {
    /// States and replies come back exactly as saved (a client without a file is new); a file cut
    /// short or overwritten with garbage is refused with its name; a directory holding another
    /// job's state is refused, one whose job only runs more rounds is not.
    @Test func roundTripsAndRefusesCorruptFilesAndOtherJobs() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fedtrain-client-state-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var state = ClientState()
        (state.residual, state.uplinkState, state.control) = ([1, -2, 3.5], [0.25], [7, 8, 9])
        let saved = ClientStateStore.Saved(state: state, reply: (round: 4, bytes: [9, 8, 7, 6]))
        do {
            let store = try ClientStateStore(directory: directory, job: "clients: 20\nrounds: 3\n")
            try store.save(client: 3, saved)
            try store.save(client: 5, ClientStateStore.Saved(state: ClientState(), reply: nil))
            // One client process per directory: a second one is refused while the first holds it.
            withExtendedLifetime(store) {
                let busy = #expect(throws: CheckpointError.self) { try ClientStateStore(directory: directory, job: "clients: 20\nrounds: 3\n") }
                #expect(busy?.description.contains("is in use by another fedtrain client") == true, "\(String(describing: busy))")
            }
        }
        do {
            // A restarted server with more rounds runs the same job.
            let again = try ClientStateStore(directory: directory, job: "clients: 20\nrounds: 5\n")
            let loaded = try again.load(clients: [3, 4, 5])
            #expect(loaded[3] == saved && loaded[4] == nil && loaded[5] == ClientStateStore.Saved(state: ClientState(), reply: nil))

            let file = "\(directory)/client-3.state"
            let bytes = try AtomicFile.read(file)
            for corrupt in [Array(bytes.prefix(bytes.count / 2)), Array(bytes.prefix(10)), [UInt8](repeating: 0x41, count: 64)] {
                try AtomicFile.write(corrupt, to: file)
                #expect(throws: CheckpointError.self) { try again.load(clients: [3]) }
            }
        }
        let other = #expect(throws: CheckpointError.self) { try ClientStateStore(directory: directory, job: "clients: 21\nrounds: 5\n") }
        #expect(other?.description.contains("holds the state of another job") == true, "\(String(describing: other))")
    }
}
