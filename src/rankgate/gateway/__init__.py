"""The OpenAI-compatible gateway: ``create_app`` builds it from settings and a panel."""

from rankgate.gateway.app import create_app

__all__ = ["create_app"]
