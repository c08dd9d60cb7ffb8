"""``python -m hrlib.train --config FILE`` and ``torchrun -m hrlib.train --config FILE``: the training CLI."""

from hrlib.train.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
