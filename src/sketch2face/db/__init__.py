"""The database: every table (``models``: users, generations, tokens, audit, cases, candidates,
sign-in throttles; ``gallery``: gallery search), the engine and the Alembic migrations
(``engine``, ``migrations/``).

``web/``, ``gallery/``, ``services/`` and the CLI import this package; it imports none of them.
Importing any part of it loads both table modules, so ``Base.metadata`` is always complete (for
Alembic and the schema test).
"""

from sketch2face.db import gallery as gallery
from sketch2face.db import models as models
