"""Provider simulator: a real HTTP fake voice provider for development, compose and tests."""

from switchboard_provider_sim.app import create_app

__all__ = ["create_app"]
