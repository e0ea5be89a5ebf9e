"""The table of search spaces the latency tools read; each method registers its own.

``python -m search profile`` needs every op key the supernets of a space can contain under a
preset, and ``python -m search latency-check`` needs random discrete networks of a space. How a space
is built is its method's business: the method registers a :class:`SearchSpace` here
(``search.methods.<method>.latency_space.register``; ``search.methods.spaces.register_all``
registers every method's), and ``search.latency.core_adapter`` reads the table. The latency layer
never imports a method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

#: ``(module factory, input shape without batch)``: one supernet configuration a preset uses.
SupernetConfig = tuple[Callable[[], Any], tuple[int, ...]]


@dataclass(frozen=True)
class SearchSpace:
    """How the latency tools build the networks of one search space.

    Attributes:
        name: Space name on the command line (``segqc``, ``msnas``, ...).
        supernets: ``preset -> [(supernet factory, input shape without batch), ...]``: every
            supernet the method builds under the preset.
        random_genotype: ``(preset, numpy Generator[, skip_prob]) -> genotype``: a random discrete architecture
            shaped like the preset's supernet (it has ``to_dict()``).
        build_network: ``(preset, genotype, seed) -> (nn.Module, input shape without batch)``: the
            derived network of a genotype as deployed.
        stream: Index of the space's random stream in ``latency-check`` (fixed per space, so adding a
            space does not change the networks sampled for the others).
        card_methods: The ``method`` of the model cards whose networks come from this space
            (``latency-check --deployment / --shipped`` read the shipped cards by it).
    """

    name: str
    supernets: Callable[[str], list[SupernetConfig]]
    random_genotype: Callable[[str, Any], Any]
    build_network: Callable[[str, Any, int], tuple[Any, tuple[int, ...]]]
    stream: int
    card_methods: tuple[str, ...] = ()


_SPACES: dict[str, SearchSpace] = {}


def register_space(name: str, *, supernets: Callable[[str], list[SupernetConfig]],
                   random_genotype: Callable[[str, Any], Any],
                   build_network: Callable[[str, Any, int], tuple[Any, tuple[int, ...]]],
                   stream: int | None = None, card_methods: tuple[str, ...] = ()) -> SearchSpace:
    """Add (or replace) the space ``name`` in the table; returns its entry.

    Args:
        name: Space name.
        supernets, random_genotype, build_network: See :class:`SearchSpace`.
        stream: Random stream of the space (default: its existing one, else the next free index).
        card_methods: The card ``method`` of the models searched in this space (see :class:`SearchSpace`).
    """
    if not name or "," in name:
        raise ValueError(f"a search space name must be non-empty and without commas, got {name!r}")
    if stream is None:
        old = _SPACES.get(name)
        stream = old.stream if old is not None else max((s.stream for s in _SPACES.values()), default=-1) + 1
    entry = SearchSpace(name, supernets, random_genotype, build_network, stream, tuple(card_methods))
    _SPACES[name] = entry
    return entry


def get_space(name: str) -> SearchSpace:
    """The registered space ``name``.

    Raises:
        ValueError: no such space (the message lists the registered ones).
    """
    try:
        return _SPACES[name]
    except KeyError:
        known = ", ".join(_SPACES) or "none registered (call search.methods.spaces.register_all())"
        raise ValueError(f"unknown search space {name!r}; choose from {known}") from None


def space_names() -> tuple[str, ...]:
    """Names of the registered spaces, in registration order."""
    return tuple(_SPACES)


def unregister_space(name: str) -> None:
    """Remove ``name`` from the table (tests); absent names are ignored."""
    _SPACES.pop(name, None)
