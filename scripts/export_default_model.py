"""Ship a trained run as the bundled default model (biqa/weights/biqa-default.safetensors).

Usage: python scripts/export_default_model.py runs/biqa-default/best.safetensors [data/synth/synth_meta.json]
The synthetic build's parameters, photo split and calibration report are recorded in the model's JSON
(provenance: the exact distortion parameters the training data was made with).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from biqa.checkpoint import export_checkpoint

src = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/biqa-default/best.safetensors")
synth_meta = Path(sys.argv[2] if len(sys.argv) > 2 else "data/synth/synth_meta.json")
dst = Path(__file__).resolve().parents[1] / "biqa" / "weights" / "biqa-default.safetensors"
extra = {"name": "biqa-default"}
if synth_meta.is_file():
    m = json.loads(synth_meta.read_text())
    extra["training_data"] = {
        "kind": "biqa synthetic-distortion benchmark (biqa data synth)",
        "n_photos": m["n_photos"], "n_images": m["n_images"], "seed": m["seed"], "splits": m["splits"],
        "parameters": m["parameters"], "distortions": m["distortions"],
        "calibration_report": m["calibration"].get("report_cross_fitted_by_photo"),
    }
    n_train = len(m["splits"]["train"])
else:
    n_train = "?"
extra["trained_on"] = (
    f"Synthetic distortions (25 KADID-10k types x 5 levels) of {n_train} training photos from "
    "../shared/data/photos, labels from full-reference metrics calibrated to KADID-10k's per-(type, level) "
    "mean MOS; no human opinions on these photos. Scores on a 1-5 scale, higher is better.")
out = export_checkpoint(src, dst, half=True, extra_meta=extra)
print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
