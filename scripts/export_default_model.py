"""Ship a trained run as the bundled default model (biqa/weights/biqa-default.safetensors).

Usage: python scripts/export_default_model.py runs/biqa-default/best.safetensors
"""
from __future__ import annotations

import sys
from pathlib import Path

from biqa.checkpoint import export_checkpoint

src = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/biqa-default/best.safetensors")
dst = Path(__file__).resolve().parents[1] / "biqa" / "weights" / "biqa-default.safetensors"
note = ("Trained on synthetic distortions (25 KADID-10k types x 5 levels) of 40 photos from ../shared/data/photos, "
        "labels from full-reference metrics calibrated to KADID-10k's per-(type, level) mean MOS; "
        "no human opinions on these photos. Scores on a 1-5 scale, higher is better.")
out = export_checkpoint(src, dst, half=True, extra_meta={"name": "biqa-default", "trained_on": note})
print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
