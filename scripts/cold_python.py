"""The Python side of `cargo xtask bench-cold`: a new process that predicts one photo, as a user's
script would: start the interpreter, import torch and torchvision, build ResNeXt-50, load the
state dict, preprocess (resize to 224×224, ToTensor, ImageNet normalisation: `resnext predict
--weights`'s eval transform), run the forward, print the probabilities as JSON.

    python cold_python.py --weights W.safetensors --photo P.jpg
    python cold_python.py --make-weights W.safetensors     # random torchvision weights, once
"""

import argparse
import json

import torch
import torchvision
from safetensors.torch import load_file, save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights")
    ap.add_argument("--photo")
    ap.add_argument("--make-weights")
    a = ap.parse_args()
    if a.make_weights:
        torch.manual_seed(0)
        m = torchvision.models.resnext50_32x4d(num_classes=2)
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, a.make_weights)
        return
    from PIL import Image
    from torchvision import transforms

    model = torchvision.models.resnext50_32x4d(num_classes=2)
    model.load_state_dict(load_file(a.weights))
    model.eval()
    tf = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    x = tf(Image.open(a.photo).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)[0].tolist()
    print(json.dumps({"probs": probs}))


if __name__ == "__main__":
    main()
