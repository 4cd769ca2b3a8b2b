"""Make tests/data/vta_reference.npz from the original VTA code (run by hand, never by tests).

The original (github.com/taesupkim/vta, commit 4c23131: hssm.py, modules.py, utils.py) is
imported from the directory given on the command line; this script contains none of it. It
builds the original model at a reduced size, gives every parameter and batch-norm statistic
seeded random values, fixes all noise (Gumbel noise of the boundaries, Gaussian noise of the
states, or the means), and records what tests/test_vta_reference.py compares against
baselines/vta.py. Exact versions and commands: tests/data/README.md.

    /tmp/venv-vta/bin/python tests/data/make_vta_reference.py /tmp/vta-orig [tests/data/vta_reference.npz]
"""

import sys
from pathlib import Path

import numpy as np

# the reduced model and its inputs (names of the original's train.py arguments)
SIZES = {"belief_size": 16, "state_size": 4, "num_layers": 2, "max_seg_len": 3, "max_seg_num": 2}
BATCH, INIT, SEQ, HORIZON = 2, 3, 6, 8  # training window = SEQ + 2 * INIT frames
TEMP = 0.7  # mask_beta (Gumbel-softmax temperature)
BOUNDARY_SCALE = 4.0  # boundary heads' weights scaled up so that their logits vary over time
OBS_STD = 0.8  # obs_std in the original's [-1, 1] pixel space (= 0.4 over frames in [0, 1])


def randomize(model, torch, gen) -> None:
    """Seeded random values for every parameter and batch-norm statistic (init values would hide mistakes)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("normalize.weight"):
                p.uniform_(0.5, 1.5, generator=gen)
            else:
                p.uniform_(-1, 1, generator=gen).mul_(1.5 / max(1, p[0].numel()) ** 0.5)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.3, generator=gen)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0, generator=gen)
            elif name.endswith("num_batches_tracked"):
                b.fill_(7)


def balance_boundaries(sm, x, torch) -> None:
    """Scale up both boundary heads and centre their read-minus-copy logit at its median over
    this input (posterior) and over a generation (prior), so that the fixture holds both reads
    and copies; random weights alone give reads everywhere."""
    heads = (sm.post_boundary.network[-1].linear, sm.prior_boundary.network.linear)
    logits = []
    hook = sm.prior_boundary.register_forward_hook(lambda m, a, out: logits.append(out.detach()))
    with torch.no_grad():
        for head in heads:
            head.weight.mul_(BOUNDARY_SCALE)
        sm.eval()
        enc = sm.enc_obs(x.flatten(0, 1)).unflatten(0, (x.shape[0], x.shape[1]))
        post = sm.post_boundary(enc)[:, INIT + 1 :]
        sm.full_generation(x[:, :INIT], HORIZON)
        for head, out in zip(heads, (post, torch.stack(logits))):
            head.bias[0] -= (out[..., 0] - out[..., 1]).median()
    hook.remove()


def record_steps(state_model, store: dict):
    """Forward hooks that record, per transition step, the outputs of the original's state and
    boundary heads. Returns the hook handles."""
    handles = []
    for name in ("prior_abs_state", "post_abs_state", "prior_obs_state", "post_obs_state"):

        def hook(module, args, out, name=name):
            store.setdefault(f"{name}_mean", []).append(out.loc.detach().clone())
            store.setdefault(f"{name}_std", []).append(out.scale.detach().clone())

        handles.append(getattr(state_model, name).register_forward_hook(hook))

    def boundary_hook(module, args, out):
        store.setdefault("prior_boundary_logit", []).append(out.detach().clone())

    handles.append(state_model.prior_boundary.register_forward_hook(boundary_hook))
    return handles


def main(src: str, out: str) -> None:
    sys.path.insert(0, src)
    import hssm  # the original
    import torch
    from hssm import EnvModel
    from torch import distributions

    F, S, T = SIZES["belief_size"], SIZES["state_size"], SEQ + 2 * INIT
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (BATCH, T, 3, 32, 32), generator=gen, dtype=torch.uint8)
    x = video.float() / 255 * 2 - 1  # the original's [-1, 1] pixel space (its 5-bit preprocess is not used)

    # ---- fixed noise: the boundaries' uniform noise and the states' Gaussian noise, in call order
    u = torch.empty(BATCH, T, 2).uniform_(1e-4, 1 - 1e-4, generator=gen)
    eps = torch.randn(SEQ, 2, BATCH, S, generator=gen)  # per step: abstract, then observation state
    queue: list = []

    def fixed_gumbel(log_alpha, temp, margin=1e-4):  # utils.gumbel_sampling with its noise fixed
        return torch.div(log_alpha - torch.log(-torch.log(u)), temp)

    def fixed_rsample(self, sample_shape=()):  # Normal.rsample: the next fixed noise, or the mean
        return self.loc + self.scale * queue.pop(0) if queue else self.loc

    hssm.gumbel_sampling = fixed_gumbel
    distributions.Normal.rsample = fixed_rsample

    model = EnvModel(**SIZES)
    sm = model.state_model
    randomize(model, torch, gen)
    balance_boundaries(sm, x, torch)
    weights = {k: v.clone() for k, v in model.state_dict().items()}

    res: dict[str, np.ndarray] = {f"sd/{k}": v.numpy() for k, v in weights.items()}
    res["sizes"] = np.array([SIZES[k] for k in sorted(SIZES)] + [BATCH, INIT, SEQ, HORIZON])
    res["size_names"] = np.array(sorted(SIZES) + ["batch", "init_size", "seq_size", "horizon"])
    res["temp"], res["obs_std"] = np.float32(TEMP), np.float32(OBS_STD)
    res["versions"] = np.array(f"torch {torch.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    res["video"] = video.numpy()  # frames in [0, 1] are video / 255
    res["gumbel_u"], res["eps"] = u.numpy(), eps.numpy()

    # ---- single networks, eval mode (batch norm on the random running statistics)
    model.eval()
    with torch.no_grad():
        enc = sm.enc_obs(x.flatten(0, 1)).unflatten(0, (BATCH, T))
        res["enc"] = enc.numpy()  # (B, T, F)
        res["post_boundary_logit"] = sm.post_boundary(enc).numpy()  # (B, T, 2)
        feat = torch.randn(5, F, generator=gen)
        res["dec_in"], res["dec_out"] = feat.numpy(), sm.dec_obs(feat).numpy()  # (5, 3, 32, 32) in [-1, 1]

    # ---- the loss: train mode with fixed noise, eval mode with mean latents
    for mode in ("train", "eval"):
        model.load_state_dict(weights)
        model.train(mode == "train")
        sm.mask_beta = TEMP
        queue[:] = [e for t in range(SEQ) for e in eps[t]] if mode == "train" else []
        steps: dict = {}
        handles = record_steps(sm, steps)
        with torch.no_grad():
            r = model(x, SEQ, INIT, OBS_STD)
        for h in handles:
            h.remove()
        assert not queue, "every fixed noise sample is used"
        for k, v in steps.items():
            res[f"{mode}/{k}"] = torch.stack(v, 0).numpy()  # (SEQ, B, ...)
        for k in ("rec_data", "mask_data", "obs_cost", "kl_abs_state", "kl_obs_state", "kl_mask", "train_loss"):
            res[f"{mode}/{k}"] = r[k].numpy()

    # ---- open loop: full_generation from INIT context frames with mean latents
    model.load_state_dict(weights)
    with torch.no_grad():
        frames, reads = model.full_generation(x[:, :INIT], HORIZON)
    res["gen_frames"], res["gen_reads"] = frames.numpy(), reads[..., 0].numpy()  # (B, H, 3, 32, 32), (B, H)

    np.savez_compressed(out, **res)
    print(f"wrote {out}: {sum(v.nbytes for v in res.values()) / 1e6:.2f} MB uncompressed")
    print("train reads per window:", res["train/mask_data"][..., 0].sum(1), "generation reads:", res["gen_reads"])


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    default = Path(__file__).with_name("vta_reference.npz")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else str(default))
