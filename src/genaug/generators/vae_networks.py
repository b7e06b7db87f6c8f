"""The convolutional VAE of seed 001 table 5.1, with depth, channels and latent size configurable.

Encoder: Conv(c_i, 4x4, stride 2, pad 1) blocks with BatchNorm + LeakyReLU, Flatten,
Linear(hidden), then mu = Linear(d), logvar = Linear(d). Decoder mirrors it: Linear(hidden),
Linear(c_last * s * s), Reshape, ConvTranspose blocks, Sigmoid. Images are zero-padded to a
multiple of 2**depth before encoding and the decoder output is cropped back, so 8 px digits,
28 px MNIST and 64 px flowers use the same code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def padded_size(size: int, depth: int) -> int:
    """Smallest multiple of 2**depth that is >= size."""
    unit = 2 ** depth
    return -(-size // unit) * unit


def _norm(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.GroupNorm(1, channels)


class ConvVAE(nn.Module):
    """One VAE; with ``n_classes > 0`` it is a conditional VAE (one-hot label into encoder and decoder)."""

    def __init__(self, image_size: int, image_channels: int, channels: list[int], hidden: int,
                 latent_dim: int, n_classes: int = 0, batchnorm: bool = True):
        super().__init__()
        self.image_size, self.image_channels = image_size, image_channels
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.work_size = padded_size(image_size, len(channels))
        self.bottom = self.work_size // 2 ** len(channels)
        encoder, previous = [], image_channels
        for c in channels:
            encoder += [nn.Conv2d(previous, c, 4, 2, 1), _norm(c, batchnorm), nn.LeakyReLU(0.2)]
            previous = c
        self.encoder = nn.Sequential(*encoder, nn.Flatten())
        flat = channels[-1] * self.bottom ** 2
        self.encoder_head = nn.Sequential(nn.Linear(flat + n_classes, hidden), nn.LeakyReLU(0.2))
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        self.decoder_head = nn.Sequential(nn.Linear(latent_dim + n_classes, hidden), nn.LeakyReLU(0.2),
                                          nn.Linear(hidden, flat), nn.LeakyReLU(0.2))
        decoder = []
        reversed_channels = list(reversed(channels))
        for c_in, c_out in zip(reversed_channels, reversed_channels[1:]):
            decoder += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), _norm(c_out, batchnorm), nn.LeakyReLU(0.2)]
        decoder += [nn.ConvTranspose2d(reversed_channels[-1], image_channels, 4, 2, 1)]
        self.decoder = nn.Sequential(*decoder)
        self.channels_last = channels[-1]

    def _one_hot(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        if not self.n_classes:
            return torch.zeros(n, 0)
        if labels is None:
            raise ValueError("a conditional VAE needs labels")
        return F.one_hot(labels.long(), self.n_classes).float()

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | x[, y]) for images x in [0, 1], shape (N, C, H, W)."""
        pad = self.work_size - self.image_size
        if pad:
            x = F.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))
        features = torch.cat([self.encoder(x), self._one_hot(labels, len(x)).to(x)], dim=1)
        hidden = self.encoder_head(features)
        return self.mu(hidden), self.logvar(hidden).clamp(-12, 8)

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-sigmoid reconstructions, cropped to the image size."""
        hidden = self.decoder_head(torch.cat([z, self._one_hot(labels, len(z)).to(z)], dim=1))
        out = self.decoder(hidden.view(len(z), self.channels_last, self.bottom, self.bottom))
        start = (self.work_size - self.image_size) // 2
        return out[:, :, start:start + self.image_size, start:start + self.image_size]

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] for latent vectors z."""
        return torch.sigmoid(self.decode_logits(z, labels))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        """Reconstruction logits, mu, logvar (reparameterised sample in between)."""
        mu, logvar = self.encode(x, labels)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode_logits(z, labels), mu, logvar


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float, reconstruction: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, reconstruction, kl): seed 001 ch. 5.5 -- mean over the batch, reconstruction summed
    over the pixels (i.e. the mean scaled by the input size, so it outweighs the KL term)."""
    if reconstruction == "bce":
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        rec = (torch.sigmoid(logits) - x) ** 2
    rec = rec.flatten(1).sum(1).mean()
    kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)).mean()
    return rec + beta * kl, rec, kl
