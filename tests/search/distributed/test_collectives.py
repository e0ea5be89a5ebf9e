"""The distributed helpers on two real gloo ranks (torchrun): grads, shards, DDP steps, fit resume."""

from __future__ import annotations

import json

import pytest
from torchrun_helpers import REPO, torchrun

pytestmark = pytest.mark.slow  # two torch processes start: ~20 s on 2 shared cores


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("collectives")
    proc = torchrun([str(REPO / "tests" / "search" / "distributed" / "collective_worker.py"), str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_ranks_ran(ranks):
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 for r in ranks)


def test_arch_gradient_average(ranks):
    for r in ranks:
        g = r["grads"]
        assert g["a"] == [1.5, 1.5, 1.5]  # (1 + 2) / 2
        assert g["b"] == [1.0, 1.0, 1.0]  # only rank 0 had one: (2 + 0) / 2
        assert g["c_is_none"]  # nobody had one: stays None, so Adam skips it as on one process


def test_shards_are_disjoint_complete_and_reshuffled(ranks):
    n = ranks[0]["shards"]["n"]
    for epoch in ("epoch0", "epoch1"):
        a, b = ranks[0]["shards"][epoch], ranks[1]["shards"][epoch]
        assert len(a) == len(b) == -(-n // 2)  # same number of samples, so the same number of steps
        assert set(a) | set(b) == set(range(n))
        assert len(set(a) & set(b)) <= len(a) + len(b) - n  # overlap only where the sampler pads
    assert ranks[0]["shards"]["epoch0"] != ranks[0]["shards"]["epoch1"]
    assert ranks[0]["shards"]["per_rank_batch"] == 2  # global batch 4 over 2 ranks


def test_ddp_weight_step_and_averaged_arch_step_match_one_process(ranks):
    a, b = ranks[0]["step"], ranks[1]["step"]
    assert a["digests"] == b["digests"]  # bitwise the same weights and alphas on both ranks
    assert set(a["weight_batch"]).isdisjoint(b["weight_batch"])  # and they trained on different samples
    assert a["alpha_moved"] > 1e-3  # the architecture step did something
    for r in (a, b):
        assert r["max_diff_vs_one_process"] < 1e-6  # = one process on the concatenated global batch


def test_fit_resume_and_rank0_checkpoints(ranks):
    a, b = ranks[0]["fit"], ranks[1]["fit"]
    assert a["resumed_equals_straight"] and b["resumed_equals_straight"]
    assert a["digests"] == b["digests"] and a["losses"] == b["losses"] and len(a["losses"]) == 3
    assert b["save_calls"] == [] and len(a["save_calls"]) == 3 + 1 + 2  # straight, interrupted, resumed


def test_search_resumes_from_rank0_checkpoint_in_sync(ranks):
    a, b = ranks[0]["search"], ranks[1]["search"]
    assert a["steps"] == b["steps"] == [1, 2, 3, 4]  # steps 1-2 from the checkpoint, 3-4 after the resume
    assert a["phases"] == ["warmup", "search", "search", "search"]
    assert a["digests"] == b["digests"] and a["alpha_moved"] > 1e-3
    assert b["saves"] == [] and a["saves"] == [0, 0, 0, 0]  # steps 1, 2, then 3, 4 after resuming


def test_collapse_restarts_decided_on_rank0_and_taken_by_both(ranks):
    a, b = ranks[0]["restarts"], ranks[1]["restarts"]
    assert a["record"] == b["record"]  # rank 0's verdict, shared: the same attempts, seeds and kept index
    attempts = a["record"]["attempts"]
    assert [r["attempt"] for r in attempts] == [0, 1] and all(r["collapsed"] for r in attempts)
    assert attempts[0]["seed"] != attempts[1]["seed"] and a["record"]["collapsed"]
    assert a["digests"] == b["digests"]  # the same weights kept on both ranks
    assert b["saves"] == [] and len(a["saves"]) == 2 * 2  # two epochs per attempt, written by rank 0 alone
    assert a["restart_checkpoint"]
