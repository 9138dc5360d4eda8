"""Makes the real-model `torch.save` fixtures of crates/resnext-model/tests/pth_parity.rs, in
crates/resnext-model/tests/fixtures/torch/ (committed; the tests never run Python):

    ~/.cache/resnext/torch-2.13.0/bin/pip install torchvision==0.28.0 safetensors
    ~/.cache/resnext/torch-2.13.0/bin/python scripts/make_pth_model_fixtures.py

The model is the tiny torchvision ResNeXt of tests/fixtures/torchvision/tiny_resnext.safetensors
(ResNet(Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=4, num_classes=3), bf16-exact
values; made by make_torchvision_fixtures.py), saved two ways:

- tiny_resnext_legacy_bf16.pth: the legacy format (`_use_new_zipfile_serialization=False`), an
  OrderedDict with `_metadata` (as `model.state_dict()` returns it), bfloat16 storages.
- tiny_resnext_zip_fp16_wrapped.pth: the zip format, float16 storages, wrapped as
  `{"state_dict": {"module." + name: tensor}, "epoch": 7}` (a DataParallel/DDP checkpoint).
- tiny_input.png: a 64x64 RGB photo-like PNG.
- tiny_resnext_pth_io.safetensors: `input` (the PNG through ToTensor and ImageNet Normalize,
  [1, 3, 64, 64]) and torchvision's eval logits after `torch.load` + `load_state_dict` of each
  file: `logits_legacy_bf16`, `logits_zip_fp16`.
"""

import collections
import os

import torch
import torchvision.transforms as T
from PIL import Image
from safetensors.torch import load_file, save_file
from torchvision.models.resnet import Bottleneck, ResNet

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "crates", "resnext-model", "tests", "fixtures")
OUT = os.path.join(FIX, "torch")


def model():
    return ResNet(Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=4, num_classes=3)


def logits(state, x):
    m = model()
    m.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    m.eval()
    with torch.no_grad():
        return m(x)


def main():
    sd = load_file(os.path.join(FIX, "torchvision", "tiny_resnext.safetensors"))
    order = list(model().state_dict().keys())
    meta = model().state_dict()._metadata

    legacy = collections.OrderedDict((k, sd[k].to(torch.bfloat16) if sd[k].is_floating_point() else sd[k]) for k in order)
    legacy._metadata = meta
    legacy_path = os.path.join(OUT, "tiny_resnext_legacy_bf16.pth")
    torch.save(legacy, legacy_path, _use_new_zipfile_serialization=False)

    wrapped = {
        "state_dict": collections.OrderedDict(
            ("module." + k, sd[k].to(torch.float16) if sd[k].is_floating_point() else sd[k]) for k in order
        ),
        "epoch": 7,
    }
    zip_path = os.path.join(OUT, "tiny_resnext_zip_fp16_wrapped.pth")
    torch.save(wrapped, zip_path)

    g = torch.Generator().manual_seed(5)
    base = torch.rand(3, 8, 8, generator=g)
    smooth = torch.nn.functional.interpolate(base[None], size=(64, 64), mode="bilinear", align_corners=False)[0]
    noise = torch.rand(3, 64, 64, generator=g) * 0.15
    pixels = ((smooth * 0.85 + noise).clamp(0, 1) * 255).round().to(torch.uint8)
    png = os.path.join(OUT, "tiny_input.png")
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(png)

    pre = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    x = pre(Image.open(png).convert("RGB"))[None]

    # what each file reads back as, through torch.load (weights_only, as recommended)
    l_state = torch.load(legacy_path, weights_only=True)
    z_state = {k[len("module."):]: v for k, v in torch.load(zip_path, weights_only=True)["state_dict"].items()}
    save_file(
        {
            "input": x.contiguous(),
            "logits_legacy_bf16": logits(l_state, x).contiguous(),
            "logits_zip_fp16": logits(z_state, x).contiguous(),
        },
        os.path.join(OUT, "tiny_resnext_pth_io.safetensors"),
    )


if __name__ == "__main__":
    main()
