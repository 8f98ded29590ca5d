"""`python -m switchboard_dialer`: the dialer worker alone."""

from switchboard_dialer.service import parts
from switchboard_shared.runtime.process import run_process

if __name__ == "__main__":
    run_process("dialer", lambda components: [parts(components)])
