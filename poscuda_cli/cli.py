"""The ``poscuda`` command line: parse options, call the library, map errors to exit codes.

Exit codes: 0 success; 1 some files failed (listed on stderr); 2 usage error;
3 bad key; 4 unsafe IN/OUT; 5 OUT belongs to another key or run; 6 missing
optional dependency; 7 a --max-*/--min-* gate was violated; 130 interrupted.
Heavy modules are imported inside the commands so ``poscuda --help`` is instant.
"""

import json
import sys

import click

from . import __version__
from .errors import PoscudaError


def _fail(message, code):
    click.echo(f"poscuda: {message}", err=True)
    sys.exit(code)


def _progress_bar(total, quiet, unit="file"):
    """A tqdm bar on stderr, or a no-op when quiet or stderr is not a terminal."""
    from tqdm import tqdm

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
    return click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
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
      poscuda verify in/ out/ --max-fad 5
      poscuda audit --train in/train --protected out/train --test in/test
    """


@main.command()
@click.option("-o", "--output", default="-", show_default=True, help="Key file to write, or - for stdout.")
@click.option("--preset", type=click.Choice(["default", "paper"]), default="default", show_default=True,
              help="Starting parameters: the measured default, or the paper's PosCUDA.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override one parameter (repeatable), e.g. --param notches=3.")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def keygen(output, preset, params, force):
    """Write a new secret key (JSON, mode 0600).

    \b
    Examples:
      poscuda keygen -o k.json
      poscuda keygen -o paper.json --preset paper --param patches=8
    """
    from .key import generate_key, write_key
    from .params import PRESETS

    key = generate_key(PRESETS[preset].with_overrides(params))
    write_key(key, output, force=force)
    if output != "-":
        click.echo(f"wrote key {key.fingerprint} to {output}", err=True)


@main.command()
@click.argument("src", metavar="IN", type=click.Path(file_okay=False))
@click.argument("dst", metavar="OUT", type=click.Path(file_okay=False))
@click.option("-k", "--key", "key_path", required=True, type=click.Path(dir_okay=False), help="Key file.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None, help="Parallel files [all cores].")
@click.option("--force", is_flag=True, help="Redo an OUT made with another key.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first bad file.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@_executor_options
def protect(src, dst, key_path, jobs, force, fail_fast, quiet, as_json, executor, scheduler):
    """Protect IN/<label>/** into OUT/<label>/** with KEY.

    Audio is protected, other files are copied, OUT mirrors IN. Rerunning the same
    command resumes an interrupted run. Exit code 1 if any file failed.

    \b
    Examples:
      poscuda protect corpus/ protected/ --key k.json
      poscuda protect corpus/ protected/ --key k.json --jobs 2 --json > summary.json
      poscuda protect /shared/in /shared/out --key k.json --executor dask --scheduler tcp://head:8786
    """
    from .key import load_key
    from .protect import protect_tree

    key = load_key(key_path, warn=lambda m: click.echo(m, err=True))
    with _progress_bar(None, quiet) as bar:
        summary = protect_tree(src, dst, key, jobs=jobs, force=force, fail_fast=fail_fast, progress=bar.update,
                               on_total=_set_total(bar), executor=executor, scheduler=scheduler)
    for path, reason in summary.failed:
        click.echo(f"poscuda: error: {path}: {reason}", err=True)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
    if not quiet:
        click.echo(
            f"protected {summary.protected}, copied {summary.copied}, resumed {summary.resumed}, "
            f"failed {len(summary.failed)}, skipped {len(summary.skipped)}; "
            f"{summary.changed_fraction:.1%} of samples changed, {summary.clipped} clipped; "
            f"{summary.audio_seconds:.0f} s of audio in {summary.wall_seconds:.1f} s "
            f"(key {summary.key_fingerprint})", err=True)
    if summary.failed:
        sys.exit(1)



@main.command()
@click.argument("original", metavar="ORIG", type=click.Path(file_okay=False, exists=True))
@click.argument("protected", metavar="PROT", type=click.Path(file_okay=False, exists=True))
@click.option("--max-fad", type=float, default=None, help="Exit 7 if FAD exceeds this.")
@click.option("--min-snr", type=float, default=None, help="Exit 7 if the mean SNR (dB) over files is below this.")
@click.option("--min-file-snr", type=float, default=None, help="Exit 7 if any file's SNR (dB) is below this.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the per-file table here.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Embedding cache folder [~/.cache/poscuda/embeddings]; 'none' disables it.")
@click.option("--embedding", type=click.Choice(["mfcc", "vggish"]), default="mfcc", show_default=True,
              help="FAD embedding: built-in MFCC+deltas, or VGGish (torch) with --weights.")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True), help="VGGish state dict (.pth).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None, help="Parallel files [all cores].")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@_executor_options
def verify(original, protected, max_fad, min_snr, min_file_snr, csv_path, cache_dir, embedding, weights, jobs,
           quiet, as_json, executor, scheduler):
    """Measure how much PROT differs from ORIG: FAD and per-file quality.

    Files are paired by relative path; missing or extra files fail the check.
    FAD uses MFCC+delta frame embeddings at 16 kHz (docs/verify.md).

    \b
    Examples:
      poscuda verify in/ out/
      poscuda protect in/ out/ --key k.json && poscuda verify in/ out/ --max-fad 5 --min-snr 20
      poscuda verify in/ out/ --csv quality.csv --json > summary.json
    """
    from .embeddings import MfccEmbedding, VggishEmbedding, default_cache_dir
    from .errors import GateError
    from .verify import verify_trees

    if embedding == "vggish" and not weights:
        raise click.BadParameter("the vggish embedding needs --weights FILE (docs/verify.md)", param_hint="--weights")
    backend = VggishEmbedding(weights) if embedding == "vggish" else MfccEmbedding()
    if cache_dir is None:
        cache_dir = default_cache_dir()
    elif cache_dir.lower() == "none":
        cache_dir = None
    with _progress_bar(None, quiet) as bar:
        report = verify_trees(original, protected, backend, cache_dir=cache_dir, jobs=jobs, progress=bar.update,
                              on_total=_set_total(bar), executor=executor, scheduler=scheduler)
    summary = report.summary()
    if csv_path:
        report.write_csv(csv_path)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        click.echo(f"files        {summary['files']} ({summary['unchanged_files']} unchanged)")
        click.echo(f"FAD          {summary['fad']}")
        click.echo(f"SNR dB       mean {summary['snr_db_mean']}  median {summary['snr_db_median']}  "
                   f"min {summary['snr_db_min']}")
        click.echo(f"LSD dB       mean {summary['lsd_db_mean']}")
        click.echo(f"changed      {summary['changed_fraction_mean']} of samples (mean)")
        for item in summary["worst_snr"]:
            snr = "unchanged" if item["snr_db"] is None else f"{item['snr_db']} dB"
            click.echo(f"  worst      {snr:>10}  {item['path']}")
    problems = [f"missing in PROT: {p}" for p in report.missing] + [f"extra in PROT: {p}" for p in report.extra]
    problems += [f"{p}: {r}" for p, r in report.failed]
    for problem in problems:
        click.echo(f"poscuda: error: {problem}", err=True)
    violations = []
    if max_fad is not None and not report.fad <= max_fad:
        violations.append(f"FAD {report.fad:.4g} > --max-fad {max_fad}")
    if min_snr is not None and not (summary["snr_db_mean"] is None or summary["snr_db_mean"] >= min_snr):
        violations.append(f"mean SNR {summary['snr_db_mean']} dB < --min-snr {min_snr}")
    if min_file_snr is not None and summary["snr_db_min"] is not None and summary["snr_db_min"] < min_file_snr:
        violations.append(f"file SNR {summary['snr_db_min']} dB < --min-file-snr {min_file_snr}")
    if violations:
        raise GateError("; ".join(violations))
    if problems:
        sys.exit(1)

@main.command()
@click.option("--train", "train_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="Clean training tree (IN/<label>/**).")
@click.option("--protected", "protected_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="The protected copy of --train.")
@click.option("--test", "test_dir", type=click.Path(file_okay=False, exists=True),
              help="Clean test tree with the same labels.")
@click.option("--split", metavar="REGEX",
              help=r"Instead of --test: files whose name matches REGEX are the test set, e.g. '_[0-4]\.wav$'.")
@click.option("--models", default=None, metavar="LIST",
              help="Comma-separated attackers: cnn-avg, cnn-flat, raw, lstm, transformer [all].")
@click.option("--epochs", type=click.IntRange(1, 1000), default=15, show_default=True)
@click.option("--shift", type=click.FloatRange(0, 0.9), default=0.0, show_default=True,
              help="Also train with random time shifts of up to this fraction of the clip.")
@click.option("--seconds", type=click.FloatRange(0.05, 60), default=1.0, show_default=True,
              help="Clips are padded or cropped to this length.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="torch threads [torch's default].")
@click.option("--max-accuracy", type=click.FloatRange(0, 1), default=None,
              help="Exit 7 if any protected-trained model scores above this on the clean test set.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def audit(train_dir, protected_dir, test_dir, split, models, epochs, shift, seconds, seed, threads,
          max_accuracy, quiet, as_json):
    """Train attacker models on clean and protected data; report clean-test accuracy.

    \b
    Examples:
      poscuda audit --train in/train --protected out/train --test in/test
      poscuda audit --train fsdd --protected fsdd-prot --split '_[0-4]\\.wav$' --models cnn-avg,raw
    """
    from .audit import audit as run_audit
    from .audit import import_attackers, rows_to_dicts

    names = [m.strip() for m in models.split(",")] if models else list(import_attackers().MODELS)
    unknown = [m for m in names if m not in import_attackers().MODELS]
    if unknown:
        raise click.BadParameter(f"unknown attacker(s) {', '.join(unknown)}", param_hint="--models")
    runs = len(names) * 2 * (2 if shift else 1)
    with _progress_bar(runs * epochs, quiet, unit="epoch") as bar:
        rows, labels = run_audit(train_dir, protected_dir, test_dir, split, names, epochs, seed, shift,
                                 seconds, threads=threads, progress=lambda: bar.update(1))
    if as_json:
        click.echo(json.dumps({"labels": labels, "chance": 1 / len(labels), "rows": rows_to_dicts(rows)}, indent=2))
    else:
        click.echo(f"{'model':<14}{'shift':>6}{'clean-trained':>15}{'protected-trained':>19}{'(fit)':>8}")
        for row in rows:
            click.echo(f"{row.model:<14}{row.shift:>6.2f}{row.clean_accuracy:>15.1%}"
                       f"{row.protected_accuracy:>19.1%}{row.protected_train_accuracy:>8.1%}")
        click.echo(f"accuracy on the clean test set; chance {1 / len(labels):.1%}")
    worst = max(row.protected_accuracy for row in rows)
    if max_accuracy is not None and worst > max_accuracy:
        from .errors import GateError

        raise GateError(f"a protected-trained model reached {worst:.1%} > --max-accuracy {max_accuracy:.1%}")
