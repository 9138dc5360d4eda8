"""Are ResNeXt-50's 1x1 convolutions faster as plain matrix products? bf16, channels-last,
batch 16, forward + backward, for the ten 1x1 shapes of ResNeXt-50 (32x4d), on libtorch's oneDNN
convolution and on torch.mm; then a square 4096 bf16 GEMM as the machine's peak.

usage: python bench_conv1x1_mm.py   (with the setup venv: ~/.cache/resnext/torch-2.13.0/bin/python)
"""
import torch, time
torch.manual_seed(0)
shapes=[(16,64,56,128),(16,128,56,256),(16,256,56,128),(16,256,56,256),(16,512,28,256),(16,256,28,512),(16,1024,14,512),(16,512,14,1024),(16,2048,7,1024),(16,1024,7,2048)]
def bench(f, n=5):
    f(); t=time.perf_counter()
    for _ in range(n): f()
    return (time.perf_counter()-t)/n
tc=tm=0
for (N,C,H,O) in shapes:
    x=torch.randn(N,C,H,H).to(memory_format=torch.channels_last).bfloat16().requires_grad_()
    w=torch.randn(O,C,1,1).bfloat16().to(memory_format=torch.channels_last).requires_grad_()
    def conv():
        y=torch.nn.functional.conv2d(x,w); y.backward(torch.ones_like(y))
    def mm():
        x2=x.permute(0,2,3,1).reshape(-1,C)
        y=torch.mm(x2,w.view(O,C).t()).view(N,H,H,O).permute(0,3,1,2)
        y.backward(torch.ones_like(y))
    a=bench(conv); b=bench(mm)
    fl=3*2*N*H*H*C*O
    tc+=a; tm+=b
    print(N,C,H,O, f"conv {a*1e3:.1f} ms {fl/a/1e9:.0f} GF/s  mm {b*1e3:.1f} ms {fl/b/1e9:.0f} GF/s")
print(f"total conv {tc*1e3:.0f} mm {tm*1e3:.0f}")
a=torch.randn(4096,4096).bfloat16(); b=torch.randn(4096,4096).bfloat16()
t=bench(lambda: torch.mm(a,b),3); print("square mm", 2*4096**3/t/1e9, "GF/s")
