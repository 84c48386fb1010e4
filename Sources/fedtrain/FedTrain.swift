import ArgumentParser
import Foundation

@main
struct FedTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fedtrain",
        abstract: "Federated-learning training engine for multicore CPUs.",
        version: "fedtrain 0.5.0",
        subcommands: [Train.self, Simulate.self, ExportImages.self, Server.self, Client.self, Replay.self, Status.self, CertificateAuthorityCommand.self, Privacy.self])

    /// Every user error, a bad flag included, ends as one `fedtrain: error: ...` line and status 1;
    /// help and version requests print as usual.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            let message = FedTrain.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            fail(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)
        }
    }
}
