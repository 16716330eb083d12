"""The ``biqa`` command line: a thin layer over the Python API."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _resolution(spec: str) -> str:
    """argparse type of --resolution: checked at once (biqa.resolution does not import torch)."""
    from .resolution import Resolution

    try:
        Resolution.parse(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return spec


def _torch_free_onnx(a):
    """The ONNX file to score without importing torch (biqa.ortscore), or None for the torch path."""
    import os

    if os.environ.get("BIQA_TORCH_FREE", "1") == "0" or a.resume or a.peer or a.device not in ("auto", "cpu"):
        return None
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:  # torchrun: the distributed job runs on torch
        return None
    from .ortscore import torch_free_model

    return torch_free_model(a.model, a.backend, a.precision)


def _cmd_score(a) -> int:
    onnx = _torch_free_onnx(a)
    if onnx is not None:
        return _cmd_score_onnx(a, onnx)
    from .distributed import setup
    from .score_job import score_job
    from .scorer import EXAMPLES_DIR, load

    inputs = a.inputs or [str(EXAMPLES_DIR)]
    ctx = setup(a.device if a.backend != "onnxruntime" else "cpu")  # under torchrun: join the process group
    device = str(ctx.device) if ctx.world_size > 1 else a.device
    scorer = load(a.model, device=device, batch_size=a.batch_size, num_workers=a.workers, resolution=a.resolution,
                  peer=a.peer, backend=a.backend, threads=a.threads, tile=a.tile, tile_overlap=a.tile_overlap,
                  precision=a.precision, force=a.force, **({"clip": True} if a.clip else {}))
    df = score_job(scorer, inputs, out=a.out, resume=a.resume, progress=not a.quiet and ctx.is_main)
    if df is None:  # not rank 0: rank 0 merges, writes and reports
        return 0
    return _report_scores(a, inputs, df.to_dict("records"), "std" in df.columns)


def _cmd_score_onnx(a, onnx) -> int:
    """``biqa score`` with an exported ONNX model, without torch (biqa.ortscore): same rows, same files."""
    from .files import output_lock
    from .host import default_threads
    from .imageio import collect_inputs
    from .ortscore import OrtModel, OrtScorer, write_rows
    from .precision_guard import calibration_variant, check_supported, require_offered
    from .zoo import DEFAULT_MODEL

    if a.precision is not None:
        check_supported("onnxruntime", a.precision)
    model = OrtModel(onnx, threads=a.threads or default_threads(a.workers))
    if a.precision is not None and model.precision != a.precision:
        raise ValueError(f"{onnx} is a {model.precision} model, not {a.precision}"
                         + (": export an int8 one with `biqa export CHECKPOINT --quantize int8`"
                            if a.precision == "int8" else ""))
    warn = require_offered(model.meta.get("checkpoint_sha256"), model.precision, "onnxruntime",
                           calibration_variant(model.meta), force=a.force, model=a.model or DEFAULT_MODEL)
    if warn:
        print(warn, file=sys.stderr)
    scorer = OrtScorer(model, batch_size=a.batch_size, resolution=a.resolution, tile=a.tile,
                       tile_overlap=a.tile_overlap, clip=a.clip)
    inputs = a.inputs or [str(Path(__file__).resolve().parent / "examples")]
    paths = collect_inputs(inputs)
    if a.out:
        out = Path(a.out)
        if out.suffix.lower() not in (".csv", ".json", ""):
            raise ValueError(f"unsupported output {out.suffix!r}: use .csv or .json")
        with output_lock(out):
            rows = scorer.score_paths(paths, progress=not a.quiet)
            write_rows(rows, out, scorer.columns)
    else:
        rows = scorer.score_paths(paths, progress=not a.quiet)
    return _report_scores(a, inputs, rows, scorer.has_std)


def _report_scores(a, inputs, rows: list[dict], has_std: bool) -> int:
    """The table, the summary line and the exit status of ``biqa score`` (both paths)."""
    from .imageio import IMAGE_EXTENSIONS
    from .ortscore import format_rows

    errors = [r for r in rows if r.get("error")]
    if not a.quiet:
        print(format_rows(rows, has_std))
        where = f" -> {a.out}" if a.out else ""
        print(f"{len(rows)} input(s), {len(rows) - len(errors)} scored, {len(errors)} error(s){where}", file=sys.stderr)
    if not rows:
        print(f"biqa: error: no images found in {' '.join(inputs)} (extensions: {', '.join(IMAGE_EXTENSIONS)})",
              file=sys.stderr)
        return 1
    if len(errors) == len(rows):
        first = rows[0]
        print(f"biqa: error: none of the {len(rows)} input(s) could be scored (e.g. {first['path']}: {first['error']})",
              file=sys.stderr)
        return 1
    return 1 if (errors and a.strict) else 0


def _cmd_train(a) -> int:
    from .config import load_config
    from .trainer import Trainer

    if a.splits:
        from .datasets import parse_seeds
        from .protocols import format_protocol, n_split_protocol

        per_split = n_split_protocol(a.config, parse_seeds(a.splits), a.overrides, column_pattern=a.split_pattern,
                                     resume=a.resume)
        print(format_protocol(per_split, per_split.attrs["summary"]))
        root = Path(per_split.attrs["out_dir"])
        print(f"wrote {root / 'per_split.csv'}, {root / 'summary.csv'}")
        return 0
    cfg = load_config(a.config, a.overrides)
    trainer = Trainer(cfg, resume=a.resume)
    summary = trainer.fit()
    if trainer.is_main:  # under torchrun: rank 0 reports
        print(format_train_summary(summary))
    return 0


def format_train_summary(summary: dict) -> str:
    """A few lines for the end of `biqa train` (the full numbers are in OUT/summary.json)."""
    out = Path(summary["out_dir"])
    best = next(((k[len("best_val_"):], v) for k, v in summary.items() if k.startswith("best_val_")), ("srcc", None))
    v = best[1] if best[0] != "rmse" else (None if best[1] is None else -best[1])  # fit() stores -RMSE
    val = "n/a" if v is None or v != v or abs(v) == float("inf") else f"{v:.4f}"
    lines = [f"trained {summary['epochs_run']} epoch(s)" + (" (stopped early)" if summary.get("stopped_early") else "")
             + f"; best epoch {summary['best_epoch']}, validation {best[0].upper()} {val}"]
    test = summary.get("test")
    if test:
        parts = []
        for k in ("srcc", "plcc", "rmse"):
            m = test.get(k)
            if isinstance(m, dict) and m.get("value") is not None:
                ci = (f" [{m['ci_low']:.3f}, {m['ci_high']:.3f}]" if m.get("ci_low") is not None
                      and m.get("ci_high") is not None else "")
                parts.append(f"{k.upper()} {m['value']:.4f}{ci}")
        lines.append(f"test (N = {test.get('n', '?')}): " + "  ".join(parts))
    lines.append(f"wrote {out / 'best.safetensors'} (score with biqa score --model {out}); metrics.csv, curves.png"
                 + (", test_metrics.json" if test else "") + f", summary.json in {out}")
    return "\n".join(lines)


def _cmd_eval(a) -> int:
    from .evaluate import evaluate_checkpoint
    from .report import format_metrics_table

    if len(a.checkpoint) > 1 or len(a.data) > 1:
        from .protocols import cross_dataset_grid, format_grid

        table = cross_dataset_grid(a.checkpoint, a.data, split=a.split, split_column=a.split_column, out_dir=a.out,
                                   resolution=a.resolution, batch_size=a.batch_size, num_workers=a.workers,
                                   n_boot=a.n_boot, seed=a.seed, device=a.device, peer=a.peer,
                                   tile=a.tile, tile_overlap=a.tile_overlap, progress=not a.quiet)
        print(format_grid(table))
        if a.out:
            print(f"wrote {Path(a.out) / 'grid.csv'}, grid_long.csv, grid.md, cells/")
        return 0
    from .protocols import parse_dataset_spec

    data, split, split_column = parse_dataset_spec(a.data[0], a.split, a.split_column)
    res = evaluate_checkpoint(a.checkpoint[0], data, split=split, split_column=split_column, out_dir=a.out,
                              resolution=a.resolution, batch_size=a.batch_size, num_workers=a.workers,
                              n_boot=a.n_boot, seed=a.seed, device=a.device, peer=a.peer, progress=not a.quiet,
                              skip_bad_images=a.skip_bad_images, tile=a.tile, tile_overlap=a.tile_overlap)
    print(f"{res['checkpoint']} on {res['records']} [split: {res['split']}]")
    print(format_metrics_table(res))
    if a.out:
        print(f"wrote {Path(a.out) / 'metrics.json'}, predictions.csv, scatter.png")
    return 0


def _cmd_probe(a) -> int:
    from .probe import DEFAULT_ALPHAS, fit_probe

    alphas = [float(x) for x in a.alphas.split(",")] if a.alphas else DEFAULT_ALPHAS
    label_range = [float(x) for x in a.label_range.split(",")] if a.label_range else None
    res = fit_probe(a.records, a.out, split_column=a.split_column, preset=a.preset, alphas=alphas,
                    label_range=label_range, features_cache=a.features, progress=not a.quiet, kernel=a.kernel)
    print(f"linear probe on {res['records']} [{res['split_column'] or 'all rows'}]: {res['n_fit']} images fitted, "
          f"alpha {res['alpha']:g} (validation SRCC {res['validation_srcc'][str(res['alpha'])]:.4f})")
    if "kernel" in res:
        k = res["kernel"]
        print(f"kernel term gamma {k['gamma']:g} lam {k['lam']:g} (validation SRCC {k['validation_srcc']:.4f}): "
              + ("kept" if k["kept"] else "not kept, no better than the linear head"))
    if "test" in res:
        t = res["test"]
        print(f"test: SRCC {t['srcc']:.4f}  PLCC {t['plcc']:.4f}  (N = {t['n']})")
    print(f"wrote {res['checkpoint']}")
    return 0


def _cmd_search(a) -> int:
    from .search import random_search

    table = random_search(a.config, a.space, a.trials, overrides=a.overrides, out_dir=a.out, seed=a.seed,
                          patience=a.patience, quick=a.quick)
    with __import__("pandas").option_context("display.width", 160):
        print(table.drop(columns=["out_dir"]).to_string(index=False))
    print(f"best config -> {Path(table['out_dir'].iloc[0]).parent / 'best_config.yaml'}")
    return 0


def _cmd_export(a) -> int:
    from .export import export_onnx, export_torchscript

    if a.format == "onnx":
        table = a.calibration_table
        out = export_onnx(a.checkpoint, a.out or ("model-int8.onnx" if a.quantize else "model.onnx"), peer=a.peer,
                          opset=a.opset, quantize=a.quantize, calibration=a.calibration,
                          calibration_table=table if not a.calibration else None,
                          write_calibration_table=table if a.calibration else None,
                          log=lambda m: print(m, file=sys.stderr))
    else:
        if a.quantize:
            raise ValueError("--quantize int8 is for --format onnx")
        out = export_torchscript(a.checkpoint, a.out or "model.pt", peer=a.peer)
    what = "int8, checked against float32 on a photo" if a.quantize else "checked against torch"
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB, {a.format}; {what})")
    return 0


def _cmd_bench(a) -> int:
    from .bench import DEFAULT_SIZES, QUICK_SIZES, bench, format_table

    sizes = a.sizes or (QUICK_SIZES if a.quick else DEFAULT_SIZES)
    batch = a.batch or (4 if a.quick else 8)
    repeats = a.repeats or (3 if a.quick else 5)
    df = bench(a.model, sizes, batch=batch, repeats=repeats, backends=a.backends, threads=a.threads,
               tile=a.tile, log=lambda m: print(m, file=sys.stderr))
    print(format_table(df))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(a.out, index=False, float_format="%.4f")
        print(f"wrote {a.out}", file=sys.stderr)
    if "error" not in df.columns:
        return 0
    failed = df["error"].notna() & ~df["error"].fillna("").astype(str).str.startswith("not offered")
    return 1 if failed.any() else 0


def _range_text(lo: float, hi: float, higher_is_better: bool) -> str:
    return f"{lo:g}..{hi:g}, {'higher' if higher_is_better else 'lower'} is better"


def _cmd_models(a) -> int:
    import fnmatch

    from .checkpoint import read_meta
    from .classical import list_classical_models
    from .models import get_preset, list_models
    from .zoo import list_trained_models

    match = (lambda n: fnmatch.fnmatch(n, a.pattern))
    trained = {n: p for n, p in list_trained_models().items() if match(n)}
    classical = {n: m for n, m in list_classical_models().items() if match(n)}
    presets = list_models(a.pattern)
    if not (trained or classical or presets):
        print(f"biqa: no model matches {a.pattern!r} (biqa models lists them all; patterns are shell-style, "
              "e.g. '*lite0*')", file=sys.stderr)
        return 1
    w = max(len(n) for n in [*trained, *classical, *presets])
    if trained:
        print("trained models (biqa score --model NAME, biqa.create_metric(NAME)); range = the nominal score range "
              "(an unbounded head can leave it: see biqa score --clip):")
        for n, p in trained.items():
            if p.is_file():
                s = read_meta(p)["label_scale"]
                print(f"  {n:<{w}}  {_range_text(s['lo'], s['hi'], s.get('higher_is_better', True))}  {p.name}")
            else:
                print(f"  {n:<{w}}  {p.name}  (missing!)")
    if classical:
        print("classical models (like a trained model: biqa score --model NAME, biqa eval NAME, biqa gmad --models "
              "NAME; score = -raw, higher is better, unbounded):")
        for n, m in classical.items():
            print(f"  {n:<{w}}  {m.description}")
    if presets:
        print("presets (UNTRAINED architectures for biqa train, model.preset=NAME; not metrics):")
        for n in presets:
            print(f"  {n:<{w}}  {get_preset(n).description}")
    return 0


def _cmd_configs(a) -> int:
    import fnmatch

    from .config import CONFIGS_DIR, list_configs

    found = {n: d for n, d in list_configs().items() if fnmatch.fnmatch(n, a.pattern)}
    if not found:
        print(f"biqa: no shipped config matches {a.pattern!r}; shipped: {', '.join(list_configs())}", file=sys.stderr)
        return 1
    w = max(len(n) for n in found)
    print(f"experiment configs (biqa train NAME [key=value ...]; files in {CONFIGS_DIR}):")
    for n, d in found.items():
        print(f"  {n:<{w}}  {CONFIGS_DIR / (n + '.yaml') if a.path else d}")
    if fnmatch.fnmatch("default_model", a.pattern):
        print("the default model (biqa-default v6) is fitted by biqa.recipe, not by a config: "
              "biqa data pristine --out data/pristine && "
              "python scripts/train_default_model.py --pristine data/pristine in a source checkout")
    return 0


def _cmd_data_synth(a) -> int:
    from .synth import build_synthetic_dataset

    types = a.types.split(",") if a.types else None
    levels = tuple(int(x) for x in a.levels.split(",")) if a.levels else (1, 2, 3, 4, 5)
    out = build_synthetic_dataset(a.photos, a.out, crops_per_photo=a.crops, crop_size=a.crop_size, types=types,
                                  levels=levels, val_fraction=a.val, test_fraction=a.test, seed=a.seed,
                                  kadid_labels=a.kadid_labels, workers=a.workers, progress=not a.quiet,
                                  max_photos=a.max_photos)
    print(f"wrote {out}")
    return 0


def _cmd_data_pristine(a) -> int:
    from .synth.pristine import build_pristine

    try:
        table = build_pristine(a.out, deb=a.deb, installed=a.installed, progress=not a.quiet)
    except (RuntimeError, FileNotFoundError, ValueError) as e:
        print(f"biqa data pristine: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(table)} photos and SOURCES.csv to {a.out}")
    return 0


def _cmd_data_import(a) -> int:
    from .datasets import import_dataset

    df, report = import_dataset(a.name, a.root, None if a.check else a.out, labels_only=a.labels_only,
                                check_only=a.check, labels_file=a.labels_file, resize=a.resize,
                                drop_bad=a.drop_bad, partial=a.partial)
    print(report.format(limit=a.limit) if hasattr(report, "format") else report)
    if not a.check and a.out:
        print(f"wrote {len(df)} records -> {a.out}")
    return 0 if report.ok else 1


def _cmd_data_split(a) -> int:
    from .datasets import add_splits, parse_seeds
    from .records import read_records, write_records

    df = read_records(a.records)
    ratios = tuple(float(x) for x in a.ratios.split(","))
    out = add_splits(df.drop(columns=["abspath"]), a.scheme, ratios=ratios, seeds=parse_seeds(a.seeds),
                     group_column=a.group_column)
    if a.long_tailed:
        from .datasets import long_tailed_kadid

        out = long_tailed_kadid(out)
    dest = a.out or a.records
    write_records(out, dest)
    new = [c for c in out.columns if c not in df.columns]
    print(f"{dest}: {len(out)} records; split columns added: {', '.join(new) or '(none: official kept)'}")
    return 0


def _cmd_data_inspect(a) -> int:
    from .datasets import inspect_records

    info = inspect_records(a.records, histogram=a.histogram, check_images=a.check_images)
    print(json.dumps(info, indent=2, default=str))
    return 1 if info.get("bad_images") else 0


def _cmd_gmad(a) -> int:
    from .gmad import format_matrices, format_summary, run_gmad

    scores = {}
    for item in a.scores or []:
        name, sep, csv = item.partition("=")
        if not sep or not name or not csv:
            raise ValueError(f"--scores takes NAME=CSV, got {item!r}")
        scores[name] = csv
    log = (lambda s: None) if a.quiet else (lambda s: print(s, file=sys.stderr))
    res = run_gmad(a.models, a.pool, a.out, levels=a.levels, band_width=a.band_width,
                   min_candidates=a.min_candidates, range_quantile=a.range_quantile, scores=scores,
                   judgements=a.judgements, simulate_from=a.simulate_from, simulate_tolerance=a.simulate_tolerance,
                   lower_is_better=a.lower_is_better or (), seed=a.seed, thumb=a.thumb, blind=a.blind,
                   sheets=not a.no_sheets, rescore=a.rescore, device=a.device, batch_size=a.batch_size,
                   progress=not a.quiet, log=log)
    print(format_summary(res["selection"]))
    if res["results"] is not None:
        print()
        print(format_matrices(res["results"]))
    t, prm = res["timing"], res["selection"].params
    left = res["left_out"]
    if len(left):
        print(f"\nnote: {len(left)} of the {prm['n_pool']} pool images lack a score from some model and were left "
              f"out (all in {Path(a.out) / 'left_out.csv'}):")
        for r in left.head(10).itertuples(index=False):
            print(f"  {r.path}  (no score from {r.no_score_from})")
        if len(left) > 10:
            print(f"  ... and {len(left) - 10} more")
    print(f"\n{len(res['selection'].pairs)} pairs from {prm['n_used']} images; scoring "
          f"{t['scoring_s']:.1f} s, selection {t['selection_s'] * 1000:.1f} ms, outputs {t['outputs_s']:.1f} s")
    print(f"wrote {Path(a.out) / 'index.html'}, pairs.json, pairs.csv, judgements_template.csv"
          + (", sheets/" if not a.no_sheets else "") + (", matrices.png, model_scores.csv" if res["results"] is not None
                                                          else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="biqa", description="Blind image quality assessment: score, train, evaluate.")
    p.add_argument("--version", action="version", version=f"biqa {__import__('biqa').__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("score", help="score image files, folders (recursive) and globs",
                       description="Score image files, folders (recursive) and globs: one row per input. An input "
                                   "that cannot be read gets an error row and scoring goes on. Exit status: 0 when "
                                   "at least one input was scored; 1 when none could be (no images found, or every "
                                   "input failed), or with --strict when any input failed; 2 for a bad argument "
                                   "or model.")
    s.add_argument("inputs", nargs="*", help="files, folders or globs (default: the bundled example photos)")
    s.add_argument("--model", "-m", default=None,
                   help="trained model name or checkpoint (default: biqa-default), or a classical model: brisque, "
                        "niqe, piqe (score = -raw, higher is better; see biqa models)")
    s.add_argument("--out", "-o", help="write scores to FILE.csv or FILE.json")
    s.add_argument("--batch-size", "-b", type=int, default=8,
                   help="images a forward pass (at most 512K pixels of them); for a tiled image, its tiles a "
                        "forward pass (on a CPU at most 1 Mi px of them: one tile of 768)")
    s.add_argument("--workers", type=int, default=None,
                   help="decoding worker processes (default: none up to 4 CPUs, decoding inline; then 1 per 8 CPUs)")
    s.add_argument("--threads", type=int, default=None,
                   help="intra-op threads of the network (default: the CPUs; above 4, those the workers leave)")
    s.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"],
                   help="auto: onnxruntime for an .onnx model or --precision int8, else torch; onnxruntime with a "
                        "checkpoint exports it once to ONNX and caches it ($BIQA_CACHE_DIR, default ~/.cache/biqa). "
                        "With an ONNX model (a file, or a cached export) biqa score runs without importing torch")
    s.add_argument("--precision", default=None, choices=["fp32", "bf16", "int8"],
                   help="arithmetic of the network: fp32 (default; an ONNX file: its own), bf16 (torch autocast, on "
                        "CPUs with AVX512-BF16/AMX or GPUs), int8 (onnxruntime, statically quantised: the cached int8 "
                        "export of a bundled model, or an int8 .onnx from biqa export --quantize int8). Offered only "
                        "where the accuracy guard passed for the model (docs/speed.md)")
    s.add_argument("--force", action="store_true",
                   help="score at a --precision the accuracy guard did not pass (or never measured) for this model")
    s.add_argument("--resolution", default=None, type=_resolution,
                   help="full | max:N | short:N | WxH (default: the checkpoint's own, e.g. max:2048)")
    s.add_argument("--tile", default="auto", metavar="auto|off|N",
                   help="score large images in tiles at full resolution, the image's score being the mean of its "
                        "tile scores (std: root mean square of the tile stds), with bounded memory. auto (default): "
                        "images above 2 Mi px after --resolution (e.g. 4K/5K photos; not 1920x1080 or 1024x768) in "
                        "768x768 tiles; off: every image whole (a 5K photo then needs ~6 GB); N: every image larger "
                        "than NxN in NxN tiles. Tiles form a regular grid flush with the borders, a function of the "
                        "image size only; the output's tiles column gives the count (1: scored whole)")
    s.add_argument("--tile-overlap", type=int, default=None, metavar="PX",
                   help="pixels shared by neighbouring tiles (at least; default: 1/8 of the tile side)")
    s.add_argument("--clip", action="store_true",
                   help="clamp scores into the model's nominal range (biqa models lists it: 1-5 for biqa-default). "
                        "Without it scores are the model's own numbers, which can leave that range for images "
                        "unlike photographs (flat colour, pure noise, tiny inputs)")
    s.add_argument("--device", default="auto")
    s.add_argument("--peer", default=None, help="score with one network of a DML checkpoint (e.g. peer1)")
    s.add_argument("--strict", action="store_true", help="exit with status 1 if any input could not be scored (without it: only if none could be)")
    s.add_argument("--resume", action="store_true",
                   help="continue a killed run with the same --out: inputs already in its partial file "
                        "(.OUT.partial/, beside the output) are not scored again")
    s.add_argument("--quiet", "-q", action="store_true", help="no table, no progress bar")
    s.set_defaults(func=_cmd_score)

    t = sub.add_parser("train", help="train from an experiment config: a shipped config's name (biqa configs) or a "
                                     "YAML file")
    t.add_argument("config", help="a shipped config's name (e.g. livec_finetune; biqa configs lists them) or a YAML "
                                  "file. The default model is not a trainer config: `biqa train default_model` says "
                                  "how to reproduce it")
    t.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.epochs=3 optim.lr_head=1e-3")
    t.add_argument("--resume", action="store_true", help="continue the run in out_dir from its last epoch")
    t.add_argument("--splits", default=None,
                   help="n-split protocol: train once per split column, e.g. 1-10 (split_seed1..10), and write "
                        "per_split.csv + summary.csv (mean, std) in out_dir")
    t.add_argument("--split-pattern", default=None,
                   help="split column per number, e.g. split_lt_seed{} (default: from data.split_column, "
                        "else split_seed{})")
    t.set_defaults(func=_cmd_train)

    pr = sub.add_parser("probe", help="fit a linear probe (frozen backbone + ridge head) on labelled records")
    pr.add_argument("records", help="records CSV (biqa data import / split)")
    pr.add_argument("--out", required=True, help="run folder: best.safetensors (+ the cached features.npz)")
    pr.add_argument("--split-column", default=None,
                    help="fit 'train', choose alpha on 'val', measure 'test' (default: 'split', else the first "
                         "split_* column; "
                         "'none': fit every row, alpha by 5-fold cross-validation)")
    pr.add_argument("--preset", default="lite0-ml-linear",
                    help="a preset with a BatchNorm + Linear score head (lite0-mln-linear: the statistics "
                         "plus a classical noise floor, biqa-fast v3's features; lite02-ml-linear / "
                         "lite012-ml-linear: Lite0's statistics with Lite2's (and Lite1's) side by side, closer to "
                         "people for ~2.4x / ~3.5x the compute; lite0-mlb-linear / lite0-mlbn-linear (biqa-fast's) / "
                         "lite02-mlbn-linear: all 7 block groups pooled instead of 5 stages, closer to people for the "
                         "same forward pass)")
    pr.add_argument("--alphas", default=None, help="ridge penalties to try, comma-separated (default 1,3,...,3000)")
    pr.add_argument("--label-range", default=None, help="lo,hi of the MOS (default: the records' meta)")
    pr.add_argument("--features", default=None,
                    help="feature cache (.npz; default OUT/features.npz): reused across runs on the same images")
    pr.add_argument("--kernel", action="store_true",
                    help="also try a Gaussian-kernel term beside the linear head (kept if it beats it on validation)")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=_cmd_probe)

    r = sub.add_parser("search", help="random hyper-parameter search with early-stopped trials")
    r.add_argument("config")
    r.add_argument("overrides", nargs="*", help="key=value overrides applied to every trial")
    r.add_argument("--space", nargs="+", required=True,
                   help="key=log:LO,HI | lin:LO,HI | int:LO,HI | choice:A,B (e.g. optim.lr_head=log:1e-6,1e-3)")
    r.add_argument("--trials", type=int, default=10)
    r.add_argument("--patience", type=int, default=None, help="early-stopping patience of each trial")
    r.add_argument("--out", default=None, help="output folder (default: runs/<name>_search)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--quick", action="store_true", help="2 short epochs per trial, no test (smoke run)")
    r.set_defaults(func=_cmd_search)

    e = sub.add_parser("eval", help="evaluate checkpoints on labelled records (several: a cross-dataset grid)")
    e.add_argument("checkpoint", nargs="+",
                   help="checkpoint .safetensors, run folder, trained model name, or brisque | niqe | piqe "
                        "(several: grid rows)")
    e.add_argument("--data", required=True, nargs="+", action="extend",
                   help="records CSV(s), each optionally CSV:SPLIT or CSV:COLUMN=SPLIT (several: grid columns)")
    e.add_argument("--split", default="test", help="train | val | test | all (default: test)")
    e.add_argument("--split-column", default=None)
    e.add_argument("--out", default=None,
                   help="folder for metrics.json, predictions.csv, scatter.png (grid: grid.csv, grid_long.csv, "
                        "grid.md, cells/)")
    e.add_argument("--resolution", default=None, type=_resolution,
                   help="full | max:N | short:N | WxH (default: the checkpoint's own)")
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--tile", default="auto", metavar="auto|off|N",
                   help="large images in tiles at full resolution, exactly as `biqa score --tile` (default auto: "
                        "above 2 Mi px, in 768x768 tiles); the scores evaluated are the ones `biqa score` gives")
    e.add_argument("--tile-overlap", type=int, default=None, metavar="PX",
                   help="pixels shared by neighbouring tiles (default: 1/8 of the tile side)")
    e.add_argument("--workers", type=int, default=None)
    e.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto")
    e.add_argument("--peer", default=None, help="one network of a multi-network checkpoint (e.g. peer1)")
    e.add_argument("--skip-bad-images", action="store_true",
                   help="decode every image first; leave out those that do not decode, listed on stderr, in "
                        "metrics.json and skipped_images.csv (default: such an image stops eval, naming it and its "
                        "CSV line)")
    e.add_argument("--quiet", "-q", action="store_true")
    e.set_defaults(func=_cmd_eval)

    x = sub.add_parser("export", help="export a trained model to ONNX (dynamic batch and size) or TorchScript")
    x.add_argument("checkpoint", help="trained model name or checkpoint (.safetensors or run folder)")
    x.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    x.add_argument("--out", "-o", default=None, help="output file (default: model.onnx / model.pt)")
    x.add_argument("--peer", default=None, help="export one network of a multi-network checkpoint")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset")
    x.add_argument("--quantize", default=None, choices=["int8"],
                   help="int8: onnxruntime static quantisation (QDQ; int8 weights per output channel, uint8 "
                        "activations; the stem and first block stay float32), calibrated on --calibration")
    x.add_argument("--calibration", action="append", default=None, metavar="SOURCE",
                   help="calibration images (repeatable): recipe (LIVE Challenge training photos of split_seed1 from "
                        "data/livec/livec.csv + synthetic distortions of ../shared/data/originals), a folder, "
                        "synth:FOLDER, or a records CSV[:COLUMN=SPLIT]. Default: the table shipped with a bundled "
                        "model, else recipe. Never the accuracy guard's images")
    x.add_argument("--calibration-table", default=None, metavar="JSON",
                   help="without --calibration: quantise with these activation ranges (a table written before); with "
                        "it: write the ranges found there")
    x.set_defaults(func=_cmd_export)

    b = sub.add_parser("bench", help="parameters, GMACs, latency, images/s and peak memory per backend and precision")
    b.add_argument("model", nargs="?", default="biqa-default", help="trained model name, checkpoint or preset")
    b.add_argument("--sizes", default=None, help="N or WxH, comma-separated (default: 224,1024x768,3840x2160)")
    b.add_argument("--batch", type=int, default=None, help="batch N, measured besides batch 1 (default: 8)")
    b.add_argument("--repeats", type=int, default=None, help="timed runs per configuration (default: 5)")
    b.add_argument("--backends", default="eager,channels-last,torch-bf16,onnxruntime,onnxruntime-int8",
                   help="comma-separated: eager, channels-last, torch-bf16, onnxruntime, onnxruntime-int8, "
                        "onnxruntime-fp16 (not shipped; measured to show why), onnxruntime-legacy (the float32 graph "
                        "before the same-padding rewrite); default: the first five")
    b.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the CPUs)")
    b.add_argument("--tile", default="auto", metavar="auto|off|N",
                   help="tile policy of the channels-last and onnxruntime rows, as `biqa score --tile` (default auto: "
                        "images above 2 Mi px, e.g. 3840x2160, are timed in 768x768 tiles, as biqa score runs them)")
    b.add_argument("--out", "-o", default="bench.csv", help="CSV to write ('' for none)")
    b.add_argument("--quick", action="store_true", help="small sizes (224, 512x384), batch 4, 3 runs")
    b.set_defaults(func=_cmd_bench)

    c = sub.add_parser("configs", help="list the experiment configs that ship with biqa (biqa train NAME)")
    c.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'livec*'")
    c.add_argument("--path", action="store_true", help="print each config's file path (to copy and edit)")
    c.set_defaults(func=_cmd_configs)

    m = sub.add_parser("models", help="list trained models (with score range and direction), classical models "
                                      "and presets")
    m.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. '*lite0*' (default: all)")
    m.set_defaults(func=_cmd_models)

    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    y = dsub.add_parser("synth", help="build the synthetic-distortion benchmark from pristine photos")
    y.add_argument("--photos", required=True, help="folder of pristine photos")
    y.add_argument("--out", required=True, help="output folder (images/ + records.csv)")
    y.add_argument("--kadid-labels", default=None,
                   help="KADID-10k label file (dis_img_path,dis_type,ref_img_path,score or dmos.csv) for calibration")
    y.add_argument("--crops", type=int, default=2, help="crops per photo")
    y.add_argument("--crop-size", type=int, default=384)
    y.add_argument("--types", default=None, help="comma-separated distortion names or ids (default: all 25)")
    y.add_argument("--levels", default=None, help="comma-separated levels (default: 1,2,3,4,5)")
    y.add_argument("--val", type=float, default=0.15, help="fraction of photos for validation")
    y.add_argument("--test", type=float, default=0.15, help="fraction of photos for test")
    y.add_argument("--max-photos", type=int, default=None, help="use only the first N photos (quick runs)")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--workers", type=int, default=1)
    y.add_argument("--quiet", "-q", action="store_true")
    y.set_defaults(func=_cmd_data_synth)

    pp = dsub.add_parser("pristine", help="more pristine photos for ranking training: the 15 photographs among "
                         "Debian enlightenment-data's backgrounds (BSD-2), as PNGs + SOURCES.csv")
    pp.add_argument("--out", default="data/pristine", help="output folder (default: data/pristine)")
    pp.add_argument("--deb", default=None, help="a downloaded enlightenment-data .deb (default: apt-get download)")
    pp.add_argument("--installed", default=None,
                    help="read the installed .edj files instead, e.g. /usr/share/enlightenment/data/backgrounds")
    pp.add_argument("--quiet", "-q", action="store_true")
    pp.set_defaults(func=_cmd_data_pristine)

    i = dsub.add_parser("import", help="import a standard IQA dataset (as unpacked by its authors) into records")
    i.add_argument("name", help="koniq10k, spaq, livec, bid, uhdiqa, tid2013, kadid10k, csiq, live, or republished")
    i.add_argument("--root", required=True, help="folder the dataset was unpacked to")
    i.add_argument("--out", default=None, help="records CSV to write (a folder: <folder>/<name>.csv)")
    i.add_argument("--labels-file", default=None, help="label file, if not found under --root (or a CSV export)")
    i.add_argument("--labels-only", action="store_true", help="images absent: do not check image files")
    i.add_argument("--check", action="store_true", help="report only, write nothing")
    i.add_argument("--resize", default=None, help="KonIQ: 1024x768 | 512x384; others: N or WxH resized copies")
    i.add_argument("--drop-bad", action="store_true", help="drop rows with missing images or bad MOS")
    i.add_argument("--partial", action="store_true",
                   help="a copy lacking some images: drop and list their rows, accept fewer rows than the known "
                        "count (default: a missing image makes the import NOT OK)")
    i.add_argument("--strict", action="store_true",
                   help="no effect, kept for old scripts: the exit status is 1 whenever the report is NOT OK")
    i.add_argument("--limit", type=int, default=50, help="problems listed per kind on screen")
    i.set_defaults(func=_cmd_data_import)

    sp = dsub.add_parser("split", help="add split columns to records")
    sp.add_argument("records")
    sp.add_argument("--scheme", default="random", choices=["official", "random", "by-reference"])
    sp.add_argument("--ratios", default="70,20,10", help="train,val[,test] (any scale)")
    sp.add_argument("--seeds", default="1-10", help="e.g. 1-10 or 1,3,5 (one split_seedN column each)")
    sp.add_argument("--group-column", default="ref")
    sp.add_argument("--long-tailed", action="store_true",
                    help="KADID long-tailed variant: 8 types keep 5 levels, 8 keep 3, 9 keep 1 (train part)")
    sp.add_argument("--out", default=None, help="output CSV (default: rewrite the input)")
    sp.set_defaults(func=_cmd_data_split)

    n = dsub.add_parser("inspect", help="counts per split, MOS statistics and histogram")
    n.add_argument("records")
    n.add_argument("--histogram", default=None, help="write a MOS histogram PNG here")
    n.add_argument("--check-images", action="store_true",
                   help="decode every image in full and list those that do not (missing, truncated, corrupt) with "
                        "their CSV line; exit status 1 when any does not")
    n.set_defaults(func=_cmd_data_inspect)

    g = sub.add_parser("gmad", help="gMAD competition: each model attacks the others' level bands on an image pool")
    g.add_argument("--models", nargs="+", required=True,
                   help="[NAME=]SOURCE, 2 or more: trained model name (biqa-default), checkpoint, brisque | niqe | "
                        "piqe, scores CSV (path,score), classical:sharpness | classical:noise, or column:COL of a "
                        "records pool")
    g.add_argument("--pool", nargs="+", required=True, help="folders (recursive), globs, images, records CSVs")
    g.add_argument("--out", required=True, help="output folder (index.html, pairs.json, sheets/, scores/ ...)")
    g.add_argument("--levels", type=int, default=6, help="levels of each defender's score range (default 6)")
    g.add_argument("--band-width", type=float, default=0.05,
                   help="band width, a fraction of the defender's score range (default 0.05)")
    g.add_argument("--min-candidates", type=int, default=5,
                   help="a level whose band holds fewer images is too sparse: no pair (default 5)")
    g.add_argument("--range-quantile", type=float, default=0.01,
                   help="the defender's range runs from this quantile to 1 minus it (default 0.01)")
    g.add_argument("--scores", nargs="+", default=None, metavar="NAME=CSV",
                   help="saved scores (path,score) to use for model NAME instead of scoring")
    g.add_argument("--judgements", default=None,
                   help="CSV pair_id,preferred (left|right|same): aggressiveness / resistance matrices")
    g.add_argument("--simulate-from", default=None, metavar="COLUMN",
                   help="simulate judgements from a column of the records pool (e.g. mos; demonstrations)")
    g.add_argument("--simulate-tolerance", type=float, default=0.25,
                   help="simulated people answer 'same' within this difference (COLUMN units; default 0.25)")
    g.add_argument("--lower-is-better", nargs="+", default=None, metavar="NAME", help="models whose scores fall "
                   "with quality (e.g. DMOS)")
    g.add_argument("--blind", action="store_true", help="page without scores or model names (collecting judgements)")
    g.add_argument("--thumb", type=int, default=300, help="thumbnail size on the page, px (default 300)")
    g.add_argument("--no-sheets", action="store_true", help="no PNG contact sheets")
    g.add_argument("--rescore", action="store_true", help="score again even if OUT/scores/NAME.csv exists")
    g.add_argument("--seed", type=int, default=0, help="left/right layout (and simulated judgements)")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--device", default="auto")
    g.add_argument("--quiet", "-q", action="store_true")
    g.set_defaults(func=_cmd_gmad)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, ValueError, KeyError, ImportError) as e:  # OSError: e.g. a full disk, a locked output
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"biqa: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
