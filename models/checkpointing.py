"""Activation checkpointing for the per-frame networks of the baselines (SVG's and VTA's
encoders and decoders), where the saved activations of all B x T frames dominate training
memory (docs/performance.md, "Training memory of SVG and VTA").

`checkpointed(fn, *inputs, module=...)` runs `fn` keeping only its inputs for backward;
backward runs it again (torch.utils.checkpoint, non-reentrant) to get what it needs. The
math is unchanged, which takes two cares beyond torch's own:

- random numbers: the re-run replays the forward's (torch's `preserve_rng_state`);
- batch norm: a training-mode forward updates its running statistics, so the re-run would
  update them a second time. The buffers of `module` are put back, after the re-run, as the
  re-run found them (the output of a training-mode batch norm does not read them).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@contextmanager
def buffers_kept(module: nn.Module):
    """Within the block, `module`'s buffers (batch-norm running statistics and counts) may
    change; on leaving, they hold the values they had on entering."""
    buffers = list(module.buffers())
    saved = [b.detach().clone() for b in buffers]
    try:
        yield module
    finally:
        with torch.no_grad():
            for b, s in zip(buffers, saved):
                b.copy_(s)


def checkpointed(fn: Callable, *inputs, module: nn.Module, enabled: bool = True):
    """fn(*inputs), storing only `inputs` for backward when `enabled` and autograd records
    (a no-grad call, prediction, runs plainly). `module`: the network `fn` runs, whose
    buffers the backward re-run leaves as they were."""
    if not enabled or not torch.is_grad_enabled():
        return fn(*inputs)
    return checkpoint(
        fn,
        *inputs,
        use_reentrant=False,
        preserve_rng_state=True,
        context_fn=lambda: (nullcontext(), buffers_kept(module)),
    )


def sequential(net: nn.Sequential, x, enabled: bool):
    """net(x), each child of `net` checkpointed on its own when `enabled`: backward keeps one
    tensor per child (its input) and re-runs one child at a time."""
    for child in net:
        x = checkpointed(child, x, module=child, enabled=enabled)
    return x
