"""Flow matching on (normalised) latents.

The time convention, written once: ``x_t = noise.lerp(data, t)``, so t = 0 is pure noise, t = 1 is data, and the
velocity the network predicts is ``data - noise``. Training and sampling both go through :func:`interpolate` and
:func:`velocity_target`; the sampler integrates dx/dt = v from t = 0 to t = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# v = field(x_t (B, N, D), t (B,)) -> velocity (B, N, D)
VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def interpolate(noise: torch.Tensor, data: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t for t (B,) in [0, 1]: noise at 0, data at 1."""
    return noise.lerp(data, t.view(-1, *([1] * (data.ndim - 1))))


def velocity_target(noise: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    return data - noise


def sample_times(batch: int, gen: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """Training times from a logit-normal(0, 1): more weight on the middle of the path, none lost at the ends."""
    return torch.sigmoid(torch.randn(batch, generator=gen)).to(device)


def flow_loss(field: VelocityField, data: torch.Tensor, gen: torch.Generator,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error between predicted and target velocity; ``mask`` (B, N) excludes padded frames."""
    noise = torch.randn(data.shape, generator=gen).to(data)
    t = sample_times(data.shape[0], gen, data.device)
    v = field(interpolate(noise, data, t), t).float()  # float32 loss under autocast
    err = (v - velocity_target(noise, data)).square().mean(-1)  # (B, N)
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp(min=1)


@torch.no_grad()
def sample(field: VelocityField, noise: torch.Tensor, steps: int = 32) -> torch.Tensor:
    """Euler integration from t = 0 (``noise``) to t = 1; returns the generated data."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x = noise
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.full((x.shape[0],), i * dt, device=x.device, dtype=x.dtype)
        x = x + dt * field(x, t)
    return x


def guided(conditional: VelocityField, unconditional: VelocityField, scale: float) -> VelocityField:
    """Classifier-free guidance: v = v_u + scale * (v_c - v_u); scale 1 is the conditional field itself."""
    def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        vc = conditional(x, t)
        if scale == 1.0:
            return vc
        vu = unconditional(x, t)
        return vu + scale * (vc - vu)

    return field
