"""The ``poscuda`` command line: parse options, call the library, map errors to exit codes.

Exit codes: 0 success; 1 some files failed (listed on stderr); 2 usage error;
3 bad key; 4 unsafe IN/OUT; 5 OUT belongs to another key or run; 6 missing
optional dependency; 7 a --max-*/--min-* gate was violated; 130 interrupted.
Heavy modules are imported inside the commands so ``poscuda --help`` is instant.
"""

import json
import os
import sys

import click

from . import __version__
from .containers import FORMATS
from .executors import EXECUTORS
from .errors import PoscudaError, printable


def _echo(text="", err=False):
    """click.echo, with any name that is not UTF-8 shown as escapes rather than lost."""
    click.echo(printable(text), err=err)


def _echo_json(data):
    """``data`` as JSON on stdout, names that are not UTF-8 shown as in every other message."""
    def shown(value):
        if isinstance(value, str):
            return printable(value)
        if isinstance(value, dict):
            return {shown(k): shown(v) for k, v in value.items()}
        return [shown(v) for v in value] if isinstance(value, (list, tuple)) else value

    click.echo(json.dumps(shown(data), indent=2, ensure_ascii=False))


def _fail(message, code):
    _echo(f"poscuda: {message}", err=True)
    sys.exit(code)


def _progress_bar(total, quiet, unit="file"):
    """A tqdm bar on stderr, or a no-op when quiet or stderr is not a terminal."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: protect forks its workers only from a single thread
    return tqdm(total=total, unit=unit, file=sys.stderr, disable=quiet or not sys.stderr.isatty(),
                dynamic_ncols=True)


def _set_total(bar):
    """A callback that sets the bar's total once the library has counted the work."""
    def set_total(total):
        bar.total = total
        bar.refresh()
    return set_total


def _executor_options(command):
    """--executor/--scheduler, shared by protect and verify."""
    command = click.option("--scheduler", metavar="ADDRESS",
                           help="Dask scheduler (e.g. tcp://host:8786) [a local cluster of --jobs workers].")(command)
    return click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
                        help="Run files in local threads or on a Dask cluster (pip install 'poscuda[dask]').")(command)


class _Command(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PoscudaError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; rerun the same command to resume", 130)


@click.group(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="poscuda")
def main():
    """Protect labeled audio datasets from unauthorized training (PosCUDA).

    \b
      poscuda keygen -o k.json
      poscuda protect in/ out/ --key k.json
      poscuda verify in/ out/ --perceptual all --report report.html
      poscuda audit --train in/train --protected out/train --test in/test
    """


def _fit(fit_dir, settings, stages, labels):
    """Learn the per-label curves; reports what they cost and how surrogates take to them on stderr."""
    from .audit.data import labeled_files, read_clips
    from .audit.main import import_attackers

    import_attackers()
    from .audit.fit import fit

    clips = read_clips(fit_dir, labeled_files(fit_dir, labels=labels))
    with _progress_bar(stages, False, unit="stage") as bar:
        report = fit(clips, settings, stages=stages, progress=lambda: bar.update(1))
    worst = min(report.snr_db.values())
    _echo(f"fitted {len(report.snr_db)} label filters on {len(clips.data)} clips; SNR budget "
          f"{settings.fit_snr_db:g} dB (lowest label {worst:g} dB)", err=True)
    for name in report.surrogate_fit:
        _echo(f"  fresh {name} after one epoch on the protected set: {report.surrogate_fit[name]:.1%} on it, "
              f"{report.surrogate_clean[name]:.1%} on the clean set", err=True)
    return report.fitted


def _label_options(command):
    """--labels/--path-column/--label-column/--delimiter/--label-from: where labels come from."""
    for option in reversed([
        click.option("--labels", "label_table", type=click.Path(dir_okay=False, exists=True),
                     help="CSV/TSV of paths (relative to IN) and labels, instead of label folders."),
        click.option("--path-column", metavar="NAME", help="--labels column holding the paths."),
        click.option("--label-column", metavar="NAME",
                     help="--labels column holding the labels; with Parquet input, the label column."),
        click.option("--delimiter", metavar="CHAR", help="--labels field separator [tab for .tsv, else comma]."),
        click.option("--label-from", "label_pattern", metavar="REGEX",
                     help=r"The label is REGEX's first group on the path relative to IN, e.g. '^(\d)_'."),
    ]):
        command = option(command)
    return command


def _labels(root, label_table, path_column, label_column, delimiter, label_pattern):
    from .labels import from_options

    return from_options(root, label_table, path_column, label_column, delimiter, label_pattern)


def _container_options(command):
    """--format/--audio-column/--label-member: IN as Parquet files or WebDataset shards."""
    for option in reversed([
        click.option("--format", "container_format", type=click.Choice(("auto",) + FORMATS), default="auto",
                     show_default=True, help="A tree of audio files, Parquet files (Hugging Face layout; "
                                             "poscuda[formats]) or WebDataset tar shards [auto: by what it holds]."),
        click.option("--audio-column", metavar="NAME", help="Parquet: the audio column [the one Audio-typed column]."),
        click.option("--label-member", metavar="cls|json:FIELD", default="cls", show_default=True,
                     help="WebDataset: the label is the text of KEY.cls, or FIELD of KEY.json."),
    ]):
        command = option(command)
    return command


def _containers(root, container_format, audio_column, label_column, label_member, *tree_options):
    """containers.Options when ``root`` holds Parquet files or tar shards (or --format says so);
    None for a tree. ``tree_options`` are --labels, --path-column, --delimiter and --label-from."""
    from .containers import Options, detect

    fmt = detect(root) if container_format == "auto" else container_format
    if audio_column and fmt != "parquet":
        raise click.UsageError(f"--audio-column goes with Parquet input, not {fmt}")
    if label_member != "cls" and fmt != "webdataset":
        raise click.UsageError(f"--label-member goes with WebDataset shards, not {fmt}")
    if fmt == "tree":
        return None
    if any(tree_options):
        raise click.UsageError(f"--labels and --label-from describe trees; {fmt} files carry their labels")
    if label_column and fmt == "webdataset":
        raise click.UsageError("--label-column names a table's or a Parquet file's column; a shard's label is "
                               "--label-member")
    if label_member != "cls" and not label_member.startswith("json:") or label_member == "json:":
        raise click.BadParameter("cls, or json:FIELD", param_hint="--label-member")
    return Options(fmt, audio_column, label_column, label_member)


def _key_options(command):
    """--strength/--preset/--param: the parameters of a new key (keygen, audit --keys)."""
    from .signature.params import PRESETS, STRENGTHS

    command = click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
                           help="Override one parameter (repeatable), e.g. --param notches=3.")(command)
    command = click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                           help="The paper's PosCUDA instead of a strength level.")(command)
    return click.option("--strength", type=click.Choice(list(STRENGTHS)), default=None,
                        help="Protection level [balanced]; see 'poscuda keygen --help'.")(command)


def _key_params(strength, preset, params):
    from .signature.params import PRESETS, STRENGTHS

    if strength and preset:
        raise click.UsageError("give --strength or --preset, not both")
    base = PRESETS[preset] if preset else STRENGTHS[strength or "balanced"]
    return base.with_overrides(params)


@main.command()
@click.option("-o", "--output", default="-", show_default=True, help="Key file to write, or - for stdout.")
@_key_options
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@click.option("--fit", "fit_dir", type=click.Path(file_okay=False, exists=True),
              help="Experimental: learn each label's filter on this training tree within the level's SNR "
                   "budget (poscuda[audit]; minutes on a CPU). It protected less than the random levels "
                   "at the same SNR (attackers 77-92% on FSDD, 21-57% on 16 kHz words; docs/results.md).")
@click.option("--fit-stages", type=click.IntRange(1, 100), default=8, show_default=True,
              help="--fit: rounds of fresh surrogate models.")
@_label_options
def keygen(output, strength, preset, params, force, fit_dir, fit_stages, label_table, path_column, label_column,
           delimiter, label_pattern):
    """Write a new secret key (JSON, mode 0600).

    \b
    No level stops a frozen pretrained speech encoder with a small head, the way
    most classifiers are built today: on FSDD it scores 96% against balanced, 82-83%
    against strong and 99% against gentle (99-100% trained on clean audio), and the
    standard speech recipe (noise, SpecAugment, CMVN) gets a model trained from
    scratch to 74% against balanced and 55% against strong (docs/results.md).
    A per-clip poison fitted white-box through the kws encoder, 7.5 dB under each
    STFT bin (PESQ 3.7), took kws-linear to 8% on 100 FSDD clips; fitted without
    it (on MFCC, log-mel, raw and speaker surrogates) it leaves kws at 94-98%, so
    it is no level here: it stops only the encoder it was fitted through.
    What the levels do stop, measured on FSDD over 3 keys:
      gentle    SNR 26 dB, PESQ 4.5: barely audible; attackers still reach 61-92%
      balanced  SNR 15 dB, PESQ 4.1 (default): MFCC/log-mel models trained from
                scratch 15-24%, raw-waveform 66%; with added noise 33-49%
      strong    SNR 4 dB, PESQ 3.6, audible colouring: MFCC/log-mel 10-19%, raw 27%;
                with added noise still at most 24% (MFCC/log-mel) and 28% (raw)

    \b
    Examples:
      poscuda keygen -o k.json
      poscuda keygen -o k.json --strength strong
      poscuda keygen -o paper.json --preset paper --param patches=8
      poscuda keygen -o fitted.json --fit corpus/train
    """
    from .key import generate_key, write_key

    settings = _key_params(strength, preset, params)
    if output != "-" and os.path.exists(output) and not force:  # before minutes of fitting
        raise click.UsageError(f"{output}: already exists (use --force to overwrite)")
    fitted = None
    if fit_dir:
        fitted = _fit(fit_dir, settings, fit_stages, _labels(fit_dir, label_table, path_column, label_column,
                                                             delimiter, label_pattern))
    elif label_table or label_pattern:
        raise click.UsageError("--labels and --label-from go with --fit")
    key = generate_key(settings, fitted)
    write_key(key, output, force=force)
    if output != "-":
        _echo(f"wrote key {key.fingerprint} to {output}", err=True)


@main.command()
@click.argument("src", metavar="IN", type=click.Path())
@click.argument("dst", metavar="OUT", type=click.Path(file_okay=False))
@click.option("-k", "--key", "key_path", required=True, type=click.Path(dir_okay=False), help="Key file.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None, help="Parallel files [all cores].")
@click.option("--force", is_flag=True, help="Redo an OUT made with another key.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first bad file.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@_label_options
@_container_options
@_executor_options
def protect(src, dst, key_path, jobs, force, fail_fast, quiet, as_json, label_table, path_column, label_column,
            delimiter, label_pattern, container_format, audio_column, label_member, executor, scheduler):
    """Protect the labeled audio under IN into OUT with KEY.

    A file's label is its first-level folder (IN/<label>/**), or comes from a metadata
    table (--labels) or its path (--label-from). Audio is protected, other files are
    copied, OUT mirrors IN's layout. Rerunning the same command resumes an interrupted
    run. Exit code 1 if any file failed.

    IN can also be Parquet files as on the Hugging Face Hub (or one such file), the label
    from --label-column (default: the ClassLabel column, whose names are used), or
    WebDataset tar shards: OUT gets files of the same names, rows and members in the same
    order, every other value unchanged.

    \b
    Examples:
      poscuda protect corpus/ protected/ --key k.json
      poscuda protect corpus/ protected/ --key k.json --jobs 2 --json > summary.json
      poscuda protect ESC-50/audio out/ --key k.json --labels ESC-50/meta/esc50.csv \\
          --path-column filename --label-column category
      poscuda protect fsdd-flat/ out/ --key k.json --label-from '^(\\d)_'
      poscuda protect /shared/in /shared/out --key k.json --executor dask --scheduler tcp://head:8786
      poscuda protect speech-commands/data/ out/ --key k.json                 # *.parquet
      poscuda protect shards/ out/ --key k.json --label-member json:label     # *.tar
    """
    from .key import load_key
    from .protect import protect_tree

    containers = _containers(src, container_format, audio_column, label_column, label_member, label_table,
                             path_column, delimiter, label_pattern)
    labels = None if containers else _labels(src, label_table, path_column, label_column, delimiter, label_pattern)
    key = load_key(key_path, warn=lambda m: _echo(m, err=True))
    with _progress_bar(None, quiet, unit="file" if containers is None else "row") as bar:
        summary = protect_tree(src, dst, key, jobs=jobs, force=force, fail_fast=fail_fast, progress=bar.update,
                               on_total=_set_total(bar), executor=executor, scheduler=scheduler, labels=labels,
                               processes=True, containers=containers)
    for path, reason in summary.failed:
        _echo(f"poscuda: error: {path}: {reason}", err=True)
    for path, reason in summary.skipped:
        if reason != "hidden" and not quiet:
            _echo(f"poscuda: skipped {path}: {reason}", err=True)
    if as_json:
        _echo_json(summary.to_dict())
    if not quiet:
        what = f"{summary.protected} files" if containers is None else \
            f"{summary.protected} clips in {summary.containers} {containers.format} file(s)"
        _echo(
            f"protected {what}, copied {summary.copied}, resumed {summary.resumed}, "
            f"failed {len(summary.failed)}, skipped {len(summary.skipped)}; "
            f"{summary.changed_fraction:.1%} of samples changed, {summary.clipped} clipped; "
            f"{summary.seconds:.0f} s of audio in {summary.wall_seconds:.1f} s "
            f"(key {summary.key_fingerprint})", err=True)
    if summary.failed:
        sys.exit(1)



def _perceptual_list(ctx, param, value):
    if not value:
        return ()
    from .verify import PERCEPTUAL

    names = PERCEPTUAL if value.strip() == "all" else tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(set(names) - set(PERCEPTUAL))
    if unknown:
        raise click.BadParameter(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(PERCEPTUAL)} or all")
    return tuple(n for n in PERCEPTUAL if n in names)


@main.command()
@click.argument("original", metavar="ORIG", type=click.Path(exists=True))
@click.argument("protected", metavar="PROT", type=click.Path(exists=True))
@click.option("--perceptual", metavar="LIST", callback=_perceptual_list,
              help="Also measure pesq, stoi, speaker (comma-separated) or all; needs poscuda[quality].")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML report here (measures all perceptual metrics).")
@click.option("--max-fad", type=float, default=None, help="Exit 7 if FAD exceeds this.")
@click.option("--min-snr", type=float, default=None, help="Exit 7 if the mean SNR (dB) over files is below this.")
@click.option("--min-file-snr", type=float, default=None, help="Exit 7 if any file's SNR (dB) is below this.")
@click.option("--min-pesq", type=float, default=None, help="Exit 7 if the mean PESQ is below this.")
@click.option("--min-stoi", type=float, default=None, help="Exit 7 if the mean STOI is below this.")
@click.option("--min-speaker-sim", type=float, default=None,
              help="Exit 7 if the mean speaker similarity (cosine) is below this.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the per-file table here.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Embedding cache folder [~/.cache/poscuda/embeddings]; 'none' disables it.")
@click.option("--embedding", type=click.Choice(["mfcc", "speaker", "vggish"]), default="mfcc", show_default=True,
              help="FAD embedding: built-in MFCC+deltas, the pretrained speaker encoder (poscuda[quality]), "
                   "or VGGish with --weights.")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True), help="VGGish state dict (.pth).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None, help="Parallel worker processes [all cores].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@_label_options
@_container_options
@_executor_options
def verify(original, protected, perceptual, report_path, max_fad, min_snr, min_file_snr, min_pesq, min_stoi,
           min_speaker_sim, csv_path, cache_dir, embedding, weights, jobs, quiet, as_json, label_table, path_column,
           label_column, delimiter, label_pattern, container_format, audio_column, label_member, executor, scheduler):
    """Measure how much PROT differs from ORIG: FAD, SNR, LSD, and PESQ/STOI/speaker similarity.

    Files are paired by relative path; missing or extra files, and pairs that differ in
    rate, channels or length, are errors (exit 1). FAD uses MFCC+delta frame embeddings
    at 16 kHz by default (docs/verify.md). Parquet files and WebDataset shards (or one
    such file each) are paired by name, their audio cells by row or member, and a cell is
    reported as FILE#ROW or SHARD#MEMBER.

    \b
    Examples:
      poscuda verify in/ out/
      poscuda verify in/ out/ --perceptual all --report report.html
      poscuda protect in/ out/ --key k.json && poscuda verify in/ out/ --min-pesq 4.0 --min-snr 12
      poscuda verify in/ out/ --perceptual pesq,stoi --csv quality.csv --json > summary.json
      poscuda verify speech-commands/data/ protected/ --perceptual pesq       # *.parquet
    """
    from .verify import Gates, Plan, summary_lines, verify_trees
    from .verify.embeddings import default_cache_dir

    if embedding == "vggish" and not weights:
        raise click.BadParameter("the vggish embedding needs --weights FILE (docs/verify.md)", param_hint="--weights")
    gates = Gates(max_fad, min_snr, min_file_snr, min_pesq, min_stoi, min_speaker_sim)
    wanted = set(perceptual) | set(gates.perceptual)
    if report_path:
        wanted |= {"pesq", "stoi", "speaker"}
    if cache_dir is None:
        cache_dir = default_cache_dir()
    elif cache_dir.lower() == "none":
        cache_dir = None
    plan = Plan(tuple(n for n in ("pesq", "stoi", "speaker") if n in wanted), embedding, weights, cache_dir)
    containers = _containers(original, container_format, audio_column, label_column, label_member, label_table,
                             path_column, delimiter, label_pattern)
    labels = None if containers else _labels(original, label_table, path_column, label_column, delimiter,
                                             label_pattern)
    if report_path:
        from .verify.report import require as require_report

        require_report()
    with _progress_bar(None, quiet, unit="file" if containers is None else "cell") as bar:
        report = verify_trees(original, protected, plan, jobs=jobs, progress=bar.update, on_total=_set_total(bar),
                              executor=executor, scheduler=scheduler, labels=labels, processes=True,
                              containers=containers)
    summary = report.summary()
    if csv_path:
        report.write_csv(csv_path)
    if report_path:
        from .verify.report import write_report

        write_report(report, original, protected, report_path, containers)
    if as_json:
        _echo_json(summary)
    else:
        _echo("\n".join(summary_lines(summary)))
    problems = [f"missing in PROT: {p}" for p in report.missing] + [f"extra in PROT: {p}" for p in report.extra]
    problems += [f"{p}: {r}" for p, r in report.failed]
    for problem in problems:
        _echo(f"poscuda: error: {problem}", err=True)
    if not quiet and report.not_measured:
        _echo(f"poscuda: {len(report.not_measured)} file(s) not measured by some metric "
              f"(first: {report.not_measured[0][0]}: {report.not_measured[0][1]}; all in --json/--csv)", err=True)
    report.check(gates)
    if problems:
        sys.exit(1)


@main.command()
@click.option("--train", "train_dir", required=True, type=click.Path(exists=True),
              help="Clean training tree (IN/<label>/**), or Parquet files or WebDataset shards.")
@click.option("--protected", "protected_dir", type=click.Path(exists=True),
              help="The protected copy of --train (made with your key).")
@click.option("--keys", type=click.IntRange(1, 100), default=None,
              help="Instead of --protected: protect --train in memory with N fresh keys (never written).")
@_key_options
@click.option("--test", "test_dir", type=click.Path(exists=True),
              help="Clean test tree (or containers, as --train) with the same labels.")
@click.option("--split", metavar="REGEX",
              help=r"Instead of --test: files whose name matches REGEX are the test set, e.g. '_[0-4]\.wav$'.")
@click.option("--groups", metavar="REGEX",
              help="Instead of --test: hold out each group in turn; REGEX's first group on a file name names its "
                   "group, e.g. '_([a-z]+)_' for FSDD's speakers.")
@click.option("--models", default=None, metavar="LIST",
              help="Comma-separated attackers. From scratch: cnn-avg, cnn-flat, raw, lstm, transformer; on a "
                   "frozen pretrained encoder (poscuda[encoders]): kws-linear, kws-mlp, speaker-linear "
                   "[all of them, and cnn-flat under --defense recipe].")
@click.option("--defense", "defenses", multiple=True, metavar="NAME",
              help="Also train defended attackers (repeatable): recipe (the standard speech recipe: noise, "
                   "SpecAugment with time masks, CMVN), eq, bandstop, noise, specaugment, cmvn, mp3, ogg, "
                   "resample8k; join several with '+' to stack them, e.g. noise+specaugment+cmvn.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=None,
              help="Epochs of a model trained from scratch [15; 30 under a defense that augments each batch].")
@click.option("--shift", type=click.FloatRange(0, 0.9), default=0.0, show_default=True,
              help="Also train with random time shifts of up to this fraction of the clip.")
@click.option("--seconds", type=click.FloatRange(0.05, 60), default=1.0, show_default=True,
              help="Clips are padded or cropped to this length.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="torch threads [torch's default].")
@click.option("--max-accuracy", type=click.FloatRange(0, 1), default=None,
              help="Exit 7 if a protected-trained attacker (mean over keys) scores above this on clean test audio.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the results (rows and every run) as JSON on stdout.")
@_label_options
@click.option("--test-labels", "test_table", type=click.Path(dir_okay=False, exists=True),
              help="With --labels and --test: the test tree's table (same columns).")
@_container_options
def audit(train_dir, protected_dir, keys, strength, preset, params, test_dir, split, groups, models, defenses,
          epochs, shift, seconds, seed, threads, max_accuracy, quiet, as_json, label_table, path_column,
          label_column, delimiter, label_pattern, test_table, container_format, audio_column, label_member):
    """Train attacker models on clean and protected data; report clean-test accuracy.

    With --keys N the training tree is protected in memory with N fresh keys (of
    --strength, --preset and --param) and each attacker's accuracy is given as the
    mean, min and max over keys: one key is one draw, not evidence. By default every
    attacker runs (models trained from scratch, heads on frozen pretrained encoders,
    cnn-flat under the standard speech recipe) and the table ends with the strongest.

    \b
    Examples:
      poscuda audit --train in/train --protected out/train --test in/test
      poscuda audit --train fsdd --keys 3 --split '_[0-4]\\.wav$' --models cnn-avg,raw
      poscuda audit --train fsdd --keys 3 --split '_[0-4]\\.wav$' --models kws-linear,kws-mlp
      poscuda audit --train fsdd --keys 3 --split '_[0-4]\\.wav$' --models cnn-flat --defense recipe
      poscuda audit --train fsdd --keys 3 --groups '_([a-z]+)_' --defense bandstop --json > audit.json
      poscuda audit --train data/train.parquet --protected out/train.parquet --test data/test.parquet
    """
    from .audit import audit as run_audit
    from .audit.defenses import DEFENSES, invalid
    from .audit.models import MODELS, unknown
    from .key import generate_key

    names = [m.strip() for m in models.split(",")] if models else None
    if names and unknown(names):
        raise click.BadParameter(f"unknown attacker(s) {', '.join(unknown(names))}; choose from {', '.join(MODELS)}",
                                 param_hint="--models")
    bad = invalid(defenses)
    if bad:
        raise click.BadParameter(f"unknown defense(s) {', '.join(bad)}; choose from {', '.join(DEFENSES[1:])}, "
                                 "or join distinct ones with '+'", param_hint="--defense")
    if bool(protected_dir) == bool(keys):
        raise click.UsageError("give either --protected DIR or --keys N")
    if not keys and (strength or preset or params):
        raise click.UsageError("--strength, --preset and --param describe the fresh keys of --keys N")
    containers = _containers(train_dir, container_format, audio_column, label_column, label_member, label_table,
                             path_column, delimiter, label_pattern, test_table)
    labels = None if containers else _labels(train_dir, label_table, path_column, label_column, delimiter,
                                             label_pattern)
    if test_dir and label_table and not test_table:
        raise click.UsageError("with --labels and --test, give the test tree's table too (--test-labels)")
    test_labels = _labels(test_dir, test_table or None, path_column if test_table else None,
                          label_column if test_table else None, delimiter if test_table else None,
                          label_pattern) if test_dir and not containers else None
    fresh = [generate_key(_key_params(strength, preset, params)) for _ in range(keys or 0)]
    with _progress_bar(None, quiet, unit="step") as bar:
        result = run_audit(train_dir, protected_dir, test_dir, split, groups, fresh, names,
                           ("none",) + tuple(d for d in defenses if d != "none") if defenses else None, epochs,
                           seed, shift, seconds,
                           threads=threads, progress=lambda: bar.update(1), on_total=_set_total(bar),
                           labels=labels, test_labels=test_labels, containers=containers)
    if as_json:
        _echo_json(result.to_dict())
    else:
        _echo("\n".join(result.table()))
    result.check(max_accuracy)
