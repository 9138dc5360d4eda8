"""Why float32 equivalence tests of BatchNorm networks fail on some CPUs: the synchronised-BatchNorm
test's tiny network (torchvision's ResNet with Bottleneck blocks [1, 1, 1, 1], 2 groups of width 4,
3 classes; the same function as ours), one training step's gradients in float32 against float64,
per random draw, with the count of ReLU inputs and max-pool windows whose decision (sign, argmax)
differs between the two. Draws with a flipped decision differ by orders of magnitude more.

    ~/.cache/resnext/torch-2.13.0/bin/python scripts/sync_bn_flips.py [DRAWS]

(Python's `import torch` needs the CUDA install: `cargo xtask setup --cuda`.)
"""
import sys, copy, torch
import torch.nn.functional as F
from torchvision.models.resnet import ResNet, Bottleneck
torch.set_num_threads(1)
def run(model, x, y):
    model.train()
    acts = []
    def relu_in(m, i, o):
        acts.append(("relu", i[0].detach()))
    def pool_in(m, i, o):
        _, idx = F.max_pool2d(i[0].detach(), 3, 2, 1, return_indices=True)
        acts.append(("pool", idx))
    hs = [m.register_forward_hook(relu_in) for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    hs.append(model.maxpool.register_forward_hook(pool_in))
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    for h in hs:
        h.remove()
    return {n: p.grad.detach().double() for n, p in model.named_parameters()}, acts
n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
stats = {True: [], False: []}
for seed in range(n):
    torch.manual_seed(seed)
    net = ResNet(Bottleneck, [1, 1, 1, 1], groups=2, width_per_group=4, num_classes=3)
    x = torch.randn(8, 3, 32, 32) * 2 + 0.5
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1])
    g64, a64 = run(copy.deepcopy(net).double(), x.double(), y)
    g32, a32 = run(copy.deepcopy(net), x, y)
    flips = 0
    for (k, u), (_, v) in zip(a32, a64):
        if k == "relu":
            flips += int(((u > 0) != (v > 0)).sum())
        else:
            flips += int((u != v).sum())
    rel = max(((g32[k] - g64[k]).abs().max() / g64[k].abs().max()).item() for k in g64)
    b = ((g32["bn1.bias"] - g64["bn1.bias"]).abs().max() / g64["bn1.bias"].abs().max()).item()
    stats[flips > 0].append((b, rel, flips, seed))
for flipped in (False, True):
    s = stats[flipped]
    if not s:
        print(f"decision flips {flipped}: no draws"); continue
    bs = sorted(v[0] for v in s); rs = sorted(v[1] for v in s)
    print(f"draws {'with' if flipped else 'without'} a flipped ReLU/max-pool decision: {len(s)} of {n}; "
          f"bn1.bias relative difference median {bs[len(bs)//2]:.1e} max {bs[-1]:.1e}; worst parameter median {rs[len(rs)//2]:.1e} max {rs[-1]:.1e}")
for v in sorted(stats[True], reverse=True)[:5]:
    print(f"  seed {v[3]}: {v[2]} flips, bn1.bias {v[0]:.1e}, worst {v[1]:.1e}")
