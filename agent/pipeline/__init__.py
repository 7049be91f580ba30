"""The pipeline: one module per stage, in the order an export flows through them, and below the
stages the sub-steps they share.

    watch ─► ingest ─► outbox ─► submit ─► track ─► deliver ─► receipts
               │ build              │         │ fees      └─► transmittal (paper originals)
               └ reapply            └ operators (checked before sending)
    operator actions: requeue, transmittal; ``regbridge profile check``: check (ingest's reading, changing nothing)

    import layers (import-linter, top down; a module imports only layers below it, "|" are independent):
        watch | ingest | submit | track | deliver | receipts | transmittal | requeue | check   (the stages)
        fees | reapply                                                                           (sub-steps)
        outbox
        operators
        context
        build | verify | writers                                                                 (pure steps)

- :mod:`~agent.pipeline.watch`: which inbox files are complete (:mod:`~agent.pipeline.writers`: is
  a writer still at it); observers that wake the daemon;
- :mod:`~agent.pipeline.ingest`: a file read with its connector and mapped with its profile,
  each application built (:mod:`~agent.pipeline.build`) and admitted to the
  :mod:`~agent.pipeline.outbox` in one transaction — a loan refused or withdrawn before and applied
  for again through :mod:`~agent.pipeline.reapply` — bad rows quarantined;
- :mod:`~agent.pipeline.submit`: the outbox → the centre (create, upload, submit; 补正 answers), each
  application's 业务办理人员 checked first (:mod:`~agent.pipeline.operators`);
- :mod:`~agent.pipeline.track`: events, per-application reads, 补正 deadlines and materials; fee
  notices paid once through :mod:`~agent.pipeline.fees`;
- :mod:`~agent.pipeline.deliver`: certificates downloaded, verified (:mod:`~agent.pipeline.verify`)
  and stored exactly once;
- :mod:`~agent.pipeline.receipts`: receipt files back to the loan system;
- :mod:`~agent.pipeline.transmittal`, :mod:`~agent.pipeline.requeue`: operator actions;
- :mod:`~agent.pipeline.check`: ``regbridge profile check``, an export read as ingest would, nothing written.

Every stage is a function of a :class:`~agent.pipeline.context.StageContext` and safe to run
again at any time. The stage modules import none of each other (import-linter checks it); what
they share sits below them, in the layers drawn above: fees and reapply, the outbox, operators, the
context, and the pure build, verify and writers steps.
"""
