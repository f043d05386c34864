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
