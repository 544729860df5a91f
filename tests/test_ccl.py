"""dwd_jax.decoding.ccl against scipy.ndimage.label (8-connectivity) on hostile and random masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from dwd_jax.decoding import ccl

# A handful of shapes (odd, degenerate, square) so hypothesis does not compile one per example.
SHAPES = [(1, 1), (1, 37), (37, 1), (31, 45), (64, 64)]
EIGHT = np.ones((3, 3))


def assert_same_partition(labels, count, mask):
    """`labels` is scipy's labelling up to renumbering, with ids 1..n consecutive."""
    labels, count = np.asarray(labels), int(count)
    reference, ref_count = ndi.label(mask, structure=EIGHT)
    assert count == ref_count
    np.testing.assert_array_equal(labels == 0, ~mask)
    assert set(np.unique(labels[mask]).tolist()) == set(range(1, count + 1))
    # A bijection between the two numberings: every (ours, scipy) pair is one component.
    pairs = set(zip(labels[mask].tolist(), reference[mask].tolist(), strict=True))
    assert len(pairs) == count


def spiral(n: int) -> np.ndarray:
    """A one-pixel-wide square spiral walked inwards, rings one pixel apart: one component
    about n^2 / 2 pixels long."""
    mask = np.zeros((n, n), bool)
    directions = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    y, x, d, turns = 0, 0, 0, 0
    mask[0, 0] = True
    while turns < 2:
        dy, dx = directions[d]
        ny, nx, ay, ax = y + dy, x + dx, y + 2 * dy, x + 2 * dx
        inside = 0 <= ny < n and 0 <= nx < n
        ahead_free = not (0 <= ay < n and 0 <= ax < n and mask[ay, ax])
        if inside and not mask[ny, nx] and ahead_free:
            y, x, turns = ny, nx, 0
            mask[y, x] = True
        else:
            d, turns = (d + 1) % 4, turns + 1
    return mask


def serpentine(h: int, w: int, vertical: bool = False) -> np.ndarray:
    """Rows joined alternately at the right and left ends: one component h * w / 2 long."""
    mask = np.zeros((h, w), bool)
    mask[::2] = True
    for row in range(1, h, 2):
        mask[row, w - 1 if (row // 2) % 2 == 0 else 0] = True
    return mask.T.copy() if vertical else mask


def score_like(h: int, w: int, seed: int) -> np.ndarray:
    """Staff-like horizontal lines crossed by short and long verticals, plus isolated dots."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), bool)
    mask[4 : h - 4 : 4, 2 : w - 2] = True
    for x in rng.integers(0, w, w // 4):
        y0 = rng.integers(0, h - 6)
        mask[y0 : y0 + rng.integers(2, h), x] = True
    mask[rng.integers(0, h, 20), rng.integers(0, w, 20)] = True
    return mask


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    density=st.sampled_from([0.02, 0.1, 0.3, 0.45, 0.55, 0.7, 0.9]),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_masks_match_scipy(shape, density, seed):
    mask = np.random.default_rng(seed).random(shape) < density
    assert_same_partition(*ccl.label(mask), mask)


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((31, 45), bool),
        np.ones((31, 45), bool),
        np.ones((1, 1), bool),
        np.eye(64, dtype=bool) | np.eye(64, dtype=bool)[::-1],  # A diagonal cross.
        score_like(64, 64, 0),
        score_like(64, 64, 1),
    ],
    ids=["empty", "full", "single", "diagonals", "score0", "score1"],
)
def test_special_masks_match_scipy(mask):
    assert_same_partition(*ccl.label(mask), mask)


@pytest.mark.parametrize(
    "mask",
    [spiral(64), serpentine(64, 64), serpentine(64, 64, vertical=True)],
    ids=["spiral", "serpentine", "vertical-serpentine"],
)
def test_long_thin_components_converge_in_few_iterations(mask):
    # Plain min propagation would need ~2000 iterations on these; 8 must do.
    labels, count, converged = ccl.label_with_status(mask, max_iterations=8)
    assert bool(converged)
    assert int(count) == 1
    assert_same_partition(labels, count, mask)


def test_guard_hit_is_reported():
    mask = serpentine(64, 64, vertical=True)
    *_, converged = ccl.label_with_status(mask, max_iterations=1)
    assert not bool(converged)


def test_vmap_over_batch_matches_single_masks():
    masks = np.stack([score_like(31, 45, s) for s in range(3)] + [np.zeros((31, 45), bool)])
    labels, counts = jax.vmap(ccl.label)(jnp.asarray(masks))
    for i, mask in enumerate(masks):
        assert_same_partition(labels[i], counts[i], mask)


def test_compiles_once_per_shape():
    traces = []

    @jax.jit
    def counted(mask):
        traces.append(mask.shape)
        return ccl.label(mask)

    for seed in range(4):
        counted(np.random.default_rng(seed).random((31, 45)) < 0.5)
    counted(np.zeros((45, 31), bool))
    assert traces == [(31, 45), (45, 31)]
