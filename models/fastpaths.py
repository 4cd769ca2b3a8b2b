"""Speed features of the shared networks and CW-VAE, each one switchable.

Every feature computes the same function as the plain code it replaces (the same math in
another order, so results differ by floating-point rounding only): tests/test_fastpaths.py
checks each one's loss, gradients and predictions against the plain path, and
`python bench.py speed --off NAME` times a model without it (docs/performance.md has the
measurements that decided which to keep). All are on by default; `disabled(...)` turns
some off for a block, in this process.
"""

from __future__ import annotations

import contextlib

FEATURES = {
    "decoder_gemm": "the decoder's dense layer and first transposed conv (on a 1x1 input: a matrix product) "
    "as one matrix product, their weights multiplied once per call when the batch makes that cheaper",
    "native_last_deconv": "the decoder's last transposed conv (one output channel) by matrix product and col2im "
    "on the CPU, where oneDNN is slow for it (in float32 under bf16 autocast too, where subpixel_deconv is off)",
    "subpixel_deconv": "the decoder's stride-2 transposed convs in bf16 on the CPU as plain convs: forward over "
    "the 4 sub-pixel phases at once and a pixel shuffle, backward as a strided conv and a conv's weight gradient",
    "inplace_activations": "leaky ReLU in place after a conv (one activation tensor kept instead of two)",
    "hoisted_projections": "CW-VAE: the parts of the prior's and posterior's first layers that read the context "
    "and the embedding, for all steps at once before the recurrence",
}

_off: set[str] = set()
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


def enabled(name: str) -> bool:
    """Whether the feature `name` (a key of FEATURES) is on."""
    if name not in FEATURES:
        raise KeyError(f"unknown speed feature {name!r}; valid: {', '.join(FEATURES)}")
    return name not in _off


def check_names(names) -> list[str]:
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown speed feature(s) {unknown}; valid: {', '.join(FEATURES)}")
    return list(names)


def set_disabled(names) -> None:
    """Turn these features off (and every other on) for the rest of the process."""
    _off.clear()
    _off.update(check_names(names))


@contextlib.contextmanager
def disabled(*names: str):
    """Run a block with the named features off (all of them with no names)."""
    before = set(_off)
    _off.update(check_names(names) if names else FEATURES)
    try:
        yield
    finally:
        _off.clear()
        _off.update(before)


def compile_steps(model, mode: str = "default") -> int:
    """torch.compile the per-step functions of every recurrent cell in `model` that has them
    (`compile_steps(mode)`: CW-VAE's levels, hence also RSSM), each a small graph called once per
    step. mode="reduce-overhead" captures them as CUDA graphs on a GPU (the small-kernel
    recurrence); on the CPU "default" fuses their elementwise ops. Returns how many cells."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; valid: {', '.join(COMPILE_MODES)}")
    cells = [m for m in model.modules() if hasattr(m, "compile_steps") and m is not model]
    for cell in cells:
        cell.compile_steps(mode)
    return len(cells)
