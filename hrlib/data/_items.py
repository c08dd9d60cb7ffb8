"""The base of hrlib's generated datasets (package-internal): item ``i`` is made from a seed derived from
``(seed, i)``, and may be kept in memory once made."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from hrlib._checks import check_bool, check_int


class SeededItems(Dataset):
    """``n`` items, item ``i`` made by :meth:`_make` from :meth:`item_seed`; ``unit`` names them in messages.

    Args:
        n: number of items (>= 1).
        seed: dataset seed (>= 0); item seeds are derived from ``(seed, i)``.
        in_memory: keep made items in this object (each DataLoader worker has its own copy).
    """

    unit = "items"

    def __init__(self, n: int, seed: int, in_memory: bool) -> None:
        self.n, self.seed = check_int("n", n, 1), check_int("seed", seed, 0)
        self._memory: dict[int, Any] | None = {} if check_bool("in_memory", in_memory) else None

    def __len__(self) -> int:
        return self.n

    def item_seed(self, i: int) -> int:
        """The seed of item ``i``.

        Args:
            i: the item's index (>= 0).

        Returns:
            A seed in [0, 2**32), derived from ``(seed, i)``.
        """
        i = check_int("i", i, 0)
        return int(np.random.SeedSequence([self.seed, i]).generate_state(1)[0])

    def _item(self, i: int) -> Any:
        """Item ``i`` (negative counts from the end), made or taken from memory."""
        try:
            if isinstance(i, bool):
                raise TypeError
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"i must be an int index, got {type(i).__name__} {i!r}") from None
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for a dataset of {self.n} {self.unit}")
        i %= self.n
        if self._memory is not None and i in self._memory:
            return self._memory[i]
        item = self._make(i)
        if self._memory is not None:
            self._memory[i] = item
        return item

    def _make(self, i: int) -> Any:
        raise NotImplementedError
