"""The web dashboard at ``/ui``: server-rendered pages over the store's read layer and the
gateway's own metrics, behind the admin key (``session.py``). ``mount_ui`` is what the app
factory calls."""

from rankgate.gateway.ui.routes import mount_ui

__all__ = ["mount_ui"]
