"""Provider simulator: a real HTTP fake voice provider for development, compose and tests."""

from switchboard_provider_sim.app import create_app
from switchboard_provider_sim.server import serve

__all__ = ["create_app", "serve"]
