"""Checks for lesson 00, "why high resolution is hard": convolution cost, activation memory, downsampling.

Expected values are computed independently of the formulas the learner writes: convolution MACs with torch's
``FlopCounterMode`` on a real ``nn.Conv2d`` (on the meta device, so nothing is computed), block means with
``skimage.transform.downscale_local_mean``. The activation-memory check also states how much more a real training
forward keeps (``hrlib.models.count_cost`` on a DSConvNet of the same layout) than the stage outputs it counts.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, NamedTuple

import numpy as np

from hrlib.exercises import NotYet, call_answer, describe_value, register


def _expect_int(got: Any, expected: int, shown: str) -> int:
    """Return ``got`` as an int, or raise NotYet when it is not an integer."""
    if got is None:
        raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
    if isinstance(got, bool) or not isinstance(got, numbers.Integral):
        if isinstance(got, numbers.Real) and float(got) == expected:
            raise NotYet(
                f"{shown} returned {got!r}, the right value but a {type(got).__name__}: return an int "
                "(use // instead of /, or int(...))"
            )
        raise NotYet(f"{shown} returned {describe_value(got)}; expected an int ({expected})")
    return int(got)


# ---------------------------------------------------------------------------------------------- conv MACs


class ConvCase(NamedTuple):
    """One convolution to count (channels, kernel side, output size in px, groups)."""

    c_in: int
    c_out: int
    kernel: int
    out_h: int
    out_w: int
    groups: int = 1

    def shown(self, name: str) -> str:
        extra = f", groups={self.groups}" if self.groups != 1 else ""
        return (
            f"{name}(c_in={self.c_in}, c_out={self.c_out}, kernel={self.kernel}, "
            f"out_h={self.out_h}, out_w={self.out_w}{extra})"
        )


CONV_CASES: tuple[ConvCase, ...] = (
    ConvCase(3, 16, 3, 32, 32),  # a stem conv
    ConvCase(16, 32, 5, 20, 30),  # non-square output
    ConvCase(64, 128, 1, 8, 8),  # 1x1 (pointwise) conv
    ConvCase(32, 32, 3, 16, 16, groups=32),  # depthwise conv
    ConvCase(64, 128, 3, 14, 14, groups=4),  # grouped conv
    ConvCase(256, 256, 3, 64, 64),  # a big one
)


@cache
def conv_macs_measured(case: ConvCase) -> int:
    """The reference: MACs measured by torch's FlopCounterMode on a real nn.Conv2d (meta device: no compute).

    Args:
        case: the convolution.

    Returns:
        Its multiply-accumulates for one image.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if case.kernel % 2 == 0:
        raise ValueError("only odd kernels keep the output size with padding=kernel // 2")
    conv = torch.nn.Conv2d(
        case.c_in,
        case.c_out,
        case.kernel,
        padding=case.kernel // 2,
        groups=case.groups,
        bias=False,
        device="meta",
    )
    x = torch.empty(1, case.c_in, case.out_h, case.out_w, device="meta")
    with FlopCounterMode(display=False) as counter:
        y = conv(x)
    assert tuple(y.shape[2:]) == (case.out_h, case.out_w)
    return counter.get_total_flops() // 2  # one multiply-accumulate = 2 FLOPs


def _conv_hint(case: ConvCase, got: int, expected: int) -> str:
    c_in, c_out, k, h, w, g = case
    per_pixel = c_out * (c_in // g) * k * k
    if g != 1 and got == c_out * c_in * k * k * h * w:
        return (
            f"you ignored `groups`: with groups={g} each output channel only sees c_in // groups = "
            f"{c_in // g} input channels"
        )
    if got == 2 * expected:
        return "that is twice the answer: you counted FLOPs (multiply + add); count one MAC per multiply-add"
    if got in (per_pixel, c_out * c_in * k * k):
        return "you forgot the output size: every one of the out_h * out_w output pixels costs that much"
    if got in (per_pixel * h, per_pixel * w):
        return "multiply by both out_h and out_w"
    if k != 1 and got == expected // k:
        return "a kernel x kernel filter has kernel * kernel weights per input channel (square the kernel)"
    if got == expected + c_out * h * w:
        return "don't count the bias: count only the multiply-accumulates of the weights"
    return "MACs = c_out * (c_in // groups) * kernel * kernel * out_h * out_w"


@register("00.conv_macs")
def check_conv_macs(answer: Callable[..., Any]) -> str:
    """Check a learner's MACs of a 2-D convolution.

    Args:
        answer: ``answer(c_in, c_out, kernel, out_h, out_w, groups=1) -> int``.

    Returns:
        The PASS message: MACs right for every convolution case.

    Raises:
        NotYet: a wrong count, with a hint (a missing factor, groups forgotten, ...).
    """
    name = getattr(answer, "__name__", "conv_macs")
    for case in CONV_CASES:
        shown = case.shown(name)
        args = case[:5] if case.groups == 1 else case
        expected = conv_macs_measured(case)
        got = _expect_int(call_answer(answer, shown, *args), expected, shown)
        if got != expected:
            hint = _conv_hint(case, got, expected)
            raise NotYet(f"{shown} returned {got:,} but expected {expected:,}. Hint: {hint}")
    n = len(CONV_CASES)
    return f"matches torch's FLOP counter on real nn.Conv2d layers, 1x1 and depthwise too ({n} cases)"


# -------------------------------------------------------------------------------------- activation memory


class MemCase(NamedTuple):
    """One network to size (stage widths, input side in px, batch, bytes per value)."""

    widths: tuple[int, ...]
    image_size: int
    batch_size: int = 1
    bytes_per_value: int = 4

    def shown(self, name: str) -> str:
        extra = ""
        if self.batch_size != 1 or self.bytes_per_value != 4:
            extra = f", batch_size={self.batch_size}, bytes_per_value={self.bytes_per_value}"
        return f"{name}(widths={list(self.widths)}, image_size={self.image_size}{extra})"

    def args(self) -> tuple[Any, ...]:
        base = (list(self.widths), self.image_size)
        if self.batch_size != 1 or self.bytes_per_value != 4:
            return (*base, self.batch_size, self.bytes_per_value)
        return base


MEM_CASES: tuple[MemCase, ...] = (
    MemCase((32, 64, 128, 256), 256),
    MemCase((32, 64, 128, 256), 512),
    MemCase((16,), 100),
    MemCase((8, 16, 32), 97),  # sides 48, 24, 12
    MemCase((64, 128, 256, 512), 1024, batch_size=8, bytes_per_value=2),
    MemCase((24, 48), 2048, batch_size=3, bytes_per_value=4),
)


def activation_bytes(
    widths: Sequence[int],
    image_size: int,
    batch_size: int = 1,
    bytes_per_value: int = 4,
    first_factor: int = 2,
    square: bool = True,
) -> int:
    """Reference (and, with other arguments, known mistakes): bytes of the stage outputs.

    Args:
        widths: channels of the stem and of each stage.
        image_size: the input side in px.
        batch_size: images per batch.
        bytes_per_value: 4 for float32.
        first_factor: the stem's downsampling (a mistake: 1).
        square: count H * W (a mistake: False counts one side).

    Returns:
        The bytes.
    """
    total = 0
    size = image_size
    for i, width in enumerate(widths):
        size = image_size // first_factor if i == 0 else size // 2
        total += batch_size * width * (size * size if square else size) * bytes_per_value
    return total


def _memory_hint(case: MemCase, got: int) -> str:
    widths, s, b, nbytes = case
    if got == activation_bytes(widths, s, b, nbytes, square=False):
        return (
            "your answer grows linearly, not quadratically, with image_size: memory grows with the number of "
            "pixels, the side squared"
        )
    if b != 1 and got == activation_bytes(widths, s, 1, nbytes):
        return "you forgot batch_size: every image of the batch has its own feature maps"
    if nbytes != 1 and got == activation_bytes(widths, s, b, 1):
        return "you forgot bytes_per_value: the answer is in bytes, not in values"
    if got == sum(b * w * s * s * nbytes for w in widths):
        return "you forgot the downsampling: stage i outputs at side image_size // 2**(i + 1)"
    if got == activation_bytes(widths, s, b, nbytes, first_factor=1):
        return "stage 0 is already downsampled once: stage i's side is image_size // 2**(i + 1)"
    single_stages = {activation_bytes(widths[i : i + 1], s // 2**i, b, nbytes) for i in range(len(widths))}
    if len(widths) > 1 and got in single_stages:
        return "add up the feature maps of all the stages, not just one"
    return "sum over stages i of batch_size * widths[i] * (image_size // 2**(i+1))**2 * bytes_per_value"


TRAINING_CASE: tuple[tuple[int, ...], int] = ((16, 32, 64, 128), 256)  # DSConvNet's default widths


@cache
def training_activation_bytes(widths: tuple[int, ...], image_size: int) -> tuple[int, int]:
    """The stage outputs of this exercise's formula next to what training really keeps, for one DSConvNet.

    Args:
        widths: DSConvNet's stem and stage widths (its layout is the formula's: stage i at side // 2**(i + 1)).
        image_size: the input side in px.

    Returns:
        ``(stage-output bytes, activation bytes measured by hrlib.models.count_cost)`` for one float32 image; the
        second is larger because training also keeps the outputs of the layers inside each stage.
    """
    import torch

    from hrlib.models import DSConvNet, count_cost

    with torch.random.fork_rng():  # the weights do not matter here; leave the learner's random state alone
        measured = count_cost(DSConvNet(widths=widths), image_size).activation_bytes
    return activation_bytes(widths, image_size), measured


@register("00.activation_memory")
def check_activation_memory(answer: Callable[..., Any]) -> str:
    """Check a learner's bytes of the stage outputs.

    Args:
        answer: ``answer(widths, image_size, batch_size=1, bytes_per_value=4) -> int``.

    Returns:
        The PASS message: bytes right for every network case.

    Raises:
        NotYet: a wrong byte count, with a hint (linear in the side, batch forgotten, ...).
    """
    name = getattr(answer, "__name__", "activation_memory")
    for case in MEM_CASES:
        shown = case.shown(name)
        # independent reference: build the feature-map shapes explicitly and count their elements
        side = case.image_size
        shapes = []
        for width in case.widths:
            side //= 2
            shapes.append((case.batch_size, width, side, side))
        expected = sum(int(np.prod(shape, dtype=np.int64)) for shape in shapes) * case.bytes_per_value
        got = _expect_int(call_answer(answer, shown, *case.args()), expected, shown)
        if got != expected:
            hint = _memory_hint(case, got)
            raise NotYet(f"{shown} returned {got:,} but expected {expected:,} bytes. Hint: {hint}")
    widths, side = TRAINING_CASE
    stage_outputs, measured = training_activation_bytes(widths, side)
    return (f"right bytes of the stage outputs for every layout, batch and precision; training keeps "
            f"x{measured / stage_outputs:.1f} as much in DSConvNet(widths={list(widths)}) at {side} px, as "
            f"count_cost measures ({len(MEM_CASES)} cases)")


# ------------------------------------------------------------------------------------ area downsampling


class ImageCase(NamedTuple):
    """One image to downsample (shape, factor, dtype name, seed)."""

    shape: tuple[int, ...]
    factor: int
    dtype: str
    seed: int

    def image(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        if self.dtype == "uint8":
            return rng.integers(0, 256, size=self.shape, dtype=np.uint8)
        return rng.random(self.shape).astype(self.dtype)

    def shown(self, name: str) -> str:
        return f"{name}(image of shape {self.shape} and dtype {self.dtype}, factor={self.factor})"


IMAGE_CASES: tuple[ImageCase, ...] = (
    ImageCase((8, 12), 2, "float64", 1),
    ImageCase((64, 48), 4, "float64", 2),
    ImageCase((37, 50), 4, "float64", 3),  # not divisible: crop 1 row and 2 columns
    ImageCase((30, 45, 3), 3, "float64", 4),  # RGB
    ImageCase((33, 70, 3), 8, "uint8", 5),  # RGB uint8, not divisible
    ImageCase((16, 16), 1, "float32", 6),  # factor 1: just a float copy
)


def area_reference(image: np.ndarray, factor: int) -> np.ndarray:
    """The reference: block means with skimage, after cropping the rows and columns that do not fill a block.

    Args:
        image: HxW or HxWxC.
        factor: the block side in px.

    Returns:
        The float block means.
    """
    from skimage.transform import downscale_local_mean

    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    cropped = image[:h, :w]
    block = (factor, factor) + (1,) * (image.ndim - 2)
    return downscale_local_mean(cropped, block)


def _is_subsampling(got: np.ndarray, image: np.ndarray, factor: int) -> bool:
    """Whether ``got`` picked one pixel per block (``image[dy::f, dx::f]``, cropped or not)."""
    if factor == 1:
        return False
    out_h, out_w = image.shape[0] // factor, image.shape[1] // factor
    for dy in range(factor):
        for dx in range(factor):
            picked = image[dy::factor, dx::factor]
            for candidate in (picked, picked[:out_h, :out_w]):
                if candidate.shape == got.shape and np.array_equal(candidate, got):
                    return True
    return False


_ALIASING_HINT = (
    "you picked every f-th pixel (stride subsampling, which aliases); average each f x f block so small "
    "targets fade instead of flickering"
)


@register("00.area_downsample")
def check_area_downsample(answer: Callable[..., Any]) -> str:
    """Check a learner's area downsampling: block means, remainder cropped, float output.

    Args:
        answer: ``answer(image, factor) -> np.ndarray``.

    Returns:
        The PASS message: block means right for every image case.

    Raises:
        NotYet: wrong shape, dtype or values, with a hint (stride sampling, no crop, ...).
    """
    name = getattr(answer, "__name__", "area_downsample")
    for case in IMAGE_CASES:
        shown = case.shown(name)
        image = case.image()
        expected = area_reference(image, case.factor)
        try:
            got = call_answer(answer, shown, image.copy(), case.factor)
        except NotYet as exc:
            if image.shape[0] % case.factor or image.shape[1] % case.factor:
                raise NotYet(
                    f"{exc}. Hint: the sides of this image are not multiples of the factor: crop the "
                    "remainder rows and columns first, image[: H - H % f, : W - W % f]"
                ) from None
            raise
        if got is None:
            raise NotYet(f"{shown} returned None: did you forget the `return` statement?")
        if not isinstance(got, np.ndarray):
            raise NotYet(f"{shown} returned {describe_value(got)}; return a NumPy array (np.asarray(...))")
        if _is_subsampling(got, image, case.factor):
            raise NotYet(f"{shown}: {_ALIASING_HINT}")
        if got.shape != expected.shape:
            hint = ""
            if image.ndim == 3 and got.shape == expected.shape[:2]:
                hint = " Hint: keep the channel axis; average each channel separately"
            elif got.shape[:2] == (-(-image.shape[0] // case.factor), -(-image.shape[1] // case.factor)):
                hint = " Hint: crop the remainder rows and columns that do not fill a whole block"
            raise NotYet(f"{shown} returned shape {got.shape} but expected shape {expected.shape}.{hint}")
        if not np.issubdtype(got.dtype, np.number) or np.issubdtype(got.dtype, np.complexfloating):
            raise NotYet(f"{shown} returned an array of dtype {got.dtype}; return floats")
        values = got.astype(np.float64)
        scale = max(1.0, float(np.abs(expected).max()))
        close = np.isclose(values, expected, rtol=1e-6, atol=1e-6 * scale)
        if not np.issubdtype(got.dtype, np.floating):
            if close.all() or np.abs(values - expected).max() <= 1:
                why = "the block means are not integers, return floats, don't round"
                raise NotYet(f"{shown} returned dtype {got.dtype}: {why}")
            raise NotYet(f"{shown} returned dtype {got.dtype}; return floats (block means are not integers)")
        if not close.all():
            if np.abs(values - expected).max() <= 1 and np.array_equal(values, np.round(values)):
                raise NotYet(f"{shown}: the values are rounded: return floats, don't round")
            index = tuple(int(i) for i in np.argwhere(~close)[0])
            y, x = index[0], index[1]
            f = case.factor
            raise NotYet(
                f"{shown}: at output index {index} expected {expected[index]:.6g} "
                f"but got {values[index]:.6g}. Hint: output pixel ({y}, {x}) is the mean of "
                f"image[{y * f}:{(y + 1) * f}, {x * f}:{(x + 1) * f}]"
            )
    return f"same block means as skimage's downscale_local_mean, remainder cropped ({len(IMAGE_CASES)} cases)"
