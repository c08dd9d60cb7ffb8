"""The input pipeline (lesson 05): tile stores, conversion, shards and small files, loaders.

Submodules:

- ``hrlib.pipeline.store``: zarr and LMDB tile stores with checksums, pyramids and a manifest;
- ``hrlib.pipeline.converter``: image files into a tile store (``hrlib convert``);
- ``hrlib.pipeline.shards``: whole image files, shards and small files (the baseline a store replaces);
- ``hrlib.pipeline.loaders``: region datasets, the tile cache, ``make_loader`` and the step timer.
"""

from hrlib.pipeline.converter import (
    DEFAULT_MAX_PIXELS,
    ON_ERROR,
    SUFFIXES,
    ConvertError,
    convert,
    list_sources,
    read_image_file,
)
from hrlib.pipeline.loaders import (
    RegionDataset,
    StepTimer,
    TileCache,
    batched_augment,
    default_workers,
    make_loader,
    sample_augment,
)
from hrlib.pipeline.shards import (
    Batch,
    ImageFileDataset,
    ShardDataset,
    SkippedSample,
    SmallFileDataset,
    collate_skipping,
    decode_image,
    to_tensor,
    write_shards,
    write_small_files,
)
from hrlib.pipeline.store import (
    FORMATS,
    LmdbTileStore,
    StoreCorruptError,
    TileStore,
    ZarrTileStore,
    downsample,
    open_store,
    verify,
    write_example_images,
    write_store,
)

__all__ = [
    "Batch", "ConvertError", "DEFAULT_MAX_PIXELS", "FORMATS", "ImageFileDataset", "LmdbTileStore", "ON_ERROR",
    "RegionDataset", "SUFFIXES", "ShardDataset", "SkippedSample", "SmallFileDataset", "StepTimer",
    "StoreCorruptError", "TileCache", "TileStore", "ZarrTileStore", "batched_augment", "collate_skipping",
    "convert", "decode_image", "default_workers", "downsample", "list_sources", "make_loader", "open_store",
    "read_image_file", "sample_augment", "to_tensor", "verify", "write_example_images", "write_shards",
    "write_small_files", "write_store",
]
