"""A fixed wavelet scattering front end (Mallat; Oyallon et al.) for images, built on conv2d.

Scattering coefficients are computed from each image alone with filters fixed by formula, so they
learn nothing from the records: training on them with DP-SGD costs no extra privacy (Tramer & Boneh
2021, "Differentially Private Learning Needs Better Features"). Morlet filters follow kymatio's
definition (J=2 scales, L orientations); coefficients are sub-sampled by 2**J.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vault.train.recipes import scatter_paths

SCALES = 2  # J: coefficients are averaged over 2**J pixels


def _gabor(sigma: float, theta: float, xi: float, slant: float, radius: int) -> np.ndarray:
    cos, sin = math.cos(theta), math.sin(theta)
    rotation = np.array([[cos, -sin], [sin, cos]])
    curvature = rotation @ np.diag([1.0, slant * slant]) @ rotation.T / (2 * sigma * sigma)
    xx, yy = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    envelope = curvature[0, 0] * xx * xx + (curvature[0, 1] + curvature[1, 0]) * xx * yy
    envelope += curvature[1, 1] * yy * yy
    return np.exp(-envelope + 1j * xi * (xx * cos + yy * sin)) / (2 * math.pi * sigma * sigma / slant)


def _morlet(sigma: float, theta: float, xi: float, slant: float, radius: int) -> np.ndarray:
    """A Gabor filter minus its envelope scaled so that the filter has zero mean."""
    wave = _gabor(sigma, theta, xi, slant, radius)
    envelope = _gabor(sigma, theta, 0.0, slant, radius)
    return wave - wave.sum() / envelope.sum() * envelope


def _gaussian(sigma: float, radius: int) -> torch.Tensor:
    g = _gabor(sigma, 0.0, 0.0, 1.0, radius).real
    return torch.tensor(g / g.sum(), dtype=torch.float32)[None, None]


paths = scatter_paths  # coefficients per input channel (vault/train/recipes.py counts them)


class Scattering(nn.Module):
    """Scattering transform of order 1 or 2 at J=2: (N, C, H, W) -> (N, C*K, ceil(H/4), ceil(W/4)).

    K = 1 + 2L for order 1 and 1 + 2L + L*L for order 2. The filters are buffers rebuilt from
    the formula (not saved with the weights).
    """

    def __init__(self, orientations: int = 8, order: int = 1) -> None:
        super().__init__()
        if order not in (1, 2):
            raise ValueError("scattering order must be 1 or 2")
        self.orientations, self.order = orientations, order
        slant = 4.0 / orientations
        for j, radius in enumerate((4, 8)):
            kernels = [
                _morlet(
                    0.8 * 2**j,
                    (orientations // 2 - 1 - t) * math.pi / orientations,
                    0.75 * math.pi / 2**j,
                    slant,
                    radius,
                )
                for t in range(orientations)
            ]
            stacked = np.concatenate(
                [np.stack([k.real for k in kernels]), np.stack([k.imag for k in kernels])]
            )
            self.register_buffer(
                f"psi{j}", torch.tensor(stacked, dtype=torch.float32).unsqueeze(1), persistent=False
            )
        self.register_buffer("phi_full", _gaussian(0.8 * 2 ** (SCALES - 1), 4), persistent=False)
        self.register_buffer("phi_half", _gaussian(0.8 * 2 ** (SCALES - 2), 2), persistent=False)

    def paths(self) -> int:
        return paths(self.orientations, self.order)

    @staticmethod
    def _pad(x: torch.Tensor, radius: int) -> torch.Tensor:
        """Every channel of x as its own image, reflect-padded: (N * C, 1, H + 2r, W + 2r)."""
        n, c, h, w = x.shape
        return F.pad(x.reshape(n * c, 1, h, w), (radius,) * 4, mode="reflect")

    @staticmethod
    def _filter(padded: torch.Tensor, radius: int, weight: torch.Tensor, stride: int, n: int) -> torch.Tensor:
        """Every channel, padded by `radius`, filtered with every kernel in weight: (N, C * K, H', W').
        A kernel narrower than the padding reads its middle (reflect padding of a smaller radius is
        that middle), so an input is padded once for all its filters: the same numbers, bit for bit."""
        trim = radius - weight.shape[-1] // 2
        if trim:
            padded = padded[..., trim:-trim, trim:-trim]
        out = F.conv2d(padded, weight, stride=stride)
        return out.reshape(n, -1, *out.shape[-2:])

    def _modulus(self, z: torch.Tensor) -> torch.Tensor:
        n, _, h, w = z.shape
        squares = z.view(n, -1, 2, self.orientations, h, w).square()
        return (squares[:, :, 0] + squares[:, :, 1] + 1e-12).sqrt().reshape(n, -1, h, w)

    def _low_pass_each(self, x: torch.Tensor) -> torch.Tensor:
        """phi_half at stride 2 on every channel of x, as one grouped convolution (the second order's
        64 maps an input channel: faster than one image per map, the same numbers bit for bit;
        tests/unit/test_train_models.py holds the two to each other)."""
        channels, radius = x.shape[1], self.phi_half.shape[-1] // 2
        if torch.onnx.is_in_onnx_export():  # ONNX wants a kernel of known shape: one image per map
            return self._filter(self._pad(x, radius), radius, self.phi_half, 2, x.shape[0])
        padded = F.pad(x, (radius,) * 4, mode="reflect")
        weight = self.phi_half.repeat(channels, 1, 1, 1)
        return F.conv2d(padded, weight, stride=2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        wide, low = self.psi1.shape[-1] // 2, self.phi_full.shape[-1] // 2
        image = self._pad(x, wide)
        fine = self._modulus(self._filter(image, wide, self.psi0, 1, n))
        coarse = self._modulus(self._filter(image, wide, self.psi1, 2, n))
        fine_radius = wide if self.order == 2 else low
        fine_padded = self._pad(fine, fine_radius)
        half = self.phi_half.shape[-1] // 2
        out = [
            self._filter(image, wide, self.phi_full, 4, n),
            self._filter(fine_padded, fine_radius, self.phi_full, 4, n),
            self._filter(self._pad(coarse, half), half, self.phi_half, 2, n),
        ]
        if self.order == 2:
            second = self._modulus(self._filter(fine_padded, wide, self.psi1, 2, n))
            out.append(self._low_pass_each(second))
        return torch.cat(out, 1)
