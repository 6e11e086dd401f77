"""Every differentiable op's backward against float64 central finite differences.

The op table (chainrule/ops, the idea of PyTorch's derivatives.yaml) holds each op's own cases;
this file adds the variants (other spellings, broadcasting, views, 0-d, composites) and runs
both through one parametrized test: each case names a function of chainrule tensors, the input
shapes and the input domain.
The finite differences are computed here with NumPy (not with cr.autograd.gradcheck), so the
oracle is independent of the library's own gradient checker, which is tested separately.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd.function import OpNode
from chainrule.tensor import apply

EPS = 1e-6
ATOL = 1e-6
RTOL = 1e-5


# ------------------------------------------------------------------ input domains
def _uniform(rng: np.random.Generator, shape: tuple[int, ...], low: float,
             high: float) -> np.ndarray:
    return rng.uniform(low, high, size=shape)


def _away_from(kinks: Sequence[float], low: float = -2.0, high: float = 2.0, gap: float = 0.1):
    """Values in [low, high] at least `gap` from every kink (abs/relu at 0, clamp at its bounds)."""

    def sample(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        x = rng.uniform(low, high, size=shape)
        for _ in range(1000):
            bad = np.zeros(shape, dtype=bool)
            for k in kinks:
                bad |= np.abs(x - k) < gap
            if not bad.any():
                return x
            x = np.where(bad, rng.uniform(low, high, size=shape), x)
        raise AssertionError("could not sample away from the kinks")

    return sample


DOMAINS: dict[str, Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]] = {
    "any": lambda rng, shape: _uniform(rng, shape, -2.0, 2.0),
    "positive": lambda rng, shape: _uniform(rng, shape, 0.5, 2.0),
    "nonzero": _away_from([0.0], gap=0.3),
    "clamp": _away_from([-0.5, 0.5]),
    "probability": lambda rng, shape: _uniform(rng, shape, 0.1, 0.9),
}


def _distinct(arrays: list[np.ndarray]) -> bool:
    """No two elements of any input within 1e-3 of each other (max/min/amax must not tie)."""
    for a in arrays:
        flat = np.sort(a.reshape(-1))
        if flat.size > 1 and np.min(np.diff(flat)) < 1e-3:
            return False
    return True


def _pairwise_apart(arrays: list[np.ndarray]) -> bool:
    """maximum/minimum: the two broadcast inputs differ by at least 0.1 everywhere."""
    a, b = np.broadcast_arrays(arrays[0], arrays[1])
    return bool(np.all(np.abs(a - b) > 0.1))


OK = {"distinct": _distinct, "apart": _pairwise_apart}


# ------------------------------------------------------------------ the table
@dataclass
class Case:
    name: str
    fn: Callable[..., cr.Tensor]
    shapes: Sequence[tuple[int, ...]]
    domain: Any = "any"  # a DOMAINS key, or one key per input
    ok: Any = None  # resample until it holds: a function, or a key of OK (the op table's cases)
    # inputs given as non-contiguous leaves (transposed views)
    transposed: Sequence[int] = field(default_factory=tuple)
    bug: str | None = None  # a known library bug: the case is xfail(strict) with this reason
    tolerance: tuple[float, float] | None = None  # (rtol, atol) instead of RTOL, ATOL

    def domains(self) -> list[str]:
        if isinstance(self.domain, str):
            return [self.domain] * len(self.shapes)
        return list(self.domain)


COND_34 = np.array([[True, False, True, False], [False, False, True, True],
                    [True, True, False, True]])
COND_4 = np.array([True, False, False, True])


def _cond(array: np.ndarray) -> cr.Tensor:
    return cr.tensor(array)


CASES: list[Case] = [
    # ---- binary elementwise, same shape and broadcast (the grad must be summed back)
    Case("add", lambda a, b: a + b, [(3, 4), (3, 4)]),
    Case("add_bcast", lambda a, b: a + b, [(3, 1), (4,)]),
    Case("add_bcast_3d", lambda a, b: a + b, [(2, 3, 4), (3, 1)]),
    Case("add_bcast_scalar_tensor", lambda a, b: a + b, [(), (2, 3)]),
    Case("cr_add", lambda a, b: cr.add(a, b), [(3, 1), (1, 4)]),
    Case("sub", lambda a, b: a - b, [(3, 4), (3, 4)]),
    Case("sub_bcast", lambda a, b: a - b, [(3, 1), (4,)]),
    Case("sub_bcast_rev", lambda a, b: a - b, [(4,), (3, 1)]),
    Case("cr_sub", lambda a, b: cr.sub(a, b), [(2, 1, 4), (3, 1)]),
    Case("mul", lambda a, b: a * b, [(3, 4), (3, 4)]),
    Case("mul_bcast", lambda a, b: a * b, [(3, 1), (4,)]),
    Case("mul_same_tensor", lambda a: a * a, [(3, 4)]),
    Case("cr_mul", lambda a, b: cr.mul(a, b), [(2, 3, 1), (1, 3, 4)]),
    Case("div", lambda a, b: a / b, [(3, 4), (3, 4)], ("any", "nonzero")),
    Case("div_bcast", lambda a, b: a / b, [(3, 1), (4,)], ("any", "nonzero")),
    Case("div_bcast_rev", lambda a, b: a / b, [(4,), (3, 1)], ("any", "nonzero")),
    Case("cr_div", lambda a, b: cr.div(a, b), [(2, 3, 4), (4,)], ("any", "positive")),
    Case("pow_tensor_tensor", lambda a, b: a ** b, [(3, 4), (3, 4)], ("positive", "any")),
    Case("pow_tensor_tensor_bcast", lambda a, b: a ** b, [(3, 1), (4,)], ("positive", "any")),
    Case("pow_tensor_tensor_bcast_rev", lambda a, b: a ** b, [(4,), (3, 1)], ("positive", "any")),
    Case("cr_pow", lambda a, b: cr.pow(a, b), [(2, 3), (3,)], ("positive", "any")),
    Case("pow_scalar_int", lambda a: a ** 3, [(3, 4)]),
    Case("pow_scalar_2", lambda a: a ** 2, [(3, 4)]),
    Case("pow_scalar_frac", lambda a: a ** 2.5, [(3, 4)], "positive"),
    Case("pow_scalar_neg", lambda a: a ** -1.5, [(3, 4)], "positive"),
    Case("pow_method", lambda a: a.pow(0.5), [(3, 4)], "positive"),
    Case("rpow_scalar", lambda a: 2.0 ** a, [(3, 4)]),
    Case("rpow_scalar_e", lambda a: 0.7 ** a, [(3, 4)]),
    # ---- reflected scalar forms and scalar right operands
    Case("radd", lambda a: 3.0 + a, [(3, 4)]),
    Case("add_scalar", lambda a: a + 2, [(3, 4)]),
    Case("rsub", lambda a: 1 - a, [(3, 4)]),
    Case("sub_scalar", lambda a: a - 2.5, [(3, 4)]),
    Case("rmul", lambda a: 2 * a, [(3, 4)]),
    Case("mul_scalar", lambda a: a * -1.5, [(3, 4)]),
    Case("rdiv", lambda a: 1.0 / a, [(3, 4)], "nonzero"),
    Case("rdiv_int", lambda a: 3 / a, [(3, 4)], "nonzero"),
    Case("div_scalar", lambda a: a / 3.0, [(3, 4)]),
    # ---- unary
    Case("cr_neg", lambda a: cr.neg(a), [(3, 4)]),
    Case("cr_exp", lambda a: cr.exp(a), [(2, 3, 4)]),
    Case("cr_log", lambda a: cr.log(a), [(3, 4)], "positive"),
    Case("cr_sqrt", lambda a: cr.sqrt(a), [(3, 4)], "positive"),
    Case("abs", lambda a: a.abs(), [(3, 4)], "nonzero"),
    Case("cr_abs", lambda a: cr.abs(a), [(3, 4)], "nonzero"),
    Case("cr_sigmoid", lambda a: cr.sigmoid(a), [(3, 4)]),
    Case("cr_tanh", lambda a: cr.tanh(a), [(3, 4)]),
    Case("cr_relu", lambda a: cr.relu(a), [(3, 4)], "nonzero"),
    Case("cr_sin_cos", lambda a: cr.sin(a) * cr.cos(a), [(3, 4)]),
    Case("cr_square", lambda a: cr.square(a), [(3, 4)]),
    Case("clamp_max", lambda a: a.clamp(max=0.5), [(3, 4)], "clamp"),
    Case("cr_clamp_both", lambda a: cr.clamp(a, min=-0.5, max=0.5), [(3, 4)], "clamp"),
    # ---- softmax / log_softmax along each dim
    Case("softmax_dim0", lambda a: a.softmax(0), [(3, 4)]),
    Case("softmax_dim1", lambda a: a.softmax(1), [(3, 4)]),
    Case("softmax_dim_neg1", lambda a: a.softmax(-1), [(3, 4)]),
    Case("softmax_3d_dim0", lambda a: a.softmax(0), [(2, 3, 4)]),
    Case("softmax_3d_dim1", lambda a: cr.softmax(a, 1), [(2, 3, 4)]),
    Case("softmax_3d_dim2", lambda a: a.softmax(2), [(2, 3, 4)]),
    Case("softmax_1d", lambda a: a.softmax(0), [(5,)]),
    Case("log_softmax_dim0", lambda a: a.log_softmax(0), [(3, 4)]),
    Case("log_softmax_dim1", lambda a: a.log_softmax(1), [(3, 4)]),
    Case("log_softmax_dim_neg2", lambda a: a.log_softmax(-2), [(3, 4)]),
    Case("log_softmax_3d_dim0", lambda a: a.log_softmax(0), [(2, 3, 4)]),
    Case("log_softmax_3d_dim1", lambda a: cr.log_softmax(a, 1), [(2, 3, 4)]),
    Case("log_softmax_3d_dim2", lambda a: a.log_softmax(2), [(2, 3, 4)]),
    # ---- maximum / minimum / where (with broadcasting)
    Case("maximum", lambda a, b: cr.maximum(a, b), [(3, 4), (3, 4)], ok=_pairwise_apart),
    Case("maximum_bcast", lambda a, b: cr.maximum(a, b), [(3, 1), (4,)], ok=_pairwise_apart),
    Case("minimum", lambda a, b: cr.minimum(a, b), [(3, 4), (3, 4)], ok=_pairwise_apart),
    Case("minimum_bcast", lambda a, b: cr.minimum(a, b), [(3, 1), (4,)], ok=_pairwise_apart),
    Case("max_elementwise_method", lambda a, b: a.max(b), [(3, 4), (4,)], ok=_pairwise_apart),
    Case("where", lambda a, b: cr.where(_cond(COND_34), a, b), [(3, 4), (3, 4)]),
    Case("where_bcast", lambda a, b: cr.where(_cond(COND_34), a, b), [(3, 1), (4,)]),
    Case("where_bcast_cond", lambda a, b: cr.where(_cond(COND_4), a, b), [(3, 4), (3, 1)]),
    Case("where_scalar_other", lambda a: cr.where(_cond(COND_34), a, 0.0), [(3, 4)]),
    # ---- reductions
    Case("sum_all", lambda a: a.sum(), [(3, 4)]),
    Case("sum_dim0", lambda a: a.sum(0), [(3, 4)]),
    Case("sum_dim_neg1", lambda a: a.sum(-1), [(2, 3, 4)]),
    Case("sum_tuple", lambda a: a.sum((0, 2)), [(2, 3, 4)]),
    Case("sum_tuple_neg", lambda a: a.sum((-1, 0)), [(2, 3, 4)]),
    Case("sum_keepdim", lambda a: a.sum(1, keepdim=True), [(2, 3, 4)]),
    Case("sum_tuple_keepdim", lambda a: a.sum((0, 2), keepdim=True), [(2, 3, 4)]),
    Case("sum_all_keepdim", lambda a: a.sum(None, keepdim=True), [(2, 3)]),
    Case("cr_sum", lambda a: cr.sum(a, 1), [(3, 4)]),
    Case("mean_all", lambda a: a.mean(), [(3, 4)]),
    Case("mean_dim0", lambda a: a.mean(0), [(3, 4)]),
    Case("mean_dim_neg1", lambda a: a.mean(-1), [(2, 3, 4)]),
    Case("mean_tuple", lambda a: a.mean((0, 2)), [(2, 3, 4)]),
    Case("mean_keepdim", lambda a: a.mean(1, keepdim=True), [(2, 3, 4)]),
    Case("mean_tuple_keepdim", lambda a: a.mean((1, 2), keepdim=True), [(2, 3, 4)]),
    Case("cr_mean", lambda a: cr.mean(a, (0, 1)), [(2, 3, 4)]),
    Case("amax_all", lambda a: a.amax(), [(3, 4)], ok=_distinct),
    Case("amax_dim0", lambda a: a.amax(0), [(3, 4)], ok=_distinct),
    Case("amax_dim_neg1", lambda a: a.amax(-1), [(2, 3, 4)], ok=_distinct),
    Case("amax_tuple", lambda a: a.amax((0, 2)), [(2, 3, 4)], ok=_distinct),
    Case("amax_keepdim", lambda a: a.amax(1, keepdim=True), [(2, 3, 4)], ok=_distinct),
    Case("amax_tuple_keepdim", lambda a: a.amax((0, 1), keepdim=True), [(2, 3, 4)], ok=_distinct),
    Case("cr_amax", lambda a: cr.amax(a, 1), [(3, 4)], ok=_distinct),
    Case("amin_all", lambda a: a.amin(), [(3, 4)], ok=_distinct),
    Case("amin_dim0", lambda a: a.amin(0), [(3, 4)], ok=_distinct),
    Case("amin_dim_neg1", lambda a: a.amin(-1), [(2, 3, 4)], ok=_distinct),
    Case("amin_tuple", lambda a: a.amin((0, 2)), [(2, 3, 4)], ok=_distinct),
    Case("amin_keepdim", lambda a: a.amin(1, keepdim=True), [(2, 3, 4)], ok=_distinct),
    Case("cr_amin", lambda a: cr.amin(a, (0, 2), True), [(2, 3, 4)], ok=_distinct),
    Case("max_all", lambda a: a.max(), [(3, 4)], ok=_distinct),
    Case("min_all", lambda a: a.min(), [(3, 4)], ok=_distinct),
    Case("max_dim0_values", lambda a: a.max(0).values, [(3, 4)], ok=_distinct),
    Case("max_dim1_values", lambda a: a.max(1)[0], [(3, 4)], ok=_distinct),
    Case("max_dim_neg1_values", lambda a: a.max(-1).values, [(2, 3, 4)], ok=_distinct),
    Case("max_dim1_keepdim_values", lambda a: a.max(1, keepdim=True).values, [(2, 3, 4)],
         ok=_distinct),
    Case("min_dim0_values", lambda a: a.min(0).values, [(3, 4)], ok=_distinct),
    Case("min_dim1_values", lambda a: a.min(dim=1).values, [(2, 3, 4)], ok=_distinct),
    Case("min_dim2_keepdim_values", lambda a: a.min(2, keepdim=True)[0], [(2, 3, 4)], ok=_distinct),
    Case("cr_max_dim", lambda a: cr.max(a, 0).values, [(2, 3, 4)], ok=_distinct),
    Case("cr_min_dim", lambda a: cr.min(a, 1).values, [(3, 4)], ok=_distinct),
    # ---- matmul: 1-D, 2-D, batched, broadcast batch
    Case("matmul_1d_1d", lambda a, b: a @ b, [(3,), (3,)]),
    Case("matmul_1d_2d", lambda a, b: a @ b, [(3,), (3, 4)]),
    Case("matmul_2d_1d", lambda a, b: a @ b, [(2, 3), (3,)]),
    Case("matmul_2d_2d", lambda a, b: a @ b, [(2, 3), (3, 4)]),
    Case("matmul_batched", lambda a, b: a @ b, [(5, 2, 3), (5, 3, 4)]),
    Case("matmul_batched_2d", lambda a, b: a @ b, [(5, 2, 3), (3, 4)]),
    Case("matmul_2d_batched", lambda a, b: a @ b, [(2, 3), (5, 3, 4)]),
    Case("matmul_bcast_batch", lambda a, b: a @ b, [(5, 1, 2, 3), (4, 3, 2)]),
    Case("matmul_bcast_batch_ones", lambda a, b: a @ b, [(1, 2, 3), (4, 3, 2)]),
    Case("matmul_1d_batched", lambda a, b: a @ b, [(3,), (5, 3, 4)]),
    Case("matmul_batched_1d", lambda a, b: a @ b, [(5, 2, 3), (3,)]),
    Case("cr_matmul", lambda a, b: cr.matmul(a, b), [(2, 3), (3, 4)]),
    Case("matmul_method", lambda a, b: a.matmul(b), [(2, 2, 3), (3, 4)]),
    Case("matmul_transposed_leaf", lambda a, b: a @ b, [(2, 4), (4, 3)], transposed=(0, 1)),
    # ---- shapes and views
    Case("reshape_tuple_neg1", lambda a: a.reshape((2, -1)) * 1.0, [(2, 3, 4)]),
    Case("cr_reshape", lambda a: cr.reshape(a, (12,)), [(3, 4)]),
    Case("view", lambda a: a.view(6, 2), [(3, 4)]),
    Case("view_neg1", lambda a: a.view(-1), [(2, 3, 4)]),
    Case("transpose", lambda a: a.transpose(0, 1), [(3, 4)]),
    Case("transpose_3d", lambda a: a.transpose(0, 2), [(2, 3, 4)]),
    Case("transpose_neg", lambda a: cr.transpose(a, -1, -2), [(2, 3, 4)]),
    Case("T", lambda a: a.T, [(3, 4)]),
    Case("T_then_mul", lambda a, b: a.T * b, [(3, 4), (4, 3)]),
    Case("permute_tuple", lambda a: a.permute((1, 2, 0)), [(2, 3, 4)]),
    Case("permute_neg", lambda a: cr.permute(a, (-1, 0, 1)), [(2, 3, 4)]),
    Case("unsqueeze0", lambda a: a.unsqueeze(0), [(3, 4)]),
    Case("unsqueeze_neg1", lambda a: a.unsqueeze(-1), [(3, 4)]),
    Case("unsqueeze_mid", lambda a: cr.unsqueeze(a, 1), [(3, 4)]),
    Case("squeeze_all", lambda a: a.squeeze(), [(3, 1, 4, 1)]),
    Case("squeeze_dim", lambda a: a.squeeze(1), [(3, 1, 4)]),
    Case("squeeze_dim_noop", lambda a: a.squeeze(0), [(3, 1, 4)]),
    Case("cr_squeeze", lambda a: cr.squeeze(a, -1), [(3, 4, 1)]),
    Case("flatten", lambda a: a.flatten(), [(2, 3, 4)]),
    Case("flatten_start", lambda a: a.flatten(1), [(2, 3, 4)]),
    Case("flatten_range", lambda a: cr.flatten(a, 0, 1), [(2, 3, 4)]),
    Case("expand", lambda a: a.expand(3, 4), [(3, 1)]),
    Case("expand_new_dims", lambda a: a.expand(2, 3, 4), [(4,)]),
    Case("expand_neg1", lambda a: a.expand(-1, 4), [(3, 1)]),
    Case("expand_tuple", lambda a: a.expand((2, 3, 4)) * 2.0, [(3, 1)]),
    Case("contiguous", lambda a: a.T.contiguous(), [(3, 4)]),
    Case("contiguous_of_transposed_leaf", lambda a: a.contiguous(), [(4, 3)], transposed=(0,)),
    # ---- basic indexing
    Case("index_int", lambda a: a[1], [(3, 4)]),
    Case("index_neg_int", lambda a: a[-1], [(3, 4)]),
    Case("index_int_int", lambda a: a[1, 2], [(3, 4)]),
    Case("index_col", lambda a: a[:, 1], [(3, 4)]),
    Case("index_slice", lambda a: a[1:3], [(4, 3)]),
    Case("index_slice_step", lambda a: a[::2], [(5, 3)]),
    Case("index_slice_start_step", lambda a: a[1::2, ::3], [(5, 7)]),
    Case("index_slice_neg", lambda a: a[-3:-1], [(5, 3)]),
    Case("index_none", lambda a: a[None], [(3, 4)]),  # a bare None, not in a tuple
    Case("index_none_tuple", lambda a: a[None, :, 1], [(3, 4)]),
    Case("index_ellipsis_none", lambda a: a[..., None], [(3, 4)]),
    Case("index_ellipsis_int", lambda a: a[..., 1], [(2, 3, 4)]),
    Case("index_mixed", lambda a: a[0, ..., 1::2], [(2, 3, 4)]),
    Case("index_mixed_none", lambda a: a[1, None, :, ::2], [(2, 3, 4)]),
    Case("index_twice", lambda a: a[1:][0], [(3, 4)]),
    Case("index_overlapping_uses", lambda a: a[0] * a[1:].sum(0) + a[:, 0].sum(), [(3, 4)]),
    # ---- integer-tensor and mask indexing on the first dim (copies; backward scatter-adds)
    Case("index_int_tensor", lambda a: a[cr.tensor([2, 0])], [(3, 4)]),
    Case("index_int_tensor_repeats", lambda a: a[cr.tensor([1, 1, 0, 1])], [(3, 4)]),
    Case("index_int_list_then_basic", lambda a: a[[0, 2], 1:], [(3, 4)]),
    Case("index_bool_mask", lambda a: a[cr.tensor([True, False, True])], [(3, 4)]),
    Case("index_select", lambda a: a.index_select(1, cr.tensor([3, 0, 3])), [(3, 4)]),
    # ---- cat / stack
    Case("cat_dim0", lambda a, b: cr.cat([a, b], 0), [(2, 3), (1, 3)]),
    Case("cat_dim1", lambda a, b: cr.cat([a, b, a], dim=1), [(2, 3), (2, 1)]),
    Case("cat_dim_neg1", lambda a, b: cr.cat([a * 2.0, b.exp()], -1), [(2, 2, 3), (2, 2, 1)]),
    Case("stack_dim0", lambda a, b: cr.stack([a, b], 0), [(2, 3), (2, 3)]),
    Case("stack_dim_last", lambda a, b: cr.stack([a, b, a * b], dim=-1), [(2, 3), (2, 3)]),
    # ---- casts
    Case("to_float64_same", lambda a: a.to(cr.float64) * 2.0, [(3, 4)]),
    Case("double", lambda a: a.double().exp(), [(3, 4)]),
    # ---- non-contiguous leaves through elementwise and reductions
    Case("mul_transposed_leaf", lambda a, b: a * b, [(4, 3), (4, 3)], transposed=(0,)),
    Case("add_transposed_leaf_bcast", lambda a, b: a + b, [(4, 3), (3,)], transposed=(0,)),
    Case("exp_transposed_leaf", lambda a: a.exp(), [(4, 3)], transposed=(0,)),
    Case("sum_transposed_leaf", lambda a: a.sum(0), [(4, 3)], transposed=(0,)),
    Case("softmax_transposed_leaf", lambda a: a.softmax(1), [(4, 3)], transposed=(0,)),
    Case("view_of_transposed_reshape", lambda a: a.reshape(12), [(4, 3)], transposed=(0,)),
    Case("index_transposed_leaf", lambda a: a[1:, ::2], [(4, 3)], transposed=(0,)),
    # ---- 0-d tensors
    Case("exp_0d", lambda a: a.exp(), [()]),
    Case("mul_0d_bcast", lambda a, b: a * b, [(), (3,)]),
    Case("sum_0d", lambda a: (a * 2.0).sum(), [()]),
    Case("expand_0d", lambda a: a.expand(2, 3), [()]),
    Case("index_to_0d", lambda a: a[2] * a[0], [(4,)]),
    Case("matmul_size_one_dims", lambda a, b: a @ b, [(1, 3), (3, 1)]),
    # ---- composites (several ops, shared inputs)
    Case("composite_mlp", lambda x, w, b: ((x @ w.T + b).tanh() ** 2).sum(1),
         [(5, 3), (4, 3), (4,)]),
    Case("composite_logistic", lambda x, w: -((x @ w).sigmoid().log()).mean(), [(5, 3), (3,)]),
    Case("composite_diamond", lambda a: a.exp() * a.sin() + a / (1 + a * a), [(3, 4)]),
]


def _from_table(case: cr.ops.Case) -> Case:
    return Case("table:" + case.name, case.fn, case.shapes, case.domain, case.ok, case.transposed,
                tolerance=case.tolerance)


# The op table's own cases: every op in the table is checked here (tests/test_ops_table.py fails
# for an op without one).
TABLE_CASES = [_from_table(c) for entry in cr.ops.TABLE.values() for c in entry.cases]
CASES += TABLE_CASES


def test_case_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


# ------------------------------------------------------------------ the checker
def _sample_inputs(case: Case, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        arrays = [DOMAINS[d](rng, tuple(s)) for d, s in zip(case.domains(), case.shapes)]
        ok = OK.get(case.ok, case.ok) if isinstance(case.ok, str) else case.ok
        if ok is None or ok(arrays):
            return arrays
    raise AssertionError(f"{case.name}: could not sample valid inputs")


def _leaf(array: np.ndarray, transposed: bool) -> cr.Tensor:
    """A float64 leaf that requires grad; a non-contiguous one (a transposed view) if asked."""
    if not transposed:
        return cr.tensor(array, dtype=cr.float64, requires_grad=True)
    assert array.ndim == 2
    storage = cr.tensor(np.ascontiguousarray(array.T), dtype=cr.float64)
    leaf = storage.T.detach().requires_grad_()
    assert leaf.is_leaf and not leaf.is_contiguous() and leaf.shape == array.shape
    return leaf


def _forward_numpy(case: Case, arrays: list[np.ndarray]) -> np.ndarray:
    with cr.no_grad():
        out = case.fn(*[cr.tensor(a, dtype=cr.float64) for a in arrays])
    result = np.array(out.numpy(), dtype=np.float64)
    return result


def _numerical_grads(case: Case, arrays: list[np.ndarray], weights: np.ndarray) -> list[np.ndarray]:
    """d sum(weights * f(inputs)) / d input, by central differences over every element."""
    grads = []
    for i, array in enumerate(arrays):
        grad = np.zeros_like(array)
        for k in np.ndindex(array.shape):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[i][k] += EPS
            minus[i][k] -= EPS
            f_plus = np.sum(weights * _forward_numpy(case, plus))
            f_minus = np.sum(weights * _forward_numpy(case, minus))
            grad[k] = (f_plus - f_minus) / (2 * EPS)
        grads.append(grad)
    return grads


def _params(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(reason=c.bug, strict=True)]
                         if c.bug else []) for c in cases]


@pytest.mark.parametrize("case", _params(CASES))
def test_gradient_matches_finite_differences(case: Case):
    arrays = _sample_inputs(case, seed=zlib.crc32(case.name.encode()))
    leaves = [_leaf(a, i in case.transposed) for i, a in enumerate(arrays)]
    out = case.fn(*leaves)
    assert out.requires_grad and out.grad_fn is not None
    assert out.dtype == cr.float64

    # forward value: the same function on fresh, contiguous inputs (the op's own result)
    reference = _forward_numpy(case, arrays)
    assert out.shape == reference.shape
    np.testing.assert_allclose(out.numpy(), reference, rtol=1e-12, atol=1e-12)

    # a random upstream gradient, so every output element is weighted differently
    weights = np.random.default_rng(1234).uniform(0.5, 1.5, size=out.shape)
    out.backward(gradient=cr.tensor(weights, dtype=cr.float64))

    expected = _numerical_grads(case, arrays, weights)
    for i, (leaf, numerical) in enumerate(zip(leaves, expected)):
        assert leaf.grad is not None, f"{case.name}: input {i} got no gradient"
        assert leaf.grad.shape == leaf.shape, (
            f"{case.name}: input {i} has shape {leaf.shape} but its grad {leaf.grad.shape}")
        assert leaf.grad.dtype == cr.float64
        rtol, atol = case.tolerance or (RTOL, ATOL)
        np.testing.assert_allclose(leaf.grad.numpy(), numerical, rtol=rtol, atol=atol,
                                   err_msg=f"{case.name}: input {i}")


# The table's forward check above is the op against itself; basic indexing's results (shape and
# values) are checked against NumPy here, with a gradient that must land on the selected elements.
INDEXES = [1, -1, (1, 2), (slice(None), 1), slice(1, 3), slice(None, None, 2),
           (slice(1, None, 2), slice(None, None, 3)), slice(-3, -1), None, (Ellipsis, None),
           (Ellipsis, 1), (0, Ellipsis, slice(1, None, 2)),
           (1, None, slice(None), slice(None, None, 2)), (None, slice(None), 1)]


@pytest.mark.parametrize("index", INDEXES, ids=[repr(i) for i in INDEXES])
def test_basic_indexing_matches_numpy(index):
    base = np.arange(2 * 5 * 7, dtype=np.float64).reshape(2, 5, 7)
    x = cr.tensor(base, dtype=cr.float64, requires_grad=True)
    out = x[index]
    expected = base[index]
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)
    assert out.grad_fn is not None
    out.backward(cr.ones_like(out))
    mask = np.zeros_like(base)
    mask[index] = 1.0
    np.testing.assert_array_equal(x.grad.numpy(), mask)


# ------------------------------------------------------------------ exact gradients (no FD)
def test_scalar_pow_zero_exponent_gradient():
    # d x^0 / dx = 0 everywhere, x = 0 included (PyTorch masks exponent == 0)
    x = cr.tensor([0.0, 1.5, -2.0], dtype=cr.float64, requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])


def test_pow_zero_base_gradients_are_finite_as_in_torch():
    a = cr.tensor([0.0, 0.0, 2.0], dtype=cr.float64, requires_grad=True)
    b = cr.tensor([2.0, 0.0, 1.0], dtype=cr.float64, requires_grad=True)
    (a ** b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(b.grad.numpy(), [0.0, 0.0, 2.0 * np.log(2.0)])


def test_rpow_zero_base_gradient_is_zero_as_in_torch():
    b = cr.tensor([2.0, 0.0, 1.0], dtype=cr.float64, requires_grad=True)
    (0.0 ** b).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), [0.0, 0.0, 0.0])


def test_pow_negative_base_integer_exponent():
    x = cr.tensor([-2.0, -0.5, 3.0], dtype=cr.float64, requires_grad=True)
    (x ** 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.array([-2.0, -0.5, 3.0]) ** 2)


def test_cast_float32_leaf_through_float64_ops_gets_float32_grad():
    xs = np.array([[0.5, -1.25, 2.0], [1.5, 0.25, -0.75]], dtype=np.float32)
    x = cr.tensor(xs, requires_grad=True)
    assert x.dtype == cr.float32
    y = x.to(cr.float64)
    assert y.dtype == cr.float64 and y.requires_grad
    (y * y * 3.0).sum().backward()
    assert x.grad.dtype == cr.float32
    assert x.grad.shape == x.shape
    np.testing.assert_allclose(x.grad.numpy(), 6.0 * xs.astype(np.float64), rtol=1e-6)


def test_cast_float64_to_float32_grad_is_float64():
    xs = np.array([0.3, -1.7, 2.2])
    x = cr.tensor(xs, dtype=cr.float64, requires_grad=True)
    y = x.to(cr.float32)
    assert y.dtype == cr.float32
    (y.exp()).sum().backward()
    assert x.grad.dtype == cr.float64
    np.testing.assert_allclose(x.grad.numpy(), np.exp(xs), rtol=1e-6)


def test_to_same_dtype_is_identity_and_float_cast():
    x = cr.tensor([1.0, 2.0], dtype=cr.float64, requires_grad=True)
    assert x.to(cr.float64) is x
    y = x.float()
    assert y.dtype == cr.float32
    (y * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_max_dim_gradient_goes_to_the_argmax_index():
    x = cr.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], dtype=cr.float64, requires_grad=True)
    values, indices = x.max(1)
    assert indices.tolist() == [1, 0]
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [1, 0, 0]])


def test_amax_ties_share_gradient():
    # PyTorch's amax rule: tied maxima share the gradient evenly
    x = cr.tensor([[2.0, 2.0, 1.0], [0.0, 3.0, 3.0]], dtype=cr.float64, requires_grad=True)
    x.amax(1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])


def test_maximum_tie_splits_gradient():
    a = cr.tensor([1.0, 2.0, 3.0], dtype=cr.float64, requires_grad=True)
    b = cr.tensor([1.0, 5.0, 0.0], dtype=cr.float64, requires_grad=True)
    cr.maximum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [0.5, 0.0, 1.0])
    np.testing.assert_allclose(b.grad.numpy(), [0.5, 1.0, 0.0])


def test_relu_abs_clamp_gradients_on_both_sides():
    x = cr.tensor([-1.5, -0.2, 0.3, 2.0], dtype=cr.float64, requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0, 1, 1])
    x.grad = None
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1, -1, 1, 1])
    x.grad = None
    x.clamp(-1.0, 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 0])


# ------------------------------------------------------------------ gradcheck itself
class _WrongSquare(OpNode):
    """x^2 with a wrong backward (x instead of 2x)."""

    @staticmethod
    def forward(ctx: Any, a: Any) -> Any:
        ctx.save_for_backward(a)
        return cr._core.mul(a, a)

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (cr._core.mul(g, a),)


class _RightSquare(_WrongSquare):
    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (cr._core.mul(g, cr._core.mul(a, 2.0)),)


def test_gradcheck_returns_true_on_correct_function():
    x = cr.tensor([[0.5, -1.0, 2.0], [0.1, 0.7, -0.3]], dtype=cr.float64, requires_grad=True)
    w = cr.tensor([0.3, -0.2, 1.1], dtype=cr.float64, requires_grad=True)
    assert cr.autograd.gradcheck(lambda a, b: (a * b).sigmoid() @ b, (x, w)) is True
    assert cr.autograd.gradcheck(lambda a: a.softmax(1), (x,)) is True


def test_gradcheck_returns_true_on_correct_custom_function():
    x = cr.tensor([0.5, -1.0, 2.0], dtype=cr.float64, requires_grad=True)
    assert cr.autograd.gradcheck(lambda a: apply(_RightSquare, a), (x,)) is True


def test_gradcheck_raises_on_wrong_backward():
    assert issubclass(cr.autograd.GradcheckError, RuntimeError)
    x = cr.tensor([0.5, -1.0, 2.0], dtype=cr.float64, requires_grad=True)
    # the custom op's own forward is right
    np.testing.assert_allclose(apply(_WrongSquare, x).numpy(), [0.25, 1.0, 4.0])
    with pytest.raises(cr.autograd.GradcheckError):
        cr.autograd.gradcheck(lambda a: apply(_WrongSquare, a), (x,))
    with pytest.raises(RuntimeError):
        cr.autograd.gradcheck(lambda a: apply(_WrongSquare, a).sum(), (x,))
    # gradcheck restored the input it perturbed
    np.testing.assert_array_equal(x.detach().numpy(), [0.5, -1.0, 2.0])


def test_gradcheck_accepts_single_tensor_input():
    x = cr.tensor([0.5, 1.5], dtype=cr.float64, requires_grad=True)
    assert cr.autograd.gradcheck(lambda a: a.log() * a, x) is True


GRADCHECK_CASES = [c for c in CASES if not c.transposed and c.tolerance is None]


@pytest.mark.parametrize("case", _params(GRADCHECK_CASES[::4]))
def test_library_gradcheck_agrees_on_table(case: Case):
    arrays = _sample_inputs(case, seed=zlib.crc32(case.name.encode()))
    leaves = [cr.tensor(a, dtype=cr.float64, requires_grad=True) for a in arrays]
    assert cr.autograd.gradcheck(case.fn, leaves) is True


# ------------------------------------------------------------------ against torch
def _torch_composites():
    return [
        ("mlp_tanh", lambda m, x, w1, b1, w2: (m.tanh(x @ w1.T + b1) @ w2).sum(),
         [(5, 3), (4, 3), (4,), (4,)]),
        ("softmax_xent", lambda m, x, w: -(m.log_softmax(x @ w, 1)[:, 0]).mean(),
         [(5, 3), (3, 4)]),
        ("broadcast_mix", lambda m, a, b: ((a * b + a / (b * b + 1.0)) ** 2).mean(0).sum(),
         [(3, 1), (4,)]),
        ("batched_matmul_softmax", lambda m, a, b: m.softmax(a @ b, -1).amax(1).sum(),
         [(2, 3, 4), (4, 5)]),
        ("views_and_index", lambda m, a: (a.permute(2, 0, 1)[1:, ..., ::2].reshape(-1)
                                          * a.transpose(0, 1).flatten()[:6].sum()).exp().sum(),
         [(2, 3, 4)]),
        ("sigmoid_clamp_sqrt", lambda m, a: m.sqrt(m.sigmoid(a).clamp(min=0.2) + 1.0).sum(),
         [(3, 4)]),
    ]


class _CrNamespace:
    tanh = staticmethod(cr.tanh)
    sigmoid = staticmethod(cr.sigmoid)
    sqrt = staticmethod(cr.sqrt)
    log_softmax = staticmethod(cr.log_softmax)
    softmax = staticmethod(cr.softmax)


@pytest.mark.parametrize("name,fn,shapes", _torch_composites(),
                         ids=[c[0] for c in _torch_composites()])
def test_composite_gradients_match_torch(name, fn, shapes):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    arrays = [rng.uniform(-1.5, 1.5, size=s) for s in shapes]
    cr_in = [cr.tensor(a, dtype=cr.float64, requires_grad=True) for a in arrays]
    th_in = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    cr_out = fn(_CrNamespace, *cr_in)
    th_out = fn(torch, *th_in)
    np.testing.assert_allclose(cr_out.item(), th_out.item(), rtol=1e-10)
    cr_out.backward()
    th_out.backward()
    for c, t in zip(cr_in, th_in):
        assert c.grad.shape == tuple(t.grad.shape)
        np.testing.assert_allclose(c.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ large tensors (threaded)
def test_large_broadcast_gradients_match_numpy():
    # big enough for the threaded / vectorized paths (> 32,768 elements)
    rng = np.random.default_rng(3)
    a_np = rng.normal(size=(300, 1))
    b_np = rng.normal(size=(200,))
    g_np = rng.normal(size=(300, 200))
    a = cr.tensor(a_np, dtype=cr.float64, requires_grad=True)
    b = cr.tensor(b_np, dtype=cr.float64, requires_grad=True)
    (a * b + a).backward(cr.tensor(g_np, dtype=cr.float64))
    np.testing.assert_allclose(a.grad.numpy(), (g_np * (b_np + 1.0)).sum(1, keepdims=True),
                               rtol=1e-10)
    np.testing.assert_allclose(b.grad.numpy(), (g_np * a_np).sum(0), rtol=1e-10)


def test_large_matmul_gradients_match_numpy_with_transposed_leaves():
    rng = np.random.default_rng(4)
    a_np = rng.normal(size=(130, 70))
    b_np = rng.normal(size=(70, 90))
    g_np = rng.normal(size=(130, 90))
    for dtype, rtol in ((cr.float64, 1e-10), (cr.float32, 1e-4)):
        a = cr.tensor(a_np, dtype=dtype, requires_grad=True)
        b = cr.tensor(np.ascontiguousarray(b_np.T), dtype=dtype).T.detach().requires_grad_()
        assert not b.is_contiguous()
        (a @ b).backward(cr.tensor(g_np, dtype=dtype))
        assert a.grad.shape == (130, 70) and b.grad.shape == (70, 90)
        np.testing.assert_allclose(a.grad.numpy(), g_np @ b_np.T, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(b.grad.numpy(), a_np.T @ g_np, rtol=rtol, atol=rtol)


def test_large_batched_matmul_broadcast_batch_gradient():
    rng = np.random.default_rng(5)
    a_np = rng.normal(size=(6, 40, 30))
    b_np = rng.normal(size=(30, 50))
    a = cr.tensor(a_np, dtype=cr.float64, requires_grad=True)
    b = cr.tensor(b_np, dtype=cr.float64, requires_grad=True)
    (a @ b).sum().backward()
    g = np.ones((6, 40, 50))
    np.testing.assert_allclose(a.grad.numpy(), g @ b_np.T, rtol=1e-10)
    np.testing.assert_allclose(b.grad.numpy(), (a_np.transpose(0, 2, 1) @ g).sum(0), rtol=1e-10)


def test_large_softmax_and_reduction_gradients_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x_np = rng.normal(size=(256, 300))
    x = cr.tensor(x_np, dtype=cr.float64, requires_grad=True)
    xt = torch.tensor(x_np, requires_grad=True)
    (x.log_softmax(1).amax(0) * x.tanh().mean(0)).sum().backward()
    (xt.log_softmax(1).amax(0) * xt.tanh().mean(0)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
