"""Delivery writes, one module per job; each reads top to bottom:

- `drivers`      driver profiles, going available/offline, claiming and freeing a driver.
- `ingest`       storing a batch of GPS points: history, hot state, the live-position publish.
- `dispatch`     finding a driver for an order: attempts, backoff, giving up, the sweep.
- `assignments`  the driver's moves on an assignment, staff reassignment, release on cancel.
- `retention`    pruning position history.

Lock order, everywhere, so two transactions never wait on each other in a cycle: the order row, then the
assignment row, then the driver row. Redis (hot state) and task enqueues happen after commit.

Nothing here imports `delivery.tasks`: news that should start work (a driver became a dispatch candidate,
an order needs dispatching) goes out as `delivery.events`, and the tasks module subscribes to them.
"""
