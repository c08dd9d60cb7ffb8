"""The course's claims and the claims page (``CLAIMS.md``), collected from the executed lessons' verdict tables.

``python -m hrlib.evidence`` rewrites ``CLAIMS.md`` from ``lessons/*.ipynb`` (``make claims``);
``--check`` exits with status 1 when the page is out of sync with the notebooks' stored outputs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from hrlib._io import atomic_write
from hrlib.evidence.table import MIME_TYPE

__all__ = ["CLAIMS", "collect", "main", "render"]

# id: (lessons, the claim as the tutorials and papers state it)
CLAIMS: dict[str, tuple[str, str]] = {
    "C1": ("01", "Training only on downscaled thumbnails loses accuracy on the original high-resolution images "
                 "(train/test resolution gap)."),
    "C2": ("01, 02", "Stage resolution: warm up at low resolution with standard augmentation, then mid resolution with "
                     "scale jitter, then fine-tune at full resolution with local occlusion instead of global "
                     "geometric transforms."),
    "C3": ("03", "Pathology: jitter colour in HED stain space, not RGB; keep brightness/contrast jitter small and "
                 "saturation/hue off."),
    "C4": ("03", "Multispectral: keep inter-band correlation; noise must be consistent across bands, not independent "
                 "per band."),
    "C5": ("02", "Geometric augmentation must move boxes and masks with the pixels; at high resolution check the "
                 "coordinate mapping precision."),
    "C6": ("05", "albumentations offers GPU-accelerated transforms."),
    "C7": ("05", "Decode once: store large images as chunked zarr or LMDB and read only the region of interest."),
    "C8": ("01", "Validation preprocessing must be deterministic (resize/center crop + normalize only)."),
    "C9": ("02", "Monitor augmented batches' mean/std every few batches; a sudden std drop reveals over-blurring or a "
                 "normalization bug."),
    "C10": ("03", "Normalization and resizing must fit the task: ImageNet statistics can wash out medical contrast; "
                  "plain resizing distorts text aspect ratios."),
    "C11": ("03", "Augmentations must respect meaning: unrestricted rotation corrupts the direction of industrial "
                  "scratches; prefer small angles or elastic deformation."),
    "C12": ("02", "Annotation quality beats quantity: check masks, reversed boxes and out-of-range label ids "
                  "automatically."),
    "C13": ("06", "Mixed precision plus gradient checkpointing lets the batch size double at the same memory."),
    "C14": ("06", "When loss diverges, look at per-layer gradient norms; clip (max norm 1.0) when they explode."),
    "C15": ("06", "When validation loss stalls while training loss falls, DropBlock helps CNNs more than a larger "
                  "weight decay."),
    "C16": ("06", "OneCycleLR converges faster and generalizes better than StepLR."),
    "C17": ("07", "Break errors down by mode (missed, false alarm, confusion, by size/domain), not one accuracy."),
    "C18": ("07", "Grad-CAM / Score-CAM heatmaps show whether the model looks at the evidence."),
    "C19": ("07", "Keep a fixed set of 10-20 failure cases and re-check it after every change."),
    "C20": ("07", "Record hyperparameters, data version and code commit for every run."),
    "C21": ("00", "A CNN's parameter count grows (even \"exponentially\") with input resolution."),
    "C22": ("00", "Depthwise-separable convolutions cut compute; dilated convolutions enlarge the receptive field at "
                  "no extra cost."),
    "C23": ("04", "Transfer from a model pretrained on another domain speeds up and improves training."),
    "C24": ("04", "Per-domain statistics: align source and target colour distributions (LAB: histogram-match L, align "
                  "A/B means) before normalization."),
    "C25": ("04", "Elastic deformation (small alpha) on the source domain only."),
    "C26": ("04", "MixStyle (mixing channel-wise feature statistics within a batch) improves generalization to unseen "
                  "domains."),
    "C27": ("04", "Domain-aware normalization (AdaIN, Batch-Instance Norm, per-domain BN) beats plain BN under domain "
                  "shift; \"SyncBatchNorm with domain groups\" is not how to do it."),
    "C28": ("04", "On an unlabeled target domain, crop around class-activation peaks of pseudo-labels to suppress "
                  "background."),
    "C29": ("05", "Do augmentation as tensor operations (ideally on the GPU); NumPy round trips slow the pipeline."),
    "C30": ("05", "Parallel map gives 2-3x throughput; prefetch hides I/O; shuffle before augmenting; cache after the "
                  "expensive step; sequential shard files beat many small files."),
    "C31": ("05", "Fixing the input pipeline raised accelerator utilization from about 45 % to 87 % and cut epoch time "
                  "by about 40 %."),
    "C32": ("03", "Augmentation raised accuracy by about 9 points on a 1,200-image two-class X-ray set; no vertical "
                  "flips on anatomy; rotations within 10 degrees."),
    "C33": ("02", "Fix seeds for debugging; visualize augmented samples regularly; don't stack many strong "
                  "transforms."),
    "C34": ("07", "Use one preprocessing function for training and serving to avoid training/serving skew; ship it "
                  "with the model."),
    "C35": ("02", "MixUp/CutMix mixing augmentation improves generalization."),
    "C36": ("06", "Model pruning improves inference speed and accuracy."),
}

_ID = re.compile(r"^(C\d+)")


def collect(lessons: Path) -> list[dict[str, object]]:
    """Every verdict record stored in the outputs of ``lessons/*.ipynb``, in lesson order.

    Args:
        lessons: the folder of executed lesson notebooks (``NN_topic.ipynb``).

    Returns:
        One dict per verdict (see :meth:`hrlib.evidence.Verdict.as_dict`), with ``lesson`` and ``notebook``.

    Raises:
        FileNotFoundError: ``lessons`` is not a folder.
        ValueError: a notebook that is not JSON (named), or a record for a claim id the course does not have.
    """
    if not lessons.is_dir():
        raise FileNotFoundError(f"lessons folder not found: {lessons}")
    records = []
    for path in sorted(lessons.glob("[0-9][0-9]_*.ipynb")):
        try:
            nb = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not a readable notebook: {exc}") from exc
        for cell in nb.get("cells", []):
            for out in cell.get("outputs", []):
                data = out.get("data", {}).get(MIME_TYPE)
                if data is not None:
                    records += [{**r, "notebook": path.name} for r in data["verdicts"]]
    for r in records:
        match = _ID.match(str(r["id"]))
        if match is None or match.group(1) not in CLAIMS:
            raise ValueError(f"{r['notebook']}: verdict for unknown claim id {r['id']!r}")
    return records


def render(records: list[dict[str, object]]) -> str:
    """``CLAIMS.md``: every claim of the course with its verdicts, effects, intervals and sample sizes.

    Args:
        records: what :func:`collect` returns.

    Returns:
        The page's Markdown text.
    """
    lines = ["# Claims, measured", "",
             "Every lesson ends with a table of the claims it tests. A verdict comes from a rule declared before the "
             "run: **supported** (the 95 % interval of the effect excludes zero in the claimed direction), "
             "**refuted** (it excludes zero the other way, or lies inside a declared margin of no practical effect), "
             "**inconclusive** (neither: the note says what design would settle it) or **not testable here** (the "
             "condition the claim is about did not happen in the experiment). Intervals come from a bootstrap over "
             "seeds and test items (`hrlib.evidence`); n is seeds x test items.", "",
             "This page is generated from the executed lessons (`make claims`); the numbers are those of the fast "
             "profile on a 2-core CPU, stored in each notebook.", "",
             "| claim | lesson | as stated | part measured | verdict | effect [95 % interval] | n |",
             "|---|---|---|---|---|---|---|"]
    by_id: dict[str, list[dict[str, object]]] = {}
    for r in records:
        by_id.setdefault(_ID.match(str(r["id"])).group(1), []).append(r)  # type: ignore[union-attr]
    for cid, (lesson, text) in CLAIMS.items():
        rows = by_id.get(cid, [])
        if not rows:
            lines.append(f"| {cid} | {lesson} | {text} | - | not measured | - | - |")
        for i, r in enumerate(rows):
            head = f"| {cid} | {r['notebook'][:2]} | {text if i == 0 else '(same claim)'} |"
            lines.append(f"{head} {r['id']}: {r['claim']} | **{r['verdict']}** | {r['effect_text']} | {r['n']} |"
                         .replace("\n", " "))
    notes = [f"- **{r['id']}** ({r['notebook']}), {r['verdict']}: {r['reason']}." for r in records
             if r["verdict"] != "supported"]
    tail = ["", "## Why each verdict that is not \"supported\"", "", *notes] if notes else []
    return "\n".join(lines + tail) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write or check ``CLAIMS.md``.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``): ``--lessons``, ``--out``, ``--check``.

    Returns:
        The exit status: 0, or 1 when ``--check`` finds the page out of sync.
    """
    parser = argparse.ArgumentParser(prog="python -m hrlib.evidence", description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", type=Path, default=Path("lessons"), help="folder of executed lessons")
    parser.add_argument("--out", type=Path, default=Path("CLAIMS.md"), help="the claims page")
    parser.add_argument("--check", action="store_true", help="only check that the page is in sync")
    args = parser.parse_args(argv)
    page = render(collect(args.lessons))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != page:
            print(f"{args.out} is out of sync with {args.lessons}/*.ipynb: run `make claims`", file=sys.stderr)
            return 1
        print(f"{args.out} is in sync with {args.lessons}/*.ipynb")
        return 0
    atomic_write(args.out, lambda f: f.write(page), keep_permissions=True)
    print(f"wrote {args.out} ({len(page.splitlines())} lines)")
    return 0
