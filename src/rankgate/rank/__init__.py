"""Ranking: leaderboards with intervals, paired tests, Bradley–Terry, Pareto, calibration.

This package is also the public function ``rankgate.rank(outcomes)``: importing a submodule
(``rankgate.rank.leaderboard``) makes Python bind ``rankgate.rank`` to this package, replacing
the function ``rankgate/__init__.py`` exports, so the package itself is made callable and
calls ``rankgate.api.rank``. Either way ``rankgate.rank(outcomes)`` works.
"""

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``rankgate.api.rank``: the leaderboard of outcomes."""
        from rankgate.api import rank

        return rank(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
