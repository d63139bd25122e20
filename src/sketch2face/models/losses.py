"""Losses: adversarial (BCE with logits), pixel L1, SSIM, and the contextual loss of Mechrez et al. 2018."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sketch2face.errors import CheckpointError, WeightsNotFoundError


class GANLoss(nn.Module):
    """Vanilla GAN loss on raw logits: the numerically stable form of sigmoid + BCE."""

    def forward(self, logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())


#: SSIM constants of the evaluation (``evaluation.metrics.SSIM_KWARGS``): 11-tap Gaussian, sigma 1.5.
SSIM_WINDOW_PX = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_kernel_1d(
    sigma_px: float, device: torch.device, radius: int | None = None
) -> torch.Tensor:
    """1-D Gaussian taps (sums to 1), ``radius`` each side (default round(3 sigma), at least 1)."""
    radius = max(1, int(round(3 * sigma_px))) if radius is None else radius
    taps = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma_px) ** 2)
    return kernel / kernel.sum()


def _gaussian_window(channels: int, device: torch.device) -> torch.Tensor:
    """The 11x11 Gaussian (sums to 1) as a depthwise conv kernel (C, 1, 11, 11)."""
    g = _gaussian_kernel_1d(SSIM_SIGMA, device, radius=SSIM_WINDOW_PX // 2)
    return (
        (g[:, None] * g[None, :]).expand(channels, 1, SSIM_WINDOW_PX, SSIM_WINDOW_PX).contiguous()
    )


def _ssim_terms(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM's luminance and contrast-structure maps of images in [0, 1] (N, C, H, W), per channel,
    over the evaluation's 11x11 Gaussian window ('valid' region)."""
    c = x.shape[1]
    window = _gaussian_window(c, x.device)
    x, y = x.float(), y.float()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=c)

    # always in float32: under bf16 autocast E[x^2] - E[x]^2 cancels to noise (8-bit mantissa),
    # the denominators reach 0 and the loss turns NaN from the first step
    with torch.autocast(device_type=x.device.type, enabled=False):
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        c1, c2 = SSIM_K1**2, SSIM_K2**2
        luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
        return luminance, (2 * cov + c2) / (var_x + var_y + c2)


def ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel, per-channel SSIM of images in [-1, 1] (N, C, H, W) -> (N, C, H-10, W-10).

    The evaluation's definition (``tf.image.ssim``/skimage with Gaussian weights and population
    covariance, 'valid' region), so training can optimise the figure it is judged by.
    """
    # data range 1, like the uint8 metric's 255
    luminance, structure = _ssim_terms((x.float() + 1.0) * 0.5, (y.float() + 1.0) * 0.5)
    return luminance * structure


def structure_ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM's contrast-structure term on luma (N, 1, H-10, W-10): edges and shading must agree,
    brightness and colour may not. Used where a request changes colours (counterfactual rows)."""
    luma = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
    x = ((x.float() + 1.0) * 0.5 * luma).sum(1, keepdim=True)
    y = ((y.float() + 1.0) * 0.5 * luma).sum(1, keepdim=True)
    return _ssim_terms(x, y)[1]


def region_colour_loss(
    fake: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor, known: torch.Tensor
) -> torch.Tensor:
    """L1 between the mean colour of each region of ``fake`` (N, 3, H, W) in [-1, 1] and the
    requested colour: ``masks`` (N, R, H, W), ``targets`` (N, R, 3) in [-1, 1], ``known`` (N, R)
    bool (regions without a request are ignored). 0 when nothing was requested."""
    if not bool(known.any()):
        return fake.new_zeros((), dtype=torch.float32)
    masks = masks.to(fake.dtype)
    area = masks.sum((2, 3)).clamp_min(1.0)  # (N, R)
    mean = torch.einsum("nchw,nrhw->nrc", fake.float(), masks.float()) / area[..., None]
    return (mean - targets.float()).abs().mean(-1)[known].mean()


def ssim_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM (0 = identical). Penalises invented texture where the photo is unpredictable
    (backgrounds, clothes) and wrong local contrast, which L1 alone tolerates."""
    return 1.0 - ssim_map(fake, real).mean()


def contextual_loss(
    x_features: torch.Tensor,
    y_features: torch.Tensor,
    *,
    band_width: float = 0.5,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Contextual loss CX(x, y) (Mechrez et al., ECCV 2018, eq. 1-5), averaged over the batch.

    Treats each spatial position as a feature vector and asks that every target feature has a close
    match somewhere in the generated image, so it tolerates the small misalignments between a sketch
    and its photo that make pixel losses blurry. Inputs: (N, C, H, W); cost O((HW)^2) per image.
    """
    x = x_features.float()
    y = y_features.float()
    n, c = x.shape[:2]
    y_mean = y.mean(dim=(0, 2, 3), keepdim=True)  # centre both by the target mean (paper, §3)
    x = F.normalize((x - y_mean).reshape(n, c, -1), dim=1)  # (N, C, P)
    y = F.normalize((y - y_mean).reshape(n, c, -1), dim=1)
    cosine = torch.bmm(x.transpose(1, 2), y)  # (N, Px, Py)
    dist = (1.0 - cosine).clamp_min(0.0)
    rel = dist / (dist.min(dim=1, keepdim=True).values + eps)  # normalise per target feature
    w = torch.exp((1.0 - rel) / band_width)
    cx = w / w.sum(dim=1, keepdim=True)
    cx_score = cx.max(dim=1).values.mean(dim=1)  # (N,)
    return -torch.log(cx_score + eps).mean()


class VGG19Features(nn.Module):
    """VGG19 feature extractor for the contextual loss, from a user-given torchvision state dict.

    No weights are downloaded: pass the path of ``vgg19-dcbb9e9d.pth`` (or any torchvision VGG19
    state dict). ``layers`` are indices into ``vgg19().features`` (21 = conv4_2 after ReLU ... 22).
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, weights_path: str | Path, layers: Sequence[int] = (13, 22)) -> None:
        super().__init__()
        path = Path(weights_path)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"VGG19 weights not found at {path}; give the path of a torchvision VGG19 state dict "
                "or set loss.contextual_backbone = 'discriminator'."
            )
        try:
            from torchvision.models import vgg19
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise WeightsNotFoundError(
                "VGG19 contextual loss needs torchvision: pip install 'sketch2face[refine]'"
            ) from exc
        net = vgg19(weights=None)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as exc:
            raise CheckpointError(f"{path} is not a torchvision VGG19 state dict ({exc}).") from exc
        self.layers = tuple(sorted(layers))
        self.features = net.features[: self.layers[-1] + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = ((image + 1.0) / 2.0 - self.mean) / self.std
        out: list[torch.Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layers:
                out.append(x)
        return out


def pooled(features: torch.Tensor, size_px: int) -> torch.Tensor:
    """Average-pool a feature map to at most ``size_px`` square to bound contextual-loss cost."""
    if features.shape[-1] <= size_px and features.shape[-2] <= size_px:
        return features
    return F.adaptive_avg_pool2d(features, size_px)


#: Radial frequency bins of :func:`radial_log_power` (linear in frequency, 0 < f <= 0.5 cycles/px).
SPECTRUM_BINS = 16
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _luma(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) BT.601 luma (float32) of (N, 3, H, W) images, in their own range."""
    x = images.float()
    return (x * x.new_tensor(_LUMA_WEIGHTS).view(1, 3, 1, 1)).sum(1, keepdim=True)


@functools.lru_cache(maxsize=8)  # built once per image size: the spectrum loss runs every step
def _radial_bin_matrix(height: int, width: int, bins: int, device: torch.device) -> torch.Tensor:
    """(H * (W//2 + 1), bins) matrix that averages an rfft2 power map into radial bins."""
    fy = torch.fft.fftfreq(height, device=device)[:, None]
    fx = torch.fft.rfftfreq(width, device=device)[None, :]
    radius = torch.sqrt(fy**2 + fx**2).flatten()
    index = torch.ceil(radius / 0.5 * bins).long() - 1  # DC -> -1 (dropped), 0.5 -> bins - 1
    used = (index >= 0) & (index < bins)
    onehot = torch.zeros(radius.numel(), bins, device=device)
    onehot[used.nonzero().squeeze(1), index[used]] = 1.0
    return onehot / onehot.sum(0).clamp_min(1.0)


def radial_log_power(images: torch.Tensor, bins: int = SPECTRUM_BINS) -> torch.Tensor:
    """(N, bins) log10 mean luma power per radial frequency band of (N, 3, H, W) images in [-1, 1].

    Mean removed and a Hann window applied first, so the image border adds no false edges. Phase is
    ignored: this is how much detail an image has at each scale, not where it is."""
    with torch.autocast(images.device.type, enabled=False):  # FFT in float32
        luma = _luma(images)[:, 0] * 127.5  # 0..255 grey levels, like the evaluation's
        luma = luma - luma.mean((1, 2), keepdim=True)
        height, width = luma.shape[-2:]
        window = torch.outer(
            torch.hann_window(height, periodic=True, device=luma.device),
            torch.hann_window(width, periodic=True, device=luma.device),
        )
        power = torch.fft.rfft2(luma * window).abs().square() / (height * width)
        matrix = _radial_bin_matrix(height, width, bins, luma.device)
        return torch.log10(power.flatten(1) @ matrix + 1e-6)


def spectrum_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean |log10 power| difference per radial frequency band between each face and its photo.

    A pixel loss pays for blur where detail is uncertain (pores, hair strands, the edge of an
    eyelid drawn a pixel off); this pays for the missing detail itself, at the scale the photo of
    *this* person has it, without asking where each stroke goes. Phase-free, so it pairs with the
    pixel, SSIM and identity losses that decide what the detail is."""
    return (radial_log_power(fake) - radial_log_power(real)).abs().mean()


def coarse_luma(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """(N, 1, H, W) luma of (N, 3, H, W) images, Gaussian-blurred by ``sigma_px`` (reflect pad):
    the face's shape and shading without its fine detail."""
    luma = _luma(images)
    kernel = _gaussian_kernel_1d(sigma_px, luma.device)
    pad = kernel.numel() // 2
    luma = F.conv2d(F.pad(luma, (pad, pad, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(luma, (0, 0, pad, pad), mode="reflect"), kernel.view(1, 1, -1, 1))


def face_oval(height: int, width: int, device: torch.device) -> torch.Tensor:
    """(1, 1, H, W) weight, 1 inside the oval where an aligned face lies (forehead to chin, cheek to
    cheek), falling to 0 over a soft edge: backgrounds and clothes are free to change."""
    y = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    r = torch.sqrt(((x[None, :] - 0.5) / 0.30) ** 2 + ((y[:, None] - 0.52) / 0.40) ** 2)
    return ((1.25 - r) / 0.25).clamp(0.0, 1.0)[None, None]


def structure_keeping_loss(
    refined: torch.Tensor, source: torch.Tensor, sigma_px: float = 3.0
) -> torch.Tensor:
    """Mean |coarse luma of the refined face - coarse luma of its input| inside the face oval.

    A refiner may restore detail (texture, crisp edges, no pencil lines) but must not move the
    face's shape or shading, which carry who the person is: what it cannot see in its input it
    would take from the faces it was trained on. Colour stays free (red blotches are chroma)."""
    weight = face_oval(*refined.shape[-2:], refined.device)
    diff = (coarse_luma(refined, sigma_px) - coarse_luma(source, sigma_px)).abs()
    return (diff * weight).sum() / (weight.sum() * refined.shape[0])


def dark_line_map(images: torch.Tensor, width_px: int = 3) -> torch.Tensor:
    """(N, 1, H, W) black top-hat of the luma: how much darker each pixel is than the surround a
    closing with a (2 * ``width_px`` + 1)-px square leaves, i.e. the strength of dark lines
    narrower than that (pencil strokes, drawn outlines); 0 on flat skin and on broad shading.
    The evaluation's ``metrics.dark_line_strength`` is the same measure on uint8 images."""
    luma = _luma(images)
    size = 2 * width_px + 1
    padded = F.pad(luma, [width_px] * 4, mode="replicate")
    dilated = F.max_pool2d(padded, size, stride=1)
    closed = -F.max_pool2d(F.pad(-dilated, [width_px] * 4, mode="replicate"), size, stride=1)
    return closed - luma


def dark_line_loss(fake: torch.Tensor, real: torch.Tensor, width_px: int = 3) -> torch.Tensor:
    """Mean thin-dark-line strength of each face beyond its photo's at the same pixel.

    Sharpening by drawing: a refiner that only has pixel, adversarial and recogniser losses learns
    that dark outlines around eyes, nose and jaw are the cheapest way to look crisp and to please
    a recogniser, and the face turns into a pencil drawing. Lines the photo itself has (hair,
    eyelids, a collar) cost nothing."""
    return F.relu(dark_line_map(fake, width_px) - dark_line_map(real, width_px)).mean()


def bright_line_loss(fake: torch.Tensor, real: torch.Tensor, width_px: int = 3) -> torch.Tensor:
    """:func:`dark_line_loss` for thin *bright* lines and spots (white top-hat of the luma).

    Barred from drawing dark outlines, a refiner pushed toward photo-level detail drew glowing
    rims along hair and glaring eye whites instead (session 11): the photo's own highlights (a
    catchlight, a lit strand) cost nothing, new ones do."""
    return dark_line_loss(-fake, -real, width_px)
