"""Results others can load: `export --format json|csv` round-trips and every row checks against the run
directories that made it; `report` writes a self-contained index.html (parsed here)."""

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from benchmarks.cli import main
from reports.results import COLUMNS, SCHEMA, UNITS, read_results
from rundir.run import eval_key
from rundir.stats import metric_info

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ["--preset", "smoke", "--no-progress"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Real smoke runs: CW-VAE with two seeds and the copy-last reference; the report and both exports."""
    out = tmp_path_factory.mktemp("sharing") / "results"
    for argv in (["--model", "cwvae"], ["--model", "cwvae", "--seed", "1"], ["--model", "copy_last"]):
        assert main([*argv, *SMOKE, "--out", str(out)]) == 0
    assert main(["report", "--runs", str(out)]) == 0
    assert main(["export", "--format", "json", "--runs", str(out)]) == 0
    assert main(["export", "--runs", str(out), "--out", str(out / "elsewhere" / "results.csv")]) == 0
    return out


def test_json_and_csv_hold_the_same_rows(results):
    doc = json.loads((results / "results.json").read_text())
    assert (doc["schema"], doc["version"], doc["aggregate"]) == (SCHEMA, 1, "best")
    rows = read_results(results / "results.json")
    assert rows == read_results(results / "elsewhere" / "results.csv")  # every value, typed, exactly
    assert all(list(r) == list(COLUMNS) for r in rows)
    assert list(pd.read_csv(results / "elsewhere" / "results.csv").columns) == list(COLUMNS)


def test_each_row_checks_against_its_run_directories(results):
    rows = read_results(results / "results.json")
    ours = [r for r in rows if r["source"] == "ours"]
    assert {r["table"] for r in ours} == {"leaderboard", "table1"}
    assert {(r["model"], r["metric"]) for r in ours if r["table"] == "leaderboard"} == {
        (m, k) for m in ("cwvae", "copy_last") for k in ("ssim", "psnr")
    }
    from benchmarks.config import resolve_config
    from datasets import get_dataset

    manifest = get_dataset(resolve_config("cwvae", "mmnist", "smoke").data).directory / "manifest.json"
    splits = json.loads(manifest.read_text())["splits"]  # as docs/results_schema.md says to check it
    data_sha = hashlib.sha256(json.dumps(splits, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    for row in ours:
        values = []
        assert len(row["runs"]) == len(row["config_hashes"]) == len(row["code_commits"]) == row["n_seeds"]
        for rel, config_hash, commit, data in zip(
            row["runs"], row["config_hashes"], row["code_commits"], row["data_manifest_sha256"]
        ):
            run = results / rel
            cfg = yaml.safe_load((run / "config.yaml").read_text())
            status = json.loads((run / "status.json").read_text())
            info = json.loads((run / "run.json").read_text())
            assert config_hash == eval_key(cfg) == run.name.rsplit("-", 1)[1]
            assert commit == status["git_commit"] + ("-dirty" if status["git_dirty"] else "") and commit
            assert data == status["data_manifest_sha256"] == data_sha
            assert (row["context"], row["horizon"]) == (info["context"], info["horizon"]) == (36, 12)
            assert row["n_samples"] == cfg["eval"]["n_samples"] and row["eval_mode"] == cfg["eval"]["mode"]
            summary = pd.read_csv(run / "eval" / "summary.csv")
            mine = summary[(summary["metric"] == row["metric"]) & (summary["aggregate"] == row["aggregate"])]
            values.append(float(mine["value"].iloc[0]))
            assert row["n_test_videos"] == int(mine["n"].iloc[0])
        assert row["value"] == pytest.approx(sum(values) / len(values), rel=1e-12)
        assert row["seeds"] == sorted(
            int(yaml.safe_load((results / r / "config.yaml").read_text())["seed"]) for r in row["runs"]
        )
        assert row["direction"] == ("higher" if metric_info(row["metric"]).higher_is_better else "lower")
        assert row["units"] == UNITS[row["metric"]]
    cw = [r for r in ours if r["model"] == "cwvae"]
    assert all(r["n_seeds"] == 2 and r["ci_over"] == "seeds" and r["seeds"] == [0, 1] for r in cw)
    assert {r["units"] for r in ours if r["metric"] == "psnr"} == {"dB"}


def test_rows_equal_the_leaderboard_and_table1_files(results):
    rows = read_results(results / "results.json")
    board = pd.read_csv(results / "leaderboard.csv")
    for row in (r for r in rows if r["table"] == "leaderboard"):
        (line,) = board[(board["model"] == row["model"]) & (board["preset"] == row["preset"])].to_dict("records")
        assert row["value"] == pytest.approx(line[row["metric"]], rel=1e-12)
        assert row["ci_low"] == pytest.approx(line[f"{row['metric']}_ci_low"], rel=1e-12)
        assert ";".join(row["runs"]) == line["runs"] and row["params"] == line["params"]
        assert row["steps"] == line["steps"] and row["train_time_s"] == line["train_time_s"]
    table1 = pd.read_csv(results / "report" / "table1.csv", keep_default_na=False)
    mine = [r for r in rows if r["table"] == "table1"]
    assert len(mine) == len(table1)
    for row, line in zip(mine, table1.to_dict("records")):
        assert (row["source"], row["dataset"], row["entry"], row["metric"]) == (
            line["source"],
            line["dataset"],
            line["entry"],
            line["metric"],
        )
        assert row["value"] == pytest.approx(float(line["value"]), rel=1e-12) and row["bold"] == (
            str(line["bold"]) == "True"
        )
    paper = pd.read_csv(ROOT / "reports" / "paper" / "table1.csv")
    cw_ssim = [r for r in mine if r["source"] == "paper" and r["entry"] == "CW-VAE" and r["metric"] == "ssim"]
    expected = paper[(paper["model"] == "CW-VAE") & (paper["metric"] == "SSIM")].set_index("dataset")["value"]
    assert {r["dataset"]: r["value"] for r in cw_ssim} == expected.to_dict()
    assert all(r["context"] == 36 and r["runs"] == [] and r["horizon"] is None for r in mine if r["source"] == "paper")


def test_the_schema_document_lists_every_column():
    doc = (ROOT / "docs" / "results_schema.md").read_text()
    documented = re.findall(r"^\| `([a-z_0-9]+)` \|", doc, flags=re.M)
    assert documented == list(COLUMNS)


def test_export_errors_say_what_to_give(results, tmp_path, capsys):
    assert main(["export", "--format", "csv", "--runs", str(tmp_path)]) == 2
    assert "no runs/ under" in capsys.readouterr().err
    run = next((results / "runs" / "mmnist" / "cwvae").iterdir())
    assert main(["export", str(run), "--format", "json"]) == 2
    assert "pass --runs DIR" in capsys.readouterr().err
    assert main(["export"]) == 2
    assert capsys.readouterr().err == (
        "error: give --format json or csv (the leaderboard and Table 1), or export RUN_DIR --out FILE.safetensors "
        "(a run's weights)\n"
    )


# ---------------------------------------------------------------- the self-contained index.html


class Page(__import__("html.parser").parser.HTMLParser):
    """What a browser would fetch or show: sources, links, ids, table rows (cell texts), other tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sources, self.links, self.ids, self.rows, self.tags = [], [], set(), [], set()
        self.cell, self.row = None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "src" in attrs:
            self.sources.append(attrs["src"])
        if tag == "a":
            self.links.append(attrs.get("href", ""))
        if tag == "tr":
            self.row = []
        if tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.row is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        if tag == "tr":
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def markdown_rows(text: str) -> list[list[str]]:
    """The rows of every markdown table in `text` as cell texts (emphasis and code marks removed)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|\s*:?-{3}", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.append([re.sub(r"\*\*|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|`", "", c) for c in cells])
    return rows


def test_index_html_holds_every_table_and_figure_inline(results):
    import base64

    report = results / "report"
    page = Page()
    page.feed((report / "index.html").read_text())
    # nothing to fetch: no script, stylesheet or frame; every picture a data URI of a report file, each once
    assert not page.tags & {"script", "link", "iframe", "object", "embed"}
    assert all(s.startswith(("data:image/png;base64,", "data:image/gif;base64,")) for s in page.sources)
    shown = sorted(base64.b64decode(s.split(",", 1)[1]) for s in page.sources)
    files = sorted(p.read_bytes() for p in report.rglob("*") if p.suffix in (".png", ".gif"))
    assert shown == files and len(files) >= 5  # mean rank, 2 curves, strip + GIF, training
    # links: to a section of the page, or to a file beside it (the CSVs, each section's markdown source)
    for href in page.links:
        assert href.startswith("#") and href[1:] in page.ids or (report / href).is_file(), href
    assert {"file-table1-md", "file-mean-rank-md", "file-leaderboard-md"} <= page.ids
    # every table of index.md, Table 1, the mean rank and the leaderboard, cell for cell
    for name in ("index.md", "table1.md", "mean_rank.md", "leaderboard.md"):
        for row in markdown_rows((report / name).read_text()):
            assert row in page.rows, (name, row)
    board = pd.read_csv(results / "leaderboard.csv")  # the numbers themselves, as the leaderboard prints them
    half = (board.loc[0, "ssim_ci_high"] - board.loc[0, "ssim_ci_low"]) / 2
    assert [board.loc[0, "model"], f"{board.loc[0, 'ssim']:.3f} ± {half:.3f}"] == next(
        [row[0], row[5]] for row in page.rows if row and row[0] == board.loc[0, "model"]
    )
