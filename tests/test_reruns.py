"""Targeted reruns after a complete (shrunk) demo run: nothing expensive reruns by accident.

The workflow (Snakefile, rules, scripts, config, profiles/default, README) and the `centerclip` package
are copied into a temp dir, so the checks can edit them; the package copy comes first on PYTHONPATH.
No --rerun-triggers on the command line: the setting must come from profiles/default (the workflow
profile), which the README's local commands and `--profile cluster` both read.
"""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from demo_config import tiny_demo_config
from workflow_runner import plain_env, run_snakemake

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow



class Workflow:
    def __init__(self, root):
        self.wf = root / "wf"
        self.work = root / "work"
        self.work.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in ("rules", "workflow_scripts", "config", "profiles", "centerclip", "report"):
            shutil.copytree(REPO / name, self.wf / name, ignore=ignore)
        for name in ("Snakefile", "README.md", "environment.yml"):
            shutil.copy2(REPO / name, self.wf / name)
        self.config = self.work / "config.yaml"
        self.config.write_text(yaml.safe_dump(tiny_demo_config(captions_per_video=1)))
        self.env = plain_env()
        self.env["PYTHONPATH"] = str(self.wf) + os.pathsep + self.env.get("PYTHONPATH", "")

    def run_raw(self, *args, configfile=None, check=False):
        """Snakemake on the copy, from the working directory (the package copy first on PYTHONPATH)."""
        return run_snakemake("-s", self.wf / "Snakefile", "-d", self.work, *args, "--configfile",
                             configfile or self.config, cwd=self.work, env=self.env, check=check)

    def run(self, *args, configfile=None):
        proc = self.run_raw(*args, configfile=configfile, check=True)
        return proc.stdout + proc.stderr

    def planned(self, *args, configfile=None):
        """Dry run: {rule: count} of the jobs Snakemake would run, and the full output."""
        out = self.run("-n", "--cores", "1", *args, configfile=configfile)
        jobs = {}
        if "Job stats:" in out:  # the table: header, dashes, one line per rule, total
            for line in out.split("Job stats:", 1)[1].splitlines()[3:]:
                rule, count = line.split()
                if rule == "total":
                    break
                jobs[rule] = int(count)
        return jobs, out


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One complete shrunk demo run (both experiments, table and figure), shared by the checks."""
    wf = Workflow(tmp_path_factory.mktemp("reruns"))
    out = wf.run("--cores", "2")
    assert "profiles/default" in out  # the workflow profile was read
    assert wf.planned()[0] == {}, "a complete run must leave nothing to do"
    return wf


def run_files(wf):
    return sorted((wf.work / "results" / "demo" / "runs").rglob("*"))


def mtimes(paths):
    return {p: p.stat().st_mtime_ns for p in paths if p.is_file()}


def test_editing_scripts_readme_or_table_code_reruns_nothing(done):
    edited = [done.wf / "workflow_scripts" / "write_run_yaml.py", done.wf / "workflow_scripts" / "render_table.py",
              done.wf / "README.md", done.wf / "centerclip" / "paper" / "tables.py"]
    originals = {p: p.read_text() for p in edited}
    try:
        for p in edited:
            p.write_text(originals[p] + "\n# edited after the run\n")  # new content and a newer mtime
        jobs, out = done.planned()
        assert jobs == {}, f"editing code must not rerun anything:\n{out[-3000:]}"
        # without the workflow profile (Snakemake's default triggers include `code`), the same edit
        # rewrites run.yaml and so retrains: the profile is what keeps GPU work safe
        jobs, _ = done.planned("--workflow-profile", "none")
        assert jobs.get("run_yaml") == 2 and jobs.get("train") == 2
    finally:
        for p, text in originals.items():
            p.write_text(text)


def test_changing_one_experiment_reruns_exactly_that_experiment(done):
    table = done.wf / "config" / "experiments.yaml"
    original = table.read_text()
    try:
        experiments = yaml.safe_load(original)
        experiments["experiments"]["msrvtt9k_b32_meanP"]["lr"] = 1.0e-5
        table.write_text(yaml.safe_dump(experiments, sort_keys=False))
        jobs, out = done.planned()
    finally:
        table.write_text(original)
    # its run, and the one table that shows it (Table 3); no other run, table or figure
    assert jobs == {"run_yaml": 1, "keep_finished_checkpoint": 1, "train": 1, "evaluate": 1, "table": 1,
                    "all": 1}, out[-3000:]
    assert set(re.findall(r"experiment=([A-Za-z0-9_.-]+)", out)) == {"msrvtt9k_b32_meanP"}, out[-3000:]
    assert set(re.findall(r"table=(table\d)", out)) == {"table3"}, out[-3000:]


def test_deleting_a_table_rerenders_only_that_table(done):
    md = done.work / "results" / "demo" / "tables" / "table3.md"
    runs_before = mtimes(run_files(done))
    md.unlink()
    jobs, out = done.planned()
    assert jobs == {"table": 1, "all": 1}, out[-3000:]
    done.run("--cores", "2")
    assert md.exists() and "demo" in md.read_text().lower()
    assert mtimes(run_files(done)) == runs_before  # no run was touched


def test_a_newer_input_never_destroys_a_finished_checkpoint(done):
    """As root, Snakemake's protected() check passes (os.access), so only keep_finished_checkpoint stands
    between a newer input and the deletion of days of training: it stops, and everything stays."""
    run = done.work / "results" / "demo" / "runs" / "msrvtt" / "msrvtt9k_b32_meanP" / "seed42"
    checkpoint = run / "checkpoint.pt"
    before = checkpoint.read_bytes()
    cache = done.work / "data" / "demo" / "msrvtt" / "frames.h5"
    os.utime(cache)  # e.g. the cache rebuilt: every run of the dataset is now older than its input
    proc = done.run_raw("--cores", "1", str(checkpoint.relative_to(done.work)))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "is a finished training with exactly the settings" in out and "Nothing was deleted" in out, out[-4000:]
    assert checkpoint.read_bytes() == before and not (run / "superseded").exists()
    # the way out the message names: mark it up to date, then nothing is left to train
    touch = re.search(r"`snakemake --touch ([^`]+)`", out).group(1).split()
    done.run("--touch", "--cores", "1", *touch)
    jobs, out = done.planned(str(checkpoint.relative_to(done.work)))
    assert "train" not in jobs, out[-3000:]
    assert checkpoint.read_bytes() == before


def test_changed_lr_after_a_finished_run_retrains_from_step_0(done):
    """Runs last: it changes the shared run. The old run is set aside, the new one starts at step 0 and its
    metrics carry the new lr."""
    run = done.work / "results" / "demo" / "runs" / "msrvtt" / "msrvtt9k_b32_meanP" / "seed42"
    old_checkpoint = (run / "checkpoint.pt").read_bytes()
    table = done.wf / "config" / "experiments.yaml"
    experiments = yaml.safe_load(table.read_text())
    experiments["experiments"]["msrvtt9k_b32_meanP"]["lr"] = 2.5e-5
    table.write_text(yaml.safe_dump(experiments, sort_keys=False))
    done.run("--cores", "2", str((run / "metrics.json").relative_to(done.work)))
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["resumed_at_step"] == 0 and summary["steps"] > 0
    log_lrs = [json.loads(line)["lr"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert len(log_lrs) == summary["steps"]  # the old run's steps are not in the new log
    # the new base lr (x the demo's scale.lr), under the warm-up/cosine schedule: above the old base lr
    scale = yaml.safe_load(done.config.read_text())["scale"]["lr"]
    assert 5e-6 * scale < max(log_lrs) <= 2.5e-5 * scale
    new_config = yaml.safe_load((run / "run.yaml").read_text())
    assert new_config["train"]["lr"] == pytest.approx(2.5e-5 * scale)
    kept = list((run / "superseded").glob("*/checkpoint.pt"))
    assert len(kept) == 1 and kept[0].read_bytes() == old_checkpoint  # the old run, kept aside whole
    assert (kept[0].parent / "metrics.json").is_file() and (kept[0].parent / "train_summary.json").is_file()
