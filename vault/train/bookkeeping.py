"""Book-keeping per-sample clipping: DP-SGD's clipped gradient sum in one backward pass.

Opacus' hooks materialise every per-sample gradient and then clip and sum them; its ghost
clipping computes the per-sample norms in a first backward pass and runs a second one on a
reweighted loss. Book-keeping (Bu et al., "Differentially private optimization on large model at
small cost", ICML 2023) needs one: the forward keeps each layer's input, the backward keeps each
layer's output gradient, and from those two the norms *and* the clipped sum follow directly:

    clipped sum of layer L = sum_i c_i * grad_i(L) = a_L^T diag(c) g_L,   c_i = min(1, C / ||grad_i||)

The layer weights are left out of autograd's graph during the forward (the backward then only
computes what flows to earlier layers), so the weight gradients are computed once, already
clipped. Per layer, the per-sample norm is taken the cheaper way: from the per-sample gradient
(cost T*D*P for T positions, D inputs, P outputs), or from the "ghost" Gram matrices
(cost T^2*(D+P)), as Li et al. (2022) and Opacus' ghost clipping do.

The clipped sum lands in `p.grad`; Opacus' DPOptimizerFastGradientClipping adds the noise,
scales and steps, and its accountant, Poisson data loader and BatchMemoryManager run as usual.
Supported layers: Linear, Conv2d (groups 1, zero padding), GroupNorm, LayerNorm, Embedding.
`unsupported` names the first trainable layer outside that set, so callers fall back to Opacus.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# A layer's per-sample gradients are kept (rather than recomputed as one clipped weight gradient)
# when they take at most this many bytes for the batch: summing kept ones is almost free.
KEEP_PER_SAMPLE_BYTES = 8 * 2**20
# The patches or Gram matrices computed at once for the per-sample norms stay under this.
CHUNK_BYTES = 8 * 2**20


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters(recurse=False) if p.requires_grad]


def unsupported(model: nn.Module) -> str | None:
    """The first module holding trainable parameters that book-keeping cannot clip, or None."""
    for name, module in model.named_modules():
        if not _trainable(module):
            continue
        if isinstance(module, nn.Conv2d):
            if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
                return f"{name} ({type(module).__name__} with groups or non-zero padding)"
        elif isinstance(module, nn.Embedding):
            if module.max_norm is not None or module.sparse:
                return f"{name} (Embedding with max_norm or sparse gradients)"
        elif not isinstance(module, (nn.Linear, nn.GroupNorm, nn.LayerNorm)):
            return f"{name} ({type(module).__name__})"
    return None


class _GraphStart(torch.autograd.Function):
    """Identity on a tensor that needs no gradient, made part of the graph through a dummy leaf
    (`anchor`) so that its output gradient reaches `hook`; nothing flows further back."""

    @staticmethod
    def forward(ctx: Any, output: torch.Tensor, anchor: torch.Tensor, hook: Any) -> torch.Tensor:
        ctx.hook = hook
        return output.view_as(output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, None]:
        ctx.hook(grad)
        return None, None, None


@dataclass
class _Capture:
    """One layer's share of a batch: its input, then its output gradient."""

    module: nn.Module
    activation: torch.Tensor | None
    backprop: torch.Tensor | None = None
    reached: bool = False  # the backward pass got to this layer
    kept: dict[str, torch.Tensor] = field(default_factory=dict)  # per-sample gradients kept


class BookkeepingClipper:
    """Wraps a model: `forward` records what the clipping needs, `clip` writes the clipped sum of
    per-sample gradients (of a loss summed over the batch) into each parameter's `.grad`."""

    def __init__(self, model: nn.Module, max_grad_norm: float, *, tune: bool = True) -> None:
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"book-keeping clipping does not support {reason}")
        self.model = model
        self.max_grad_norm = float(max_grad_norm)
        self.layers = [m for m in model.modules() if _trainable(m)]
        self.params = [p for m in self.layers for p in _trainable(m)]
        self._captures: dict[nn.Module, _Capture] = {}
        self._norms: torch.Tensor | None = None
        self._capturing = False
        self._tuner: dict | None = {} if tune else None  # (layer, input shape) -> fastest method
        self._anchors: dict[torch.device, torch.Tensor] = {}  # graph roots, one per device
        self._handles = [m.register_forward_hook(self._forward_hook) for m in self.layers]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def train(self, mode: bool = True) -> BookkeepingClipper:
        self.model.train(mode)
        return self

    # -- forward and backward --------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the model on a batch with the trainable weights out of autograd's graph."""
        self._captures, self._norms = {}, None
        for p in self.params:
            p.requires_grad_(False)
        self._capturing = True
        try:
            return self.model(x)
        finally:
            self._capturing = False
            for p in self.params:
                p.requires_grad_(True)

    __call__ = forward

    def _forward_hook(self, module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> Any:
        if not self._capturing:
            return None
        if module in self._captures:
            raise RuntimeError(
                f"{type(module).__name__} ran twice in one forward pass; book-keeping clipping needs"
                " each layer once (use Opacus' hooks for shared weights)"
            )
        capture = _Capture(module, inputs[0].detach())
        self._captures[module] = capture
        if output.requires_grad:
            output.register_hook(lambda grad: self._backward_hook(capture, grad))
            return None
        # No earlier layer needs a gradient: the graph starts here, at a node that hands the
        # output gradient to the hook and sends nothing further back.
        anchor = self._anchors.get(output.device)
        if anchor is None:
            anchor = self._anchors[output.device] = torch.zeros((), device=output.device, requires_grad=True)
        return _GraphStart.apply(output, anchor, lambda grad: self._backward_hook(capture, grad))

    def _backward_hook(self, capture: _Capture, grad: torch.Tensor) -> None:
        capture.backprop, capture.reached = grad.detach(), True
        norms = _per_sample_norms2(capture, self._tuner)
        self._norms = norms if self._norms is None else self._norms + norms

    # -- the clipped sum ---------------------------------------------------------------------

    def clip(self) -> torch.Tensor:
        """Sets `p.grad` to the sum over the batch of the per-sample gradients, each clipped to
        `max_grad_norm` in L2 norm over all parameters. Returns the per-sample norms."""
        if self._norms is None:
            raise RuntimeError("clip() needs a forward and a backward pass first")
        norms = self._norms.sqrt()
        factors = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for module in self.layers:
            capture = self._captures.get(module)
            if capture is None or not capture.reached:  # the layer did not reach the loss
                for p in _trainable(module):
                    p.grad = torch.zeros_like(p)
                continue
            for name, value in _clipped_sums(capture, factors).items():
                param = getattr(module, name)
                if param is not None and param.requires_grad:
                    param.grad = value.to(param.dtype).view_as(param)
        self._captures = {}
        self._norms = None
        return norms


def _norms2(x: torch.Tensor, dims: int | tuple[int, ...]) -> torch.Tensor:
    """Squared L2 norms over `dims`, in one pass without a squared copy."""
    return torch.linalg.vector_norm(x, dim=dims).square()


def _wants(module: nn.Module, name: str) -> bool:
    param = getattr(module, name, None)
    return param is not None and param.requires_grad


PerSample = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _pair_norms2(
    a: torch.Tensor,
    g: torch.Tensor,
    keep: dict[str, torch.Tensor] | None,
    columns: Callable[[torch.Tensor], torch.Tensor],
    d: int,
    per_sample: PerSample | None = None,
) -> torch.Tensor:
    """Squared norms of each sample's sum_t g_t a_t^T, for g (B, T, P) and `columns` mapping a
    slice of `a` to (b, T, D); `per_sample(a slice, g slice)` may compute the (b, P, D)
    per-sample gradients another way. Keeps the per-sample gradients in `keep` when asked to and
    they are small enough. Works through the batch in slices so transient tensors stay small."""
    b, t, p = g.shape
    if t == 1:
        return _norms2(columns(a), (1, 2)) * _norms2(g, (1, 2))
    keeping = keep is not None and b * d * p * a.element_size() <= KEEP_PER_SAMPLE_BYTES
    ghost = not keeping and t * t * (d + p) < t * d * p
    per_row = t * d + (t * t if ghost else d * p)
    step = max(1, CHUNK_BYTES // (per_row * a.element_size()))
    norms = torch.empty(b, dtype=g.dtype, device=g.device)
    kept = torch.empty((b, p, d), dtype=g.dtype, device=g.device) if keeping else None
    for i in range(0, b, step):
        gs = g[i : i + step]
        if ghost:
            cols = columns(a[i : i + step])
            gram = torch.bmm(cols, cols.transpose(1, 2))
            gram.mul_(torch.bmm(gs, gs.transpose(1, 2)))
            norms[i : i + step] = gram.sum((1, 2))
            continue
        if per_sample is None:
            grads = torch.bmm(columns(a[i : i + step]).transpose(1, 2), gs).transpose(1, 2)
        else:
            grads = per_sample(a[i : i + step], gs)
        norms[i : i + step] = _norms2(grads, (1, 2))
        if kept is not None:
            kept[i : i + step] = grads
    if keep is not None and kept is not None:
        keep["weight"] = kept
    return norms


def _conv_grouped(module: nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-sample weight gradients (b, P, D) as one convolution weight-gradient with the samples
    as groups; g is (b, T, P)."""
    b, cin = a.shape[:2]
    cout = module.out_channels
    out_hw = _conv_output_size(module, a)
    grad_output = g.transpose(1, 2).reshape(1, b * cout, *out_hw)
    weight_shape = (b * cout, cin, *module.kernel_size)
    _, weight, _ = torch.ops.aten.convolution_backward(
        grad_output,
        a.reshape(1, b * cin, *a.shape[2:]),
        a.new_empty(weight_shape),
        None,
        list(module.stride),
        list(module.padding),
        list(module.dilation),
        False,
        [0, 0],
        b,
        [False, True, False],
    )
    return weight.view(b, cout, -1)


def _conv_transposed(module: nn.Conv2d, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-sample weight gradients (b, P, D) as a convolution of the padded inputs with the output
    gradients as kernels (stride and dilation 1 only); g is (b, T, P)."""
    b, cin = a.shape[:2]
    cout = module.out_channels
    out_hw = _conv_output_size(module, a)
    ph, pw = module.padding
    padded = F.pad(a, (pw, pw, ph, ph)).transpose(0, 1)  # (Cin, b, H', W')
    kernels = g.transpose(1, 2).reshape(b * cout, 1, *out_hw)
    out = F.conv2d(padded, kernels, groups=b)  # (Cin, b*Cout, kh, kw)
    kh, kw = module.kernel_size
    return out.view(cin, b, cout, kh * kw).permute(1, 2, 0, 3).reshape(b, cout, cin * kh * kw)


def _conv_output_size(module: nn.Conv2d, a: torch.Tensor) -> tuple[int, int]:
    sizes = []
    for i in range(2):
        span = module.dilation[i] * (module.kernel_size[i] - 1) + 1
        sizes.append((a.shape[2 + i] + 2 * module.padding[i] - span) // module.stride[i] + 1)
    return sizes[0], sizes[1]


def _conv_methods(module: nn.Conv2d) -> dict[str, PerSample | None]:
    methods: dict[str, PerSample | None] = {
        "unfold": None,
        "grouped": lambda a, g: _conv_grouped(module, a, g),
    }
    if module.stride == (1, 1) and module.dilation == (1, 1):
        methods["transposed"] = lambda a, g: _conv_transposed(module, a, g)
    return methods


def _sequence_columns(a: torch.Tensor) -> torch.Tensor:
    return a.reshape(a.shape[0], -1, a.shape[-1])


def _conv_columns(module: nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, C*kh*kw): the patches each output position sees."""
    return F.unfold(
        a, module.kernel_size, dilation=module.dilation, padding=module.padding, stride=module.stride
    ).transpose(1, 2)


def _conv_weight_norms2(
    module: nn.Conv2d, a: torch.Tensor, g: torch.Tensor, keep: dict[str, torch.Tensor], tuner: dict | None
) -> torch.Tensor:
    """Per-sample squared norms of a Conv2d weight gradient (g is (B, T, P)). The per-sample
    gradients come out of one of three exact computations; with a `tuner`, each is timed once
    on the layer's first batch and the fastest is used from then on (like cuDNN's benchmark
    mode). Without one (reproducible runs) it is always the unfold one."""
    d = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
    methods = _conv_methods(module)

    def run(name: str) -> torch.Tensor:
        keep.pop("weight", None)
        return _pair_norms2(a, g, keep, lambda x: _conv_columns(module, x), d, methods[name])

    if tuner is None:
        return run("unfold")
    key = (module, tuple(a.shape[1:]))
    if key in tuner:
        return run(tuner[key])

    def synchronise() -> None:  # GPU kernels run asynchronously: time them to completion
        if a.is_cuda:
            torch.cuda.synchronize(a.device)

    timings: dict[str, float] = {}
    for name in methods:
        run(name)  # the first call of a kernel pays for its set-up
        synchronise()
        started = time.perf_counter()
        run(name)
        synchronise()
        timings[name] = time.perf_counter() - started
    tuner[key] = min(timings, key=timings.__getitem__)
    return run(tuner[key])


def _per_sample_norms2(capture: _Capture, tuner: dict | None) -> torch.Tensor:
    module, a, g = capture.module, capture.activation, capture.backprop
    assert a is not None and g is not None
    b = g.shape[0]
    total = torch.zeros(b, dtype=torch.float32, device=g.device)
    if isinstance(module, nn.Linear) and a.dim() == 2 and _wants(module, "weight") and _wants(module, "bias"):
        # one position per record: ||g a^T||^2 + ||g||^2 = ||g||^2 (||a||^2 + 1)
        return _norms2(g, 1) * (_norms2(a, 1) + 1)
    if isinstance(module, nn.Linear):
        g3 = g.reshape(b, -1, g.shape[-1])  # (B, T, P); `a` goes to _sequence_columns as it is
        if _wants(module, "weight"):
            total += _pair_norms2(a, g3, capture.kept, _sequence_columns, a.shape[-1])
        if _wants(module, "bias"):
            bias = g3.sum(1)
            total += _norms2(bias, 1)
            if capture.kept:
                capture.kept["bias"] = bias
    elif isinstance(module, nn.Conv2d):
        g3 = g.reshape(b, g.shape[1], -1).transpose(1, 2)  # (B, L, P)
        if _wants(module, "weight"):
            total += _conv_weight_norms2(module, a, g3, capture.kept, tuner)
        if _wants(module, "bias"):
            bias = g3.sum(1)
            total += _norms2(bias, 1)
            if capture.kept:
                capture.kept["bias"] = bias
    elif isinstance(module, (nn.GroupNorm, nn.LayerNorm)):
        weight, bias = _norm_layer_grads(module, a, g)
        for name, value in (("weight", weight), ("bias", bias)):
            if _wants(module, name):
                capture.kept[name] = value
                total += _norms2(value.reshape(b, -1), 1)
    elif isinstance(module, nn.Embedding):
        total += _embedding_norms2(module, a, g)
    if capture.kept:  # everything the clipped sum needs is kept: free the layer's tensors now
        capture.activation = capture.backprop = None
    return total


def _norm_layer_grads(
    module: nn.Module, a: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample gradients of a GroupNorm's or LayerNorm's affine weight and bias.

    For GroupNorm, sum_hw x_hat * g = (sum_hw a*g - mean * sum_hw g) / std per channel, from
    channel and group reductions, without a normalised copy of the activations."""
    if isinstance(module, nn.GroupNorm):
        b, c = a.shape[:2]
        a3, g3 = a.reshape(b, c, -1), g.reshape(b, c, -1)
        grouped = a.reshape(b, module.num_groups, -1)
        n = grouped.shape[2]
        # The group statistics as the forward computed them, up to rounding. (The clipping stays
        # exact whatever the rounding: norms and sums come from the same per-sample values.)
        mean = grouped.sum(2) / n
        var = (torch.linalg.vector_norm(grouped, dim=2).square() / n - mean.square()).clamp(min=0)
        per_group = c // module.num_groups
        inv_std = (var + module.eps).rsqrt().repeat_interleave(per_group, dim=1)
        mean = mean.repeat_interleave(per_group, dim=1)
        bias = g3.sum(2)
        step = max(1, CHUNK_BYTES // max(1, a3[0].numel() * a.element_size()))
        dot = torch.cat([(a3[i : i + step] * g3[i : i + step]).sum(2) for i in range(0, b, step)])
        return (dot - mean * bias) * inv_std, bias
    shape = tuple(module.normalized_shape)
    normalised = F.layer_norm(a, shape, eps=module.eps)
    dims = tuple(range(1, a.dim() - len(shape)))
    return (normalised * g).sum(dims) if dims else normalised * g, g.sum(dims) if dims else g


def _embedding_rows(
    module: nn.Embedding, ids: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened (sample * vocabulary + row) keys and the matching output gradients, without the
    padding row (which never receives a gradient)."""
    b = ids.shape[0]
    ids = ids.reshape(b, -1)
    rows = g.reshape(b, ids.shape[1], -1)
    keys = ids + torch.arange(b, device=ids.device).unsqueeze(1) * module.num_embeddings
    keys, rows = keys.reshape(-1), rows.reshape(-1, rows.shape[-1])
    if module.padding_idx is not None:
        keep = ids.reshape(-1) != module.padding_idx
        keys, rows = keys[keep], rows[keep]
    return keys, rows


def _embedding_norms2(module: nn.Embedding, ids: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per-sample squared norms of an embedding table's gradient: the rows a sample touches,
    each the sum of the output gradients at its occurrences."""
    b = ids.shape[0]
    keys, rows = _embedding_rows(module, ids, g)
    unique, inverse = torch.unique(keys, return_inverse=True)
    summed = torch.zeros(unique.numel(), rows.shape[1], dtype=rows.dtype, device=rows.device)
    summed.index_add_(0, inverse, rows)
    out = torch.zeros(b, dtype=rows.dtype, device=rows.device)
    out.index_add_(0, unique // module.num_embeddings, _norms2(summed, 1))
    return out


def _expand(factors: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return factors.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def _clipped_sums(capture: _Capture, factors: torch.Tensor) -> dict[str, torch.Tensor]:
    module, a, g = capture.module, capture.activation, capture.backprop
    out: dict[str, torch.Tensor] = {}
    for name, per_sample in capture.kept.items():
        out[name] = torch.tensordot(factors.to(per_sample.dtype), per_sample, dims=1)
    missing = [n for n in ("weight", "bias") if _wants(module, n) and n not in out]
    if not missing:
        return out
    assert a is not None and g is not None
    scaled = g * _expand(factors, g)
    if isinstance(module, nn.Linear):
        if "weight" in missing:
            out["weight"] = scaled.reshape(-1, scaled.shape[-1]).t() @ a.reshape(-1, a.shape[-1])
        if "bias" in missing:
            out["bias"] = scaled.reshape(-1, scaled.shape[-1]).sum(0)
    elif isinstance(module, nn.Conv2d):
        if "weight" in missing:
            out["weight"] = torch.nn.grad.conv2d_weight(
                a, module.weight.shape, scaled, module.stride, module.padding, module.dilation, 1
            )
        if "bias" in missing:
            out["bias"] = scaled.sum((0, 2, 3))
    elif isinstance(module, nn.Embedding):
        keys, rows = _embedding_rows(module, a, scaled)
        weight = torch.zeros_like(module.weight)
        weight.index_add_(0, keys % module.num_embeddings, rows.to(weight.dtype))
        out["weight"] = weight
    return out
