"""``python -m hrlib.evidence [--check]``: write (or check) the claims page ``CLAIMS.md`` from the executed lessons."""

from hrlib.evidence.claims import main

raise SystemExit(main())
