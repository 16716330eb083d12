"""Random hyper-parameter search (``biqa search``), as NIMA's authors tuned their learning rates.

Each trial samples every parameter of the space independently, trains with early stopping
on the validation split, and is scored by its best validation metric. Outputs in ``out_dir``:
``trials.csv`` (one row per trial), ``search.png`` (validation metric against each parameter),
``best_config.yaml`` (the winning trial's full config) and each trial's run folder.

Space syntax, one ``key=spec`` per parameter:

- ``log:LO,HI`` log-uniform (learning rates, weight decay);
- ``lin:LO,HI`` uniform;
- ``int:LO,HI`` integer, inclusive;
- ``choice:A,B,C`` one of the values (parsed as YAML).
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .config import apply_override, load_config, save_config


def parse_space(items: list[str]) -> dict[str, tuple[str, list]]:
    space: dict[str, tuple[str, list]] = {}
    for item in items:
        if "=" not in item or ":" not in item.split("=", 1)[1]:
            raise ValueError(f"bad search space item {item!r}: use key=log:LO,HI | lin:LO,HI | int:LO,HI | "
                             "choice:A,B")
        key, spec = item.split("=", 1)
        kind, vals = spec.split(":", 1)
        parts = [_number_or_yaml(v) for v in vals.split(",")]
        if kind in ("log", "lin", "int"):
            if len(parts) != 2 or not all(isinstance(v, (int, float)) for v in parts) or parts[0] > parts[1]:
                raise ValueError(f"{item!r}: {kind} needs two numbers LO,HI with LO <= HI")
            if kind == "log" and parts[0] <= 0:
                raise ValueError(f"{item!r}: log range must be positive")
        elif kind != "choice":
            raise ValueError(f"{item!r}: unknown kind {kind!r} (log, lin, int, choice)")
        space[key.strip()] = (kind, parts)
    if not space:
        raise ValueError("empty search space: give at least one --space key=log:LO,HI")
    return space


def _number_or_yaml(text: str):
    """``1e-6`` is a string to YAML 1.1; read numbers as numbers first."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return yaml.safe_load(text)


def sample(space: dict[str, tuple[str, list]], rng: np.random.Generator) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, (kind, p) in space.items():
        if kind == "log":
            out[key] = float(math.exp(rng.uniform(math.log(p[0]), math.log(p[1]))))
        elif kind == "lin":
            out[key] = float(rng.uniform(p[0], p[1]))
        elif kind == "int":
            out[key] = int(rng.integers(int(p[0]), int(p[1]) + 1))
        else:
            out[key] = p[int(rng.integers(len(p)))]
    return out


QUICK_OVERRIDES = ["train.epochs=2", "train.max_steps_per_epoch=3", "test_at_end=false"]


def random_search(config: str | os.PathLike | dict, space: dict | list[str], trials: int, *,
                  overrides: list[str] | None = None, out_dir: str | os.PathLike | None = None, seed: int = 0,
                  patience: int | None = None, quick: bool = False) -> pd.DataFrame:
    """Run ``trials`` random trials of ``config``; returns the trials table (best first)."""
    from .trainer import Trainer

    if isinstance(space, list):
        space = parse_space(space)
    base = load_config(config, list(overrides or []) + (QUICK_OVERRIDES if quick else []))
    if patience is not None:
        base["early_stop"]["patience"] = int(patience)
    out = Path(out_dir or (Path("runs") / f"{base['name']}_search"))
    out.mkdir(parents=True, exist_ok=True)
    metric = base["early_stop"].get("metric", "srcc")
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(trials):
        params = sample(space, rng)
        cfg = copy.deepcopy(base)
        for k, v in params.items():
            apply_override(cfg, f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}")
        cfg["name"] = f"{base['name']}_trial{t:03d}"
        cfg["out_dir"] = str(out / f"trial{t:03d}")
        print(f"[search] trial {t + 1}/{trials}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()))
        summary = Trainer(cfg).fit()
        rows.append({"trial": t, **params, f"best_val_{metric}": summary[f"best_val_{metric}"],
                     "best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
                     "out_dir": cfg["out_dir"]})
        table = pd.DataFrame(rows).sort_values(f"best_val_{metric}", ascending=False)
        table.to_csv(out / "trials.csv", index=False)
    best = table.iloc[0]
    best_cfg = load_config(Path(best["out_dir"]) / "config.yaml")
    save_config(best_cfg, out / "best_config.yaml")
    _plot(table, space, f"best_val_{metric}", out / "search.png")
    return table.reset_index(drop=True)


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _plot(table: pd.DataFrame, space: dict, metric: str, path: Path) -> None:
    from matplotlib.figure import Figure

    keys = list(space)
    fig = Figure(figsize=(3.6 * len(keys), 3.2))
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        kind = space[key][0]
        x = table[key] if kind != "choice" else table[key].astype(str)
        ax.scatter(x, table[metric], c="tab:blue")
        best = table.iloc[0]
        ax.scatter([best[key] if kind != "choice" else str(best[key])], [best[metric]], c="tab:red", label="best")
        if kind == "log":
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=metric.replace("_", " "))
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
