"""The fleet: several worker processes, on one or many machines, sharing one PostgreSQL database.

* :mod:`~mailport.fleet.registry` — who is alive (registration, heartbeat, stats);
* :mod:`~mailport.fleet.assignment` — which worker watches which mailbox;
* :mod:`~mailport.fleet.changes` — following mailbox changes at the cost of the changes;
* :mod:`~mailport.fleet.budgets` — the fleet's connection budgets, shared among live workers.
"""
