"""Quality heads that sit on a pooled backbone feature vector.

Every head maps features ``[B, F]`` to a dict with ``z``: the normalised,
higher-is-better quality ``[B]`` (about [0, 1]); distribution heads add ``probs``
``[B, N]`` and ``std_bins`` ``[B]``.
"""
from __future__ import annotations

import torch
from torch import nn

from .labels import distribution_moments

OUTPUT_INIT_STD = 0.01  # std of a fresh score head's output weights (its bias sits at the range centre)


def init_score_output_(last: nn.Linear, sigmoid: bool) -> None:
    """Start a score head near the middle of the label range: small weights, bias 0.5 (0 before a
    sigmoid, whose output is then 0.5)."""
    nn.init.normal_(last.weight, std=OUTPUT_INIT_STD)
    nn.init.constant_(last.bias, 0.0 if sigmoid else 0.5)


class ScoreHead(nn.Module):
    """MOS regression: [BatchNorm] -> dropout -> [Linear -> GELU] -> Linear(1) [+ residual MLP] [+ kernel term].

    ``norm=True`` standardises each feature with batch statistics (running averages at
    test time): multi-level pooled statistics differ in scale by orders of magnitude.
    ``kernel=N``: a Gaussian-kernel term over ``N`` landmarks beside the linear layer, on the same
    standardised features, ``sum_n a_n exp(-gamma |s - L_n|^2)`` (buffers ``kernel_landmarks``,
    ``kernel_coef``, ``kernel_gamma``; zero until :func:`biqa.probe.linear_model` fills them from
    :func:`biqa.probe.fit_kernel`). It is computed in float32 even under autocast.
    """

    def __init__(self, in_features: int, hidden: int = 0, dropout: float = 0.0, sigmoid: bool = False,
                 norm: bool = False, residual: int = 0, kernel: int = 0):
        super().__init__()
        if (residual or kernel) and (not norm or hidden or dropout > 0):
            raise ValueError("ScoreHead: residual and kernel need norm=True, no hidden layer and no dropout")
        layers: list[nn.Module] = [nn.BatchNorm1d(in_features)] if norm else []
        layers += [nn.Dropout(dropout)] if dropout > 0 else []
        if hidden:
            layers += [nn.Linear(in_features, hidden), nn.GELU()]
            in_features = hidden
        layers.append(nn.Linear(in_features, 1))
        self.mlp = nn.Sequential(*layers)
        self.sigmoid = sigmoid
        init_score_output_(self.mlp[-1], sigmoid)
        # residual=H: a small MLP beside the linear layer, on the same standardised features, starting at 0
        # (biqa.probe.fit_residual trains it to rank distortions while staying near 0 on scored photos)
        self.residual = None
        if residual:
            self.residual = nn.Sequential(nn.Linear(in_features, residual), nn.GELU(), nn.Linear(residual, 1))
            nn.init.zeros_(self.residual[2].weight)
            nn.init.zeros_(self.residual[2].bias)
        self.kernel = int(kernel)
        if kernel:
            self.register_buffer("kernel_landmarks", torch.zeros(kernel, in_features))
            self.register_buffer("kernel_coef", torch.zeros(kernel))
            self.register_buffer("kernel_gamma", torch.zeros(()))

    def kernel_term(self, xb: torch.Tensor) -> torch.Tensor:
        """``sum_n a_n exp(-gamma |s - L_n|^2)`` for standardised features ``xb`` [B, F], in float32."""
        with torch.autocast(xb.device.type, enabled=False):
            s, L = xb.float(), self.kernel_landmarks.float()
            d2 = (s * s).sum(-1, keepdim=True) + (L * L).sum(-1) - 2.0 * s @ L.t()
            return torch.exp(-self.kernel_gamma.float() * d2.clamp(min=0.0)) @ self.kernel_coef.float()

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.residual is None and not self.kernel:
            z = self.mlp(feats).squeeze(-1)
        else:
            xb = self.mlp[0](feats)
            z = self.mlp[1](xb)
            if self.residual is not None:
                z = z + self.residual(xb)
            z = z.squeeze(-1)
            if self.kernel:
                z = z + self.kernel_term(xb).to(z.dtype)
        return {"z": torch.sigmoid(z) if self.sigmoid else z}


class DistributionHead(nn.Module):
    """NIMA head: [BatchNorm] -> dropout -> [Linear -> GELU] -> Linear(F, N) -> softmax over score bins 1..N.

    ``z = (mean - 1) / (N - 1)`` where ``mean = sum_i s_i p_i``. The paper's head is dropout 0.75 and
    one Linear (the defaults); ``norm`` and ``hidden`` give it the same body as :class:`ScoreHead`'s
    (e.g. on multi-level pooled statistics, whose scales differ by orders of magnitude).
    """

    def __init__(self, in_features: int, n_bins: int = 10, dropout: float = 0.75, hidden: int = 0,
                 norm: bool = False):
        super().__init__()
        self.n_bins = n_bins
        self.norm = nn.BatchNorm1d(in_features) if norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU()) if hidden else nn.Identity()
        self.fc = nn.Linear(hidden or in_features, n_bins)

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.fc(self.hidden(self.dropout(self.norm(feats))))
        probs = torch.softmax(logits.float(), dim=-1)
        mean, std = distribution_moments(probs)
        return {"z": (mean - 1.0) / (self.n_bins - 1), "probs": probs, "std_bins": std}
