"""PyTorch's side of `cargo xtask bench`: the same measurement as `resnext bench`, on torchvision's
model. A train step is forward + cross-entropy + backward + Adam; eval is a no_grad forward.

usage: python bench_torch.py {train,eval} ARCH BATCH {fp32,bf16,fp16} {nchw,channels_last} STEPS [WARMUP] [--compile] [--device cuda]
With --compile (eval), the model is `torch.compile`d first; compilation happens in the warmup and
is not timed (its seconds are printed). Prints `peak memory (RSS): N MiB` and `throughput: N img/s`. `--device cuda` runs on the GPU
(`cargo xtask gpu-check`), fp16 there only; each step ends with a synchronisation."""
import resource
import sys
import time

import torch
import torchvision


def main():
    argv = sys.argv[1:]
    device = "cpu"
    if "--device" in argv:
        i = argv.index("--device")
        device = argv[i + 1]
        del argv[i : i + 2]
    args = [a for a in argv if a != "--compile"]
    compile_model = "--compile" in argv
    mode, arch, batch, precision, fmt, steps = args[:6]
    warmup = int(args[6]) if len(args) > 6 else 1
    batch, steps = int(batch), int(steps)
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(num_classes=2)
    x = torch.randn(batch, 3, 224, 224)
    y = torch.randint(0, 2, (batch,))
    model, x, y = model.to(device), x.to(device), y.to(device)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    if fmt == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    if compile_model:
        model.eval()
        model = torch.compile(model)
    loss_fn = torch.nn.CrossEntropyLoss()
    use_amp = precision in ("bf16", "fp16")
    amp_dtype = torch.float16 if precision == "fp16" else torch.bfloat16

    def sync():
        if kind == "cuda":
            torch.cuda.synchronize()

    def step():
        if mode == "train":
            model.train()
            with torch.autocast(kind, dtype=amp_dtype, enabled=use_amp):
                loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            model.eval()
            with torch.no_grad(), torch.autocast(kind, dtype=amp_dtype, enabled=use_amp):
                model(x).float().sum().item()
        sync()

    start = time.perf_counter()
    for _ in range(max(warmup, 2 if compile_model else warmup)):
        step()
    if compile_model:
        print(f"compile and warmup: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{mode} {arch} batch {batch} {precision} {fmt}: {steps} steps in {dt:.2f} s")
    print(f"peak memory (RSS): {peak:.0f} MiB")
    print(f"throughput: {batch * steps / dt:.2f} img/s")


if __name__ == "__main__":
    main()
