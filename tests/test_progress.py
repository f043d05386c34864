"""Progress of a batch (evaluation/progress.py): one definition of the success rate (over the
correctly classified images), plain lines without a terminal, nothing with quiet, and the
image and stage of a long attack, told by the engine."""
from __future__ import annotations

import io

import numpy as np

from evaluation import progress as progress_module
from evaluation.progress import Progress, ResultTally, SuccessTally

SKIPPED = {"success": False, "status": "skipped_misclassified"}


def records():
    return [{"index": 0, "success": True, "status": "validated"},
            {"index": 1, **SKIPPED},
            {"index": 2, "success": False, "status": "infeasible"},
            {"index": 3, "success": True, "status": "validated"}]


def test_the_rate_is_over_the_correctly_classified_images():
    tally = SuccessTally(records())
    assert (tally.successes, tally.attempted) == (2, 3)
    assert tally.text() == "successes 2/3 correctly classified (67%)"
    assert SuccessTally([{"index": 1, **SKIPPED}]).text() == "successes 0/0 correctly classified"


def test_without_a_terminal_a_plain_line_every_n_images():
    stream = io.StringIO()       # not a terminal
    with Progress(4, desc="netpatch dnc", stream=stream, every=2) as progress:
        for record in records():
            progress.update(record)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("netpatch dnc: [2/4] successes 1/1 correctly classified (100%)")
    assert lines[1].startswith("netpatch dnc: [4/4] successes 2/3 correctly classified (67%)")
    assert "images/s, ETA" in lines[1]


def test_quiet_prints_nothing():
    stream = io.StringIO()
    with Progress(4, stream=stream, quiet=True) as progress:
        for record in records():
            progress.update(record)
    assert stream.getvalue() == ""
    assert progress.tally.successes == 2


def test_a_slow_image_is_named_with_its_stage(monkeypatch):
    monkeypatch.setattr(progress_module, "SLOW_S", 0.0)
    with Progress(3, stream=io.StringIO(), quiet=True) as progress:
        progress.start(5)
        progress.stage(5, "dnc linf patches, target class 3")
        assert "| image 5: " in progress.postfix()
        assert progress.postfix().endswith("s, dnc linf patches, target class 3")
        progress.update({"index": 5, "success": True, "status": "validated"})
        assert "image 5" not in progress.postfix()           # finished: no longer running
        progress.stage(5, "late event of a finished image")  # ignored
        assert progress.slowest() is None


def test_results_of_verification_are_counted_by_kind():
    tally = ResultTally([{"result": "sat"}, {"result": "unsat"}, {"result": "sat"}])
    assert tally.text() == "sat 2, unsat 1"


class Recorder:
    def __init__(self):
        self.started, self.stages = [], {}

    def start(self, index):
        self.started.append(index)

    def stage(self, index, text):
        self.stages.setdefault(index, []).append(text)


def test_the_local_engine_tells_which_image_runs_and_its_stages():
    from attacks import AttackConfig
    from attacks.work import listen_to_stages
    from conftest import paper_network
    from evaluation.engines import local_records
    net = paper_network()
    x, y = np.array([[0.5, 0.5]]), np.array([0])
    recorder = Recorder()
    out = list(local_records(net, x, y, AttackConfig(strategy="dnc"), [0], progress=recorder))
    assert out[0]["index"] == 0
    assert recorder.started == [0]
    assert recorder.stages[0][0] == "dnc linf patches, target class 1"
    assert listen_to_stages(None) is None     # the engine put the listener back


def test_without_a_terminal_a_long_item_is_named_with_its_stage_each_silent_interval(
        monkeypatch):
    import time
    monkeypatch.setattr(progress_module, "PLAIN_S", 0.05)
    monkeypatch.setattr(progress_module, "TICK_S", 0.01)
    stream = io.StringIO()
    with Progress(3, ResultTally(), desc="verify", stream=stream, unit="instance") as progress:
        progress.start(2)
        progress.stage(2, "ReLU splitting: 40 domains, 12 open")
        time.sleep(0.3)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2      # not once only: again after each silent interval
    assert all(line.startswith("verify: instance 2 still running after ")
               and line.endswith(" s (ReLU splitting: 40 domains, 12 open)") for line in lines)


def test_a_batch_of_one_says_only_that_it_still_runs(monkeypatch):
    import time
    monkeypatch.setattr(progress_module, "PLAIN_S", 0.05)
    monkeypatch.setattr(progress_module, "TICK_S", 0.01)
    stream = io.StringIO()
    with Progress(1, ResultTally(), desc="verify p.vnnlib", stream=stream,
                  unit="instance") as progress:
        progress.start(0)
        progress.stage(0, "exact MILP, box/conjunction pair 1 of 9")
        time.sleep(0.2)
        progress.update({"index": 0, "result": "timeout"})
        after = len(stream.getvalue())
    lines = stream.getvalue().splitlines()
    assert lines and all(line.startswith("verify p.vnnlib: still running after ") for line in lines)
    assert lines[-1].endswith(" s (exact MILP, box/conjunction pair 1 of 9)")
    assert len(stream.getvalue()) == after      # no count line at the end: the command says it
    assert progress.postfix() == "timeout 1"


def test_verify_tells_its_stages_and_the_counts_of_relu_splitting(monkeypatch):
    """The wide tent of tests/test_relu_split.py: proved by ReLU splitting, whose domain count
    reaches the listener (told at most every ``PACE_S`` seconds: here every time)."""
    from attacks import work
    from attacks.verify import verify
    from attacks.work import listen_to_stages
    monkeypatch.setattr(work, "PACE_S", 0.0)
    from tests.test_relu_split import wide_tent
    net, spec = wide_tent(0.6)
    heard = []
    previous = listen_to_stages(heard.append)
    try:
        verdict = verify(net, spec, timeout=60, strategy="auto")
    finally:
        listen_to_stages(previous)
    assert verdict.result == "unsat" and verdict.stage == "ReLU splitting"
    assert heard[0] == "falsification (gradient ascent)"
    assert "margin bounds (symbolic)" in heard
    assert "ReLU splitting: lp bounds of the box" in heard
    counts = [h for h in heard if h.startswith("ReLU splitting: ") and "domains" in h]
    assert counts and counts[0].startswith("ReLU splitting: 1 domains, 1 open, worst bound ")
    monkeypatch.setattr(work, "PACE_S", 60.0)        # a search shorter than that says nothing
    heard.clear()
    listen_to_stages(heard.append)
    try:
        assert verify(net, spec, timeout=60, strategy="auto").result == "unsat"
    finally:
        listen_to_stages(previous)
    assert "ReLU splitting: lp bounds of the box" in heard
    assert not any("domains" in h for h in heard)
    assert not any("target class None" in h for h in heard)


def test_an_instance_list_run_by_one_job_tells_each_instance_s_stages(tmp_path, monkeypatch):
    from attacks import work
    from attacks.work import listen_to_stages
    monkeypatch.setattr(work, "PACE_S", 0.0)
    from evaluation.instances import decide_instances
    from frontends import save_network
    from ir.vnnlib import format_vnnlib
    from tests.test_relu_split import wide_tent
    heard = []
    told = Progress.stage
    monkeypatch.setattr(Progress, "stage", lambda self, index, text: (
        heard.append((index, text)), told(self, index, text)))
    for name, threshold in (("a", 0.6), ("b", 0.55)):      # both need ReLU splitting
        net, spec = wide_tent(threshold)
        (tmp_path / f"{name}.vnnlib").write_text(format_vnnlib(spec.cases, 20, 1))
    save_network(net, tmp_path / "tent.onnx")
    (tmp_path / "instances.csv").write_text("tent.onnx,a.vnnlib,60\ntent.onnx,b.vnnlib,60\n")
    records, _ = decide_instances(tmp_path / "instances.csv", None, "exact", "highs", "symbolic",
                                  quiet=True)
    assert [r["result"] for r in records] == ["unsat", "unsat"]
    for number in (0, 1):
        assert (number, "ReLU splitting: lp bounds of the box") in heard
        assert any(i == number and text.startswith("ReLU splitting: 1 domains")
                   for i, text in heard)
    assert listen_to_stages(None) is None     # put back as it was
