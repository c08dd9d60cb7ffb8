"""Automatic annotation checks (lesson 02, claim C12): find broken boxes, labels and masks before training.

:func:`audit` returns a :class:`QAReport` of :class:`Finding` s; each kind (``KINDS``) names one root cause, so one
error gives one finding. Box geometry gives at most one per box, the first that applies: ``non_finite_box``,
``reversed_box`` (``x1 < x0`` or ``y1 < y0``), ``empty_box`` (zero width or height), ``box_out_of_image`` (partly
or wholly outside ``0..width, 0..height``). ``label_out_of_range``: not in ``0..num_classes - 1``. Masks:
``mask_shape`` (image-level, index None: not ``(N, height, width)``), ``empty_mask``, ``mask_outside_box`` (pixels
more than ``mask_tolerance_px`` outside a finite, ordered, non-empty box; a broken box has no region to compare
with). ``duplicate``: same label and IoU >= ``duplicate_iou`` with an earlier valid box, reported on the later one.
Degenerate boxes are reported, never dropped. :func:`plant_errors` corrupts copies of clean annotations with known
errors: on clean annotations (e.g. from :func:`annotations_from_slides`) ``audit`` finds exactly the planted set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hrlib._checks import check_float, check_int
from hrlib.data.slides import Slide
from hrlib.viz import format_table

__all__ = ["KINDS", "Annotation", "Finding", "QAReport", "annotations_from_slides", "audit", "plant_errors"]

KINDS: tuple[str, ...] = ("non_finite_box", "reversed_box", "empty_box", "box_out_of_image", "label_out_of_range",
                          "empty_mask", "mask_shape", "mask_outside_box", "duplicate")
_STRAY_GAP_PX = 8.0  # plant_errors puts stray mask pixels at least this far outside the box
Key = tuple[str, int | None, str]


@dataclass(frozen=True)
class Annotation:
    """One image's objects.

    Attributes:
        image_id: unique among the annotations audited together.
        image_size: (height, width) px.
        boxes: (N, 4) float ``x0, y0, x1, y1`` px.
        labels: (N,) int class ids.
        masks: (N, height, width) bool, one per box, or None.
    """

    image_id: str
    image_size: tuple[int, int]
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None


@dataclass(frozen=True)
class Finding:
    """One problem.

    Attributes:
        image_id: the annotation's id.
        index: the object's index in its annotation (None: the whole image).
        kind: one of ``KINDS``.
        detail: what was seen, e.g. ``"x1 (10) < x0 (30)"``.
    """

    image_id: str
    index: int | None
    kind: str
    detail: str


@dataclass
class QAReport:
    """The findings of :func:`audit`.

    Attributes:
        findings: ordered by annotation, object index (image-level first) and kind.
    """

    findings: list[Finding] = field(default_factory=list)

    def keys(self) -> set[Key]:
        """The findings as keys.

        Returns:
            ``{(image_id, index, kind)}``: compare with the set :func:`plant_errors` returns.
        """
        return {(f.image_id, f.index, f.kind) for f in self.findings}

    def counts(self) -> dict[str, int]:
        """Number of findings per kind.

        Returns:
            ``{kind: count}`` with every kind in ``KINDS`` (0 when none).
        """
        out = dict.fromkeys(KINDS, 0)
        for f in self.findings:
            out[f.kind] += 1
        return out

    def table(self, max_rows: int = 20) -> str:
        """A Markdown table of the findings.

        Args:
            max_rows: rows shown (>= 1); a last row counts the rest.

        Returns:
            The table's text.
        """
        max_rows = check_int("max_rows", max_rows, 1)
        rows: list[tuple[object, ...]] = [(f.image_id, "-" if f.index is None else f.index, f.kind, f.detail)
                                          for f in self.findings[:max_rows]]
        if len(self.findings) > max_rows:
            rows.append(("...", "", f"{len(self.findings) - max_rows} more findings", ""))
        if not rows:
            rows.append(("-", "-", "no findings", ""))
        return format_table(("image_id", "index", "kind", "detail"), rows)

    @property
    def ok(self) -> bool:
        """Whether there is no finding."""
        return not self.findings

    def __len__(self) -> int:
        return len(self.findings)


def _check_annotations(annotations: object) -> list[tuple[Annotation, np.ndarray, np.ndarray, np.ndarray | None]]:
    """Check the structure (the content is audit's job); return each annotation with float boxes, int labels."""
    if isinstance(annotations, Annotation | str) or not isinstance(annotations, Sequence):
        raise TypeError(f"annotations must be a sequence of hrlib.augment.qa.Annotation, "
                        f"got {type(annotations).__name__}")
    out, seen = [], {}
    for k, a in enumerate(annotations):
        name = f"annotations[{k}]"
        if not isinstance(a, Annotation):
            raise TypeError(f"{name} must be a hrlib.augment.qa.Annotation, got {type(a).__name__}")
        if not isinstance(a.image_id, str) or a.image_id in seen:
            raise ValueError(f"{name}.image_id must be a str unique in annotations, got {a.image_id!r}"
                             + (f" (also annotations[{seen[a.image_id]}])" if a.image_id in seen else ""))
        seen[a.image_id] = k
        size = a.image_size
        if not (isinstance(size, tuple | list) and len(size) == 2 and all(
                isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in size)):
            raise ValueError(f"{name}.image_size must be (height, width), two ints >= 1, got {size!r}")
        boxes, labels = np.asarray(a.boxes), np.asarray(a.labels)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.dtype.kind not in "fiu":
            raise ValueError(f"{name}.boxes must be an (N, 4) float array of x0, y0, x1, y1 px, got {boxes.dtype} "
                             f"with shape {boxes.shape}")
        if labels.shape != (len(boxes),) or labels.dtype.kind not in "iu":
            raise ValueError(f"{name}.labels must be a ({len(boxes)},) int array (one per box), got {labels.dtype} "
                             f"with shape {labels.shape}")
        masks = None if a.masks is None else np.asarray(a.masks)
        if masks is not None and (masks.ndim != 3 or masks.dtype != bool):
            raise ValueError(f"{name}.masks must be an (N, height, width) bool array or None, got {masks.dtype} "
                             f"with shape {masks.shape}")
        out.append((a, boxes.astype(np.float64), labels.astype(np.int64), masks))
    return out


def _region(box: np.ndarray, height: int, width: int, pad: float = 0.0) -> tuple[slice, slice]:
    """Rows and columns of the pixels that overlap a finite box grown by ``pad`` px, clipped to the image."""
    c0, c1 = max(0, math.floor(box[0] - pad)), min(width, math.ceil(box[2] + pad))
    r0, r1 = max(0, math.floor(box[1] - pad)), min(height, math.ceil(box[3] + pad))
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def _box_problem(box: np.ndarray, height: int, width: int) -> tuple[str, str] | None:
    x0, y0, x1, y1 = (float(v) for v in box)
    coords = f"({x0:g}, {y0:g}, {x1:g}, {y1:g})"
    if not np.isfinite(box).all():
        return "non_finite_box", f"coordinates {coords} are not all finite"
    if x1 < x0 or y1 < y0:
        parts = [f"x1 ({x1:g}) < x0 ({x0:g})"] if x1 < x0 else []
        return "reversed_box", "; ".join(parts + ([f"y1 ({y1:g}) < y0 ({y0:g})"] if y1 < y0 else []))
    if x1 == x0 or y1 == y0:
        return "empty_box", f"zero {'width' if x1 == x0 else 'height'}: {coords}"
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return "box_out_of_image", f"{coords} is not inside the {width}x{height} image"
    return None


def _iou(b: np.ndarray) -> np.ndarray:
    """(N, N) intersection over union of valid boxes (N, 4)."""
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = np.clip(np.minimum(b[:, None, 2:], b[None, :, 2:]) - np.maximum(b[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area[:, None] + area[None, :] - inter)


def _audit_one(a: Annotation, boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray | None, num_classes: int,
               duplicate_iou: float, tol: float) -> list[Finding]:
    h, w = (int(v) for v in a.image_size)
    out: list[Finding] = []
    if masks is not None and masks.shape != (len(boxes), h, w):
        out.append(Finding(a.image_id, None, "mask_shape", f"masks have shape {masks.shape}, expected "
                                                           f"{(len(boxes), h, w)} (boxes, height, width)"))
        masks = None
    valid = np.zeros(len(boxes), dtype=bool)
    for i, (box, label) in enumerate(zip(boxes, labels, strict=True)):
        problem = _box_problem(box, h, w)
        if problem is not None:
            out.append(Finding(a.image_id, i, *problem))
        valid[i] = problem is None or problem[0] == "box_out_of_image"
        if not 0 <= label < num_classes:
            out.append(Finding(a.image_id, i, "label_out_of_range", f"label {label} not in 0..{num_classes - 1}"))
        if masks is None:
            continue
        if not masks[i].any():
            out.append(Finding(a.image_id, i, "empty_mask", "no mask pixel is set"))
        elif valid[i]:
            stray = int(np.count_nonzero(masks[i]) - np.count_nonzero(masks[i][_region(box, h, w, tol)]))
            if stray:
                out.append(Finding(a.image_id, i, "mask_outside_box",
                                   f"{stray} mask pixels more than {tol:g} px outside the box"))
    idx = np.flatnonzero(valid)
    iou = _iou(boxes[idx])
    hit = np.tril((labels[idx][:, None] == labels[idx][None, :]) & (iou >= duplicate_iou), k=-1)
    for j in np.flatnonzero(hit.any(axis=1)):
        i = int(np.flatnonzero(hit[j])[0])
        out.append(Finding(a.image_id, int(idx[j]), "duplicate", f"IoU {iou[j, i]:.2f} with object {idx[i]} "
                                                                  f"(label {labels[idx[j]]})"))
    return sorted(out, key=lambda f: (-1 if f.index is None else f.index, KINDS.index(f.kind)))


def audit(annotations: Sequence[Annotation], num_classes: int, *, duplicate_iou: float = 0.9,
          mask_tolerance_px: float = 2.0) -> QAReport:
    """Check every object of every annotation (the kinds are in the module docstring).

    Args:
        annotations: :class:`Annotation` s with unique image ids.
        num_classes: valid labels are ``0..num_classes - 1`` (>= 1).
        duplicate_iou: in (0, 1]: the IoU from which two same-label boxes are one object annotated twice.
        mask_tolerance_px: how far outside its box a mask pixel may lie (>= 0; a pixel counts if it overlaps the box
            grown by that much).

    Returns:
        A :class:`QAReport`.
    """
    checked = _check_annotations(annotations)
    num_classes = check_int("num_classes", num_classes, 1)
    duplicate_iou = check_float("duplicate_iou", duplicate_iou, 0.0, 1.0, low_open=True)
    tol = check_float("mask_tolerance_px", mask_tolerance_px, 0.0)
    return QAReport([f for c in checked for f in _audit_one(*c, num_classes, duplicate_iou, tol)])


def _stray_corner(box: np.ndarray, h: int, w: int) -> tuple[float, slice, slice]:
    """The 2x2 image corner farthest outside ``box``: (its gap to the box in px, rows, columns)."""
    left, right, top, bottom = box[0] - 2, w - 2 - box[2], box[1] - 2, h - 2 - box[3]
    c, r = (0 if left > right else w - 2), (0 if top > bottom else h - 2)
    return float(max(left, right, top, bottom)), slice(max(r, 0), r + 2), slice(max(c, 0), c + 2)


@dataclass
class _Copies:
    """The annotations being corrupted: per annotation its boxes, labels, masks (or None) and (height, width)."""

    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    masks: list[np.ndarray | None]
    sizes: list[tuple[int, int]]


def _eligible(kind: str, k: int, i: int, copies: _Copies, used: set[tuple[int, int]], bad_shape: set[int]) -> bool:
    """Whether object ``i`` of annotation ``k`` is clean and can take an error of ``kind``."""
    b, (h, w) = copies.boxes[k][i], copies.sizes[k]
    return not ((k, i) in used or not (np.isfinite(b).all() and b[0] < b[2] and b[1] < b[3]) or (
        kind in ("empty_mask", "mask_outside_box") and (copies.masks[k] is None or k in bad_shape)) or (
        kind == "mask_outside_box" and _stray_corner(b, h, w)[0] < _STRAY_GAP_PX))


def _corrupt(kind: str, k: int, i: int, copies: _Copies, rng: np.random.Generator, bad_label: int) -> int:
    """Plant one error of ``kind`` on object ``i`` of annotation ``k``; return the index it is reported at.

    Draws from ``rng``: the axis (0: x, 1: y), then what the kind needs (which coordinate, which value, ...).
    """
    b, (h, w) = copies.boxes[k][i], copies.sizes[k]
    axis = int(rng.integers(2))
    if kind == "non_finite_box":
        b[rng.integers(4)] = rng.choice([np.nan, np.inf, -np.inf])
    elif kind == "reversed_box":
        for ax in ([0, 1] if rng.random() < 0.3 else [axis]):
            b[ax], b[ax + 2] = b[ax + 2], b[ax]
    elif kind == "empty_box":
        b[axis + 2] = b[axis]
    elif kind == "box_out_of_image":  # grow the box past one image edge: its mask stays inside it
        side = (w, h)[axis]
        step = rng.uniform(1.0, 1.0 + 0.25 * side)
        if rng.random() < 0.5:
            b[axis] = -step
        else:
            b[axis + 2] = side + step
    elif kind == "label_out_of_range":
        copies.labels[k][i] = bad_label
    elif kind == "empty_mask":
        copies.masks[k][i] = False  # type: ignore[index]
    elif kind == "mask_outside_box":
        _, rows, cols = _stray_corner(b, h, w)
        copies.masks[k][i, rows, cols] = True  # type: ignore[index]
    else:  # duplicate: the same object annotated twice, appended at the end
        copies.boxes[k], copies.labels[k] = np.vstack([copies.boxes[k], b[None]]), \
            np.append(copies.labels[k], copies.labels[k][i])
        if copies.masks[k] is not None:
            copies.masks[k] = np.concatenate([copies.masks[k], copies.masks[k][i][None]])
        return len(copies.boxes[k]) - 1
    return i


def plant_errors(annotations: Sequence[Annotation], kinds: Sequence[str], *, seed: int = 0,
                 num_classes: int | None = None) -> tuple[list[Annotation], set[Key]]:
    """Corrupt copies of ``annotations`` (left untouched) with one error per entry of ``kinds``, each on a different
    object; on clean annotations ``audit`` finds exactly the returned set.

    Mask errors need masks; ``mask_shape`` (image-level) adds a row to an annotation's masks; ``duplicate`` appends
    a copy of a clean object; ``box_out_of_image`` grows a box past an image edge.

    Args:
        annotations: clean :class:`Annotation` s (image ids unique).
        kinds: names from ``KINDS``, repeats allowed.
        seed: fixes which objects and how (>= 0).
        num_classes: if given, ``label_out_of_range`` sets the label to it (an off-by-one), else to -1.

    Returns:
        ``(corrupted annotations, {(image_id, index, kind)})``.

    Raises:
        ValueError: an unknown kind, or no clean object left for one.
    """
    checked = _check_annotations(annotations)
    if isinstance(kinds, str) or not isinstance(kinds, Sequence) or not all(k in KINDS for k in kinds):
        raise ValueError(f"kinds must be a sequence of names from {KINDS}, got {kinds!r}")
    rng = np.random.default_rng(check_int("seed", seed, 0))
    bad_label = -1 if num_classes is None else check_int("num_classes", num_classes, 1)
    copies = _Copies([b.astype(np.float64 if a.boxes.dtype.kind in "iu" else a.boxes.dtype) for a, b, _, _ in checked],
                     [lab.astype(a.labels.dtype) for a, _, lab, _ in checked],
                     [None if m is None else m.copy() for *_, m in checked],
                     [tuple(int(v) for v in a.image_size) for a, *_ in checked])  # type: ignore[misc]
    objects = [(k, i) for k, b in enumerate(copies.boxes) for i in range(len(b))]
    objects = [objects[j] for j in rng.permutation(len(objects))]
    used: set[tuple[int, int]] = set()
    bad_shape: set[int] = set()
    planted: set[Key] = set()
    order = {"mask_shape": 0, "duplicate": 1}  # the pickiest kinds choose first
    for kind in sorted(kinds, key=lambda k: order.get(k, 2)):
        if kind == "mask_shape":
            k = next((k for k in map(int, rng.permutation(len(copies.boxes))) if copies.masks[k] is not None and
                      k not in bad_shape), None)
            if k is None:
                raise ValueError("kinds asks for more 'mask_shape' errors than there are annotations with masks")
            copies.masks[k] = np.pad(copies.masks[k], ((0, 0), (0, 1), (0, 0)))
            bad_shape.add(k)
            planted.add((checked[k][0].image_id, None, kind))
            continue
        k, i = next(((k, i) for k, i in objects if _eligible(kind, k, i, copies, used, bad_shape)), (-1, -1))
        if k < 0:
            raise ValueError(f"kinds: no clean object left to plant {kind!r} on ({len(kinds)} errors asked, "
                             f"{len(objects)} objects; mask errors need masks)")
        used.add((k, i))
        index = _corrupt(kind, k, i, copies, rng, bad_label)
        used.add((k, index))
        planted.add((checked[k][0].image_id, index, kind))
    out = [Annotation(a.image_id, a.image_size, copies.boxes[k], copies.labels[k], copies.masks[k])
           for k, (a, *_) in enumerate(checked)]
    return out, planted


def annotations_from_slides(slides: Sequence[Slide], image_ids: Sequence[str] | None = None) -> list[Annotation]:
    """One :class:`Annotation` per slide: its evidence boxes, each labelled with the slide's label, and per-box masks
    (the slide's mask inside the pixels the box overlaps).

    Args:
        slides: ``hrlib.data.slides.Slide`` s.
        image_ids: one id per slide (default ``"slide_<i>"``).

    Returns:
        The annotations, clean: :func:`audit` finds nothing in them.
    """
    if isinstance(slides, Slide | str | bytes) or not isinstance(slides, Sequence):
        raise TypeError(f"slides must be a sequence of hrlib.data.slides.Slide, got {type(slides).__name__}")
    if image_ids is not None and (isinstance(image_ids, str | bytes) or not isinstance(image_ids, Sequence)):
        raise TypeError(f"image_ids must be a sequence of {len(slides)} strings (one per slide) or None, got "
                        f"{image_ids!r:.60}")
    ids = [f"slide_{i}" for i in range(len(slides))] if image_ids is None else list(image_ids)
    if len(ids) != len(slides) or not all(isinstance(v, str) for v in ids):
        raise ValueError(f"image_ids must be {len(slides)} strings (one per slide), got {image_ids!r}")
    out = []
    for k, s in enumerate(slides):
        if not isinstance(s, Slide):
            raise TypeError(f"slides[{k}] must be a hrlib.data.slides.Slide, got {type(s).__name__}")
        h, w = s.mask.shape
        boxes = np.asarray(s.boxes, dtype=np.float32).reshape(-1, 4)
        masks = np.zeros((len(boxes), h, w), dtype=bool)
        for i, box in enumerate(boxes):
            rows, cols = _region(box, h, w)
            masks[i, rows, cols] = s.mask[rows, cols]
        out.append(Annotation(ids[k], (h, w), boxes, np.full(len(boxes), s.label, dtype=np.int64), masks))
    return out
