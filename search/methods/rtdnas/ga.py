"""RT-DNAS architecture derivation (Sec. 2.3): top-weight path selection and the genetic algorithm.

Both work on the same searched cells and choose N_l input-to-output paths of the layer x scale grid:

- **top-weight** (the original MS-NAS / "Dijkstra" choice): the N_l heaviest paths by product of beta
  probabilities (eq. 10 of the msnas-hw paper, arXiv:2008.07071), exactly, by ``search.core.decode.top_n_paths``;
- **genetic algorithm**: a *gene* is a legal path; the *gene pool* is the ``pool_size`` (10) heaviest
  paths; an *individual* is N_l distinct genes kept in canonical order (sorted by pool rank = by
  accumulated weight, heaviest first), stored as a sorted tuple of pool indices, so an individual
  has exactly one representation and can never hold a gene twice. *Fitness* is the latency of the
  fused network the individual forms (minimised; ties broken by the larger accumulated log weight,
  then by the canonical tuple, so the result is fully deterministic).

GA operators (all randomness from one seeded ``np.random.Generator``):

- initial population: ``population`` (20) distinct individuals; the top-weight individual (pool
  indices ``0..N_l-1``) is always one of them, the rest are uniform random N_l-subsets of the pool;
- selection: binary tournament on fitness;
- crossover (probability ``crossover_rate``): the child keeps a random portion (1..N_l-1 genes) of
  parent A and fills up with the genes of parent B it does not already hold (random order) --
  "exchanging a portion of genes"; if the two parents share genes the child is topped up from the pool;
- mutation (probability ``mutation_rate`` per child): one random gene is replaced by a pool gene the
  individual does not hold;
- elitism: the ``elite`` best individuals survive unchanged, so the best fitness never gets worse
  and the GA is never worse than top-weight (which is in generation 0);
- bounded: exactly ``generations`` (100) generations, fitness memoised per individual.

``FusedLatencyModel`` is the fitness of the default runs: the table's plain-sum latency of the fused
network (stem + every distinct grid edge's cell, each once + one head per distinct final scale),
looked up per grid edge once, so an individual costs a few dict lookups instead of a trace. It equals
``search.core.estimators.predict_latency`` of the ``FusedMultiscaleNet`` (tested). A measured fitness
(ONNX + onnxruntime per individual) plugs in through the same ``Fitness`` callable.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from search.core.decode import path_log_weight, sample_paths, top_n_paths
from search.core.genotypes import MultiscaleGenotype, PathGenotype

log = logging.getLogger(__name__)

#: ``paths (canonical order) -> latency in ms`` of the network those paths form.
Fitness = Callable[[Sequence[PathGenotype]], float]
Individual = tuple[int, ...]


@dataclass(frozen=True)
class GaConfig:
    """Genetic path selection (the paper: pool 10, population 20, 100 generations).

    Attributes:
        pool_size: Gene pool = this many paths (the heaviest; the pick may draw them, ``PickConfig.paths``).
        population: Individuals per generation.
        generations: Generations (the loop runs exactly this many).
        crossover_rate: Probability that a child comes from crossover (else a copy of parent A).
        mutation_rate: Probability that a child gets one gene replaced.
        elite: Best individuals carried over unchanged each generation.
        seed: Seed of the GA's generator.
    """

    pool_size: int = 10
    population: int = 20
    generations: int = 100
    crossover_rate: float = 0.9
    mutation_rate: float = 0.3
    elite: int = 2

    def __post_init__(self) -> None:
        if self.pool_size < 1 or self.population < 2 or self.generations < 0:
            raise ValueError(f"bad GA sizes: pool {self.pool_size}, population {self.population}, "
                             f"generations {self.generations}")
        if not 0 <= self.elite < self.population:
            raise ValueError(f"elite must be in [0, population), got {self.elite}")


@dataclass(frozen=True)
class GenePool:
    """The GA's genes: the heaviest legal paths (``from_beta``), or paths drawn from the same distribution
    (``sampled``); heaviest first either way.

    Attributes:
        paths: ``(P,)`` paths, by decreasing weight (pool index = rank).
        log_weights: ``(P,)`` log of each path's product of beta probabilities.
    """

    paths: tuple[PathGenotype, ...]
    log_weights: tuple[float, ...]

    @classmethod
    def from_beta(cls, beta_probs: np.ndarray, size: int) -> "GenePool":
        """Pool of the ``size`` heaviest paths of ``beta_probs (L, S, 4)`` (exact k-best DP)."""
        best = top_n_paths(np.asarray(beta_probs), size)
        probs = np.asarray(beta_probs, dtype=np.float64)
        return cls(tuple(p for p, _ in best), tuple(path_log_weight(p, probs) for p, _ in best))

    @classmethod
    def sampled(cls, beta_probs: np.ndarray, size: int, rng: np.random.Generator) -> "GenePool":
        """Pool of up to ``size`` distinct paths drawn from ``beta_probs`` (``search.core.decode.sample_paths``),
        ranked heaviest first (ties by the kinds' names), so the GA reads it as ``from_beta``'s."""
        probs = np.asarray(beta_probs, dtype=np.float64)
        ranked = sorted(((path_log_weight(p, probs), p) for p in sample_paths(probs, size, rng)),
                        key=lambda wp: (-wp[0], wp[1].kinds))
        return cls(tuple(p for _, p in ranked), tuple(w for w, _ in ranked))

    @classmethod
    def from_doc(cls, doc: Sequence[dict]) -> "GenePool":
        """The pool of ``to_doc``'s JSON."""
        return cls(tuple(PathGenotype(tuple(p["kinds"])) for p in doc), tuple(float(p["log_weight"]) for p in doc))

    def to_doc(self) -> list[dict]:
        """JSON: every path's kinds and log weight, in pool order (heaviest first)."""
        return [{"kinds": list(p.kinds), "log_weight": w} for p, w in zip(self.paths, self.log_weights)]

    def __len__(self) -> int:
        return len(self.paths)

    def genes(self, individual: Individual) -> tuple[PathGenotype, ...]:
        return tuple(self.paths[i] for i in individual)

    def weight(self, individual: Individual) -> float:
        """Accumulated log weight of an individual's genes."""
        return float(sum(self.log_weights[i] for i in individual))


def canonical(genes: Sequence[int]) -> Individual:
    """The canonical form: distinct pool indices sorted by rank (= by weight, heaviest first).

    Raises:
        ValueError: a gene appears twice.
    """
    out = tuple(sorted(int(g) for g in genes))
    if len(set(out)) != len(out):
        raise ValueError(f"an individual cannot hold a gene twice: {list(genes)}")
    return out


@dataclass
class GaResult:
    """Outcome of one GA run.

    Attributes:
        best: Canonical pool indices of the fittest individual.
        paths: Its paths, canonical order.
        latency_ms: Its fitness.
        top_weight: The top-weight individual ``(0..N_l-1)`` and its fitness, for comparison.
        history: Best fitness after each generation (``generations + 1`` values, generation 0 first).
        evaluated: Distinct individuals whose fitness was computed.
    """

    best: Individual
    paths: tuple[PathGenotype, ...]
    latency_ms: float
    top_weight: Individual
    top_weight_latency_ms: float
    history: list[float] = field(default_factory=list)
    evaluated: int = 0

    def to_dict(self) -> dict:
        return {
            "best": list(self.best), "paths": [list(p.kinds) for p in self.paths], "latency_ms": self.latency_ms,
            "top_weight": list(self.top_weight), "top_weight_latency_ms": self.top_weight_latency_ms,
            "history": self.history, "evaluated": self.evaluated,
        }


class GeneticPathSelection:
    """The GA of Sec. 2.3 for one N_l.

    Args:
        pool: The gene pool.
        n_paths: N_l, genes per individual (<= pool size).
        fitness: ``paths -> ms`` (lower is better).
        cfg: GA settings.
        seed: Seed of the generator (the only randomness).
    """

    def __init__(self, pool: GenePool, n_paths: int, fitness: Fitness, cfg: GaConfig, *, seed: int):
        if not 1 <= n_paths <= len(pool):
            raise ValueError(f"N_l must be in 1..{len(pool)} (the pool size), got {n_paths}")
        self.pool, self.n, self.fitness_fn, self.cfg = pool, n_paths, fitness, cfg
        self.rng = np.random.default_rng(seed)
        self._cache: dict[Individual, float] = {}

    # ------------------------------------------------------------------ fitness
    def latency(self, ind: Individual) -> float:
        if ind not in self._cache:
            self._cache[ind] = float(self.fitness_fn(self.pool.genes(ind)))
        return self._cache[ind]

    def rank_key(self, ind: Individual) -> tuple[float, float, Individual]:
        """Sort key: lower latency, then heavier paths, then the canonical tuple."""
        return (self.latency(ind), -self.pool.weight(ind), ind)

    # ---------------------------------------------------------------- operators
    def random_individual(self) -> Individual:
        return canonical(self.rng.choice(len(self.pool), size=self.n, replace=False))

    def _top_up(self, genes: list[int]) -> list[int]:
        missing = [g for g in range(len(self.pool)) if g not in genes]
        while len(genes) < self.n:
            genes.append(missing.pop(int(self.rng.integers(len(missing)))))
        return genes

    def crossover(self, a: Individual, b: Individual) -> Individual:
        """Keep a random portion of ``a``; fill up with ``b``'s genes not already held."""
        if self.n == 1:
            return a if self.rng.random() < 0.5 else b
        k = int(self.rng.integers(1, self.n))
        genes = [int(g) for g in self.rng.permutation(np.asarray(a))[:k]]
        for g in self.rng.permutation(np.asarray(b)):
            if len(genes) == self.n:
                break
            if int(g) not in genes:
                genes.append(int(g))
        return canonical(self._top_up(genes))

    def mutate(self, ind: Individual) -> Individual:
        """Replace one random gene by a pool gene the individual does not hold (if any)."""
        outside = [g for g in range(len(self.pool)) if g not in ind]
        if not outside:
            return ind
        genes = list(ind)
        genes[int(self.rng.integers(self.n))] = outside[int(self.rng.integers(len(outside)))]
        return canonical(genes)

    def _tournament(self, population: list[Individual]) -> Individual:
        i, j = self.rng.integers(len(population), size=2)
        a, b = population[int(i)], population[int(j)]
        return min(a, b, key=self.rank_key)

    def initial_population(self) -> list[Individual]:
        top = tuple(range(self.n))
        population = [top]
        n_distinct = math.comb(len(self.pool), self.n)
        target = min(self.cfg.population, n_distinct)
        for _ in range(100 * self.cfg.population):  # bounded; duplicates allowed only when the space is tiny
            if len(population) >= target:
                break
            ind = self.random_individual()
            if ind not in population:
                population.append(ind)
        while len(population) < self.cfg.population:
            population.append(self.random_individual())
        return population

    # --------------------------------------------------------------------- run
    def run(self) -> GaResult:
        """Run exactly ``cfg.generations`` generations; return the fittest individual seen."""
        top = tuple(range(self.n))
        population = self.initial_population()
        best = min(population, key=self.rank_key)
        history = [self.latency(best)]
        for _ in range(self.cfg.generations):
            ranked = sorted(population, key=self.rank_key)
            children = ranked[: self.cfg.elite]
            while len(children) < self.cfg.population:
                a, b = self._tournament(population), self._tournament(population)
                child = self.crossover(a, b) if self.rng.random() < self.cfg.crossover_rate else a
                if self.rng.random() < self.cfg.mutation_rate:
                    child = self.mutate(child)
                children.append(child)
            population = children
            best = min([best, *population], key=self.rank_key)
            history.append(self.latency(best))
        log.info("GA N_l=%d: best %.2f ms (top-weight %.2f ms) after %d generations, %d individuals evaluated",
                 self.n, self.latency(best), self.latency(top), self.cfg.generations, len(self._cache))
        return GaResult(best, self.pool.genes(best), self.latency(best), top, self.latency(top), history,
                        len(self._cache))


def gene_pool(candidate: dict) -> str:
    """Where a pick candidate's gene pool came from (``pick.json``): ``"sampled"`` (its own draw, under ``"pool"``)
    or ``"heaviest"`` (the round's)."""
    return "sampled" if "pool" in candidate else "heaviest"


def exhaustive_best(pool: GenePool, n_paths: int, fitness: Fitness) -> tuple[Individual, float]:
    """The fittest individual by enumeration (only for small pools: C(P, N_l) evaluations)."""
    import itertools

    sel = GeneticPathSelection(pool, n_paths, fitness, GaConfig(), seed=0)
    best = min((canonical(c) for c in itertools.combinations(range(len(pool)), n_paths)), key=sel.rank_key)
    return best, sel.latency(best)


def with_paths(genotype: MultiscaleGenotype, paths: Sequence[PathGenotype]) -> MultiscaleGenotype:
    """The same cells with other paths."""
    return MultiscaleGenotype(dict(genotype.cells), tuple(paths), genotype.n_layers, genotype.n_scales,
                              genotype.relaxation)
