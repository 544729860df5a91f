"""Memory of the paper config's train step per device, from XLA's compiled buffer assignment.

    python benchmarks/paper_memory.py                  # writes configs/deepscores_v2.memory.json
    python benchmarks/paper_memory.py --timeout 600    # seconds allowed per compile

The step is `train.compile_step` of `train.dwd_loss` with `train.make_optimizer`, exactly what
`run.py train --config=configs/deepscores_v2.py` runs, lowered on `train.abstract_state` and a
batch of `jax.ShapeDtypeStruct`s, so nothing is allocated and no step runs. The figures are
`memory_analysis()` of the compiled step, for each compute dtype (`model.dtype`) and
rematerialisation (`model.remat`); each combination compiles in a fresh subprocess, which a
compile that outlasts `--timeout` leaves out of the file (the file says which).

Batch: the step is compiled over every device (`train.make_mesh`) with `per_device_batch`
pages per device, `data.batch_size // device count` and at least 1 (the paper config's
comment: one page per device), each a `data.crop_size` square crop. The figures are one
device's: with several devices they include the gradient all-reduce's buffers.

Total per device = argument + output - alias + temp + generated code: the donated state's
outputs reuse its argument buffers (alias), and XLA's temp buffers are the peak of everything
else the step holds at once.

On CPU the compile keeps remat's optimisation barriers (`xla_disable_hlo_passes=
cse_barrier_expander`). XLA's CPU pipeline otherwise drops them before a later CSE pass, which
merges the recomputation back into the forward pass, so remat would save nothing there; the GPU
pipeline drops them only after scheduling, so the recomputation survives. The option does not
change a step without remat.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from configs import deepscores_v2  # noqa: E402
from dwd_jax.modeling import model  # noqa: E402
from dwd_jax.training import train

OUTPUT = os.path.join(os.path.dirname(deepscores_v2.__file__), "deepscores_v2.memory.json")
COMBINATIONS = [  # (model.dtype, model.remat)
    ("float32", False),
    ("float32", True),
    ("bfloat16", False),
    ("bfloat16", True),
]
GIB = 2**30
# Keeps remat's optimisation barriers on CPU (see the module docstring).
CPU_OPTIONS = {"xla_disable_hlo_passes": "cse_barrier_expander"}


def per_device_batch(batch_size: int, devices: int) -> int:
    """Pages per device: the config's batch split over the devices, at least one."""
    return max(1, batch_size // devices)


def abstract_batch(config, mesh: jax.sharding.Mesh, batch: int) -> dict:
    """The global batch's shapes (see `train.make_targets_by_stride`), sharded over `'data'`.

    batch: B, the global batch; images are u8[B, S, S, 1] with S = data.crop_size.
    """
    s, m = config.data.crop_size, config.data.max_objects
    sharding = NamedSharding(mesh, P("data"))
    shapes = {
        "image": ((batch, s, s, 1), jnp.uint8),
        "boxes": ((batch, m, 4), jnp.float32),
        "classes": ((batch, m), jnp.int32),
        "valid": ((batch, m), jnp.bool_),
    }
    return {
        k: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
        for k, (shape, dtype) in shapes.items()
    }


def measure(dtype: str, remat: bool) -> dict:
    """Compiles the paper config's train step with these settings; returns its figures."""
    config = deepscores_v2.get_config()
    config.model.dtype = dtype
    config.model.remat = remat
    mesh = train.make_mesh()
    net = model.build_model(config)
    optimizer = train.make_optimizer(config.train)
    state = train.abstract_state(config, net, optimizer, mesh)
    pages = per_device_batch(config.data.batch_size, mesh.size)
    batch = abstract_batch(config, mesh, pages * mesh.size)
    step = train.compile_step(
        functools.partial(train.dwd_loss, net=net, config=config), optimizer, mesh
    )
    options = CPU_OPTIONS if jax.default_backend() == "cpu" else {}
    start = time.perf_counter()
    stats = step.lower(state, batch).compile(compiler_options=options).memory_analysis()
    compile_s = time.perf_counter() - start
    figures = {
        "argument_bytes": stats.argument_size_in_bytes,
        "output_bytes": stats.output_size_in_bytes,
        "alias_bytes": stats.alias_size_in_bytes,
        "temp_bytes": stats.temp_size_in_bytes,
        "generated_code_bytes": stats.generated_code_size_in_bytes,
    }
    total = (
        figures["argument_bytes"]
        + figures["output_bytes"]
        - figures["alias_bytes"]
        + figures["temp_bytes"]
        + figures["generated_code_bytes"]
    )
    return {
        "dtype": dtype,
        "remat": remat,
        **figures,
        "total_bytes": total,
        **{k.replace("_bytes", "_gib"): round(v / GIB, 3) for k, v in figures.items()},
        "total_gib": round(total / GIB, 3),
        "compile_s": round(compile_s, 1),
        "params": model.count_params(state.params),
        "per_device_batch": pages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=900.0, help="Seconds per compile.")
    parser.add_argument("--output", default=OUTPUT)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # "dtype,remat": child process.
    args = parser.parse_args()
    if args.one:
        dtype, remat = args.one.split(",")
        print(json.dumps(measure(dtype, remat == "True")))
        return

    config = deepscores_v2.get_config()
    rows, left_out = [], []
    for dtype, remat in COMBINATIONS:
        command = [sys.executable, os.path.abspath(__file__), "--one", f"{dtype},{remat}"]
        try:
            child = subprocess.run(
                command, capture_output=True, text=True, timeout=args.timeout, check=False
            )
        except subprocess.TimeoutExpired:
            left_out.append(f"{dtype}, remat {remat}: compile over {args.timeout:.0f} s")
            print(left_out[-1], flush=True)
            continue
        if child.returncode:
            left_out.append(f"{dtype}, remat {remat}: exit {child.returncode}")
            print(left_out[-1], child.stderr[-2000:], flush=True)
            continue
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{dtype:8s} remat={remat!s:5s} argument {r['argument_gib']:.3f} output "
            f"{r['output_gib']:.3f} alias {r['alias_gib']:.3f} temp {r['temp_gib']:.3f} "
            f"code {r['generated_code_gib']:.4f} total {r['total_gib']:.3f} GiB "
            f"(compile {r['compile_s']:.0f} s)",
            flush=True,
        )
    device = jax.devices()[0]
    report = {
        "config": "configs/deepscores_v2.py",
        "command": "python benchmarks/paper_memory.py",
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "compiler_options": CPU_OPTIONS if jax.default_backend() == "cpu" else {},
        "crop": [config.data.crop_size, config.data.crop_size],
        "max_objects": config.data.max_objects,
        "total": "argument + output - alias + temp + generated code, per device",
        "rows": rows,
        "left_out": left_out,
    }
    with open(args.output, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
