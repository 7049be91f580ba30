"""The agent's state: the store (behind :class:`~agent.state.store.StateStore`), its migrations, the
encrypted blobs, the hash-chained audit log, and the secret with the data cipher derived from it.

Nothing here imports the pipeline, the daemon or the centre: the state is the bottom of the house.
"""
