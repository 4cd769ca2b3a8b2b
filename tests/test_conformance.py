"""The conformance kit: every registered model passes it; broken models fail the named check."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmarks.cli import main
from benchmarks.conformance import CHECKS, FAIL, PASS, SKIP, KitConfig, KitInputError, run_checks, synthetic_videos
from models import model_names

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_model.py"
FAST = KitConfig(steps=2, preset="smoke")  # smoke sizes, 2 Adam steps: enough for the loss to drop on one fixed batch


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_passes(name):
    report = run_checks(name, kit=FAST)
    by_name = {r.name: r for r in report.results}
    assert list(by_name) == list(CHECKS)
    failures = {r.name: r.message for r in report.results if r.status == FAIL}
    assert not failures, failures
    model = report.results[0]  # construct
    trainable = "0 trainable" not in model.message
    # a model with parameters must really train; one without is marked not applicable, never failed
    assert by_name["training"].status == (PASS if trainable else SKIP), by_name["training"].message
    assert all(r.status == PASS for r in report.results if r.name != "training")


def test_synthetic_videos_hold_one_square_per_frame():
    v = synthetic_videos(3, 20, 64, 1, seed=0)
    assert v.shape == (3, 20, 64, 64, 1) and v.dtype == np.uint8
    side = 64 // 5
    lit = (v > 0).sum(axis=(2, 3, 4))  # (3, 20) pixels lit per frame
    assert (lit == side * side).all()
    assert np.array_equal(v, synthetic_videos(3, 20, 64, 1, seed=0))  # seeded


BROKEN = textwrap.dedent(
    '''
    import numpy as np
    import torch
    from models import VideoModel


    class Good(VideoModel):
        """Next frame = sigmoid(a * last frame + b): two parameters, trains in a few steps."""

        def __init__(self, **hparams):
            super().__init__(**hparams)
            self.a = torch.nn.Parameter(torch.tensor(0.5))
            self.b = torch.nn.Parameter(torch.tensor(-1.0))

        def frame(self, x):
            return torch.sigmoid(self.a * x + self.b)

        def loss(self, video):
            loss = ((self.frame(video[:, :-1]) - video[:, 1:]) ** 2).mean()
            return loss, {"mse": loss.detach()}

        def predict(self, context, horizon, n_samples=1):
            last = self.frame(context[:, -1])  # (B, C, H, W)
            noise = 0.01 * torch.rand(context.shape[0], n_samples, horizon, *last.shape[1:])
            return (last[:, None, None] + noise).clamp(0, 1)


    class WrongShape(Good):
        def predict(self, context, horizon, n_samples=1):
            return super().predict(context, horizon, n_samples)[:, 0]  # (B, horizon, C, H, W): no sample axis


    class OutOfRange(Good):
        def predict(self, context, horizon, n_samples=1):
            return 255 * super().predict(context, horizon, n_samples)  # forgot to scale to [0, 1]


    class Unseeded(Good):
        def predict(self, context, horizon, n_samples=1):
            p = super().predict(context, horizon, n_samples)
            return (p + 0.1 * torch.from_numpy(np.random.rand(*p.shape)).float()).clamp(0, 1)


    class Leaky(Good):
        def loss(self, video):
            self.seen = video  # keeps the last video it was shown
            return super().loss(video)

        def predict(self, context, horizon, n_samples=1):
            p = super().predict(context, horizon, n_samples)
            if hasattr(self, "seen"):
                p = p + 0 * self.seen[:, -1:].mean()
            return p


    class Detached(Good):
        def loss(self, video):
            with torch.no_grad():
                return super().loss(video)


    class Untrainable(Good):
        def loss(self, video):
            loss, terms = super().loss(video)
            return loss.detach() + 0 * self.a, terms  # depends on a parameter, but its gradient is zero


    class Unchunked(Good):
        def predict_chunks(self, context, horizon, n_samples=1, chunk=100, **options):
            preds = self.predict(context, horizon, n_samples)
            yield from (preds + 0.01 * torch.rand_like(preds)).clamp(0, 1).split(chunk, dim=2)  # other samples


    class Forgetful(Good):
        def __init__(self, **hparams):
            super().__init__(**hparams)
            self.offset = 0.1 * float(torch.rand(()))  # a plain attribute: not in the state_dict

        def predict(self, context, horizon, n_samples=1):
            return (super().predict(context, horizon, n_samples) + self.offset).clamp(0, 1)


    class NeedsArgs(Good):
        def __init__(self, width):
            super().__init__()
    '''
)


@pytest.fixture(scope="module")
def broken_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "broken.py"
    path.write_text(BROKEN)
    return str(path)


def statuses(report) -> dict[str, str]:
    return {r.name: r.status for r in report.results}


def test_the_reference_model_of_the_broken_ones_passes(broken_file):
    report = run_checks(f"{broken_file}:Good", kit=FAST)
    assert report.passed and set(statuses(report).values()) == {PASS}, report.results


@pytest.mark.parametrize(
    "name, check, message",
    [
        ("WrongShape", "predict", "expected (2, 2, 4, 1, 64, 64)"),
        ("OutOfRange", "predict", "must return finite values in [0, 1]"),
        ("Unseeded", "seeded", "two predictions with seed 0 differ"),
        ("Leaky", "context_only", "predictions changed"),
        ("Detached", "loss", "loss does not require grad"),
        ("Untrainable", "training", "loss did not decrease"),
        ("Unchunked", "chunked", "predict_chunks(chunk=3) yields other predictions than predict"),
        ("Forgetful", "checkpoint", "predicts differently"),
        ("NeedsArgs", "construct", "NeedsArgs() failed"),
    ],
)
def test_a_broken_model_fails_the_named_check(broken_file, name, check, message):
    report = run_checks(f"{broken_file}:{name}", kit=FAST)
    failed = {r.name: r.message for r in report.results if r.status == FAIL}
    assert list(failed) == [check], report.results  # only that check fails; the ones that need it are skipped
    assert message in failed[check]
    assert not report.passed


def test_check_model_command_prints_a_table_and_sets_the_exit_code(broken_file, capsys):
    assert main(["check-model", f"{EXAMPLE}:TinyConvGRU", "--steps", "2", "--preset", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "all checks passed" in out and "context_only" in out and "FAIL" not in out
    assert main(["check-model", f"{broken_file}:OutOfRange", "--steps", "2", "--preset", "smoke"]) == 1
    out = capsys.readouterr().out
    assert "FAIL predict:" in out and "in [0, 1]; got min 68" in out and "1 check(s) failed" in out


def test_check_model_bad_name_exits_2(capsys):
    assert main(["check-model", "no_such_model"]) == 2
    assert "unknown model 'no_such_model'; valid:" in capsys.readouterr().err
    with pytest.raises(KitInputError, match="unknown dataset"):
        run_checks("copy_last", dataset="no_such_dataset")
