"""``pin2vec sessionize`` / ``python -m pipeline``: engagement logs -> SESSIONS directory.

The driver checks everything it can before Beam starts (options, inputs, columns, the output
directory), builds ``ReadEvents -> ValidateEvents -> Sessionize -> WriteSessionsDir``, runs it with
:func:`pipeline.runner.make_pipeline`, then reads the counts the pipeline wrote and writes
``manifest.json`` last. Beam flags the user passes (``--runner``, ``--direct_num_workers``,
Dataflow's ...) go to Beam untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import sys
import tempfile

from pipeline._beam import CompressionTypes, FileSystems, beam
from pipeline.io.read import ReadEvents, check_columns, expand_inputs
from pipeline.options import SessionizeConfig, build_parser, check_beam_args, config_from_args
from pipeline.runner import make_pipeline
from pipeline.sessionize import SESSION_SCHEMA, Sessionize
from pipeline.sinks import COUNTS_FILE, WriteSessionsDir, shard_name, write_table, write_text
from pipeline.validate import FILTER_REASONS, REJECT_REASONS, ValidateEvents
from recommender.core.artifacts import MANIFEST, check_not_input, prepare_output_dir, write_manifest
from recommender.core.errors import ArtifactError, Pin2VecError
from recommender.core.integrity import CHECKSUMS, stream_digest

logger = logging.getLogger(__name__)
PipelineOptions = beam.options.pipeline_options.PipelineOptions


def default_buckets(options) -> int:
    """Four buckets per worker the options ask for, at least 8."""
    flags = options.get_all_options()
    workers = max(flags.get("direct_num_workers") or 1, flags.get("num_workers") or 1,
                  flags.get("max_num_workers") or 1)
    return max(8, 4 * workers)


_MARKER = "pin2vec: "  # prefix of Pin2VecErrors raised inside the pipeline (see pipeline.io.read)

# Lines Beam's multi-processing SDK workers print to the inherited stderr on every run.
_WORKER_NOISE = re.compile(
    r"^(INFO|DEBUG):|apitools not found|bigquery_storage|semi_persistent_directory|^\s*$"
)


@contextlib.contextmanager
def _filtered_worker_stderr(active: bool):
    """Keep Beam worker subprocesses' start-up chatter off the terminal; pass anything else on.

    The workers inherit file descriptor 2, so it is pointed at a temporary file for the run and
    the lines that are not routine noise are copied to the real stderr afterwards.
    """
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    user_error = False
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException as e:
            user_error = _MARKER in str(e)  # reported as one line: drop the workers' traceback
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", errors="replace").splitlines():
                if not user_error and not _WORKER_NOISE.search(line):
                    print(line, file=sys.stderr)


@contextlib.contextmanager
def _muted(names: tuple[str, ...]):
    """Silence loggers that would print a DoFn's exception: it propagates to the caller anyway."""
    loggers = [logging.getLogger(n) for n in names if logging.getLogger(n).level == logging.NOTSET]
    for logger_ in loggers:
        logger_.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger_ in loggers:
            logger_.setLevel(logging.NOTSET)


def _is_remote(path: str) -> bool:
    return "://" in path


def prepare_output(output: str, overwrite: bool, inputs=()) -> None:
    """Create ``output`` by the one output-directory rule (:func:`prepare_output_dir`)."""
    if not _is_remote(output):
        prepare_output_dir(output, overwrite, kind="sessions", inputs=inputs)
        return
    existing = [m.path for m in FileSystems.match([FileSystems.join(output, "*")])[0].metadata_list]
    if existing and not overwrite:
        raise ArtifactError(
            f"output directory {output} is not empty; pass --overwrite to replace it"
        )
    manifest = FileSystems.join(output, MANIFEST)
    if manifest in existing:
        FileSystems.delete([manifest])
    rest = [p for p in existing if p != manifest]
    if rest:
        FileSystems.delete(rest)


def build(pipeline, config: SessionizeConfig, files) -> None:
    """Add the sessionize stages to ``pipeline``."""
    raws = pipeline | "Inputs" >> beam.Create(files) | "ReadEvents" >> ReadEvents(config)
    valid = raws | "ValidateEvents" >> ValidateEvents(config)
    out = valid.events | "Sessionize" >> Sessionize(config)
    counts = (valid.counts, out["counts"]) | "StageCounts" >> beam.Flatten()
    _ = (out["sessions"], out["items"], valid.rejected, counts) | "Write" >> WriteSessionsDir(
        config.output
    )


def _read_counts(output: str) -> dict:
    path = FileSystems.join(output, COUNTS_FILE)
    with FileSystems.open(path) as f:
        counts = json.loads(f.read().decode("utf-8"))
    FileSystems.delete([path])
    return counts


def _finish(config: SessionizeConfig, files, beam_args: list[str]) -> dict:
    raw = _read_counts(config.output)
    counts = {
        "read": raw.get("read", 0),
        "valid": raw.get("valid", 0),
        "rejected": {r: raw.get("rejected", {}).get(r, 0) for r in REJECT_REASONS},
        "filtered": {r: raw.get("filtered", {}).get(r, 0) for r in FILTER_REASONS},
        "sessions": raw.get("sessions", 0),
        "items": raw.get("items", 0),
        "tokens": raw.get("tokens", 0),
    }
    if counts["read"] != counts["valid"] + sum(counts["rejected"].values()):
        raise Pin2VecError(f"internal error: counts do not add up: {counts}")
    shards = sorted(FileSystems.split(m.path)[1] for m in FileSystems.match(
        [FileSystems.join(config.output, "sessions-*.parquet")])[0].metadata_list)
    if not shards:  # readers expect at least one shard, even when no session survived
        write_table(FileSystems.join(config.output, shard_name(0)), SESSION_SCHEMA.empty_table())
        shards = [shard_name(0)]
    rejected = sorted(FileSystems.split(m.path)[1] for m in FileSystems.match(
        [FileSystems.join(config.output, "rejected-*.jsonl")])[0].metadata_list)
    if not rejected:  # an empty dead letter says "nothing rejected" more plainly than no file
        write_text(FileSystems.join(config.output, "rejected-00000.jsonl"), "")
        rejected = ["rejected-00000.jsonl"]
    warnings = time_warnings(config, raw.get("before_1990", 0), counts["valid"])
    for text in warnings:
        logger.warning("%s", text)
    manifest = {
        "format_version": 1,
        "kind": "sessions",
        "inputs": [f.path for f in files],
        "options": config.to_json(),
        "beam_args": list(beam_args),
        "counts": counts,
        "files": {"sessions": shards, "rejected": rejected},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    listed = [*shards, *rejected, "items.parquet"]
    if warnings:
        manifest["warnings"] = warnings
    path = FileSystems.join(config.output, MANIFEST)
    if _is_remote(config.output):
        checksums = {}
        for name in listed:
            with FileSystems.open(FileSystems.join(config.output, name),
                                  compression_type=CompressionTypes.UNCOMPRESSED) as f:
                size, digest = stream_digest(f)
            checksums[name] = {"bytes": size, "digest": digest}
        write_text(path, json.dumps({**manifest, CHECKSUMS: checksums}, indent=2) + "\n")
        return manifest
    return write_manifest(config.output, manifest, listed)


def time_warnings(config: SessionizeConfig, early: int, valid: int) -> list[str]:
    """A warning when every valid event time falls before 1990: a time column misread."""
    if not valid or early < valid:
        return []
    column = config.date_column or config.time_column
    flag = "--date-column" if config.date_column else "--time-column"
    unit = ("unit inferred per value (--time-unit auto)" if config.time_unit == "auto"
            else f"--time-unit {config.time_unit}")
    read = f"{flag} {column!r} ({unit})"
    if config.time_offset_column:
        read += (f" plus --time-offset-column {config.time_offset_column!r} in "
                 f"{config.time_offset_unit}")
    return [f"every one of the {valid:,} event times falls before 1990-01-01 as read from "
            f"{read}: is that the right column and unit? A time within the day (e.g. "
            "milliseconds since midnight) needs --date-column DATE --time-offset-column TIME "
            "--time-offset-unit ms; epoch numbers in another unit need --time-unit."]


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, run the sessionize pipeline, write manifest.json last and return it.

    Raises
    ------
    recommender.core.errors.Pin2VecError
        For problems the user can fix (options, inputs, columns, output directory), before the
        pipeline starts where possible.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    ns, beam_args = build_parser().parse_known_args(argv)
    check_beam_args(beam_args)
    options = PipelineOptions(beam_args)
    config = config_from_args(ns, default_buckets(options))
    own_logger = logging.getLogger("pipeline")
    level = own_logger.level
    if config.quiet:
        own_logger.setLevel(logging.WARNING)
    try:
        return _run(config, options, beam_args)
    finally:
        own_logger.setLevel(level)


def _run(config: SessionizeConfig, options, beam_args: list[str]) -> dict:
    files = expand_inputs(config)
    inputs = [f.path for f in files] + [p for p in config.inputs if os.path.isdir(p)]
    check_not_input(config.output, inputs)  # first: the output must never be an input
    check_columns(config, files)
    output = config.output if _is_remote(config.output) else os.path.abspath(config.output)
    if output != config.output:
        config = dataclasses.replace(config, output=output)
    prepare_output(config.output, config.overwrite, inputs)
    logger.info("sessionizing %d input file(s) into %s (%d buckets)", len(files), output,
                config.buckets)
    multi = options.get_all_options().get("direct_running_mode") == "multi_processing"
    noisy = logging.getLogger("apache_beam.runners.portability.local_job_service")
    if noisy.level == logging.NOTSET:  # relays each worker's start-up warnings
        noisy.setLevel(logging.ERROR)
    mute = ("apache_beam.runners.common", "apache_beam.runners.worker.sdk_worker")
    try:
        with _filtered_worker_stderr(multi), _muted(mute), make_pipeline(options) as pipeline:
            build(pipeline, config, files)
    except Exception as e:  # a reader's Pin2VecError, possibly wrapped by the runner
        text = str(e)
        if _MARKER in text:
            line = text[text.index(_MARKER) + len(_MARKER):].splitlines()[0]
            raise Pin2VecError(line.split(" [while running")[0]) from None
        raise
    return _finish(config, files, beam_args)


def summary(manifest: dict) -> str:
    """A short human summary of a run's counts."""
    c = manifest["counts"]

    def reasons(group: dict) -> str:
        parts = [f"{r} {n:,}" for r, n in group.items() if n]
        return f" ({', '.join(parts)})" if parts else ""

    rejected, filtered = sum(c["rejected"].values()), sum(c["filtered"].values())
    return "\n".join([
        f"read {c['read']:,} records: {c['valid']:,} valid, {rejected:,} rejected"
        f"{reasons(c['rejected'])}",
        f"filtered {filtered:,} events{reasons(c['filtered'])}",
        f"wrote {c['sessions']:,} sessions, {c['items']:,} items, {c['tokens']:,} tokens "
        f"to {manifest['options']['output']}",
    ])


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: run and print a summary (just the output directory with --quiet)."""
    manifest = run(argv)
    print(manifest["options"]["output"] if manifest["options"]["quiet"] else summary(manifest))
    return 0
