"""The only non-page code that imports streamlit (pages import this package as ``ui``).

- ``core``: cached model loaders, background jobs, the audit hook, sign-in, small widgets.
- ``panels``: the shared panels (reliability, sanity check, take-away, data changes), each a fragment.
- ``memo``: per-session caches of built figures and images, keyed by everything that changes them.
- ``views``: the Imaging page's scan and map figures from those caches (a new opacity encodes nothing).
- ``fixes``: a fix for a race in the pinned Streamlit that lost on-click downloads, applied on import.
"""
import ui.fixes  # noqa: F401 - applies the fix once, in every process that shows pages
from ui.core import *  # noqa: F401,F403
from ui.core import _estimate, _executor  # noqa: F401 - used by tests and benchmarks by name
from ui.memo import *  # noqa: F401,F403
from ui.panels import *  # noqa: F401,F403
from ui.views import *  # noqa: F401,F403
