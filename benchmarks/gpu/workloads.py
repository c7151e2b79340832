"""The two training programs, on synthetic data: an image CNN (the article's `train.py`) and a
character-level CNN text classifier (its `char_cnn.py`, after Zhang, Zhao & LeCun 2015,
"Character-level Convolutional Networks for Text Classification", arXiv:1509.01626).

One iteration is one optimiser step on one batch. The data is random but seeded and made on
the device before the clock starts, so the benchmark times the GPU, not a data loader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from benchmarks.gpu.names import Size, Workload

POOL = 4  # distinct batches cycled through, so no step reuses the previous step's batch


@dataclass(frozen=True)
class ImageShape:
    side: int  # images are 3 x side x side
    widths: tuple[int, int, int]  # channels of the three stages
    blocks: int  # residual blocks per stage
    classes: int = 10


@dataclass(frozen=True)
class TextShape:
    length: int  # characters per sample
    features: int  # conv feature maps
    hidden: int  # units of the two fully connected layers
    alphabet: int = 70  # Zhang et al.: 26 letters, 10 digits, 33 other characters, newline
    classes: int = 4  # AG News, the paper's first data set


# "standard" is what the nodes run; "tiny" runs on a laptop CPU in seconds (tests).
IMAGE_SHAPES: dict[Size, ImageShape] = {
    "tiny": ImageShape(side=32, widths=(8, 16, 32), blocks=1),
    # A CIFAR-style ResNet of ~2.8 M parameters; 32 x 32 keeps batch 128 inside the 750 Ti's 2 GB.
    "standard": ImageShape(side=32, widths=(64, 128, 256), blocks=2),
}
TEXT_SHAPES: dict[Size, TextShape] = {
    "tiny": TextShape(length=256, features=32, hidden=64),
    "standard": TextShape(length=1014, features=256, hidden=1024),  # the paper's "small" model
}


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def image_cnn(shape: ImageShape) -> nn.Module:
    """A small ResNet: stem, three stages (the last two halve the resolution), pool, classifier."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, shape.widths[0], 3, 1, 1, bias=False),
        nn.BatchNorm2d(shape.widths[0]),
        nn.ReLU(inplace=True),
    ]
    cin = shape.widths[0]
    for stage, width in enumerate(shape.widths):
        for block in range(shape.blocks):
            layers.append(BasicBlock(cin, width, 2 if stage > 0 and block == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, shape.classes)]
    return nn.Sequential(*layers)


def _text_features_length(length: int) -> int:
    # conv7, pool3, conv7, pool3, four conv3, pool3 (no padding), as in the paper
    for kernel, pool in ((7, 3), (7, 3), (3, 1), (3, 1), (3, 1), (3, 3)):
        length = (length - kernel + 1) // pool
    return length


def char_cnn(shape: TextShape) -> nn.Module:
    """Zhang et al.'s six convolutions and three fully connected layers over one-hot characters."""
    f = shape.features
    convs: list[nn.Module] = []
    cin = shape.alphabet
    for kernel, pool in ((7, 3), (7, 3), (3, 1), (3, 1), (3, 1), (3, 3)):
        convs += [nn.Conv1d(cin, f, kernel), nn.ReLU(inplace=True)]
        if pool > 1:
            convs.append(nn.MaxPool1d(pool))
        cin = f
    return nn.Sequential(
        *convs,
        nn.Flatten(),
        nn.Linear(f * _text_features_length(shape.length), shape.hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(shape.hidden, shape.hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(shape.hidden, shape.classes),
    )


@dataclass
class TrainingStep:
    """`step(i)` runs iteration i and returns its loss, still on the device (reading it would
    synchronise every step)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    inputs: list[Tensor]
    targets: list[Tensor]
    loss_fn: Callable[[Tensor, Tensor], Tensor]

    def __call__(self, i: int) -> Tensor:
        x, y = self.inputs[i % len(self.inputs)], self.targets[i % len(self.targets)]
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(x), y)
        torch.autograd.backward(loss)
        self.optimizer.step()
        return loss.detach()


def build(workload: Workload, size: Size, batch_size: int, device: torch.device, seed: int) -> TrainingStep:
    """The model, optimiser and synthetic batches of one workload, seeded and on `device`."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # weight initialisation and dropout masks
    inputs: list[Tensor] = []
    targets: list[Tensor] = []
    if workload == "image-cnn":
        ishape = IMAGE_SHAPES[size]
        model = image_cnn(ishape)
        for _ in range(POOL):
            inputs.append(torch.randn(batch_size, 3, ishape.side, ishape.side, generator=gen))
            targets.append(torch.randint(ishape.classes, (batch_size,), generator=gen))
    else:
        tshape = TEXT_SHAPES[size]
        model = char_cnn(tshape)
        for _ in range(POOL):
            chars = torch.randint(tshape.alphabet, (batch_size, tshape.length), generator=gen)
            one_hot = nn.functional.one_hot(chars, tshape.alphabet).to(torch.float32)
            inputs.append(one_hot.transpose(1, 2).contiguous())  # (batch, alphabet, length)
            targets.append(torch.randint(tshape.classes, (batch_size,), generator=gen))
    model = model.to(device).train()
    # Zhang et al. train with SGD, momentum 0.9, learning rate 0.01; the image CNN uses the same.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return TrainingStep(
        model=model,
        optimizer=optimizer,
        inputs=[x.to(device) for x in inputs],
        targets=[y.to(device) for y in targets],
        loss_fn=nn.functional.cross_entropy,
    )
