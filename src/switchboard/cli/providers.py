"""`switchboard providers status`: each provider's circuit breaker, as the dialers share it."""

from __future__ import annotations

import click

from switchboard.cli.environment import load_settings, on_store
from switchboard_shared.domain.breakers import BreakerState


@click.group()
def providers() -> None:
    """Inspect the voice-AI providers the dialers call."""


@providers.command()
def status() -> None:
    """Show each provider's circuit breaker: closed (calls go through), open (calls go
    to the agent's next route until the cool-down ends) or half_open (one probe call is
    deciding). A provider no dialer has failed on yet shows as closed."""
    breakers = {b.provider: b for b in on_store(lambda store: store.list_breakers())}
    configured = sorted(set(load_settings().provider_settings()) | set(breakers))
    click.echo(f"{'PROVIDER':<12} {'STATE':<10} {'SINCE':<26} LAST ERROR")
    for name in configured:
        breaker = breakers.get(name)
        state = breaker.state if breaker else BreakerState.CLOSED
        since = breaker.changed_at.isoformat() if breaker and breaker.changed_at else "-"
        error = (breaker.last_error if breaker and state is not BreakerState.CLOSED else "") or ""
        click.echo(f"{name:<12} {state.value:<10} {since:<26} {error}")
