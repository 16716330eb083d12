"""The default model's recipe: a frozen ImageNet backbone, a linear head (with a Gaussian-kernel term
beside it when cross-validation says it pays) fitted to human opinions (LIVE Challenge) with
within-photo ranking constraints from synthetic distortions.

Why this recipe: fine-tuning on synthetic distortions of a few dozen photos destroyed the quality
signal that ImageNet features already carry (biqa-default v2: SRCC 0.03 on unseen real photos,
while a ridge probe on its frozen features reached 0.83). Here the backbone stays frozen; the head
learns *how good* photos look from people's opinion scores, and *which changes make a photo worse*
from ranking pairs (a photo above its degraded versions, milder above stronger) made by several
implementations of each distortion family (:mod:`biqa.synth.ranking`). The ranking term needs no
label scale, so synthetic data never has to be mapped onto the human MOS scale.

Everything is computed from cached backbone features, so a fit takes seconds and the 10-split
protocol minutes (:mod:`benchmarks.livec_protocol`). ``python scripts/train_default_model.py
--pristine data/pristine`` (after ``biqa data pristine --out data/pristine``) reproduces the shipped model.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from .probe import (DEFAULT_ALPHAS, KERNEL_GAMMAS, KERNEL_LAMS, PROBE_PRESET, FeatureExtractor, LinearHead,
                    fit_kernel, fit_linear, fit_residual, fit_ridge, save_npz_atomic)

# Photos that no model of the recipe may see: the held-out level-ranking check
# (benchmarks/heldout_levels.py HELDOUT_PHOTOS; a test checks that the two lists agree).
HELDOUT_PHOTOS = ("lomiri-wallpapers__Picture_1A_by_freespace", "lomiri-wallpapers__life_by_Aitzol_Berasategi",
                  "lomiri-wallpapers__picosdeeuropa_by_Aitzol_Berasategi", "lxqt-themes__drop",
                  "mate-backgrounds__YellowFlower", "matplotlib__grace_hopper",
                  "plasma-workspace-wallpapers__EveningGlow__2560x1600", "scikit-image__rocket", "scikit-learn__china")
# Photos whose ranking groups validate the ranking weight (never in training pairs).
RANK_VAL_PHOTOS = ("lomiri-wallpapers__Bridge_by_Sander_Klootwijk", "lxqt-themes__beam", "mate-backgrounds__Storm",
                   "scikit-image__coffee", "plasma-workspace-wallpapers__Kite__2560x1600", "scipy__face")


# The recipe's feature presets and the preset a fitted head of each is saved as (biqa.probe.linear_model):
# lite0-ml-linear = the 1,024 multi-level statistics (the model shipped before the noise floor); lite0-mln-linear =
# those plus the noise floor (biqa.noisefloor; the shipped model's).
# lite02-mln-linear = Lite0's statistics, the noise floor and Lite2's statistics (v4's); lite02-mlbn-linear = the same
# with every block group of both backbones pooled (7 each instead of 5 stages); lite0-mlbn-linear = lite0-mln-linear
# with Lite0's 7 block groups pooled (biqa-fast v4 and v5).
FEATURE_PRESETS = {"lite0-ml-linear": "lite0-ml-kernel", "lite0-mln-linear": "lite0-mln-kernel",
                   "lite0-mlbn-linear": "lite0-mlbn-linear", "lite02-mln-linear": "lite02-mln-linear",
                   "lite02-mlbn-linear": "lite02-mlbn-linear"}  # the preset a fitted recipe head is saved with
NOISE_FEATURES = "lite0-mln-linear"


def feature_cache_dir(root, preset: str) -> Path:
    """Where a recipe script caches ``preset``'s features under ``root`` (``data/features`` for the
    probe's own, ``data/features-<preset>`` for the others: each cache file holds one preset's)."""
    return Path(root) / ("features" if preset == PROBE_PRESET else f"features-{preset}")


LIVEC_SPLIT_SEEDS = tuple(range(1, 11))  # the protocol's 10 seeded random splits
LIVEC_SPLIT_RATIOS = (70, 10, 20)           # train / val / test


def ensure_livec(records, livec_root, seeds=LIVEC_SPLIT_SEEDS) -> "pd.DataFrame":
    """The LIVE Challenge records at ``records`` (with ``abspath``), imported from ``livec_root`` first
    when the CSV does not exist yet (partial copy: the photos present), with the protocol's seeded
    random 70/10/20 split columns ``split_seedN`` for ``seeds`` (added, and the CSV rewritten, where
    missing; each column depends on its seed only). Raises ``ValueError`` with the import report when
    that import is not OK."""
    from .datasets import add_splits, import_dataset
    from .records import read_records, resolve_path, write_records

    records = Path(records)
    if not records.is_file():
        _, report = import_dataset("livec", livec_root, records, partial=True)
        print(report)
        if not report.ok:
            raise ValueError(f"LIVE Challenge import from {livec_root} is not OK:\n{report}")
    df = read_records(records)
    missing = [s for s in seeds if f"split_seed{s}" not in df.columns]
    if missing:
        df = add_splits(df, scheme="random", ratios=LIVEC_SPLIT_RATIOS, seeds=sorted(missing))
        write_records(df, records)
        df = read_records(records)
    df["abspath"] = [resolve_path(p, records.parent) for p in df["path"]]
    return df


@dataclass
class RankingSet:
    """Features of ranking groups (reference + 5 levels each, flattened) and their pairs."""

    X: np.ndarray                 # [G * 6, F]
    pairs: np.ndarray             # [P, 2] (better, worse) row indices
    photo: list[str]              # per group
    impl: list[str]               # per group
    family: list[str]             # per group
    kind: list[str] | None = None  # per group: "photo" or a kind of biqa.synth.ranking.GROUP_KINDS (None: all "photo")

    @property
    def n_groups(self) -> int:
        return len(self.photo)

    @property
    def kinds(self) -> list[str]:
        return list(self.kind) if self.kind is not None else ["photo"] * self.n_groups

    @classmethod
    def concat(cls, *sets: "RankingSet") -> "RankingSet":
        """One set holding the groups of ``sets`` in turn (within-group pairs re-made; cross pairs are not kept)."""
        from .synth.ranking import group_pairs

        return cls(np.concatenate([r.X for r in sets]), group_pairs(sum(r.n_groups for r in sets)),
                   [p for r in sets for p in r.photo], [i for r in sets for i in r.impl],
                   [f for r in sets for f in r.family], [k for r in sets for k in r.kinds])

    def pair_features(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X[self.pairs[:, 0]], self.X[self.pairs[:, 1]]

    def level_srcc(self, scores: np.ndarray) -> np.ndarray:
        """Per group: Spearman SRCC between the score and -level (reference = level 0)."""
        from scipy.stats import spearmanr

        s = np.asarray(scores).reshape(-1, 6)
        lv = -np.arange(6)
        out = np.zeros(len(s))
        for g, row in enumerate(s):
            r = spearmanr(row, lv)[0]
            out[g] = 0.0 if not np.isfinite(r) else r
        return out


def source_files(photos_dir, originals_dir=None, *, exclude: Sequence[str] = (),
                 only: Sequence[str] | None = None) -> tuple[list[Path], list[Path]]:
    """Photos (and high-resolution originals) by stem, never :data:`HELDOUT_PHOTOS`, without ``exclude``;
    ``only`` keeps just those stems."""
    drop = set(HELDOUT_PHOTOS) | set(exclude)

    def ok(p: Path) -> bool:
        return p.stem not in drop and (only is None or p.stem in set(only))

    photos = sorted(p for p in Path(photos_dir).glob("*.png") if ok(p))
    originals = sorted(p for p in Path(originals_dir).glob("*") if p.suffix.lower() in (".jpg", ".png") and ok(p)) \
        if originals_dir and Path(originals_dir).is_dir() else []
    return photos, originals


def pristine_files(pristine_dir) -> list[Path]:
    """The high-resolution photos of ``biqa data pristine`` (:mod:`biqa.synth.pristine`) in ``pristine_dir``,
    used like ``originals`` (downscaled 2-4x before cropping); empty if the folder does not exist."""
    d = Path(pristine_dir) if pristine_dir else None
    return sorted(p for p in d.glob("*.png") if p.stem not in HELDOUT_PHOTOS) if d and d.is_dir() else []


def ranking_sources(photos_dir, originals_dir=None) -> tuple[tuple[list[Path], list[Path]],
                                                             tuple[list[Path], list[Path]]]:
    """(photos, originals) for the recipe's training ranking groups, and for its validation groups
    (:data:`RANK_VAL_PHOTOS`); the held-out check photos are in neither."""
    return (source_files(photos_dir, originals_dir, exclude=RANK_VAL_PHOTOS),
            source_files(photos_dir, originals_dir, only=RANK_VAL_PHOTOS))


def build_ranking_set(photos: Sequence[Path], originals: Sequence[Path], n_groups: int, *, seed: int = 0,
                      extractor: FeatureExtractor | None = None, impls: Sequence[str] | None = None,
                      cache: str | Path | None = None, progress: bool = True,
                      reference: str | None = None) -> RankingSet:
    """Make ``n_groups`` ranking groups (:func:`biqa.synth.ranking.ranking_groups`) and their
    features; cached in ``cache`` (an ``.npz``) under the parameters that made it. ``reference``: a
    kind in :data:`biqa.synth.ranking.GROUP_KINDS`: a transform of each crop first (``"low_key"``, ``"plain"``,
    ``"graphic"``), or ``"mild"`` (the mild implementations, :data:`biqa.synth.ranking.MILD_VARIANTS`)."""
    from tqdm.auto import tqdm

    from .synth.ranking import GROUP_KINDS, group_pairs, load_sources, ranking_groups

    if reference is not None and reference not in GROUP_KINDS:
        raise ValueError(f"unknown kind of ranking groups {reference!r}; known: {', '.join(GROUP_KINDS)}")
    transform, kind_impls = GROUP_KINDS[reference] if reference is not None else (None, None)
    if kind_impls is not None:
        if impls:
            raise ValueError(f"ranking groups of kind {reference!r} draw their own implementations; pass no impls")
        impls = kind_impls
    spec = {"photos": [p.name for p in photos], "originals": [p.name for p in originals],
            "n": n_groups, "seed": seed, "impls": sorted(impls) if impls else None,
            "preset": extractor.preset_name if extractor else PROBE_PRESET, "v": 1}
    if reference is not None:  # absent otherwise, so that the caches made before it stay valid
        spec["reference"] = reference
    key = json.dumps(spec, sort_keys=True)
    kind = reference or "photo"  # every group's kind (RankingSet.kind)
    if cache is not None and Path(cache).is_file():
        z = np.load(cache, allow_pickle=False)
        if str(z["key"]) == key:
            return RankingSet(z["X"], group_pairs(len(z["photo"])), z["photo"].tolist(), z["impl"].tolist(),
                              z["family"].tolist(), [kind] * len(z["photo"]))
    extractor = extractor or FeatureExtractor()
    rng = np.random.default_rng(seed)
    sources = load_sources(photos, originals, rng)
    X, photo, impl, family = [], [], [], []
    chunk = 16
    bar = tqdm(total=n_groups, disable=not progress, desc="ranking groups", unit="group", leave=False)
    for start in range(0, n_groups, chunk):  # groups made and featurised a chunk at a time (bounded memory)
        groups = ranking_groups(sources, min(chunk, n_groups - start), seed=seed * 100003 + start, impls=impls,
                                reference=transform)
        X.append(extractor.arrays([im for g in groups for im in g.images]))
        for g in groups:
            photo.append(g.photo)
            impl.append(g.impl)
            family.append(g.family)
        bar.update(len(groups))
    bar.close()
    rs = RankingSet(np.concatenate(X), group_pairs(len(photo)), photo, impl, family, [kind] * len(photo))
    if cache is not None:
        save_npz_atomic(cache, key=np.array(key), X=rs.X, photo=np.array(photo), impl=np.array(impl),
                        family=np.array(family))
    return rs


# seeds of the extra kinds' training and validation groups (biqa.synth.ranking.GROUP_KINDS; the plain groups use 1 and 2)
REFERENCE_SEEDS = {"low_key": (3, 4), "plain": (5, 6), "graphic": (7, 8), "mild": (9, 10)}
# the transformed-reference groups biqa-default v5 and biqa-fast v4 added to the 400 plain ones, in REFERENCE_SEEDS' order
SHIPPED_REFERENCE_GROUPS = {"low_key": 100, "graphic": 100}
# those and 100 groups of mild distortions: the groups biqa-default v6 and biqa-fast v5 add
SHIPPED_MILD_GROUPS = {**SHIPPED_REFERENCE_GROUPS, "mild": 100}
# the extra groups each bundled model's recipe adds (today both add SHIPPED_MILD_GROUPS; biqa-default v5 and
# biqa-fast v4 added SHIPPED_REFERENCE_GROUPS): scripts/train_default_model.py ships them,
# benchmarks/livec_protocol.py measures them
SHIPPED_EXTRA_GROUPS = {name: dict(SHIPPED_MILD_GROUPS) for name in ("biqa-default", "biqa-fast")}


def add_reference_groups(ranking: RankingSet, rank_val: RankingSet, train_sources, val_sources, n_groups: int, *,
                         reference: str, extractor: FeatureExtractor, cache_dir, tag: str = "",
                         progress: bool = True) -> tuple[RankingSet, RankingSet]:
    """``ranking`` and ``rank_val`` with groups added of the kind ``reference`` (a name in
    :data:`biqa.synth.ranking.GROUP_KINDS`: a reference transform, ``"low_key"``, ``"plain"``, ``"graphic"``, or
    ``"mild"``, the mild implementations): ``n_groups`` from ``train_sources`` (``(photos, originals)``), and the
    same share of ``rank_val``'s size from ``val_sources``; cached in ``cache_dir`` (``tag`` prefixes the names)."""
    if reference not in REFERENCE_SEEDS:
        raise ValueError(f"unknown kind of ranking groups {reference!r}; known: {', '.join(REFERENCE_SEEDS)}")
    n_val = max(1, round(n_groups * rank_val.n_groups / max(1, ranking.n_groups)))
    cache_dir = Path(cache_dir)
    seed, val_seed = REFERENCE_SEEDS[reference]
    extra = build_ranking_set(*train_sources, n_groups, seed=seed, extractor=extractor, reference=reference,
                              cache=cache_dir / f"{tag}rank_train_{reference}_{n_groups}.npz", progress=progress)
    extra_val = build_ranking_set(*val_sources, n_val, seed=val_seed, extractor=extractor, reference=reference,
                                  cache=cache_dir / f"{tag}rank_val_{reference}_{n_val}.npz", progress=progress)
    return RankingSet.concat(ranking, extra), RankingSet.concat(rank_val, extra_val)


# Cross-group pairs (with_cross_pairs): whose references are ranked above heavy levels of other groups, and whose heavy
# levels they are ranked above. Low-key references are left out of the first (a darkened photo is itself
# under-exposed), mild groups out of the second (their level 5 is still mild).
CROSS_BETTER = ("photo", "graphic", "mild")
CROSS_WORSE = ("photo", "graphic", "low_key")
CROSS_LEVELS = (4, 5)


def cross_pairs(ranking: RankingSet, partners: int = 2, *, seed: int = 0, levels: Sequence[int] = CROSS_LEVELS,
                better: Sequence[str] = CROSS_BETTER, worse: Sequence[str] = CROSS_WORSE) -> np.ndarray:
    """(better, worse) row pairs across groups: the reference of every group of a kind in ``better`` above the
    images at ``levels`` of ``partners`` other groups, drawn at random (without replacement) among the kinds in
    ``worse``. Says that a clean image, whatever its content, is better than a heavily degraded one, which
    within-group pairs never say. Deterministic for a given ``seed``; ``[0, 2]`` when no pair can be made."""
    from .synth.ranking import LEVELS

    size = LEVELS + 1
    kinds = ranking.kinds
    tops = [g for g, k in enumerate(kinds) if k in better]
    pool = np.array([g for g, k in enumerate(kinds) if k in worse], dtype=np.int64)
    rng = np.random.default_rng(seed)
    out = []
    for g in tops:
        others = pool[pool != g]
        if partners <= 0 or len(others) == 0:
            continue
        for h in rng.choice(others, size=min(partners, len(others)), replace=False):
            out += [(g * size, int(h) * size + lv) for lv in levels]
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def with_cross_pairs(ranking: RankingSet, partners: int = 2, *, seed: int = 0) -> RankingSet:
    """``ranking`` with :func:`cross_pairs` appended to its pairs (``partners`` 0: ``ranking`` itself)."""
    if partners <= 0:
        return ranking
    return replace(ranking, pairs=np.concatenate([ranking.pairs, cross_pairs(ranking, partners, seed=seed)]))


@dataclass
class RecipeParams:
    alpha: float = 100.0          # ridge penalty on standardised features
    rank_weight: float = 1.0      # weight of the ranking term (0: the plain linear probe)
    margin: float = 0.02          # required score gap of a ranking pair, in z units (MOS / 100 for LIVE Challenge)
    residual_weight: float = 0.0  # > 0: add the residual MLP (biqa.probe.fit_residual) with this ranking weight
    residual_lam: float = 100.0   # its penalty on being non-zero on the opinion-scored photos
    kernel_gamma: float = 0.0     # > 0: a Gaussian-kernel term beside the linear one (biqa.probe.fit_kernel)
    kernel_lam: float = 1.0       # its penalty
    extra: dict = field(default_factory=dict)


def fit_recipe(X: np.ndarray, z: np.ndarray, ranking: RankingSet | None, params: RecipeParams) -> LinearHead:
    """The head: opinion-score regression on ``(X, z)`` plus the ranking term on ``ranking``.
    Features are standardised with the statistics of the opinion-scored images."""
    ranked = ranking is not None and params.rank_weight > 0
    if params.kernel_gamma > 0:
        head = fit_kernel(X, z, params.alpha, params.kernel_gamma, params.kernel_lam,
                          ranking_X=ranking.X if ranked else None, pairs=ranking.pairs if ranked else None,
                          rank_weight=params.rank_weight, margin=params.margin)
    else:
        pairs = ranking.pair_features() if ranked else None
        head = fit_linear(X, z, params.alpha, pairs=pairs, rank_weight=params.rank_weight, margin=params.margin)
    if ranking is not None and params.residual_weight > 0:
        head = fit_residual(head, X, ranking.X, ranking.pairs, weight=params.residual_weight, margin=params.margin,
                            lam=params.residual_lam)
    head.info.update({"recipe": asdict(params)})
    return head


RANK_WEIGHTS = (3.0, 10.0, 30.0, 100.0)
MARGINS = (0.03, 0.06, 0.1)
RESIDUAL_WEIGHTS = (3.0, 10.0)
RESIDUAL_LAMS = (100.0,)
LIVEC_TOL = 0.01  # the ranking term may cost at most this much validation SRCC against the best plain probe


def _oof(X, z, folds, fit) -> np.ndarray:
    """Out-of-fold predictions of ``fit(X_train, z_train) -> head``."""
    pred = np.zeros(len(z))
    for k in np.unique(folds):
        tr = folds != k
        pred[~tr] = fit(X[tr], z[tr]).predict(X[~tr])
    return pred


def select_params(X, z, ranking: RankingSet | None, rank_val: RankingSet | None, *, weights=RANK_WEIGHTS,
                  margins=MARGINS, alphas=DEFAULT_ALPHAS, residual: bool = True, kernel: bool = False,
                  tol: float = LIVEC_TOL, n_folds: int = 5, seed: int = 0) -> tuple[RecipeParams, dict]:
    """Recipe parameters chosen by cross-validation on the opinion-scored fitting data ``(X, z)``.

    1. alpha: the best out-of-fold SRCC of the plain probe (``n_folds``-fold, pooled predictions);
       with ``kernel``, then the Gaussian-kernel term's (gamma, lam) beside it (:func:`biqa.probe.fit_kernel`)
       with the best out-of-fold SRCC, kept only if it beats the probe's;
    2. with a ranking set: among the (weight, margin) whose out-of-fold SRCC is within ``tol`` of the
       probe's (agreement with people comes first), the one whose fit on all of ``(X, z)`` gives the
       validation ranking groups ``rank_val`` (photos no training pair uses) the best mean level SRCC.
       If none is within ``tol``, the plain probe (weight 0);
    3. with ``residual``: the same rule over the residual MLP's (weight, lam) on top of step 2's
       choice, kept only if it ranks the validation groups better than the linear head alone.
    Returns the parameters and a report (``probe_cv_srcc``, ``cv_srcc``, ``val_level_srcc``).
    """
    from scipy.stats import spearmanr

    folds = np.random.default_rng(seed).permutation(len(z)) % n_folds
    cv = {a: float(spearmanr(_oof(X, z, folds, lambda A, b, a=a: fit_ridge(A, b, a)), z)[0]) for a in alphas}
    alpha = max(cv, key=lambda a: (round(cv[a], 6), a))
    best = RecipeParams(alpha=alpha, rank_weight=0.0)
    report = {"probe_cv_srcc": cv[alpha], "cv_srcc": cv[alpha], "val_level_srcc": None}
    people = cv[alpha]  # the out-of-fold SRCC the ranking settings are measured against
    if kernel:
        kcv = {(g, lam): float(spearmanr(_oof(X, z, folds, lambda A, b, g=g, lam=lam: fit_kernel(A, b, alpha, g, lam)),
                                         z)[0]) for g in KERNEL_GAMMAS for lam in KERNEL_LAMS}
        g, lam = max(kcv, key=lambda k: (round(kcv[k], 6), -k[0], k[1]))
        report["kernel_cv_srcc"] = kcv[(g, lam)]
        if kcv[(g, lam)] > people:
            best = RecipeParams(alpha=alpha, rank_weight=0.0, kernel_gamma=g, kernel_lam=lam)
            people = report["cv_srcc"] = kcv[(g, lam)]
    if ranking is None or rank_val is None:
        return best, report
    base = best
    report["val_level_srcc"] = float(rank_val.level_srcc(fit_recipe(X, z, None, base).predict(rank_val.X)).mean())
    best_level = -np.inf

    def consider(candidates):
        nonlocal best, best_level
        for p in candidates:
            s = float(spearmanr(_oof(X, z, folds, lambda A, b: fit_recipe(A, b, ranking, p)), z)[0])
            if s < people - tol:
                continue
            level = float(rank_val.level_srcc(fit_recipe(X, z, ranking, p).predict(rank_val.X)).mean())
            if level > best_level:
                best, best_level = p, level
                report.update(cv_srcc=s, val_level_srcc=level)

    consider([replace(base, rank_weight=w, margin=m) for w in weights for m in margins])
    if residual and best.rank_weight > 0:
        lin = best
        consider([replace(lin, residual_weight=rw, residual_lam=lam) for rw in RESIDUAL_WEIGHTS
                  for lam in RESIDUAL_LAMS])
    return best, report
