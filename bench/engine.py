"""Engine benchmark: runs per second, sequential vs vectorized seeds, measured side by side.

    python bench/engine.py                      # CPU: 1, 16, 64, 256 seeds
    python bench/engine.py --device cuda --seeds 1024 4096

The workload is the issue's: adding, T=50, hidden 64, batch 32, 500 steps, norm clipping at 1.0, at
a learning rate where no seed diverges and a target no seed reaches, so every run does all its
steps. The sequential path (trainers.loop.run_seed, one seed after another) is timed on a few seeds
and its rate is per run; the vectorized path (trainers.vectorized.run_chunk) trains the whole chunk
at once. Each side counts its fastest run (--repeats chunks, sequential runs before and between
them), because a shared machine's speed drifts by a third within minutes; the speed-up of the
medians is printed next to it. It also prints the FLOP/s the vectorized step achieves next to a
large matrix product on the same device, to show how much of the machine the engine uses. Needs
only torch.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainers import ClippingConfig, ConvergenceConfig, TrainConfig, run_seed  # noqa: E402
from trainers.allocator import keep_freed_memory  # noqa: E402
from trainers.loop import resolve_device  # noqa: E402
from trainers.vectorized import run_chunk  # noqa: E402

SEQ_LEN, HIDDEN, BATCH = 50, 64, 32


def config(steps: int, device: str) -> TrainConfig:
    return TrainConfig(
        task="adding", lr=0.01, task_params={"seq_len": SEQ_LEN, "hidden": HIDDEN},
        clipping=ClippingConfig("norm", {"max_norm": 1.0}), max_steps=steps, batch_size=BATCH,
        convergence=ConvergenceConfig(target_loss=1e-12, eval_every=steps), device=device,
    )


def flops_per_seed_step() -> float:
    """Multiply-adds ×2 of one forward of the tanh RNN, ×3 for forward plus backward."""
    recurrent = SEQ_LEN * 2 * BATCH * HIDDEN * HIDDEN
    inputs = 2 * SEQ_LEN * BATCH * 2 * HIDDEN
    head = 2 * BATCH * HIDDEN
    return 3.0 * (recurrent + inputs + head)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_flops(device: str, n: int = 4096, repeats: int = 10) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2.0 * n**3 * repeats / (time.perf_counter() - start)


def bmm_flops(device: str, seeds: int = 256, repeats: int = 50) -> float:
    """FLOP/s of the recurrence's own product shape: every seed's (batch × hidden) @ (hidden × hidden)
    at once. The recurrence cannot run faster than this, so it bounds the vectorized speed-up."""
    h = torch.randn(seeds, BATCH, HIDDEN, device=device)
    w = torch.randn(seeds, HIDDEN, HIDDEN, device=device)
    torch.bmm(h, w)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.bmm(h, w)
    sync(device)
    return 2.0 * seeds * BATCH * HIDDEN * HIDDEN * repeats / (time.perf_counter() - start)


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seeds", type=positive, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--steps", type=positive, default=500)
    parser.add_argument("--sequential-runs", type=positive, default=5,
                        help="runs timed on the sequential path (its rate does not depend on the chunk)")
    parser.add_argument("--repeats", type=positive, default=3,
                        help="times each chunk is trained; the fastest counts, as for the sequential runs")
    args = parser.parse_args()
    try:
        resolve_device(args.device)  # says plainly when there is no CUDA device
    except RuntimeError as exc:
        parser.error(str(exc))

    cfg = config(args.steps, args.device)
    print(f"# {platform.node()} · {platform.processor() or platform.machine()} · torch {torch.__version__} · "
          f"{torch.get_num_threads()} threads · device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""))
    print(f"# adding T={SEQ_LEN} hidden={HIDDEN} batch={BATCH} steps={args.steps} norm clipping 1.0")

    keep_freed_memory()  # as a training process of the service does (trainers/allocator.py)
    list(run_chunk(config(5, args.device), [0, 1], vectorize=True))  # warm-up: kernels, vmap tracing
    # Both sides count their fastest run (as timeit does): this machine's speed drifts from run
    # to run (shared cores, other tenants), by a third within minutes, and the fastest run is the
    # one least disturbed. One more sequential run before each chunk's repeats samples the
    # baseline through the whole benchmark.
    seq_times = [timed(lambda seed=seed: run_seed(cfg, seed)) for seed in range(args.sequential_runs)]
    print(f"sequential: {1.0 / min(seq_times):.3f} runs/s (fastest of {len(seq_times)} runs: {min(seq_times):.2f} s; "
          f"slowest {max(seq_times):.2f} s)", flush=True)

    peak = matmul_flops(args.device)
    print(f"large matmul: {peak / 1e9:.1f} GFLOP/s")
    batched = bmm_flops(args.device, seeds=max(args.seeds))
    chunk_times: dict[int, list[float]] = {}
    for n in args.seeds:
        chunk_times[n] = []
        for _ in range(args.repeats):
            seq_times.append(timed(lambda: run_seed(cfg, n)))
            start = time.perf_counter()
            results = list(run_chunk(cfg, list(range(n)), vectorize=True))
            sync(args.device)
            chunk_times[n].append(time.perf_counter() - start)
            assert len(results) == n and all(r.steps_done == args.steps for _, r in results), \
                "every run must do all its steps for the rate to mean anything"
        print(f"  {n} seeds: chunks took {', '.join(f'{t:.2f}' for t in chunk_times[n])} s", flush=True)

    baseline = min(seq_times)
    print(f"sequential, fastest of all {len(seq_times)} runs: {baseline:.2f} s (slowest {max(seq_times):.2f} s)")
    ceiling = batched / flops_per_seed_step() / args.steps * baseline
    print(f"batched {BATCH}x{HIDDEN}x{HIDDEN} products at {max(args.seeds)} seeds: {batched / 1e9:.1f} GFLOP/s, "
          f"which bounds the vectorized speed-up at {ceiling:.1f}x")
    # The fastest against the fastest is the conservative figure: the fastest of many short
    # sequential runs catches quieter moments than the fastest of a few long chunks. The medians
    # are the typical figure.
    print(f"{'seeds':>6} {'runs/s':>10} {'speed-up':>9} {'median':>7} {'GFLOP/s':>9} {'of matmul':>10}")
    for n, times in chunk_times.items():
        rate = n / min(times)
        typical = n * statistics.median(seq_times) / statistics.median(times)
        achieved = n * args.steps * flops_per_seed_step() / min(times)
        print(f"{n:>6} {rate:>10.2f} {rate * baseline:>8.1f}x {typical:>6.1f}x {achieved / 1e9:>9.2f} "
              f"{achieved / peak:>9.1%}")
    print(f"runs/s, speed-up, GFLOP/s: the fastest of {args.repeats} chunks against the fastest sequential run; "
          f"median: median against median")


if __name__ == "__main__":
    main()
