"""asyncio tasks: the event loops of the process, their pending tasks, what
each awaits, whether each loop is turning, and cancelling one task.

The layers: `found` (asyncio's own registries, and ids that are never
reused), `listing` (plain records of loops and tasks), `probe` (is a loop
turning?), `cancel` (Task.cancel on the task's own loop, and what came of
it). Plain Python, no gRPC, like the thread side (see _snapshot, _control).
"""
