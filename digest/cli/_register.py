"""Import every command module so its commands attach to ``cli``. One line per area."""

# from . import ingest  # noqa: F401
from . import send  # noqa: F401
