"""Resolution policies (how an image is sized before the network sees it); no torch import, so the
command line can check ``--resolution`` at once."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Resolution:
    """How an image is sized before the network sees it.

    - ``full``: native resolution;
    - ``max:N``: native, but downscaled so that the long side is at most N;
    - ``short:N``: resized so that the short side is N (aspect kept);
    - ``WxH``: resized to exactly W x H.
    """

    mode: str = "full"
    a: int = 0
    b: int = 0

    @classmethod
    def parse(cls, spec: "str | Resolution | None") -> "Resolution":
        if isinstance(spec, Resolution):
            return spec
        s = (spec or "full").strip().lower()
        if s in ("full", "native"):
            return cls("full")
        m = re.fullmatch(r"(max|short):(\d+)", s)
        if m:
            if int(m.group(2)) < 1:
                raise ValueError(f"bad resolution {spec!r}: {m.group(1)}:N needs N of at least 1 pixel (e.g. "
                                 f"{m.group(1)}:1024)")
            return cls(m.group(1), int(m.group(2)))
        m = re.fullmatch(r"(\d+)x(\d+)", s)
        if m:
            if min(int(m.group(1)), int(m.group(2))) < 1:
                raise ValueError(f"bad resolution {spec!r}: WxH needs a width and a height of at least 1 pixel "
                                 "(e.g. 1024x768)")
            return cls("fixed", int(m.group(1)), int(m.group(2)))
        raise ValueError(f"bad resolution {spec!r}: use full, max:N, short:N or WxH (e.g. 1024x768)")

    def __str__(self) -> str:
        return {"full": "full", "max": f"max:{self.a}", "short": f"short:{self.a}"}.get(
            self.mode, f"{self.a}x{self.b}")

    def target_size(self, w: int, h: int) -> tuple[int, int]:
        """Output (width, height) for an input of ``w`` x ``h``."""
        if self.mode == "full":
            return w, h
        if self.mode == "fixed":
            return self.a, self.b
        if self.mode == "max":
            s = min(1.0, self.a / max(w, h))
        else:
            s = self.a / min(w, h)
        return max(1, round(w * s)), max(1, round(h * s))
