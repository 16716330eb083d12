"""gMAD: the group maximum differentiation competition between quality models.

After Ma et al., "Group MAD Competition" (CVPR 2016); this is a re-implementation from the paper's
description (docs/methods.md §5), not a port of anyone's code.

Given M models and a pool of (unlabelled) images, every ordered (defender, attacker) pair of models
plays a game. The defender's score range is split into ``levels`` levels; at each level the images
the defender scores inside a narrow band around the level centre are, for the defender, of equal
quality. Among them the attacker picks its highest- and lowest-scored image: that pair is the
attacker's strongest counter-example to the defender at that level. If people see no difference,
the defender wins; if people clearly prefer the attacker's higher-scored image, the attacker wins.

The package: :mod:`~biqa.gmad.pool` (model specs, the image pool, scoring every model on it),
:mod:`~biqa.gmad.selection` (the pairs), :mod:`~biqa.gmad.judgements` (people's answers and the
matrices), :mod:`~biqa.gmad.page` (``pairs.json``, the HTML page, sheets, plots, text summaries) and
:func:`~biqa.gmad.run.run_gmad`, the whole run behind ``biqa gmad``; everything is importable from here.

Models (:func:`parse_model_spec`), each written ``[NAME=]SOURCE``:

- ``biqa-default`` (a trained model name) or a checkpoint path: scored with :func:`biqa.load`;
- ``scores.csv``: precomputed scores (columns ``path, score``, e.g. from ``biqa score --out``);
- ``brisque`` / ``niqe`` / ``piqe``: the classical models of :mod:`biqa.classical`, scored with
  :func:`biqa.load` like a trained model (higher = better);
- ``classical:sharpness`` / ``classical:noise``: the built-in classical baselines
  (:data:`CLASSICAL_SCORERS`, from :mod:`biqa.classical.cues`: log variance of the Laplacian; minus
  Immerkaer's noise estimate);
- ``column:mos``: a column of the pool's records CSV (e.g. the synthetic benchmark's labels).

Human judgements (:func:`read_judgements`): a CSV with ``pair_id, preferred`` where ``preferred`` is
``left``, ``right`` or ``same`` (as the pair is laid out on the HTML page and in ``pairs.json``);
several rows per pair (several people) are averaged. :func:`competition_matrices` turns them into

- the aggressiveness matrix ``A[i, j]`` (model i attacking model j): the mean over i's judged pairs
  against j of ``m``, where per pair ``m`` = mean over judgements of +1 (the attacker's higher-scored
  image preferred), 0 (same) or -1 (the other one). In [-1, 1]: 1 = every attack succeeded,
  0 = nobody saw a difference, < 0 = the attacker's order is reversed;
- the resistance matrix ``R[i, j]`` (model i defending against model j): the mean over j's judged
  pairs against i of ``1 - |m|``, the share of "same" — the defender's claim that the two images are
  equally good held. In [0, 1];
- per-model scores: mean aggressiveness (row means of A, off-diagonal), mean resistance (row means
  of R), and ``overall`` = the mean of ``(aggressiveness + 1) / 2`` and ``resistance`` (both in
  [0, 1]); models are ranked by ``overall``.

The paper collects graded judgements; this toolkit takes three-way ones (left / right / same), and
its resistance counts only "same" as a successful defence: a pair whose images differ in *either*
direction falsifies the defender, who claimed they were equal.
"""
from __future__ import annotations

from .judgements import JudgementsError, competition_matrices, read_judgements, simulate_judgements
from .page import format_matrices, format_summary, plot_matrices, write_contact_sheets, write_html, write_pairs_json
from .pool import CLASSICAL_SCORERS, ModelSpec, collect_pool, load_score_csv, parse_model_spec, score_models
from .run import run_gmad
from .selection import Selection, select_pairs

__all__ = [
    "CLASSICAL_SCORERS", "ModelSpec", "Selection", "JudgementsError", "parse_model_spec", "collect_pool",
    "load_score_csv", "score_models", "select_pairs", "simulate_judgements", "read_judgements",
    "competition_matrices", "write_pairs_json", "write_html", "write_contact_sheets", "plot_matrices",
    "run_gmad", "format_summary", "format_matrices",
]
