import Engine
import Foundation
import Testing

/// Runs the built `fedtrain` executable (next to the test binary) and captures its output.
func fedtrain(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
    let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("fedtrain")
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let output = Pipe(), error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let out = output.fileHandleForReading.readDataToEndOfFile(), err = error.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

func temporaryPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("fedtrain-cli-\(UUID().uuidString)-\(name)").path
}

@Suite(.serialized) struct TrainCommandTests {
    @Test func helpListsEveryOption() throws {
        let result = try fedtrain(["train", "--help"])
        #expect(result.status == 0)
        for option in ["--data", "--model", "--epochs", "--batch-size", "--lr", "--momentum", "--weight-decay", "--seed",
                       "--threads", "--init", "--save", "--max-steps", "--no-shuffle", "--train-limit", "--summary"] {
            #expect(result.output.contains(option), "help lacks \(option)")
        }
    }

    @Test(arguments: [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "-3"], "--batch-size"),
        (["--lr", "-0.1"], "--lr"),
        (["--momentum", "1.5"], "--momentum"),
        (["--model", "resnet"], "resnet"),
        (["--threads", "0"], "--threads"),
        (["--max-steps", "0"], "--max-steps"),
        (["--epochs", "many"], "many"),
        (["--model", "lenet5-rgb"], "data is required for lenet5-rgb"),
        (["--data", "/nonexistent/dir"], "/nonexistent/dir/train-images-idx3-ubyte.gz: no such file"),
        (["--data", "folder:/nonexistent/images"], "/nonexistent/images: no such file"),
        (["--data", "folder:/tmp", "--test-fraction", "1.5"], "test_fraction must be in (0, 1) (got 1.5)"),
        (["--model", "/nonexistent/model.yaml"], "--model /nonexistent/model.yaml: neither a built-in model (lenet5, lenet5-rgb, fedavg-cnn) nor a readable file (no such file)"),
        (["--init", "/nonexistent/w.safetensors", "--max-steps", "1"], "/nonexistent/w.safetensors"),
        (["--save", "/nonexistent/dir/w.safetensors"], "--save /nonexistent/dir/w.safetensors: cannot be written: no directory /nonexistent/dir"),
        (["--summary", "/tmp"], "--summary /tmp: cannot be written: is a directory"),
        (["--dp-sgd", "--clip", "1"], "--dp-sgd needs --clip C > 0 and --noise-multiplier Z >= 0 or --target-epsilon E"),
        (["--clip", "1"], "--clip, --noise-multiplier and --target-epsilon need --dp-sgd"),
        (["--dp-sgd", "--clip", "1", "--target-epsilon", "1", "--noise-multiplier", "0.1", "--train-limit", "600"], "above target_epsilon 1"),
        (["--dp-sgd", "--clip", "1", "--noise-multiplier", "1", "--max-steps", "3"], "no --max-steps or --no-shuffle"),
    ])
    func badInputExitsWithAClearError(arguments: [String], message: String) throws {
        let result = try fedtrain(["train"] + arguments)
        #expect(result.status != 0)
        #expect(result.error.contains(message), "stderr: \(result.error)")
        #expect(!result.output.contains("epoch 1"), "failed only after training: \(result.output)")
        #expect(!result.error.contains("Fatal error"), "crashed: \(result.error)")
    }

    /// `--model FILE.yaml`: a description trains (names as nn.Sequential's); a bad one is
    /// refused naming its layer, before any training.
    @Test func modelFilesTrainOrAreRefusedNamingTheLayer() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fedtrain-model-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let good = "model:\n  layers:\n    - conv: {out: 2, kernel: 5, stride: 3}\n    - relu\n    - flatten\n    - dense: classes\n"
        try good.write(toFile: "\(directory)/good.yaml", atomically: true, encoding: .utf8)
        let trained = try fedtrain(["train", "--model", "\(directory)/good.yaml", "--max-steps", "2", "--epochs", "1", "--threads", "1",
                                    "--save", "\(directory)/w.safetensors"])
        #expect(trained.status == 0, "\(trained.error)")
        let names = try Safetensors.tensors([UInt8](Data(contentsOf: URL(fileURLWithPath: "\(directory)/w.safetensors"))), path: "w").keys
        #expect(Set(names) == ["0.weight", "0.bias", "3.weight", "3.bias"])
        try "layers:\n  - dense: 10\n".write(toFile: "\(directory)/bad.yaml", atomically: true, encoding: .utf8)
        let refused = try fedtrain(["train", "--model", "\(directory)/bad.yaml"])
        #expect(refused.status != 0 && !refused.output.contains("epoch 1"))
        #expect(refused.error.contains("model layer 0 (dense): needs a flat input, got [1, 28, 28] (put flatten before it)"), "\(refused.error)")
        try "layers: [flatten, batchnorm, {dense: classes}]\n".write(toFile: "\(directory)/bn.yaml", atomically: true, encoding: .utf8)
        let private_ = try fedtrain(["train", "--model", "\(directory)/bn.yaml", "--dp-sgd", "--clip", "1", "--noise-multiplier", "1"])
        #expect(private_.status != 0 && private_.error.contains("DP-SGD does not support batchnorm or dropout layers"), "\(private_.error)")
    }

    @Test func corruptDataFileIsReportedByName() throws {
        let directory = temporaryPath("data")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        FileManager.default.createFile(atPath: "\(directory)/train-images-idx3-ubyte.gz", contents: Data([0x1F, 0x8B, 8, 0, 1, 2]))
        let result = try fedtrain(["train", "--data", directory])
        #expect(result.status != 0)
        #expect(result.error.contains("\(directory)/train-images-idx3-ubyte.gz"))
    }

    /// A short real run: summary JSON, a checkpoint, and a second run that starts from it.
    @Test func shortRunWritesSummaryAndCheckpoint() throws {
        let summary = temporaryPath("summary.json"), checkpoint = temporaryPath("model.safetensors")
        defer {
            try? FileManager.default.removeItem(atPath: summary)
            try? FileManager.default.removeItem(atPath: checkpoint)
        }
        // 640 examples at B=32 are 20 steps per epoch: 30 steps end inside epoch 2.
        let first = try fedtrain(["train", "--epochs", "3", "--train-limit", "640", "--max-steps", "30", "--batch-size", "32",
                                  "--lr", "0.05", "--threads", "2", "--summary", summary, "--save", checkpoint])
        #expect(first.status == 0, "\(first.error)")
        #expect(first.output.contains("epoch 2/3"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summary))) as! [String: Any]
        #expect(json["steps"] as? Int == 30)
        #expect(json["epochs"] as? Int == 2)
        for key in ["test_accuracy", "test_loss", "train_loss", "images_per_second", "seconds"] {
            #expect((json[key] as? Double).map { $0.isFinite && $0 >= 0 } == true, "\(key)")
        }
        #expect((json["test_accuracy"] as! Double) > 0.3)

        // Starting from the checkpoint with a negligible step reproduces the saved model's accuracy.
        let resumed = try fedtrain(["train", "--epochs", "1", "--max-steps", "1", "--init", checkpoint, "--lr", "1e-9",
                                    "--momentum", "0", "--summary", summary])
        #expect(resumed.status == 0, "\(resumed.error)")
        let again = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summary))) as! [String: Any]
        #expect(again["test_accuracy"] as? Double == json["test_accuracy"] as? Double)
    }

    /// `fedtrain train --dp-sgd --clip 1` plus `noise` on 600 examples (Poisson lots of expected
    /// size 60: q = 0.1, 10 steps an epoch, 2 epochs), its output and its JSON summary.
    func dpSGDTraining(_ noise: [String]) throws -> (output: String, summary: [String: Any]) {
        let summary = temporaryPath("dp-summary.json")
        defer { try? FileManager.default.removeItem(atPath: summary) }
        let result = try fedtrain(["train", "--dp-sgd", "--clip", "1"] + noise + ["--epochs", "2", "--train-limit", "600",
                                   "--batch-size", "60", "--lr", "0.1", "--momentum", "0", "--summary", summary])
        #expect(result.status == 0, "\(result.error)")
        return (result.output, try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summary))) as! [String: Any])
    }

    /// The JSON object `fedtrain privacy ... --json` prints.
    func privacyJSON(_ arguments: [String]) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(try fedtrain(["privacy"] + arguments + ["--delta", "1e-5", "--json"]).output.utf8)) as! [String: Any]
    }

    /// DP-SGD in centralized training: the ε of the steps taken, from the accountant, in the summary.
    @Test func dpSGDReportsItsEpsilon() throws {
        let (output, json) = try dpSGDTraining(["--noise-multiplier", "1.1"])
        #expect(json["steps"] as? Int == 20 && json["delta"] as? Double == 1e-5)
        let expected = try privacyJSON(["epsilon", "--noise-multiplier", "1.1", "--sampling-rate", "0.1", "--steps", "20"])
        #expect(json["epsilon"] as? Double == expected["epsilon"] as? Double)
        #expect(output.contains("-DP"))
    }

    /// `--target-epsilon` instead of `--noise-multiplier`: the noise multiplier is calibrated for
    /// the training set and the epochs, so the run spends the target (within the bisection's 1e-6).
    @Test func dpSGDCalibratesItsNoiseToATargetEpsilon() throws {
        let (_, json) = try dpSGDTraining(["--target-epsilon", "2"])
        let epsilon = try #require(json["epsilon"] as? Double), z = try #require(json["noise_multiplier"] as? Double)
        #expect(epsilon <= 2 && epsilon > 2 * (1 - 1e-4), "epsilon \(epsilon) at z \(z)")
        let expected = try privacyJSON(["calibrate", "--epsilon", "2", "--sampling-rate", "0.1", "--steps", "20"])
        #expect(z == expected["noise_multiplier"] as? Double)
    }
}

@Suite(.serialized) struct SimulateCommandTests {
    @Test func helpListsEveryOption() throws {
        let result = try fedtrain(["simulate", "--help"])
        #expect(result.status == 0)
        for option in ["--config", "--clients", "--rounds", "--fraction", "--min-clients", "--partition", "--strategy", "--local-epochs",
                       "--batch-size", "--lr", "--momentum", "--weight-decay", "--dropout", "--eval-every", "--seed", "--threads",
                       "--out", "--resume", "--save", "--codec", "--down-codec", "--error-feedback", "--server-optimizer", "--drop",
                       "--min-survivors", "--max-samples", "--overwrite", "--client-evaluation", "--model", "--data", "--min-partition-size"] {
            #expect(result.output.contains(option), "help lacks \(option)")
        }
        #expect(result.output.contains("(default: 10)") && result.output.contains("(default: dirichlet:0.5)"), "help shows defaults")
    }

    /// Every user error is one line `fedtrain: error: ...` on stderr and status 1: bad flags
    /// (ArgumentParser's own errors included), bad values, bad files, corrupt checkpoints.
    @Test(arguments: [
        (["simulate", "--rounds", "-1"], "fedtrain: error: rounds must be at least 1 (got -1)"),
        (["simulate", "--lr", "-1"], "fedtrain: error: lr must be a positive number (got -1.0)"),
        (["simulate", "--clients"], "fedtrain: error: Missing value for '--clients <clients>'"),
        (["simulate", "--bogus"], "fedtrain: error: Unknown option '--bogus'"),
        (["simulate", "--clients", "many"], "fedtrain: error: The value 'many' is invalid for '--clients <clients>'"),
        (["simulate", "--config", "/nonexistent/job.yaml"], "fedtrain: error: /nonexistent/job.yaml"),
        (["simulate", "--data", "/nonexistent/dir"], "fedtrain: error: /nonexistent/dir/"),
        (["simulate", "--out", "/etc/hostname"], "fedtrain: error: /etc/hostname is a file, not a directory"),
        (["simulate", "--server-optimizer", "adam", "--strategy", "fedyogi"], "fedtrain: error: server_optimizer adam: strategy fedyogi"),
        (["simulate", "--drop", "1:99"], "fedtrain: error: drop: 1:99"),
        (["simulate", "--aggregator", "krum:4"], "fedtrain: error: aggregator krum:4 needs at least 11 updates a round; the job expects 10"),
        (["simulate", "--aggregator", "median", "--strategy", "scaffold"], "fedtrain: error: aggregator median: strategy scaffold aggregates its own way"),
        (["simulate", "--attack", "ipm:10"], "fedtrain: error: attack ipm:10 needs attackers"),
        (["simulate", "--attack", "poison", "--attackers", "0.2"], "fedtrain: error: unknown attack poison"),
        (["train", "--epochs", "-2"], "fedtrain: error: --epochs must be at least 1 (got -2)"),
        (["fly"], "fedtrain: error: Unexpected argument 'fly'"),
    ])
    func userErrorsAreOneLine(arguments: [String], message: String) throws {
        let result = try fedtrain(arguments)
        #expect(result.status == 1)
        #expect(result.error.hasPrefix(message), "stderr: \(result.error)")
        #expect(result.error.split(separator: "\n").count == 1, "stderr: \(result.error)")
        #expect(!result.output.contains("round 1"))
    }

    @Test func corruptCheckpointIsOneLine() throws {
        let directory = temporaryPath("run")
        try FileManager.default.createDirectory(atPath: "\(directory)/checkpoint", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "clients: 4\n".write(toFile: "\(directory)/config.yaml", atomically: true, encoding: .utf8)
        try "{\"round\": 3".write(toFile: "\(directory)/checkpoint/checkpoint.json", atomically: true, encoding: .utf8)
        let result = try fedtrain(["simulate", "--resume", directory])
        #expect(result.status == 1)
        #expect(result.error.hasPrefix("fedtrain: error: cannot resume from \(directory)/checkpoint: checkpoint.json is not a fedtrain checkpoint"),
                "\(result.error)")
        #expect(result.error.split(separator: "\n").count == 1)
    }

    /// Ctrl-C during a run says how to continue it, and the run continues from there.
    @Test func interruptSaysHowToResume() throws {
        let directory = temporaryPath("interrupted")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("fedtrain")
        let process = Process()
        process.executableURL = executable
        process.arguments = ["simulate", "--clients", "2", "--rounds", "20", "--partition", "iid", "--threads", "1", "--out", directory]
        let error = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = error
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: "\(directory)/metrics.jsonl") && Date() < deadline && process.isRunning {
            Thread.sleep(forTimeInterval: 0.1)
        }
        process.interrupt()
        let message = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        #expect(message.contains("fedtrain: interrupted; continue with: fedtrain simulate --resume \(directory)"), "\(message)")
        let resumed = try fedtrain(["simulate", "--resume", directory, "--rounds", "2", "--threads", "1"])
        #expect(resumed.status == 0 && resumed.output.contains("resumed after round"), "\(resumed.error)")
    }

    @Test func versionAndHelpExitZero() throws {
        let version = try fedtrain(["--version"])
        #expect(version.status == 0 && version.output.hasPrefix("fedtrain "))
        #expect(try fedtrain(["--help"]).status == 0)
    }

    @Test(arguments: [
        (["--codec", "zip"], "unknown codec zip"),
        (["--codec", "topk:2"], "topk FRACTION"),
        (["--codec", "qsgd:9"], "qsgd BITS"),
        (["--down-codec", "powersgd:0"], "powersgd RANK"),
        (["--codec", "fp16+qsgd:4"], "only topk and powersgd"),
        (["--fraction", "1.5"], "fraction"),
        (["--strategy", "fedsgd"], "fedsgd"),
        (["--save", "/nonexistent/dir/m.safetensors"], "--save /nonexistent/dir/m.safetensors: cannot be written: no directory /nonexistent/dir"),
    ])
    func badFlagsFailWithOneLine(arguments: [String], mention: String) throws {
        let result = try fedtrain(["simulate"] + arguments)
        #expect(result.status != 0)
        #expect(result.error.contains(mention), "stderr: \(result.error)")
        #expect(!result.output.contains("round 1"), "failed only after training: \(result.output)")
    }

    @Test func unknownConfigKeyIsNamed() throws {
        let path = temporaryPath("config.yaml")
        try "clients: 4\ncodecs: fp16\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try fedtrain(["simulate", "--config", path])
        #expect(result.status != 0 && result.error.contains("unknown config key codecs"))
    }
}

@Suite struct PrivacyCommandTests {
    func json(_ arguments: [String]) throws -> [String: Any] {
        let result = try fedtrain(["privacy"] + arguments + ["--json"])
        #expect(result.status == 0, "\(result.error)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
    }

    /// `privacy epsilon` prints Opacus's ε for the case dp-accounting overstates (best order 1.3).
    @Test func epsilonMatchesOpacus() throws {
        let object = try json(["epsilon", "--noise-multiplier", "0.5", "--sampling-rate", "0.1", "--steps", "1000", "--delta", "1e-5"])
        let epsilon = try #require(object["epsilon"] as? Double)
        #expect(abs(epsilon - 136.0536968281832) <= 1e-9 * epsilon)
        #expect(object["order"] as? Double == 1.3 && object["noise_multiplier"] as? Double == 0.5)
    }

    /// `privacy calibrate` returns a noise multiplier whose ε meets the target, and `epsilon` agrees.
    @Test func calibrateRoundTrip() throws {
        let calibrated = try json(["calibrate", "--epsilon", "8", "--sampling-rate", "0.1", "--steps", "100", "--delta", "1e-5"])
        let z = try #require(calibrated["noise_multiplier"] as? Double)
        let check = try json(["epsilon", "--noise-multiplier", "\(z)", "--sampling-rate", "0.1", "--steps", "100", "--delta", "1e-5"])
        let epsilon = try #require(check["epsilon"] as? Double)
        #expect(epsilon <= 8 && epsilon > 7.99)
    }

    @Test func gaussianNoise() throws {
        let object = try json(["gaussian", "--epsilon", "1", "--delta", "1e-5", "--sensitivity", "2"])
        let noise = try #require(object["noise"] as? Double)
        #expect(abs(noise - 2 * 3.730631664679545) <= 1e-5 * noise)
    }

    @Test(arguments: [
        (["gaussian", "--epsilon", "0", "--delta", "1e-5"], "--epsilon must be a positive number"),
        (["epsilon", "--noise-multiplier", "-1", "--sampling-rate", "0.1", "--steps", "10", "--delta", "1e-5"], "--noise-multiplier must be >= 0"),
        (["epsilon", "--noise-multiplier", "1", "--sampling-rate", "0", "--steps", "10", "--delta", "1e-5"], "--sampling-rate must be in (0, 1]"),
        (["calibrate", "--epsilon", "1", "--sampling-rate", "0.1", "--steps", "100", "--delta", "2"], "--delta must be in (0, 1)"),
        (["calibrate", "--epsilon", "1e-9", "--sampling-rate", "1", "--steps", "1000000", "--delta", "1e-5"], "no noise multiplier up to 10000"),
    ])
    func badInputIsOneLine(arguments: [String], message: String) throws {
        let result = try fedtrain(["privacy"] + arguments)
        #expect(result.status == 1 && result.error.hasPrefix("fedtrain: error: \(message)"), "\(result.error)")
    }
}
