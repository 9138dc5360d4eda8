"""torchvision's ImageFolder + single-process DataLoader throughput, the baseline of
`cargo xtask bench-data` (the original tutorial's pipeline: batch 32, shuffled, num_workers=0).

usage: python bench_torchvision_data.py ROOT {eval,train} EPOCHS [SIZE]
       python bench_torchvision_data.py --make-large SRC DST WIDTH HEIGHT
Prints `throughput: N img/s`."""
import sys
import time


def make_large(src, dst, width, height):
    import os
    from PIL import Image
    for cls in sorted(os.listdir(src)):
        if not os.path.isdir(os.path.join(src, cls)):
            continue
        os.makedirs(os.path.join(dst, cls), exist_ok=True)
        for name in sorted(os.listdir(os.path.join(src, cls))):
            out = os.path.join(dst, cls, os.path.splitext(name)[0] + ".jpg")
            if os.path.exists(out):
                continue
            im = Image.open(os.path.join(src, cls, name)).convert("RGB")
            im.resize((width, height), Image.BICUBIC).save(out, quality=90)


def bench(root, kind, epochs, size):
    import torch
    from torchvision import datasets, transforms as T
    torch.set_num_threads(1)
    norm = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    if kind == "eval":
        tf = T.Compose([T.Resize([size, size]), T.ToTensor(), norm])
    else:
        tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    ds = datasets.ImageFolder(root, transform=tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=0)
    n = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x, _y in dl:
            n += x.shape[0]
    dt = time.perf_counter() - start
    print(f"images: {n} in {dt:.3f} s")
    print(f"throughput: {n / dt:.1f} img/s")


if __name__ == "__main__":
    if sys.argv[1] == "--make-large":
        make_large(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        bench(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 224)
