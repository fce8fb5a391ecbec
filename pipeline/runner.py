"""Pick the Beam runner so that a local run never tries to download anything.

Beam's ``DirectRunner`` first tries the Prism runner, which downloads a binary and prints a
traceback when it cannot. pin2vec resolves ``DirectRunner`` (and no ``--runner`` at all)
to the in-process ``FnApiRunner`` -- the same engine that honours ``--direct_num_workers`` and
``--direct_running_mode multi_processing`` -- and passes every other runner name through unchanged,
so Dataflow/Flink/Spark options work as usual.
"""

from __future__ import annotations

from pipeline._beam import beam  # first, so Beam's import-time log noise stays quiet

PipelineOptions = beam.options.pipeline_options.PipelineOptions
StandardOptions = beam.options.pipeline_options.StandardOptions

_LOCAL = {None, "", "DirectRunner", "directrunner", "direct", "FnApiRunner"}


def is_local(options: PipelineOptions) -> bool:
    """Whether these options run in this process tree (DirectRunner-alike)."""
    return options.view_as(StandardOptions).runner in _LOCAL


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    """A ``beam.Pipeline`` for ``options``; local runs use the FnApiRunner (no Prism download)."""
    if is_local(options):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        from pipeline import owner

        owner.claim()  # worker processes it starts end with this process (pipeline/owner.py)

        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(options=options)

