"""The Deep Watershed Detector network: ResNet v1 backbone, RefineNet decoder, per-group heads.

`build_model(config)` returns a flax.linen module used purely functionally:
`variables = model.init(rng, images)`, `outputs = model.apply(variables, images)`. The only
variable collection is `params`; there is no mutable state, whatever the normalisation.

Architecture (DWD_SPEC.md section 2, followed on purpose unless noted):
- Backbone: ResNet v1, bottleneck units for depth >= 50 and basic units for 18/34. The stride-2
  sits in the *last* unit of blocks 1 to 3 and block 4 keeps stride 32, as in the original's
  TF-slim ResNet, so the decoder taps are the stem after its max-pool (stride 4), block 1
  (stride 8), block 2 (stride 16) and block 4 (stride 32). Channel counts scale with
  `config.model.width`.
- Decoder: RefineNet. 1x1 adapters to `decoder_channels` + ReLU, then refine blocks coarse to
  fine (32 -> 16 -> 8 -> 4): two residual conv units (RCU) per input, multi-resolution fusion
  (conv3x3 per input, the coarser one upsampled x2 bilinearly, summed), chained residual
  pooling (two 5x5 max-pool stride-1 + conv3x3 stages, as in the RefineNet the original used),
  and a final RCU. Decoder convs have no normalisation. We differ in one detail: every refine
  block has `decoder_channels` channels (the original widened the stride-32 block to 512).
- Box head (`config.model.box_head`): "linear" regresses (height, width) in pixels (the
  original); "log" regresses their logarithms and the model returns exp of them, so the box
  loss (`losses.box_loss`) weighs relative errors, which is what IoU weighs: in pixels a
  staff's 2000-px width drowns a notehead's 2-px error. Outputs are pixels either way.
- Class size prior (`config.model.class_size_prior`, our extension): the box head's output
  is added to a learned per-class size (one table for all strides), weighted by the pixel's
  own class probabilities (their gradient stopped), so the 1x1 head regresses only how far
  this object is from its class's usual size. A shared 1x1 head on 32 features otherwise
  has to map a stem (2 px wide), a beam and a staff (2000 px) beside each other in one
  group, and a short run without the prior leaves whole classes biased (G clefs drawn too
  large, F clefs and fermatas too narrow, on training pages as well as test pages).
- Heads: 1x1 convs (energy, class, box, and the centre offset with `offset_head`) per output
  stride, each with its own weights. Their kernels start at zero and their biases at priors
  (mostly background, uniform classes, zero offsets; see `_head_bias`): the un-normalised
  decoder's features start large, and random heads on them start with class cross-entropies
  near 100, which a warm-up's small steps cannot undo fast.
  A stride finer than 4 is the stride-4 decoder output upsampled bilinearly (x4 to full
  resolution for stride 1, the original), computed as upsampled stride-4 logits (the same
  numbers, see `DWD.__call__`); strides 4 to 32 read the refine block of that stride, which
  is how the original supervised energy at strides 8 and 16.

Input: grey 0..255 with 0 = ink. The original fed raw 0..255; we map it to ink = 1, paper = 0
so that white padding (spec section 2) equals the convs' zero padding and the scale suits
un-normalised layers.

Normalisation (`config.model.norm`): the original used batch-norm statistics of the current
batch at training *and* test time with batch size 1, i.e. per-image statistics (spec section 2
quirk). Options:
- "group": GroupNorm (`norm_groups` groups, fewer if the channels do not divide). Per image,
  so the result for a page does not depend on its batch mates or on the device count: the
  default. `benchmarks/bench_model.py --part norm` measures it against the others.
- "image": per image, per channel, statistics over H and W: what the original's batch norm
  computed at its batch size 1, at any batch size and on any number of devices.
- "batch": normalise with the statistics of the current batch, always (no running averages,
  so `apply` stays pure). With batch size 1 this is exactly the original. Under `jax.jit` with
  a batch sharded over devices the mean is over the global batch, so the result does not
  depend on the device count, but a page's outputs do depend on its batch mates, and past
  batch size 1 it no longer is the original's per-image normalisation ("image" is).
- "none": no normalisation in the backbone.
All three normalising kinds have the same parameters (a scale and a bias per channel), so a
checkpoint can switch between them.

Rematerialisation (`config.model.remat`): the backbone's residual units and the decoder's
refine blocks keep only their inputs for the backward pass and recompute the rest
(`nn.remat`), trading one more forward pass through them for their activations' memory. The
parameter tree is the same either way, so checkpoints are interchangeable. BENCHMARKS.md
`## Paper config memory` gives the figures.

`config.model.dtype = "bfloat16"` computes convs in bf16 with f32 parameters; outputs are f32.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dwd_jax.modeling import heads as heads_lib
from dwd_jax.modeling import targets

DECODER_STRIDES = (4, 8, 16, 32)  # Strides of the backbone taps and refine blocks.
NORMS = ("group", "image", "batch", "none")
BOX_HEADS = ("linear", "log")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# Units per block and whether units are bottlenecks, per ResNet depth.
RESNET_LAYOUTS = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
    152: ((3, 8, 36, 3), True),
}


def upsample_bilinear(x: jax.Array, factor: int) -> jax.Array:
    """Upsamples by an integer factor with bilinear interpolation (half-pixel centres).

    Equal to `jax.image.resize(x, (B, H * f, W * f, C), "bilinear")`, but written as two
    neighbour blends per output phase instead of resize's dense interpolation matrices, which
    cost O(H_out * H_in) per row and dominate a full-resolution step.

    Args:
      x: f32[B, H, W, C] (any float dtype).
      factor: integer upsampling factor >= 1.

    Returns:
      [B, H * factor, W * factor, C], the dtype of `x`.
    """
    if factor == 1:
        return x
    for axis in (1, 2):
        n = x.shape[axis]
        # Edge replication reproduces resize's renormalised weights at the borders.
        pad = [(0, 0)] * x.ndim
        pad[axis] = (1, 1)
        padded = jnp.pad(x, pad, mode="edge")
        phases = []
        for r in range(factor):
            offset = (r + 0.5) / factor - 0.5  # Source position of phase r relative to j.
            lo = int(np.floor(offset))  # -1 or 0: the left neighbour of that position.
            frac = offset - lo
            left = jax.lax.slice_in_dim(padded, 1 + lo, 1 + lo + n, axis=axis)
            right = jax.lax.slice_in_dim(padded, 2 + lo, 2 + lo + n, axis=axis)
            phases.append((1.0 - frac) * left + frac * right)
        stacked = jnp.stack(phases, axis=axis + 1)  # [..., n, factor, ...]
        shape = list(x.shape)
        shape[axis] = n * factor
        x = stacked.reshape(shape)
    return x


def max_pool_same(x: jax.Array, size: int) -> jax.Array:
    """`nn.max_pool(x, (size, size), (1, 1), padding="SAME")` for odd `size`, as running maxima.

    A window maximum is separable (rows, then columns) and each 1-D maximum is `size - 1`
    elementwise `jnp.maximum`s of shifted slices, which XLA fuses. XLA's CPU backward of
    `reduce_window` max is a select-and-scatter, several times slower than these running
    maxima, and the chained residual pooling runs eight such pools per step. Same forward values;
    on ties (many after a ReLU) the gradient is shared rather than given to one input, an
    equally valid subgradient.

    Args:
      x: [B, H, W, C].
      size: odd window side.

    Returns:
      [B, H, W, C].
    """
    half = size // 2
    for axis in (1, 2):
        n = x.shape[axis]
        pad = [(0, 0)] * x.ndim
        pad[axis] = (half, half)
        padded = jnp.pad(x, pad, constant_values=-jnp.inf)
        out = jax.lax.slice_in_dim(padded, 0, n, axis=axis)
        for k in range(1, size):
            out = jnp.maximum(out, jax.lax.slice_in_dim(padded, k, k + n, axis=axis))
        x = out
    return x


def _channels(base: int, width: float) -> int:
    """Scales a channel count by `width`, keeping at least 8 channels."""
    return max(8, int(round(base * width)))


def _backbone_conv(
    channels: int, kernel: int, stride: int, norm: str, dtype: jnp.dtype, name: str
) -> nn.Conv:
    """A backbone conv; symmetric padding puts output pixel i over input pixel stride * i, as
    TF-slim's conv2d_same does, so subsampled shortcuts stay aligned with their branch."""
    pad = ((kernel // 2, kernel // 2),) * 2
    # A bias right before a normalisation would be cancelled by it.
    return nn.Conv(
        channels,
        (kernel, kernel),
        (stride, stride),
        pad,
        use_bias=norm == "none",
        dtype=dtype,
        name=name,
    )


# Initial P(level 0) of the energy heads: about the share of background pixels on a page.
BACKGROUND_PRIOR = 0.95
# Initial box size (pixels) of the log box head: a notehead at the default scale.
INITIAL_BOX_SIZE = 10.0


def _box_bias(box_head: str) -> float:
    """The box head's initial output in its own space: log INITIAL_BOX_SIZE, or 0 (linear)."""
    return float(np.log(INITIAL_BOX_SIZE)) if box_head == "log" else 0.0


def _head_bias(name: str, groups: int, size: int, box_head: str, size_prior: bool = False):
    """Initial head biases. With zero head kernels (see `DWD.__call__`) the first outputs are
    these priors: energy P(level 0) = BACKGROUND_PRIOR, classes uniform, boxes
    INITIAL_BOX_SIZE on the log head (0 on the linear one); with a class size prior the box
    head starts at 0 and the prior table holds the initial size."""
    bias = np.zeros((groups, size), np.float32)
    if name == "energy":
        # softmax([b, 0, ..., 0])[0] = prior  <=>  b = log(prior * (L - 1) / (1 - prior)).
        bias[:, 0] = np.log(BACKGROUND_PRIOR * (size - 1) / (1.0 - BACKGROUND_PRIOR))
    elif name == "box" and not size_prior:
        bias[:] = _box_bias(box_head)
    return lambda key, shape, dtype=jnp.float32: jnp.asarray(bias.reshape(shape), dtype)


class Norm(nn.Module):
    """The backbone's normalisation, chosen by `kind` (see the module docstring).

    x: [B, H, W, C] -> [B, H, W, C].
    """

    kind: str
    groups: int
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kind == "none":
            return x
        b, h, w, c = x.shape
        # All kinds share the same parameters, so a checkpoint can switch between them.
        if self.kind == "group":  # Per image: independent of batch mates and device count.
            groups, axes = math.gcd(self.groups, c), (1, 2, 4)
        elif self.kind == "image":  # The original's batch norm at batch 1 (spec section 2).
            groups, axes = c, (1, 2, 4)
        else:  # Batch statistics, never running averages (spec section 2).
            groups, axes = c, (0, 1, 2, 4)
        xg = x.astype(jnp.float32).reshape(b, h, w, groups, c // groups)
        mean = xg.mean(axis=axes, keepdims=True)
        var = jnp.square(xg - mean).mean(axis=axes, keepdims=True)
        y = ((xg - mean) * jax.lax.rsqrt(var + 1e-5)).reshape(b, h, w, c)
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        return (y * scale + bias).astype(self.dtype)


class ResidualUnit(nn.Module):
    """One ResNet v1 unit (basic or bottleneck); the stride sits on the 3x3 conv.

    x: [B, H, W, C] -> [B, H / stride, W / stride, out_channels].
    """

    channels: int  # Bottleneck width (basic units: the output width).
    stride: int
    bottleneck: bool
    norm: str
    norm_groups: int
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = lambda c, k, s, name: _backbone_conv(c, k, s, self.norm, self.dtype, name)
        norm = lambda name: Norm(self.norm, self.norm_groups, self.dtype, name=name)
        out_channels = self.channels * 4 if self.bottleneck else self.channels
        if self.bottleneck:
            y = nn.relu(norm("norm1")(conv(self.channels, 1, 1, "conv1")(x)))
            y = nn.relu(norm("norm2")(conv(self.channels, 3, self.stride, "conv2")(y)))
            y = norm("norm3")(conv(out_channels, 1, 1, "conv3")(y))
        else:
            y = nn.relu(norm("norm1")(conv(self.channels, 3, self.stride, "conv1")(x)))
            y = norm("norm2")(conv(out_channels, 3, 1, "conv2")(y))
        if x.shape[-1] != out_channels:
            x = norm("norm_proj")(conv(out_channels, 1, self.stride, "proj")(x))
        else:  # TF-slim v1 subsamples an identity shortcut instead of projecting it.
            x = x[:, :: self.stride, :: self.stride]
        return nn.relu(x + y)


class ResNet(nn.Module):
    """ResNet v1 trunk returning the decoder taps.

    x: [B, H, W, 1] -> {4: [B, H/4, W/4, c4], 8: ..., 16: ..., 32: [B, H/32, W/32, c32]}.
    """

    depth: int
    width: float
    norm: str
    norm_groups: int
    dtype: jnp.dtype
    remat: bool = False  # Recompute each unit's activations in the backward pass.

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[int, jax.Array]:
        units, bottleneck = RESNET_LAYOUTS[self.depth]
        unit_cls = nn.remat(ResidualUnit) if self.remat else ResidualUnit
        stem = _channels(64, self.width)
        x = _backbone_conv(stem, 7, 2, self.norm, self.dtype, "stem")(x)
        x = nn.relu(Norm(self.norm, self.norm_groups, self.dtype, name="stem_norm")(x))
        x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        taps = {4: x}
        for block, count in enumerate(units):
            for unit in range(count):
                # TF-slim v1 placement: stride 2 in the last unit of blocks 1-3 (spec section 2).
                stride = 2 if block < 3 and unit == count - 1 else 1
                x = unit_cls(
                    _channels(64 * 2**block, self.width),
                    stride,
                    bottleneck,
                    self.norm,
                    self.norm_groups,
                    self.dtype,
                    name=f"block{block + 1}_unit{unit + 1}",
                )(x)
            if block < 2:
                taps[8 * 2**block] = x
        taps[32] = x
        return taps


class RCU(nn.Module):
    """Residual conv unit: x + conv3x3(relu(conv3x3(relu(x)))). x: [B, H, W, C] -> same."""

    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        y = nn.Conv(c, (3, 3), dtype=self.dtype, name="conv1")(nn.relu(x))
        y = nn.Conv(c, (3, 3), dtype=self.dtype, name="conv2")(nn.relu(y))
        return x + y


class RefineBlock(nn.Module):
    """RefineNet block at one stride, fusing the (optional) coarser block's output.

    fine: [B, H, W, C]; coarse: [B, H/2, W/2, C] or None -> [B, H, W, C].
    """

    dtype: jnp.dtype

    @nn.compact
    def __call__(self, fine: jax.Array, coarse: jax.Array | None) -> jax.Array:
        c = fine.shape[-1]
        conv = lambda name: nn.Conv(c, (3, 3), dtype=self.dtype, name=name)
        x = RCU(self.dtype, name="fine_rcu2")(RCU(self.dtype, name="fine_rcu1")(fine))
        if coarse is not None:  # The stride-32 block has a single input and no fusion.
            y = RCU(self.dtype, name="coarse_rcu2")(RCU(self.dtype, name="coarse_rcu1")(coarse))
            x = conv("fuse_fine")(x) + upsample_bilinear(conv("fuse_coarse")(y), 2)
        # Chained residual pooling: each stage pools the previous stage's output.
        x = nn.relu(x)
        branch = x
        for stage in range(2):
            branch = max_pool_same(branch, 5)
            branch = conv(f"pool_conv{stage + 1}")(branch)
            x = x + branch
        return RCU(self.dtype, name="out_rcu")(x)


class DWD(nn.Module):
    """ResNet v1 + RefineNet + per-stride energy/class/box heads (see the module docstring)."""

    depth: int
    width: float
    decoder_channels: int
    norm: str
    norm_groups: int
    dtype: jnp.dtype
    output_strides: tuple[int, ...]
    groups: int
    # ((name, channels per group), ...) in `heads.HEADS` order (`heads.active(config)`); the
    # "class" head's channels are the class list plus background (dwd_jax.classes).
    heads: tuple[tuple[str, int], ...]
    box_head: str = "linear"
    class_size_prior: bool = False
    remat: bool = False  # See the module docstring.

    @nn.compact
    def __call__(self, images: jax.Array) -> dict[int, dict[str, jax.Array]]:
        """Runs the detector.

        Args:
          images: f32[B, H, W, 1], grey 0..255 (0 = ink), H and W multiples of 32 (in practice
            of `data.pad_multiple`).

        Returns:
          {stride: {"energy": f32[B, h, w, G, L], "class": f32[B, h, w, G, C],
          "box": f32[B, h, w, G, 2]}} for each stride of `output_strides`, h = H // stride,
          with `"offset": f32[B, h, w, G, 2]` too when `heads` has it.
        """
        b, h, w, c = images.shape
        if c != 1 or h % 32 or w % 32:
            raise ValueError(
                f"DWD expects grey images f32[B, H, W, 1] with H and W multiples of 32, got "
                f"shape {images.shape}; pad pages to a multiple of data.pad_multiple (160)."
            )
        x = ((255.0 - images) / 255.0).astype(self.dtype)
        taps = ResNet(
            self.depth,
            self.width,
            self.norm,
            self.norm_groups,
            self.dtype,
            remat=self.remat,
            name="backbone",
        )(x)
        channels = _channels(self.decoder_channels, self.width)
        # A whole block, pooling included: the stride-4 block's running maxima are the largest
        # activations a step keeps (BENCHMARKS.md `## Paper config memory`).
        refine_cls = nn.remat(RefineBlock) if self.remat else RefineBlock
        refined = {}
        coarse = None
        for stride in reversed(DECODER_STRIDES):
            adapted = nn.relu(
                nn.Conv(channels, (1, 1), dtype=self.dtype, name=f"adapt{stride}")(taps[stride])
            )
            coarse = refine_cls(self.dtype, name=f"refine{stride}")(adapted, coarse)
            refined[stride] = coarse

        # f32[C, 2]: each class's usual (height, width) in the box head's space (log pixels
        # or pixels), shared by every stride; None without the prior.
        prior = (
            self.param(
                "class_size_prior",
                lambda key: jnp.full(
                    (dict(self.heads)["class"], 2), _box_bias(self.box_head), jnp.float32
                ),
            )
            if self.class_size_prior
            else None
        )
        outputs = {}
        for stride in self.output_strides:
            # Finer than 4: the heads run on the stride-4 features and their logits are
            # upsampled. 1x1 convs and bilinear upsampling are linear and the blend weights
            # sum to 1, so this equals the original's heads on upsampled features (spec
            # section 2) at a fraction of the cost: 1x1 convs at full resolution are most of
            # the full-resolution tail that dominates a step (spec section 11).
            features = refined[max(stride, 4)]
            outputs[stride] = {}
            # The offset head, where there is one: the decoder's centre (the mean position of
            # an energy core) is quantised to the stride, and a stem 2 px wide on the page
            # needs its centre to a fraction of a pixel for IoU 0.5. Offsets are linear in
            # position, so bilinear upsampling keeps them exact.
            for name, size in self.heads:
                logits = nn.Conv(
                    self.groups * size,
                    (1, 1),
                    dtype=self.dtype,
                    kernel_init=nn.initializers.zeros,
                    bias_init=_head_bias(
                        name, self.groups, size, self.box_head, self.class_size_prior
                    ),
                    name=f"{name}_head{stride}",
                )(features)
                logits = upsample_bilinear(logits, max(1, 4 // stride)).astype(jnp.float32)
                logits = logits.reshape(b, h // stride, w // stride, self.groups, size)
                if name == "box" and prior is not None:
                    # Expected class size under the pixel's own class probabilities. Their
                    # gradient is stopped: the box loss must not move the class head.
                    probs = jax.lax.stop_gradient(jax.nn.softmax(outputs[stride]["class"]))
                    logits = logits + probs @ prior
                if name == "box" and self.box_head == "log":
                    # Clipped to sizes of 0.02..8100 px so that exp never overflows.
                    logits = jnp.exp(jnp.clip(logits, -4.0, 9.0))
                outputs[stride][name] = logits
        return outputs


def _check(ok: bool, field: str, value, expected: str) -> None:
    if not ok:
        raise ValueError(f"config.{field} = {value!r} is invalid: expected {expected}.")


def build_model(config: ml_collections.ConfigDict) -> DWD:
    """Builds the detector from `config.model` and `config.targets`.

    Args:
      config: the full experiment config (see configs/default.py).

    Returns:
      The flax module; `model.apply(variables, images)` maps f32[B, H, W, 1] to the outputs
      described in `DWD.__call__`.

    Raises:
      ValueError: naming the config field that holds an unsupported value.
    """
    m = config.model
    _check(m.depth in RESNET_LAYOUTS, "model.depth", m.depth, f"one of {sorted(RESNET_LAYOUTS)}")
    _check(m.width > 0, "model.width", m.width, "a positive multiplier")
    _check(m.norm in NORMS, "model.norm", m.norm, f"one of {NORMS}")
    _check(m.dtype in DTYPES, "model.dtype", m.dtype, f"one of {tuple(DTYPES)}")
    _check(m.box_head in BOX_HEADS, "model.box_head", m.box_head, f"one of {BOX_HEADS}")
    allowed = (1, 2, 4, 8, 16, 32)
    strides = tuple(m.output_strides)
    _check(
        len(strides) > 0
        and all(s in allowed for s in strides)
        and len(set(strides)) == len(strides),
        "model.output_strides",
        m.output_strides,
        f"distinct strides from {allowed}",
    )
    return DWD(
        depth=m.depth,
        width=m.width,
        decoder_channels=m.decoder_channels,
        norm=m.norm,
        norm_groups=m.norm_groups,
        dtype=DTYPES[m.dtype],
        output_strides=strides,
        groups=targets.num_groups(config),
        heads=heads_lib.active(config),
        box_head=m.box_head,
        class_size_prior=bool(m.class_size_prior),
        remat=bool(m.remat),
    )


def count_params(params) -> int:
    """Number of scalar parameters in a pytree of arrays (e.g. `variables["params"]`)."""
    return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


def init_params(net: DWD, rng: jax.Array, *, side: int) -> dict:
    """Fresh parameters of `net` (their shapes do not depend on the image size).

    Args:
      net: from `build_model`.
      rng: a PRNG key.
      side: the side of the square dummy image traced (a multiple of every stride).
    """
    return net.init(rng, jnp.zeros((1, side, side, 1), jnp.float32))["params"]


def abstract_params(
    config: ml_collections.ConfigDict, sharding: jax.sharding.Sharding
) -> dict:
    """The parameters' shapes and dtypes as `jax.ShapeDtypeStruct`s placed on `sharding`,
    computed without FLOPs: the target of a checkpoint restore."""
    net = build_model(config)
    shapes = jax.eval_shape(
        lambda rng: init_params(net, rng, side=config.data.pad_multiple), jax.random.key(0)
    )
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)
