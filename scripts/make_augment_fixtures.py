"""Makes the TrivialAugmentWide / RandAugment fixtures that crates/resnext-data/tests/augment.rs
reads, in crates/resnext-data/tests/fixtures/augment/ (committed; tests never run Python).

Run with the setup venv (torch 2.13, torchvision 0.28):
    ~/.cache/resnext/torch-2.13.0/bin/python scripts/make_augment_fixtures.py

- input.rgb: a 32x24 (width x height) RGB image, 8-bit, row-major interleaved (HWC), generated
  deterministically below: a red gradient with pure 0 and 255 pixels, green noise over the whole
  range, blue confined to 40..200 (so autocontrast and equalize have work to do), and a flat block.
- odd.rgb: a 23x16 image in the same layout, where the geometric operations sample exact half
  pixels (grid_sample rounds them half to even), with a flat blue channel.
- stress.rgb: a 97x80 image for two cases that decide details of torch's arithmetic (below).
- cases.bin: the outputs, each the size of its input in the same layout, one after another.
- index.json: the image size; torchvision's magnitude tables (TrivialAugmentWide with 31 bins,
  RandAugment with 31 bins for this image size), each value the float32 that torchvision reads,
  written as a float; and, for each case, the operation, the magnitude given to the operation
  (sign included), which table and bin it came from, its input and its offset in cases.bin.

Every case is torchvision.transforms.autoaugment._apply_op on a uint8 CHW tensor with the
transforms' defaults (nearest interpolation, fill None), the very call RandAugment and
TrivialAugmentWide make, so the arguments (degrees(atan(m)) shears about the corner, int
translations, -angle rotation about the centre, 1 + m factors) are theirs.
"""

import json
import os

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import RandAugment, TrivialAugmentWide, _apply_op

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "resnext-data", "tests", "fixtures", "augment",
)
W, H = 32, 24
OW, OH = 23, 16
SW, SH = 97, 80
BINS = 31


def image():
    """HWC uint8, from a 32-bit LCG (no library randomness)."""
    state = 12345

    def rand():
        nonlocal state
        state = (state * 1103515245 + 12345) % (1 << 31)
        return state >> 16

    px = []
    for y in range(H):
        for x in range(W):
            r = min(255, max(0, x * 9 - 20 + y % 3))
            g = rand() % 256
            b = 40 + (x * 5 + y * 3 + rand() % 23) % 161
            if 20 <= x < 26 and 4 <= y < 10:
                r, g, b = 200, 200, 200
            px.append((r, g, b))
    return torch.tensor(px, dtype=torch.uint8).reshape(H, W, 3)


def odd():
    """23x16 HWC uint8: an odd width, a flat blue channel."""
    px = [((x * 11 + y * 5) % 256, (x * y * 3 + 17) % 256, 77) for y in range(OH) for x in range(OW)]
    return torch.tensor(px, dtype=torch.uint8).reshape(OH, OW, 3)


def stress():
    """97x80 HWC uint8: a red gradient to 252, LCG noise in green, a blue ramp."""
    state = 777

    def rand():
        nonlocal state
        state = (state * 1103515245 + 12345) % (1 << 31)
        return state >> 16

    px = [(x * 255 // SW, rand() % 256, (x + y) * 3 % 200 + 30) for y in range(SH) for x in range(SW)]
    return torch.tensor(px, dtype=torch.uint8).reshape(SH, SW, 3)


def tables():
    wide = TrivialAugmentWide()._augmentation_space(BINS)
    rand = RandAugment()._augmentation_space(BINS, (H, W))
    out = {}
    for name, space in (("wide", wide), ("rand", rand)):
        t = {}
        for op, (mags, signed) in space.items():
            if mags.ndim == 0:
                continue
            t[op] = [float(v) if mags.is_floating_point() else int(v) for v in mags.tolist()]
        out[name] = t
    return out, wide, rand


def main():
    os.makedirs(OUT, exist_ok=True)
    hwc = image()
    chw = hwc.permute(2, 0, 1).contiguous()
    tabs, wide, rand = tables()
    cases = []
    blobs = []

    offset = 0

    def add(op, magnitude, table, bin_, img=chw, name="main"):
        nonlocal offset
        out = _apply_op(img, op, magnitude, interpolation=InterpolationMode.NEAREST, fill=None)
        assert out.dtype == torch.uint8 and out.shape == img.shape
        cases.append({
            "input": name, "op": op, "magnitude": magnitude, "table": table, "bin": bin_,
            "offset": offset,
        })
        offset += out.numel()
        blobs.append(out.permute(1, 2, 0).contiguous().numpy().tobytes())

    signed_bins = [5, 17, 30]
    for op, (mags, signed) in wide.items():
        if mags.ndim == 0:
            add(op, 0.0, "none", None)
        elif signed:
            # translations are integer shifts: one bin says as much as three
            for b in [17] if op.startswith("Translate") else signed_bins:
                m = float(mags[b].item())
                add(op, m, "wide", b)
                add(op, -m, "wide", b)
        elif op == "Posterize":
            for b in [0, 3, 8, 13, 18, 23, 28, 30]:
                add(op, float(mags[b].item()), "wide", b)
        else:  # Solarize
            for b in [0, 1, 7, 15, 24, 30]:
                add(op, float(mags[b].item()), "wide", b)
    # an odd-sized image (sampling points on exact half pixels, where grid_sample rounds half to
    # even) with a flat blue channel (autocontrast's flat branch)
    ochw = odd().permute(2, 0, 1).contiguous()
    for op, bins in [("Rotate", [10, 20, 30]), ("ShearX", [15, 30]), ("ShearY", [15, 30]),
                     ("TranslateX", [7]), ("TranslateY", [7])]:
        for b in bins:
            m = float(wide[op][0][b].item())
            add(op, m, "wide", b, ochw, "odd")
            add(op, -m, "wide", b, ochw, "odd")
    for op in ["AutoContrast", "Equalize", "Contrast", "Sharpness"]:
        m = float(wide[op][0][22].item()) if wide[op][0].ndim else 0.0
        add(op, m, "wide" if m else "none", 22 if m else None, ochw, "odd")
    # a 97x80 image where two details decide pixels: at this angle one sampling point falls on
    # a half pixel only through grid_sample's fused multiply-add (x + 1)·(W/2) − 0.5 (found by
    # searching random angles), and red tops out at 252, where autocontrast's 255 / (max − min),
    # a reciprocal times 255 in torch, truncates otherwise than a division
    schw = stress().permute(2, 0, 1).contiguous()
    add("Rotate", -36.87620354312017, "search", None, schw, "stress")
    add("AutoContrast", 0.0, "none", None, schw, "stress")
    # RandAugment's default magnitude (9) for every op with a magnitude, one sign each
    for k, (op, (mags, signed)) in enumerate(rand.items()):
        if mags.ndim == 0:
            continue
        m = float(mags[9].item())
        add(op, -m if signed and k % 2 else m, "rand", 9)

    with open(os.path.join(OUT, "input.rgb"), "wb") as f:
        f.write(hwc.numpy().tobytes())
    with open(os.path.join(OUT, "odd.rgb"), "wb") as f:
        f.write(odd().numpy().tobytes())
    with open(os.path.join(OUT, "stress.rgb"), "wb") as f:
        f.write(stress().numpy().tobytes())
    with open(os.path.join(OUT, "cases.bin"), "wb") as f:
        f.write(b"".join(blobs))
    index = {
        "width": W, "height": H, "bins": BINS,
        "inputs": {"main": ["input.rgb", W, H], "odd": ["odd.rgb", OW, OH],
                   "stress": ["stress.rgb", SW, SH]},
        "torch": torch.__version__, "tables": tabs, "cases": cases,
    }
    # one line per table and per case: small and readable in a diff
    text = json.dumps({k: v for k, v in index.items() if k not in ("tables", "cases")}, indent=1)
    lines = [text[:-2] + ","]
    lines.append(' "tables": {')
    lines.append(",\n".join(
        f'  "{name}": {{' + ", ".join(f'"{op}": {json.dumps(v)}' for op, v in t.items()) + "}"
        for name, t in tabs.items()))
    lines.append(" },")
    lines.append(' "cases": [')
    lines.append(",\n".join("  " + json.dumps(c) for c in cases))
    lines.append(" ]\n}\n")
    with open(os.path.join(OUT, "index.json"), "w") as f:
        f.write("\n".join(lines))
    print(f"{len(cases)} cases, {sum(map(len, blobs))} bytes")


if __name__ == "__main__":
    main()
