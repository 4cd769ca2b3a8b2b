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


def saved_for_backward(model: nn.Module, fn: Callable, *args, depth: int = 2, keep: bool = True) -> dict[str, int]:
    """Bytes that autograd keeps for backward while fn(*args) runs, per submodule of `model`
    (names cut to `depth` parts; "" = the model itself), each storage counted once; a
    checkpointed region counts only its inputs. keep=False hands autograd nothing to keep, so
    a forward whose backward would not fit in memory can be measured (no backward can follow),
    and a storage saved twice counts twice. For docs/performance.md's breakdown."""
    stack, seen, out = [], set(), {}
    hooks = []
    for name, m in model.named_modules():
        hooks.append(m.register_forward_pre_hook(lambda m, a, name=name: stack.append(name)))
        hooks.append(m.register_forward_hook(lambda m, a, y: (stack.pop(), None)[1]))

    def pack(t):
        storage = t.untyped_storage()
        if keep and storage.data_ptr() in seen:
            return t
        seen.add(storage.data_ptr())
        where = ".".join(stack[-1].split(".")[:depth]) if stack else ""
        out[where] = out.get(where, 0) + storage.nbytes()
        return t if keep else None

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(*args)
    finally:
        for h in hooks:
            h.remove()
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
