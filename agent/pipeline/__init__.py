"""The pipeline: one module per stage, in the order an export flows through them.

    watch ─► ingest ─► (build) ─► outbox ─► submit ─► track ─► deliver ─► receipts
                                                                   └─► transmittal (paper originals)

- :mod:`~agent.pipeline.watch`: which inbox files are complete; observers that wake the daemon;
- :mod:`~agent.pipeline.ingest`: a file read with its connector and mapped with its profile,
  each application built (:mod:`~agent.pipeline.build`) and admitted to the
  :mod:`~agent.pipeline.outbox` in one transaction, bad rows quarantined;
- :mod:`~agent.pipeline.submit`: the outbox → the centre (create, upload, submit; 补正 answers);
- :mod:`~agent.pipeline.track`: events, per-application reads, fees, 补正 deadlines and materials;
- :mod:`~agent.pipeline.deliver`: certificates downloaded, verified (:mod:`~agent.pipeline.verify`)
  and stored exactly once;
- :mod:`~agent.pipeline.receipts`: receipt files back to the loan system;
- :mod:`~agent.pipeline.transmittal`, :mod:`~agent.pipeline.requeue`: operator actions.

Every stage is a function of a :class:`~agent.pipeline.context.StageContext` and safe to run
again at any time. The stage modules import none of each other (import-linter checks it); what
they share sits below them: the outbox, the context, the pure build and verify steps.
"""
