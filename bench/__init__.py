"""The pipeline benchmark: `python -m bench.pipeline` from the repository root.

- `pipeline`: the scenario, its options and `main`.
- `load`: the load generator (POSTs to /v1/calls, with so many in flight).
- `receiver`: the customer's webhook receiver, timing each call's `call.completed`.
- `sampler`: CPU and RSS per process (psutil) and queue depths, once a second.
- `broker`: the run's own exchange and queues on RabbitMQ: names, depths, deletion.
- `processes`: starting, seeding and stopping the services; the hard time limit.
- `probes`: what the services say after the run (metrics, dial log, stored statuses).
- `report`: the figures and ratios printed (and recorded in RESULTS.md).
"""
