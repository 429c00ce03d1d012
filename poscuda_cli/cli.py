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
from .errors import PoscudaError


def _fail(message, code):
    click.echo(f"poscuda: {message}", err=True)
    sys.exit(code)


def _progress_bar(total, quiet, unit="file"):
    """A tqdm bar on stderr, or a no-op when quiet or stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, disable=quiet or not sys.stderr.isatty(),
                dynamic_ncols=True)


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
def protect(src, dst, key_path, jobs, force, fail_fast, quiet, as_json):
    """Protect IN/<label>/** into OUT/<label>/** with KEY.

    Audio is protected, other files are copied, OUT mirrors IN. Rerunning the same
    command resumes an interrupted run. Exit code 1 if any file failed.

    \b
    Examples:
      poscuda protect corpus/ protected/ --key k.json
      poscuda protect corpus/ protected/ --key k.json --jobs 2 --json > summary.json
    """
    from .key import load_key
    from .protect import count_files, protect_tree

    key = load_key(key_path, warn=lambda m: click.echo(m, err=True))
    with _progress_bar(count_files(src) if os.path.isdir(src) else 0, quiet) as bar:
        summary = protect_tree(src, dst, key, jobs=jobs, force=force, fail_fast=fail_fast,
                               progress=bar.update)
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
