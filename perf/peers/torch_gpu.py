#!/usr/bin/env python3
"""PyTorch (eager) on one CUDA GPU: the recsys workloads W1-W8, timed the way `recsys bench --device gpu` times them.

Shapes follow the CPU peer (26 tables x 100,000 x 64, DLRM 13-512-256-64 / 415-512-512-256-1, ...). GPUs need bigger
batches to fill: every batch-dependent workload runs at batch 4096 (the CPU peer's size, for continuity) and at
--big-batch (default 65,536). Timing: CUDA events around each step after warm-up (>= 5 steps and >= 0.5 s), then
n = clamp(2 s / step, 10, 2000) timed steps; the median is reported. FP32 throughout: TF32 is switched off for
matmuls and cuDNN so the numbers compare with an FP32 engine. Also measured: device-to-device copy bandwidth
(1 GiB) and FP32 SGEMM rate (8192^3), the ceilings the engine's GB/s and GFLOP/s are read against.

    python3 perf/peers/torch_gpu.py --out torch_gpu.json [--big-batch 65536] [--workloads W1,W2,...] [--quick]

Output: JSON {"harness", "generated_utc", "device", "torch", "ceilings", "summary": {metric: value}}; metric names
match the engine's `recsys bench --json` keys (e.g. W6_dlrm_train_fused_b65536_examples_per_s).
"""
import argparse
import datetime
import json
import math
import statistics
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

TABLES, ROWS, DIM, DENSE = 26, 100_000, 64, 13


def measure(step, min_warm=5, warm_s=0.5, target_s=2.0, lo=10, hi=2000):
    """Median milliseconds of step() timed with CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    warm_ms, i, last = 0.0, 0, 1.0
    while i < min_warm or warm_ms < warm_s * 1e3:
        start.record(); step(i); end.record(); torch.cuda.synchronize()
        last = start.elapsed_time(end); warm_ms += last; i += 1
    n = int(min(hi, max(lo, math.ceil(target_s * 1e3 / max(last, 1e-3)))))
    times = []
    for j in range(n):
        start.record(); step(i + j); end.record(); torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def dlrm_init(m):
    if isinstance(m, nn.Linear):
        fan_in, fan_out = m.in_features, m.out_features
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (fan_in + fan_out)))
        nn.init.normal_(m.bias, 0.0, math.sqrt(1.0 / fan_out))


def mlp(sizes, last_relu):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Dlrm(nn.Module):
    """DLRM with one fused table (ids shifted by t * ROWS), bags in table-major order."""

    def __init__(self, rows):
        super().__init__()
        self.rows = rows
        self.bottom = mlp([DENSE, 512, 256, DIM], True)
        self.emb = nn.EmbeddingBag(TABLES * rows, DIM, mode="sum", sparse=True)
        self.top = mlp([DIM + TABLES * (TABLES + 1) // 2, 512, 512, 256, 1], False)
        self.apply(dlrm_init)
        with torch.no_grad():
            b = math.sqrt(1.0 / rows)
            self.emb.weight.uniform_(-b, b)
        self.register_buffer("li", torch.tril_indices(TABLES + 1, TABLES + 1, offset=-1))

    def forward(self, dense, ids, offsets):
        batch = dense.shape[0]
        x = self.bottom(dense)
        e = self.emb(ids, offsets).view(TABLES, batch, DIM).transpose(0, 1)
        t = torch.cat([x.unsqueeze(1), e], dim=1)
        z = torch.bmm(t, t.transpose(1, 2))[:, self.li[0], self.li[1]]
        return self.top(torch.cat([x, z], dim=1)).squeeze(1)


def criteo_batches(batch, rows, dev, k=4, pf=1):
    out = []
    shift = (torch.arange(TABLES, device=dev) * rows).view(TABLES, 1)
    for _ in range(k):
        dense = torch.log1p(torch.rand(batch, DENSE, device=dev) * 1000)
        ids = (torch.randint(0, rows, (TABLES, batch * pf), device=dev) + shift).view(-1)
        offsets = torch.arange(0, TABLES * batch * pf, pf, device=dev)
        labels = (torch.rand(batch, device=dev) < 0.25).float()
        out.append((dense, ids, offsets, labels))
    return out


def w1(s, dev, batches):
    for b in batches:
        emb = nn.EmbeddingBag(TABLES * ROWS, DIM, mode="sum", sparse=True).to(dev)
        opt = torch.optim.SGD(emb.parameters(), lr=0.01)
        for pf in (1, 32):
            data = criteo_batches(b, ROWS, dev, pf=pf)
            grad = torch.randn(TABLES * b, DIM, device=dev)
            lookups = TABLES * b * pf

            def fwd(i):
                with torch.no_grad():
                    emb(data[i % 4][1], data[i % 4][2])

            def train(i):
                opt.zero_grad(set_to_none=True)
                emb(data[i % 4][1], data[i % 4][2]).backward(grad)
                opt.step()

            for name, fn in (("fwd", fwd), ("train", train)):
                ms = measure(fn)
                s[f"W1_fused_pf{pf}_{name}_b{b}_Mlookups_per_s"] = lookups / ms / 1e3
                s[f"W1_fused_pf{pf}_{name}_b{b}_GBps"] = lookups * DIM * 4 / ms / 1e6


def w2(s, dev, batches):
    for b in batches:
        net = mlp([415, 512, 512, 256, 1], False).to(dev)
        net.apply(dlrm_init)
        x = torch.randn(b, 415, device=dev, requires_grad=True)
        g = torch.randn(b, 1, device=dev)

        def step(i):
            x.grad = None
            net.zero_grad(set_to_none=True)
            net(x).backward(g)

        ms = measure(step)
        flops = 3 * 2 * b * (415 * 512 + 512 * 512 + 512 * 256 + 256)
        s[f"W2_mlp_b{b}_ms"] = ms
        s[f"W2_mlp_b{b}_GFLOPs"] = flops / ms / 1e6


def w3(s, dev, batches):
    li = torch.tril_indices(TABLES + 1, TABLES + 1, offset=-1, device=dev)
    for b in batches:
        dense = torch.randn(b, DIM, device=dev, requires_grad=True)
        emb = torch.randn(b, TABLES, DIM, device=dev, requires_grad=True)
        g = torch.randn(b, DIM + li.shape[1], device=dev)

        def step(i):
            dense.grad = None; emb.grad = None
            t = torch.cat([dense.unsqueeze(1), emb], 1)
            z = torch.bmm(t, t.transpose(1, 2))[:, li[0], li[1]]
            torch.cat([dense, z], 1).backward(g)

        s[f"W3_interaction_b{b}_ms"] = measure(step)


def w4(s, dev, batches):
    d = 13 + 26 * 16
    for b in batches:
        layers = nn.ModuleList([nn.Linear(d, d) for _ in range(3)]).to(dev)
        x0 = torch.randn(b, d, device=dev, requires_grad=True)
        g = torch.randn(b, d, device=dev)

        def step(i):
            x0.grad = None
            layers.zero_grad(set_to_none=True)
            x = x0
            for l in layers:
                x = x0 * l(x) + x
            x.backward(g)

        ms = measure(step)
        s[f"W4_dcnv2_b{b}_ms"] = ms
        s[f"W4_dcnv2_b{b}_GFLOPs"] = 3 * 3 * 2 * b * d * d / ms / 1e6


def w5(s, dev, batches):
    for b in batches:
        bb = max(1, b // 4)  # the CPU peer uses batch 1024 where the others use 4096
        qkv, out, norm = nn.Linear(64, 192).to(dev), nn.Linear(64, 64).to(dev), nn.LayerNorm(64).to(dev)
        x = torch.randn(bb, 27, 64, device=dev, requires_grad=True)
        g = torch.randn(bb, 27, 64, device=dev)

        def step(i):
            x.grad = None
            for m in (qkv, out, norm):
                m.zero_grad(set_to_none=True)
            q, k, v = qkv(x).view(bb, 27, 3, 2, 32).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(bb, 27, 64)
            norm(x + out(a)).backward(g)

        s[f"W5_attention_b{bb}_ms"] = measure(step)


def w6_w8(s, dev, batches, do6, do8):
    for b in batches:
        model = Dlrm(ROWS).to(dev)
        data = criteo_batches(b, ROWS, dev)
        if do6:
            opt_dense = torch.optim.SGD([p for n, p in model.named_parameters() if not n.startswith("emb.")], lr=0.1)
            opt_emb = torch.optim.SGD(model.emb.parameters(), lr=0.1)

            def step(i):
                dense, ids, off, y = data[i % 4]
                opt_dense.zero_grad(set_to_none=True); opt_emb.zero_grad(set_to_none=True)
                F.binary_cross_entropy_with_logits(model(dense, ids, off), y).backward()
                opt_dense.step(); opt_emb.step()

            s[f"W6_dlrm_train_fused_b{b}_examples_per_s"] = b / measure(step) * 1e3
        if do8:
            def infer(i):
                dense, ids, off, _ = data[i % 4]
                with torch.inference_mode():
                    torch.sigmoid(model(dense, ids, off))

            s[f"W8_dlrm_infer_fused_b{b}_examples_per_s"] = b / measure(infer) * 1e3
    if do8:
        model = Dlrm(ROWS).to(dev)
        ones = criteo_batches(1, ROWS, dev, k=64)

        def infer1(i):
            dense, ids, off, _ = ones[i % 64]
            with torch.inference_mode():
                torch.sigmoid(model(dense, ids, off))

        s["W8_dlrm_infer_fused_b1_latency_us"] = measure(infer1) * 1e3


def w7(s, dev, points_list):
    for n in points_list:
        gen = torch.Generator(device=dev).manual_seed(7)
        centers = torch.randn(256, 64, device=dev, generator=gen) * 4
        x = centers[torch.randint(0, 256, (n,), device=dev, generator=gen)] + torch.randn(n, 64, device=dev, generator=gen)
        c = x[:256].clone()

        def step(i):
            nonlocal c
            dist = torch.addmm((c * c).sum(1), x, c.t(), alpha=-2)
            a = dist.argmin(1)
            sums = torch.zeros_like(c).index_add_(0, a, x)
            counts = torch.bincount(a, minlength=256).float().unsqueeze(1)
            c = torch.where(counts > 0, sums / counts.clamp(min=1), c)

        ms = measure(step)
        s[f"W7_kmeans_step_n{n}_ms"] = ms
        s[f"W7_kmeans_step_n{n}_GFLOPs"] = 2 * n * 256 * 64 / ms / 1e6


def ceilings(dev):
    src = torch.empty(256 * 1024 * 1024, device=dev)
    dst = torch.empty_like(src)
    ms = measure(lambda i: dst.copy_(src))
    a = torch.randn(8192, 8192, device=dev)
    b = torch.randn(8192, 8192, device=dev)
    gemm_ms = measure(lambda i: torch.mm(a, b))
    return {"copy_1GiB_GBps": 2 * src.numel() * 4 / ms / 1e6, "sgemm_8192_fp32_GFLOPs": 2 * 8192 ** 3 / gemm_ms / 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the JSON here (it also goes to stdout)")
    ap.add_argument("--big-batch", type=int, default=65536)
    ap.add_argument("--workloads", default="W1,W2,W3,W4,W5,W6,W7,W8")
    ap.add_argument("--quick", action="store_true", help="small batches and short timing: a smoke test")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_gpu.py: no CUDA device visible to PyTorch", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(42)
    dev = torch.device("cuda")
    batches = [256, 1024] if args.quick else [4096, args.big_batch]
    wl = set(args.workloads.split(","))
    s = {}
    if "W1" in wl: w1(s, dev, batches)
    if "W2" in wl: w2(s, dev, batches)
    if "W3" in wl: w3(s, dev, batches)
    if "W4" in wl: w4(s, dev, batches)
    if "W5" in wl: w5(s, dev, batches)
    if "W6" in wl or "W8" in wl: w6_w8(s, dev, batches, "W6" in wl, "W8" in wl)
    if "W7" in wl: w7(s, dev, [20_000] if args.quick else [200_000, 2_000_000])
    result = {
        "harness": "perf/peers/torch_gpu.py (PyTorch eager, CUDA, FP32, TF32 off)",
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "batches": batches,
        "ceilings": ceilings(dev),
        "summary": s,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
