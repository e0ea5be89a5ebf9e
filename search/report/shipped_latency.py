"""The shipped models of each search space, for ``python -m search latency-check --deployment / --shipped``.

The table check samples random networks of a space; issue 16 (item 4) asks for the predictor to be
validated where it is used: at the input size the shipped models run at in the app, and on the
shipped networks themselves. Both come from the model cards in ``models/``:

- :func:`deployment_for` picks the card a space's random networks are sized after: a segmentation
  card of the space (its ``method`` is one of the space's ``card_methods``,
  ``search.latency.spaces``), neither streaming (``--per-frame`` checks those) nor INT8; the one
  marked ``"default": true`` first, then contrast before B-mode echo (the app's choice without a
  recording), then by id. Its input shape without batch and channels is the size.
- :func:`shipped_networks` rebuilds every shipped searched network of the checked spaces from its
  card's typed architecture (``search.build.build_from_card``: the card's genotype, arguments and
  output interface, so the graph is the one the app runs), at the card's own input shape, with
  seeded weights (weights do not change the time), and lists its op instances
  (``search.latency.core_adapter.op_instances``). A segmentation card whose QC partner
  (``pairs_with``) comes from the same space (segqc-hw) is one network, seg then QC, as the app
  runs the pair. A handcrafted network whose card method a space claims (the per-frame U-net 2D
  baseline, one network of the cine skeleton space) is rebuilt the same way, its architecture's
  arguments standing for a genotype. Every other card is listed as skipped with the reason: other
  handcrafted baselines (their ops are not table entries), streaming and INT8 models, other spaces,
  cards whose architecture cannot be rebuilt.

It lives in the report layer, beside the card builder it uses (``search.build``); the latency CLI
takes the cards' sizes and networks from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from app.cards import ModelCard
from search.latency.check import SampledNetwork
from search.latency.spaces import get_space, space_names


@dataclass(frozen=True)
class Deployment:
    """The input a space's shipped models run at, and the card it was read from.

    Attributes:
        space: Search space name.
        card: Id of the card the size comes from.
        input_shape: Its input shape without batch, ``(C, H, W)`` or ``(C, T, H, W)``.
        partner: Its QC partner from the same space (segqc-hw), if any.
        other_shapes: Other cards of the space (same kind: float, not streaming) whose input shape
            differs, id -> shape without batch (their shipped networks are still timed at their own).
        interface: The card's output interface (``search.build``; ``"probs"``: a clip network's softmax).
    """

    space: str
    card: str
    input_shape: tuple[int, ...]
    partner: str | None = None
    other_shapes: dict[str, list[int]] = field(default_factory=dict)
    interface: str | None = None

    @property
    def size(self) -> tuple[int, ...]:
        """``(H, W)`` or ``(T, H, W)``: what ``core_adapter.sample_networks(size=...)`` takes."""
        return self.input_shape[1:]

    def to_dict(self) -> dict[str, Any]:
        return {"card": self.card, "partner": self.partner, "input_shape": list(self.input_shape),
                "size": list(self.size), "other_shapes": dict(self.other_shapes), "interface": self.interface}

    def as_deployed(self, net: SampledNetwork) -> SampledNetwork:
        """A random network of the space with the output its shipped models give the app.

        A clip network's card exports its softmax (interface ``"probs"``, ``search.train.clips.ClipProbabilities``):
        the random networks get it too, so the calibration fitted on them carries its cost (~1.7 ms per
        20x64x48 clip on a 2-core Xeon, about 10-15 % of a shipped cine network), which the op table has no
        entry for. Other interfaces are left as the space builds them (segqc's random graph already ends in
        the seg softmax, uncertainty and QC, as the app runs the pair). The op instances do not change.
        """
        if self.interface != "probs":
            return net
        from dataclasses import replace

        from search.train.clips import ClipProbabilities

        return replace(net, module=ClipProbabilities(net.module).eval())


def space_of(card: ModelCard) -> str | None:
    """The registered search space a card's network comes from (by its ``method``), or None."""
    for name in space_names():
        if card.method in get_space(name).card_methods:
            return name
    return None


def _clip_or_image_seg(card: ModelCard) -> bool:
    """A float segmentation model run on one input (an image or a clip), not streamed."""
    return card.role == "seg" and not card.raw.get("streaming") and not card.raw.get("quantization")


def _partner(card: ModelCard, by_id: dict[str, ModelCard]) -> ModelCard | None:
    """The card's QC partner when it comes from the same space (searched with it), else None."""
    partner = by_id.get(card.pairs_with) if card.pairs_with else None
    return partner if partner is not None and space_of(partner) == space_of(card) else None


def deployment_for(space: str, cards: Sequence[ModelCard]) -> Deployment:
    """The input shape ``space``'s shipped models run at (see the module docstring for the choice).

    Raises:
        ValueError: no float, non-streaming segmentation card of the space among ``cards``.
    """
    methods = get_space(space).card_methods
    candidates = [c for c in cards if c.method in methods and _clip_or_image_seg(c)]
    if not candidates:
        raise ValueError(f"no shipped segmentation model of space {space} (card method "
                         f"{' or '.join(methods) or 'none registered'}, not streaming, not INT8) among the cards")
    chosen = min(candidates, key=lambda c: (not bool(c.raw.get("default", False)),
                                            c.echo_mode not in (None, "contrast"), c.id))
    shape = tuple(int(d) for d in chosen.input_shape[1:])
    partner = _partner(chosen, {c.id: c for c in cards})
    others = {c.id: [int(d) for d in c.input_shape[1:]] for c in candidates
              if tuple(int(d) for d in c.input_shape[1:]) != shape}
    interface = (chosen.raw.get("architecture") or {}).get("interface")
    return Deployment(space, chosen.id, shape, partner.id if partner else None, others, interface)


class _SegThenQc(nn.Module):
    """A seg + QC pair as the app runs it: the seg outputs, then QC fed by input name.

    ``forward(x)`` -> the seg outputs, then the QC output. The QC inputs are taken by name from the
    seg input and the seg outputs (``image``, ``probs``, ``uncertainty``), as ``app.engine.stages``
    feeds them.
    """

    def __init__(self, seg: nn.Module, qc: nn.Module, seg_input: str, seg_outputs: Sequence[str],
                 qc_inputs: Sequence[str]):
        super().__init__()
        self.seg, self.qc = seg, qc
        self.seg_input, self.seg_outputs, self.qc_inputs = seg_input, tuple(seg_outputs), tuple(qc_inputs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.seg(x)
        out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        values = {self.seg_input: x, **dict(zip(self.seg_outputs, out))}
        return (*out, self.qc(*[values[name] for name in self.qc_inputs]))


class _Skip(Exception):
    """A card that cannot be rebuilt for the check; the message is the reason."""


def _names(card: ModelCard, field_name: str) -> list[str]:
    return [str(t["name"]) for t in card.raw.get(field_name) or []]


def _genotype(card: ModelCard) -> Any:
    from search.build import card_architecture
    from search.export.architecture import ArchitectureError

    try:
        arch = card_architecture(card.raw)
    except ArchitectureError as exc:
        raise _Skip(f"its architecture cannot be rebuilt ({exc})") from None
    if arch.genotype is None:  # a U-net skeleton (its spec is in the args) or a handcrafted net its space claims
        return {"kind": arch.kind, **arch.to_json()["args"]}
    return arch.genotype


def _build(card: ModelCard, seed: int) -> nn.Module:
    """``build_from_card`` without weights; what goes wrong becomes the reason to skip the card."""
    from search.build import build_from_card

    try:
        return build_from_card(card.raw, seed=seed)
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:  # ArchitectureError is a ValueError
        raise _Skip(f"its architecture cannot be rebuilt ({exc})") from None


def _rebuild(card: ModelCard, partner: ModelCard | None, seed: int) -> tuple[nn.Module, dict[str, Any]]:
    """The network the app runs for ``card`` (then ``partner``), seeded weights; and card id -> genotype."""
    genotypes = {card.id: _genotype(card)}
    seg_inputs = _names(card, "inputs") or [card.input_name]
    if len(seg_inputs) != 1:
        raise _Skip(f"it takes {len(seg_inputs)} inputs ({', '.join(seg_inputs)}); the check times one-input networks")
    module = _build(card, seed)
    if partner is not None:
        genotypes[partner.id] = _genotype(partner)
        qc_inputs, seg_outputs = _names(partner, "inputs"), _names(card, "outputs")
        unknown = [n for n in qc_inputs if n not in (*seg_inputs, *seg_outputs)]
        if not qc_inputs or unknown:
            raise _Skip(f"its QC partner {partner.id} takes {', '.join(unknown) or 'no inputs'}, which "
                        f"{card.id} does not give")
        module = _SegThenQc(module, _build(partner, seed), seg_inputs[0], seg_outputs, qc_inputs)
    return module.eval(), genotypes


def _skip_reason(card: ModelCard, spaces: Sequence[str]) -> str | None:
    """Why ``card`` is not timed on its own (None: a segmentation card to rebuild)."""
    space = space_of(card)
    if space is None:
        kind = (card.raw.get("architecture") or {}).get("kind", "unknown")
        if (card.raw.get("architecture") or {}).get("genotype") is None and card.raw.get("genotype") is None:
            return (f"handcrafted network ({kind}, method {card.method}): not built from a search space's ops, "
                    "so the op table has no entries for it")
        return f"method {card.method!r} belongs to no registered search space"
    if space not in spaces:
        return f"space {space} is not checked (--spaces)"
    if card.raw.get("streaming"):
        return "streaming model (one new frame plus its state per call): checked by latency-check --per-frame"
    if card.raw.get("quantization"):
        float_model = (card.raw.get("quantization") or {}).get("float_model")
        return ("INT8 model: the op table times float ops" + (f"; its float model {float_model} is checked"
                                                              if float_model else ""))
    return None


def shipped_networks(spaces: Sequence[str], cards: Sequence[ModelCard], *, seed: int = 0
                     ) -> tuple[list[SampledNetwork], list[dict[str, str]]]:
    """Every shipped searched network of ``spaces`` rebuilt from its card, and every other card with why not.

    Args:
        spaces: The checked spaces.
        cards: The shipped cards (``app.cards.discover(models_dir)``).
        seed: Seeds the weights and the example input.

    Returns:
        ``(networks, skipped)``: one ``SampledNetwork`` per rebuilt network (``model_id`` its
        segmentation card's id, ``genotype`` card id -> genotype of every card it runs, ``index`` its
        position among its space's shipped networks), in card-id order; ``skipped`` is
        ``[{"id", "reason"}]`` for every other card, a QC partner timed with its segmentation card
        excepted.
    """
    from search.latency.core_adapter import op_instances

    by_id = {c.id: c for c in cards}
    networks: list[SampledNetwork] = []
    skipped: list[dict[str, str]] = []
    timed: set[str] = set()
    qc_cards: list[ModelCard] = []
    gen = torch.Generator().manual_seed(seed)
    for card in sorted(cards, key=lambda c: c.id):
        reason = _skip_reason(card, spaces)
        if reason is None and card.role != "seg":
            qc_cards.append(card)  # timed with its segmentation partner, else skipped below
            continue
        if reason is None:
            partner = _partner(card, by_id)
            try:
                module, genotypes = _rebuild(card, partner, seed)
                x = torch.randn(card.input_shape, generator=gen)
                try:
                    keys = op_instances(module, x)
                except RuntimeError as exc:
                    raise _Skip(f"the rebuilt network does not run on the card's input {list(x.shape)} ({exc})") from None
                if not keys:
                    raise _Skip("the rebuilt network runs no op of the table")
            except _Skip as exc:
                reason = str(exc)
            else:
                space = str(space_of(card))
                index = sum(1 for n in networks if n.space == space)
                networks.append(SampledNetwork(space, index, module, x, keys, genotype=genotypes, model_id=card.id))
                timed |= set(genotypes)
        if reason is not None:
            skipped.append({"id": card.id, "reason": reason})
    for card in qc_cards:
        if card.id not in timed:
            skipped.append({"id": card.id, "reason": "QC model: timed with its segmentation partner, and no "
                                                     "rebuilt segmentation card pairs with it"})
    return networks, skipped
