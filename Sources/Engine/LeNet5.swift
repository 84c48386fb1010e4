/// LeNet-5 as in `scripts/torch_lenet5.py`: conv 5×5 → ReLU → maxpool 2 → conv 6→16 5×5 → ReLU
/// → maxpool 2 → fc 400-120-84-10, with the PyTorch module names `conv1, conv2, fc1, fc2, fc3`.
///
/// The stack pools before the ReLU: `relu(maxpool(x)) = maxpool(relu(x))` exactly (ReLU is
/// monotonic), and the gradients agree too (the same first maximum wins; a window with no
/// positive value passes no gradient either way), while the ReLU touches 4× fewer values.
public enum LeNet5 {
    /// Builds LeNet-5 for `inputChannels × inputSize × inputSize` images. `conv1` pads so that its
    /// output is 28×28 (padding 2 for 28×28 input, 0 for 32×32), which makes `fc1` 400 wide.
    public static func make(inputChannels: Int, inputSize: Int, classes: Int = 10) -> Sequential {
        let padding = max(0, (32 - inputSize) / 2)
        let conv1 = Conv2D(inputChannels: inputChannels, outputChannels: 6, kernelSize: 5, padding: padding,
                           inputHeight: inputSize, inputWidth: inputSize)
        let pool1 = MaxPool2D(channels: 6, inputHeight: conv1.outputShape[1], inputWidth: conv1.outputShape[2], kernelSize: 2)
        let conv2 = Conv2D(inputChannels: 6, outputChannels: 16, kernelSize: 5,
                           inputHeight: pool1.outputShape[1], inputWidth: pool1.outputShape[2])
        let pool2 = MaxPool2D(channels: 16, inputHeight: conv2.outputShape[1], inputWidth: conv2.outputShape[2], kernelSize: 2)
        let flatten = Flatten(shape: pool2.outputShape)
        return Sequential([
            ("conv1", conv1), (nil, pool1), (nil, ReLU(shape: pool1.outputShape)),
            ("conv2", conv2), (nil, pool2), (nil, ReLU(shape: pool2.outputShape)),
            (nil, flatten),
            ("fc1", Dense(inputFeatures: flatten.outputCount, outputFeatures: 120)), (nil, ReLU(shape: [120])),
            ("fc2", Dense(inputFeatures: 120, outputFeatures: 84)), (nil, ReLU(shape: [84])),
            ("fc3", Dense(inputFeatures: 84, outputFeatures: classes)),
        ])
    }

    /// The grayscale model for 1×28×28 images (MNIST, Fashion-MNIST).
    public static var grayscale: Sequential { make(inputChannels: 1, inputSize: 28) }
    /// The RGB model for 3×32×32 images (CIFAR-10).
    public static var rgb: Sequential { make(inputChannels: 3, inputSize: 32) }
}
