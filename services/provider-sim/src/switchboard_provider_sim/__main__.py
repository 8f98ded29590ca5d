"""`python -m switchboard_provider_sim`: the simulator alone, configured from the
environment (SWITCHBOARD_HOST, SWITCHBOARD_PORT, SWITCHBOARD_SIM_*, provider keys)."""

from switchboard_provider_sim.service import parts
from switchboard_shared.runtime.process import run_stateless_process
from switchboard_shared.runtime.settings import Settings

if __name__ == "__main__":
    settings = Settings(service="provider-sim")
    run_stateless_process("provider-sim", [parts(settings)], settings)
