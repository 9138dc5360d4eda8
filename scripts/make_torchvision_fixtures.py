"""Makes the torchvision reference fixtures the parity tests read, in
crates/resnext-model/tests/fixtures/torchvision/ (committed; tests never run Python).

Run with the setup venv plus torchvision and safetensors:
    ~/.cache/resnext/torch-2.13.0/bin/pip install torchvision==0.28.0 safetensors
    ~/.cache/resnext/torch-2.13.0/bin/python scripts/make_torchvision_fixtures.py

- tiny_resnext.safetensors: the state_dict of torchvision's ResNet(Bottleneck, [1, 1, 1, 1],
  groups=4, width_per_group=4, num_classes=3) after torch.manual_seed(1234), with every
  BatchNorm's weight, bias, running mean and running var randomised (so eval-mode BatchNorm is not
  the identity). Every float is rounded to bfloat16 and stored as bfloat16, which halves the file;
  the model computes in float32 from exactly those values, so parity is unaffected.
- tiny_resnext_io.safetensors: `input` [2, 3, 64, 64], `logits_eval`, `logits_train` (train mode,
  after the eval forward) and bn1's running statistics after that train forward.
- tiny_resnext.json: what the tiny model is.
- <arch>.keys.json: every state_dict entry (name, shape, dtype) of the 1000-class torchvision
  models, and their parameter counts.
"""

import json
import os

import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models.resnet import Bottleneck, ResNet

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "resnext-model", "tests", "fixtures", "torchvision",
)


def tiny():
    torch.manual_seed(1234)
    model = ResNet(Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=4, num_classes=3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.to(torch.bfloat16).to(torch.float32))
    state = {
        k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, os.path.join(OUT, "tiny_resnext.safetensors"))
    torch.manual_seed(99)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        logits_eval = model(x)
    model.train()
    with torch.no_grad():
        logits_train = model(x)
    save_file(
        {
            "input": x,
            "logits_eval": logits_eval,
            "logits_train": logits_train,
            "bn1_running_mean_after_train_forward": model.bn1.running_mean.clone(),
            "bn1_running_var_after_train_forward": model.bn1.running_var.clone(),
        },
        os.path.join(OUT, "tiny_resnext_io.safetensors"),
    )
    params = sum(p.numel() for p in model.parameters())
    with open(os.path.join(OUT, "tiny_resnext.json"), "w") as f:
        json.dump(
            {
                "builder": "torchvision.models.resnet.ResNet(Bottleneck, layers=[1,1,1,1], groups=4, width_per_group=4, num_classes=3)",
                "layers": [1, 1, 1, 1],
                "groups": 4,
                "width_per_group": 4,
                "num_classes": 3,
                "parameters": params,
                "input_shape": [2, 3, 64, 64],
                "storage": "floats rounded to and stored as bfloat16",
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
            },
            f,
            indent=2,
        )


def keys():
    for name in ["resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "resnet50"]:
        model = getattr(torchvision.models, name)(weights=None)
        tensors = [
            {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
            for k, v in model.state_dict().items()
        ]
        with open(os.path.join(OUT, f"{name}.keys.json"), "w") as f:
            json.dump(
                {
                    "model": name,
                    "num_classes": 1000,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "tensors": tensors,
                },
                f,
            )


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    tiny()
    keys()
