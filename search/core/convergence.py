"""Did the architecture search learn? The entropy of every softmax group of the architecture parameters.

A *group* is one softmax of the architecture parameters, one decision of the search:

- each edge's op mixture (``"op"`` and ``"edge_op"`` relaxations: ``softmax(alpha_e)``);
- each node's choice of incoming edge (``"edge_op"``: ``softmax(gamma[edges into the node])``);
- each node's joint (input, op) choice (``"input_op_pair"``: one softmax over the node's alphas);
- each multi-scale vertex's choice of outgoing path (``beta``, masked to the kinds that exist);
- any other architecture parameter (e.g. a width or channel choice): a softmax over its last
  dimension, one group per row.

Groups with a single choice are left out (their entropy is always 0). The *normalised entropy* of a
group with n choices and probabilities p is ``H(p) / log(n)`` in [0, 1]: 1 is uniform (undecided),
0 is one-hot (decided).

:class:`ArchTrace` records the normalised entropy of every group at initialisation and every
``every`` architecture steps, and keeps the initial logits so that the genotype the untrained
architecture would decode to can be derived at the end (:meth:`ArchTrace.initial_argmax`).

The verdict (:meth:`ArchTrace.verdict`, issue 16): with ``H0_g`` the normalised entropy of group g at
initialisation and ``H1_g`` at the last record, the group's relative drop is
``d_g = (H0_g - H1_g) / H0_g`` (0 when ``H0_g = 0``), and the search's entropy drop is the unweighted
mean of ``d_g`` over all G groups, ``D = (1/G) sum_g d_g``. A search is **not converged** when

1. it took no architecture step; or
2. ``D < min_drop`` (0.2: the entropy fell by less than 20 %); or
3. the derived genotype equals the genotype the architecture parameters at initialisation decode to
   (the search chose nothing the random initialisation had not already chosen); or
4. the groups belong to several searched nets (names ``"<net>/<group>"``, e.g. ``seg/`` and ``qc/`` of a joint
   search) and one net's own mean drop ``D_net`` is below ``min_drop``: a mean over all groups can pass while the
   net with few groups barely moved (a joint search with 4 seg width groups beside 12 QC edges did).

The verdict names every rule that failed (``reasons``) and is written, with the trace, into the
search result, the report and the shipped model's card; shipping an unconverged search prints one
warning line (:func:`shipping_warning`).
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

import numpy as np
import torch
from torch import nn

#: The issue's threshold: the mean relative entropy drop a converged search reaches at least.
MIN_ENTROPY_DROP = 0.2

G = TypeVar("G")
Nets = Mapping[str, nn.Module]


# ------------------------------------------------------------------------------------ entropy
def normalised_entropy(p: np.ndarray | torch.Tensor | list[float]) -> float:
    """``H(p) / log(n)`` of one probability vector of n >= 2 entries (0 log 0 = 0), in [0, 1]."""
    q = np.asarray(p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else p, dtype=np.float64).ravel()
    if q.size < 2:
        raise ValueError(f"entropy of a group needs at least 2 choices, got {q.size}")
    total = q.sum()
    if not total > 0:
        raise ValueError("entropy of a group needs a positive probability mass")
    q = q / total
    nz = q[q > 0]
    return float(min(1.0, max(0.0, -(nz * np.log(nz)).sum() / math.log(q.size))))


def _cell_groups(prefix: str, arch: nn.Module) -> dict[str, torch.Tensor]:
    """Softmax groups of one ``search.core.cells.CellArch`` (see the module docstring)."""
    spec, out = arch.spec, {}
    first_node, last_node = spec.n_inputs, spec.n_inputs + spec.n_nodes
    if arch.relaxation in ("op", "edge_op"):
        for e, (src, dst, _) in enumerate(spec.edges):
            out[f"{prefix}.edge{src}-{dst}.ops"] = torch.softmax(arch.alpha(e), 0)
    for dst in range(first_node, last_node):
        into = spec.incoming(dst)
        if arch.relaxation == "edge_op" and len(into) >= 2:
            out[f"{prefix}.node{dst}.inputs"] = torch.softmax(arch.gamma[into], 0)
        elif arch.relaxation == "input_op_pair":
            out[f"{prefix}.node{dst}.input_ops"] = torch.softmax(torch.cat([arch.alpha(e) for e in into]), 0)
    return out


def _beta_groups(prefix: str, net: nn.Module) -> dict[str, torch.Tensor]:
    """One group per reachable multi-scale vertex ``(l, s)``, ``s <= l``, with >= 2 outgoing kinds."""
    beta, mask, out = net.beta, net.beta_mask, {}
    n_layers, n_scales = beta.shape[:2]
    for layer in range(n_layers):
        for s in range(min(layer, n_scales - 1) + 1):
            keep = mask[layer, s]
            if int(keep.sum()) >= 2:
                out[f"{prefix}beta.l{layer}.s{s}"] = torch.softmax(beta[layer, s][keep], 0)
    return out


def named_arch_parameters(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``net.named_arch_parameters()``, or ``arch<i>`` names for a net exposing only ``arch_parameters()``."""
    if hasattr(net, "named_arch_parameters"):
        return list(net.named_arch_parameters())
    return [(f"arch{i}", p) for i, p in enumerate(net.arch_parameters())]


def softmax_groups(net: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every softmax group of ``net``'s architecture parameters: ``name -> probabilities (n,)``.

    ``net`` exposes ``named_arch_parameters()`` (a ``search.core.supernets`` supernet); cells under
    ``cell_arch`` and a masked ``beta`` are grouped as their relaxation defines, any other
    architecture parameter by rows of its last dimension.
    """
    out: dict[str, torch.Tensor] = {}
    covered: set[str] = set()
    with torch.no_grad():
        cell_arch = getattr(net, "cell_arch", None)
        if isinstance(cell_arch, nn.ModuleDict):
            for kind, arch in cell_arch.items():
                out.update(_cell_groups(f"{prefix}{kind}", arch))
                covered.update(f"cell_arch.{kind}.{n}" for n, _ in arch.named_parameters())
        if isinstance(getattr(net, "beta", None), nn.Parameter) and hasattr(net, "beta_mask"):
            out.update(_beta_groups(prefix, net))
            covered.add("beta")
        for name, p in named_arch_parameters(net):
            if name in covered or p.numel() < 2 or p.shape[-1] < 2:
                continue
            rows = p.detach().reshape(-1, p.shape[-1])
            for i, row in enumerate(rows):
                out[f"{prefix}{name}" + (f"[{i}]" if len(rows) > 1 else "")] = torch.softmax(row, 0)
    return out


def group_entropies(nets: Nets) -> dict[str, float]:
    """Normalised entropy of every group of every net (names prefixed ``<key>/`` when the key is set)."""
    out = {}
    for key, net in nets.items():
        for name, p in softmax_groups(net, f"{key}/" if key else "").items():
            out[name] = normalised_entropy(p)
    return out


# ------------------------------------------------------------------------------------ verdict
@dataclass(frozen=True)
class GroupDrop:
    """One group's normalised entropy at initialisation and at the end, and its relative drop."""

    initial: float
    final: float
    relative_drop: float


@dataclass(frozen=True)
class Convergence:
    """The verdict on one search (see the module docstring for the rules).

    Attributes:
        converged: False when any rule failed.
        reasons: One sentence per failed rule (empty when converged).
        mean_relative_drop: D, the unweighted mean over groups of each group's relative drop.
        min_drop: The threshold D had to reach.
        derived_equals_initial_argmax: Whether the derived genotype is what the initial logits decode to.
        arch_steps: Architecture steps the search took.
        groups: Group name -> its initial / final entropy and relative drop.
        parts: With several searched nets (group names ``"<net>/<group>"``): net -> the mean relative drop of its
            own groups (rule 4); empty for one net.
    """

    converged: bool
    reasons: list[str]
    mean_relative_drop: float
    min_drop: float
    derived_equals_initial_argmax: bool
    arch_steps: int
    groups: dict[str, GroupDrop] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (``json.dumps`` works on the result)."""
        doc = asdict(self)
        doc["mean_relative_drop"] = _finite_or_none(self.mean_relative_drop)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Convergence":
        drop = doc.get("mean_relative_drop")
        return cls(converged=bool(doc["converged"]), reasons=list(doc["reasons"]),
                   mean_relative_drop=float("nan") if drop is None else float(drop), min_drop=float(doc["min_drop"]),
                   derived_equals_initial_argmax=bool(doc["derived_equals_initial_argmax"]),
                   arch_steps=int(doc["arch_steps"]),
                   groups={k: GroupDrop(**v) for k, v in (doc.get("groups") or {}).items()},
                   parts={k: float(v) for k, v in (doc.get("parts") or {}).items()})

    def card_field(self) -> dict[str, Any]:
        """What the shipped card's ``search.convergence`` holds."""
        return {"converged": self.converged, "reasons": list(self.reasons),
                "mean_entropy_drop": _finite_or_none(round(self.mean_relative_drop, 4)), "arch_steps": self.arch_steps,
                **({"entropy_drop_per_net": {k: round(v, 4) for k, v in self.parts.items()}} if self.parts else {})}

    def summary(self) -> str:
        """One line: the verdict, the drop and the reasons."""
        drop = "n/a" if math.isnan(self.mean_relative_drop) else f"{100 * self.mean_relative_drop:.1f}%"
        head = "converged" if self.converged else "NOT CONVERGED"
        tail = "" if self.converged else ": " + "; ".join(self.reasons)
        per_net = "".join(f", {net} {100 * d:.1f}%" for net, d in self.parts.items())
        return (f"search {head} (mean entropy drop {drop} over {len(self.groups)} groups{per_net}, "
                f"{self.arch_steps} architecture steps){tail}")


def _finite_or_none(x: float) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _canonical(genotype: Any) -> str:
    """A comparable text of a genotype (its JSON when it has one), or of a dict / list of them."""
    if isinstance(genotype, Mapping):
        return json.dumps({str(k): _canonical(v) for k, v in genotype.items()}, sort_keys=True)
    if isinstance(genotype, (list, tuple)) and not hasattr(genotype, "to_json"):
        return json.dumps([_canonical(v) for v in genotype])
    if hasattr(genotype, "to_dict"):
        return json.dumps(genotype.to_dict(), sort_keys=True, default=str)
    if hasattr(genotype, "to_json"):
        return str(genotype.to_json())
    return json.dumps(genotype, sort_keys=True, default=str)


def judge(initial: Mapping[str, float], final: Mapping[str, float], *, derived: Any, initial_argmax: Any,
          arch_steps: int, min_drop: float = MIN_ENTROPY_DROP) -> Convergence:
    """The verdict from the groups' entropies at initialisation and at the end (see the module docstring)."""
    groups = {}
    for name, h0 in initial.items():
        h1 = final.get(name, h0)
        groups[name] = GroupDrop(round(h0, 6), round(h1, 6), round((h0 - h1) / h0 if h0 > 0 else 0.0, 6))
    mean_drop = float(np.mean([g.relative_drop for g in groups.values()])) if groups else float("nan")
    same = _canonical(derived) == _canonical(initial_argmax)
    reasons = []
    if arch_steps <= 0:
        reasons.append("no architecture step was taken")
    if not groups:
        reasons.append("the architecture has no softmax group with two or more choices")
    elif mean_drop < min_drop:
        reasons.append(f"the entropy of the architecture weights fell by {100 * mean_drop:.1f}% "
                       f"(mean over {len(groups)} groups), less than {100 * min_drop:.0f}%")
    parts = {}
    for name, g in groups.items():
        if "/" in name:
            parts.setdefault(name.split("/", 1)[0], []).append(g.relative_drop)
    parts = {net: float(np.mean(d)) for net, d in parts.items()} if len(parts) > 1 else {}
    for net, drop in parts.items():
        if drop < min_drop:
            reasons.append(f"the entropy of the {net} net's architecture weights fell by {100 * drop:.1f}% (mean over "
                           f"its own groups), less than {100 * min_drop:.0f}%")
    if same:
        reasons.append("the derived genotype equals the argmax of the architecture weights at initialisation")
    return Convergence(not reasons, reasons, mean_drop, min_drop, same, int(arch_steps), groups, parts)


# -------------------------------------------------------------------------------------- trace
class ArchTrace:
    """Entropy of every architecture group over the search, and the initial logits.

    Create it on the freshly initialised nets (before any architecture step); call
    :meth:`after_arch_step` after each one and :meth:`finish` at the end.

    Args:
        nets: The searched nets by name (``{"": supernet}``, or ``{"seg": ..., "qc": ...}``); each exposes
            ``named_arch_parameters()`` (or at least ``arch_parameters()``). A bare module counts as ``{"": module}``.
        every: Record every ``every``-th architecture step (the first record is the initialisation).
    """

    def __init__(self, nets: Nets | nn.Module, every: int = 1):
        self.nets: dict[str, nn.Module] = {"": nets} if isinstance(nets, nn.Module) else dict(nets)
        self.every = max(1, int(every))
        self.arch_steps = 0
        first = group_entropies(self.nets)
        self.names: list[str] = list(first)
        self.steps: list[int] = [0]
        self.entropies: list[list[float]] = [[round(first[n], 6) for n in self.names]]
        self.initial_logits: dict[str, dict[str, list]] = {
            key: {name: p.detach().cpu().tolist() for name, p in named_arch_parameters(net)}
            for key, net in self.nets.items()}

    # ----------------------------------------------------------------------------- recording
    def record(self) -> None:
        """Record the groups' entropies now (at the current architecture step)."""
        now = group_entropies(self.nets)
        row = [round(now.get(n, float("nan")), 6) for n in self.names]
        if self.steps[-1] == self.arch_steps:
            self.entropies[-1] = row
        else:
            self.steps.append(self.arch_steps)
            self.entropies.append(row)

    def after_arch_step(self) -> None:
        """Count one architecture step; record every ``every`` steps."""
        self.arch_steps += 1
        if self.arch_steps % self.every == 0:
            self.record()

    def finish(self) -> None:
        """Make sure the last state is recorded."""
        if self.steps[-1] != self.arch_steps:
            self.record()

    @property
    def initial(self) -> dict[str, float]:
        return dict(zip(self.names, self.entropies[0]))

    @property
    def final(self) -> dict[str, float]:
        return dict(zip(self.names, self.entropies[-1]))

    def mean_entropy(self) -> list[float]:
        """The mean normalised entropy over groups at every record."""
        return [float(np.nanmean(row)) if row else float("nan") for row in self.entropies]

    # --------------------------------------------------------------------------- initial argmax
    @contextlib.contextmanager
    def at_initialisation(self) -> Iterator[None]:
        """Within the block the nets hold their initial architecture logits (restored afterwards)."""
        saved = {key: {n: p.detach().clone() for n, p in named_arch_parameters(net)} for key, net in self.nets.items()}
        try:
            with torch.no_grad():
                for key, net in self.nets.items():
                    for name, p in named_arch_parameters(net):
                        p.copy_(torch.tensor(self.initial_logits[key][name], dtype=p.dtype, device=p.device))
            yield
        finally:
            with torch.no_grad():
                for key, net in self.nets.items():
                    for name, p in named_arch_parameters(net):
                        p.copy_(saved[key][name])

    def initial_argmax(self, decode: Callable[[], G]) -> G:
        """``decode()`` run on the initial architecture logits: the genotype the untrained search picks."""
        with self.at_initialisation():
            return decode()

    def verdict(self, derived_genotype: Any, init_argmax_genotype: Any, *,
                min_drop: float = MIN_ENTROPY_DROP) -> Convergence:
        """Whether this search converged (rules in the module docstring)."""
        self.finish()
        return judge(self.initial, self.final, derived=derived_genotype, initial_argmax=init_argmax_genotype,
                     arch_steps=self.arch_steps, min_drop=min_drop)

    # -------------------------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        """The trace as plain JSON (groups, steps, entropies, initial logits)."""
        return {"every": self.every, "arch_steps": self.arch_steps, "groups": list(self.names),
                "steps": list(self.steps), "entropy": [list(r) for r in self.entropies],
                "initial_logits": self.initial_logits}

    def load_json(self, doc: Mapping[str, Any]) -> "ArchTrace":
        """Restore a saved trace (resuming a search) onto the same nets; returns self."""
        if list(doc["groups"]) != self.names:
            raise ValueError("saved architecture trace has other groups than these nets; was the space changed?")
        self.every, self.arch_steps = int(doc["every"]), int(doc["arch_steps"])
        self.steps = [int(s) for s in doc["steps"]]
        self.entropies = [list(map(float, r)) for r in doc["entropy"]]
        self.initial_logits = {k: dict(v) for k, v in doc["initial_logits"].items()}
        return self

    # -------------------------------------------------------------------------------- plot
    def plot(self, path: Path, title: str = "") -> Path | None:
        """Entropy over architecture steps, one thin line per group and the mean in bold (PNG).

        Returns None (and writes nothing) when matplotlib is not installed.
        """
        return plot_trace(self.to_json(), path, title)


def plot_trace(trace: Mapping[str, Any], path: Path, title: str = "") -> Path | None:
    """:meth:`ArchTrace.plot` from a trace's JSON (as stored in a search result)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steps = np.asarray(trace["steps"], dtype=float)
    ent = np.asarray(trace["entropy"], dtype=float).reshape(len(steps), -1)
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for j in range(ent.shape[1]):
        ax.plot(steps, ent[:, j], color="0.6", linewidth=0.6, alpha=0.6)
    if ent.shape[1]:
        ax.plot(steps, np.nanmean(ent, axis=1), color="C3", linewidth=2.0, label=f"mean of {ent.shape[1]} groups")
        ax.legend(loc="lower left")
    ax.set_xlabel("architecture step")
    ax.set_ylabel("normalised entropy H / log n")
    ax.set_ylim(0.0, 1.05)
    ax.set_title(title or "Architecture entropy during the search")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_traces(traces: Mapping[str, Mapping[str, Any]], folder: Path, stem: str = "entropy") -> dict[str, str]:
    """One entropy plot per named trace JSON under ``folder``: name -> file name (none without matplotlib)."""
    out = {}
    for i, (name, trace) in enumerate(traces.items()):
        path = plot_trace(trace, Path(folder) / f"{stem}_{i}.png", title=f"Architecture entropy, {name}")
        if path is not None:
            out[name] = path.name
    return out


# ------------------------------------------------------------------------ shipping and reports
def shipping_warning(convergence: Convergence | Mapping[str, Any] | None, model_id: str) -> str | None:
    """The one warning line to print when shipping ``model_id`` from an unconverged search, else None."""
    if convergence is None:
        return None
    verdict = convergence if isinstance(convergence, Convergence) else Convergence.from_json(convergence)
    if verdict.converged:
        return None
    return f"WARNING: shipping {model_id} from a search that did NOT CONVERGE: " + "; ".join(verdict.reasons)


def card_field(convergence: Convergence | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The card's ``search.convergence`` value (None when the search recorded no verdict)."""
    if convergence is None:
        return None
    verdict = convergence if isinstance(convergence, Convergence) else Convergence.from_json(convergence)
    return verdict.card_field()


def report_section(verdicts: Mapping[str, Convergence | Mapping[str, Any]],
                   figures: Mapping[str, str] | None = None) -> str:
    """Markdown: the verdict of every search (by name), its entropy drop per group family, its plot."""
    lines = ["", "## Did the searches converge?", "",
             "Normalised entropy ``H / log n`` of every softmax group of the architecture weights; a search "
             f"whose mean relative drop is below {100 * MIN_ENTROPY_DROP:.0f}%, or whose derived genotype is the "
             "argmax of its initial weights, is *not converged* (`search.core.convergence`).", ""]
    for name, v in verdicts.items():
        verdict = v if isinstance(v, Convergence) else Convergence.from_json(v)
        lines.append(f"- **{name}**: {verdict.summary()}")
        for family, (n, lo, mean, hi) in _families(verdict).items():
            lines.append(f"  - {family}: {n} groups, relative drop mean {100 * mean:.1f}% "
                         f"(min {100 * lo:.1f}%, max {100 * hi:.1f}%)")
        if figures and name in figures:
            lines.append(f"\n  ![entropy, {name}]({figures[name]})")
    return "\n".join(lines) + "\n"


def _families(verdict: Convergence) -> dict[str, tuple[int, float, float, float]]:
    """Group name prefix before the first ``.`` (cell type, ``beta``, ...) -> count, min, mean, max drop."""
    by: dict[str, list[float]] = {}
    for name, g in verdict.groups.items():
        by.setdefault(name.split(".")[0], []).append(g.relative_drop)
    return {k: (len(v), min(v), float(np.mean(v)), max(v)) for k, v in sorted(by.items())}
