import ArgumentParser
@main struct FedTrain: ParsableCommand {}
