import ArgumentParser

@main
struct FedTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fedtrain",
        abstract: "Federated-learning training engine for multicore CPUs.",
        subcommands: [Train.self, Simulate.self])
}
