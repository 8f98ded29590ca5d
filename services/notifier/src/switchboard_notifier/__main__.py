"""`python -m switchboard_notifier`: customer webhook delivery alone."""

from switchboard_notifier.service import parts
from switchboard_shared.runtime.process import run_process

if __name__ == "__main__":
    run_process("notifier", lambda components: [parts(components)])
