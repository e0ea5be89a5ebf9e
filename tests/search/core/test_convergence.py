"""Convergence of an architecture search: group entropies, the verdict's rules, the trace, the search wiring."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from search.core.convergence import (
    MIN_ENTROPY_DROP,
    ArchTrace,
    Convergence,
    card_field,
    judge,
    normalised_entropy,
    plot_trace,
    report_section,
    shipping_warning,
    softmax_groups,
)
from search.core.supernets.multiscale import MultiscaleConfig, MultiscaleSupernet
from search.train.bilevel import ArchitectureSearch
from search.train.cine_config import SearchConfig


# ------------------------------------------------------------------------------------ entropy
def test_normalised_entropy_of_known_distributions():
    assert normalised_entropy([0.25, 0.25, 0.25, 0.25]) == pytest.approx(1.0)
    assert normalised_entropy([1.0, 0.0, 0.0]) == pytest.approx(0.0)
    assert normalised_entropy([0.5, 0.5, 0.0, 0.0]) == pytest.approx(math.log(2) / math.log(4))  # = 0.5
    p = np.array([0.7, 0.2, 0.1])
    assert normalised_entropy(torch.tensor(p)) == pytest.approx(-(p * np.log(p)).sum() / math.log(3))
    assert normalised_entropy([2.0, 2.0]) == pytest.approx(1.0)  # unnormalised mass is normalised first
    with pytest.raises(ValueError, match="at least 2"):
        normalised_entropy([1.0])


@pytest.mark.parametrize("relaxation", ["edge_op", "input_op_pair"])
def test_groups_of_a_multiscale_supernet(relaxation):
    net = MultiscaleSupernet(MultiscaleConfig(base_channels=4, n_layers=3, n_scales=3, relaxation=relaxation), seed=0)
    groups = softmax_groups(net)
    cells = [n for n in groups if not n.startswith("beta")]
    # 1 cell input, 3 nodes: 6 edges; edge_op: 6 op groups + 2 edge choices (node 1 has one edge) per cell type;
    # input_op_pair: one joint group per node.
    assert len(cells) == 3 * (8 if relaxation == "edge_op" else 3)
    # beta: reachable vertices (s <= l) with at least two outgoing kinds; the stem vertex (0, 0) has ns, ct, skip.
    assert {n for n in groups if n.startswith("beta")} == {
        "beta.l0.s0", "beta.l1.s0", "beta.l1.s1", "beta.l2.s0", "beta.l2.s1", "beta.l2.s2"}
    assert len(groups["beta.l0.s0"]) == 3 and len(groups["beta.l2.s2"]) == 3  # top scale: ep, ns, skip
    for p in groups.values():
        assert len(p) >= 2 and float(p.sum()) == pytest.approx(1.0, abs=1e-6)
        assert normalised_entropy(p) > 0.999  # DARTS initialisation (1e-3 N(0, 1)) is near uniform


def test_other_architecture_parameters_are_grouped_by_rows():
    class WidthChoice(nn.Module):
        def __init__(self):
            super().__init__()
            self.width = nn.Parameter(torch.zeros(2, 3))
            self.scalar = nn.Parameter(torch.zeros(1))

        def named_arch_parameters(self):
            return [("width", self.width), ("scalar", self.scalar)]

    groups = softmax_groups(WidthChoice(), "net/")
    assert set(groups) == {"net/width[0]", "net/width[1]"}


# ------------------------------------------------------------------------------------ verdict
def test_a_drop_below_twenty_percent_is_not_converged():
    initial = {"a": 1.0, "b": 1.0}
    verdict = judge(initial, {"a": 0.7, "b": 0.95}, derived="x", initial_argmax="y", arch_steps=10)
    assert verdict.mean_relative_drop == pytest.approx((0.3 + 0.05) / 2) and verdict.mean_relative_drop < MIN_ENTROPY_DROP
    assert not verdict.converged and len(verdict.reasons) == 1 and "less than 20%" in verdict.reasons[0]
    assert verdict.groups["a"].relative_drop == pytest.approx(0.3)
    ok = judge(initial, {"a": 0.7, "b": 0.88}, derived="x", initial_argmax="y", arch_steps=10)
    assert ok.converged and ok.reasons == []  # mean drop 21%


def test_each_searched_net_must_converge_not_only_the_mean_over_all_groups():
    """A joint search whose 4 seg groups barely moved beside 12 QC groups that did passes on the mean of all groups
    (the contrast width search at lambda2 .0003: 44% overall, seg 16%): each net's own mean is judged too."""
    initial = {**{f"seg/width{i}": 1.0 for i in range(4)}, **{f"qc/edge{i}": 1.0 for i in range(12)}}
    final = {**{f"seg/width{i}": 0.85 for i in range(4)}, **{f"qc/edge{i}": 0.45 for i in range(12)}}
    verdict = judge(initial, final, derived="x", initial_argmax="y", arch_steps=10)
    assert verdict.mean_relative_drop == pytest.approx((4 * 0.15 + 12 * 0.55) / 16)
    assert verdict.mean_relative_drop > MIN_ENTROPY_DROP and not verdict.converged
    assert verdict.parts == pytest.approx({"seg": 0.15, "qc": 0.55})
    assert verdict.reasons == ["the entropy of the seg net's architecture weights fell by 15.0% (mean over its own "
                               "groups), less than 20%"]
    assert "seg 15.0%, qc 55.0%" in verdict.summary()
    assert verdict.card_field()["entropy_drop_per_net"] == {"seg": 0.15, "qc": 0.55}
    assert type(verdict).from_json(verdict.to_json()) == verdict
    final.update({f"seg/width{i}": 0.75 for i in range(4)})
    assert judge(initial, final, derived="x", initial_argmax="y", arch_steps=10).converged
    one_net = judge({"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 0.5}, derived="x", initial_argmax="y", arch_steps=1)
    assert one_net.converged and one_net.parts == {}  # ungrouped names: one net, rule 4 does not apply


def test_derived_equal_to_the_initial_argmax_is_not_converged():
    verdict = judge({"a": 1.0}, {"a": 0.1}, derived={"cells": [1, 2]}, initial_argmax={"cells": [1, 2]}, arch_steps=5)
    assert not verdict.converged and verdict.derived_equals_initial_argmax
    assert verdict.reasons == ["the derived genotype equals the argmax of the architecture weights at initialisation"]
    none = judge({"a": 1.0}, {"a": 1.0}, derived=1, initial_argmax=1, arch_steps=0)
    assert len(none.reasons) == 3 and "no architecture step" in none.reasons[0]


class TwoChoices(nn.Module):
    """Two softmax groups: an op choice (3 ops) and an edge choice (2 edges)."""

    def __init__(self):
        super().__init__()
        self.ops = nn.Parameter(1e-3 * torch.randn(3, generator=torch.Generator().manual_seed(0)))
        self.edges = nn.Parameter(torch.tensor([1e-3, 0.0]))

    def named_arch_parameters(self):
        return [("ops", self.ops), ("edges", self.edges)]

    def decode(self) -> dict[str, int]:
        return {"op": int(self.ops.argmax()), "edge": int(self.edges.argmax())}


def test_a_trace_where_the_alphas_move_is_converged(tmp_path):
    net = TwoChoices()
    trace = ArchTrace({"net": net}, every=2)
    for _ in range(7):
        with torch.no_grad():  # the search decides for op 2 and edge 1, away from their initial argmax
            net.ops.add_(torch.tensor([0.0, 0.0, 0.5]))
            net.edges.add_(torch.tensor([0.0, 0.5]))
        trace.after_arch_step()
    trace.finish()
    assert trace.steps == [0, 2, 4, 6, 7] and trace.arch_steps == 7
    assert trace.mean_entropy()[0] > 0.999 and trace.mean_entropy() == sorted(trace.mean_entropy(), reverse=True)
    initial = trace.initial_argmax(net.decode)
    assert initial == {"op": int(np.argmax(trace.initial_logits["net"]["ops"])), "edge": 0}
    assert float(net.ops.detach()[2]) > 3.0  # the logits were restored after decoding the initial ones
    verdict = trace.verdict(net.decode(), initial)
    assert verdict.converged and verdict.reasons == [] and verdict.mean_relative_drop > 0.5
    assert set(verdict.groups) == {"net/ops", "net/edges"}
    # JSON round trips: the verdict, the card field and the trace.
    doc = json.loads(json.dumps(verdict.to_json(), allow_nan=False))
    assert Convergence.from_json(doc) == verdict
    assert card_field(doc) == {"converged": True, "reasons": [], "mean_entropy_drop": round(verdict.mean_relative_drop, 4),
                               "arch_steps": 7}
    saved = json.loads(json.dumps(trace.to_json(), allow_nan=False))
    again = ArchTrace({"net": TwoChoices()}).load_json(saved)
    assert again.entropies == trace.entropies and again.steps == trace.steps and again.arch_steps == 7
    assert shipping_warning(verdict, "m") is None
    if plot_trace(saved, tmp_path / "entropy.png") is not None:
        assert (tmp_path / "entropy.png").stat().st_size > 1000


def test_an_unmoved_trace_is_not_converged_and_is_said_so():
    net = TwoChoices()
    trace = ArchTrace(net)
    for _ in range(3):
        trace.after_arch_step()
    verdict = trace.verdict(net.decode(), trace.initial_argmax(net.decode))
    assert not verdict.converged and len(verdict.reasons) == 2
    warning = shipping_warning(verdict.to_json(), "cine-x")
    assert warning.startswith("WARNING: shipping cine-x") and "NOT CONVERGE" in warning and "\n" not in warning
    text = report_section({"search a": verdict}, {"search a": "entropy_0.png"})
    assert "NOT CONVERGED" in text and "entropy_0.png" in text


def test_the_card_says_search_convergence(tmp_path):
    from search.export.card_writer import CardContent, TensorSpec, build_card

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not really onnx")
    verdict = judge({"a": 1.0}, {"a": 0.99}, derived=1, initial_argmax=2, arch_steps=4)
    content = CardContent(model_id="m", modality="cine", role="seg", method="msnas-hw",
                          inputs=[TensorSpec("clip", (1, 1, 4, 16, 16))], outputs=[TensorSpec("probs", (1, 4, 4, 16, 16))],
                          classes={0: "bg", 1: "RV"}, normalisation={"kind": "zscore"}, layout="NCTHW", data={},
                          notes="A network.", convergence=card_field(verdict))
    card = build_card(content, onnx_path=onnx, metrics={}, export={})
    assert card["search"]["convergence"]["converged"] is False
    assert card["search"]["convergence"]["reasons"] == verdict.reasons
    assert card["notes"].startswith("Search NOT CONVERGED (the entropy")


# ------------------------------------------------------------------------------- search wiring
def _loader(seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 1, 2, 8, 8, generator=g)
    y = torch.randint(0, 4, (4, 2, 8, 8), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(seed))


def _search(net, tmp_path, steps: int) -> ArchitectureSearch:
    cfg = SearchConfig(warmup_steps=1, search_steps=steps, batch_size=2, latency_lambda=0.0, arch_lr=0.05)
    return ArchitectureSearch(net, None, _loader(0), _loader(1), cfg, generator=torch.Generator().manual_seed(0),
                              checkpoint=tmp_path / "ck.pt", checkpoint_every=1)


def _tiny_supernet() -> MultiscaleSupernet:
    return MultiscaleSupernet(MultiscaleConfig(base_channels=4, n_layers=2, n_scales=2, n_nodes=2), seed=3)


def test_a_smoke_search_result_holds_the_trace_and_the_verdict(tmp_path):
    from search.core.decode import decode_multiscale
    from search.methods.msnas_hw.search import convergence_report, search_convergence

    torch.manual_seed(0)
    net = _tiny_supernet()
    searcher = _search(net, tmp_path, steps=3)
    searcher.run()
    trace = searcher.trace
    assert trace.arch_steps == 3 and trace.steps == [0, 1, 2, 3]  # every arch step (warm-up steps are not)
    assert len(trace.names) == len(softmax_groups(net)) and trace.entropies[-1] != trace.entropies[0]

    def decode(n: int):
        return decode_multiscale(net, n, edges_per_node=1)

    genotypes = {1: decode(1)}
    result = {"search": {"n_paths": 1}, "convergence": search_convergence(trace, genotypes, decode),
              "arch_trace": trace.to_json()}
    doc = json.loads(json.dumps(result, allow_nan=False))  # strict JSON, as written to result.json
    verdict = Convergence.from_json(doc["convergence"]["1"])
    assert verdict.arch_steps == 3 and not verdict.converged  # three tiny steps move nothing by 20%
    assert any("less than 20%" in r for r in verdict.reasons)
    assert doc["arch_trace"]["groups"] == trace.names and len(doc["arch_trace"]["entropy"]) == 4
    text = convergence_report({"msnas": doc}, tmp_path)
    assert "search msnas, n = 1" in text and "NOT CONVERGED" in text

    # Resuming from the checkpoint restores the trace with the rest of the state.
    again = _search(_tiny_supernet(), tmp_path, steps=3)
    again.run()
    assert again.trace.steps == trace.steps and again.trace.entropies == trace.entropies
