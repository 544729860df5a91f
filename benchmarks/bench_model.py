"""Model figures: train-step throughput, FLOP/s against the matmul peak, peak memory, norms.

    python benchmarks/bench_model.py --part step     # throughput, FLOP/s fraction, memory
    python benchmarks/bench_model.py --part norm     # normalisation choice (speed and loss)
    python benchmarks/bench_model.py --part upsample # our x4 bilinear against jax.image.resize
    python benchmarks/bench_model.py --part ceiling  # one 3x3 conv's fwd+bwd vs the matmul peak

`step`: one train step = forward, the three head losses at their strides, the combined loss,
backward and an RMSProp update (spec section 4), on fixed targets from `targets.make_targets`
(computed outside the step: the targets have their own benchmark). Each row runs in a fresh
subprocess, which also gives its peak host memory (ru_maxrss, compile included), and measures
its own f32 2048^2 matmul peak right before its step, so the FLOP/s fraction compares numbers
taken under the same load. FLOPs are XLA's `cost_analysis()` of the compiled step.

`norm`: a small fixed problem (random black boxes on white pages), a few dozen Adam steps per
normalisation from the same initial weights; per-head losses at the end against the start.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from configs import default  # noqa: E402
from dwd_jax.modeling import losses, model, targets  # noqa: E402

PAPER = {  # The paper: one box regression for all classes.
    "depth": 101,
    "width": 1.0,
    "decoder_channels": 256,
    "box_head": "linear",
    "class_size_prior": False,
}
FINEST = {  # Finest head stride -> (model.output_strides, loss energy, box strides).
    1: ((1, 8, 16), (1, 8, 16), (1, 8)),
    2: ((2, 8, 16), (2, 8, 16), (2, 8)),
    4: ((4, 8, 16), (4, 8, 16), (4, 8)),
}
ROWS = {  # name -> (model overrides, finest head stride)
    "default (R18 x0.5)": ({}, 2),
    "default, heads at stride 4": ({}, 4),
    "default, heads at stride 1": ({}, 1),
    "default, bf16": ({"dtype": "bfloat16"}, 2),
    "default, norm batch": ({"norm": "batch"}, 2),
    "default, norm none": ({"norm": "none"}, 2),
    "paper (R101 x1, heads at stride 1)": (PAPER, 1),
    "paper, heads at stride 4": (PAPER, 4),
}


def make_config(overrides: dict, finest: int):
    c = default.get_config()
    c.model.update(overrides)
    c.model.output_strides, c.loss.energy_strides, c.loss.box_strides = FINEST[finest]
    # Class at the finest stride, and at every box stride when the size prior reads it there.
    c.loss.class_strides = (finest, 8) if c.model.class_size_prior else (finest,)
    c.loss.schedule = (("combined", 1),)  # Every head contributes, as in the last stage.
    return c


def random_pages(batch: int, size: int, count: int, seed: int):
    """Pages with `count` black boxes each: (pages f32[B, S, S, 1], boxes, classes, valid)."""
    rng = np.random.default_rng(seed)
    pages = np.full((batch, size, size, 1), 255.0, np.float32)
    hw = rng.integers(4, 24, (batch, count, 2))
    y0 = rng.integers(0, size - 24, (batch, count))
    x0 = rng.integers(0, size - 24, (batch, count))
    boxes = np.stack([y0, x0, y0 + hw[..., 0], x0 + hw[..., 1]], -1).astype(np.float32)
    for page, page_boxes in zip(pages, boxes.astype(int), strict=True):
        for a, b, c, d in page_boxes:
            page[a:c, b:d] = 0.0
    classes = rng.integers(1, 6, (batch, count)).astype(np.int32)  # A few learnable classes.
    return pages, boxes, classes, np.ones((batch, count), bool)


def fixed_targets(config, boxes, classes, valid, size):
    strides = {s for v in losses.loss_strides(config).values() for s in v}
    return {
        s: targets.make_targets(
            boxes, classes, valid, image_shape=(size, size), stride=s, config=config
        )
        for s in strides
    }


def make_step(net, config, optimiser):
    """A jitted train step (params, opt_state, normaliser, pages, targets, step)."""

    def step(params, opt_state, normaliser, pages, maps, i):
        def loss_fn(p):
            per_head = losses.head_losses(net.apply(p, pages), maps, config)
            loss, normaliser_out = losses.total_loss(per_head, normaliser, i, config)
            return loss, (normaliser_out, per_head)

        (loss, (normaliser_out, per_head)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params
        )
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, normaliser_out, per_head

    return jax.jit(step, donate_argnums=(0, 1, 2))


def matmul_peak(reps: int = 5) -> float:
    """f32 FLOP/s of a 2048^2 matmul, best of `reps`."""
    a = jax.random.normal(jax.random.key(0), (2048, 2048), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(reps))
    return 2 * 2048**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_row(name: str, size: int, batch: int, reps: int) -> dict:
    """Times one row's train step in this process; returns its figures."""
    overrides, finest = ROWS[name]
    config = make_config(overrides, finest)
    net = model.build_model(config)
    pages, boxes, classes, valid = random_pages(batch, size, 200, seed=0)
    maps = fixed_targets(config, boxes, classes, valid, size)
    params = jax.jit(net.init)(jax.random.key(0), pages)
    optimiser = optax.rmsprop(1e-4, decay=0.995, eps=1e-10, initial_scale=1.0, eps_in_sqrt=True)
    opt_state = optimiser.init(params)
    normaliser = losses.init_normaliser(config.loss.normaliser_window)
    step = make_step(net, config, optimiser)
    args = (params, opt_state, normaliser, pages, maps, jnp.int32(0))
    start = time.perf_counter()
    compiled = step.lower(*args).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    flops = float((cost[0] if isinstance(cost, list) else cost)["flops"])
    peak = matmul_peak()
    times = []
    for i in range(reps + 1):  # The first run warms caches and is not counted.
        start = time.perf_counter()
        params, opt_state, normaliser, per_head = compiled(
            params, opt_state, normaliser, pages, maps, jnp.int32(i)
        )
        jax.block_until_ready(per_head)
        times.append(time.perf_counter() - start)
    step_s = min(times[1:]) if reps else times[0]
    return {
        "name": name,
        "params_m": model.count_params(params) / 1e6,
        "compile_s": compile_s,
        "step_s": step_s,
        "pixels_per_s": batch * size * size / step_s,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / step_s / 1e9,
        "peak_gflops": peak / 1e9,
        "maxrss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def part_step(args) -> None:
    print(f"\nTrain step at {args.size}x{args.size}, batch {args.batch}, best of {args.reps}.\n")
    print(
        "| config | params M | step s | pixels/s | x first row | GFLOP/step | GFLOP/s "
        "| matmul peak GFLOP/s | of peak | peak RSS GB | compile s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    base = None
    for name in args.rows.split(";") if args.rows else ROWS:
        child = subprocess.run(
            [sys.executable, __file__, "--row", name, "--size", str(args.size)]
            + ["--batch", str(args.batch), "--reps", str(args.reps)],
            capture_output=True,
            text=True,
        )
        if child.returncode:  # E.g. killed for memory: report it and go on with the others.
            print(f"| {name} | failed: exit {child.returncode} {child.stderr[-200:]!r} |")
            continue
        r = json.loads(child.stdout.strip().splitlines()[-1])
        base = base or r
        print(
            f"| {r['name']} | {r['params_m']:.1f} | {r['step_s']:.2f} | {r['pixels_per_s']:,.0f} "
            f"| {r['pixels_per_s'] / base['pixels_per_s']:.2f} | {r['gflop_per_step']:.0f} "
            f"| {r['achieved_gflops']:.0f} | {r['peak_gflops']:.0f} "
            f"| {r['achieved_gflops'] / r['peak_gflops']:.0%} | {r['maxrss_gb']:.1f} "
            f"| {r['compile_s']:.0f} |",
            flush=True,
        )


def part_norm(args) -> None:
    size, batch = 160, 2
    pages, boxes, classes, valid = random_pages(batch, size, 12, seed=1)
    print(f"\n{args.steps} Adam steps (lr 1e-3), R18 x0.25, {batch} fixed {size}x{size} pages, ")
    print("heads at strides 2/8/16; loss = mean of the last 5 steps / mean of the first 5.\n")
    print("| norm | step s | energy loss | class loss | box loss | x energy start |")
    print("|---|---:|---:|---:|---:|---:|")
    for norm in ("group", "batch", "none"):
        config = make_config({"norm": norm, "width": 0.25}, 2)
        net = model.build_model(config)
        maps = fixed_targets(config, boxes, classes, valid, size)
        # Flax derives each layer's init from its name, so group and batch start identical.
        params = jax.jit(net.init)(jax.random.key(0), pages)
        optimiser = optax.adam(1e-3)
        opt_state = optimiser.init(params)
        normaliser = losses.init_normaliser(config.loss.normaliser_window)
        step = make_step(net, config, optimiser)
        history, times = [], []
        for i in range(args.steps):
            start = time.perf_counter()
            params, opt_state, normaliser, per_head = step(
                params, opt_state, normaliser, pages, maps, jnp.int32(i)
            )
            history.append({k: float(v) for k, v in per_head.items()})
            times.append(time.perf_counter() - start)
        first = {k: np.mean([h[k] for h in history[:5]]) for k in losses.HEADS}
        last = {k: np.mean([h[k] for h in history[-5:]]) for k in losses.HEADS}
        print(
            f"| {norm} | {np.median(times[1:]):.2f} | {last['energy']:.3f} "
            f"| {last['class']:.3f} | {last['box']:.1f} "
            f"| {last['energy'] / first['energy']:.2f} |"
        )


def part_upsample(args) -> None:
    x = jax.random.normal(jax.random.key(0), (1, 240, 240, 128))
    ours = jax.jit(lambda x: model.upsample_bilinear(x, 4))
    theirs = jax.jit(lambda x: jax.image.resize(x, (1, 960, 960, 128), "bilinear"))
    print("\nx4 bilinear upsampling of f32[1, 240, 240, 128] to 960x960, best of 5.\n")
    print("| implementation | ms | x reference | XLA GFLOP |")
    print("|---|---:|---:|---:|")
    rows = []
    for name, f in (("jax.image.resize (reference)", theirs), ("model.upsample_bilinear", ours)):
        compiled = f.lower(x).compile()
        cost = compiled.cost_analysis()
        flops = float((cost[0] if isinstance(cost, list) else cost)["flops"])
        run = lambda compiled=compiled: compiled(x).block_until_ready()
        run()
        best = min(_timed(run) for _ in range(5))
        rows.append((name, best, flops))
    for name, best, flops in rows:
        print(f"| {name} | {best * 1e3:.0f} | {best / rows[0][1]:.2f} | {flops / 1e9:.1f} |")


def _conv3x3(x: jax.Array, w: jax.Array) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def part_ceiling(args) -> None:
    """The most a conv net's train step can reach here: one 3x3 conv, forward and backward,
    and each of the backward's two convs alone (input gradient, weight gradient).

    A step is mostly 3x3 convs (forward + both backward convs) plus elementwise work, so the
    best single conv's fraction of the matmul peak bounds the whole step's fraction.
    """
    peak = matmul_peak()
    print(f"\nf32 matmul peak (2048^2, best of 5): {peak / 1e9:.0f} GFLOP/s\n")
    print(
        "| 3x3 conv, NHWC, batch 1 | fwd | d input | d weight | fwd+bwd | fwd+bwd of peak |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    for side, channels in ((240, 128), (240, 32), (120, 256), (60, 512)):
        x = jax.random.normal(jax.random.key(0), (1, side, side, channels))
        w = jax.random.normal(jax.random.key(1), (3, 3, channels, channels)) * 0.05
        g = jax.random.normal(jax.random.key(2), (1, side, side, channels))
        fwd = jax.jit(_conv3x3)
        d_input = jax.jit(lambda x, w, g: jax.vjp(lambda x: _conv3x3(x, w), x)[1](g)[0])
        d_weight = jax.jit(lambda x, w, g: jax.vjp(lambda w: _conv3x3(x, w), w)[1](g)[0])
        fwd_bwd = jax.jit(jax.grad(lambda x, w: jnp.sum(_conv3x3(x, w) ** 2), argnums=(0, 1)))
        flops = 2 * side * side * channels * channels * 9
        rates = []
        for f, operands, mult in (
            (fwd, (x, w), 1),
            (d_input, (x, w, g), 1),
            (d_weight, (x, w, g), 1),
            (fwd_bwd, (x, w), 3),  # Backward = two convs of the forward's size.
        ):
            jax.block_until_ready(f(*operands))
            run = lambda f=f, operands=operands: jax.block_until_ready(f(*operands))
            best = min(_timed(run) for _ in range(5))
            rates.append(mult * flops / best)
        cells = " | ".join(f"{r / 1e9:.0f} ({r / peak:.0%})" for r in rates)
        print(f"| {side}x{side}x{channels} | {cells} | **{rates[-1] / peak:.0%}** |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("step", "norm", "upsample", "ceiling"), default="step")
    parser.add_argument("--size", type=int, default=960, help="Square crop (multiple of 160).")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2, help="Timed steps per row (after one).")
    parser.add_argument("--rows", default="", help="Row names separated by ';'; default all.")
    parser.add_argument("--steps", type=int, default=40, help="Steps per norm (--part norm).")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # Internal: run one row, print JSON.
    args = parser.parse_args()
    if args.row:
        print(json.dumps(run_row(args.row, args.size, args.batch, args.reps)))
        return
    parts = {"step": part_step, "norm": part_norm, "upsample": part_upsample}
    {**parts, "ceiling": part_ceiling}[args.part](args)


if __name__ == "__main__":
    main()
